//! The data a verified move left behind follows `deletionPolicy` once the
//! switch is complete, that is once every replica runs the writable template
//! on the new database: before that, a read-only replica may still read it.
//!
//! ```text
//! move verified ─► status.oldDatabase ─► rollout complete ─► Shared: drop (Delete) / disable login (Retain)
//!   old objects kept from pruning ──────────────────────────► Managed, Embedded: deleted, data by deletionPolicy
//!                                                            every mode: an Event saying where the data is
//! ```
//!
//! Until then the old database's objects (a Managed server with its Service,
//! NetworkPolicy and credentials, an Embedded volume) are [`kept`] from the
//! pruning of what the spec no longer asks for; [`settle`] deletes them, the
//! data among them only under `deletionPolicy: Delete` (a Managed server's
//! volumes go with its StatefulSet by its claim retention policy).

use crm_crds::{CrmTenant, DatabaseInUse, DatabaseMode, DeletionPolicy, annotation};
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::transfer::rolled_out;
use crate::apply;
use crate::build::{self, Desired};
use crate::context::Context;
use crate::database::provision;
use crate::events::publish;
use crate::validate::{DatabaseTarget, Tenant, TransferKind, TransferState};

/// The old database's objects that the spec no longer asks for, to be kept
/// from pruning: from the reconcile that switches the pods to the new
/// database until [`settle`] sees the switch complete.
pub(super) fn kept(
    tenant: &CrmTenant,
    validated: &Tenant,
    context: &Context,
    desired: &Desired,
) -> Vec<(&'static str, String)> {
    let switching = validated.transfer.as_ref().and_then(|t| match &t.kind {
        TransferKind::Migrate { from } if t.state == TransferState::Succeeded => {
            Some(from.mode.mode())
        }
        _ => None,
    });
    let pending = || Some(context.written.current(tenant)?.old_database?.mode);
    let Some(mode) = switching.or_else(pending) else {
        return Vec::new();
    };
    let wanted = desired.names();
    objects(validated, mode)
        .into_iter()
        .filter(|(kind, name)| !wanted.contains(&(*kind, name.as_str())))
        .collect()
}

/// What a database of `mode` is made of among the tenant's objects.
fn objects(tenant: &Tenant, mode: DatabaseMode) -> Vec<(&'static str, String)> {
    let postgres = build::postgres_name(tenant);
    let credentials = ("Secret", build::database_secret_name(tenant));
    match mode {
        DatabaseMode::Managed => vec![
            ("StatefulSet", postgres.clone()),
            ("Service", postgres.clone()),
            ("NetworkPolicy", postgres),
            credentials,
        ],
        DatabaseMode::Shared => vec![credentials],
        DatabaseMode::Embedded => vec![("PersistentVolumeClaim", build::data_volume_name(tenant))],
        DatabaseMode::External => Vec::new(),
    }
}

