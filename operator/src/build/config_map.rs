//! ConfigMap `<t>-config`: the CRM server's non-secret settings, read as
//! environment (`envFrom`), and the hash that rolls the pods when they change.

use std::collections::BTreeMap;

use crm_crds::Module;
use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use super::{Credentials, METRICS_PORT, SERVER_PORT, config_map_name, metadata};
use crate::labels::Component;
use crate::validate::{DatabaseTarget, Tenant};

/// Where the Embedded SQLite file lives; the data volume is mounted above it.
pub const SQLITE_DIR: &str = "/var/lib/crm";

/// The server's settings. Secrets (the API key, database URLs with passwords)
/// are not here: the Deployment reads them from the Secrets directly.
pub fn config_map(tenant: &Tenant) -> ConfigMap {
    let sizing = &tenant.capacity.sizing;
    let modules: Vec<&str> = tenant.server.modules.iter().map(|m| module(*m)).collect();
    let mut data: BTreeMap<String, String> = [
        ("CRM_LISTEN_ADDR", format!("0.0.0.0:{SERVER_PORT}")),
        ("CRM_METRICS_ADDR", format!("0.0.0.0:{METRICS_PORT}")),
        ("CRM_REQUIRE_API_KEY", "true".to_owned()),
        ("CRM_DB_POOL_SIZE", sizing.db_pool_size.to_string()),
        ("CRM_MODULES", modules.join(",")),
        ("CRM_LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if tenant.database.mode == DatabaseTarget::Embedded {
        // `mode=rwc` creates the file on first start.
        let url = format!("sqlite://{SQLITE_DIR}/crm.db?mode=rwc");
        data.insert("DATABASE_URL".to_owned(), url);
    }
    ConfigMap {
        metadata: metadata(tenant, config_map_name(tenant), Component::Server),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// The name crm-server knows a module by.
fn module(m: Module) -> &'static str {
    match m {
        Module::Customers => "customers",
        Module::Sales => "sales",
        Module::Service => "service",
        Module::Marketing => "marketing",
        Module::Reports => "reports",
    }
}

/// Hex SHA-256 over everything the pods read at start-up but that is not in
/// the pod template: the ConfigMap's data (a BTreeMap, so sorted), the API
/// key, the database password where the pods use one, and the extra env.
/// Put on the pod template, it rolls the pods when any of these change
/// (notably a rotated credential). Each part is length-prefixed, so no two
/// different inputs run together into the same bytes; the secrets only enter
/// a one-way hash and cannot be read back from it.
pub fn config_hash(tenant: &Tenant, config_map: &ConfigMap, credentials: &Credentials) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &str| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes.as_bytes());
    };
    for (key, value) in config_map.data.iter().flatten() {
        part(key);
        part(value);
    }
    part(&credentials.api_key);
    // Only these modes read `<t>-db`; rotating an unused password rolls nothing.
    if matches!(
        tenant.database.mode,
        DatabaseTarget::Managed { .. } | DatabaseTarget::Shared { .. }
    ) {
        part(&credentials.database_password);
    }
    for env in &tenant.server.env {
        part(&env.name);
        part(&env.value);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture::credentials;

    fn hash(tenant: &Tenant, credentials: &Credentials) -> String {
        config_hash(tenant, &config_map(tenant), credentials)
    }

    #[test]
    fn config_map_carries_the_server_settings() {
        let cm = config_map(&Tenant::test());
        assert_eq!(cm.metadata.name.as_deref(), Some("acme-config"));
        let data = cm.data.expect("data");
        assert_eq!(data["CRM_LISTEN_ADDR"], "0.0.0.0:8080");
        assert_eq!(data["CRM_METRICS_ADDR"], "0.0.0.0:9090");
        assert_eq!(data["CRM_REQUIRE_API_KEY"], "true");
        assert_eq!(data["CRM_DB_POOL_SIZE"], "4");
        assert_eq!(data["CRM_MODULES"], "customers,sales");
        assert_eq!(data["CRM_LOG_FORMAT"], "json");
        assert!(!data.contains_key("DATABASE_URL"));
    }

    #[test]
    fn embedded_tenant_gets_its_sqlite_url_from_the_config_map() {
        let cm = config_map(&Tenant::test().with_database(DatabaseTarget::Embedded));
        assert_eq!(
            cm.data.expect("data")["DATABASE_URL"],
            "sqlite:///var/lib/crm/crm.db?mode=rwc"
        );
    }

    #[test]
    fn config_hash_is_deterministic_hex_sha256() {
        let a = hash(&Tenant::test(), &credentials());
        assert_eq!(a, hash(&Tenant::test(), &credentials()));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn config_hash_changes_when_api_key_rotates() {
        let mut rotated = credentials();
        rotated.api_key = "a-new-api-key".into();
        assert_ne!(
            hash(&Tenant::test(), &credentials()),
            hash(&Tenant::test(), &rotated)
        );
    }

    #[test]
    fn config_hash_changes_when_database_password_rotates() {
        let mut rotated = credentials();
        rotated.database_password = "a-new-password".into();
        assert_ne!(
            hash(&Tenant::test(), &credentials()),
            hash(&Tenant::test(), &rotated)
        );
    }

    #[test]
    fn config_hash_changes_with_settings_and_env() {
        let base = hash(&Tenant::test(), &credentials());
        let mut pool = Tenant::test();
        pool.capacity.sizing.db_pool_size = 9;
        assert_ne!(base, hash(&pool, &credentials()));
        let env = Tenant::test().with_env("OTHER", "x");
        assert_ne!(base, hash(&env, &credentials()));
    }

    #[test]
    fn config_hash_does_not_contain_the_secrets() {
        let c = credentials();
        let h = hash(&Tenant::test(), &c);
        assert!(!h.contains(&c.api_key) && !h.contains(&c.database_password));
    }
}
