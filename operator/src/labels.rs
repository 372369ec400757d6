//! Labels every child carries, and the field manager.
//!
//! The standard `app.kubernetes.io/*` labels go on every object; selectors use
//! only the stable subset (name, instance, component), because a Deployment's
//! selector is immutable and must not change when, say, `part-of` would.

use std::collections::BTreeMap;

/// The one field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "crm-operator";

/// `app.kubernetes.io/name`: the application a pod runs.
pub const NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the tenant.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: server or database.
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/part-of`: always `crm`.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// `app.kubernetes.io/managed-by`: always [`FIELD_MANAGER`]; the controller
/// watches children by this label.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label selector matching every object the operator creates.
pub const CHILD_SELECTOR: &str = "app.kubernetes.io/managed-by=crm-operator";

/// Which part of a tenant an object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The CRM server and everything around it.
    Server,
    /// The Managed PostgreSQL database.
    Database,
}

impl Component {
    /// Value of `app.kubernetes.io/name`.
    pub fn app_name(self) -> &'static str {
        match self {
            Component::Server => "crm-server",
            Component::Database => "postgres",
        }
    }

    /// Value of `app.kubernetes.io/component`.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Database => "database",
        }
    }
}

/// Labels that select a tenant's pods of one component: name, instance and
/// component, nothing that could ever change for a running tenant.
pub fn selector(tenant: &str, component: Component) -> BTreeMap<String, String> {
    [
        (NAME, component.app_name()),
        (INSTANCE, tenant),
        (COMPONENT, component.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Every standard label: the selector labels plus part-of and managed-by.
pub fn standard(tenant: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector(tenant, component);
    labels.insert(PART_OF.to_owned(), "crm".to_owned());
    labels.insert(MANAGED_BY.to_owned(), FIELD_MANAGER.to_owned());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_labels_are_a_subset_of_the_standard_labels() {
        for component in [Component::Server, Component::Database] {
            let all = standard("acme", component);
            for (k, v) in selector("acme", component) {
                assert_eq!(all.get(&k), Some(&v));
            }
            assert_eq!(all.len(), 5);
        }
    }

    #[test]
    fn managed_by_label_matches_the_controllers_child_selector() {
        let labels = standard("acme", Component::Server);
        let selector = format!("{MANAGED_BY}={}", labels[MANAGED_BY]);
        assert_eq!(selector, CHILD_SELECTOR);
    }
}
