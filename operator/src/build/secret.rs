//! Secrets `<t>-api` (the API key), `<t>-admin` (the web UI's first
//! administrator) and `<t>-db` (database credentials).
//!
//! Values go in `data`, not `stringData`: the API server stores and returns
//! `data`, so what we apply compares equal to what we read back, and a
//! second apply of the same values changes nothing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::{
    Credentials, POSTGRES_PORT, admin_secret_name, api_secret_name, data_metadata,
    database_secret_name, metadata,
};
use crate::labels::Component;
use crate::validate::{Database, DatabaseTarget, Tenant};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Key of the API key in `<t>-api`.
pub const API_KEY: &str = "api-key";
/// Key of the administrator's email in `<t>-admin`.
pub const ADMIN_EMAIL: &str = "email";
/// Key of the administrator's password in `<t>-admin`.
pub const ADMIN_PASSWORD: &str = "password";
/// Key of the password in `<t>-db`.
pub const PASSWORD: &str = "password";
/// Annotation on a Secret recording which rotation request produced its value.
pub const ROTATED_FOR: &str = "crm.tenancy.dev/rotated-for";
/// Key of the database user in `<t>-db`.
pub const USERNAME: &str = "username";
/// Key of the database name in `<t>-db`.
pub const DATABASE: &str = "database";
/// Key of the connection URL in `<t>-db`.
pub const URL: &str = "url";
/// Key of the URL of the database being moved to, during a move between
/// two databases that both keep their URL in `<t>-db`.
pub const TARGET_URL: &str = "target-url";
/// User and database of a Managed PostgreSQL server: it serves one tenant, so
/// a fixed name is enough.
pub const MANAGED_USER: &str = "crm";

/// `<t>-api`, key `api-key`.
pub fn api_secret(tenant: &Tenant, credentials: &Credentials) -> Secret {
    let mut meta = metadata(tenant, api_secret_name(tenant), Component::Server);
    rotated_for(&mut meta, credentials.api_key_rotated_for.as_deref());
    opaque(meta, [(API_KEY, credentials.api_key.clone())])
}

/// `<t>-admin`, keys `email` (`admin@<t>.crm.local`) and `password`: the
/// web UI's first administrator, which the server creates at start-up when
/// no user has that email. The password is generated once and kept; the
/// administrator changes nothing by editing it later.
pub fn admin_secret(tenant: &Tenant, credentials: &Credentials) -> Secret {
    let meta = metadata(tenant, admin_secret_name(tenant), Component::Server);
    opaque(
        meta,
        [
            (ADMIN_EMAIL, admin_email(tenant)),
            (ADMIN_PASSWORD, credentials.admin_password.clone()),
        ],
    )
}

/// The first administrator's sign-in name.
pub fn admin_email(tenant: &Tenant) -> String {
    format!("admin@{}.crm.local", tenant.name)
}

/// `<t>-db` for Managed and Shared; Embedded needs no credentials and
/// External brings its own Secret. Shared's role, database and URL come
/// from the shared server (`credentials.shared`); until it answered, only
/// the password. During a move between two databases that both keep their
/// URL here, `url` stays the old one, which the pods use until the copy is
/// verified, and `target-url` holds the new one for the copy.
pub fn database_secret(tenant: &Tenant, credentials: &Credentials) -> Option<Secret> {
    let serving = tenant.serving();
    let (target, old) = (&tenant.database, &serving.database);
    let mut data = if keeps_url(target) {
        connection(tenant, target, credentials, true)
    } else if keeps_url(old) {
        connection(tenant, old, credentials, false)
    } else {
        return None;
    };
    if keeps_url(target) && keeps_url(old) && target != old {
        let moved_from = connection(tenant, old, credentials, false);
        if let Some(at) = data.iter().position(|(key, _)| *key == URL) {
            let (_, url) = data.remove(at);
            data.push((TARGET_URL, url));
        }
        data.extend(moved_from.into_iter().filter(|(key, _)| *key == URL));
    }
    data.push((PASSWORD, credentials.database_password.clone()));
    // The password opens the retained data, so it is kept with it.
    let mut meta = data_metadata(tenant, database_secret_name(tenant), Component::Server);
    rotated_for(
        &mut meta,
        credentials.database_password_rotated_for.as_deref(),
    );
    Some(opaque(meta, data))
}

/// Whether `database` keeps its URL in `<t>-db`.
pub fn keeps_url(database: &Database) -> bool {
    matches!(
        database.mode,
        DatabaseTarget::Managed { .. } | DatabaseTarget::Shared { .. }
    )
}

