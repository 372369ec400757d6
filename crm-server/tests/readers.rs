//! `Db::read`: a finished read leaves its connection to the next one, with
//! no round trip in between; a cancelled one does not.

use std::time::Duration;

use crate::common::{Backend, fresh_url};
use crm_server::db::Db;

async fn backend_pid(db: &Db) -> i32 {
    db.read(async |conn| {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
    })
    .await
    .expect("read the backend pid")
}

async fn backend_alive(db: &Db, pid: i32) -> bool {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
        .bind(pid)
        .fetch_one(&db.pool)
        .await
        .expect("count backends");
    n > 0
}

#[tokio::test]
async fn a_finished_read_keeps_its_connection_and_a_cancelled_one_is_closed() {
    let (url, _dir) = fresh_url(Backend::Postgres).await;
    // Two connections: one for reads, one for everything else.
    let db = Db::connect(&url, 2).await.expect("connect");

    let first = backend_pid(&db).await;
    assert_eq!(
        backend_pid(&db).await,
        first,
        "a finished read's connection is lent again"
    );

    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        db.read(async |conn| sqlx::query("SELECT pg_sleep(2)").execute(conn).await),
    )
    .await;
    assert!(cancelled.is_err(), "the sleeping read outlasts its timeout");

    let after = backend_pid(&db).await;
    assert_ne!(
        after, first,
        "the connection left mid-read is not lent again"
    );
    assert!(
        db.connections() <= 2,
        "{} connections over a budget of 2",
        db.connections()
    );

    // It is closed, not leaked: its backend ends once the sleep is over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while backend_alive(&db, first).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "backend {first} still serves a closed connection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_connection_is_shared_by_reads_and_writes() {
    let (url, _dir) = fresh_url(Backend::Sqlite).await;
    let db = Db::connect(&url, 1).await.expect("connect");
    db.migrate().await.expect("migrate");
    let n: i64 = db
        .read(async |conn| {
            sqlx::query_scalar("SELECT count(*) FROM contacts")
                .fetch_one(conn)
                .await
        })
        .await
        .expect("read through the only connection");
    assert_eq!(n, 0);
    assert_eq!(db.connections(), 1);
}

#[tokio::test]
async fn a_read_that_failed_with_its_connection_leaves_it_behind() {
    let (url, _dir) = fresh_url(Backend::Postgres).await;
    let db = Db::connect(&url, 2).await.expect("connect");
    let first = backend_pid(&db).await;

    // The server ends the reader's backend, as a restart or a reset would.
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&db.pool)
        .await
        .expect("terminate the reader's backend");
    assert!(ended);

    let failed = db
        .read(async |conn| sqlx::query("SELECT 1").execute(conn).await)
        .await;
    assert!(failed.is_err(), "a read on the ended backend fails");
    let after = backend_pid(&db).await;
    assert_ne!(after, first, "the broken connection is not lent again");
}
