//! Connections for short reads, taken back without a round trip.
//!
//! sqlx's pool tests every connection it takes back with a ping (a `Sync`
//! message on PostgreSQL, a trip to the worker thread on SQLite), so a
//! read by id costs two round trips instead of one. The ping guards
//! against one thing: a query abandoned half way because its request was
//! cancelled, which leaves unread answers on the connection (and, after a
//! failed query, a broken connection). Here each connection knows whether
//! a read on it is under way; one that comes back with its read unfinished
//! is closed, one whose read failed goes back only if it answers a ping,
//! and any other is lent again as it is.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};

use super::{DbKind, prepare};

/// Connections for [`super::Db::read`].
#[derive(Debug, Clone)]
pub(super) struct Readers {
    pool: managed::Pool<Manager>,
}

#[derive(Debug)]
struct Manager {
    options: AnyConnectOptions,
    kind: DbKind,
}

/// A pooled connection and what became of its last read.
#[derive(Debug)]
struct Reader {
    conn: AnyConnection,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Free to lend again as it is.
    Idle,
    /// A read is under way; a connection that comes back so had its read
    /// cancelled half way.
    Reading,
    /// Its last read failed, and so did a ping after it.
    Broken,
}

impl managed::Manager for Manager {
    type Type = Reader;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Reader, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        prepare(&mut conn, self.kind).await?;
        Ok(Reader {
            conn,
            state: State::Idle,
        })
    }

    async fn recycle(&self, r: &mut Reader, m: &Metrics) -> RecycleResult<sqlx::Error> {
        match r.state {
            State::Idle => {}
            State::Reading => return Err(RecycleError::message("its last read was cancelled")),
            State::Broken => return Err(RecycleError::message("its connection failed")),
        }
        // As for the main pool: only a connection that sat idle is checked.
        if m.last_used() >= super::CHECK_AFTER_IDLE {
            r.conn.ping().await?;
        }
        Ok(())
    }
}

impl Readers {
    pub(super) fn new(
        options: AnyConnectOptions,
        kind: DbKind,
        size: usize,
        wait: Duration,
    ) -> Result<Self, sqlx::Error> {
        let pool = managed::Pool::builder(Manager { options, kind })
            .max_size(size)
            .wait_timeout(Some(wait))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
        Ok(Self { pool })
    }

    /// Open connections, idle or lent.
    pub(super) fn size(&self) -> usize {
        self.pool.status().size
    }

    /// Idle connections.
    pub(super) fn idle(&self) -> usize {
        self.pool.status().available
    }

    /// Run `read` on a connection of its own.
    pub(super) async fn run<T, E>(
        &self,
        read: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        let mut r = self.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            managed::PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            _ => sqlx::Error::PoolClosed,
        })?;
        // Dropped before the read ends (its request cancelled), the
        // connection goes back marked, and the pool closes it.
        r.state = State::Reading;
        let out = read(&mut r.conn).await;
        // A read that failed may have failed with its connection (a reset,
        // a server restart): only one that still answers a ping goes back.
        // Not-found answers pay that round trip too, as every read did
        // under sqlx's pool.
        r.state = if out.is_err() && r.conn.ping().await.is_err() {
            State::Broken
        } else {
            State::Idle
        };
        out
    }
}