/// Settles the old database once the switch is complete, deleting its
/// `kept` objects; true when it did. A shared server that cannot be reached
/// (or a deletion that fails) is only reported, with a Warning: the tenant
/// runs on its new database, and the next reconcile tries again.
pub(super) async fn settle(
    tenant: &CrmTenant,
    validated: &Tenant,
    context: &Context,
    kept: &[(&'static str, String)],
) -> bool {
    let previous = context.written.current(tenant);
    let Some(old) = previous.and_then(|p| p.old_database) else {
        return false;
    };
    if validated.transfer.is_some() || !rolled_out(validated, context, false) {
        return false;
    }
    match apply::prune_only(&context.client, &context.stores, validated, kept).await {
        Ok(pruned) => context.metrics.wrote(0, pruned.len()),
        Err(error) => {
            cleanup_failed(tenant, context, &error).await;
            return false;
        }
    }
    let policy = validated.database.deletion_policy;
    let note = match (&old.server, old.mode) {
        (Some(server), DatabaseMode::Shared) => {
            match shared(tenant, validated, context, server, policy).await {
                Ok(note) => note,
                Err(error) => {
                    cleanup_failed(tenant, context, &error).await;
                    return false;
                }
            }
        }
        _ => owned(validated, &old, policy),
    };
    let reason = match policy {
        DeletionPolicy::Delete => "OldDatabaseDeleted",
        DeletionPolicy::Retain => "OldDatabaseRetained",
    };
    let moved = format!(
        "the data moved to the {:?} database; deletionPolicy {policy:?}: ",
        validated.database.mode.mode()
    );
    publish(tenant, context, EventType::Normal, reason, &(moved + &note)).await;
    true
}

async fn cleanup_failed(tenant: &CrmTenant, context: &Context, error: &crate::Error) {
    let note = format!("the old database's data could not follow deletionPolicy yet: {error}");
    publish(
        tenant,
        context,
        EventType::Warning,
        "OldDatabaseCleanupFailed",
        &note,
    )
    .await;
}

/// Whether the tenant's role and database on a shared server still await
/// a move's end: the finalizer then stays, whatever the spec's mode.
pub(super) fn holds_shared(tenant: &CrmTenant, validated: &Tenant, context: &Context) -> bool {
    let moving_from_shared = validated.transfer.as_ref().is_some_and(|t| {
        matches!(&t.kind, TransferKind::Migrate { from } if matches!(from.mode, DatabaseTarget::Shared { .. }))
    });
    let left = context
        .written
        .current(tenant)
        .and_then(|p| p.old_database)
        .is_some_and(|old| old.mode == DatabaseMode::Shared);
    moving_from_shared || left
}

/// The role and database on `server`: dropped, or kept without login. The
/// finalizer goes once no shared server holds anything of the tenant.
async fn shared(
    tenant: &CrmTenant,
    validated: &Tenant,
    context: &Context,
    server: &str,
    policy: DeletionPolicy,
) -> crate::Result<String> {
    let names = crate::database::sql::names(&validated.namespace, &validated.name);
    let note = if tenant
        .annotations()
        .contains_key(annotation::SKIP_DATABASE_CLEANUP)
    {
        format!(
            "{} is set: role and database {} left on shared server {server} as they were",
            annotation::SKIP_DATABASE_CLEANUP,
            names.database
        )
    } else {
        provision::clean_up(tenant, context, server, policy).await?;
        match policy {
            DeletionPolicy::Delete => format!(
                "database and role {} dropped on shared server {server}",
                names.database
            ),
            DeletionPolicy::Retain => format!(
                "database {} kept on shared server {server}, its role can no longer log in",
                names.database
            ),
        }
    };
    if !matches!(validated.database.mode, DatabaseTarget::Shared { .. }) {
        provision::remove_finalizer(context, tenant).await?;
    }
    Ok(note)
}

/// Where a Managed server's or an Embedded volume's data went: deleted with
/// the old database's objects, its volumes by `deletionPolicy`.
fn owned(validated: &Tenant, old: &DatabaseInUse, policy: DeletionPolicy) -> String {
    let (namespace, name) = (&validated.namespace, &validated.name);
    match (old.mode, policy) {
        (DatabaseMode::Managed, DeletionPolicy::Delete) => format!(
            "the PostgreSQL StatefulSet {name}-postgres was deleted with its volume data-{name}-postgres-0"
        ),
        (DatabaseMode::Managed, DeletionPolicy::Retain) => format!(
            "the PostgreSQL StatefulSet {name}-postgres was deleted; its data stays in volume {namespace}/data-{name}-postgres-0"
        ),
        (_, DeletionPolicy::Delete) => {
            format!("the Embedded volume {namespace}/{name}-data was deleted")
        }
        (_, DeletionPolicy::Retain) => {
            format!("the Embedded SQLite data stays in volume {namespace}/{name}-data")
        }
    }
}
