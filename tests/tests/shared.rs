//! The Shared database mode against a real PostgreSQL server: the SQL layer
//! directly, and the real controller against the API double with the test
//! command's server registered as a shared server.
//!
//! These tests need `CRM_TEST_POSTGRES_URL` (a superuser URL), which
//! `scripts/with-postgres` exports; without it they fail, saying so.

use std::collections::BTreeMap;
use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use crm_crds::{CrmTenant, Phase, annotation, condition};
use crm_operator::controller::{self, Settings};
use crm_operator::database::provision::FINALIZER;
use crm_operator::database::scram;
use crm_operator::database::shared::{Change, SharedServer};
use crm_operator::database::sql::{self, quote_identifier, quote_literal};
use crm_operator::metrics::{Metrics, Outcome};
use crm_tests::{ApiDouble, test_postgres_url};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long the operator gets to converge before a test fails.
const CONVERGE: Duration = Duration::from_secs(40);
/// The registered name of the test server.
const SERVER: &str = "pg-test";

// ---------------------------------------------------------------- helpers

async fn superuser() -> PgConnection {
    PgConnection::connect(&test_postgres_url())
        .await
        .expect("connect to the test PostgreSQL as its superuser")
}

async fn scalar<T>(conn: &mut PgConnection, sql: &str, bind: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .bind(bind)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn role_exists(conn: &mut PgConnection, role: &str) -> bool {
    scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
        role,
    )
    .await
}

async fn database_exists(conn: &mut PgConnection, database: &str) -> bool {
    scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        database,
    )
    .await
}

/// The SQLSTATE of a failed connection or statement.
fn sqlstate<T>(result: Result<T, sqlx::Error>) -> String {
    match result {
        Ok(_) => "success".to_owned(),
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(e) => format!("not a database error: {e}"),
    }
}

async fn login(url: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(url)?.connect().await
}

fn server() -> SharedServer {
    SharedServer::new(SERVER, &test_postgres_url()).expect("the test URL is valid")
}

