//! Demo data is realistic enough to drive every report, and deterministic.

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};

async fn seeded_export(backend: Backend) -> String {
    let app = TestApp::new(backend).await;
    crm_server::seed::seed(&app.state.db, 60)
        .await
        .expect("seed");
    let list = app
        .call(Method::GET, "/api/v1/contacts?limit=200", None)
        .await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(60));
    for report in ["pipeline", "revenue", "tickets", "campaigns"] {
        let r = app
            .call(Method::GET, &format!("/api/v1/reports/{report}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{report}: {:?}", r.body);
    }
    let stats = app
        .call(Method::GET, "/api/v1/reports/tickets", None)
        .await
        .body;
    assert!(stats["average_rating"].as_f64().is_some(), "{stats}");
    // Seeding again adds, without clashing emails.
    crm_server::seed::seed(&app.state.db, 5)
        .await
        .expect("seed again");
    let out = app.call(Method::GET, "/api/v1/contacts.csv", None).await;
    let text = String::from_utf8(out.raw).expect("utf8");
    assert_eq!(text.lines().count(), 66);
    text
}

#[tokio::test]
async fn seed_sqlite_is_deterministic() {
    assert_eq!(
        seeded_export(Backend::Sqlite).await,
        seeded_export(Backend::Sqlite).await
    );
}

#[tokio::test]
async fn seed_postgres_matches_sqlite() {
    assert_eq!(
        seeded_export(Backend::Postgres).await,
        seeded_export(Backend::Sqlite).await
    );
}
