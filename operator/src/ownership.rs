//! Server-side apply ownership: what the operator's applies own, how it sees
//! a field it stopped sending, and how it hands `spec.replicas` to the HPA.
//!
//! ```text
//!  desired ─► stamp (digest of the whole object, as an annotation)
//!               │   a field dropped from desired changes the digest, so the
//!               │   apply that gives the field up is never skipped
//!               ▼
//!  replicas left to the HPA, but still ours on the live object?
//!               │ yes: apply {spec.replicas: max(current, base)} as
//!               │      HANDOVER first, so our own apply that drops the
//!               │      field cannot reset it (the "transferring ownership"
//!               │      procedure of server-side apply)
//!               ▼
//!  apply as FIELD_MANAGER (force)
//! ```
//!
//! The rules that follow for a tenant's replica count:
//! - autoscaling on: the HPA owns `spec.replicas`; nothing the operator
//!   applies touches it;
//! - turning autoscaling on keeps the current count (never below the model's
//!   base), and the HPA takes it from there;
//! - resuming under autoscaling starts at the model's base count, since the
//!   HPA never scales a target up from zero;
//! - autoscaling off: the model's peak count; suspended: zero.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::compact::includes_replicas;
use crate::labels::FIELD_MANAGER;

/// Annotation on every applied child: a digest of the configuration applied.
pub const APPLIED_DIGEST: &str = "crm.tenancy.dev/applied-digest";

/// The field manager that holds `spec.replicas` while the HPA takes over.
pub const HANDOVER: &str = "crm-operator-handover";

/// `desired` with [`APPLIED_DIGEST`] set to the digest of `desired` itself.
/// An apply is skipped only when the live object holds every field sent, and
/// since the digest is one of them, a configuration that lost a field (and
/// so must be applied for server-side apply to remove it) is never skipped.
pub fn stamp<K: Resource + Serialize + Clone>(desired: &K) -> K {
    let mut stamped = desired.clone();
    if let Some(digest) = digest(desired) {
        stamped
            .annotations_mut()
            .insert(APPLIED_DIGEST.to_owned(), digest);
    }
    stamped
}

/// Hex of the first 128 bits of SHA-256 over the object's JSON; the builders'
/// maps are ordered, so the same object always has the same digest.
fn digest<K: Serialize>(object: &K) -> Option<String> {
    let bytes = serde_json::to_vec(object).ok()?;
    Some(hex::encode(&Sha256::digest(&bytes)[..16]))
}

/// `desired` with `spec.replicas` set to `replicas` unless it has a count:
/// what a new Deployment whose count the autoscaler will own is created with.
pub fn with_replicas(desired: &Deployment, replicas: i32) -> Deployment {
    let mut created = desired.clone();
    if let Some(spec) = created.spec.as_mut() {
        spec.replicas.get_or_insert(replicas);
    }
    created
}

/// The replica count to hand over before applying `desired`, if any: when
/// `desired` leaves `spec.replicas` to the HPA while the live object still
/// has it as ours. The count is the current one, never below `base` (the
/// model's base count; a suspended tenant comes back at it).
pub fn handover(desired: &Deployment, live: Option<&Deployment>, base: i32) -> Option<i32> {
    if desired.spec.as_ref().and_then(|s| s.replicas).is_some() {
        return None;
    }
    let live = live?;
    if !owns_replicas(live, FIELD_MANAGER) {
        return None;
    }
    let current = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    Some(current.max(base))
}

/// The object [`HANDOVER`] applies: nothing but the replica count.
pub fn handover_object(desired: &Deployment, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": desired.meta().name,
            "namespace": desired.meta().namespace,
        },
        "spec": { "replicas": replicas },
    })
}

/// Whether `manager`'s applies own `spec.replicas` of `deployment` (a
/// Deployment, or its cached form).
pub fn owns_replicas<R: Resource>(deployment: &R, manager: &str) -> bool {
    deployment.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() == Some(manager)
            && entry.operation.as_deref() == Some("Apply")
            && entry.subresource.as_deref().unwrap_or_default().is_empty()
            && includes_replicas(entry)
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    use super::*;

    fn deployment(replicas: Option<i32>, owners: &[(&str, &str)]) -> Deployment {
        let mut d = Deployment {
            spec: Some(DeploymentSpec {
                replicas,
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        };
        *d.managed_fields_mut() = owners
            .iter()
            .map(|(manager, operation)| ManagedFieldsEntry {
                manager: Some((*manager).to_owned()),
                operation: Some((*operation).to_owned()),
                fields_v1: Some(FieldsV1(
                    json!({"f:spec": {"f:replicas": {}, "f:paused": {}}}),
                )),
                ..ManagedFieldsEntry::default()
            })
            .collect();
        d
    }

    #[test]
    fn a_dropped_field_changes_the_digest() {
        let with = deployment(Some(3), &[]);
        let without = deployment(None, &[]);
        let digest = |d: &Deployment| stamp(d).annotations()[APPLIED_DIGEST].clone();
        assert_ne!(digest(&with), digest(&without));
        assert_eq!(digest(&with), digest(&with.clone()));
    }

    #[test]
    fn replicas_we_own_are_handed_over_at_the_current_count_never_below_base() {
        let desired = deployment(None, &[]);
        let live = deployment(Some(7), &[(FIELD_MANAGER, "Apply")]);
        assert_eq!(handover(&desired, Some(&live), 3), Some(7));
        let suspended = deployment(Some(0), &[(FIELD_MANAGER, "Apply")]);
        assert_eq!(handover(&desired, Some(&suspended), 3), Some(3));
    }

    #[test]
    fn nothing_is_handed_over_that_the_hpa_owns_or_that_we_keep() {
        let desired = deployment(None, &[]);
        let hpa = deployment(Some(5), &[("kube-controller-manager", "Update")]);
        assert_eq!(handover(&desired, Some(&hpa), 3), None);
        assert_eq!(handover(&desired, None, 3), None);
        let ours = deployment(Some(7), &[(FIELD_MANAGER, "Apply")]);
        assert_eq!(handover(&deployment(Some(7), &[]), Some(&ours), 3), None);
    }

    #[test]
    fn the_cache_keeps_only_who_owns_the_replicas() {
        let mut live = deployment(Some(5), &[(FIELD_MANAGER, "Apply")]);
        live.managed_fields_mut().push(ManagedFieldsEntry {
            manager: Some("kubectl-edit".into()),
            fields_v1: Some(FieldsV1(json!({"f:metadata": {}}))),
            ..ManagedFieldsEntry::default()
        });
        let live = crate::compact::Compact::new(live).expect("a compact Deployment");
        assert_eq!(live.managed_fields().len(), 1);
        assert!(owns_replicas(&live, FIELD_MANAGER));
    }
}
