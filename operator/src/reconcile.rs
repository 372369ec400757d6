//! One reconcile of one tenant: validate → credentials → build → apply →
//! observe → status, and the Events a platform operator wants to read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_crds::{CrmTenant, CrmTenantStatus, Phase, annotation};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use crate::apply::{self, Report};
use crate::build;
use crate::controller::Context;
use crate::database::credentials::{self, Change, Resolved};
use crate::database::provision;
use crate::labels::FIELD_MANAGER;
use crate::metrics::Outcome;
use crate::status::{self, DatabaseState, Failure, Observed};
use crate::validate::{self, DatabaseTarget, Tenant};
use crate::{Error, Result};

/// How often a settled tenant is looked at again without any event.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a converging tenant is looked at again.
const CONVERGING: Duration = Duration::from_secs(15);

/// The controller's reconciler.
pub async fn reconcile(tenant: Arc<CrmTenant>, context: Arc<Context>) -> Result<Action> {
    let span = tracing::info_span!(
        "reconcile",
        tenant = %tenant.name_any(),
        namespace = %tenant.namespace().unwrap_or_default(),
        trace_id = %trace_id(),
    );
    reconcile_traced(tenant, context).instrument(span).await
}

/// A W3C-style trace id (32 hex digits) that ties one reconcile's log lines
/// together; all zeros only if the system has no random bytes to give.
fn trace_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

async fn reconcile_traced(tenant: Arc<CrmTenant>, context: Arc<Context>) -> Result<Action> {
    context.caches_synced().await;
    let started = Instant::now();
    let limit = context.settings.reconcile_timeout;
    let result = tokio::time::timeout(limit, reconcile_tenant(&tenant, &context))
        .await
        .unwrap_or(Err(Error::Timeout(limit)));
    match &result {
        Ok(_) => context.succeeded(&tenant),
        Err(error) => {
            report_failure(&tenant, &context, error).await;
            context.metrics.failed(error.reason());
        }
    }
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Error
    };
    context.metrics.reconciled(outcome, started.elapsed());
    result
}

async fn reconcile_tenant(tenant: &CrmTenant, context: &Context) -> Result<Action> {
    if provision::deleting(tenant) {
        return provision::finalize(tenant, context).await;
    }
    let mut validated = validate::validate(tenant)?;
    if let Some(image) = &context.settings.default_image
        && tenant
            .spec
            .server
            .as_ref()
            .and_then(|s| s.image.as_ref())
            .is_none()
    {
        validated.server.image.clone_from(image);
    }
    let paused = paused(tenant);
    let mut report = Report::default();
    let mut rotated = Vec::new();
    let mut database_rotated = false;
    let mut shared = None;
    if !paused {
        let (api_key, password) = resolve_credentials(tenant, &validated, context).await?;
        let mut desired = build::build(&validated, &credentials::credentials(&api_key, &password));
        credentials::mark(&mut desired.api_secret, &api_key);
        if let Some(secret) = desired.database_secret.as_mut() {
            credentials::mark(secret, &password);
        }
        if let DatabaseTarget::Shared { server } = &validated.database.mode {
            // The server learns a new password before the Secret holds it, so
            // pods started from the Secret always find it accepted.
            provision::add_finalizer(context, tenant).await?;
            let provisioned =
                provision::provision(context, &validated, server, &password.value).await?;
            if let Some(secret) = desired.database_secret.as_mut() {
                build::secret::add_shared_connection(
                    secret,
                    &provisioned.names.role,
                    &provisioned.names.database,
                    &provisioned.url,
                );
            }
            shared = Some(provisioned);
        } else {
            provision::left_shared_mode(tenant, context).await?;
        }
        report = apply::apply_all(&context.client, &context.stores, &validated, &desired).await?;
        context
            .metrics
            .wrote(report.applied.len(), report.pruned.len());
        if api_key.change == Some(Change::Rotated) {
            rotated.push("API key");
        }
        if password.change == Some(Change::Rotated) && desired.database_secret.is_some() {
            database_rotated = true;
            rotated.push(if shared.is_some() {
                "database password (set on the shared server first, then in the Secret)"
            } else {
                "database password"
            });
        }
    }
    let mut observed = observe(&validated, context, paused);
    if let Some(provisioned) = &shared {
        observed.database = DatabaseState {
            ready: true,
            reason: "Ready".into(),
            message: format!(
                "role and database {} ready on shared server {}",
                provisioned.names.database, provisioned.server
            ),
        };
    }
    if database_rotated {
        observed.credentials_rotated_at = Some(now());
    }
    let new_status = status::status(&validated, &observed, tenant.status.as_ref(), &now());
    let ready = new_status.phase == Some(Phase::Ready);
    publish_events(tenant, context, &report, &rotated, &new_status).await;
    if let Some(provisioned) = &shared {
        provision::publish_provisioned(tenant, context, provisioned).await;
    }
    if tenant.status.as_ref() != Some(&new_status) {
        patch_status(tenant, context, &new_status).await?;
    }
    let mut next = if ready || paused { RESYNC } else { CONVERGING };
    if report.awaited {
        // An entry of the ledger stood in for the cache; should the watch
        // never show that write, drift is still caught when it expires.
        next = next.min(crate::ledger::WINDOW);
    }
    Ok(Action::requeue(next))
}

