//! Desired objects → the API server: server-side apply in a fixed order with
//! one field manager, then pruning of the children the spec no longer asks for.
//!
//! An apply whose result would equal what the cache already holds is skipped:
//! even an identical apply costs a request, and every write wakes every
//! watcher. The comparison is "every field we send has the value we send",
//! so fields other controllers own (the HPA's replicas, defaults the API
//! server filled in) never count as drift, while an edit to a field we own does.
//! Every object carries a digest of itself ([`crate::ownership::stamp`]), so
//! a field we stop sending changes a value we send: the apply that gives the
//! field up (and so removes it, unless another manager owns it) is never
//! skipped. An apply the cache has not shown yet is skipped too, when the
//! object desired is the one applied (see [`crate::ledger`]).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::build::{self, Desired};
use crate::client;
use crate::compact::{Compact, Compactable};
use crate::kinds::{Orphan, Stores};
use crate::labels::{Component, FIELD_MANAGER};
use crate::ownership;
use crate::validate::Tenant;
use crate::{Error, Result};

/// What one pass of apply and prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects written (created or changed), as `Kind/name`.
    pub applied: Vec<String>,
    /// Objects deleted, as `Kind/name`.
    pub pruned: Vec<String>,
    /// Whether an apply was skipped because the caches have not shown an
    /// earlier one yet: the tenant should be looked at again once they have.
    pub awaited: bool,
}