/// Everything the operator logs, from the first operator test on.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
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
struct Operator {
    double: ApiDouble,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Operator {
    fn start() -> Self {
        Self::start_with_url(&test_postgres_url())
    }

    fn start_with_url(url: &str) -> Self {
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
    fn register(&self, url: &str) {
        self.double.put_secret("crm-system", SERVER, "url", url);
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(CONVERGE, &mut self.task)
            .await
            .expect("the controller stops on shutdown")
            .expect("the controller task does not panic");
    }

    fn api(&self, tenant: &CrmTenant) -> Api<CrmTenant> {
        Api::namespaced(
            self.double.client(),
            &tenant.namespace().expect("namespace"),
        )
    }

    async fn create(&self, tenant: &CrmTenant) {
        self.api(tenant)
            .create(&PostParams::default(), tenant)
            .await
            .expect("create the tenant");
    }

    async fn patch(&self, tenant: &CrmTenant, patch: Value) {
        self.api(tenant)
            .patch(
                &tenant.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("patch the tenant");
    }

    async fn delete(&self, tenant: &CrmTenant) {
        self.api(tenant)
            .delete(&tenant.name_any(), &Default::default())
            .await
            .expect("delete the tenant");
    }

    fn stored(&self, tenant: &CrmTenant) -> Option<CrmTenant> {
        self.get(tenant, "")
    }

    fn get<K>(&self, tenant: &CrmTenant, suffix: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        let ns = tenant.namespace().expect("namespace");
        self.double
            .get_object::<K>(&ns, &format!("{}{suffix}", tenant.name_any()))
    }

    async fn eventually<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last requests: {:#?}",
                self.double
                    .request_log()
                    .iter()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(status, reason, message)` of a condition of the stored tenant.
    fn condition(&self, tenant: &CrmTenant, type_: &str) -> Option<(String, String, String)> {
        let stored = self.stored(tenant)?;
        let found = stored
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)?;
        Some((found.status, found.reason, found.message))
    }

    /// Waits for DatabaseReady to have this status and reason.
    async fn database(&self, tenant: &CrmTenant, status: &str, reason: &str) -> String {
        let what = format!("DatabaseReady {status}/{reason} of {}", tenant.name_any());
        self.eventually(&what, |op| {
            let (s, r, message) = op.condition(tenant, condition::DATABASE_READY)?;
            (s == status && r == reason).then_some(message)
        })
        .await
    }

    /// The `<t>-db` Secret's keys, once it holds a URL.
    async fn credentials(&self, tenant: &CrmTenant) -> BTreeMap<String, String> {
        self.eventually("the database Secret with a url", |op| {
            let secret = op.get::<Secret>(tenant, "-db")?;
            let data = secret_data(&secret);
            data.contains_key("url").then_some(data)
        })
        .await
    }

    async fn gone(&self, tenant: &CrmTenant) {
        self.eventually("the tenant removed", |op| {
            op.stored(tenant).is_none().then_some(())
        })
        .await;
    }

    fn event_reasons(&self, tenant: &CrmTenant) -> Vec<String> {
        self.events(tenant)
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    fn events(&self, tenant: &CrmTenant) -> Vec<Event> {
        let ns = tenant.namespace().expect("namespace");
        let mut events: Vec<Event> = self.double.list_objects::<Event>(&ns);
        events.retain(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&tenant.name_any())
        });
        events
    }

    /// No secret, plain or base64, in the logs, in the tenant's Events or
    /// in its status.
    fn assert_nothing_leaks(&self, tenant: &CrmTenant, secrets: &[&str]) {
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

fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

fn tenant(namespace: &str, name: &str, deletion_policy: &str) -> CrmTenant {
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

fn config_hash(deployment: &Deployment) -> Option<String> {
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
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

// ---------------------------------------------------------------- the SQL layer

#[tokio::test]
async fn provisioning_twice_issues_no_ddl_the_second_time() {
    let names = sql::names("direct-idempotent", "acme");
    let password = crm_operator::database::credentials::generate().expect("random");
    let first = server()
        .ensure(&names, &password, 12)
        .await
        .expect("ensure");
    assert!(first.contains(&Change::CreatedRole), "{first:?}");
    assert!(first.contains(&Change::CreatedDatabase), "{first:?}");
    assert!(first.contains(&Change::RevokedPublicAccess), "{first:?}");

    let mut admin = superuser().await;
    let catalog_rows = "SELECT (SELECT xmin::text FROM pg_authid WHERE rolname = $1) || '/' || \
                        (SELECT xmin::text FROM pg_database WHERE datname = $1)";
    let before: String = scalar(&mut admin, catalog_rows, &names.role).await;
    let second = server()
        .ensure(&names, &password, 12)
        .await
        .expect("ensure");
    assert_eq!(second, Vec::<Change>::new(), "nothing to change");
    let after: String = scalar(&mut admin, catalog_rows, &names.role).await;
    assert_eq!(
        before, after,
        "no catalog row of the role or database was written"
    );

    let limit: i32 = scalar(
        &mut admin,
        "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
        &names.role,
    )
    .await;
    assert_eq!(limit, 12);
    let third = server()
        .ensure(&names, &password, 20)
        .await
        .expect("ensure");
    assert_eq!(third, vec![Change::SetConnectionLimit]);
}

#[tokio::test]
async fn hostile_tenant_names_get_valid_distinct_identifiers_and_nothing_else_runs() {
    let long = "n".repeat(250);
    let hostile = [
        "q\"; DROP ROLE postgres; --".to_owned(),
        "s'; CREATE ROLE evil SUPERUSER; --".to_owned(),
        "ünïcødé-名前-😀".to_owned(),
        long.clone(),
        format!("{long}x"),
    ];
    let mut admin = superuser().await;
    // Other tests add crm_ roles meanwhile; anything else would be injected.
    let others = "SELECT (SELECT count(*) FROM pg_roles WHERE rolname NOT LIKE $1) || '/' || \
                  (SELECT count(*) FROM pg_database WHERE datname NOT LIKE $1)";
    let before: String = scalar(&mut admin, others, "crm\\_%").await;
    let password = crm_operator::database::credentials::generate().expect("random");
    let mut seen = std::collections::BTreeSet::new();
    for name in &hostile {
        let names = sql::names("direct-hostile", name);
        assert!(names.role.len() <= 63, "{}", names.role);
        assert!(seen.insert(names.role.clone()), "distinct: {}", names.role);
        server()
            .ensure(&names, &password, 5)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(role_exists(&mut admin, &names.role).await, "{}", names.role);
        assert!(database_exists(&mut admin, &names.database).await);
    }
    let ours: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'crm\\_direct\\_hostile\\_%' ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .expect("roles");
    assert_eq!(
        ours,
        seen.iter().cloned().collect::<Vec<_>>(),
        "exactly these roles"
    );
    let after: String = scalar(&mut admin, others, "crm\\_%").await;
    assert_eq!(before, after, "no other role or database");
    assert!(!role_exists(&mut admin, "evil").await);
    let superusers: i64 = scalar(
        &mut admin,
        "SELECT count(*) FROM pg_roles WHERE rolsuper AND rolname LIKE $1",
        "crm\\_%",
    )
    .await;
    assert_eq!(superusers, 0);
}

#[tokio::test]
async fn quoting_means_exactly_the_text_quoted_on_the_server() {
    let mut admin = superuser().await;
    for text in [
        "plain",
        "it's",
        "a\"b",
        "back\\slash'; DROP TABLE x; --",
        "ünïcødé 名前",
        "''\\\\\"\"",
    ] {
        let sql = format!(
            "SELECT {} AS {}",
            quote_literal(text),
            quote_identifier(text)
        );
        let row: (String,) = sqlx::query_as(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(row.0, text, "literal {sql}");
        let column = sqlx::query(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut admin)
            .await
            .expect("row");
        use sqlx::{Column, Row};
        assert_eq!(column.columns()[0].name(), text, "identifier {sql}");
    }
}

#[tokio::test]
async fn scram_verifiers_agree_with_the_servers_own() {
    let mut admin = superuser().await;
    let role = "crm_scram_check";
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP ROLE IF EXISTS {role}; SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE {role} LOGIN PASSWORD 'the server hashed this'"
    )))
    .execute(&mut admin)
    .await
    .expect("create the role");
    let stored: String = scalar(
        &mut admin,
        "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
        role,
    )
    .await;
    assert!(
        scram::verifies("the server hashed this", &stored),
        "{stored}"
    );
    assert!(!scram::verifies("something else", &stored));
}

// ---------------------------------------------------------------- the operator

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_tenants_use_their_own_database_and_cannot_connect_to_each_others() {
    let operator = Operator::start();
    let a = tenant("iso-a", "acme", "Delete");
    let b = tenant("iso-b", "acme", "Delete");
    for t in [&a, &b] {
        operator.create(t).await;
    }
    for t in [&a, &b] {
        let message = operator.database(t, "True", "Ready").await;
        assert!(message.contains(SERVER), "{message}");
    }
    let (ca, cb) = (
        operator.credentials(&a).await,
        operator.credentials(&b).await,
    );
    assert_ne!(ca["database"], cb["database"]);
    assert_eq!(ca["username"], sql::names("iso-a", "acme").role);
    let stored = operator.stored(&a).expect("stored");
    assert!(stored.finalizers().contains(&FINALIZER.to_owned()));

    let mut own = login(&ca["url"])
        .await
        .expect("a logs in to its own database");
    sqlx::raw_sql("CREATE TABLE deals (id int); INSERT INTO deals VALUES (1)")
        .execute(&mut own)
        .await
        .expect("a owns its database");
    let other = PgConnectOptions::from_str(&ca["url"])
        .expect("url")
        .database(&cb["database"]);
    assert_eq!(
        sqlstate(other.connect().await),
        "42501",
        "a's role cannot connect to b's database"
    );
    let postgres = PgConnectOptions::from_str(&cb["url"])
        .expect("url")
        .database("postgres");
    assert_eq!(
        sqlstate(postgres.connect().await),
        "success",
        "PUBLIC's own default"
    );
    let password_b = cb["password"].clone();
    operator.assert_nothing_leaks(&a, &[&ca["password"], &password_b]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_shared_tenant_is_reconciled_without_writes_or_ddl() {
    let operator = Operator::start();
    let t = tenant("settled", "acme", "Delete");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;
    let mut admin = superuser().await;
    let catalog_rows = "SELECT (SELECT xmin::text FROM pg_authid WHERE rolname = $1) || '/' || \
                        (SELECT xmin::text FROM pg_database WHERE datname = $1)";
    let before: String = scalar(&mut admin, catalog_rows, &credentials["username"]).await;

    operator.double.clear_log();
    let ns = t.namespace().expect("namespace");
    for round in 0..5 {
        let done = operator.metrics.reconciles(Outcome::Ok);
        assert!(operator.double.edit_object::<CrmTenant>(&ns, "acme", |o| {
            o["metadata"]["labels"]["nudge"] = json!(round.to_string());
        }));
        operator
            .eventually("one more reconcile", |op| {
                (op.metrics.reconciles(Outcome::Ok) > done).then_some(())
            })
            .await;
    }
    let writes: Vec<_> = operator
        .double
        .request_log()
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(writes.is_empty(), "writes on a settled tenant: {writes:#?}");
    let after: String = scalar(&mut admin, catalog_rows, &credentials["username"]).await;
    assert_eq!(before, after, "no DDL touched the role or the database");
    let provisioned = operator
        .event_reasons(&t)
        .iter()
        .filter(|r| *r == "DatabaseProvisioned")
        .count();
    assert_eq!(provisioned, 1);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_sets_the_new_password_on_the_server_then_in_the_secret_and_rolls_the_pods() {
    let operator = Operator::start();
    let t = tenant("rotate", "acme", "Delete");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let old = operator.credentials(&t).await;
    login(&old["url"]).await.expect("the first password works");
    let old_hash = operator
        .get::<Deployment>(&t, "")
        .and_then(|d| config_hash(&d))
        .expect("config hash");

    operator
        .patch(
            &t,
            json!({ "metadata": { "annotations": {
                annotation::ROTATE_DATABASE_CREDENTIALS: "2026-11-23" } } }),
        )
        .await;
    let new = operator
        .eventually("a new password in the Secret", |op| {
            let data = secret_data(&op.get::<Secret>(&t, "-db")?);
            (data.get("password") != old.get("password")).then_some(data)
        })
        .await;
    // The Secret changed after the server: the new password works at once.
    login(&new["url"]).await.expect("the new password works");
    assert_eq!(
        sqlstate(login(&old["url"]).await),
        "28P01",
        "the old password no longer works"
    );
    assert_eq!(new["username"], old["username"]);
    operator
        .eventually("the pods rolling", |op| {
            let hash = config_hash(&op.get::<Deployment>(&t, "")?)?;
            (hash != old_hash).then_some(())
        })
        .await;
    operator
        .eventually("a CredentialsRotated Event and rotation time", |op| {
            let rotated_at = op.stored(&t)?.status?.database_credentials_rotated_at;
            (op.event_reasons(&t)
                .contains(&"CredentialsRotated".to_owned())
                && rotated_at.is_some())
            .then_some(())
        })
        .await;
    operator.assert_nothing_leaks(&t, &[&old["password"], &new["password"]]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_with_delete_drops_the_database_and_the_role() {
    let operator = Operator::start();
    let t = tenant("drop", "acme", "Delete");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;
    let mut session = login(&credentials["url"]).await.expect("login");
    sqlx::raw_sql("CREATE TABLE deals (id int)")
        .execute(&mut session)
        .await
        .expect("table");

    operator.delete(&t).await;
    operator.gone(&t).await;
    let mut admin = superuser().await;
    assert!(!database_exists(&mut admin, &credentials["database"]).await);
    assert!(!role_exists(&mut admin, &credentials["username"]).await);
    assert!(
        sqlx::raw_sql("SELECT 1")
            .execute(&mut session)
            .await
            .is_err(),
        "the open session was ended"
    );
    operator.assert_nothing_leaks(&t, &[&credentials["password"]]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_with_retain_keeps_the_data_and_blocks_the_login() {
    let operator = Operator::start();
    let t = tenant("retain", "acme", "Retain");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;
    let mut session = login(&credentials["url"]).await.expect("login");
    sqlx::raw_sql("CREATE TABLE deals (id int); INSERT INTO deals VALUES (7)")
        .execute(&mut session)
        .await
        .expect("table");

    operator.delete(&t).await;
    operator.gone(&t).await;
    assert_eq!(
        sqlstate(login(&credentials["url"]).await),
        "28000",
        "the role may no longer log in"
    );
    let mut admin = superuser().await;
    assert!(role_exists(&mut admin, &credentials["username"]).await);
    let kept = PgConnectOptions::from_str(&test_postgres_url())
        .expect("url")
        .database(&credentials["database"]);
    let mut kept = kept.connect().await.expect("the database is kept");
    let id: i32 = sqlx::query_scalar("SELECT id FROM deals")
        .fetch_one(&mut kept)
        .await
        .expect("the data is kept");
    assert_eq!(id, 7);
    assert!(
        operator.get::<Secret>(&t, "-db").is_some(),
        "and so is its password"
    );

    // Created again, the tenant takes its data over with the same password.
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let mut again = login(&credentials["url"]).await.expect("login is back");
    let id: i32 = sqlx::query_scalar("SELECT id FROM deals")
        .fetch_one(&mut again)
        .await
        .expect("the same data");
    assert_eq!(id, 7);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_and_the_tenant_recovers_when_it_returns() {
    let down = format!("postgres://nobody@127.0.0.1:{}/postgres", closed_port());
    let operator = Operator::start_with_url(&down);
    let t = tenant("unreachable", "acme", "Delete");
    operator.create(&t).await;
    let message = operator.database(&t, "False", "ServerUnreachable").await;
    assert!(message.contains(SERVER), "{message}");
    let stored = operator.stored(&t).expect("stored");
    assert_eq!(stored.status.and_then(|s| s.phase), Some(Phase::Degraded));
    assert!(
        operator
            .event_reasons(&t)
            .contains(&"ServerUnreachable".to_owned())
    );
    assert!(
        operator.get::<Secret>(&t, "-db").is_none(),
        "no credentials the server does not know yet"
    );

    operator.register(&test_postgres_url());
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;
    login(&credentials["url"]).await.expect("login");
    operator.assert_nothing_leaks(&t, &[&credentials["password"]]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_credentials_are_reported_as_authentication_failed() {
    let mut admin = superuser().await;
    sqlx::raw_sql(
        "DROP ROLE IF EXISTS crm_test_admin; \
         CREATE ROLE crm_test_admin LOGIN CREATEROLE CREATEDB PASSWORD 'right-one'",
    )
    .execute(&mut admin)
    .await
    .expect("admin role");
    let url = PgConnectOptions::from_str(&test_postgres_url()).expect("url");
    let wrong = format!(
        "postgres://crm_test_admin:wrong-one@{}:{}/postgres",
        url.get_host(),
        url.get_port()
    );
    let operator = Operator::start_with_url(&wrong);
    let t = tenant("auth", "acme", "Delete");
    operator.create(&t).await;
    let message = operator.database(&t, "False", "AuthenticationFailed").await;
    assert!(message.contains("28P01"), "{message}");
    operator.assert_nothing_leaks(&t, &["wrong-one"]);
    // Releases the finalizer without a server to clean up on.
    operator
        .patch(
            &t,
            json!({ "metadata": { "annotations": { annotation::SKIP_DATABASE_CLEANUP: "yes" } } }),
        )
        .await;
    operator.delete(&t).await;
    operator.gone(&t).await;
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_an_unreachable_server_and_cleans_up_when_it_returns() {
    let operator = Operator::start();
    let t = tenant("wait", "acme", "Delete");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;

    operator.register(&format!(
        "postgres://nobody@127.0.0.1:{}/postgres",
        closed_port()
    ));
    operator.delete(&t).await;
    operator.database(&t, "False", "ServerUnreachable").await;
    let stored = operator.stored(&t).expect("held by its finalizer");
    assert_eq!(stored.status.and_then(|s| s.phase), Some(Phase::Deleting));
    assert!(
        operator
            .event_reasons(&t)
            .contains(&"ServerUnreachable".to_owned())
    );

    operator.register(&test_postgres_url());
    operator.gone(&t).await;
    let mut admin = superuser().await;
    assert!(!database_exists(&mut admin, &credentials["database"]).await);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_database_cleanup_releases_a_tenant_whose_server_is_gone() {
    let operator = Operator::start();
    let t = tenant("skip", "acme", "Delete");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;

    operator.register(&format!(
        "postgres://nobody@127.0.0.1:{}/postgres",
        closed_port()
    ));
    operator.delete(&t).await;
    operator.database(&t, "False", "ServerUnreachable").await;
    operator
        .patch(
            &t,
            json!({ "metadata": { "annotations": { annotation::SKIP_DATABASE_CLEANUP: "true" } } }),
        )
        .await;
    operator.gone(&t).await;
    let mut admin = superuser().await;
    assert!(
        database_exists(&mut admin, &credentials["database"]).await,
        "nothing was cleaned up, on purpose"
    );
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_of_other_modes_never_get_the_finalizer() {
    let operator = Operator::start();
    let mut t = tenant("no-finalizer", "acme", "Delete");
    t.spec.database = Some(crm_crds::DatabaseSpec {
        mode: crm_crds::DatabaseMode::Managed,
        ..Default::default()
    });
    operator.create(&t).await;
    operator
        .eventually("the Deployment", |op| op.get::<Deployment>(&t, ""))
        .await;
    assert!(operator.stored(&t).expect("stored").finalizers().is_empty());
    operator.delete(&t).await;
    operator.gone(&t).await;
    operator.shutdown().await;
}

// ---------------------------------------------------------------- Managed mode

fn statefulset_hash(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> Option<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_rotation_restarts_postgres_which_takes_the_new_password() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let operator = Operator::start();
    let mut t = tenant("managed-rotate", "acme", "Delete");
    t.spec.database = Some(crm_crds::DatabaseSpec {
        mode: crm_crds::DatabaseMode::Managed,
        ..Default::default()
    });
    operator.create(&t).await;
    let old_hash = operator
        .eventually("the PostgreSQL StatefulSet", |op| {
            statefulset_hash(&op.get::<StatefulSet>(&t, "-postgres")?)
        })
        .await;
    let old = secret_data(&operator.get::<Secret>(&t, "-db").expect("db secret"));
    operator
        .patch(
            &t,
            json!({ "metadata": { "annotations": {
                annotation::ROTATE_DATABASE_CREDENTIALS: "1" } } }),
        )
        .await;
    let new = operator
        .eventually("a new password", |op| {
            let data = secret_data(&op.get::<Secret>(&t, "-db")?);
            (data["password"] != old["password"]).then_some(data)
        })
        .await;
    assert!(new["url"].contains(&new["password"]), "the url follows");
    operator
        .eventually("PostgreSQL's pod template changed", |op| {
            let hash = statefulset_hash(&op.get::<StatefulSet>(&t, "-postgres")?)?;
            (hash != old_hash).then_some(())
        })
        .await;
    operator.assert_nothing_leaks(&t, &[&old["password"], &new["password"]]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_server_is_reported_as_such() {
    let operator = Operator::start();
    let mut t = tenant("unregistered", "acme", "Delete");
    if let Some(database) = t.spec.database.as_mut() {
        database.shared = Some(crm_crds::SharedDatabaseSpec {
            server: "pg-nowhere".into(),
        });
    }
    operator.create(&t).await;
    let message = operator.database(&t, "False", "ServerNotRegistered").await;
    assert!(message.contains("crm-system/pg-nowhere"), "{message}");
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_shared_mode_releases_the_finalizer_and_says_what_was_left() {
    let operator = Operator::start();
    let t = tenant("leave", "acme", "Delete");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;
    operator
        .patch(
            &t,
            json!({ "spec": { "database": { "mode": "Managed", "shared": null } } }),
        )
        .await;
    operator
        .eventually("the finalizer released", |op| {
            let stored = op.stored(&t)?;
            (!stored.finalizers().contains(&FINALIZER.to_owned())).then_some(())
        })
        .await;
    assert!(
        operator
            .event_reasons(&t)
            .contains(&"SharedDatabaseLeft".to_owned())
    );
    let mut admin = superuser().await;
    assert!(database_exists(&mut admin, &credentials["database"]).await);
    operator.shutdown().await;
}

#[tokio::test]
async fn an_admin_with_createrole_and_createdb_but_not_superuser_manages_tenants() {
    let mut admin = superuser().await;
    sqlx::raw_sql(
        "DROP ROLE IF EXISTS crm_limited_admin; \
         CREATE ROLE crm_limited_admin LOGIN CREATEROLE CREATEDB PASSWORD 'limited-pw'",
    )
    .execute(&mut admin)
    .await
    .expect("admin role");
    let test = PgConnectOptions::from_str(&test_postgres_url()).expect("url");
    let url = format!(
        "postgres://crm_limited_admin:limited-pw@{}:{}/postgres",
        test.get_host(),
        test.get_port()
    );
    let limited = SharedServer::new("limited", &url).expect("valid");
    let names = sql::names("direct-limited", "acme");
    let password = crm_operator::database::credentials::generate().expect("random");

    let first = limited.ensure(&names, &password, 4).await.expect("ensure");
    assert!(first.contains(&Change::CreatedDatabase), "{first:?}");
    let tenant_url = limited.tenant_url(&names, &password);
    login(&tenant_url).await.expect("the tenant logs in");
    let second = limited.ensure(&names, &password, 4).await.expect("ensure");
    assert_eq!(
        second,
        Vec::<Change>::new(),
        "the password checked by logging in"
    );

    assert_eq!(
        limited.retain_tenant(&names).await.expect("retain"),
        vec![Change::DisabledLogin]
    );
    assert_eq!(sqlstate(login(&tenant_url).await), "28000");
    let back = limited.ensure(&names, &password, 4).await.expect("ensure");
    assert!(back.contains(&Change::EnabledLogin), "{back:?}");
    login(&tenant_url).await.expect("the tenant logs in again");

    let dropped = limited.drop_tenant(&names).await.expect("drop");
    assert_eq!(dropped, vec![Change::DroppedDatabase, Change::DroppedRole]);
    assert!(!role_exists(&mut admin, &names.role).await);
}

/// A TCP relay in front of the test server that can be stopped and started
/// again: stopped, it ends every open connection and refuses new ones, as a
/// server that went down mid-way would.
struct Relay {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start() -> Self {
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

    fn url(&self) -> String {
        let mut url = PgConnectOptions::from_str(&test_postgres_url()).expect("url");
        url = url.port(self.port);
        format!(
            "postgres://{}@127.0.0.1:{}/postgres",
            url.get_username(),
            url.get_port()
        )
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_mid_way_is_reported_unreachable_and_recovered_from() {
    let relay = Relay::start().await;
    let operator = Operator::start_with_url(&relay.url());
    let t = tenant("stops", "acme", "Delete");
    operator.create(&t).await;
    operator.database(&t, "True", "Ready").await;
    let credentials = operator.credentials(&t).await;
    let mut session = login(&credentials["url"]).await.expect("through the relay");

    relay.set(false);
    assert!(
        sqlx::raw_sql("SELECT 1")
            .execute(&mut session)
            .await
            .is_err(),
        "the server is gone for its clients too"
    );
    let ns = t.namespace().expect("namespace");
    assert!(operator.double.edit_object::<CrmTenant>(&ns, "acme", |o| {
        o["metadata"]["labels"]["nudge"] = json!("1");
    }));
    let message = operator.database(&t, "False", "ServerUnreachable").await;
    assert!(message.contains(SERVER), "{message}");
    assert_eq!(
        operator.stored(&t).and_then(|s| s.status?.phase),
        Some(Phase::Degraded)
    );

    relay.set(true);
    operator.database(&t, "True", "Ready").await;
    login(&credentials["url"]).await.expect("back");
    operator
        .eventually("a Recovered Event", |op| {
            op.event_reasons(&t)
                .contains(&"Recovered".to_owned())
                .then_some(())
        })
        .await;
    operator.assert_nothing_leaks(&t, &[&credentials["password"]]);
    operator.shutdown().await;
}
