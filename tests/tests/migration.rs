//! Moving a tenant's data to another database, restoring a backup, and
//! scheduled backups, with the real controller against the API double. The
//! tests play the Deployment and Job controllers: they report rollouts and
//! Job results through the double.

mod harness;

use harness::*;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::networking::v1::NetworkPolicy;

/// The Starter example, with the Embedded mode it already runs on.
fn embedded() -> CrmTenant {
    example("starter-embedded")
}

fn to_managed() -> Value {
    json!({ "spec": { "database": { "mode": "Managed" } } })
}

fn args(job: &Job) -> Vec<String> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map_or_else(Vec::new, |p| {
            p.containers[0].args.clone().unwrap_or_default()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_mode_moves_the_data_read_only_then_switches_to_it() {
    let operator = Operator::start();
    let tenant = embedded();
    let ready = operator.ready(&tenant).await;
    let in_use = ready
        .status
        .and_then(|s| s.database)
        .expect("status.database");
    assert_eq!(in_use.mode, crm_crds::DatabaseMode::Embedded);

    operator.patch(&tenant, to_managed()).await;
    let migrating = operator.phase(&tenant, Phase::Migrating).await;
    let status = migrating.status.expect("status");
    assert_eq!(
        status.database.map(|d| d.mode),
        Some(crm_crds::DatabaseMode::Embedded),
        "the old database stays in use"
    );
    assert_eq!(
        operator.condition(&tenant, condition::READY),
        Some(("False".into(), "Migrating".into()))
    );
    // Read-only on the old database; the new one is provisioned beside it.
    let deployment = operator.read_only(&tenant, true).await;
    assert_eq!(url_from_secret(&deployment), None, "still on SQLite");
    operator
        .eventually("the new PostgreSQL", |op| {
            op.get::<StatefulSet>(&tenant, "-postgres")
        })
        .await;
    // No copy before every replica is read-only.
    operator.quiet().await;
    assert!(
        operator
            .double
            .list_objects::<Job>("crm-tenants")
            .is_empty(),
        "no Job before the read-only rollout completed"
    );

    let name = operator.transfer(&tenant, "migrate", true).await;
    let job: Job = operator
        .double
        .get_object("crm-tenants", &name)
        .expect("the Job");
    assert_eq!(args(&job), ["copy", "--replace"]);
    let pod = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let env = pod.containers[0].env.clone().expect("env");
    let from = env
        .iter()
        .find(|e| e.name == "CRM_COPY_FROM")
        .expect("from");
    assert_eq!(
        from.value.as_deref(),
        Some("sqlite:///var/lib/crm/crm.db?mode=rwc")
    );
    let to = env.iter().find(|e| e.name == "CRM_COPY_TO").expect("to");
    let key = to
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secret");
    assert_eq!(
        (key.name.as_str(), key.key.as_str()),
        ("corner-bakery-db", "url")
    );
    assert!(
        pod.affinity.is_some(),
        "beside the pod holding the RWO volume"
    );

    // Verified: the pods switch to PostgreSQL, writable.
    let deployment = operator.read_only(&tenant, false).await;
    operator
        .eventually("DATABASE_URL from <t>-db", |op| {
            let d = op.get::<Deployment>(&tenant, "")?;
            (url_from_secret(&d).as_deref() == Some("corner-bakery-db/url")).then_some(())
        })
        .await;
    drop(deployment);
    operator
        .eventually("status.database Managed", |op| {
            let status = op.tenant(&tenant).status?;
            (status.database?.mode == crm_crds::DatabaseMode::Managed
                && status.phase != Some(Phase::Migrating))
            .then_some(())
        })
        .await;
    operator
        .eventually("the finished Job pruned", |op| {
            op.double
                .get_object::<Job>("crm-tenants", &name)
                .is_none()
                .then_some(())
        })
        .await;
    operator
        .eventually("a Migrated Event", |op| {
            op.event_reasons(&tenant)
                .contains(&"Migrated".to_owned())
                .then_some(())
        })
        .await;
    assert!(
        operator
            .get::<PersistentVolumeClaim>(&tenant, "-data")
            .is_some(),
        "deletionPolicy Retain keeps the old volume"
    );
    operator.rolled_out(&tenant, 1);
    let note = operator
        .eventually("an OldDatabaseRetained Event", |op| {
            op.event_note(&tenant, "OldDatabaseRetained")
        })
        .await;
    assert!(note.contains("crm-tenants/corner-bakery-data"), "{note}");
    operator
        .eventually("status.oldDatabase cleared", |op| {
            let status = op.tenant(&tenant).status?;
            status.old_database.is_none().then_some(())
        })
        .await;
    operator.phase(&tenant, Phase::Ready).await;
    assert!(
        operator
            .get::<PersistentVolumeClaim>(&tenant, "-data")
            .is_some()
    );
    operator.quiet().await;
    operator.double.clear_log();
    operator.nudge(&tenant, "settled");
    operator.quiet().await;
    assert_eq!(
        operator.double.count_writes_excluding_events(),
        0,
        "settled"
    );
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_delete_the_old_volume_outlives_the_switch_until_every_replica_left_it() {
    let operator = Operator::start();
    let tenant = embedded();
    let uid = operator.ready(&tenant).await.uid().expect("uid");
    operator.patch(&tenant, to_managed()).await;
    operator.transfer(&tenant, "migrate", true).await;
    operator.read_only(&tenant, false).await;
    let old = operator
        .eventually("status.oldDatabase", |op| {
            let status = op.tenant(&tenant).status?;
            (status.database?.mode == crm_crds::DatabaseMode::Managed)
                .then_some(status.old_database?)
        })
        .await;
    assert_eq!(old.mode, crm_crds::DatabaseMode::Embedded);
    // Created under Retain, the old volume follows the policy as it changes.
    operator.patch(&tenant, delete_policy()).await;
    operator
        .eventually("the old volume owned by the tenant", |op| {
            owned_by(&op.get::<PersistentVolumeClaim>(&tenant, "-data")?, &uid).then_some(())
        })
        .await;
    operator.quiet().await;
    assert!(
        operator
            .get::<PersistentVolumeClaim>(&tenant, "-data")
            .is_some(),
        "old replicas still read the volume"
    );
    assert_eq!(
        operator.event_note(&tenant, "OldDatabaseDeleted"),
        None,
        "said once the switch is complete"
    );
    operator.rolled_out(&tenant, 1);
    let note = operator
        .eventually("an OldDatabaseDeleted Event", |op| {
            op.event_note(&tenant, "OldDatabaseDeleted")
        })
        .await;
    assert!(note.contains("corner-bakery-data was deleted"), "{note}");
    assert!(
        operator
            .get::<PersistentVolumeClaim>(&tenant, "-data")
            .is_none()
    );
    operator
        .eventually("status.oldDatabase cleared", |op| {
            let status = op.tenant(&tenant).status?;
            status.old_database.is_none().then_some(())
        })
        .await;
    operator.shutdown().await;
}

fn delete_policy() -> Value {
    json!({ "spec": { "database": { "deletionPolicy": "Delete" } } })
}

fn owned_by(claim: &PersistentVolumeClaim, uid: &str) -> bool {
    claim.owner_references().iter().any(|o| o.uid == uid)
}

/// The Starter tenant on a Managed server of its own, under `policy`,
/// walked to Ready with its server's volume claim.
async fn on_managed(operator: &Operator, policy: crm_crds::DeletionPolicy) -> CrmTenant {
    let mut tenant = embedded();
    if let Some(database) = tenant.spec.database.as_mut() {
        database.mode = Some(crm_crds::DatabaseMode::Managed);
        database.deletion_policy = policy;
    }
    operator.ready(&tenant).await;
    operator.postgres_claim(&tenant);
    tenant
}

fn to_embedded() -> Value {
    json!({ "spec": { "database": { "mode": "Embedded" } } })
}

/// What makes up the old Managed server, and whether each is there: the
/// StatefulSet, its Service, NetworkPolicy and credentials, and its claim.
fn managed_objects(operator: &Operator, tenant: &CrmTenant) -> [(&'static str, bool); 5] {
    let claim = format!("data-{}-postgres-0", tenant.name_any());
    [
        (
            "StatefulSet",
            operator.get::<StatefulSet>(tenant, "-postgres").is_some(),
        ),
        (
            "Service",
            operator.get::<Service>(tenant, "-postgres").is_some(),
        ),
        (
            "NetworkPolicy",
            operator.get::<NetworkPolicy>(tenant, "-postgres").is_some(),
        ),
        ("Secret", operator.get::<Secret>(tenant, "-db").is_some()),
        (
            "claim",
            operator
                .double
                .get_object::<PersistentVolumeClaim>("crm-tenants", &claim)
                .is_some(),
        ),
    ]
}

/// Moves `tenant` from its Managed server to Embedded up to the switch, and
/// checks that the old server is all there until the rollout completes.
async fn switched_to_embedded(operator: &Operator, tenant: &CrmTenant) {
    operator.patch(tenant, to_embedded()).await;
    operator.transfer(tenant, "migrate", true).await;
    operator.read_only(tenant, false).await;
    operator
        .eventually("status.oldDatabase Managed", |op| {
            let status = op.tenant(tenant).status?;
            (status.database?.mode == crm_crds::DatabaseMode::Embedded
                && status.old_database?.mode == crm_crds::DatabaseMode::Managed)
                .then_some(())
        })
        .await;
    operator.quiet().await;
    for (what, there) in managed_objects(operator, tenant) {
        assert!(
            there,
            "the old server's {what} stays while replicas read it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_managed_server_serves_until_the_switch_is_complete_then_goes_under_delete() {
    let operator = Operator::start();
    let tenant = on_managed(&operator, crm_crds::DeletionPolicy::Delete).await;
    switched_to_embedded(&operator, &tenant).await;
    operator.rolled_out(&tenant, 1);
    let note = operator
        .eventually("an OldDatabaseDeleted Event", |op| {
            op.event_note(&tenant, "OldDatabaseDeleted")
        })
        .await;
    assert!(
        note.contains("corner-bakery-postgres was deleted"),
        "{note}"
    );
    for (what, there) in managed_objects(&operator, &tenant) {
        assert!(!there, "the old server's {what} goes under Delete");
    }
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_retain_the_old_managed_servers_data_outlives_the_server() {
    let operator = Operator::start();
    let tenant = on_managed(&operator, crm_crds::DeletionPolicy::Delete).await;
    switched_to_embedded(&operator, &tenant).await;
    // Retain set while the old server waits: its claims stay when it goes.
    operator
        .patch(
            &tenant,
            json!({ "spec": { "database": { "deletionPolicy": "Retain" } } }),
        )
        .await;
    operator
        .eventually("the old server's claims retained with it", |op| {
            let spec = op.get::<StatefulSet>(&tenant, "-postgres")?.spec?;
            let policy = spec.persistent_volume_claim_retention_policy?;
            (policy.when_deleted.as_deref() == Some("Retain")).then_some(())
        })
        .await;
    operator.postgres_claim(&tenant);
    operator.rolled_out(&tenant, 1);
    let note = operator
        .eventually("an OldDatabaseRetained Event", |op| {
            op.event_note(&tenant, "OldDatabaseRetained")
        })
        .await;
    assert!(note.contains("data-corner-bakery-postgres-0"), "{note}");
    let left = managed_objects(&operator, &tenant);
    assert_eq!(
        left,
        [
            ("StatefulSet", false),
            ("Service", false),
            ("NetworkPolicy", false),
            ("Secret", true),
            ("claim", true),
        ]
    );
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_cancelled_move_never_touches_the_database_in_use() {
    let operator = Operator::start();
    let tenant = on_managed(&operator, crm_crds::DeletionPolicy::Delete).await;
    operator.patch(&tenant, to_embedded()).await;
    operator.transfer(&tenant, "migrate", false).await;
    operator.read_only(&tenant, false).await;
    operator
        .eventually("MigrationFailed", |op| {
            op.condition(&tenant, condition::MIGRATION_FAILED)
                .filter(|(status, _)| status == "True")
        })
        .await;
    operator
        .eventually("the new volume provisioned", |op| {
            op.get::<PersistentVolumeClaim>(&tenant, "-data")
        })
        .await;
    operator.rolled_out(&tenant, 1);
    operator.quiet().await;
    for (what, there) in managed_objects(&operator, &tenant) {
        assert!(there, "a failed copy keeps the server's {what}");
    }

    // Back to the database in use: the move is off, the new volume goes.
    operator
        .patch(
            &tenant,
            json!({ "spec": { "database": { "mode": "Managed" } } }),
        )
        .await;
    operator
        .gone::<PersistentVolumeClaim>(&tenant, "-data", "the new volume pruned")
        .await;
    operator.rolled_out(&tenant, 1);
    operator.phase(&tenant, Phase::Ready).await;
    operator.quiet().await;
    for (what, there) in managed_objects(&operator, &tenant) {
        assert!(there, "a cancelled move keeps the server's {what}");
    }
    let reasons = operator.event_reasons(&tenant);
    assert!(
        !reasons.contains(&"OldDatabaseDeleted".to_owned()),
        "{reasons:?}"
    );
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_follows_the_deletion_policy_in_force_when_its_tenant_goes() {
    let operator = Operator::start();
    let dropped = embedded();
    let mut kept = embedded();
    kept.metadata.name = Some("kept-bakery".into());
    if let Some(database) = kept.spec.database.as_mut() {
        database.deletion_policy = crm_crds::DeletionPolicy::Delete;
    }
    let dropped_uid = operator.ready(&dropped).await.uid().expect("uid");
    let kept_uid = operator.ready(&kept).await.uid().expect("uid");
    operator.patch(&dropped, delete_policy()).await;
    operator
        .patch(
            &kept,
            json!({ "spec": { "database": { "deletionPolicy": "Retain" } } }),
        )
        .await;
    operator
        .eventually("owner references following the policies", |op| {
            let dropped = owned_by(&op.get(&dropped, "-data")?, &dropped_uid);
            let kept = owned_by(&op.get(&kept, "-data")?, &kept_uid);
            (dropped && !kept).then_some(())
        })
        .await;
    for tenant in [&dropped, &kept] {
        operator
            .tenants("crm-tenants")
            .delete(&tenant.name_any(), &Default::default())
            .await
            .expect("delete the tenant");
    }
    operator
        .gone::<PersistentVolumeClaim>(&dropped, "-data", "the Delete tenant's volume collected")
        .await;
    assert!(
        operator
            .get::<PersistentVolumeClaim>(&kept, "-data")
            .is_some(),
        "now under Retain, the data stays"
    );
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_leaves_the_tenant_writable_on_its_old_database_until_retried() {
    let operator = Operator::start();
    let tenant = embedded();
    operator.ready(&tenant).await;
    operator.patch(&tenant, to_managed()).await;
    let failed = operator.transfer(&tenant, "migrate", false).await;

    let deployment = operator.read_only(&tenant, false).await;
    assert_eq!(url_from_secret(&deployment), None, "still on SQLite");
    let message = operator
        .eventually("MigrationFailed", |op| {
            let status = op.tenant(&tenant).status?;
            let c = status
                .conditions
                .into_iter()
                .find(|c| c.type_ == condition::MIGRATION_FAILED && c.status == "True")?;
            (c.reason == "CopyFailed").then_some(c.message)
        })
        .await;
    assert!(
        message.contains("step copy") && message.contains(&failed),
        "{message}"
    );
    let stored = operator.tenant(&tenant);
    let status = stored.status.expect("status");
    assert_ne!(status.phase, Some(Phase::Migrating));
    assert_eq!(
        status.database.map(|d| d.mode),
        Some(crm_crds::DatabaseMode::Embedded)
    );
    operator
        .eventually("a MigrationFailed Event", |op| {
            op.event_reasons(&tenant)
                .contains(&"MigrationFailed".to_owned())
                .then_some(())
        })
        .await;

    // A retry is a new Job; the failed one goes.
    operator
        .patch(
            &tenant,
            json!({ "metadata": { "annotations": { annotation::RETRY_MIGRATION: "1" } } }),
        )
        .await;
    operator.phase(&tenant, Phase::Migrating).await;
    let retried = operator.transfer(&tenant, "migrate", true).await;
    assert_ne!(retried, failed);
    operator
        .eventually("switched to PostgreSQL", |op| {
            let d = op.get::<Deployment>(&tenant, "")?;
            (url_from_secret(&d).is_some() && env_value(&d, "CRM_READ_ONLY").is_none())
                .then_some(())
        })
        .await;
    operator
        .eventually("MigrationFailed cleared", |op| {
            op.condition(&tenant, condition::MIGRATION_FAILED)
                .is_none()
                .then_some(())
        })
        .await;
    assert!(
        operator
            .double
            .get_object::<Job>("crm-tenants", &failed)
            .is_none()
    );
    operator.shutdown().await;
}

fn with_backups() -> CrmTenant {
    example("growth-backups")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_run_on_schedule_report_their_outcome_and_go_with_the_spec() {
    let operator = Operator::start();
    let tenant = with_backups();
    operator.ready(&tenant).await;
    let cron: CronJob = operator.get(&tenant, "-backup").expect("the CronJob");
    let spec = cron.spec.clone().expect("spec");
    assert_eq!(spec.schedule, "15 3 * * *");
    let pod = spec
        .job_template
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod");
    assert_eq!(
        pod.containers[0].args.clone().unwrap_or_default(),
        ["backup", "--dir", "/backups", "--retain", "14"]
    );
    assert!(
        operator
            .get::<PersistentVolumeClaim>(&tenant, "-backups")
            .is_some()
    );

    // The CronJob's last success, and a failed Job of its own.
    assert!(operator.double.set_status::<CronJob>(
        "crm-tenants",
        "tailspin-backup",
        json!({ "lastSuccessfulTime": "2026-11-30T03:15:42Z" }),
    ));
    let mut failed: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "tailspin-backup-29400195", "namespace": "crm-tenants",
            "labels": { "app.kubernetes.io/managed-by": "crm-operator",
                        "app.kubernetes.io/instance": "tailspin" },
            "ownerReferences": [{ "apiVersion": "batch/v1", "kind": "CronJob",
                "name": "tailspin-backup", "uid": cron.uid().expect("uid"), "controller": true }] },
        "spec": { "template": { "spec": { "containers": [] } } },
    }))
    .expect("a Job");
    failed = operator.double.put_object(&failed).expect("stored");
    operator.job_finishes(&tenant, &failed.name_any(), false);
    operator.nudge(&tenant, "backup");
    let backup = operator
        .eventually("status.backup", |op| {
            let backup = op.tenant(&tenant).status?.backup?;
            (backup.last_success.is_some() && backup.last_failure.is_some()).then_some(backup)
        })
        .await;
    assert_eq!(
        backup.last_failed_job.as_deref(),
        Some("tailspin-backup-29400195")
    );

    operator
        .patch(&tenant, json!({ "spec": { "backup": null } }))
        .await;
    operator
        .gone::<CronJob>(&tenant, "-backup", "the CronJob pruned")
        .await;
    assert!(
        operator
            .get::<PersistentVolumeClaim>(&tenant, "-backups")
            .is_some(),
        "deletionPolicy Retain keeps the backups"
    );
    operator
        .eventually("status.backup gone", |op| {
            op.tenant(&tenant).status?.backup.is_none().then_some(())
        })
        .await;
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_annotation_restores_read_only_and_is_done_once() {
    let operator = Operator::start();
    let tenant = with_backups();
    operator.ready(&tenant).await;
    let backup = "crm-20261130T031500.000Z";
    operator
        .patch(
            &tenant,
            json!({ "metadata": { "annotations": { annotation::RESTORE: backup } } }),
        )
        .await;
    operator.phase(&tenant, Phase::Restoring).await;
    let name = operator.transfer(&tenant, "restore", true).await;
    let job: Job = operator
        .double
        .get_object("crm-tenants", &name)
        .expect("Job");
    assert_eq!(
        args(&job),
        [
            "restore",
            "--from",
            &format!("/backups/{backup}"),
            "--replace"
        ]
    );
    operator.read_only(&tenant, false).await;
    operator
        .eventually("status.restored", |op| {
            (op.tenant(&tenant).status?.restored.as_deref() == Some(backup)).then_some(())
        })
        .await;
    operator
        .eventually("a Restored Event", |op| {
            op.event_reasons(&tenant)
                .contains(&"Restored".to_owned())
                .then_some(())
        })
        .await;
    operator
        .eventually("the restore Job pruned", |op| {
            op.double
                .get_object::<Job>("crm-tenants", &name)
                .is_none()
                .then_some(())
        })
        .await;
    operator.shutdown().await;
}
