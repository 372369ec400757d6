//! Rows in a form both dialects share: reading, hashing and writing in batches.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Column, Kind, TableSummary, TransferError, quote};

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// Text.
    Text(String),
}

/// Values bound per statement at most: under SQLite's limit (32,766) and
/// PostgreSQL's (65,535).
const MAX_PARAMETERS: usize = 30_000;
/// Rows per INSERT at most.
const MAX_BATCH_ROWS: usize = 1_000;

/// The running SHA-256 of a table's rows in key order. Each value is a tag
/// byte (`N`, `I`, `T`), then for integers 8 bytes big-endian, for text its
/// length (8 bytes big-endian) and UTF-8 bytes: no two different rows hash
/// alike, and SQLite and PostgreSQL give the same bytes.
#[derive(Debug, Default)]
pub struct Checksum {
    hash: Sha256,
    rows: u64,
}

impl Checksum {
    /// Adds a row.
    pub fn add(&mut self, row: &[Value]) {
        for value in row {
            match value {
                Value::Null => self.hash.update(b"N"),
                Value::Integer(i) => {
                    self.hash.update(b"I");
                    self.hash.update(i.to_be_bytes());
                }
                Value::Text(t) => {
                    self.hash.update(b"T");
                    self.hash.update((t.len() as u64).to_be_bytes());
                    self.hash.update(t.as_bytes());
                }
            }
        }
        self.rows += 1;
    }

    /// The table's figures.
    pub fn finish(self, table: &str) -> TableSummary {
        TableSummary {
            name: table.to_owned(),
            rows: self.rows,
            checksum: hex::encode(self.hash.finalize()),
        }
    }
}

/// Where the rows of a table go as they are read.
pub trait Sink {
    /// Takes one row.
    fn row(&mut self, values: Vec<Value>) -> impl Future<Output = Result<(), TransferError>>;
}

impl Sink for Checksum {
    async fn row(&mut self, values: Vec<Value>) -> Result<(), TransferError> {
        self.add(&values);
        Ok(())
    }
}

/// Streams a table's rows in key order into `sink`.
pub async fn read(
    conn: &mut AnyConnection,
    table: &str,
    key: &[&str],
    columns: &[Column],
    sink: &mut impl Sink,
) -> Result<(), TransferError> {
    let list = columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let order = key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT {list} FROM {} ORDER BY {order}", quote(table));
    let step = || format!("reading {table}");
    let mut stream = sqlx::query(AssertSqlSafe(sql)).fetch(&mut *conn);
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(TransferError::query(step()))?
    {
        let values = decode(&row, columns).map_err(TransferError::query(step()))?;
        sink.row(values).await?;
    }
    Ok(())
}

fn decode(row: &AnyRow, columns: &[Column]) -> Result<Vec<Value>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column.kind {
                Kind::Integer => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Value::Null, Value::Integer),
                Kind::Text => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Value::Null, Value::Text),
            })
        })
        .collect()
}

/// Rows buffered for one table and written as multi-row INSERTs.
#[derive(Debug)]
pub struct Inserter {
    table: String,
    columns: Vec<Column>,
    batch_rows: usize,
    pending: Vec<Vec<Value>>,
}

impl Inserter {
    /// An inserter into `table` with `columns` (in the order rows give them).
    pub fn new(table: &str, columns: &[Column]) -> Self {
        let batch_rows = (MAX_PARAMETERS / columns.len().max(1)).clamp(1, MAX_BATCH_ROWS);
        Self {
            table: table.to_owned(),
            columns: columns.to_vec(),
            batch_rows,
            pending: Vec::with_capacity(batch_rows),
        }
    }

    /// Buffers a row, writing the batch when it is full.
    pub async fn push(
        &mut self,
        conn: &mut AnyConnection,
        row: Vec<Value>,
    ) -> Result<(), TransferError> {
        if row.len() != self.columns.len() {
            return Err(TransferError::Schema(format!(
                "table {}: a row of {} values for {} columns",
                self.table,
                row.len(),
                self.columns.len()
            )));
        }
        self.pending.push(row);
        if self.pending.len() >= self.batch_rows {
            self.flush(conn).await?;
        }
        Ok(())
    }

    /// Writes what is buffered.
    pub async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), TransferError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let width = self.columns.len();
        let list = self
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("INSERT INTO {} ({list}) VALUES ", quote(&self.table));
        for r in 0..self.pending.len() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&(r * width + c + 1).to_string());
            }
            sql.push(')');
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in self.pending.drain(..) {
            for (value, column) in row.into_iter().zip(&self.columns) {
                query = match (column.kind, value) {
                    (Kind::Integer, Value::Integer(i)) => query.bind(i),
                    (Kind::Integer, Value::Null) => query.bind(None::<i64>),
                    (Kind::Text, Value::Text(t)) => query.bind(t),
                    (Kind::Text, Value::Null) => query.bind(None::<String>),
                    (kind, value) => {
                        return Err(TransferError::Schema(format!(
                            "table {}, column {}: {value:?} is not {kind:?}",
                            self.table, column.name
                        )));
                    }
                };
            }
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(TransferError::query(format!("writing {}", self.table)))?;
        Ok(())
    }
}

/// Rows written into a target as they are read, and hashed on the way.
#[derive(Debug)]
pub struct Load<'c> {
    /// The target's transaction.
    pub conn: &'c mut AnyConnection,
    /// The batch being filled.
    pub inserter: Inserter,
    /// What was read.
    pub checksum: Checksum,
}

impl<'c> Load<'c> {
    /// A load of `table` through `conn`.
    pub fn new(conn: &'c mut AnyConnection, table: &str, columns: &[Column]) -> Self {
        Self {
            conn,
            inserter: Inserter::new(table, columns),
            checksum: Checksum::default(),
        }
    }

    /// Writes the last batch; the table's figures as read.
    pub async fn finish(mut self, table: &str) -> Result<TableSummary, TransferError> {
        self.inserter.flush(self.conn).await?;
        Ok(self.checksum.finish(table))
    }
}

impl Sink for Load<'_> {
    async fn row(&mut self, values: Vec<Value>) -> Result<(), TransferError> {
        self.checksum.add(&values);
        self.inserter.push(self.conn, values).await
    }
}
