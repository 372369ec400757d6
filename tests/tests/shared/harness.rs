//! Helpers of the Shared-mode tests: the test server, log capture, the
//! controller against a double, and a relay that can take the server away.

pub use std::collections::BTreeMap;
pub use std::io::Write;
pub use std::str::FromStr;
pub use std::sync::{Arc, Mutex, OnceLock};
pub use std::time::Duration;

pub use base64::Engine;
pub use crm_crds::{CrmTenant, Phase, annotation, condition};
pub use crm_operator::controller::{self, Settings};
pub use crm_operator::database::provision::FINALIZER;
pub use crm_operator::database::scram;
pub use crm_operator::database::shared::{Change, SharedServer};
pub use crm_operator::database::sql::{self, quote_identifier, quote_literal};
pub use crm_operator::metrics::{Metrics, Outcome};
pub use crm_tests::{ApiDouble, test_postgres_url};
pub use k8s_openapi::api::apps::v1::Deployment;
pub use k8s_openapi::api::core::v1::Secret;
pub use k8s_openapi::api::events::v1::Event;
pub use kube::api::{Patch, PatchParams, PostParams};
pub use kube::{Api, ResourceExt};
pub use serde_json::{Value, json};
pub use sqlx::postgres::{PgConnectOptions, PgConnection};
pub use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
pub use tokio::sync::oneshot;
pub use tokio::task::JoinHandle;

/// How long the operator gets to converge before a test fails.
pub const CONVERGE: Duration = Duration::from_secs(40);
/// The registered name of the test server.
pub const SERVER: &str = "pg-test";

// ---------------------------------------------------------------- helpers

pub async fn superuser() -> PgConnection {
    PgConnection::connect(&test_postgres_url())
        .await
        .expect("connect to the test PostgreSQL as its superuser")
}

pub async fn scalar<T>(conn: &mut PgConnection, sql: &str, bind: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .bind(bind)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn role_exists(conn: &mut PgConnection, role: &str) -> bool {
    scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
        role,
    )
    .await
}

pub async fn database_exists(conn: &mut PgConnection, database: &str) -> bool {
    scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        database,
    )
    .await
}

/// The SQLSTATE of a failed connection or statement.
pub fn sqlstate<T>(result: Result<T, sqlx::Error>) -> String {
    match result {
        Ok(_) => "success".to_owned(),
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(e) => format!("not a database error: {e}"),
    }
}

pub async fn login(url: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(url)?.connect().await
}

pub fn server() -> SharedServer {
    SharedServer::new(SERVER, &test_postgres_url()).expect("the test URL is valid")
}

/// Everything the operator logs, from the first operator test on.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buffer
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- operator

