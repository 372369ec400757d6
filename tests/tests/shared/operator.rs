//! The real controller against the API double, with the test server
//! registered as the shared server `pg-test`.

use crate::harness::*;

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
    // The provisioning pass posts its Event after it writes the status.
    operator
        .eventually("the DatabaseProvisioned Event", |op| {
            op.event_reasons(&t)
                .contains(&"DatabaseProvisioned".to_owned())
                .then_some(())
        })
        .await;

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
    // A reconcile that began before the deletion may report the server
    // unreachable first (phase Degraded); the deletion's own pass follows.
    operator
        .eventually("phase Deleting while the server is unreachable", |op| {
            let phase = op.stored(&t).expect("held by its finalizer").status?.phase;
            let (status, reason, _) = op.condition(&t, condition::DATABASE_READY)?;
            (phase == Some(Phase::Deleting) && status == "False" && reason == "ServerUnreachable")
                .then_some(())
        })
        .await;
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
        mode: Some(crm_crds::DatabaseMode::Managed),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_rotation_restarts_postgres_which_takes_the_new_password() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let operator = Operator::start();
    let mut t = tenant("managed-rotate", "acme", "Delete");
    t.spec.database = Some(crm_crds::DatabaseSpec {
        mode: Some(crm_crds::DatabaseMode::Managed),
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

/// Moves the Shared tenant `t` to Managed up to the verified copy, and
/// returns its Shared credentials once status records the old database.
async fn moved_to_managed(operator: &Operator, t: &CrmTenant) -> BTreeMap<String, String> {
    operator.create(t).await;
    operator.database(t, "True", "Ready").await;
    let credentials = operator.credentials(t).await;
    operator
        .patch(
            t,
            json!({ "spec": { "database": { "mode": "Managed", "shared": null } } }),
        )
        .await;
    operator.migrated(t).await;
    operator
        .eventually("status.database Managed, status.oldDatabase Shared", |op| {
            let status = op.stored(t)?.status?;
            let old = status.old_database?;
            (status.database?.mode == crm_crds::DatabaseMode::Managed
                && old.mode == crm_crds::DatabaseMode::Shared
                && old.server.as_deref() == Some(SERVER))
            .then_some(())
        })
        .await;
    let mut admin = superuser().await;
    assert!(
        database_exists(&mut admin, &credentials["database"]).await,
        "kept until every replica runs on the new database"
    );
    let stored = operator.stored(t).expect("tenant");
    assert!(stored.finalizers().contains(&FINALIZER.to_owned()));
    credentials
}

/// Reports the writable rollout on the new database complete, and waits for
/// the old database's Event.
async fn switch_completes(operator: &Operator, t: &CrmTenant, reason: &str) -> String {
    let generation = operator
        .eventually("the writable Deployment on PostgreSQL", |op| {
            let d = op.get::<Deployment>(t, "")?;
            let env = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                .env
                .clone()?;
            (!env.iter().any(|e| e.name == "CRM_READ_ONLY"))
                .then_some(d.metadata.generation)
                .flatten()
        })
        .await;
    let ns = t.namespace().expect("namespace");
    operator
        .double
        .report_ready(&ns, &t.name_any(), 1, generation);
    let note = operator
        .eventually(reason, |op| {
            op.events(t)
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))?
                .note
        })
        .await;
    operator
        .eventually("status.oldDatabase cleared, the finalizer released", |op| {
            let stored = op.stored(t)?;
            let released = !stored.finalizers().contains(&FINALIZER.to_owned());
            (stored.status?.old_database.is_none() && released).then_some(())
        })
        .await;
    note
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_away_under_delete_drops_the_old_role_and_database_once_switched() {
    let operator = Operator::start();
    let t = tenant("leave-delete", "acme", "Delete");
    let credentials = moved_to_managed(&operator, &t).await;
    let note = switch_completes(&operator, &t, "OldDatabaseDeleted").await;
    assert!(
        note.contains(SERVER) && note.contains(&credentials["database"]),
        "{note}"
    );
    let mut admin = superuser().await;
    assert!(!database_exists(&mut admin, &credentials["database"]).await);
    assert!(!role_exists(&mut admin, &credentials["username"]).await);
    operator.assert_nothing_leaks(&t, &[&credentials["password"]]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_away_under_retain_keeps_the_old_database_and_says_where() {
    let operator = Operator::start();
    let t = tenant("leave-retain", "acme", "Retain");
    let credentials = moved_to_managed(&operator, &t).await;
    let note = switch_completes(&operator, &t, "OldDatabaseRetained").await;
    assert!(
        note.contains(SERVER) && note.contains(&credentials["database"]),
        "{note}"
    );
    let mut admin = superuser().await;
    assert!(database_exists(&mut admin, &credentials["database"]).await);
    assert_eq!(
        sqlstate(login(&credentials["url"]).await),
        "28000",
        "the old role may no longer log in"
    );
    assert!(
        !operator
            .event_reasons(&t)
            .contains(&"SharedDatabaseLeft".to_owned())
    );
    operator.shutdown().await;
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
