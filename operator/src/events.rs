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
    for (reason, type_, note) in transfer_changes(previous, new) {
        publish(tenant, context, type_, reason, &note).await;
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

/// A move or restore that started, succeeded or failed, from two statuses.
fn transfer_changes(
    previous: Option<&CrmTenantStatus>,
    new: &CrmTenantStatus,
) -> Vec<(&'static str, EventType, String)> {
    let mut events = Vec::new();
    let phase = |s: Option<&CrmTenantStatus>| s.and_then(|s| s.phase);
    for (entered, reason, note) in [
        (
            Phase::Migrating,
            "MigrationStarted",
            "read-only: the data moves to the database the spec names",
        ),
        (
            Phase::Restoring,
            "RestoreStarted",
            "read-only: a backup is restored",
        ),
    ] {
        if phase(Some(new)) == Some(entered) && phase(previous) != Some(entered) {
            events.push((reason, EventType::Normal, note.to_owned()));
        }
    }
    if let (Some(old), Some(now)) = (
        previous.and_then(|p| p.database.as_ref()),
        new.database.as_ref(),
    ) && old != now
    {
        let note = format!(
            "data moved from {:?} to {:?} and verified; the pods use the new database, writable",
            old.mode, now.mode
        );
        events.push(("Migrated", EventType::Normal, note));
    }
    if new.restored.is_some() && previous.and_then(|p| p.restored.as_ref()) != new.restored.as_ref()
    {
        let note = format!(
            "{} restored and verified; writable again",
            new.restored.as_deref().unwrap_or_default()
        );
        events.push(("Restored", EventType::Normal, note));
    }
    for type_ in [
        crm_crds::condition::MIGRATION_FAILED,
        crm_crds::condition::RESTORE_FAILED,
    ] {
        let failed = |s: Option<&CrmTenantStatus>| {
            s.into_iter()
                .flat_map(|s| &s.conditions)
                .find(|c| c.type_ == type_ && c.status == "True")
                .map(|c| c.message.clone())
        };
        if let Some(message) = failed(Some(new))
            && failed(previous).is_none()
        {
            events.push((type_, EventType::Warning, message));
        }
    }
    events
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
