//! Shared test harness: a fresh, migrated database per test on SQLite or
//! PostgreSQL, and helpers to call the router.
#![allow(dead_code)]

pub mod wire;

use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use crm_server::config::Modules;
use crm_server::db::Db;
use crm_server::{AppState, app};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The key every test app accepts.
pub const KEY: &str = "test-key";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A router over a fresh database.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub url: String,
    pub _dir: Option<tempfile::TempDir>,
}

/// A response, body parsed as JSON when possible.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Res {
    pub fn etag(&self) -> String {
        self.headers[header::ETAG]
            .to_str()
            .expect("etag")
            .to_string()
    }
    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
    pub fn is_problem(&self) -> bool {
        self.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes())
            == Some(b"application/problem+json")
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh database URL: a temp SQLite file or a new PostgreSQL database.
pub async fn fresh_url(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("crm.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let admin = std::env::var("CRM_TEST_POSTGRES_URL").expect(
                "CRM_TEST_POSTGRES_URL is not set: run the tests under scripts/with-postgres \
                 (e.g. `scripts/with-postgres cargo test -p crm-server`)",
            );
            let name = format!(
                "crm_test_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            let db = Db::connect(&admin, 1).await.expect("connect admin");
            let stmt = format!("CREATE DATABASE {name}");
            sqlx::query(sqlx::AssertSqlSafe(stmt))
                .execute(&db.pool)
                .await
                .expect("create db");
            db.pool.close().await;
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .expect("url");
            (format!("{base}/{name}"), None)
        }
    }
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::with_modules(backend, Modules::ALL).await
    }

    pub async fn with_modules(backend: Backend, modules: Modules) -> Self {
        let (url, dir) = fresh_url(backend).await;
        let db = Db::connect(&url, 5).await.expect("connect");
        db.migrate().await.expect("migrate");
        let state = AppState::new(db, KEY, modules).expect("state");
        Self {
            router: app(state.clone()),
            state,
            url,
            _dir: dir,
        }
    }

    /// Another server on the same database, as a second replica is (the
    /// first keeps a SQLite file alive).
    pub async fn replica(&self) -> Self {
        let db = Db::connect(&self.url, 5).await.expect("connect");
        let state = AppState::new(db, KEY, self.state.modules).expect("state");
        Self {
            router: app(state.clone()),
            state,
            url: self.url.clone(),
            _dir: None,
        }
    }

    /// Send a request with the API key.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Res {
        self.call_with(method, path, body, &[]).await
    }

    /// Send a request with the API key and extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Res {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }

    /// Send a raw request as built.
    pub async fn send(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let raw = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            raw,
        }
    }

    /// Raw body POST with the key.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Res {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }
}

/// Declare a test body once and run it on both backends:
/// `both!(name, |app| async move { ... })` makes `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let app = $crate::common::TestApp::new($crate::common::Backend::Sqlite).await;
                ($body)(app).await;
            }
            #[tokio::test]
            async fn postgres() {
                let app = $crate::common::TestApp::new($crate::common::Backend::Postgres).await;
                ($body)(app).await;
            }
        }
    };
}
