//! `copy`, `backup` and `restore` against real SQLite files and the
//! throwaway PostgreSQL server, every table filled; and read-only mode.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, header};
use clap::Parser;
use common::{Backend, TestApp, fresh_url};
use crm_server::config::{Cli, Modules};
use crm_server::db::Db;
use crm_server::transfer::{self, TransferError, backup, copy};
use crm_server::{AppState, app};
use serde_json::json;

/// Contacts each source gets: with its companies, deals, tickets,
/// campaigns, members, orders and notes, a few thousand rows.
const CONTACTS: u32 = 400;

/// A migrated database with rows in every table, some of them NULL,
/// quoted or beyond ASCII.
async fn filled(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    let (url, dir) = fresh_url(backend).await;
    let db = Db::connect(&url, 2).await.expect("connect");
    db.migrate().await.expect("migrate");
    crm_server::seed::seed(&db, CONTACTS).await.expect("seed");
    for sql in [
        "INSERT INTO orders (deal_id, amount_minor, currency, created_at) \
         SELECT id, amount_minor, currency, created_at FROM deals WHERE id % 4 = 0",
        "INSERT INTO notes (contact_id, kind, body, created_at) \
         SELECT id, 'call', 'It''s ünïcode ✓ for ' || first_name, created_at FROM contacts WHERE id % 3 = 0",
        "INSERT INTO notes (deal_id, kind, body, created_at) \
         SELECT id, 'email', title, created_at FROM deals WHERE id % 5 = 0",
        "INSERT INTO idempotency_keys \
         (scope, idempotency_key, request_sha256, status, response, created_at) \
         SELECT 'contacts/batch', 'key-' || id, 'sha', 200, '{\"items\":[]}', created_at \
         FROM contacts WHERE id % 50 = 0",
        "INSERT INTO webhooks (url, events, secret, created_at) \
         VALUES ('https://hooks.example.com/crm', '[\"contact.created\"]', \
         'a-secret-of-some-length', '2026-11-30T00:00:00Z')",
        "INSERT INTO webhook_outbox \
         (webhook_id, event, delivery_id, payload, state, attempts, next_attempt_at, created_at) \
         SELECT w.id, 'contact.created', 'd-' || c.id, '{}', 'pending', 0, c.created_at, \
         c.created_at FROM contacts c, webhooks w WHERE c.id % 40 = 0",
        "INSERT INTO webhook_attempts \
         (webhook_id, delivery_id, event, attempt, status_code, error, duration_ms, attempted_at) \
         SELECT webhook_id, delivery_id, event, 1, NULL, 'timed out', 10000, created_at \
         FROM webhook_outbox",
        "INSERT INTO users (email, display_name, role, password_hash, disabled, created_at, updated_at) \
         VALUES ('zoë@example.com', 'Zoë', 'admin', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', \
         0, '2026-11-30T00:00:00Z', '2026-11-30T00:00:00Z')",
        "INSERT INTO ui_sessions (token_hash, user_id, csrf_token, expires_at, created_at) \
         SELECT 'hash', id, 'csrf', '2026-12-01T00:00:00Z', '2026-11-30T00:00:00Z' FROM users",
    ] {
        sqlx::query(sql).execute(&db.pool).await.expect(sql);
    }
    db.pool.close().await;
    (url, dir)
}

async fn summary(url: &str) -> Vec<transfer::TableSummary> {
    let db = transfer::open_source(url).await.expect("open");
    let summary = transfer::summarize(&db).await.expect("summarize");
    db.pool.close().await;
    summary
}

fn assert_every_table_has_rows(summary: &[transfer::TableSummary]) {
    assert_eq!(summary.len(), transfer::TABLES.len());
    for table in summary {
        assert!(table.rows > 0, "table {} is empty: {summary:?}", table.name);
    }
}

