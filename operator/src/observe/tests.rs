//! Against a stub of Prometheus's HTTP API on loopback.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::*;

/// Answers per query text; unknown queries get an empty vector.
type Answers = Arc<HashMap<String, (StatusCode, String)>>;

async fn answer(
    State(answers): State<Answers>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = params.get("query").cloned().unwrap_or_default();
    match answers.get(&query) {
        Some((status, body)) => (*status, body.clone()).into_response(),
        None => json!({"status": "success", "data": {"resultType": "vector", "result": []}})
            .to_string()
            .into_response(),
    }
}

async fn stub(answers: Vec<(String, StatusCode, serde_json::Value)>) -> String {
    let answers: Answers = Arc::new(
        answers
            .into_iter()
            .map(|(q, s, body)| (q, (s, body.to_string())))
            .collect(),
    );
    let app = axum::Router::new()
        .route("/prom/api/v1/query", axum::routing::get(answer))
        .with_state(answers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/prom/")
}

fn vector(values: &[(&[(&str, &str)], &str)]) -> serde_json::Value {
    let result: Vec<_> = values
        .iter()
        .map(|(labels, v)| {
            let metric: HashMap<_, _> = labels.iter().copied().collect();
            json!({"metric": metric, "value": [1_800_000_000.5, v]})
        })
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

const SELECTOR: &str = "{namespace=\"shop\",tenant=\"acme\"}";

fn ok(
    query: String,
    values: &[(&[(&str, &str)], &str)],
) -> (String, StatusCode, serde_json::Value) {
    (query, StatusCode::OK, vector(values))
}

#[tokio::test]
async fn a_full_sample_reads_every_figure_of_the_tenant() {
    let buckets = format!("{BUCKETS_RULE}{SELECTOR}");
    let url = stub(vec![
        ok(format!("{RATE_RULE}{SELECTOR}"), &[(&[], "120.5")]),
        ok(
            format!("max_over_time({RATE_RULE}{SELECTOR}[7d])"),
            &[(&[], "300")],
        ),
        ok(format!("{CPU_RULE}{SELECTOR}"), &[(&[], "0.3")]),
        ok(
            format!("histogram_quantile(0.95, {buckets})"),
            &[(&[], "0.042")],
        ),
        ok(
            buckets,
            &[
                (&[("le", "0.01")], "50"),
                (&[("le", "0.05")], "100"),
                (&[("le", "+Inf")], "100"),
            ],
        ),
    ])
    .await;
    let prometheus = Prometheus::new(&url).expect("valid URL");
    let sample = prometheus
        .sample("shop", "acme", "7d")
        .await
        .expect("answers");
    assert_eq!(sample.requests_per_second, Some(120.5));
    assert_eq!(sample.peak_requests_per_second, Some(300.0));
    assert_eq!(sample.cpu_cores, Some(0.3));
    assert_eq!(sample.p95_seconds, Some(0.042));
    // Half at 5 ms, half at 30 ms: m1 = 17.5, m2 = 462.5 → 462.5 / 306.25 − 1.
    let scv = sample.scv.expect("two buckets filled");
    assert!((scv - 0.5102).abs() < 1e-3, "{scv}");
}

#[tokio::test]
async fn no_series_and_nan_are_missing_figures_not_errors() {
    let buckets = format!("{BUCKETS_RULE}{SELECTOR}");
    let url = stub(vec![
        ok(format!("{RATE_RULE}{SELECTOR}"), &[(&[], "0")]),
        ok(
            format!("histogram_quantile(0.95, {buckets})"),
            &[(&[], "NaN")],
        ),
        ok(buckets, &[(&[("le", "+Inf")], "NaN")]),
    ])
    .await;
    let sample = Prometheus::new(&url)
        .expect("valid URL")
        .sample("shop", "acme", "7d")
        .await
        .expect("answers");
    assert_eq!(
        sample,
        Sample {
            requests_per_second: Some(0.0),
            ..Sample::default()
        }
    );
}

#[tokio::test]
async fn a_refused_query_names_the_query_and_prometheus_error() {
    let query = format!("max_over_time({RATE_RULE}{SELECTOR}[7x])");
    let url = stub(vec![(
        query.clone(),
        StatusCode::BAD_REQUEST,
        json!({"status": "error", "errorType": "bad_data", "error": "invalid parameter \"query\": bad duration"}),
    )])
    .await;
    let error = Prometheus::new(&url)
        .expect("valid URL")
        .sample("shop", "acme", "7x")
        .await
        .expect_err("refused");
    let ObserveError::Query {
        query: named,
        problem,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(named, &query);
    assert!(
        problem.contains("400") && problem.contains("bad_data") && problem.contains("bad duration"),
        "{problem}"
    );
}

#[tokio::test]
async fn an_overloaded_or_foreign_server_is_an_error_with_its_answer() {
    let rate = format!("{RATE_RULE}{SELECTOR}");
    let url = stub(vec![(
        rate.clone(),
        StatusCode::SERVICE_UNAVAILABLE,
        json!("Service Unavailable"),
    )])
    .await;
    let prometheus = Prometheus::new(&url).expect("valid URL");
    let error = prometheus.query(&rate).await.expect_err("503");
    assert!(error.to_string().contains("503"), "{error}");
    let url = stub(vec![(
        rate.clone(),
        StatusCode::OK,
        json!({"status": "success", "data": {"resultType": "matrix", "result": []}}),
    )])
    .await;
    let error = Prometheus::new(&url)
        .expect("URL")
        .query(&rate)
        .await
        .expect_err("matrix");
    assert!(
        matches!(error, ObserveError::BadResponse { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("matrix"), "{error}");
}

#[tokio::test]
async fn an_unreachable_server_says_where_it_was_looked_for() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("bound");
    drop(listener);
    let url = format!("http://{addr}");
    let error = Prometheus::new(&url)
        .expect("valid URL")
        .sample("shop", "acme", "7d")
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, ObserveError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&url), "{error}");
}

#[test]
fn a_url_that_cannot_be_prometheus_is_refused_up_front() {
    for bad in [
        "prometheus:9090",
        "ftp://host/",
        "http://host/?x=1",
        "http://",
    ] {
        let error = Prometheus::new(bad).expect_err(bad);
        assert!(
            matches!(error, ObserveError::BadUrl { .. }),
            "{bad}: {error:?}"
        );
        assert!(error.to_string().contains("--prometheus-url"), "{error}");
    }
}

#[test]
fn scv_needs_two_filled_buckets_and_little_in_the_open_one() {
    let series = |le: &str, v: f64| Series {
        labels: HashMap::from([("le".to_owned(), le.to_owned())]),
        value: v,
    };
    // All in one bucket: no spread to measure.
    assert_eq!(scv(&[series("0.1", 10.0), series("+Inf", 10.0)]), None);
    // 5 % beyond the last bound: the open bucket hides the tail.
    assert_eq!(
        scv(&[
            series("0.1", 50.0),
            series("1", 95.0),
            series("+Inf", 100.0)
        ]),
        None
    );
    // Order of the series does not matter.
    let a = scv(&[series("+Inf", 4.0), series("0.2", 4.0), series("0.1", 2.0)]);
    let b = scv(&[series("0.1", 2.0), series("0.2", 4.0), series("+Inf", 4.0)]);
    assert_eq!(a, b);
    // Midpoints 0.05 and 0.15, equal weights: m1 = 0.1, m2 = 0.0125 → 0.25.
    let value = a.expect("two buckets");
    assert!((value - 0.25).abs() < 1e-9, "{value}");
}

#[test]
fn query_text_is_percent_encoded() {
    assert_eq!(encode("a{b=\"c\"}[7d]"), "a%7Bb%3D%22c%22%7D%5B7d%5D");
    assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
}