/// The controller running against a fresh double, with the test server
/// registered as the shared server `pg-test`.
pub struct Operator {
    pub double: ApiDouble,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Operator {
    pub fn start() -> Self {
        Self::start_with_url(&test_postgres_url())
    }

    pub fn start_with_url(url: &str) -> Self {
        captured_logs();
        let double = ApiDouble::new();
        let settings = Settings {
            default_image: Some("crm-server:test".into()),
            shared_servers_namespace: "crm-system".into(),
            ..Settings::default()
        };
        double.put_secret("crm-system", SERVER, "url", url);
        let (stop, stopped) = oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let task = tokio::spawn(controller::run(
            double.client(),
            settings,
            metrics.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            double,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    /// Points the registration at another admin URL.
    pub fn register(&self, url: &str) {
        self.double.put_secret("crm-system", SERVER, "url", url);
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(CONVERGE, &mut self.task)
            .await
            .expect("the controller stops on shutdown")
            .expect("the controller task does not panic");
    }

    pub fn api(&self, tenant: &CrmTenant) -> Api<CrmTenant> {
        Api::namespaced(
            self.double.client(),
            &tenant.namespace().expect("namespace"),
        )
    }

    pub async fn create(&self, tenant: &CrmTenant) {
        self.api(tenant)
            .create(&PostParams::default(), tenant)
            .await
            .expect("create the tenant");
    }

    pub async fn patch(&self, tenant: &CrmTenant, patch: Value) {
        self.api(tenant)
            .patch(
                &tenant.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("patch the tenant");
    }

    pub async fn delete(&self, tenant: &CrmTenant) {
        self.api(tenant)
            .delete(&tenant.name_any(), &Default::default())
            .await
            .expect("delete the tenant");
    }

    pub fn stored(&self, tenant: &CrmTenant) -> Option<CrmTenant> {
        self.get(tenant, "")
    }

    pub fn get<K>(&self, tenant: &CrmTenant, suffix: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        let ns = tenant.namespace().expect("namespace");
        self.double
            .get_object::<K>(&ns, &format!("{}{suffix}", tenant.name_any()))
    }

    pub async fn eventually<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        crm_tests::eventually(
            &self.double,
            what,
            CONVERGE,
            Duration::from_millis(50),
            || check(self),
        )
        .await
    }

    /// `(status, reason, message)` of a condition of the stored tenant.
    pub fn condition(&self, tenant: &CrmTenant, type_: &str) -> Option<(String, String, String)> {
        let stored = self.stored(tenant)?;
        let found = stored
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)?;
        Some((found.status, found.reason, found.message))
    }

    /// Waits for DatabaseReady to have this status and reason.
    pub async fn database(&self, tenant: &CrmTenant, status: &str, reason: &str) -> String {
        let what = format!("DatabaseReady {status}/{reason} of {}", tenant.name_any());
        self.eventually(&what, |op| {
            let (s, r, message) = op.condition(tenant, condition::DATABASE_READY)?;
            (s == status && r == reason).then_some(message)
        })
        .await
    }

    /// The `<t>-db` Secret's keys, once it holds a URL.
    pub async fn credentials(&self, tenant: &CrmTenant) -> BTreeMap<String, String> {
        self.eventually("the database Secret with a url", |op| {
            let secret = op.get::<Secret>(tenant, "-db")?;
            let data = secret_data(&secret);
            data.contains_key("url").then_some(data)
        })
        .await
    }

    pub async fn gone(&self, tenant: &CrmTenant) {
        self.eventually("the tenant removed", |op| {
            op.stored(tenant).is_none().then_some(())
        })
        .await;
    }

    pub fn event_reasons(&self, tenant: &CrmTenant) -> Vec<String> {
        self.events(tenant)
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    pub fn events(&self, tenant: &CrmTenant) -> Vec<Event> {
        let ns = tenant.namespace().expect("namespace");
        let mut events: Vec<Event> = self.double.list_objects::<Event>(&ns);
        events.retain(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&tenant.name_any())
        });
        events
    }

    /// No secret, plain or base64, in the logs, in the tenant's Events or
    /// in its status.
    pub fn assert_nothing_leaks(&self, tenant: &CrmTenant, secrets: &[&str]) {
        let logs = String::from_utf8_lossy(&captured_logs().lock().expect("logs")).into_owned();
        assert!(!logs.is_empty(), "logs are captured");
        let events = serde_json::to_string(&self.events(tenant)).expect("json");
        let status = serde_json::to_string(&self.stored(tenant).map(|t| t.status)).expect("json");
        for secret in secrets {
            let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
            for (place, text) in [("logs", &logs), ("Events", &events), ("status", &status)] {
                assert!(!text.contains(secret), "a password in the {place}");
                assert!(!text.contains(&encoded), "a base64 password in the {place}");
            }
        }
    }
}

impl Operator {
    /// Plays the Deployment, StatefulSet and Job controllers through a move
    /// of the tenant's data that has begun: the read-only rollout, the new
    /// PostgreSQL ready, and the copy Job completed.
    pub async fn migrated(&self, tenant: &CrmTenant) {
        use k8s_openapi::api::batch::v1::Job;
        let ns = tenant.namespace().expect("namespace");
        let name = tenant.name_any();
        let generation = self
            .eventually("a read-only Deployment", |op| {
                let d = op.get::<Deployment>(tenant, "")?;
                let env = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                    .env
                    .clone()?;
                env.iter()
                    .any(|e| e.name == "CRM_READ_ONLY")
                    .then_some(d.metadata.generation)
                    .flatten()
            })
            .await;
        self.double.report_ready(&ns, &name, 1, generation);
        let start = format!("{name}-migrate-");
        let job = self
            .eventually("the copy Job", |op| {
                op.double
                    .list_objects::<Job>(&ns)
                    .into_iter()
                    .find(|j| j.name_any().starts_with(&start))
            })
            .await;
        let done = json!({ "conditions": [{ "type": "Complete", "status": "True" }] });
        assert!(self.double.set_status::<Job>(&ns, &job.name_any(), done));
    }
}

pub fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

pub fn tenant(namespace: &str, name: &str, deletion_policy: &str) -> CrmTenant {
    serde_json::from_value(json!({
        "apiVersion": "crm.tenancy.dev/v1alpha1", "kind": "CrmTenant",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "tier": "Growth",
            "load": { "peakRequestsPerSecond": 100 },
            "database": {
                "mode": "Shared", "shared": { "server": SERVER },
                "deletionPolicy": deletion_policy,
            },
        },
    }))
    .expect("tenant")
}

pub fn config_hash(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("crm.tenancy.dev/config-hash")
        .cloned()
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

pub fn statefulset_hash(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("crm.tenancy.dev/config-hash")
        .cloned()
}

/// A TCP relay in front of the test server that can be stopped and started
/// again: stopped, it ends every open connection and refuses new ones, as a
/// server that went down mid-way would.
pub struct Relay {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    pub async fn start() -> Self {
        let target = PgConnectOptions::from_str(&test_postgres_url()).expect("url");
        let target = format!("{}:{}", target.get_host(), target.get_port());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = watch.clone();
                if !*watch.borrow() {
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { port, up }
    }

    pub fn url(&self) -> String {
        let mut url = PgConnectOptions::from_str(&test_postgres_url()).expect("url");
        url = url.port(self.port);
        format!(
            "postgres://{}@127.0.0.1:{}/postgres",
            url.get_username(),
            url.get_port()
        )
    }

    pub fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}