/// A row written after the copy gets a fresh id: the identity sequences
/// (PostgreSQL) and AUTOINCREMENT (SQLite) are past the copied ids.
async fn new_company_id_is_fresh(url: &str) {
    let db = Db::connect(url, 1).await.expect("connect");
    let (max,): (i64,) = sqlx::query_as("SELECT MAX(id) FROM companies")
        .fetch_one(&db.pool)
        .await
        .expect("max");
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO companies (name, created_at, updated_at) VALUES ('New', 'x', 'x') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .expect("insert after copy");
    assert!(id > max, "new id {id} not above {max}");
    db.pool.close().await;
}

#[tokio::test]
async fn copy_between_sqlite_and_postgresql_either_way_keeps_counts_and_checksums() {
    use Backend::{Postgres, Sqlite};
    for (from, to) in [
        (Sqlite, Postgres),
        (Postgres, Sqlite),
        (Sqlite, Sqlite),
        (Postgres, Postgres),
    ] {
        let (source, _a) = filled(from).await;
        let (target, _b) = fresh_url(to).await;
        let before = summary(&source).await;
        assert_every_table_has_rows(&before);
        let report = copy::copy(&source, &target, false)
            .await
            .unwrap_or_else(|e| panic!("{from:?} → {to:?}: {e}"));
        assert_eq!(report.tables, before, "{from:?} → {to:?}");
        assert_eq!(summary(&target).await, before, "{from:?} → {to:?}");
        assert_eq!(summary(&source).await, before, "the source changed");
        new_company_id_is_fresh(&target).await;
    }
}

#[tokio::test]
async fn copy_refuses_a_non_empty_target_unless_told_to_replace_it() {
    let (source, _a) = filled(Backend::Sqlite).await;
    let (target, _b) = filled(Backend::Postgres).await;
    let error = copy::copy(&source, &target, false)
        .await
        .expect_err("a non-empty target");
    assert!(
        matches!(error, TransferError::TargetNotEmpty { ref table, .. } if table == "companies"),
        "{error}"
    );
    // Seeded alike, the two differ once the source changes; with replace
    // the target becomes the source.
    let seeded_again = summary(&target).await;
    db_exec(
        &source,
        "UPDATE contacts SET phone = 'changed' WHERE id = 1",
    )
    .await;
    let expected = summary(&source).await;
    assert_ne!(expected, seeded_again);
    copy::copy(&source, &target, true).await.expect("replace");
    assert_eq!(summary(&target).await, expected);
}

async fn db_exec(url: &str, sql: &'static str) {
    let db = Db::connect(url, 1).await.expect("connect");
    sqlx::query(sql).execute(&db.pool).await.expect(sql);
    db.pool.close().await;
}

