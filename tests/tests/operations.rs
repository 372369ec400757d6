//! Running the operator as a platform team does: two replicas electing a
//! leader on a Lease, the telemetry endpoints over real HTTP, and the RBAC
//! its requests need — all against the API-server double.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use crm_crds::CrmTenant;
use crm_operator::client::ApiMetricsLayer;
use crm_operator::controller::{self, Settings};
use crm_operator::leader::{self, Election, ElectionError};
use crm_operator::metrics::{Metrics, Outcome};
use crm_operator::rbac;
use crm_operator::server::{self, Telemetry};
use crm_tests::{ApiDouble, DoubleBody};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::{Layer, Service};

const CONVERGE: Duration = Duration::from_secs(30);
const LEASE_NAMESPACE: &str = "crm-operator-system";
/// Short leases keep the tests quick: renewed every second, gone after two.
const LEASE_SECS: u64 = 2;

/// The double as one operator replica sees it: requests recorded, and a
/// switch that makes every request hang, as for a replica that died or
/// lost its network.
#[derive(Clone, Debug)]
struct Link {
    double: ApiDouble,
    dead: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl Link {
    fn new(double: &ApiDouble) -> Self {
        Self {
            double: double.clone(),
            dead: Arc::new(AtomicBool::new(false)),
            requests: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn client(&self, metrics: &Arc<Metrics>) -> kube::Client {
        let service = ApiMetricsLayer::new(metrics.clone()).layer(self.clone());
        kube::Client::new(service, "default")
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Service<http::Request<kube::client::Body>> for Link {
    type Response = http::Response<DoubleBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        if self.dead.load(Ordering::Acquire) {
            return Box::pin(futures::future::pending());
        }
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((request.method().as_str().to_owned(), path));
        self.double.call(request)
    }
}

/// One replica of `crm-operator run --leader-election`.
struct Replica {
    link: Link,
    metrics: Arc<Metrics>,
    standby: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ElectionError>>,
}

impl Replica {
    fn start(double: &ApiDouble, identity: &str) -> Self {
        let link = Link::new(double);
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let standby = Arc::new(AtomicBool::new(false));
        let (stop, stopping) = watch::channel(false);
        let election = Election {
            lease_name: "crm-operator".into(),
            namespace: LEASE_NAMESPACE.into(),
            identity: identity.into(),
            duration_secs: LEASE_SECS,
            renew_before_secs: 1,
        };
        let settings = Settings {
            default_image: Some("crm-server:test".into()),
            ..Settings::default()
        };
        let task = tokio::spawn(leader::run(
            link.client(&metrics),
            settings,
            election,
            metrics.clone(),
            standby.clone(),
            stopping,
        ));
        Self {
            link,
            metrics,
            standby,
            stop,
            task,
        }
    }

    fn leads(&self) -> bool {
        self.metrics.is_leader()
    }

    fn stands_by(&self) -> bool {
        self.standby.load(Ordering::Acquire)
    }

    fn reconciles(&self) -> u64 {
        self.metrics.reconciles(Outcome::Ok) + self.metrics.reconciles(Outcome::Error)
    }

    /// SIGTERM: stop the controller, release the lease, return.
    async fn shutdown(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(CONVERGE, self.task)
            .await
            .expect("the replica stops on shutdown")
            .expect("the replica does not panic")
            .expect("the election ends cleanly");
    }
}

async fn eventually<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn example(name: &str) -> CrmTenant {
    crm_tests::example(name)
}

async fn create(double: &ApiDouble, tenant: &CrmTenant) {
    let api: Api<CrmTenant> =
        Api::namespaced(double.client(), &tenant.namespace().expect("namespace"));
    api.create(&PostParams::default(), tenant)
        .await
        .expect("create the tenant");
}

fn holder(double: &ApiDouble) -> Option<String> {
    double
        .get_object::<Lease>(LEASE_NAMESPACE, "crm-operator")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_the_standby_takes_over_when_it_stops() {
    let double = ApiDouble::new();
    let a = Replica::start(&double, "replica-a");
    eventually("replica-a to lead", CONVERGE, || a.leads().then_some(())).await;
    let b = Replica::start(&double, "replica-b");
    eventually("replica-b to stand by", CONVERGE, || {
        b.stands_by().then_some(())
    })
    .await;

    create(&double, &example("starter-embedded")).await;
    eventually("replica-a to reconcile", CONVERGE, || {
        (a.metrics.reconciles(Outcome::Ok) > 0).then_some(())
    })
    .await;
    // Several lease periods: the leader renews, the standby only waits.
    tokio::time::sleep(Duration::from_secs(LEASE_SECS * 2)).await;
    assert!(a.leads() && !b.leads());
    assert_eq!(holder(&double).as_deref(), Some("replica-a"));
    assert_eq!(b.reconciles(), 0, "the standby reconciled");
    let b_writes = b
        .link
        .requests()
        .iter()
        .filter(|(verb, path)| verb != "GET" && !path.contains("/leases"))
        .count();
    assert_eq!(
        b_writes,
        0,
        "the standby wrote something: {:?}",
        b.link.requests()
    );

    let a_metrics = a.metrics.clone();
    a.shutdown().await;
    assert_ne!(
        holder(&double).as_deref(),
        Some("replica-a"),
        "a replica shutting down releases the lease"
    );
    assert!(!a_metrics.is_leader());
    eventually(
        "replica-b to take over",
        Duration::from_secs(LEASE_SECS + 3),
        || b.leads().then_some(()),
    )
    .await;
    eventually("replica-b to reconcile", CONVERGE, || {
        (b.metrics.reconciles(Outcome::Ok) > 0).then_some(())
    })
    .await;
    assert_eq!(holder(&double).as_deref(), Some("replica-b"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_within_the_lease_duration_when_the_leader_dies() {
    let double = ApiDouble::new();
    let a = Replica::start(&double, "replica-a");
    eventually("replica-a to lead", CONVERGE, || a.leads().then_some(())).await;
    let b = Replica::start(&double, "replica-b");
    eventually("replica-b to stand by", CONVERGE, || {
        b.stands_by().then_some(())
    })
    .await;
    create(&double, &example("starter-embedded")).await;
    eventually("replica-a to reconcile", CONVERGE, || {
        (a.metrics.reconciles(Outcome::Ok) > 0).then_some(())
    })
    .await;

    // The leader stops answering without releasing anything.
    a.link.dead.store(true, Ordering::Release);
    let died = tokio::time::Instant::now();
    // A renewed lease lasts LEASE_SECS from its last renewal; the standby
    // looks again when it expires and waits up to a second before taking it.
    eventually(
        "replica-b to take over",
        Duration::from_secs(LEASE_SECS + 3),
        || b.leads().then_some(()),
    )
    .await;
    assert!(
        died.elapsed() >= Duration::from_millis(500),
        "the standby took a lease that was still valid"
    );
    assert_eq!(holder(&double).as_deref(), Some("replica-b"));
    // The cut-off leader could not confirm its lease, so it stopped its
    // controller before the lease could have run out, and gives up.
    assert!(!a.leads(), "the cut-off replica still runs its controller");
    let ended = tokio::time::timeout(CONVERGE, a.task)
        .await
        .expect("the cut-off replica gives up")
        .expect("no panic");
    assert!(matches!(ended, Err(ElectionError::LeaseLost)), "{ended:?}");
    eventually("replica-b to reconcile", CONVERGE, || {
        (b.metrics.reconciles(Outcome::Ok) > 0).then_some(())
    })
    .await;
    b.shutdown().await;
}

/// A GET over a real TCP connection: status code, headers, body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the endpoints");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("headers, then a body");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_exposes_reconciles_tenants_and_api_requests_after_a_reconcile() {
    let double = ApiDouble::new();
    let link = Link::new(&double);
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let telemetry = Telemetry::new(metrics.clone());
    let listener = server::bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("the bound address");
    let (stop, stopping) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let endpoints = tokio::spawn(server::serve(
        listener,
        telemetry.clone(),
        wait(stopping.clone()),
    ));

    let (code, _, _) = get(addr, "/healthz").await;
    assert_eq!(code, 200);
    let (code, _, _) = get(addr, "/readyz").await;
    assert_eq!(code, 503, "not ready before the caches are filled");

    let settings = Settings {
        default_image: Some("crm-server:test".into()),
        ..Settings::default()
    };
    let controller = tokio::spawn(controller::run(
        link.client(&metrics),
        settings,
        metrics.clone(),
        wait(stopping),
    ));
    let tenant = example("starter-embedded");
    create(&double, &tenant).await;
    eventually("a reconcile", CONVERGE, || {
        (metrics.reconciles(Outcome::Ok) > 0 && metrics.is_synced()).then_some(())
    })
    .await;
    let (code, _, _) = get(addr, "/readyz").await;
    assert_eq!(code, 200);

    // The tenant's phase reaches the cache with the status write's event.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let (code, head, body) = loop {
        let response = get(addr, "/metrics").await;
        let phased = response.2.lines().any(|line| {
            line.starts_with("crm_operator_tenant_phase{")
                && line.contains(r#"tenant="corner-bakery""#)
                && !line.contains(r#"phase="Unknown""#)
        });
        if phased || tokio::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, 200);
    assert!(head.contains("content-type: text/plain"), "{head}");
    for series in [
        r#"crm_operator_reconciles_total{result="ok"}"#,
        r#"crm_operator_reconcile_duration_seconds_bucket{result="ok",le="0.005"}"#,
        r#"crm_operator_reconcile_duration_seconds_count{result="ok"}"#,
        r#"crm_operator_api_requests_total{code="200",verb="list"}"#,
        r#"crm_operator_api_requests_total{code="200",verb="watch"}"#,
        r#"crm_operator_api_requests_total{code="201",verb="patch"}"#,
        r#"crm_operator_child_writes_total{action="apply"}"#,
        r#"crm_operator_caches_synced 1"#,
        r#"crm_operator_tenant_capacity_requests_per_second{namespace="crm-tenants",tenant="corner-bakery"}"#,
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    let tenants: i64 = body
        .lines()
        .filter(|l| l.starts_with("crm_operator_tenants{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(tenants, 1, "one tenant counted across phases:\n{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("crm_operator_tenant_phase{")
                && l.contains(r#"tenant="corner-bakery""#)
                && !l.contains(r#"phase="Unknown""#)
                && l.ends_with(" 1")),
        "the tenant's phase:\n{body}"
    );
    assert!(
        !body.contains("secret") && !body.contains("password"),
        "no credential material in metrics"
    );

    let _ = stop.send(true);
    tokio::time::timeout(CONVERGE, controller)
        .await
        .expect("the controller stops")
        .expect("no panic");
    tokio::time::timeout(CONVERGE, endpoints)
        .await
        .expect("the endpoints stop")
        .expect("no panic")
        .expect("served without error");
    assert!(!metrics.is_synced(), "a stopped controller is not synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_the_operator_makes_is_granted_by_its_rbac_table() {
    let double = ApiDouble::new();
    // The Shared example's server: the test command's PostgreSQL.
    double.put_secret(
        crm_operator::controller::DEFAULT_SHARED_SERVERS_NAMESPACE,
        "pg-main",
        "url",
        &crm_tests::test_postgres_url(),
    );
    let replica = Replica::start(&double, "replica-a");
    eventually("the replica to lead", CONVERGE, || {
        replica.leads().then_some(())
    })
    .await;
    let tenants = [
        "starter-embedded",
        "growth-managed",
        "growth-external",
        "enterprise-shared",
    ]
    .map(example);
    for tenant in &tenants {
        create(&double, tenant).await;
    }
    for tenant in &tenants {
        let ns = tenant.namespace().expect("namespace");
        eventually("the tenant's Deployment", CONVERGE, || {
            double.get_object::<Deployment>(&ns, &tenant.name_any())
        })
        .await;
    }
    // Something to prune: the HPA of a tenant that stops autoscaling.
    let managed = &tenants[1];
    let ns = managed.namespace().expect("namespace");
    assert!(
        double
            .get_object::<HorizontalPodAutoscaler>(&ns, &managed.name_any())
            .is_some()
    );
    Api::<CrmTenant>::namespaced(double.client(), &ns)
        .patch(
            &managed.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "autoscaling": { "enabled": false } } })),
        )
        .await
        .expect("patch the tenant");
    eventually("the HPA pruned", CONVERGE, || {
        double
            .get_object::<HorizontalPodAutoscaler>(&ns, &managed.name_any())
            .is_none()
            .then_some(())
    })
    .await;
    let link = replica.link.clone();
    replica.shutdown().await;

    let used: BTreeSet<rbac::Permission> = link
        .requests()
        .iter()
        .filter_map(|(verb, path)| rbac::permission(verb, path))
        .collect();
    let denied: Vec<&rbac::Permission> = used.iter().filter(|p| !rbac::granted(p)).collect();
    assert!(
        denied.is_empty(),
        "requests operator/src/rbac.rs (and so config/rbac) does not grant: {denied:#?}"
    );
    for expected in [
        ("crm.tenancy.dev", "crmtenants/status", "patch"),
        ("apps", "deployments", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "delete"),
        ("events.k8s.io", "events", "create"),
        ("coordination.k8s.io", "leases", "patch"),
    ] {
        assert!(
            used.iter()
                .any(|p| (p.group.as_str(), p.resource.as_str(), p.verb) == expected),
            "{expected:?} was exercised"
        );
    }
    // No resource in the table that the operator never touches, but the
    // finalizers subresource (authorised on owner references with
    // blockOwnerDeletion, which is no request of its own).
    let touched: BTreeSet<(&str, &str)> = used
        .iter()
        .map(|p| (p.group.as_str(), p.resource.as_str()))
        .collect();
    for rule in rbac::RULES {
        if rule.resource == "crmtenants/finalizers" {
            continue;
        }
        assert!(
            touched.contains(&(rule.group, rule.resource)),
            "{}/{} is granted but never used",
            rule.group,
            rule.resource
        );
    }
}

/// Waits until the operator has made no write for `quiet`, and returns how
/// many it made so far.
async fn settled(link: &Link, quiet: Duration) -> usize {
    let writes = || {
        link.requests()
            .iter()
            .filter(|(verb, _)| verb != "GET")
            .count()
    };
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let mut last = writes();
    loop {
        tokio::time::sleep(quiet).await;
        let now = writes();
        if now == last {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator never settled"
        );
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_same_manifest_twice_changes_nothing_and_the_operator_writes_only_status() {
    let double = ApiDouble::new();
    let link = Link::new(&double);
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (stop, stopping) = watch::channel(false);
    let settings = Settings {
        default_image: Some("crm-server:test".into()),
        ..Settings::default()
    };
    let controller = tokio::spawn(controller::run(
        link.client(&metrics),
        settings,
        metrics.clone(),
        async move {
            let mut stopping = stopping;
            let _ = stopping.wait_for(|s| *s).await;
        },
    ));
    // What a GitOps tool does on every sync: server-side apply of the manifest.
    let manifest = example("growth-managed");
    let ns = manifest.namespace().expect("namespace");
    let tenants: Api<CrmTenant> = Api::namespaced(double.client(), &ns);
    let sync = || async {
        tenants
            .patch(
                &manifest.name_any(),
                &PatchParams::apply("gitops").force(),
                &Patch::Apply(&manifest),
            )
            .await
            .expect("apply the manifest")
    };
    sync().await;
    eventually("the tenant's status", CONVERGE, || {
        double
            .get_object::<CrmTenant>(&ns, &manifest.name_any())
            .and_then(|t| t.status?.phase)
    })
    .await;
    let before = settled(&link, Duration::from_millis(500)).await;
    assert!(before > 0, "the operator created the tenant's objects");
    let stored = double
        .get_object::<CrmTenant>(&ns, &manifest.name_any())
        .expect("the tenant");

    sync().await;
    let after = settled(&link, Duration::from_millis(500)).await;
    assert_eq!(
        after - before,
        0,
        "a second sync of the same manifest made the operator write: {:?}",
        &link.requests()[before..]
    );
    let again = double
        .get_object::<CrmTenant>(&ns, &manifest.name_any())
        .expect("the tenant");
    assert_eq!(again.status, stored.status, "status churned");
    // The spec and metadata in Git are the operator's to read, never to write.
    assert_eq!(
        serde_json::to_value(&again.spec).expect("spec"),
        serde_json::to_value(&manifest.spec).expect("spec")
    );
    assert_eq!(again.labels(), manifest.labels());
    assert_eq!(again.annotations(), manifest.annotations());
    assert!(again.finalizers().is_empty());
    let tenant_writes: Vec<(String, String)> = link
        .requests()
        .into_iter()
        .filter(|(verb, path)| verb != "GET" && path.contains("/crmtenants/"))
        .filter(|(_, path)| {
            !path
                .split('?')
                .next()
                .unwrap_or_default()
                .ends_with("/status")
        })
        .collect();
    assert!(
        tenant_writes.is_empty(),
        "writes to the tenant itself: {tenant_writes:?}"
    );

    let _ = stop.send(true);
    tokio::time::timeout(CONVERGE, controller)
        .await
        .expect("the controller stops")
        .expect("no panic");
}

/// Log lines collected in memory.
#[derive(Clone, Debug, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

// One thread, so the test's log subscriber sees every task of the controller.
#[tokio::test(flavor = "current_thread")]
async fn json_logs_name_the_tenant_and_a_trace_id_and_never_a_credential() {
    use base64::Engine;
    use crm_operator::cli::{LogFormat, log_subscriber};

    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = log_subscriber(
        LogFormat::Json,
        tracing_subscriber::EnvFilter::new("debug"),
        move || writer.clone(),
    );
    let _default = tracing::subscriber::set_default(subscriber);

    let double = ApiDouble::new();
    let link = Link::new(&double);
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (stop, mut stopping) = watch::channel(false);
    let settings = Settings {
        default_image: Some("crm-server:test".into()),
        ..Settings::default()
    };
    let controller = tokio::spawn(controller::run(
        link.client(&metrics),
        settings,
        metrics.clone(),
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        },
    ));
    let tenant = example("starter-embedded");
    create(&double, &tenant).await;
    eventually("a reconcile", CONVERGE, || {
        (metrics.reconciles(Outcome::Ok) > 0).then_some(())
    })
    .await;
    let _ = stop.send(true);
    tokio::time::timeout(CONVERGE, controller)
        .await
        .expect("the controller stops")
        .expect("no panic");

    let text = lines.text();
    let mut trace_ids = BTreeSet::new();
    for line in text.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if entry["span"]["name"] == "reconcile" {
            assert_eq!(entry["span"]["tenant"], "corner-bakery", "{line}");
            assert_eq!(entry["span"]["namespace"], "crm-tenants", "{line}");
            let id = entry["span"]["trace_id"].as_str().expect("a trace id");
            assert!(
                id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "{id}"
            );
            trace_ids.insert(id.to_owned());
        }
    }
    assert!(!trace_ids.is_empty(), "no line inside a reconcile:\n{text}");
    assert!(!trace_ids.contains(&"0".repeat(32)), "random trace ids");

    let secret: k8s_openapi::api::core::v1::Secret = double
        .get_object("crm-tenants", "corner-bakery-api")
        .expect("the API key Secret");
    for value in secret.data.iter().flatten().map(|(_, v)| &v.0) {
        let plain = String::from_utf8_lossy(value);
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        assert!(!text.contains(plain.as_ref()), "a credential in the logs");
        assert!(
            !text.contains(&encoded),
            "an encoded credential in the logs"
        );
    }
}
