//! Autopilot's side of a reconcile: the one read of Prometheus per
//! interval before validation, and the Event when the figures it learned
//! moved the replicas.

use crm_crds::{AutopilotStatus, CrmTenant, CrmTenantStatus};
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::{now, paused};
use crate::autopilot::{self, Sample, Verdict};
use crate::context::Context;
use crate::database::provision;
use crate::events::publish;
use crate::{model, validate};

/// What autopilot measured before this reconcile, and what it made of it.
#[derive(Debug, Default)]
pub(super) struct Measured {
    /// A new sample from Prometheus, when one was due and read.
    pub(super) sample: Option<Sample>,
    /// The figures to size from: new ones, else the status's.
    pub(super) learned: Option<AutopilotStatus>,
    /// The Autopilot condition's new verdict; None keeps the last.
    pub(super) verdict: Option<Verdict>,
}

/// Reads Prometheus once per interval (`spec.autopilot.intervalSeconds`),
/// when the operator has `--prometheus-url`, and learns from the answer
/// while autopilot is enabled. Nothing else in the reconcile does I/O for
/// autopilot: the result goes to validate and status as plain values.
pub(super) async fn measure(tenant: &CrmTenant, context: &Context) -> Measured {
    let settings = autopilot::Settings::from_spec(tenant.spec.autopilot.as_ref());
    let previous = context.written.current(tenant);
    let prior = previous.as_ref().and_then(|p| p.autopilot.clone());
    let mut measured = Measured {
        learned: prior.clone(),
        ..Measured::default()
    };
    let Some(prometheus) = &context.prometheus else {
        if settings.enabled {
            measured.verdict = Some(autopilot::unavailable(
                "the operator runs without --prometheus-url",
            ));
        }
        return measured;
    };
    let (namespace, name) = (tenant.namespace().unwrap_or_default(), tenant.name_any());
    let last = previous.as_ref().and_then(|p| p.observed.as_ref());
    if paused(tenant)
        || provision::deleting(tenant)
        || !autopilot::due(last, settings.interval, &now())
        || !prometheus.claim(&namespace, &name, settings.interval)
    {
        return measured;
    }
    let sample = match prometheus
        .sample(&namespace, &name, &settings.peak_window)
        .await
    {
        Ok(sample) => sample,
        Err(error) => {
            tracing::warn!(%error, "measuring the tenant's load failed");
            if settings.enabled {
                measured.verdict = Some(autopilot::unavailable(&error.to_string()));
            }
            return measured;
        }
    };
    let spec = model::Inputs::from_spec(&tenant.spec, validate::database_mode(tenant));
    if let (true, Ok(spec)) = (settings.enabled, spec) {
        match autopilot::learn(prior.as_ref(), autopilot::Start::of(&spec), &sample) {
            Ok(learned) => {
                measured.verdict = Some(autopilot::calibrated(&learned));
                measured.learned = Some(learned);
            }
            Err(verdict) => measured.verdict = Some(verdict),
        }
    }
    measured.sample = Some(sample);
    measured
}

/// An Event when autopilot's figures changed the replicas: before, after, why.
pub(super) async fn publish_resize(
    tenant: &CrmTenant,
    context: &Context,
    previous: Option<&CrmTenantStatus>,
    new: &CrmTenantStatus,
) {
    let range = |s: &crm_crds::Sizing| (s.replicas, s.min_replicas, s.max_replicas);
    let (Some(before), Some(after), Some(learned)) = (
        previous.and_then(|p| p.sizing.as_ref()),
        new.sizing.as_ref(),
        new.autopilot.as_ref(),
    ) else {
        return;
    };
    if range(before) == range(after) {
        return;
    }
    let note = format!(
        "peak replicas {} → {}, range {}..{} → {}..{}: measured peak {} req/s at {} ms CPU per request, service-time scv {} (was sized for {} req/s)",
        before.replicas,
        after.replicas,
        before.min_replicas,
        before.max_replicas,
        after.min_replicas,
        after.max_replicas,
        learned.peak_requests_per_second,
        learned.request_cpu_millis,
        learned
            .service_time_scv
            .map_or_else(|| "from the spec".into(), |s| s.to_string()),
        before.peak_requests_per_second,
    );
    publish(
        tenant,
        context,
        EventType::Normal,
        "AutopilotResized",
        &note,
    )
    .await;
}
