//! People who sign in to the web UI: their roles, argon2id password
//! hashes, and the first administrator created from the environment.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::Serialize;
use sqlx::AnyConnection;

use crate::db::{Sql, now, rows};
use crate::domain::{Email, Name};
use crate::error::{ApiError, ApiResult, db_error};
use crate::store::{one, stale_or_missing, versioned};

/// The shortest password a user may be given.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// What a user may do in the UI. API keys are unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    /// Everything, including user administration.
    Admin,
    /// Contacts, companies, deals and campaigns.
    Sales,
    /// Tickets; reads contacts and companies, never deals.
    Support,
    /// Reads everything a salesperson and support read; writes nothing.
    Readonly,
}

impl Role {
    /// Every role, for forms.
    pub const ALL: &'static [Role] = &[Role::Admin, Role::Sales, Role::Support, Role::Readonly];

    /// Parse the stored form.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "sales" => Ok(Role::Sales),
            "support" => Ok(Role::Support),
            "readonly" => Ok(Role::Readonly),
            _ => Err("must be one of: admin, sales, support, readonly".into()),
        }
    }

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sales => "sales",
            Role::Support => "support",
            Role::Readonly => "readonly",
        }
    }

    /// May create and edit contacts, companies and their notes.
    pub fn writes_customers(self) -> bool {
        matches!(self, Role::Admin | Role::Sales)
    }

    /// May see the deal board.
    pub fn sees_deals(self) -> bool {
        !matches!(self, Role::Support)
    }

    /// May create deals and move them between stages.
    pub fn writes_deals(self) -> bool {
        matches!(self, Role::Admin | Role::Sales)
    }

    /// May change tickets.
    pub fn writes_tickets(self) -> bool {
        matches!(self, Role::Admin | Role::Support)
    }

    /// May manage users.
    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as stored, without the password hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Sign-in name, lower-cased.
    pub email: String,
    /// Shown in the UI.
    pub display_name: String,
    /// `admin`, `sales`, `support` or `readonly`.
    pub role: String,
    /// 1 when the user may no longer sign in.
    pub disabled: i64,
    /// Row version.
    pub version: i64,
}

impl User {
    /// The user's role; an unknown stored value grants nothing.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Readonly)
    }
}

/// A new user, validated.
pub struct NewUser {
    /// Sign-in name.
    pub email: Email,
    /// Shown in the UI.
    pub display_name: Name,
    /// Role.
    pub role: Role,
    /// The password, hashed before it is stored.
    pub password: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Check a password's length, naming what is wrong (never the password).
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.chars().count() > 1024 {
        return Err("must be at most 1024 characters".into());
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a random salt.
pub fn hash_password(password: &str) -> ApiResult<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Spend the time of a verification when there is no such user, so the
/// answer's timing does not tell which emails exist.
pub fn verify_nobody(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash_password("not anybody's password").ok()) {
        verify_password(password, phc);
    }
}

/// Insert a user; 409 (`email`) when the email is taken.
pub async fn insert_user(conn: &mut AnyConnection, u: NewUser) -> ApiResult<User> {
    let hash = hash_password(&u.password)?;
    let ts = now();
    let mut sql = Sql::new(
        "INSERT INTO users (email, display_name, role, password_hash, created_at, updated_at) \
         VALUES (",
    );
    sql.bind(String::from(u.email))
        .push(", ")
        .bind(String::from(u.display_name));
    sql.push(", ").bind(u.role.as_str()).push(", ").bind(hash);
    sql.push(", ")
        .bind(ts.clone())
        .push(", ")
        .bind(ts)
        .push(") RETURNING id, email, display_name, role, disabled, version");
    let row = sql
        .fetch_optional(conn)
        .await
        .map_err(|e| db_error(e, "email"))?;
    one(row)
}

/// The user with this email and their password hash, if any.
pub async fn find_for_sign_in(
    conn: &mut AnyConnection,
    email: &str,
) -> ApiResult<Option<(User, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: String,
    }
    let mut sql = Sql::new(
        "SELECT id, email, display_name, role, disabled, version, password_hash FROM users \
         WHERE email = ",
    );
    sql.bind(email.trim().to_lowercase());
    match sql.fetch_optional(conn).await? {
        Some(row) => {
            let r: Row = one(Some(row))?;
            Ok(Some((r.user, r.password_hash)))
        }
        None => Ok(None),
    }
}

/// Every user, by email (user lists are short).
pub async fn list_users(conn: &mut AnyConnection) -> ApiResult<Vec<User>> {
    let sql = Sql::new(
        "SELECT id, email, display_name, role, disabled, version FROM users ORDER BY email \
         LIMIT 1000",
    );
    rows(sql.fetch_all(conn).await?)
}

/// Change a user's role and whether they are disabled, if their version is
/// `expected`. Disabling ends the user's sessions.
pub async fn update_user(
    conn: &mut AnyConnection,
    id: i64,
    expected: i64,
    role: Role,
    disabled: bool,
) -> ApiResult<User> {
    let mut sql = Sql::new("UPDATE users SET role = ");
    sql.bind(role.as_str())
        .push(", disabled = ")
        .bind(i64::from(disabled));
    sql.push(", updated_at = ")
        .bind(now())
        .push(", version = version + 1 WHERE id = ")
        .bind(id);
    versioned(&mut sql, Some(expected));
    // `versioned` asks for every column; the hash stays in the database.
    let row = sql.fetch_optional(&mut *conn).await?;
    let user: User = stale_or_missing(&mut *conn, "users", id, row).await?;
    if disabled {
        super::session::end_all(conn, id).await?;
    }
    Ok(user)
}

/// Create the administrator `email` unless a user with that email exists.
/// True when it was created.
pub async fn ensure_admin(
    conn: &mut AnyConnection,
    email: &str,
    password: &str,
) -> ApiResult<bool> {
    let email = Email::parse(email).map_err(|m| ApiError::invalid("CRM_ADMIN_EMAIL", m))?;
    check_password(password).map_err(|m| ApiError::invalid("CRM_ADMIN_PASSWORD", m))?;
    if find_for_sign_in(conn, email.as_str()).await?.is_some() {
        return Ok(false);
    }
    let admin = NewUser {
        email,
        display_name: Name::parse("Administrator").map_err(ApiError::Internal)?,
        role: Role::Admin,
        password: password.to_owned(),
    };
    match insert_user(conn, admin).await {
        Ok(_) => Ok(true),
        // Another replica created it meanwhile.
        Err(ApiError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
