//! Shared mode inside the reconcile: the server's registration, the
//! finalizer, provisioning before the credentials Secret is written, and
//! cleanup by `deletionPolicy` when the tenant goes.
//!
//! ```text
//! reconcile:  finalizer ─► registration Secret ─► ensure role + database ─► apply <t>-db (url …)
//! deletion:   skip annotation? ─► drop (Delete) / disable login (Retain) ─► release finalizer
//! ```
//!
//! A shared server is registered by a Secret named after it, in the
//! operator's shared-servers namespace, whose key `url` holds an admin
//! connection URL. It is read with one GET per reconcile of a Shared tenant;
//! it is not watched, so a fixed registration is noticed by the next retry.

use crm_crds::{CrmTenant, DatabaseMode, DeletionPolicy, annotation};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::shared::{Change, SharedServer};
use super::sql::{self, Names};
use crate::build::SharedConnection;
use crate::context::Context;
use crate::events::publish;
use crate::validate::Tenant;
use crate::{Error, Result};

/// Held on a Shared tenant until its role and database are cleaned up.
pub const FINALIZER: &str = "crm.tenancy.dev/shared-database";
/// Key of the admin connection URL in a server's registration Secret.
pub const ADMIN_URL_KEY: &str = "url";

/// A tenant's role and database, provisioned. Debug leaves out the URL.
pub struct Provisioned {
    /// The server's registered name.
    pub server: String,
    /// Role and database.
    pub names: Names,
    /// What the pods connect with. Holds the password: never log it.
    pub url: String,
    /// What this reconcile changed on the server.
    pub changes: Vec<Change>,
}

impl std::fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioned")
            .field("server", &self.server)
            .field("names", &self.names)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl Provisioned {
    /// What build puts in `<t>-db`.
    pub fn connection(&self) -> SharedConnection {
        SharedConnection {
            username: self.names.role.clone(),
            database: self.names.database.clone(),
            url: self.url.clone(),
        }
    }
}

/// Connections the tenant's role may hold: its pool size times the most
/// replicas it can run, plus the pods a rolling update surges (25 %,
/// rounded up), so that an update at full scale is not refused connections.
pub fn connection_limit(tenant: &Tenant) -> i32 {
    let sizing = &tenant.capacity.sizing;
    let replicas = sizing.max_replicas.max(1);
    let surge = replicas.saturating_add(3) / 4;
    sizing
        .db_pool_size
        .max(1)
        .saturating_mul(replicas.saturating_add(surge))
}

/// The tenant's role and database on `server`, made to match `password`.
pub async fn provision(
    context: &Context,
    tenant: &Tenant,
    server: &str,
    password: &str,
) -> Result<Provisioned> {
    let shared = registered(context, server).await?;
    let names = sql::names(&tenant.namespace, &tenant.name);
    let changes = shared
        .ensure(&names, password, connection_limit(tenant))
        .await
        .map_err(|source| Error::SharedDatabase {
            server: server.to_owned(),
            source,
        })?;
    Ok(Provisioned {
        server: server.to_owned(),
        url: shared.tenant_url(&names, password),
        names,
        changes,
    })
}

/// The server `name` as its registration Secret describes it.
pub async fn registered(context: &Context, name: &str) -> Result<SharedServer> {
    let namespace = &context.settings.shared_servers_namespace;
    let problem = |problem: String, reason| Error::SharedServer {
        server: name.to_owned(),
        problem,
        reason,
    };
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    let secret = secrets.get_opt(name).await.map_err(|e| {
        problem(
            format!("reading its registration Secret {namespace}/{name}: {e}"),
            "ServerSecretUnreadable",
        )
    })?;
    let Some(secret) = secret else {
        return Err(problem(
            format!("not registered: no Secret {namespace}/{name}"),
            "ServerNotRegistered",
        ));
    };
    let url = secret
        .data
        .as_ref()
        .and_then(|d| d.get(ADMIN_URL_KEY))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .ok_or_else(|| {
            problem(
                format!("Secret {namespace}/{name} has no key `{ADMIN_URL_KEY}`"),
                "ServerNotRegistered",
            )
        })?;
    SharedServer::new(name, url.trim()).map_err(|e| {
        problem(
            format!(
                "Secret {namespace}/{name}, key `{ADMIN_URL_KEY}`: {}",
                e.message
            ),
            "InvalidServerUrl",
        )
    })
}

