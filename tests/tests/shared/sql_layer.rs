//! The SQL layer on its own: idempotence, names, quoting, SCRAM, and an
//! admin that is no superuser.

use crate::harness::*;

#[tokio::test]
async fn provisioning_twice_issues_no_ddl_the_second_time() {
    let names = sql::names("direct-idempotent", "acme");
    let password = crm_operator::database::credentials::generate().expect("random");
    let first = server()
        .ensure(&names, &password, 12)
        .await
        .expect("ensure");
    assert!(first.contains(&Change::CreatedRole), "{first:?}");
    assert!(first.contains(&Change::CreatedDatabase), "{first:?}");
    assert!(first.contains(&Change::RevokedPublicAccess), "{first:?}");

    let mut admin = superuser().await;
    let catalog_rows = "SELECT (SELECT xmin::text FROM pg_authid WHERE rolname = $1) || '/' || \
                        (SELECT xmin::text FROM pg_database WHERE datname = $1)";
    let before: String = scalar(&mut admin, catalog_rows, &names.role).await;
    let second = server()
        .ensure(&names, &password, 12)
        .await
        .expect("ensure");
    assert_eq!(second, Vec::<Change>::new(), "nothing to change");
    let after: String = scalar(&mut admin, catalog_rows, &names.role).await;
    assert_eq!(
        before, after,
        "no catalog row of the role or database was written"
    );

    let limit: i32 = scalar(
        &mut admin,
        "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
        &names.role,
    )
    .await;
    assert_eq!(limit, 12);
    let third = server()
        .ensure(&names, &password, 20)
        .await
        .expect("ensure");
    assert_eq!(third, vec![Change::SetConnectionLimit]);
}

#[tokio::test]
async fn hostile_tenant_names_get_valid_distinct_identifiers_and_nothing_else_runs() {
    let long = "n".repeat(250);
    let hostile = [
        "q\"; DROP ROLE postgres; --".to_owned(),
        "s'; CREATE ROLE evil SUPERUSER; --".to_owned(),
        "ünïcødé-名前-😀".to_owned(),
        long.clone(),
        format!("{long}x"),
    ];
    let mut admin = superuser().await;
    // Other tests add crm_ roles meanwhile; anything else would be injected.
    let others = "SELECT (SELECT count(*) FROM pg_roles WHERE rolname NOT LIKE $1) || '/' || \
                  (SELECT count(*) FROM pg_database WHERE datname NOT LIKE $1)";
    let before: String = scalar(&mut admin, others, "crm\\_%").await;
    let password = crm_operator::database::credentials::generate().expect("random");
    let mut seen = std::collections::BTreeSet::new();
    for name in &hostile {
        let names = sql::names("direct-hostile", name);
        assert!(names.role.len() <= 63, "{}", names.role);
        assert!(seen.insert(names.role.clone()), "distinct: {}", names.role);
        server()
            .ensure(&names, &password, 5)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(role_exists(&mut admin, &names.role).await, "{}", names.role);
        assert!(database_exists(&mut admin, &names.database).await);
    }
    let ours: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'crm\\_direct\\_hostile\\_%' ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .expect("roles");
    assert_eq!(
        ours,
        seen.iter().cloned().collect::<Vec<_>>(),
        "exactly these roles"
    );
    let after: String = scalar(&mut admin, others, "crm\\_%").await;
    assert_eq!(before, after, "no other role or database");
    assert!(!role_exists(&mut admin, "evil").await);
    let superusers: i64 = scalar(
        &mut admin,
        "SELECT count(*) FROM pg_roles WHERE rolsuper AND rolname LIKE $1",
        "crm\\_%",
    )
    .await;
    assert_eq!(superusers, 0);
}

#[tokio::test]
async fn quoting_means_exactly_the_text_quoted_on_the_server() {
    let mut admin = superuser().await;
    for text in [
        "plain",
        "it's",
        "a\"b",
        "back\\slash'; DROP TABLE x; --",
        "ünïcødé 名前",
        "''\\\\\"\"",
    ] {
        let sql = format!(
            "SELECT {} AS {}",
            quote_literal(text),
            quote_identifier(text)
        );
        let row: (String,) = sqlx::query_as(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(row.0, text, "literal {sql}");
        let column = sqlx::query(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut admin)
            .await
            .expect("row");
        use sqlx::{Column, Row};
        assert_eq!(column.columns()[0].name(), text, "identifier {sql}");
    }
}

#[tokio::test]
async fn scram_verifiers_agree_with_the_servers_own() {
    let mut admin = superuser().await;
    let role = "crm_scram_check";
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP ROLE IF EXISTS {role}; SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE {role} LOGIN PASSWORD 'the server hashed this'"
    )))
    .execute(&mut admin)
    .await
    .expect("create the role");
    let stored: String = scalar(
        &mut admin,
        "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
        role,
    )
    .await;
    assert!(
        scram::verifies("the server hashed this", &stored),
        "{stored}"
    );
    assert!(!scram::verifies("something else", &stored));
}

#[tokio::test]
async fn an_admin_with_createrole_and_createdb_but_not_superuser_manages_tenants() {
    let mut admin = superuser().await;
    sqlx::raw_sql(
        "DROP ROLE IF EXISTS crm_limited_admin; \
         CREATE ROLE crm_limited_admin LOGIN CREATEROLE CREATEDB PASSWORD 'limited-pw'",
    )
    .execute(&mut admin)
    .await
    .expect("admin role");
    let test = PgConnectOptions::from_str(&test_postgres_url()).expect("url");
    let url = format!(
        "postgres://crm_limited_admin:limited-pw@{}:{}/postgres",
        test.get_host(),
        test.get_port()
    );
    let limited = SharedServer::new("limited", &url).expect("valid");
    let names = sql::names("direct-limited", "acme");
    let password = crm_operator::database::credentials::generate().expect("random");

    let first = limited.ensure(&names, &password, 4).await.expect("ensure");
    assert!(first.contains(&Change::CreatedDatabase), "{first:?}");
    let tenant_url = limited.tenant_url(&names, &password);
    login(&tenant_url).await.expect("the tenant logs in");
    let second = limited.ensure(&names, &password, 4).await.expect("ensure");
    assert_eq!(
        second,
        Vec::<Change>::new(),
        "the password checked by logging in"
    );

    assert_eq!(
        limited.retain_tenant(&names).await.expect("retain"),
        vec![Change::DisabledLogin]
    );
    assert_eq!(sqlstate(login(&tenant_url).await), "28000");
    let back = limited.ensure(&names, &password, 4).await.expect("ensure");
    assert!(back.contains(&Change::EnabledLogin), "{back:?}");
    login(&tenant_url).await.expect("the tenant logs in again");

    let dropped = limited.drop_tenant(&names).await.expect("drop");
    assert_eq!(dropped, vec![Change::DroppedDatabase, Change::DroppedRole]);
    assert!(!role_exists(&mut admin, &names.role).await);
}
