//! Shared mode: one login role and one database per tenant on a PostgreSQL
//! server the operator administers through an admin connection URL.
//!
//! ```text
//! ensure:  role (LOGIN, CONNECTION LIMIT n, PASSWORD <SCRAM verifier>)
//!          database OWNER role, CONNECT and TEMPORARY revoked from PUBLIC
//! delete:  DROP DATABASE … WITH (FORCE), DROP ROLE
//! retain:  ALTER ROLE … NOLOGIN, end the role's sessions
//! ```
//!
//! Every step reads the catalogs first and changes only what differs, so an
//! unchanged tenant costs four catalog reads and no DDL. Passwords are never
//! sent: roles get a SCRAM verifier (see [`super::scram`]). Errors hold no
//! credential (see [`super::error`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

pub use super::error::{DbError, DbErrorKind};
use super::scram;
use super::sql::{Names, quote_identifier, quote_literal};

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one statement may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// One change made on the server; a reconcile of an unchanged tenant makes none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `CREATE ROLE`.
    CreatedRole,
    /// `ALTER ROLE … LOGIN` (a retained role came back).
    EnabledLogin,
    /// `ALTER ROLE … CONNECTION LIMIT`.
    SetConnectionLimit,
    /// `ALTER ROLE … PASSWORD` (a rotation, or a password edited out of band).
    SetPassword,
    /// `GRANT <role> TO CURRENT_USER`: an admin that is no superuser must be a
    /// member of the role to give it a database, and later to drop it.
    GrantedToAdmin,
    /// `CREATE DATABASE`.
    CreatedDatabase,
    /// `ALTER DATABASE … OWNER TO`.
    SetOwner,
    /// `REVOKE ALL ON DATABASE … FROM PUBLIC`.
    RevokedPublicAccess,
    /// `DROP DATABASE`.
    DroppedDatabase,
    /// `DROP ROLE`.
    DroppedRole,
    /// `ALTER ROLE … NOLOGIN`, and the role's sessions ended.
    DisabledLogin,
}

/// A shared server, as its admin URL describes it. Debug shows no URL.
#[derive(Clone)]
pub struct SharedServer {
    name: String,
    options: PgConnectOptions,
}

impl std::fmt::Debug for SharedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedServer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SharedServer {
    /// The server called `name`, administered through `admin_url`.
    pub fn new(name: &str, admin_url: &str) -> Result<Self, DbError> {
        let invalid = || {
            DbError::new(
                DbErrorKind::InvalidUrl,
                "the admin URL is not a valid postgres:// connection URL",
            )
        };
        if !(admin_url.starts_with("postgres://") || admin_url.starts_with("postgresql://")) {
            return Err(invalid());
        }
        let options = PgConnectOptions::from_str(admin_url).map_err(|_| invalid())?;
        Ok(Self {
            name: name.to_owned(),
            // Statements carry verifiers; they are never logged.
            options: options
                .application_name("crm-operator")
                .disable_statement_logging(),
        })
    }