#[tokio::test]
async fn a_backup_restores_to_identical_counts_and_checksums_across_backends() {
    for (from, to) in [
        (Backend::Sqlite, Backend::Postgres),
        (Backend::Postgres, Backend::Sqlite),
    ] {
        let (source, _a) = filled(from).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, manifest) = backup::backup(&source, dir.path(), None)
            .await
            .expect("backup");
        let expected = summary(&source).await;
        let in_manifest: Vec<_> = manifest.tables.iter().map(|t| t.summary.clone()).collect();
        assert_eq!(in_manifest, expected);
        assert_eq!(backup::manifest(&path).expect("manifest"), manifest);

        let (target, _b) = fresh_url(to).await;
        backup::restore(&path, &target, false)
            .await
            .unwrap_or_else(|e| panic!("{from:?} → {to:?}: {e}"));
        assert_eq!(summary(&target).await, expected);
        new_company_id_is_fresh(&target).await;
        let again = backup::restore(&path, &target, false).await;
        assert!(
            matches!(again, Err(TransferError::TargetNotEmpty { .. })),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn a_damaged_backup_is_refused_and_nothing_is_restored() {
    let (source, _a) = filled(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = backup::backup(&source, dir.path(), None)
        .await
        .expect("backup");
    // Replace the contacts with a valid file holding one row fewer.
    rewrite_without_last_line(&path.join("contacts.jsonl.gz"));
    let (target, _b) = fresh_url(Backend::Postgres).await;
    let error = backup::restore(&path, &target, false)
        .await
        .expect_err("a damaged backup");
    assert!(error.to_string().contains("contacts.jsonl.gz"), "{error}");
    assert!(
        summary(&target).await.iter().all(|t| t.rows == 0),
        "a partial restore"
    );
}

fn rewrite_without_last_line(path: &Path) {
    use std::io::{Read, Write};
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut text)
        .expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    let mut out = flate2::write::GzEncoder::new(
        std::fs::File::create(path).expect("create"),
        flate2::Compression::fast(),
    );
    out.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("write");
    out.finish().expect("finish");
}

#[tokio::test]
async fn backups_beyond_retain_are_removed_oldest_first() {
    let (source, _a) = filled(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut made = Vec::new();
    for _ in 0..3 {
        let (path, _) = backup::backup(&source, dir.path(), Some(2))
            .await
            .expect("backup");
        made.push(path);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(backup::list(dir.path()).expect("list"), made[1..]);
}

/// `kill -9` in the middle of writing: the source is byte for byte as it
/// was, the target holds nothing (its one transaction never committed),
/// and the copy can simply run again.
#[tokio::test]
async fn kill_9_mid_copy_leaves_the_source_untouched_and_the_copy_can_rerun() {
    let (source, dir) = filled(Backend::Sqlite).await;
    let file = dir.as_ref().expect("sqlite dir").path().join("crm.db");
    let bytes = std::fs::read(&file).expect("source file");
    let before = summary(&source).await;
    let (target, _b) = fresh_url(Backend::Postgres).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .args(["copy", "--from", &source, "--to", &target])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("crm-server copy");
    let watcher = Db::connect(&target, 1).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the copy never started writing");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the copy ended before it could be killed"
        );
        let (writing,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'INSERT INTO \"%'",
        )
        .fetch_one(&watcher.pool)
        .await
        .expect("pg_stat_activity");
        if writing > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    watcher.pool.close().await;

    assert_eq!(std::fs::read(&file).expect("source file"), bytes);
    assert_eq!(summary(&source).await, before);
    // The server notices the dropped connection and rolls back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while summary(&target).await.iter().any(|t| t.rows > 0) {
        assert!(Instant::now() < deadline, "rows of a killed copy remain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    copy::copy(&source, &target, false).await.expect("rerun");
    assert_eq!(summary(&target).await, before);
}

#[tokio::test]
async fn read_only_mode_answers_writes_503_with_retry_after_and_serves_reads() {
    let mut test = TestApp::new(Backend::Sqlite).await;
    let created = test
        .call(
            Method::POST,
            "/api/v1/companies",
            Some(json!({"name": "Acme"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);

    // The way a deployed server gets it: the environment, or the flag.
    let cli = Cli::try_parse_from(["crm-server", "--read-only"]).expect("flag");
    assert!(cli.config.read_only);
    let state = AppState::from_config(
        test.state.db.clone(),
        common::KEY,
        Modules::ALL,
        &cli.config,
    )
    .expect("state");
    test.router = app(state);

    let refused = test
        .call(
            Method::POST,
            "/api/v1/companies",
            Some(json!({"name": "Beta"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.is_problem());
    assert_eq!(refused.headers[header::RETRY_AFTER], "30");
    for method in [Method::PATCH, Method::DELETE] {
        let res = test.call(method, "/api/v1/companies/1", None).await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let listed = test.call(Method::GET, "/api/v1/companies", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"][0]["name"], "Acme", "{:?}", listed.body);
    // A write without the key is still told about the key first.
    let res = test
        .send(
            axum::http::Request::post("/api/v1/companies")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let doc = test.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert!(doc.body["paths"]["/companies"]["post"]["responses"]["503"].is_object());
    assert!(doc.body["paths"]["/companies"]["get"]["responses"]["503"].is_null());
}
