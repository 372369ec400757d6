//! The checked-in CRD YAML is what the types generate.

use std::path::Path;

#[test]
fn checked_in_crd_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crmtenant.yaml");
    let generated = crm_crds::crd_yaml();
    if std::env::var_os("UPDATE_CRD").is_some() {
        std::fs::write(&path, &generated).expect("write crmtenant.yaml");
    }
    let checked_in = std::fs::read_to_string(&path).expect("read crds/crmtenant.yaml");
    similar_asserts::assert_eq!(
        checked_in,
        generated,
        "crds/crmtenant.yaml drifted from the types: run `UPDATE_CRD=1 cargo test -p crm-crds` or `crm-operator crd > crds/crmtenant.yaml`"
    );
}