    /// `postgres://role:password@host:port/database`, what the tenant's pods
    /// connect with, with the admin URL's `sslmode` when it set one. Names
    /// are plain ASCII ([`super::sql::names`]) and generated passwords
    /// URL-safe base64, so nothing needs escaping.
    pub fn tenant_url(&self, names: &Names, password: &str) -> String {
        let host = self.options.get_host();
        // sqlx keeps the brackets of an IPv6 literal; a bare one needs them.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let ssl_mode = match self.options.get_ssl_mode() {
            PgSslMode::Prefer => "",
            PgSslMode::Disable => "?sslmode=disable",
            PgSslMode::Allow => "?sslmode=allow",
            PgSslMode::Require => "?sslmode=require",
            PgSslMode::VerifyCa => "?sslmode=verify-ca",
            PgSslMode::VerifyFull => "?sslmode=verify-full",
        };
        format!(
            "postgres://{}:{password}@{host}:{}/{}{ssl_mode}",
            names.role,
            self.options.get_port(),
            names.database
        )
    }

    /// Options of the tenant's own connection.
    pub fn tenant_options(&self, names: &Names, password: &str) -> PgConnectOptions {
        self.options
            .clone()
            .username(&names.role)
            .password(password)
            .database(&names.database)
    }

    async fn connect(&self) -> Result<PgConnection, DbError> {
        connect(&self.options, "connecting as the admin role").await
    }

    /// Makes the tenant's role and database exist as they should, changing
    /// only what differs; returns what it changed.
    pub async fn ensure(
        &self,
        names: &Names,
        password: &str,
        connection_limit: i32,
    ) -> Result<Vec<Change>, DbError> {
        let mut conn = self.connect().await?;
        let result = self
            .ensure_on(&mut conn, names, password, connection_limit)
            .await;
        let _ = conn.close().await;
        result
    }

    async fn ensure_on(
        &self,
        conn: &mut PgConnection,
        names: &Names,
        password: &str,
        connection_limit: i32,
    ) -> Result<Vec<Change>, DbError> {
        let mut changes = Vec::new();
        let role = quote_identifier(&names.role);
        let database = quote_identifier(&names.database);
        let verifier = || {
            scram::verifier(password).map_err(|e| DbError::new(DbErrorKind::Failed, e.to_string()))
        };
        match self.role(conn, names, password).await? {
            None => {
                let verifier = verifier()?;
                let sql = format!(
                    "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                     CONNECTION LIMIT {connection_limit} PASSWORD {}",
                    quote_literal(&verifier)
                );
                run(conn, &sql, "creating the role", &[password, &verifier]).await?;
                changes.push(Change::CreatedRole);
            }
            Some(live) => {
                let mut options = Vec::new();
                if !live.can_login {
                    options.push("LOGIN".to_owned());
                    changes.push(Change::EnabledLogin);
                }
                if live.connection_limit != connection_limit {
                    options.push(format!("CONNECTION LIMIT {connection_limit}"));
                    changes.push(Change::SetConnectionLimit);
                }
                let verifier = if live.password_matches {
                    String::new()
                } else {
                    let verifier = verifier()?;
                    options.push(format!("PASSWORD {}", quote_literal(&verifier)));
                    changes.push(Change::SetPassword);
                    verifier
                };
                if !options.is_empty() {
                    let sql = format!("ALTER ROLE {role} WITH {}", options.join(" "));
                    run(conn, &sql, "altering the role", &[password, &verifier]).await?;
                }
            }
        }
        let member: bool =
            sqlx::query_scalar("SELECT pg_catalog.pg_has_role(current_user, $1, 'MEMBER')")
                .bind(&names.role)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| DbError::from_sqlx(&e, "reading the admin's memberships", &[]))?;
        if !member {
            let sql = format!("GRANT {role} TO CURRENT_USER");
            run(conn, &sql, "granting the role to the admin", &[]).await?;
            changes.push(Change::GrantedToAdmin);
        }
        let live: Option<(String, bool)> = sqlx::query_as(
            "SELECT pg_catalog.pg_get_userbyid(d.datdba)::text,
                    d.datacl IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM pg_catalog.aclexplode(d.datacl) a WHERE a.grantee = 0)
             FROM pg_catalog.pg_database d WHERE d.datname = $1",
        )
        .bind(&names.database)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| DbError::from_sqlx(&e, "reading the database", &[]))?;
        let (owner, closed) = match live {
            Some(live) => live,
            None => {
                let sql = format!("CREATE DATABASE {database} OWNER {role}");
                run(conn, &sql, "creating the database", &[]).await?;
                changes.push(Change::CreatedDatabase);
                (names.role.clone(), false)
            }
        };
        if owner != names.role {
            let sql = format!("ALTER DATABASE {database} OWNER TO {role}");
            run(conn, &sql, "changing the database's owner", &[]).await?;
            changes.push(Change::SetOwner);
        }
        if !closed {
            // Every database starts out open to PUBLIC; closed, only its
            // owner (and superusers) can connect.
            let sql = format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC");
            run(conn, &sql, "revoking PUBLIC's access", &[]).await?;
            changes.push(Change::RevokedPublicAccess);
        }
        Ok(changes)
    }

    /// The role as the catalog has it, and whether its password is `password`.
    /// `pg_authid` (superusers only) holds the verifier; an admin that cannot
    /// read it finds out by logging in as the role instead.
    async fn role(
        &self,
        conn: &mut PgConnection,
        names: &Names,
        password: &str,
    ) -> Result<Option<LiveRole>, DbError> {
        let authid: Result<Option<(bool, i32, Option<String>)>, sqlx::Error> = sqlx::query_as(
            "SELECT rolcanlogin, rolconnlimit, rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1",
        )
        .bind(&names.role)
        .fetch_optional(&mut *conn)
        .await;
        match authid {
            Ok(row) => Ok(row.map(|(can_login, connection_limit, stored)| LiveRole {
                can_login,
                connection_limit,
                password_matches: stored.is_some_and(|s| scram::verifies(password, &s)),
            })),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501") => {
                let row: Option<(bool, i32)> = sqlx::query_as(
                    "SELECT rolcanlogin, rolconnlimit FROM pg_catalog.pg_roles WHERE rolname = $1",
                )
                .bind(&names.role)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| DbError::from_sqlx(&e, "reading the role", &[]))?;
                let Some((can_login, connection_limit)) = row else {
                    return Ok(None);
                };
                let password_matches = can_login && self.logs_in(names, password).await?;
                Ok(Some(LiveRole {
                    can_login,
                    connection_limit,
                    password_matches,
                }))
            }
            Err(e) => Err(DbError::from_sqlx(&e, "reading the role", &[password])),
        }
    }

    /// Whether the role logs in to its database with `password`.
    async fn logs_in(&self, names: &Names, password: &str) -> Result<bool, DbError> {
        match connect(
            &self.tenant_options(names, password),
            "logging in as the tenant",
        )
        .await
        {
            Ok(conn) => {
                let _ = conn.close().await;
                Ok(true)
            }
            Err(e) if e.kind == DbErrorKind::AuthenticationFailed => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `deletionPolicy: Delete`: drops the database (ending its sessions)
    /// and the role. Gone already is fine.
    pub async fn drop_tenant(&self, names: &Names) -> Result<Vec<Change>, DbError> {
        let mut conn = self.connect().await?;
        let mut changes = Vec::new();
        let result = async {
            if exists(&mut conn, "pg_database", "datname", &names.database).await? {
                let sql = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_identifier(&names.database)
                );
                run(&mut conn, &sql, "dropping the database", &[]).await?;
                changes.push(Change::DroppedDatabase);
            }
            if exists(&mut conn, "pg_roles", "rolname", &names.role).await? {
                let sql = format!("DROP ROLE IF EXISTS {}", quote_identifier(&names.role));
                run(&mut conn, &sql, "dropping the role", &[]).await?;
                changes.push(Change::DroppedRole);
            }
            Ok(())
        }
        .await;
        let _ = conn.close().await;
        result.map(|()| changes)
    }

    /// `deletionPolicy: Retain`: keeps role and database, takes the role's
    /// login away and ends its sessions, so nothing reaches the data until a
    /// tenant of the same name and namespace takes it over again.
    pub async fn retain_tenant(&self, names: &Names) -> Result<Vec<Change>, DbError> {
        let mut conn = self.connect().await?;
        let result = async {
            let can_login: Option<bool> = sqlx::query_scalar(
                "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = $1",
            )
            .bind(&names.role)
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| DbError::from_sqlx(&e, "reading the role", &[]))?;
            if can_login != Some(true) {
                return Ok(Vec::new());
            }
            let sql = format!("ALTER ROLE {} NOLOGIN", quote_identifier(&names.role));
            run(&mut conn, &sql, "disabling the role's login", &[]).await?;
            sqlx::query(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                 WHERE usename = $1",
            )
            .bind(&names.role)
            .execute(&mut conn)
            .await
            .map_err(|e| DbError::from_sqlx(&e, "ending the role's sessions", &[]))?;
            Ok(vec![Change::DisabledLogin])
        }
        .await;
        let _ = conn.close().await;
        result
    }
}