fn paused(tenant: &CrmTenant) -> bool {
    tenant
        .annotations()
        .get(annotation::RECONCILE)
        .map(String::as_str)
        == Some("paused")
}

async fn resolve_credentials(
    tenant: &CrmTenant,
    validated: &Tenant,
    context: &Context,
) -> Result<(Resolved, Resolved)> {
    let request = |key: &str| tenant.annotations().get(key).map(String::as_str);
    let api_secret = existing_secret(context, validated, "api").await?;
    let api_key = credentials::resolve(
        api_secret.as_ref(),
        credentials::API_KEY,
        request(annotation::ROTATE_API_KEY),
    )?;
    // Only Managed and Shared keep a password; other modes never look one up.
    let db_secret = match validated.database.mode {
        DatabaseTarget::Managed { .. } | DatabaseTarget::Shared { .. } => {
            existing_secret(context, validated, "db").await?
        }
        DatabaseTarget::Embedded | DatabaseTarget::External { .. } => None,
    };
    let password = credentials::resolve(
        db_secret.as_ref(),
        credentials::PASSWORD,
        request(annotation::ROTATE_DATABASE_CREDENTIALS),
    )?;
    Ok((api_key, password))
}

/// `<t>-<suffix>` from the cache or, when the cache has not seen it (yet), from
/// the API server: credentials are generated only when the Secret really does
/// not exist, never because a watch event is late. The read happens once per
/// missing Secret, so only while a tenant is being created.
async fn existing_secret(
    context: &Context,
    tenant: &Tenant,
    suffix: &str,
) -> Result<Option<Secret>> {
    let name = format!("{}-{suffix}", tenant.name);
    let cached = context
        .stores
        .secrets
        .get(&ObjectRef::new(&name).within(&tenant.namespace));
    if let Some(secret) = cached {
        return Ok(Some(Secret::clone(&secret)));
    }
    let api: Api<Secret> = Api::namespaced(context.client.clone(), &tenant.namespace);
    api.get_opt(&name)
        .await
        .map_err(|source| Error::ReadSecret { name, source })
}

/// What the caches say about the tenant's running objects.
fn observe(tenant: &Tenant, context: &Context, paused: bool) -> Observed {
    let deployment = context
        .stores
        .deployments
        .get(&ObjectRef::new(&tenant.name).within(&tenant.namespace));
    let deployment_status = deployment.as_ref().and_then(|d| d.status.as_ref());
    let ready_replicas = deployment_status
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let available_replicas = deployment_status
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    let desired_replicas = deployment
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas);
    let database = match &tenant.database.mode {
        DatabaseTarget::Managed { .. } => {
            let name = format!("{}-postgres", tenant.name);
            let statefulset = context
                .stores
                .statefulsets
                .get(&ObjectRef::new(&name).within(&tenant.namespace));
            let ready = statefulset
                .and_then(|s| s.status.as_ref().and_then(|s| s.ready_replicas))
                .unwrap_or(0)
                >= 1;
            database_state(
                ready,
                "PostgreSQL StatefulSet ready",
                "waiting for the PostgreSQL StatefulSet",
            )
        }
        // The server's readiness probe checks its database, so a ready replica
        // means the database answered with the tenant's credentials.
        _ => database_state(
            available_replicas >= 1,
            "a CRM server replica reached its database",
            "waiting for a CRM server replica to reach its database",
        ),
    };
    Observed {
        ready_replicas,
        available_replicas,
        desired_replicas,
        database,
        error: None,
        paused,
        deleting: false,
        credentials_rotated_at: None,
    }
}

fn database_state(ready: bool, ready_message: &str, waiting_message: &str) -> DatabaseState {
    DatabaseState {
        ready,
        reason: if ready { "Ready" } else { "Provisioning" }.into(),
        message: if ready {
            ready_message
        } else {
            waiting_message
        }
        .into(),
    }
}

