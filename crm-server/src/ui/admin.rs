//! User administration: an admin adds users, changes their role, disables
//! them (which ends their sessions) and enables them again.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::session::Viewer;
use super::users::{self, NewUser, Role, User};
use super::{FieldErrors, UiError, UiResult, field, page, require, see_other};
use crate::AppState;
use crate::domain::{Email, Name};
use crate::error::ApiError;
use crate::http::Id;

/// Routes of user administration.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/users", get(list).post(add))
        .route("/ui/users/{id}", post(change))
}

/// The new-user form. The password is never shown again or logged.
#[derive(Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

impl std::fmt::Debug for UserForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserForm")
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    v: &'a Viewer,
    users: Vec<User>,
    roles: &'static [Role],
    f: &'a UserForm,
    errors: &'a FieldErrors,
}

async fn list(State(st): State<AppState>, Extension(v): Extension<Viewer>) -> UiResult {
    show(&st, &v, &UserForm::default(), &FieldErrors::new()).await
}

async fn show(st: &AppState, v: &Viewer, f: &UserForm, errors: &FieldErrors) -> UiResult {
    require(v.role().is_admin())?;
    let users = users::list_users(&mut *st.db.pool.acquire().await?).await?;
    let mut res = page(&UsersPage {
        v,
        users,
        roles: Role::ALL,
        f,
        errors,
    });
    if !errors.is_empty() {
        *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(res)
}

async fn add(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Form(mut f): Form<UserForm>,
) -> UiResult {
    require(v.role().is_admin())?;
    let mut errors = FieldErrors::new();
    let email = field(&mut errors, "email", &f.email, Email::parse);
    let display_name = field(&mut errors, "display_name", &f.display_name, Name::parse);
    let role = field(&mut errors, "role", &f.role, Role::parse);
    let password = field(&mut errors, "password", &f.password, |p| {
        users::check_password(p).map(|()| p.to_owned())
    });
    if let (Some(email), Some(display_name), Some(role), Some(password)) =
        (email, display_name, role, password)
    {
        let new = NewUser {
            email,
            display_name,
            role,
            password,
        };
        match users::insert_user(&mut *st.db.pool.acquire().await?, new).await {
            Ok(u) => {
                tracing::info!(user = %u.email, role = %u.role, by = %v.user.email, "user added");
                return Ok(see_other("/ui/users"));
            }
            Err(ApiError::Conflict { .. }) => {
                errors.insert("email", "another user has this email".into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    f.password.clear();
    show(&st, &v, &f, &errors).await
}

/// A user's new role and state.
#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    role: String,
    #[serde(default)]
    disabled: Option<String>,
    version: i64,
}

async fn change(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Form(f): Form<ChangeForm>,
) -> UiResult {
    require(v.role().is_admin())?;
    let role = Role::parse(&f.role).map_err(|m| UiError::BadRequest(format!("role {m}")))?;
    let disabled = f.disabled.is_some();
    if id == v.user.id && (disabled || role != Role::Admin) {
        return Err(UiError::BadRequest(
            "you cannot disable yourself or take away your own admin role".into(),
        ));
    }
    let mut conn = st.db.pool.acquire().await?;
    match users::update_user(&mut conn, id, f.version, role, disabled).await {
        Ok(u) => {
            tracing::info!(user = %u.email, role = %u.role, disabled, by = %v.user.email, "user changed");
            Ok(see_other("/ui/users"))
        }
        Err(ApiError::PreconditionFailed) => Ok(see_other("/ui/users")),
        Err(e) => Err(e.into()),
    }
}
