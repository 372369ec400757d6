//! Labels every child carries, and the field manager.
//!
//! The standard `app.kubernetes.io/*` labels go on every object; selectors use
//! only the stable subset (name, instance, component), because a Deployment's
//! selector is immutable and must not change when, say, `part-of` would.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

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
    /// What moves the data: backup, copy and restore Jobs.
    Data,
}

impl Component {
    /// Value of `app.kubernetes.io/name`.
    pub fn app_name(self) -> &'static str {
        match self {
            Component::Server => "crm-server",
            Component::Database => "postgres",
            Component::Data => "crm-server",
        }
    }

    /// Value of `app.kubernetes.io/component`.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Database => "database",
            Component::Data => "data",
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

/// The label the API server puts on every namespace, holding its name.
pub const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// A selector of the one namespace called `name`.
pub fn namespace_named(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(NAMESPACE_NAME.to_owned(), name.to_owned())].into()),
        ..LabelSelector::default()
    }
}

/// Parses an equality-based label selector, `key=value[,key=value…]`,
/// into a [`LabelSelector`]; an empty string selects nothing (`None`).
pub fn parse_selector(text: &str) -> Result<Option<LabelSelector>, String> {
    let mut labels = BTreeMap::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (key, value) = term
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim().trim_start_matches('=').trim()))
            .filter(|(k, _)| !k.is_empty() && !k.ends_with('!'))
            .ok_or_else(|| format!("{term:?} is not of the form key=value"))?;
        let valid = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        };
        if !valid(key) || !valid(value) {
            return Err(format!("{term:?} is not a valid label key=value"));
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok((!labels.is_empty()).then(|| LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }))
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

    #[test]
    fn selectors_parse_from_key_value_pairs() {
        let parsed = parse_selector("kubernetes.io/metadata.name=monitoring").expect("valid");
        assert_eq!(parsed, Some(namespace_named("monitoring")));
        let two = parse_selector("a=b, c==d").expect("valid").expect("some");
        assert_eq!(two.match_labels.expect("labels").len(), 2);
        assert_eq!(parse_selector("").expect("valid"), None);
        for bad in ["monitoring", "a!=b", "=x", "a=b c"] {
            let error = parse_selector(bad).expect_err(bad);
            assert!(
                error.contains(bad.split(',').next().unwrap_or(bad)),
                "{error}"
            );
        }
    }
}
