//! One reconcile of one tenant, a one-way pipeline:
//!
//! ```text
//! validate ─► resolve ─► build ─► apply (+ prune) ─► status ─► write status, publish Events
//! (pure)      (credentials,  (pure,     (server-side)    (pure)
//!              Shared role    complete)
//!              and database)
//! ```
//!
//! No stage changes what an earlier one produced: build gets everything it
//! needs (the credentials, the Shared connection, the default image) and
//! its objects go out as built.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_crds::{CrmTenant, CrmTenantStatus, Phase, annotation};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use crate::apply::{self, Report};
use crate::autopilot;
use crate::build::{self, Credentials};
use crate::context::Context;
use crate::database::credentials::{self, Change};
use crate::database::provision::{self, Provisioned};
use crate::events::{self, publish};
use crate::labels::FIELD_MANAGER;
use crate::metrics::Outcome;
use crate::status::{self, DatabaseState, Failure, Observed};
use crate::validate::{self, DatabaseTarget, Tenant, TransferState, ValidationError};
use crate::{Error, Result};

mod measure;
mod retire;
mod transfer;

use measure::{Measured, measure, publish_resize};

/// How often a settled tenant is looked at again without any event.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a converging tenant is looked at again without any event: what
/// it waits for comes as watch events. At 15 s, a first pass of 5,000
/// tenants reconciled each one six times.
const CONVERGING: Duration = Duration::from_secs(60);

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
    let measured = measure(&tenant, &context).await;
    let validated =
        validate::validate_learned(&tenant, &context.platform(), measured.learned.as_ref());
    let result = tokio::time::timeout(
        limit,
        reconcile_tenant(&tenant, &validated, &measured, &context),
    )
    .await
    .unwrap_or(Err(Error::Timeout(limit)));
    match &result {
        Ok(_) => context.succeeded(&tenant),
        Err(error) => {
            report_failure(&tenant, validated.as_ref().ok(), &context, error).await;
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

async fn reconcile_tenant(
    tenant: &CrmTenant,
    validated: &std::result::Result<Tenant, ValidationError>,
    measured: &Measured,
    context: &Context,
) -> Result<Action> {
    if provision::deleting(tenant) {
        context.written.forget(tenant);
        if let Some(prometheus) = &context.prometheus {
            prometheus.forget(&tenant.namespace().unwrap_or_default(), &tenant.name_any());
        }
        return provision::finalize(tenant, context).await;
    }
    let validated = validated.as_ref().map_err(|e| Error::Invalid(e.clone()))?;
    let validated = &transfer::observe(validated, context);
    let paused = paused(tenant);
    let mut applied = None;
    let mut kept = Vec::new();
    if !paused {
        let resolved = resolve(tenant, validated, context).await?;
        let desired = build::build(validated, &resolved.credentials);
        kept = retire::kept(tenant, validated, context, &desired);
        let report =
            apply::apply_all(&context.client, &context.stores, validated, &desired, &kept).await?;
        context
            .metrics
            .wrote(report.applied.len(), report.pruned.len());
        applied = Some((resolved, report));
    }
    let settled = !paused && retire::settle(tenant, validated, context, &kept).await;
    let mut observed = observe(validated, context, paused, applied.as_ref().map(|(r, _)| r));
    observed.old_database_settled = settled;
    observed.load = measured.sample.as_ref().and_then(|sample| {
        let replicas = u32::try_from(observed.ready_replicas).unwrap_or(0);
        autopilot::observed(sample, &validated.inputs, replicas, &now())
    });
    observed.autopilot = measured.verdict.clone();
    let previous = context.written.current(tenant);
    let new_status = status::status(validated, &observed, previous.as_ref(), &now());
    let ready = new_status.phase == Some(Phase::Ready);
    if previous.as_ref() != Some(&new_status) {
        patch_status(tenant, context, &new_status).await?;
    }
    if measured.verdict.as_ref().is_some_and(|v| v.calibrated) {
        publish_resize(tenant, context, previous.as_ref(), &new_status).await;
    }
    let awaited = applied.as_ref().is_some_and(|(_, report)| report.awaited);
    if let Some((resolved, report)) = &applied {
        events::publish_changes(
            tenant,
            context,
            previous.as_ref(),
            report,
            &resolved.rotated,
            &new_status,
        )
        .await;
        if let Some(provisioned) = &resolved.shared {
            provision::publish_provisioned(tenant, context, provisioned).await;
        }
    } else {
        let unchanged = Report::default();
        events::publish_changes(
            tenant,
            context,
            previous.as_ref(),
            &unchanged,
            &[],
            &new_status,
        )
        .await;
    }
    let mut next = if ready || paused { RESYNC } else { CONVERGING };
    if context.prometheus.is_some() && !paused {
        next = next.min(validated.autopilot.interval);
    }
    if validated.transfer.as_ref().is_some_and(|t| {
        matches!(
            t.state,
            TransferState::Succeeded | TransferState::Failed { .. }
        )
    }) {
        // The move or restore ended here, which changes what the next build
        // wants (its Job goes); our own status write wakes no one.
        next = next.min(Duration::from_secs(1));
    }
    if awaited {
        // An entry of the ledger stood in for the cache; should the watch
        // never show that write, drift is still caught when it expires.
        next = next.min(crate::ledger::WINDOW);
    }
    Ok(Action::requeue(next))
}

/// What build needs from outside the spec, and what finding it changed.
#[derive(Debug)]
struct Resolved {
    /// The values the tenant's Secrets carry.
    credentials: Credentials,
    /// Credentials rotated by this reconcile, for the Events.
    rotated: Vec<&'static str>,
    /// Whether the database password was among them.
    database_rotated: bool,
    /// Shared: the role and database on the shared server.
    shared: Option<Provisioned>,
}

/// Credentials (kept, generated or rotated) and, for Shared, the tenant's
/// role and database: the server learns a new password before any Secret
/// holds it, so pods started from the Secret always find it accepted.
async fn resolve(tenant: &CrmTenant, validated: &Tenant, context: &Context) -> Result<Resolved> {
    let request = |key: &str| tenant.annotations().get(key).map(String::as_str);
    let api_secret = existing_secret(context, validated, "api").await?;
    let api_key = credentials::resolve(
        api_secret.as_ref(),
        credentials::API_KEY,
        request(annotation::ROTATE_API_KEY),
    )?;
    // Generated once; the server only reads it to create the first admin.
    let admin_secret = existing_secret(context, validated, "admin").await?;
    let admin_password =
        credentials::resolve(admin_secret.as_ref(), credentials::ADMIN_PASSWORD, None)?;
    // Only Managed and Shared keep a password; other modes never look one
    // up. During a move, the database in use counts too.
    let serving = validated.serving();
    let keeps_password = build::secret::keeps_url(&validated.database)
        || build::secret::keeps_url(&serving.database);
    let db_secret = if keeps_password {
        existing_secret(context, validated, "db").await?
    } else {
        None
    };
    let password = credentials::resolve(
        db_secret.as_ref(),
        credentials::PASSWORD,
        request(annotation::ROTATE_DATABASE_CREDENTIALS),
    )?;
    let shared = if let DatabaseTarget::Shared { server } = &validated.database.mode {
        provision::add_finalizer(context, tenant).await?;
        Some(provision::provision(context, validated, server, &password.value).await?)
    } else {
        if !matches!(serving.database.mode, DatabaseTarget::Shared { .. })
            && !retire::holds_shared(tenant, validated, context)
        {
            provision::left_shared_mode(tenant, context).await?;
        }
        None
    };
    // Moving away from a Shared database: its URL stays in `<t>-db` for
    // the pods until the copy is verified.
    let url_in_use = match &serving.database.mode {
        DatabaseTarget::Shared { .. } if serving.database != validated.database => db_secret
            .as_ref()
            .and_then(|s| s.data.as_ref()?.get(build::secret::URL))
            .and_then(|url| String::from_utf8(url.0.clone()).ok()),
        _ => None,
    };
    let mut rotated = Vec::new();
    if api_key.change == Some(Change::Rotated) {
        rotated.push("API key");
    }
    let database_rotated = password.change == Some(Change::Rotated) && keeps_password;
    if database_rotated {
        rotated.push(if shared.is_some() {
            "database password (set on the shared server first, then in the Secret)"
        } else {
            "database password"
        });
    }
    let connection = shared.as_ref().map(Provisioned::connection);
    let mut credentials =
        credentials::credentials(&api_key, &password, &admin_password, connection);
    credentials.url_in_use = url_in_use;
    Ok(Resolved {
        credentials,
        rotated,
        database_rotated,
        shared,
    })
}

fn paused(tenant: &CrmTenant) -> bool {
    tenant
        .annotations()
        .get(annotation::RECONCILE)
        .map(String::as_str)
        == Some("paused")
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
    let stores = &context.stores;
    match stores
        .secrets
        .get(&ObjectRef::new(&name).within(&tenant.namespace))
    {
        // The cached form converts back; should it not, the API server's copy serves.
        Some(cached) => {
            if let Ok(secret) = cached.to_object() {
                return Ok(Some(secret));
            }
        }
        None if stores.surely_absent::<Secret>(&tenant.namespace, &name) => return Ok(None),
        None => {}
    }
    let api: Api<Secret> = Api::namespaced(context.client.clone(), &tenant.namespace);
    api.get_opt(&name)
        .await
        .map_err(|source| Error::ReadSecret { name, source })
}

/// What the caches say about the tenant's running objects.
fn observe(
    tenant: &Tenant,
    context: &Context,
    paused: bool,
    resolved: Option<&Resolved>,
) -> Observed {
    let deployment = context
        .stores
        .deployments
        .get(&ObjectRef::new(&tenant.name).within(&tenant.namespace));
    let deployment = deployment.and_then(|d| d.to_object().ok());
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
    let shared = resolved.and_then(|r| r.shared.as_ref());
    let database = match &tenant.database.mode {
        DatabaseTarget::Shared { .. } if let Some(provisioned) = shared => DatabaseState {
            ready: true,
            reason: "Ready".into(),
            message: format!(
                "role and database {} ready on shared server {}",
                provisioned.names.database, provisioned.server
            ),
        },
        DatabaseTarget::Managed { .. } => {
            let name = format!("{}-postgres", tenant.name);
            let statefulset = context
                .stores
                .statefulsets
                .get(&ObjectRef::new(&name).within(&tenant.namespace));
            let ready = statefulset
                .and_then(|s| s.to_object().ok()?.status?.ready_replicas)
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
        credentials_rotated_at: resolved.is_some_and(|r| r.database_rotated).then(now),
        backup: transfer::backup_status(tenant, context),
        load: None,
        autopilot: None,
        old_database_settled: false,
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
    /// The status as a tenant of its own, for server-side apply.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct StatusOnly<'a> {
        api_version: &'static str,
        kind: &'static str,
        status: &'a CrmTenantStatus,
    }
    let name = tenant.name_any();
    // Apply (not merge): a field we stop sending, such as a cleared
    // minCpuForSlo, is removed rather than left behind.
    let patch = StatusOnly {
        api_version: crm_crds::API_VERSION,
        kind: crm_crds::KIND,
        status,
    };
    crate::client::patch::<CrmTenant, _>(
        &context.client,
        &tenant.namespace().unwrap_or_default(),
        Some("status"),
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::PatchStatus { name, source })?;
    context.written.record(tenant, status);
    Ok(())
}

/// Writes Degraded (or Stalled, for a permanent error) and a Warning Event.
async fn report_failure(
    tenant: &CrmTenant,
    validated: Option<&Tenant>,
    context: &Context,
    error: &Error,
) {
    publish(
        tenant,
        context,
        EventType::Warning,
        error.reason(),
        &error.to_string(),
    )
    .await;
    let previous = context.written.current(tenant);
    let new_status = match validated {
        Some(validated) => {
            let mut observed = observe(validated, context, paused(tenant), None);
            observed.error = Some(failure(error));
            observed.deleting = provision::deleting(tenant);
            if let Some((reason, message)) = error.database_failure() {
                observed.database = DatabaseState {
                    ready: false,
                    reason: reason.to_owned(),
                    message,
                };
            }
            status::status(validated, &observed, previous.as_ref(), &now())
        }
        // An invalid spec has no sizing: status keeps what it had and says why.
        None => status::invalid(
            previous.as_ref(),
            tenant.meta().generation,
            &failure(error),
            &now(),
        ),
    };
    if previous.as_ref() != Some(&new_status)
        && let Err(e) = patch_status(tenant, context, &new_status).await
    {
        tracing::warn!(tenant = %tenant.name_any(), error = %e, "could not record the failure in status");
    }
}

fn failure(error: &Error) -> Failure {
    Failure {
        reason: error.reason().to_owned(),
        message: error.to_string(),
        permanent: !error.is_transient(),
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}
