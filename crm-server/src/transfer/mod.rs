//! Moving a tenant's data whole: `copy` (database to database), `backup`
//! (database to a compressed export with a manifest) and `restore` (an
//! export into an empty database).
//!
//! ```text
//! source ─► snapshot (one read transaction) ─► rows by primary key ─► target (one transaction)
//!                                                   │                        │
//!                                       count + SHA-256 per table  ══  recounted after commit
//! ```
//!
//! Every table is read in primary-key order inside one read-only
//! transaction, so the copy is a consistent snapshot even while the source
//! is in use. Rows are hashed in a canonical form that is the same on SQLite
//! and PostgreSQL, so a copy between the two is verified like any other: the
//! target is read back after commit and must give the same count and
//! checksum for every table. The target is written in a single transaction,
//! so a copy that dies leaves it as it was.

pub mod backup;
pub mod copy;
mod rows;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::db::{Db, DbError, DbKind};

pub use rows::{Checksum, Inserter, Load, Sink, Value};

/// Every table of the schema, parents before children, with its primary
/// key (the order rows are read, written and hashed in).
pub const TABLES: &[(&str, &[&str])] = &[
    ("companies", &["id"]),
    ("contacts", &["id"]),
    ("deals", &["id"]),
    ("orders", &["id"]),
    ("notes", &["id"]),
    ("tickets", &["id"]),
    ("campaigns", &["id"]),
    ("campaign_members", &["campaign_id", "contact_id"]),
    ("idempotency_keys", &["scope", "idempotency_key"]),
    ("webhooks", &["id"]),
    ("webhook_outbox", &["id"]),
    ("webhook_attempts", &["id"]),
    ("users", &["id"]),
    ("ui_sessions", &["token_hash"]),
];

/// Tables of the database that are not the application's data: the
/// migrations' and SQLite's bookkeeping, and the failed sign-ins the rate
/// limit counts for a minute (not worth moving).
const BOOKKEEPING: &[&str] = &["_sqlx_migrations", "sqlite_sequence", "ui_sign_in_failures"];

/// What can go wrong moving data.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Opening or migrating a database.
    #[error("{which} database: {source}")]
    Open {
        /// `source` or `target`.
        which: &'static str,
        /// Why.
        #[source]
        source: DbError,
    },
    /// A query failed.
    #[error("{step}: {source}")]
    Query {
        /// What was being done.
        step: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// The databases do not hold the same schema.
    #[error("schema: {0}")]
    Schema(String),
    /// The target already holds data.
    #[error(
        "the target database is not empty (table {table} has {rows} rows): restore and copy only fill an empty database"
    )]
    TargetNotEmpty {
        /// The first non-empty table.
        table: String,
        /// Its row count.
        rows: u64,
    },
    /// What was written does not read back the same.
    #[error("verification failed: {0}")]
    Verify(String),
    /// Reading or writing a backup.
    #[error("backup {path}: {message}")]
    Backup {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl TransferError {
    fn query(step: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let step = step.into();
        move |source| TransferError::Query { step, source }
    }
}

/// How a column's values are read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A 64-bit integer.
    Integer,
    /// Text.
    Text,
}

/// A column, as both dialects declare it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Value kind.
    pub kind: Kind,
}

/// One table's figures: what verification compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// SHA-256 (hex) over the rows in key order, in canonical form.
    pub checksum: String,
}

/// Opens a database to read from without changing it: SQLite read-only,
/// PostgreSQL through read-only transactions; no migrations run.
pub async fn open_source(url: &str) -> Result<Db, TransferError> {
    let url = if url.starts_with("sqlite:") {
        // Read-only: the file must exist, and no write can reach it.
        let path = url.split('?').next().unwrap_or(url);
        format!("{path}?mode=ro")
    } else {
        url.to_owned()
    };
    Db::connect(&url, 2)
        .await
        .map_err(|source| TransferError::Open {
            which: "source",
            source,
        })
}

/// Opens (creating when SQLite) and migrates the database to write into.
pub async fn open_target(url: &str) -> Result<Db, TransferError> {
    let open = |source| TransferError::Open {
        which: "target",
        source,
    };
    let db = Db::connect(url, 2).await.map_err(open)?;
    db.migrate().await.map_err(open)?;
    Ok(db)
}

/// Begins the read transaction every table of a snapshot is read in.
pub async fn snapshot(db: &Db) -> Result<sqlx::Transaction<'static, sqlx::Any>, TransferError> {
    let begin = match db.kind {
        // SQLite: a read transaction sees one version of the file throughout.
        DbKind::Sqlite => db.pool.begin().await,
        DbKind::Postgres => {
            db.pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await
        }
    };
    begin.map_err(TransferError::query("beginning the snapshot"))
}