struct LiveRole {
    can_login: bool,
    connection_limit: i32,
    password_matches: bool,
}

async fn connect(options: &PgConnectOptions, doing: &str) -> Result<PgConnection, DbError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(DbError::from_sqlx(&e, doing, &[])),
        Err(_) => Err(DbError::new(
            DbErrorKind::Unreachable,
            format!("{doing}: no answer within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

/// Runs one statement built from quoted parts (simple protocol: DDL takes no
/// parameters, and CREATE DATABASE refuses to run inside a transaction).
async fn run(
    conn: &mut PgConnection,
    sql: &str,
    doing: &str,
    secrets: &[&str],
) -> Result<(), DbError> {
    let statement = sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&mut *conn);
    match tokio::time::timeout(STATEMENT_TIMEOUT, statement).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(DbError::from_sqlx(&e, doing, secrets)),
        Err(_) => Err(DbError::new(
            DbErrorKind::Unreachable,
            format!("{doing}: no answer within {STATEMENT_TIMEOUT:?}"),
        )),
    }
}

async fn exists(
    conn: &mut PgConnection,
    catalog: &'static str,
    column: &'static str,
    name: &str,
) -> Result<bool, DbError> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM pg_catalog.{catalog} WHERE {column} = $1)");
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(|e| DbError::from_sqlx(&e, "reading the catalog", &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_url_points_at_the_admin_urls_host_and_port() {
        let server = SharedServer::new(
            "pg-main",
            "postgres://admin:s3cret@db.example:6543/postgres",
        )
        .expect("valid");
        let names = Names {
            role: "r".into(),
            database: "d".into(),
        };
        assert_eq!(
            server.tenant_url(&names, "pw"),
            "postgres://r:pw@db.example:6543/d"
        );
        assert!(!format!("{server:?}").contains("s3cret"));
        let tls = SharedServer::new("pg-main", "postgresql://a@[::1]:5432/x?sslmode=verify-full")
            .expect("valid");
        assert_eq!(
            tls.tenant_url(&names, "pw"),
            "postgres://r:pw@[::1]:5432/d?sslmode=verify-full"
        );
    }

    #[test]
    fn an_unparsable_url_is_refused_without_repeating_it() {
        for url in [
            "mysql://admin:s3cret@x",
            "postgres://admin:s3cret@x:port/db",
        ] {
            let error = SharedServer::new("pg-main", url).expect_err("invalid");
            assert_eq!(error.kind, DbErrorKind::InvalidUrl);
            assert!(!error.message.contains("s3cret"));
        }
    }
}