/// Whether the tenant holds the Shared-database finalizer.
pub fn has_finalizer(tenant: &CrmTenant) -> bool {
    tenant.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds the finalizer before anything exists on the server to clean up.
pub async fn add_finalizer(context: &Context, tenant: &CrmTenant) -> Result<()> {
    if has_finalizer(tenant) {
        return Ok(());
    }
    let mut finalizers = tenant.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    patch_finalizers(context, tenant, finalizers).await
}

/// Releases the finalizer; the API server then finishes a pending deletion.
pub async fn remove_finalizer(context: &Context, tenant: &CrmTenant) -> Result<()> {
    if !has_finalizer(tenant) {
        return Ok(());
    }
    let finalizers = tenant
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(context, tenant, finalizers).await
}

/// A merge patch carrying the resourceVersion the list was read at: should
/// someone else have changed the finalizers meanwhile, the API server answers
/// 409 and the reconcile is retried with the fresh list.
async fn patch_finalizers(
    context: &Context,
    tenant: &CrmTenant,
    finalizers: Vec<String>,
) -> Result<()> {
    let name = tenant.name_any();
    let api = context.tenants(tenant);
    let patch = json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": tenant.resource_version() }
    });
    // Named, so the finalizers' owner reads `crm-operator` in managedFields.
    let params = PatchParams {
        field_manager: Some(crate::labels::FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(&name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Finalizer { name, source })?;
    Ok(())
}

/// The shared servers holding the tenant's role and database, read from
/// the raw spec (so that even a tenant whose spec no longer validates can
/// be cleaned up) and from `status.oldDatabase`, which a move away from a
/// Shared database leaves until its data has followed `deletionPolicy`.
fn shared_servers_of(tenant: &CrmTenant) -> Vec<&str> {
    let spec = tenant.spec.database.as_ref().and_then(|database| {
        (crate::validate::database_mode(tenant) == DatabaseMode::Shared)
            .then_some(database.shared.as_ref()?.server.as_str())
    });
    let old = tenant
        .status
        .as_ref()
        .and_then(|s| s.old_database.as_ref())
        .filter(|old| old.mode == DatabaseMode::Shared)
        .and_then(|old| old.server.as_deref());
    let mut servers: Vec<&str> = spec.into_iter().chain(old).collect();
    servers.dedup();
    servers
}

/// Drops the tenant's role and database on `server` (Delete), or keeps
/// them with the role's login disabled (Retain); names them.
pub async fn clean_up(
    tenant: &CrmTenant,
    context: &Context,
    server: &str,
    policy: DeletionPolicy,
) -> Result<Names> {
    let names = sql::names(&tenant.namespace().unwrap_or_default(), &tenant.name_any());
    let shared = registered(context, server).await?;
    let cleaned = match policy {
        DeletionPolicy::Delete => shared.drop_tenant(&names).await,
        DeletionPolicy::Retain => shared.retain_tenant(&names).await,
    };
    cleaned.map_err(|source| Error::SharedDatabase {
        server: server.to_owned(),
        source,
    })?;
    Ok(names)
}

/// A Shared tenant being deleted: cleans up by `deletionPolicy`, then
/// releases the finalizer. While the server cannot be reached this fails,
/// and the tenant stays (phase Deleting) and is retried with backoff.
pub async fn finalize(tenant: &CrmTenant, context: &Context) -> Result<Action> {
    if !has_finalizer(tenant) {
        // Owner references let the garbage collector remove the children.
        return Ok(Action::await_change());
    }
    let servers = shared_servers_of(tenant);
    let names = sql::names(&tenant.namespace().unwrap_or_default(), &tenant.name_any());
    if servers.is_empty() {
        return remove_finalizer(context, tenant)
            .await
            .map(|()| Action::await_change());
    }
    if tenant
        .annotations()
        .contains_key(annotation::SKIP_DATABASE_CLEANUP)
    {
        let note = format!(
            "{}: role and database {} left on shared server {} as they were",
            annotation::SKIP_DATABASE_CLEANUP,
            names.database,
            servers.join(" and ")
        );
        publish(
            tenant,
            context,
            EventType::Warning,
            "DatabaseCleanupSkipped",
            &note,
        )
        .await;
        remove_finalizer(context, tenant).await?;
        return Ok(Action::await_change());
    }
    let policy = tenant
        .spec
        .database
        .as_ref()
        .map(|d| d.deletion_policy)
        .unwrap_or_default();
    for server in servers {
        clean_up(tenant, context, server, policy).await?;
        let (reason, note) = match policy {
            DeletionPolicy::Delete => (
                "DatabaseDropped",
                format!(
                    "deletionPolicy Delete: database and role {} dropped on shared server {server}",
                    names.database
                ),
            ),
            DeletionPolicy::Retain => (
                "DatabaseRetained",
                format!(
                    "deletionPolicy Retain: database {} kept on shared server {server}, its role can no longer log in",
                    names.database
                ),
            ),
        };
        publish(tenant, context, EventType::Normal, reason, &note).await;
    }
    remove_finalizer(context, tenant).await?;
    Ok(Action::await_change())
}

/// A tenant that left Shared mode without a recorded move (no status names
/// the server that held its role and database): they stay on the server,
/// and the finalizer goes, with a Warning saying what was left. A verified
/// move cleans up instead (`status.oldDatabase`).
pub async fn left_shared_mode(tenant: &CrmTenant, context: &Context) -> Result<()> {
    if !has_finalizer(tenant) {
        return Ok(());
    }
    let names = sql::names(&tenant.namespace().unwrap_or_default(), &tenant.name_any());
    let note = format!(
        "the database mode is no longer Shared: role and database {} stay on the shared server; remove them there when no longer needed",
        names.database
    );
    publish(
        tenant,
        context,
        EventType::Warning,
        "SharedDatabaseLeft",
        &note,
    )
    .await;
    remove_finalizer(context, tenant).await
}

/// What provisioning changed on the shared server, when it changed anything.
pub async fn publish_provisioned(tenant: &CrmTenant, context: &Context, provisioned: &Provisioned) {
    use crate::database::shared::Change as Db;
    if provisioned.changes.is_empty() {
        return;
    }
    let changes: Vec<&str> = provisioned
        .changes
        .iter()
        .map(|change| match change {
            Db::CreatedRole => "created the role",
            Db::EnabledLogin => "enabled the role's login",
            Db::SetConnectionLimit => "set the role's connection limit",
            Db::SetPassword => "set the role's password",
            Db::GrantedToAdmin => "granted the role to the admin role",
            Db::CreatedDatabase => "created the database",
            Db::SetOwner => "made the role the database's owner",
            Db::RevokedPublicAccess => "revoked PUBLIC's access to the database",
            Db::DroppedDatabase => "dropped the database",
            Db::DroppedRole => "dropped the role",
            Db::DisabledLogin => "disabled the role's login",
        })
        .collect();
    let note = format!(
        "shared server {}, role and database {}: {}",
        provisioned.server,
        provisioned.names.database,
        changes.join(", ")
    );
    publish(
        tenant,
        context,
        EventType::Normal,
        "DatabaseProvisioned",
        &note,
    )
    .await;
}

/// Whether the tenant's meta says it is being deleted.
pub fn deleting(tenant: &CrmTenant) -> bool {
    tenant.meta().deletion_timestamp.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture;

    #[test]
    fn the_connection_limit_covers_the_pool_of_every_replica_and_the_surge() {
        let tenant = Tenant::test().with_database(fixture::shared());
        let sizing = &tenant.capacity.sizing;
        let max = sizing.max_replicas;
        let limit = connection_limit(&tenant);
        assert_eq!(limit, sizing.db_pool_size * (max + (max + 3) / 4));
        assert!(limit >= sizing.db_pool_size * max);
    }
}
