//! PersistentVolumeClaim `<t>-data`: the Embedded SQLite database's volume.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{backup_volume_name, data_metadata, data_volume_name};
use crate::labels::Component;
use crate::validate::{DatabaseTarget, Tenant};

/// Embedded only. Kept while suspended: suspension never touches data.
pub fn data_volume(tenant: &Tenant) -> Option<PersistentVolumeClaim> {
    if tenant.database.mode != DatabaseTarget::Embedded {
        return None;
    }
    Some(PersistentVolumeClaim {
        metadata: data_metadata(tenant, data_volume_name(tenant), Component::Server),
        spec: Some(claim_spec(tenant)),
        ..PersistentVolumeClaim::default()
    })
}

/// `<t>-backups`, when the spec asks for backups: ReadWriteOnce, of
/// `backup.storage`, in the data volume's class. It holds data: kept under
/// `deletionPolicy: Retain` when backups are turned off or the tenant goes.
pub fn backup_volume(tenant: &Tenant) -> Option<PersistentVolumeClaim> {
    let backup = tenant.backup.as_ref()?;
    let mut spec = claim_spec(tenant);
    spec.resources = Some(VolumeResourceRequirements {
        requests: Some(BTreeMap::from([(
            "storage".to_owned(),
            Quantity(backup.storage.clone()),
        )])),
        ..VolumeResourceRequirements::default()
    });
    Some(PersistentVolumeClaim {
        metadata: data_metadata(tenant, backup_volume_name(tenant), Component::Data),
        spec: Some(spec),
        ..PersistentVolumeClaim::default()
    })
}

/// ReadWriteOnce of the spec's size and class; shared with the Managed
/// database's volume claim template.
pub(super) fn claim_spec(tenant: &Tenant) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_owned(),
                Quantity(tenant.database.storage.clone()),
            )])),
            ..VolumeResourceRequirements::default()
        }),
        // None leaves the field out, so the cluster's default class applies.
        storage_class_name: tenant.database.storage_class_name.clone(),
        ..PersistentVolumeClaimSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture;

    fn embedded() -> Tenant {
        Tenant::test().with_database(DatabaseTarget::Embedded)
    }

    #[test]
    fn embedded_volume_is_read_write_once_of_the_requested_size() {
        let pvc = data_volume(&embedded()).expect("embedded has a volume");
        assert_eq!(pvc.metadata.name.as_deref(), Some("acme-data"));
        let spec = pvc.spec.expect("spec");
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".into()]));
        let requests = spec.resources.and_then(|r| r.requests).expect("requests");
        assert_eq!(requests["storage"], Quantity("1Gi".into()));
        assert_eq!(spec.storage_class_name, None);
    }

    #[test]
    fn the_volume_is_owned_by_the_tenant_only_when_data_goes_with_it() {
        let retained = data_volume(&embedded()).expect("volume");
        assert_eq!(retained.metadata.owner_references, None);
        let deleted =
            data_volume(&embedded().with_deletion_policy(crm_crds::DeletionPolicy::Delete))
                .expect("volume");
        let owners = deleted.metadata.owner_references.expect("owner");
        assert_eq!(owners[0].controller, Some(true));
    }

    #[test]
    fn storage_class_is_passed_through_when_set() {
        let pvc = data_volume(&embedded().with_storage_class("fast")).expect("volume");
        let class = pvc.spec.and_then(|s| s.storage_class_name);
        assert_eq!(class.as_deref(), Some("fast"));
    }

    #[test]
    fn suspended_embedded_tenant_keeps_its_volume() {
        assert!(data_volume(&embedded().suspended()).is_some());
    }

    #[test]
    fn only_embedded_has_a_data_volume() {
        for mode in [fixture::managed(), fixture::shared(), fixture::external()] {
            assert_eq!(data_volume(&Tenant::test().with_database(mode)), None);
        }
    }
}