/// Applies every desired object and prunes what is no longer desired, but
/// for `kept`: objects the spec no longer asks for that must stay a while
/// yet (the old database's, while replicas still read it).
pub async fn apply_all(
    client: &Client,
    stores: &Stores,
    tenant: &Tenant,
    desired: &Desired,
    kept: &[(&'static str, String)],
) -> Result<Report> {
    let Desired {
        service_account,
        api_secret,
        admin_secret,
        database_secret,
        config_map,
        deployment,
        service,
        hpa,
        pdb,
        network_policies,
        data_volume,
        database_statefulset,
        database_service,
        ingress,
        http_route,
        backup_cron_job,
        backup_volume,
        transfer_job,
    } = desired;
    let mut run = Run {
        client,
        stores,
        tenant,
        report: Report::default(),
    };

    run.one(&stores.service_accounts, service_account).await?;
    run.one(&stores.secrets, api_secret).await?;
    run.one(&stores.secrets, admin_secret).await?;
    run.all(&stores.secrets, database_secret.iter()).await?;
    run.one(&stores.config_maps, config_map).await?;
    if let Some(volume) = data_volume {
        run.volume(&stores.volumes, volume).await?;
    }
    run.all(&stores.services, database_service.iter()).await?;
    run.all(&stores.statefulsets, database_statefulset.iter())
        .await?;
    run.deployment(&stores.deployments, deployment).await?;
    run.one(&stores.services, service).await?;
    run.all(&stores.hpas, hpa.iter()).await?;
    run.all(&stores.pdbs, pdb.iter()).await?;
    run.all(&stores.network_policies, network_policies.iter())
        .await?;
    run.all(&stores.ingresses, ingress.iter()).await?;
    if let Some(route) = http_route {
        if stores.unserved.contains(&"httproutes") {
            return Err(Error::Unserved {
                kind: "HTTPRoute",
                name: route.name_any(),
                api_version: crate::gateway_api::API_VERSION,
            });
        }
        run.one(&stores.http_routes, route).await?;
    }
    if let Some(volume) = backup_volume {
        run.volume(&stores.volumes, volume).await?;
    }
    run.all(&stores.cron_jobs, backup_cron_job.iter()).await?;
    if let Some(job) = transfer_job {
        run.once(&stores.jobs, job).await?;
    }

    // Kept volumes follow the policy too: it may change before they go.
    let data = build::data_metadata(tenant, String::new(), Component::Server);
    let policy = data.owner_references.unwrap_or_default();
    for (kind, name) in kept {
        match *kind {
            "PersistentVolumeClaim" => {
                let at = ObjectRef::new(name).within(&tenant.namespace);
                if let Some(live) = stores.volumes.get(&at) {
                    run.follow_policy(&live, &policy).await?;
                }
            }
            "StatefulSet" => {
                let at = ObjectRef::new(name).within(&tenant.namespace);
                if let Some(live) = stores.statefulsets.get(&at) {
                    run.retention_follows_policy(&live).await?;
                }
            }
            _ => {}
        }
    }

    // Prune after applying, so a replacement exists before its predecessor goes.
    let mut wanted = desired.names();
    wanted.extend(kept.iter().map(|(kind, name)| (*kind, name.as_str())));
    for orphan in orphans(stores, tenant, &wanted) {
        run.delete(&orphan).await?;
    }
    Ok(run.report)
}

/// Deletes those of `named` the tenant owns, what holds data only under
/// `deletionPolicy: Delete`; returns them as `Kind/name`.
pub async fn prune_only(
    client: &Client,
    stores: &Stores,
    tenant: &Tenant,
    named: &[(&'static str, String)],
) -> Result<Vec<String>> {
    let mut run = Run {
        client,
        stores,
        tenant,
        report: Report::default(),
    };
    let named = |orphan: &Orphan| {
        named
            .iter()
            .any(|(k, n)| *k == orphan.kind && *n == orphan.name)
    };
    for orphan in orphans(stores, tenant, &[]).iter().filter(|o| named(o)) {
        run.delete(orphan).await?;
    }
    Ok(run.report.pruned)
}

/// The tenant's children that `wanted` does not name. Data and the
/// credentials that open it count only when the spec says they may go.
fn orphans(stores: &Stores, tenant: &Tenant, wanted: &[(&str, &str)]) -> Vec<Orphan> {
    let data_too = tenant.database.deletion_policy == crm_crds::DeletionPolicy::Delete;
    stores.orphans(&tenant.owner.uid, &tenant.namespace, wanted, data_too)
}

struct Run<'a> {
    client: &'a Client,
    /// The caches, and the ledger of our applies they have not shown yet.
    stores: &'a Stores,
    tenant: &'a Tenant,
    report: Report,
}

impl Run<'_> {
    async fn all<'o, K>(
        &mut self,
        store: &Store<Compact<K>>,
        objects: impl Iterator<Item = &'o K>,
    ) -> Result<()>
    where
        K: Child + 'o,
    {
        for object in objects {
            self.one(store, object).await?;
        }
        Ok(())
    }

    async fn one<K: Child>(&mut self, store: &Store<Compact<K>>, object: &K) -> Result<()> {
        let object = &ownership::stamp(object);
        let at = ObjectRef::new(&object.name_any()).within(&self.tenant.namespace);
        if self.due(object, store.get(&at).as_deref()) {
            self.apply(object, || store.get(&at)?.resource_version())
                .await?;
        }
        Ok(())
    }

    /// The Deployment: as any child, but a replica count we owned and now
    /// leave to the HPA is first handed over (see [`crate::ownership`]).
    async fn deployment(
        &mut self,
        store: &Store<Compact<Deployment>>,
        object: &Deployment,
    ) -> Result<()> {
        let object = &ownership::stamp(object);
        let at = ObjectRef::new(&object.name_any()).within(&self.tenant.namespace);
        let live = store.get(&at);
        if !self.due(object, live.as_deref()) {
            return Ok(());
        }
        let base = self.tenant.capacity.sizing.min_replicas;
        let name = object.name_any();
        let live = match live.map(|live| live.to_object()) {
            Some(Ok(live)) => Some(live),
            None if self
                .stores
                .surely_absent::<Deployment>(&self.tenant.namespace, &name) =>
            {
                None
            }
            // Not readable in the cache, or perhaps not there yet: read it,
            // since a count the autoscaler set must never be replaced by a
            // creation's.
            _ => self
                .api::<Deployment>()
                .get_opt(&name)
                .await
                .map_err(|source| Error::Apply {
                    kind: "Deployment",
                    name: name.clone(),
                    source,
                })?,
        };
        let Some(live) = live else {
            // A new Deployment the autoscaler will own starts at the
            // autoscaler's floor, not at the API server's default of one
            // (which the HPA would only raise a sync period later); the
            // count is handed over like any other we own.
            let created = ownership::with_replicas(object, base);
            return self
                .apply_sending(&created, object, || store.get(&at)?.resource_version())
                .await;
        };
        if let Some(replicas) = ownership::handover(object, Some(&live), base) {
            self.hand_over(object, replicas).await?;
        }
        self.apply(object, || store.get(&at)?.resource_version())
            .await
    }

    /// Whether `object` must be applied: the live object lacks a value we
    /// send, and no apply of this very object is still on its way.
    fn due<K: Child>(&mut self, object: &K, live: Option<&Compact<K>>) -> bool {
        if live.is_some_and(|live| unchanged(object, live)) {
            return false;
        }
        if self.stores.applied.pending(object) {
            self.report.awaited = true;
            return false;
        }
        true
    }

    /// Applies `replicas` alone as [`ownership::HANDOVER`], forced: it takes
    /// the field from our own manager, so our next apply, which leaves the
    /// field out, keeps the count instead of resetting it.
    async fn hand_over(&mut self, deployment: &Deployment, replicas: i32) -> Result<()> {
        let name = deployment.name_any();
        let params = PatchParams::apply(ownership::HANDOVER).force();
        let patch = ownership::handover_object(deployment, replicas);
        self.patch::<Deployment, _>(&name, &params, &Patch::Apply(&patch))
            .await?;
        self.report.applied.push(format!(
            "Deployment/{name} (replicas {replicas} handed to the HPA)"
        ));
        Ok(())
    }

    /// Applies `object` only if it does not exist yet. Volume claims: their
    /// spec is immutable but for growth, so an existing claim is left
    /// alone. Jobs: their pod template is immutable, and a Job that ran is
    /// a record of what it did, never changed afterwards.
    async fn once<K: Child>(&mut self, store: &Store<Compact<K>>, object: &K) -> Result<()> {
        let at = ObjectRef::new(&object.name_any()).within(&self.tenant.namespace);
        if store.get(&at).is_some() || self.stores.applied.pending(object) {
            return Ok(());
        }
        self.apply(object, || store.get(&at)?.resource_version())
            .await
    }

    /// A volume claim: created once (see [`Self::once`]). An existing one
    /// follows `deletionPolicy` only in whether the tenant owns it, so that
    /// a claim created under Retain goes with the tenant once the policy
    /// says Delete, and one created under Delete stays once it says Retain.
    async fn volume(
        &mut self,
        store: &Store<Compact<PersistentVolumeClaim>>,
        object: &PersistentVolumeClaim,
    ) -> Result<()> {
        let at = ObjectRef::new(&object.name_any()).within(&self.tenant.namespace);
        match store.get(&at) {
            Some(live) => self.follow_policy(&live, object.owner_references()).await,
            None => self.once(store, object).await,
        }
    }

    /// Sets or removes the tenant's owner reference on the claim `live` as
    /// `wanted` (the references `deletionPolicy` gives) has it or not.
    async fn follow_policy(
        &mut self,
        live: &Compact<PersistentVolumeClaim>,
        wanted: &[OwnerReference],
    ) -> Result<()> {
        let uid = self.tenant.owner.uid.as_str();
        let ours = |r: &&OwnerReference| r.uid == uid;
        let owned = wanted.iter().any(|r| ours(&r));
        if live.owner_references().iter().any(|r| ours(&r)) == owned {
            return Ok(());
        }
        // A merge patch replaces the list whole: others' references stay.
        let mut references: Vec<&OwnerReference> = live
            .owner_references()
            .iter()
            .filter(|r| !ours(r))
            .collect();
        references.extend(wanted.iter().filter(ours));
        let patch = json!({ "metadata": { "ownerReferences": references } });
        let whose = if owned {
            "the tenant's"
        } else {
            "no longer the tenant's"
        };
        let why = format!("{whose}, by deletionPolicy");
        self.merge_patch::<PersistentVolumeClaim>(&live.name_any(), &patch, &why)
            .await
    }

    /// A kept Managed server's claim retention policy, set as
    /// `deletionPolicy` says now: the StatefulSet is no longer applied, yet
    /// its claims must go with it, or stay, as the policy in force says.
    async fn retention_follows_policy(&mut self, live: &Compact<StatefulSet>) -> Result<()> {
        let wanted =
            serde_json::to_value(build::postgres::retention(self.tenant)).unwrap_or(Value::Null);
        let body = live.body();
        let current = body
            .pointer("/spec/persistentVolumeClaimRetentionPolicy")
            .unwrap_or(&Value::Null);
        if contains(current, &wanted) {
            return Ok(());
        }
        let patch = json!({ "spec": { "persistentVolumeClaimRetentionPolicy": wanted } });
        let why = "claim retention by deletionPolicy";
        self.merge_patch::<StatefulSet>(&live.name_any(), &patch, why)
            .await
    }

    /// Merge-patches one field of a child we do not apply (it is kept, or
    /// its owner list is shared) and reports it as `Kind/name (why)`.
    async fn merge_patch<K: Child>(&mut self, name: &str, patch: &Value, why: &str) -> Result<()> {
        let kind = <K as k8s_openapi::Resource>::KIND;
        self.patch::<K, _>(name, &update(), &Patch::Merge(patch))
            .await?;
        self.report.applied.push(format!("{kind}/{name} ({why})"));
        Ok(())
    }

    /// Server-side applies `object`, records it in the ledger (`cached` gives
    /// the version the cache holds now) and in the report.
    async fn apply<K: Child>(
        &mut self,
        object: &K,
        cached: impl FnOnce() -> Option<String>,
    ) -> Result<()> {
        self.apply_sending(object, object, cached).await
    }

    /// [`Self::apply`], sending `sent`: `object` plus what only a creation
    /// adds. The ledger records `object`, which is what later reconciles
    /// build again.
    async fn apply_sending<K: Child>(
        &mut self,
        sent: &K,
        object: &K,
        cached: impl FnOnce() -> Option<String>,
    ) -> Result<()> {
        let name = object.name_any();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let version = self
            .patch::<K, _>(&name, &params, &Patch::Apply(sent))
            .await?;
        self.stores.applied.record(object, version, cached);
        self.report
            .applied
            .push(format!("{}/{name}", <K as k8s_openapi::Resource>::KIND));
        Ok(())
    }

    /// Deletes a child the tenant no longer wants; one already gone is fine.
    async fn delete(&mut self, orphan: &Orphan) -> Result<()> {
        let Orphan {
            kind,
            name,
            resource,
        } = orphan;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.tenant.namespace, resource);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Prune {
                    kind,
                    name: name.clone(),
                    source,
                });
            }
        }
        self.report.pruned.push(format!("{kind}/{name}"));
        Ok(())
    }

    fn api<K: Child>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.tenant.namespace)
    }

    /// Sends `patch` to the child `name` of kind `K` and returns the
    /// resourceVersion it made, the one part of the answer a reconcile
    /// reads (see [`client::write`]).
    async fn patch<K: Child, P: serde::Serialize>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<Option<String>> {
        let namespace = &self.tenant.namespace;
        let written = client::patch::<K, P>(self.client, namespace, None, name, params, patch)
            .await
            .map_err(|source| Error::Apply {
                kind: <K as k8s_openapi::Resource>::KIND,
                name: name.to_owned(),
                source,
            })?;
        Ok(written.resource_version)
    }
}

