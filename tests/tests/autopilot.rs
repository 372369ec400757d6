//! Autopilot and `status.observed`: the real controller against the API
//! double, reading a stub of Prometheus's HTTP API on loopback.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::harness::*;
use axum::extract::{Query, State};
use crm_operator::observe::{BUCKETS_RULE, CPU_RULE, RATE_RULE};

/// Prometheus as the operator reads it: one value per recording rule.
#[derive(Clone, Default)]
struct Figures {
    rate: f64,
    peak: f64,
    cores: f64,
    p95: f64,
}

async fn query(
    State(figures): State<Arc<Mutex<Figures>>>,
    Query(params): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let figures = figures.lock().expect("figures").clone();
    let query = params.get("query").cloned().unwrap_or_default();
    let value = if query.starts_with("max_over_time(") {
        Some(figures.peak)
    } else if query.starts_with("histogram_quantile(") {
        Some(figures.p95)
    } else if query.starts_with(RATE_RULE) {
        Some(figures.rate)
    } else if query.starts_with(CPU_RULE) {
        Some(figures.cores)
    } else {
        assert!(query.starts_with(BUCKETS_RULE), "unexpected query {query}");
        None
    };
    let result: Vec<Value> = value
        .into_iter()
        .map(|v| json!({"metric": {}, "value": [1.8e9, v.to_string()]}))
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
}