async fn patch_status(
    tenant: &CrmTenant,
    context: &Context,
    status: &CrmTenantStatus,
) -> Result<()> {
    let name = tenant.name_any();
    let api = context.tenants(tenant);
    // Apply (not merge): a field we stop sending, such as a cleared
    // minCpuForSlo, is removed rather than left behind.
    let patch = json!({
        "apiVersion": crm_crds::API_VERSION,
        "kind": crm_crds::KIND,
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::PatchStatus { name, source })?;
    Ok(())
}

/// Writes Degraded (or Stalled, for a permanent error) and a Warning Event.
async fn report_failure(tenant: &CrmTenant, context: &Context, error: &Error) {
    publish(
        tenant,
        context,
        EventType::Warning,
        error.reason(),
        &error.to_string(),
    )
    .await;
    let Ok(validated) = validate::validate(tenant) else {
        return write_invalid_status(tenant, context, error).await;
    };
    let mut observed = observe(&validated, context, paused(tenant));
    observed.error = Some(failure(error));
    observed.deleting = provision::deleting(tenant);
    if let Some((reason, message)) = error.database_failure() {
        observed.database = DatabaseState {
            ready: false,
            reason: reason.to_owned(),
            message,
        };
    }
    let new_status = status::status(&validated, &observed, tenant.status.as_ref(), &now());
    if tenant.status.as_ref() != Some(&new_status)
        && let Err(e) = patch_status(tenant, context, &new_status).await
    {
        tracing::warn!(tenant = %tenant.name_any(), error = %e, "could not record the failure in status");
    }
}

/// An invalid spec has no sizing: status keeps what it had and says why.
async fn write_invalid_status(tenant: &CrmTenant, context: &Context, error: &Error) {
    let mut new_status = tenant.status.clone().unwrap_or_default();
    new_status.phase = Some(Phase::Degraded);
    new_status.observed_generation = tenant.meta().generation;
    let now = now();
    let generation = tenant.meta().generation;
    for (type_, value, reason) in [
        (crm_crds::condition::READY, "False", error.reason()),
        (crm_crds::condition::STALLED, "True", error.reason()),
        (crm_crds::condition::RECONCILING, "False", "Stalled"),
    ] {
        upsert_condition(
            &mut new_status,
            type_,
            value,
            reason,
            &error.to_string(),
            generation,
            &now,
        );
    }
    if tenant.status.as_ref() != Some(&new_status)
        && let Err(e) = patch_status(tenant, context, &new_status).await
    {
        tracing::warn!(tenant = %tenant.name_any(), error = %e, "could not record the failure in status");
    }
}

fn upsert_condition(
    status: &mut CrmTenantStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    let previous = status.conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = previous
        .map(|i| &status.conditions[i])
        .filter(|c| c.status == value)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    let condition = Condition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => status.conditions[i] = condition,
        None => status.conditions.push(condition),
    }
}

fn failure(error: &Error) -> Failure {
    Failure {
        reason: error.reason().to_owned(),
        message: error.to_string(),
        permanent: !error.is_transient(),
    }
}

/// Created, scaled, rotated and recovered: what `kubectl describe` should tell.
async fn publish_events(
    tenant: &CrmTenant,
    context: &Context,
    report: &Report,
    rotated: &[&str],
    new: &CrmTenantStatus,
) {
    let previous = tenant.status.as_ref();
    if previous.and_then(|s| s.phase).is_none() && !report.applied.is_empty() {
        let note = format!("created {}", report.applied.join(", "));
        publish(tenant, context, EventType::Normal, "Created", &note).await;
    } else if !report.applied.is_empty() || !report.pruned.is_empty() {
        let mut changes = report.applied.clone();
        changes.extend(report.pruned.iter().map(|p| format!("{p} (removed)")));
        publish(
            tenant,
            context,
            EventType::Normal,
            "Updated",
            &changes.join(", "),
        )
        .await;
    }
    if let (Some(old), Some(new)) = (
        previous.and_then(|s| s.sizing.as_ref()),
        new.sizing.as_ref(),
    ) && (old.min_replicas, old.max_replicas, old.replicas)
        != (new.min_replicas, new.max_replicas, new.replicas)
    {
        let note = format!(
            "replicas {}..{} (peak {}) → {}..{} (peak {}) for {} req/s at peak",
            old.min_replicas,
            old.max_replicas,
            old.replicas,
            new.min_replicas,
            new.max_replicas,
            new.replicas,
            new.peak_requests_per_second
        );
        publish(tenant, context, EventType::Normal, "Scaled", &note).await;
    }
    for what in rotated {
        publish(
            tenant,
            context,
            EventType::Normal,
            "CredentialsRotated",
            &format!("{what} rotated; pods roll to pick it up"),
        )
        .await;
    }
    if previous.and_then(|s| s.phase) == Some(Phase::Degraded) && new.phase != Some(Phase::Degraded)
    {
        publish(
            tenant,
            context,
            EventType::Normal,
            "Recovered",
            "reconciled again after a failure",
        )
        .await;
    }
}

/// Publishes an Event about the tenant; a failure to publish is only logged.
pub(crate) async fn publish(
    tenant: &CrmTenant,
    context: &Context,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = context
        .recorder
        .publish(&event, &tenant.object_ref(&()))
        .await
    {
        tracing::warn!(tenant = %tenant.name_any(), %error, "could not publish an Event");
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}