/// An Update (merge patch) of a field the operator alone decides, outside
/// server-side apply: on objects it creates once or no longer applies.
fn update() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// What every child kind offers: typed, namespaced, serialisable, cached
/// compact.
pub trait Child:
    Compactable<Scope = NamespaceResourceScope> + k8s_openapi::Resource + Clone + Debug
{
}

impl<K> Child for K where
    K: Compactable<Scope = NamespaceResourceScope> + k8s_openapi::Resource + Clone + Debug
{
}

/// Whether applying `desired` would change nothing in `live`.
pub fn unchanged<K: Compactable>(desired: &K, live: &Compact<K>) -> bool {
    let Ok(Value::Object(mut desired)) = serde_json::to_value(desired) else {
        return false;
    };
    for key in ["apiVersion", "kind"] {
        desired.remove(key);
    }
    contains(&live.body(), &Value::Object(desired))
}

/// Every field of `part` is in `whole` with the same value.
fn contains(whole: &Value, part: &Value) -> bool {
    match (whole, part) {
        (Value::Object(whole), Value::Object(part)) => part
            .iter()
            .all(|(key, value)| whole.get(key).is_some_and(|w| contains(w, value))),
        (Value::Array(whole), Value::Array(part)) => {
            whole.len() == part.len() && whole.iter().zip(part).all(|(w, p)| contains(w, p))
        }
        (Value::Number(w), Value::Number(p)) => w.as_f64() == p.as_f64(),
        _ => whole == part,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::contains;

    #[test]
    fn fields_others_own_are_not_drift() {
        let live = json!({"spec": {"replicas": 7, "template": {"x": 1}}, "status": {"ready": 1}});
        assert!(contains(&live, &json!({"spec": {"template": {"x": 1}}})));
    }

    #[test]
    fn an_edited_field_we_own_is_drift() {
        let live = json!({"spec": {"template": {"x": 2}}});
        assert!(!contains(&live, &json!({"spec": {"template": {"x": 1}}})));
    }

    #[test]
    fn lists_must_match_in_length_and_order() {
        let live = json!({"ports": [{"port": 80, "protocol": "TCP"}]});
        assert!(contains(&live, &json!({"ports": [{"port": 80}]})));
        assert!(!contains(
            &live,
            &json!({"ports": [{"port": 80}, {"port": 81}]})
        ));
    }

    #[test]
    fn integers_and_floats_of_equal_value_match() {
        assert!(contains(&json!({"a": 1.0}), &json!({"a": 1})));
    }
}