async fn prometheus(figures: Figures) -> String {
    let app = axum::Router::new()
        .route("/api/v1/query", axum::routing::get(query))
        .with_state(Arc::new(Mutex::new(figures)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn with_prometheus(url: &str) -> Settings {
    Settings {
        prometheus_url: Some(url.to_owned()),
        ..Settings::default()
    }
}

/// Restarts the controller on the same API server with other settings.
async fn restart(operator: Operator, settings: Settings) -> Operator {
    let double = operator.double.clone();
    operator.shutdown().await;
    Operator::start_on(double, settings)
}

fn autopilot_condition(
    operator: &Operator,
    tenant: &CrmTenant,
) -> Option<(String, String, String)> {
    let status = operator.tenant(tenant).status?;
    let c = status
        .conditions
        .into_iter()
        .find(|c| c.type_ == condition::AUTOPILOT)?;
    Some((c.status, c.reason, c.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_load_is_reported_beside_the_model_without_changing_the_sizing() {
    let operator = Operator::start();
    let tenant = example("growth-managed");
    let ready = operator.ready(&tenant).await;
    let sized = ready.status.and_then(|s| s.sizing).expect("sizing");
    // 100 req/s on 0.3 cores over two ready replicas: 3 ms per request; the
    // model says 5 + 1000 ln 20 / (250 − 50) = 19.98 ms, Prometheus 50 ms.
    let url = prometheus(Figures {
        rate: 100.0,
        peak: 240.0,
        cores: 0.3,
        p95: 0.05,
    })
    .await;
    let operator = restart(operator, with_prometheus(&url)).await;
    let observed = operator
        .eventually("status.observed", |op| op.tenant(&tenant).status?.observed)
        .await;
    assert_eq!(observed.requests_per_second, 100.0);
    assert_eq!(observed.peak_requests_per_second, 240.0);
    assert_eq!(observed.request_cpu_millis, Some(3.0));
    assert_eq!(observed.p95_latency_ms, Some(50.0));
    assert_eq!(observed.model_p95_latency_ms, Some(19.98));
    assert_eq!(observed.model_error_percent, Some(-60.0));
    let status = operator.tenant(&tenant).status.expect("status");
    assert_eq!(
        status.sizing,
        Some(sized),
        "autopilot is off: the spec sizes"
    );
    assert_eq!(status.autopilot, None);
    assert_eq!(autopilot_condition(&operator, &tenant), None);

    // Within the interval, nothing is measured again and nothing is written.
    operator.quiet().await;
    operator.double.clear_log();
    for round in 0..5 {
        let before = operator.metrics.reconciles(Outcome::Ok);
        operator.nudge(&tenant, &round.to_string());
        operator.reconciled(before, 1).await;
    }
    assert_eq!(
        operator.double.count_writes(),
        0,
        "a settled tenant between samples"
    );
    let again = operator.tenant(&tenant).status.and_then(|s| s.observed);
    assert_eq!(again.map(|o| o.sampled_at), Some(observed.sampled_at));
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autopilot_resizes_by_a_bounded_step_and_waits_out_an_unreachable_prometheus() {
    let mut tenant = example("growth-managed");
    tenant.spec.autopilot = Some(crm_crds::AutopilotSpec {
        enabled: true,
        ..Default::default()
    });
    // No --prometheus-url: the spec sizes it, and the condition says why.
    let operator = Operator::start();
    let ready = operator.ready(&tenant).await;
    let sized = ready.status.and_then(|s| s.sizing).expect("sizing");
    assert_eq!(
        (sized.replicas, sized.min_replicas, sized.max_replicas),
        (2, 2, 3)
    );
    let (status, reason, message) = autopilot_condition(&operator, &tenant).expect("condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "MetricsUnavailable")
    );
    assert!(message.contains("--prometheus-url"), "{message}");

    // Prometheus unreachable: nothing changes, and the condition names it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let nowhere = format!("http://{}", closed.local_addr().expect("bound"));
    drop(closed);
    let operator = restart(operator, with_prometheus(&nowhere)).await;
    let message = operator
        .eventually("the unreachable Prometheus in the condition", |op| {
            let (_, reason, message) = autopilot_condition(op, &tenant)?;
            (reason == "MetricsUnavailable" && message.contains(&nowhere)).then_some(message)
        })
        .await;
    assert!(message.contains("unreachable"), "{message}");
    let status = operator.tenant(&tenant).status.expect("status");
    assert_eq!(status.sizing, Some(sized.clone()));
    assert_eq!((status.autopilot, status.observed), (None, None));

    // Four times the spec's peak at three times its cost: one interval moves
    // each figure by half at most (450 req/s, 3 ms), so 2 → 4 replicas.
    let url = prometheus(Figures {
        rate: 400.0,
        peak: 1200.0,
        cores: 2.4,
        p95: 0.09,
    })
    .await;
    let operator = restart(operator, with_prometheus(&url)).await;
    let learned = operator
        .eventually("autopilot's figures", |op| {
            op.tenant(&tenant).status?.autopilot
        })
        .await;
    assert_eq!(
        (
            learned.request_cpu_millis,
            learned.peak_requests_per_second,
            learned.samples
        ),
        (3.0, 450.0, 1)
    );
    assert_eq!(
        learned.service_time_scv,
        Some(1.0),
        "no buckets, no estimate: the spec's scv"
    );
    let resized = operator
        .eventually("the new sizing", |op| {
            op.sizing(&tenant).filter(|s| s.replicas != sized.replicas)
        })
        .await;
    assert_eq!(
        (resized.replicas, resized.min_replicas, resized.max_replicas),
        (4, 2, 5)
    );
    assert!(
        resized.replicas <= 2 * sized.replicas,
        "at most twice per interval"
    );
    let hpa = operator
        .eventually("the HPA's new maximum", |op| {
            op.get::<HorizontalPodAutoscaler>(&tenant, "")
                .filter(|h| h.spec.as_ref().is_some_and(|s| s.max_replicas == 5))
        })
        .await;
    assert_eq!(hpa.spec.and_then(|s| s.min_replicas), Some(2));
    let (status, reason, message) = autopilot_condition(&operator, &tenant).expect("condition");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Calibrated"));
    assert!(
        message.contains("450 req/s") && message.contains("3 ms"),
        "{message}"
    );
    let note = operator
        .eventually("the resize Event", |op| {
            let ns = tenant.namespace().expect("namespace");
            op.double
                .list_objects::<Event>(&ns)
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("AutopilotResized"))
                .and_then(|e| e.note)
        })
        .await;
    assert!(
        note.contains("2 → 4") && note.contains("450 req/s") && note.contains("300 req/s"),
        "{note}"
    );
    operator.shutdown().await;
}
