//! Events: what `kubectl describe` tells a platform team about a tenant.
//! Publishing never fails a reconcile; a refused Event is only logged.

use crm_crds::{CrmTenant, CrmTenantStatus, Phase};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use crate::apply::Report;
use crate::context::Context;

/// Created, scaled, rotated and recovered: what `kubectl describe` should tell.
pub async fn publish_changes(
    tenant: &CrmTenant,
    context: &Context,
    previous: Option<&CrmTenantStatus>,
    report: &Report,
    rotated: &[&str],
    new: &CrmTenantStatus,
) {
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
pub async fn publish(
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