/// The application's columns, per table in [`TABLES`] order, sorted by
/// name; refuses a database with a table this module does not know, so a
/// table added to the schema cannot be left behind silently.
pub async fn schema(
    conn: &mut AnyConnection,
    kind: DbKind,
) -> Result<Vec<(String, Vec<Column>)>, TransferError> {
    let listing = match kind {
        DbKind::Sqlite => {
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table'"
        }
        DbKind::Postgres => {
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = current_schema()"
        }
    };
    let rows: Vec<(String, String, String)> =
        sqlx::query_as(listing)
            .fetch_all(&mut *conn)
            .await
            .map_err(TransferError::query("reading the schema"))?;
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for (table, name, declared) in rows {
        if BOOKKEEPING.contains(&table.as_str()) {
            continue;
        }
        let kind = if declared.to_ascii_lowercase().contains("int") {
            Kind::Integer
        } else {
            Kind::Text
        };
        tables.entry(table).or_default().push(Column { name, kind });
    }
    let mut ordered = Vec::new();
    for (name, _) in TABLES {
        let mut columns = tables.remove(*name).ok_or_else(|| {
            TransferError::Schema(format!(
                "table {name} is missing (is the database migrated?)"
            ))
        })?;
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        ordered.push(((*name).to_owned(), columns));
    }
    if let Some(unknown) = tables.keys().next() {
        return Err(TransferError::Schema(format!(
            "table {unknown} is not one the copy knows; it would be left behind"
        )));
    }
    Ok(ordered)
}

/// Counts and checksums of every table, read in one snapshot.
pub async fn summarize(db: &Db) -> Result<Vec<TableSummary>, TransferError> {
    let mut tx = snapshot(db).await?;
    let tables = schema(&mut tx, db.kind).await?;
    let mut out = Vec::new();
    for (name, columns) in &tables {
        let mut checksum = Checksum::default();
        rows::read(&mut tx, name, key_of(name), columns, &mut checksum).await?;
        out.push(checksum.finish(name));
    }
    Ok(out)
}

/// The first table holding rows, if any.
pub async fn first_non_empty(
    conn: &mut AnyConnection,
) -> Result<Option<(String, u64)>, TransferError> {
    for (name, _) in TABLES {
        let sql = format!("SELECT COUNT(*) FROM {}", quote(name));
        let (rows,): (i64,) = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(TransferError::query(format!("counting {name}")))?;
        if rows > 0 {
            return Ok(Some(((*name).to_owned(), rows.unsigned_abs())));
        }
    }
    Ok(None)
}

/// Compares two summaries table by table, naming the first difference.
pub fn compare(expected: &[TableSummary], actual: &[TableSummary]) -> Result<(), TransferError> {
    for e in expected {
        let Some(a) = actual.iter().find(|a| a.name == e.name) else {
            return Err(TransferError::Verify(format!(
                "table {} is missing",
                e.name
            )));
        };
        if a.rows != e.rows {
            return Err(TransferError::Verify(format!(
                "table {}: {} rows expected, {} found",
                e.name, e.rows, a.rows
            )));
        }
        if a.checksum != e.checksum {
            return Err(TransferError::Verify(format!(
                "table {}: checksum {} expected, {} found",
                e.name, e.checksum, a.checksum
            )));
        }
    }
    Ok(())
}

/// Sets PostgreSQL's identity sequences past the ids loaded, so new rows
/// get fresh ids (SQLite's AUTOINCREMENT follows explicit ids itself).
pub async fn reset_sequences(conn: &mut AnyConnection, kind: DbKind) -> Result<(), TransferError> {
    if kind != DbKind::Postgres {
        return Ok(());
    }
    for (name, key) in TABLES {
        if *key != ["id"] {
            continue;
        }
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{name}', 'id'), \
             COALESCE(MAX(id), 1), MAX(id) IS NOT NULL)::bigint FROM {}",
            quote(name)
        );
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(TransferError::query(format!(
                "resetting the id sequence of {name}"
            )))?;
    }
    Ok(())
}

/// Removes every row of every table, children first (a retried copy into
/// a target that an earlier attempt filled).
pub async fn clear(conn: &mut AnyConnection) -> Result<(), TransferError> {
    for (name, _) in TABLES.iter().rev() {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {}", quote(name))))
            .execute(&mut *conn)
            .await
            .map_err(TransferError::query(format!("clearing {name}")))?;
    }
    Ok(())
}

/// The primary key of a table of [`TABLES`].
fn key_of(table: &str) -> &'static [&'static str] {
    TABLES
        .iter()
        .find(|(name, _)| *name == table)
        .map_or(&[], |(_, key)| key)
}

/// A quoted identifier. Identifiers come from [`TABLES`] and the schema,
/// never from input, and are quoted all the same.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Runs `copy`, `backup` or `restore`, printing a JSON report on standard
/// output; `None` for the other commands.
pub async fn run(
    command: &crate::config::Command,
    database_url: &str,
) -> Option<Result<(), TransferError>> {
    use crate::config::Command;
    let report = match command {
        Command::Copy { from, to, replace } => copy::copy(from, to, *replace)
            .await
            .map(|r| serde_json::json!({ "copied": r })),
        Command::Backup { dir, retain } => backup::backup(database_url, dir, *retain)
            .await
            .map(|(path, manifest)| {
                serde_json::json!({ "backup": path.display().to_string(), "manifest": manifest })
            }),
        Command::Restore { from, replace } => backup::restore(from, database_url, *replace)
            .await
            .map(|manifest| {
                serde_json::json!({ "restored": from.display().to_string(), "manifest": manifest })
            }),
        _ => return None,
    };
    Some(report.map(|r| println!("{r}")))
}
