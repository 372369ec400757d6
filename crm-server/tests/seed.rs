//! Demo data is realistic enough to drive every report, and deterministic.

use crate::common;

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
    expect_ticket_stats(&app, &stats).await;
    // Seeding again adds, without clashing emails.
    crm_server::seed::seed(&app.state.db, 5)
        .await
        .expect("seed again");
    let out = app.call(Method::GET, "/api/v1/contacts.csv", None).await;
    let text = String::from_utf8(out.raw).expect("utf8");
    assert_eq!(text.lines().count(), 66);
    text
}

/// The report agrees with the same figures computed here from the tickets
/// themselves, as the API lists them.
async fn expect_ticket_stats(app: &TestApp, stats: &serde_json::Value) {
    let list = app
        .call(Method::GET, "/api/v1/tickets?limit=200", None)
        .await;
    let tickets = list.body["items"].as_array().expect("tickets").clone();
    assert!(
        list.body["next_cursor"].is_null(),
        "one page holds them all"
    );
    let open = tickets
        .iter()
        .filter(|t| t["status"] == "open" || t["status"] == "pending")
        .count();
    let time = |v: &serde_json::Value| v.as_str()?.parse::<jiff::Timestamp>().ok();
    let durations: Vec<f64> = tickets
        .iter()
        .filter_map(|t| {
            let seconds = time(&t["resolved_at"])?.duration_since(time(&t["created_at"])?);
            Some(seconds.as_secs_f64())
        })
        .collect();
    let ratings: Vec<f64> = tickets
        .iter()
        .filter_map(|t| t["rating"].as_f64())
        .collect();
    assert!(
        !durations.is_empty() && !ratings.is_empty(),
        "the seed resolves and rates some"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert_eq!(stats["open"], open as i64, "{stats}");
    assert_eq!(stats["resolved"], (tickets.len() - open) as i64, "{stats}");
    assert_eq!(stats["ratings"], ratings.len() as i64, "{stats}");
    let close = |field: &str, expected: f64| {
        let got = stats[field].as_f64().unwrap_or(f64::NAN);
        assert!(
            (got - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "{field}: {got} from the report, {expected} from the tickets"
        );
    };
    close("average_rating", mean(&ratings));
    close("mean_seconds_to_resolve", mean(&durations));
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
