//! Statuses this process wrote that the tenant cache may not show yet.
//!
//! A new tenant's children wake it again and again while they are being
//! created, often before the watch has delivered the status the previous
//! reconcile wrote. Read from that stale copy, the status would look absent,
//! every condition would get a new transition time, and each wake-up would
//! write it again. Reconciles read the status through [`Written::current`]
//! instead: the one written last, while the cache still holds the version of
//! the tenant that write replaced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crm_crds::{CrmTenant, CrmTenantStatus};
use kube::ResourceExt;

#[derive(Debug)]
struct Entry {
    /// `resourceVersion` of the tenant the write was computed from.
    replaced: Option<String>,
    status: CrmTenantStatus,
}

/// The last status written per tenant UID, until the cache moves past it.
#[derive(Clone, Debug, Default)]
pub struct Written {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Written {
    /// Nothing written yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tenant's status as last written: ours when `tenant` is the version
    /// our last write replaced, else the one `tenant` carries.
    pub fn current(&self, tenant: &CrmTenant) -> Option<CrmTenantStatus> {
        let Some(uid) = tenant.uid() else {
            return tenant.status.clone();
        };
        let mut entries = self.lock();
        match entries.get(&uid) {
            Some(entry) if entry.replaced == tenant.resource_version() => {
                Some(entry.status.clone())
            }
            Some(_) => {
                // The cache shows our write or something later: it is the truth.
                entries.remove(&uid);
                tenant.status.clone()
            }
            None => tenant.status.clone(),
        }
    }

    /// Records that `status` was written over `tenant` (as the cache held it).
    pub fn record(&self, tenant: &CrmTenant, status: &CrmTenantStatus) {
        if let Some(uid) = tenant.uid() {
            self.lock().insert(
                uid,
                Entry {
                    replaced: tenant.resource_version(),
                    status: status.clone(),
                },
            );
        }
    }

    /// Forgets a tenant that is gone.
    pub fn forget(&self, tenant: &CrmTenant) {
        if let Some(uid) = tenant.uid() {
            self.lock().remove(&uid);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use crm_crds::{CrmTenantStatus, Phase};
    use kube::api::ObjectMeta;

    use super::*;

    fn tenant(version: &str, phase: Option<Phase>) -> CrmTenant {
        let mut tenant: CrmTenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "crm.tenancy.dev/v1alpha1", "kind": "CrmTenant",
            "metadata": {}, "spec": { "load": { "activeUsers": 5 } },
        }))
        .expect("tenant");
        tenant.metadata = ObjectMeta {
            name: Some("acme".into()),
            uid: Some("uid-1".into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        };
        tenant.status = phase.map(|phase| CrmTenantStatus {
            phase: Some(phase),
            ..CrmTenantStatus::default()
        });
        tenant
    }

    fn phase(status: Option<CrmTenantStatus>) -> Option<Phase> {
        status.and_then(|s| s.phase)
    }

    #[test]
    fn a_stale_cache_reads_the_status_written_over_it() {
        let written = Written::new();
        let stale = tenant("1", None);
        assert_eq!(phase(written.current(&stale)), None);
        written.record(
            &stale,
            &CrmTenantStatus {
                phase: Some(Phase::Provisioning),
                ..CrmTenantStatus::default()
            },
        );
        assert_eq!(phase(written.current(&stale)), Some(Phase::Provisioning));
        assert_eq!(phase(written.current(&stale)), Some(Phase::Provisioning));
    }

    #[test]
    fn a_newer_version_in_the_cache_wins_and_ends_the_entry() {
        let written = Written::new();
        let stale = tenant("1", None);
        written.record(&stale, &CrmTenantStatus::default());
        let newer = tenant("3", Some(Phase::Ready));
        assert_eq!(phase(written.current(&newer)), Some(Phase::Ready));
        // The entry is gone: even the old version reads as it is now.
        assert_eq!(phase(written.current(&stale)), None);
    }
}
