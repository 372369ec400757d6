//! Metrics, compression, request ids and the read cache.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::TestApp;
use serde_json::json;

both!(cache_is_invalidated_by_writes, |app: TestApp| async move {
    let c = app
        .call(
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"first_name": "A", "last_name": "B", "email": "a@b.io"})),
        )
        .await;
    let id = c.body["id"].as_i64().expect("id");
    let path = format!("/api/v1/contacts/{id}");
    app.call(Method::GET, &path, None).await;
    let cached = app.call(Method::GET, &path, None).await;
    assert!(
        app.state.metrics.cache_hits.get() >= 1,
        "second read is a hit"
    );
    let body = json!({"first_name": "Changed", "last_name": "B", "email": "a@b.io"});
    let r = app
        .call_with(
            Method::PUT,
            &path,
            Some(body),
            &[("if-match", &cached.etag())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let after = app.call(Method::GET, &path, None).await;
    assert_eq!(after.body["first_name"], "Changed");
    assert_eq!(
        app.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );

    let co = app
        .call(
            Method::POST,
            "/api/v1/companies",
            Some(json!({"name": "Acme"})),
        )
        .await;
    let co_id = co.body["id"].as_i64().expect("id");
    let c = app
        .call(
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"first_name": "A",
        "last_name": "B", "email": "c@b.io", "company_id": co_id})),
        )
        .await;
    let cpath = format!("/api/v1/contacts/{}", c.body["id"]);
    assert_eq!(
        app.call(Method::GET, &cpath, None).await.body["company_id"],
        co_id
    );
    let r = app
        .call(Method::DELETE, &format!("/api/v1/companies/{co_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(app.call(Method::GET, &cpath, None).await.body["company_id"].is_null());
});

#[tokio::test]
async fn metrics_gzip_and_request_id() {
    let app = TestApp::new(common::Backend::Sqlite).await;
    for _ in 0..3 {
        app.call(Method::GET, "/api/v1/companies", None).await;
    }
    let req = Request::get("/metrics").body(Body::empty()).expect("req");
    let m = app.send(req).await;
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8(m.raw).expect("utf8");
    assert!(
        text.contains(
            r#"crm_http_requests_total{method="GET",route="/api/v1/companies",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains("crm_http_request_duration_seconds_bucket"));
    assert!(text.contains("crm_db_pool_connections"));
    assert!(text.contains("crm_cache_hit_ratio"));

    let req = Request::get("/api/v1/companies?limit=200")
        .header(header::AUTHORIZATION, format!("Bearer {}", common::KEY))
        .header(header::ACCEPT_ENCODING, "gzip")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .expect("req");
    for i in 0..40 {
        app.call(
            Method::POST,
            "/api/v1/companies",
            Some(json!({"name": format!("Co {i}")})),
        )
        .await;
    }
    let r = app.send(req).await;
    assert_eq!(
        r.headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    assert_eq!(
        r.headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"abc-123"[..])
    );
    let r = app.call(Method::GET, "/api/v1/companies", None).await;
    assert!(
        r.headers.contains_key("x-request-id"),
        "generated when absent"
    );
}

#[tokio::test]
async fn brotli_timeout_and_405_are_handled() {
    let app = TestApp::new(common::Backend::Sqlite).await;
    for i in 0..40 {
        app.call(
            Method::POST,
            "/api/v1/companies",
            Some(json!({"name": format!("Co {i}")})),
        )
        .await;
    }
    let req = Request::get("/api/v1/companies?limit=200")
        .header(header::AUTHORIZATION, format!("Bearer {}", common::KEY))
        .header(header::ACCEPT_ENCODING, "br")
        .body(Body::empty())
        .expect("req");
    let r = app.send(req).await;
    assert_eq!(
        r.headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes()),
        Some(&b"br"[..])
    );
    let r = app.call(Method::PATCH, "/api/v1/companies", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.is_problem());

    // The middleware the app installs, on a handler slower than the limit.
    let slow = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                "late"
            }),
        )
        .layer(axum::middleware::from_fn(|req, next| {
            crm_server::ops::with_timeout(std::time::Duration::from_millis(50), req, next)
        }));
    let res = tower::ServiceExt::oneshot(
        slow,
        Request::get("/slow").body(Body::empty()).expect("req"),
    )
    .await
    .expect("infallible");
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn readiness_needs_database_and_no_shutdown() {
    let app = TestApp::new(common::Backend::Sqlite).await;
    let ready = || Request::get("/readyz").body(Body::empty()).expect("req");
    assert_eq!(app.send(ready()).await.status, StatusCode::OK);
    app.state
        .ready
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        app.send(ready()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    app.state
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    app.state.db.pool.close().await;
    assert_eq!(
        app.send(ready()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let live = Request::get("/healthz").body(Body::empty()).expect("req");
    assert_eq!(
        app.send(live).await.status,
        StatusCode::OK,
        "alive without the database"
    );
}

/// A read by id with a browser's Accept-Encoding.
fn browser_get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", common::KEY))
        .header(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")
        .body(Body::empty())
        .expect("req")
}

#[tokio::test]
async fn small_responses_go_out_uncompressed_and_large_ones_compressed() {
    let app = TestApp::new(common::Backend::Sqlite).await;
    let c = app
        .call(
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.io"})),
        )
        .await;
    let id = c.body["id"].as_i64().expect("id");
    let small = app
        .send(browser_get(&format!("/api/v1/contacts/{id}")))
        .await;
    assert_eq!(small.status, StatusCode::OK);
    assert!(
        small.raw.len() < 1024,
        "a contact is small: {} bytes",
        small.raw.len()
    );
    assert_eq!(small.headers.get(header::CONTENT_ENCODING), None);
    assert_eq!(small.body["email"], "ada@acme.io", "plain JSON");

    for i in 0..40 {
        app.call(
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"first_name": "A", "last_name": "B", "email": format!("{i}@b.io")})),
        )
        .await;
    }
    let large = app.send(browser_get("/api/v1/contacts?limit=200")).await;
    assert_eq!(large.status, StatusCode::OK);
    let encoding = large.headers.get(header::CONTENT_ENCODING);
    assert!(
        encoding.is_some_and(|v| v == "br" || v == "gzip"),
        "a 41-contact page is compressed: {encoding:?}"
    );
    assert_eq!(
        large.body,
        serde_json::Value::Null,
        "the body is not plain JSON"
    );
}

#[tokio::test]
async fn the_minimum_size_is_a_setting() {
    let mut app = TestApp::new(common::Backend::Sqlite).await;
    app.state.compress_min_bytes = 0;
    app.router = crm_server::app(app.state.clone());
    let c = app
        .call(
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.io"})),
        )
        .await;
    let id = c.body["id"].as_i64().expect("id");
    let r = app
        .send(browser_get(&format!("/api/v1/contacts/{id}")))
        .await;
    assert!(r.headers.contains_key(header::CONTENT_ENCODING));
}
