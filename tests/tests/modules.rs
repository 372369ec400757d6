//! Every module a CrmTenant can enable is one crm-server accepts: the
//! `CRM_MODULES` the operator writes for each parses in crm-server and turns
//! on exactly that module.

use crm_crds::{CrmTenant, Module};
use crm_operator::build::{self, Credentials};
use crm_operator::validate;
use crm_server::config::Modules;

/// The `CRM_MODULES` the operator configures for a tenant with `modules`.
fn configured(modules: Vec<Module>) -> String {
    let mut tenant: CrmTenant = crm_tests::example("growth-managed");
    tenant
        .spec
        .server
        .get_or_insert_with(Default::default)
        .modules = Some(modules);
    let validated = validate::validate(&tenant).expect("a valid tenant");
    let desired = build::build(&validated, &Credentials::new("k", "p"));
    desired
        .config_map
        .data
        .and_then(|d| d.get("CRM_MODULES").cloned())
        .expect("CRM_MODULES in the ConfigMap")
}

fn enabled(m: Modules) -> Vec<&'static str> {
    [
        ("customers", m.customers),
        ("sales", m.sales),
        ("service", m.service),
        ("marketing", m.marketing),
        ("reports", m.reports),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

#[test]
fn every_module_a_tenant_can_enable_is_one_crm_server_accepts() {
    for module in Module::ALL {
        let value = configured(vec![module]);
        let parsed = Modules::parse(&value)
            .unwrap_or_else(|e| panic!("crm-server refuses {module:?} as {value:?}: {e}"));
        assert_eq!(enabled(parsed), [value.as_str()], "{module:?}");
    }
    let all = Modules::parse(&configured(Module::ALL.to_vec())).expect("all modules");
    assert_eq!(all, Modules::ALL);
}
