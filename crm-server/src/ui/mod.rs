//! The web UI for the people who use the CRM: server-rendered HTML under
//! `/ui/` (askama templates compiled into the binary, one embedded CSS
//! file, no JavaScript), signed in with a user and password. It reads and
//! writes through the same storage functions as the API, which stays for
//! machines and is not part of this.

pub mod admin;
pub mod customers;
pub mod errors;
pub mod figures;
pub mod sales;
pub mod service;
pub mod session;
pub mod users;

use std::collections::BTreeMap;
use std::time::Duration;

use askama::Template;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use crate::AppState;
use crate::config::Modules;
use crate::error::ApiError;
use errors::ErrorInfo;
use session::Viewer;

/// Settings of the UI.
#[derive(Debug, Clone)]
pub struct UiState {
    /// Mark cookies `Secure` even without `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
    /// The dashboard's figures, refreshed once they are older than the read
    /// cache's TTL (`CRM_CACHE_TTL_SECS`): they aggregate every deal and
    /// ticket.
    pub figures: figures::Held,
}

impl UiState {
    /// Settings with dashboard figures kept for `ttl` (none when zero).
    pub fn new(secure_cookies: bool, ttl: Duration) -> Self {
        Self {
            secure_cookies,
            figures: figures::Held::new(ttl),
        }
    }
}

impl Default for UiState {
    fn default() -> Self {
        Self::new(false, Duration::from_secs(5))
    }
}

/// Rows per list page.
pub const PAGE_SIZE: i64 = 25;

/// The stylesheet, embedded.
const CSS: &str = include_str!("../../assets/ui.css");

/// Routes of the UI for the enabled modules.
pub fn router(state: AppState, m: Modules) -> Router<AppState> {
    let mut signed_in = Router::new()
        .route("/ui/", get(dashboard))
        .route("/ui/logout", post(logout))
        .merge(admin::router());
    if m.customers {
        signed_in = signed_in.merge(customers::router());
    }
    if m.sales {
        signed_in = signed_in.merge(sales::router());
    }
    if m.service {
        signed_in = signed_in.merge(service::tickets_router());
    }
    if m.marketing {
        signed_in = signed_in.merge(service::campaigns_router());
    }
    // Paths under /ui/ that no route serves: see [`errors::not_found`],
    // called by the service's fallback.
    let signed_in =
        signed_in.route_layer(middleware::from_fn_with_state(state, session::authenticate));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/assets/ui.css", get(css))
        .merge(signed_in)
}

/// Why a page could not be shown, as an HTML answer.
#[derive(Debug)]
pub enum UiError {
    /// No such page or record.
    NotFound,
    /// The user's role does not allow this.
    Forbidden,
    /// A form came without this session's CSRF token.
    Csrf,
    /// The server is read-only (data being moved).
    ReadOnly,
    /// The body is larger than allowed.
    TooLarge,
    /// A malformed request (a bad cursor or filter).
    BadRequest(String),
    /// Anything else; logged, never shown.
    Internal(ApiError),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound | ApiError::NoRoute => UiError::NotFound,
            ApiError::Validation { field, message } => {
                UiError::BadRequest(format!("{field}: {message}"))
            }
            ApiError::BadRequest(m) => UiError::BadRequest(m),
            other => UiError::Internal(other),
        }
    }
}

impl From<sqlx::Error> for UiError {
    fn from(e: sqlx::Error) -> Self {
        UiError::Internal(ApiError::Database(e))
    }
}

impl UiError {
    fn parts(&self) -> (StatusCode, ErrorInfo) {
        let e = ErrorInfo::new;
        match self {
            UiError::NotFound => (
                StatusCode::NOT_FOUND,
                e("Not found", "There is no such page."),
            ),
            UiError::Forbidden => (
                StatusCode::FORBIDDEN,
                e("Not allowed", "Your role does not allow this."),
            ),
            UiError::Csrf => (
                StatusCode::FORBIDDEN,
                e(
                    "Form expired",
                    "The form was not sent from this session. Go back, reload the page and try again.",
                ),
            ),
            UiError::ReadOnly => (
                StatusCode::SERVICE_UNAVAILABLE,
                e(
                    "Read-only",
                    "The data is being moved; changes are refused for a few minutes.",
                ),
            ),
            UiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                e("Too large", "The form is too large."),
            ),
            UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, e("Bad request", m.as_str())),
            UiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                e("Something went wrong", "The error was logged."),
            ),
        }
    }
}

/// The plain page; signed-in pages get it again in their layout
/// ([`errors::in_layout`]).
impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        if let UiError::Internal(e) = &self {
            tracing::error!(error = %e, "web UI failed");
        }
        let (status, info) = self.parts();
        let mut res = errors::render(status, info, None);
        if matches!(self, UiError::ReadOnly) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        res
    }
}

