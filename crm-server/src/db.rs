//! Storage: one pool over SQLite or PostgreSQL, and a tiny SQL builder that
//! always binds values as parameters.

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection};

use crate::error::ApiError;

mod readers;

/// Which database the pool talks to; migrations differ per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// How long a pooled connection may sit unused before it is pinged on
/// acquire: one that was in use this recently is trusted, so a busy server
/// pays no extra round trip per query.
const CHECK_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a request waits for a free connection.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The pools and their dialect.
#[derive(Debug, Clone)]
pub struct Db {
    /// Connection pool (sqlx `Any`, so one code path serves both).
    pub pool: AnyPool,
    /// Dialect of the pool.
    pub kind: DbKind,
    /// Half of the connections, kept for [`Db::read`]; none when there is
    /// only one connection to share.
    readers: Option<readers::Readers>,
}

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names neither sqlite nor postgres.
    #[error("unsupported DATABASE_URL scheme (use sqlite:// or postgres://)")]
    UnsupportedScheme,
    /// Connecting failed.
    #[error("connecting to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// Running migrations failed.
    #[error("running migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl Db {
    /// Connect to `url` with at most `pool_size` connections.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            DbKind::Postgres
        } else {
            return Err(DbError::UnsupportedScheme);
        };
        let options = AnyConnectOptions::from_str(url).map_err(DbError::Connect)?;
        let pool_size = pool_size.max(1);
        let reader_count = pool_size / 2;
        let readers = if reader_count > 0 {
            let r = readers::Readers::new(
                options.clone(),
                kind,
                reader_count as usize,
                ACQUIRE_TIMEOUT,
            )
            .map_err(DbError::Connect)?;
            Some(r)
        } else {
            None
        };
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size - reader_count)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A ping before every acquire is a second round trip per
            // query; only a connection that sat idle is checked.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_AFTER_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| Box::pin(prepare(conn, kind)))
            .connect_with(options)
            .await
            .map_err(DbError::Connect)?;
        Ok(Self {
            pool,
            kind,
            readers,
        })
    }

    /// Run a short read, such as one row by id, on a connection of its own.
    ///
    /// The connection comes back without the round trip that the main
    /// pool spends testing every connection it takes back; the `readers`
    /// module says why that is safe. Anything that writes, or holds the
    /// connection across other work, takes one from `pool`.
    pub async fn read<T, E>(
        &self,
        read: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        match &self.readers {
            Some(readers) => readers.run(read).await,
            None => read(&mut *self.pool.acquire().await?).await,
        }
    }

    /// Open connections, in use or idle, over both pools.
    pub fn connections(&self) -> usize {
        self.pool.size() as usize + self.readers.as_ref().map_or(0, |r| r.size())
    }

    /// Idle connections over both pools.
    pub fn idle_connections(&self) -> usize {
        self.pool.num_idle() + self.readers.as_ref().map_or(0, |r| r.idle())
    }

    /// Apply pending migrations for this dialect.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.kind {
            DbKind::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            DbKind::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&self.pool).await.map_err(DbError::Migrate)
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a deferred transaction that reads first
    /// and writes later fails with "database is locked" when another
    /// writer came in between, where this one waits (`busy_timeout`).
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            DbKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            DbKind::Postgres => self.pool.begin().await,
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Settings every new connection gets: on SQLite, enforce references and
/// wait for the writer lock instead of failing with SQLITE_BUSY.
async fn prepare(conn: &mut AnyConnection, kind: DbKind) -> Result<(), sqlx::Error> {
    if kind == DbKind::Sqlite {
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await?;
        sqlx::query("PRAGMA busy_timeout = 10000")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub enum Val {
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
    /// An optional integer.
    OptInt(Option<i64>),
    /// An optional string.
    OptText(Option<String>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Val::OptInt(v)
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::OptText(v)
    }
}

/// SQL text built only from static fragments, with every value bound as a
/// `$n` parameter (both SQLite and PostgreSQL understand `$n`).
#[derive(Debug, Default)]
pub struct Sql {
    text: String,
    args: Vec<Val>,
}

impl Sql {
    /// Start with a static fragment.
    pub fn new(fragment: &'static str) -> Self {
        Self {
            text: fragment.to_string(),
            args: Vec::new(),
        }
    }

    /// Append a static fragment.
    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Append a placeholder for `value`.
    pub fn bind(&mut self, value: impl Into<Val>) -> &mut Self {
        self.args.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        // Safe: `text` only ever receives static fragments and `$n` markers.
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for a in &self.args {
            q = match a {
                Val::Int(v) => q.bind(*v),
                Val::Text(v) => q.bind(v.clone()),
                Val::OptInt(v) => q.bind(*v),
                Val::OptText(v) => q.bind(v.clone()),
            };
        }
        q
    }

    /// Run and return all rows.
    pub async fn fetch_all<'e, E>(&self, ex: E) -> Result<Vec<AnyRow>, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        self.query().fetch_all(ex).await
    }

    /// Run and stream the rows as the database produces them.
    pub fn fetch<'q, 'e, E>(
        &'q self,
        ex: E,
    ) -> futures::stream::BoxStream<'e, Result<AnyRow, sqlx::Error>>
    where
        'q: 'e,
        E: sqlx::Executor<'e, Database = sqlx::Any> + 'e,
    {
        Box::pin(self.query().fetch(ex))
    }

    /// Run and return at most one row.
    pub async fn fetch_optional<'e, E>(&self, ex: E) -> Result<Option<AnyRow>, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        self.query().fetch_optional(ex).await
    }

    /// Run and return the number of affected rows.
    pub async fn execute<'e, E>(&self, ex: E) -> Result<u64, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        Ok(self.query().execute(ex).await?.rows_affected())
    }
}

/// Decode rows into `T`, mapping decode failures to internal errors.
pub fn rows<T>(rows: Vec<AnyRow>) -> Result<Vec<T>, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, AnyRow>,
{
    rows.iter()
        .map(|r| T::from_row(r).map_err(ApiError::Database))
        .collect()
}

/// Current time as RFC 3339 UTC text; stored as text in both dialects so
/// ordering and month grouping (`substr`) work the same everywhere.
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

/// `ts` as [`now`] writes it.
pub fn timestamp(ts: jiff::Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        ts.strftime("%Y-%m-%dT%H:%M:%S"),
        ts.subsec_microsecond()
    )
}