/// User, database and URL of a Managed or Shared database. A Shared one is
/// the spec's (`target`), provisioned by this reconcile, or the one in use,
/// whose URL `<t>-db` held.
fn connection(
    tenant: &Tenant,
    database: &Database,
    credentials: &Credentials,
    target: bool,
) -> Vec<(&'static str, String)> {
    match &database.mode {
        DatabaseTarget::Managed { .. } => vec![
            (USERNAME, MANAGED_USER.to_owned()),
            (DATABASE, MANAGED_USER.to_owned()),
            (URL, managed_url(tenant, &credentials.database_password)),
        ],
        DatabaseTarget::Shared { .. } if target => match &credentials.shared {
            Some(shared) => vec![
                (USERNAME, shared.username.clone()),
                (DATABASE, shared.database.clone()),
                (URL, shared.url.clone()),
            ],
            None => Vec::new(),
        },
        DatabaseTarget::Shared { .. } => credentials
            .url_in_use
            .iter()
            .map(|url| (URL, url.clone()))
            .collect(),
        DatabaseTarget::Embedded | DatabaseTarget::External { .. } => Vec::new(),
    }
}

/// Records which rotation request a Secret's value answers.
fn rotated_for(meta: &mut ObjectMeta, request: Option<&str>) {
    if let Some(request) = request {
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ROTATED_FOR.to_owned(), request.to_owned());
    }
}

/// The URL of the tenant's own PostgreSQL server. Generated passwords are
/// URL-safe base64, so they need no escaping in the user-info part.
fn managed_url(tenant: &Tenant, password: &str) -> String {
    format!(
        "postgres://{MANAGED_USER}:{password}@{}.{}.svc:{POSTGRES_PORT}/{MANAGED_USER}",
        super::postgres_name(tenant),
        tenant.namespace
    )
}

fn opaque(metadata: ObjectMeta, data: impl IntoIterator<Item = (&'static str, String)>) -> Secret {
    let data: BTreeMap<String, ByteString> = data
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
        .collect();
    Secret {
        metadata,
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture::{self, credentials};

    fn text(secret: &Secret, key: &str) -> Option<String> {
        let bytes = secret.data.as_ref()?.get(key)?;
        String::from_utf8(bytes.0.clone()).ok()
    }

    #[test]
    fn api_secret_holds_the_api_key_in_data() {
        let s = api_secret(&Tenant::test(), &credentials());
        assert_eq!(s.metadata.name.as_deref(), Some("acme-api"));
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(text(&s, "api-key").as_deref(), Some("api-key-0123456789"));
        assert_eq!(s.string_data, None);
    }

    #[test]
    fn admin_secret_holds_the_first_administrator() {
        let s = admin_secret(&Tenant::test(), &credentials());
        assert_eq!(s.metadata.name.as_deref(), Some("acme-admin"));
        assert_eq!(text(&s, "email").as_deref(), Some("admin@acme.crm.local"));
        assert_eq!(
            text(&s, "password").as_deref(),
            Some("admin-password-0123456789")
        );
        assert_eq!(s.string_data, None);
    }

    #[test]
    fn managed_database_secret_has_user_password_database_and_url() {
        let s = database_secret(&Tenant::test(), &credentials()).expect("managed has one");
        assert_eq!(s.metadata.name.as_deref(), Some("acme-db"));
        assert_eq!(text(&s, "username").as_deref(), Some("crm"));
        assert_eq!(text(&s, "database").as_deref(), Some("crm"));
        assert_eq!(
            text(&s, "password").as_deref(),
            Some("db-password-0123456789")
        );
        assert_eq!(
            text(&s, "url").as_deref(),
            Some("postgres://crm:db-password-0123456789@acme-postgres.crm-acme.svc:5432/crm")
        );
    }

    #[test]
    fn shared_database_secret_carries_only_the_password() {
        let tenant = Tenant::test().with_database(fixture::shared());
        let s = database_secret(&tenant, &credentials()).expect("shared has one");
        let keys: Vec<&String> = s.data.iter().flat_map(|d| d.keys()).collect();
        assert_eq!(keys, ["password"]);
    }

    #[test]
    fn a_shared_secret_carries_the_servers_role_database_and_url() {
        let tenant = Tenant::test().with_database(fixture::shared());
        let credentials = Credentials {
            shared: Some(crate::build::SharedConnection {
                username: "crm_r".into(),
                database: "crm_d".into(),
                url: "postgres://crm_r:pw@h:5432/crm_d".into(),
            }),
            ..credentials()
        };
        let s = database_secret(&tenant, &credentials).expect("shared has one");
        assert_eq!(text(&s, "username").as_deref(), Some("crm_r"));
        assert_eq!(text(&s, "database").as_deref(), Some("crm_d"));
        assert_eq!(
            text(&s, "url").as_deref(),
            Some("postgres://crm_r:pw@h:5432/crm_d")
        );
        assert_eq!(
            text(&s, "password").as_deref(),
            Some("db-password-0123456789")
        );
    }

    #[test]
    fn a_rotated_value_records_the_request_it_answers() {
        let credentials = Credentials {
            api_key_rotated_for: Some("r1".into()),
            ..credentials()
        };
        let s = api_secret(&Tenant::test(), &credentials);
        let annotations = s.metadata.annotations.expect("annotations");
        assert_eq!(annotations[ROTATED_FOR], "r1");
    }

    #[test]
    fn embedded_and_external_have_no_database_secret() {
        for mode in [DatabaseTarget::Embedded, fixture::external()] {
            let tenant = Tenant::test().with_database(mode);
            assert_eq!(database_secret(&tenant, &credentials()), None);
        }
    }
}