/// Result of a page handler.
pub type UiResult<T = Response> = Result<T, UiError>;

/// Render a template as an HTML page that no cache keeps.
pub fn page(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut res = Html(html).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed").into_response()
        }
    }
}

/// 403 unless `allowed`.
pub fn require(allowed: bool) -> UiResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(UiError::Forbidden)
    }
}

/// After a successful form POST: see the result with a GET (303).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Messages next to form fields, by field name.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Parse a form field with a domain type's `parse`, noting its error.
pub fn field<T>(
    errors: &mut FieldErrors,
    name: &'static str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match parse(value) {
        Ok(v) => Some(v),
        Err(m) => {
            errors.insert(name, m);
            None
        }
    }
}

/// An optional text field: empty is None.
pub fn optional<T>(
    errors: &mut FieldErrors,
    name: &'static str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    if value.trim().is_empty() {
        None
    } else {
        field(errors, name, value, parse)
    }
}

/// An optional id field: empty is None, else a positive integer.
pub fn optional_id(errors: &mut FieldErrors, name: &'static str, value: &str) -> Option<i64> {
    optional(errors, name, value, |s| {
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| "must be a positive whole number".to_string())
    })
}

async fn css() -> Response {
    let mut res = CSS.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    res
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

async fn login_form(State(st): State<AppState>, req: Request) -> UiResult {
    let csrf = session::token()?;
    let mut res = page(&LoginPage {
        csrf: &csrf,
        email: "",
        error: None,
    });
    let secure = session::secure(&st, req.headers());
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::LOGIN_COOKIE, &csrf, 3600, secure),
    );
    Ok(res)
}

/// The sign-in form. The password is never logged or shown.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    ext: axum::http::Extensions,
    Form(f): Form<LoginForm>,
) -> UiResult {
    let expected = session::cookie(&headers, session::LOGIN_COOKIE);
    if !expected.is_some_and(|c| session::same_token(c, &f.csrf)) {
        return Err(UiError::Csrf);
    }
    let ip = session::client_ip(&ext);
    let mut conn = st.db.pool.acquire().await?;
    if let Some(wait) = session::blocked(&mut conn, &f.email, ip).await? {
        return Ok(session::too_many(wait));
    }
    let found = users::find_for_sign_in(&mut conn, &f.email).await?;
    // Hashing takes tens of milliseconds of CPU: off the async workers.
    let password = f.password;
    let user = tokio::task::spawn_blocking(move || match found {
        Some((user, hash)) => {
            (users::verify_password(&password, &hash) && user.disabled == 0).then_some(user)
        }
        None => {
            users::verify_nobody(&password);
            None
        }
    })
    .await
    .map_err(|e| UiError::Internal(ApiError::Internal(format!("verifying a password: {e}"))))?;
    let Some(user) = user else {
        session::fail(&mut conn, &f.email, ip).await?;
        let mut res = page(&LoginPage {
            csrf: &f.csrf,
            email: &f.email,
            error: Some("Wrong email or password, or the account is disabled."),
        });
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(res);
    };
    session::clear(&mut conn, &f.email, ip).await?;
    let (token, _) = session::start(&mut conn, user.id).await?;
    tracing::info!(user = %user.email, "signed in");
    let secure = session::secure(&st, &headers);
    let mut res = see_other("/ui/");
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE, &token, session::TTL.as_secs(), secure),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(session::LOGIN_COOKIE, "", 0, secure),
    );
    Ok(res)
}

async fn logout(State(st): State<AppState>, headers: axum::http::HeaderMap) -> UiResult {
    if let Some(tok) = session::cookie(&headers, session::COOKIE) {
        session::end(&mut *st.db.pool.acquire().await?, tok).await?;
    }
    let mut res = see_other("/ui/login");
    let secure = session::secure(&st, &headers);
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE, "", 0, secure),
    );
    Ok(res)
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard<'a> {
    v: &'a Viewer,
    pipeline: &'a [figures::Total],
    tickets: Option<&'a crate::reports::TicketStats>,
    revenue: &'a [figures::Total],
}

async fn dashboard(State(st): State<AppState>, Extension(v): Extension<Viewer>) -> UiResult {
    let figures = st.ui.figures.get(&st).await?;
    let deals = v.role().sees_deals();
    Ok(page(&Dashboard {
        v: &v,
        pipeline: if deals { &figures.pipeline } else { &[] },
        tickets: figures.tickets.as_ref(),
        revenue: if deals { &figures.revenue } else { &[] },
    }))
}

/// Format minor units as `1,234.56` (two decimals).
pub fn money(minor: i64) -> String {
    let (sign, abs) = if minor < 0 {
        ("-", -minor)
    } else {
        ("", minor)
    };
    let units = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02}", abs % 100)
}
