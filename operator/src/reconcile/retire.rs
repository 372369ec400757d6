//! The data a verified move left behind follows `deletionPolicy` once the
//! switch is complete, that is once every replica runs the writable template
//! on the new database: before that, a read-only replica may still read it.
//!
//! ```text
//! move verified ─► status.oldDatabase ─► rollout complete ─► Shared: drop (Delete) / disable login (Retain)
//!                                                            every mode: an Event saying where the data is
//! ```
//!
//! A Managed server and an Embedded volume are pruned with the rest of the
//! old database's objects (their volumes by `deletionPolicy`); here they
//! only get their Event.

use crm_crds::{CrmTenant, DatabaseInUse, DatabaseMode, DeletionPolicy, annotation};
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::transfer::rolled_out;
use crate::context::Context;
use crate::database::provision;
use crate::events::publish;
use crate::validate::{DatabaseTarget, Tenant, TransferKind};

/// Settles the old database once the switch is complete; true when it did.
/// A shared server that cannot be reached is only reported, with a Warning:
/// the tenant runs on its new database, and the next reconcile tries again.
pub(super) async fn settle(tenant: &CrmTenant, validated: &Tenant, context: &Context) -> bool {
    let previous = context.written.current(tenant);
    let Some(old) = previous.and_then(|p| p.old_database) else {
        return false;
    };
    if validated.transfer.is_some() || !rolled_out(validated, context, false) {
        return false;
    }
    let policy = validated.database.deletion_policy;
    let note = match (&old.server, old.mode) {
        (Some(server), DatabaseMode::Shared) => {
            match shared(tenant, validated, context, server, policy).await {
                Ok(note) => note,
                Err(error) => {
                    let note = format!(
                        "the old database's data could not follow deletionPolicy yet: {error}"
                    );
                    publish(
                        tenant,
                        context,
                        EventType::Warning,
                        "OldDatabaseCleanupFailed",
                        &note,
                    )
                    .await;
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

/// Where a Managed server's or an Embedded volume's data went: pruned with
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
