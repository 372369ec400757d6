//! Sessions of the web UI: a random token in an HttpOnly, SameSite=Lax
//! cookie, kept server-side by its SHA-256 with an expiry; a CSRF token per
//! session that every form sends back; and the sign-in rate limit.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use subtle::ConstantTimeEq;

use super::users::{Role, User};
use crate::AppState;
use crate::db::{Sql, now, rows, timestamp};
use crate::error::{ApiError, ApiResult};
use crate::store::one;

/// The session cookie.
pub const COOKIE: &str = "crm_session";
/// The cookie carrying the sign-in form's CSRF token (no session yet).
pub const LOGIN_COOKIE: &str = "crm_login_csrf";
/// How long a session lasts.
pub const TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins allowed per email and address within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The signed-in user of a request, with their session's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The user.
    pub user: User,
    /// Sent back by every form of this session.
    pub csrf: String,
}

impl Viewer {
    /// The user's role.
    pub fn role(&self) -> Role {
        self.user.role()
    }
}

/// A random URL-safe token of 32 bytes.
pub fn token() -> ApiResult<String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| ApiError::Internal(format!("random token: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Start a session for `user_id`: (cookie token, CSRF token). Expired
/// sessions of everybody are removed on the way.
pub async fn start(conn: &mut AnyConnection, user_id: i64) -> ApiResult<(String, String)> {
    let (tok, csrf) = (token()?, token()?);
    let ts = now();
    let mut purge = Sql::new("DELETE FROM ui_sessions WHERE expires_at < ");
    purge.bind(ts.clone());
    purge.execute(&mut *conn).await?;
    let expires = timestamp(jiff::Timestamp::now() + TTL);
    let mut sql = Sql::new(
        "INSERT INTO ui_sessions (token_hash, user_id, csrf_token, expires_at, created_at) VALUES (",
    );
    sql.bind(digest(&tok))
        .push(", ")
        .bind(user_id)
        .push(", ")
        .bind(csrf.clone());
    sql.push(", ").bind(expires).push(", ").bind(ts).push(")");
    sql.execute(conn).await?;
    Ok((tok, csrf))
}

/// The live session of `token`, of a user who is not disabled.
pub async fn find(conn: &mut AnyConnection, token: &str) -> ApiResult<Option<Viewer>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        csrf_token: String,
    }
    let mut sql = Sql::new(
        "SELECT u.id, u.email, u.display_name, u.role, u.disabled, u.version, s.csrf_token \
         FROM ui_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ",
    );
    sql.bind(digest(token))
        .push(" AND s.expires_at > ")
        .bind(now())
        .push(" AND u.disabled = 0");
    match sql.fetch_optional(conn).await? {
        Some(row) => {
            let r: Row = one(Some(row))?;
            Ok(Some(Viewer {
                user: r.user,
                csrf: r.csrf_token,
            }))
        }
        None => Ok(None),
    }
}

/// End the session of `token`.
pub async fn end(conn: &mut AnyConnection, token: &str) -> ApiResult<()> {
    let mut sql = Sql::new("DELETE FROM ui_sessions WHERE token_hash = ");
    sql.bind(digest(token));
    sql.execute(conn).await?;
    Ok(())
}

/// End every session of a user.
pub async fn end_all(conn: &mut AnyConnection, user_id: i64) -> ApiResult<()> {
    let mut sql = Sql::new("DELETE FROM ui_sessions WHERE user_id = ");
    sql.bind(user_id);
    sql.execute(conn).await?;
    Ok(())
}

/// The value of cookie `name`, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether cookies must be `Secure`: the setting says so, or the request
/// reached the proxy in front over TLS.
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.ui.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A `Set-Cookie` value; `max_age` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let flags = if secure { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Lax; Max-Age={max_age}{flags}");
    // Tokens are URL-safe base64: always a valid header value.
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The `csrf` field of a URL-encoded form body. Tokens are URL-safe
/// base64, which a browser sends as it is.
pub fn form_csrf(body: &[u8]) -> Option<&str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "csrf")
        .map(|(_, v)| v)
}

/// Signed-in pages: without a live session, a redirect to the sign-in
/// page; a POST without this session's CSRF token is 403; a write while
/// the server is read-only is 503. The [`Viewer`] goes into the request's
/// extensions.
pub async fn authenticate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let viewer = match cookie(req.headers(), COOKIE) {
        Some(tok) => match st.db.pool.acquire().await {
            Ok(mut conn) => find(&mut conn, tok).await,
            Err(e) => Err(e.into()),
        },
        None => Ok(None),
    };
    let viewer = match viewer {
        Ok(Some(v)) => v,
        Ok(None) => return Redirect::to("/ui/login").into_response(),
        Err(e) => return super::UiError::from(e).into_response(),
    };
    let res = signed_in(&st, viewer.clone(), req, next).await;
    super::errors::in_layout(&viewer, res).await
}

async fn signed_in(st: &AppState, viewer: Viewer, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let mut req = if parts.method == Method::POST {
        let bytes = match axum::body::to_bytes(body, st.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => return super::UiError::TooLarge.into_response(),
        };
        let sent = form_csrf(&bytes);
        if !sent.is_some_and(|s| same_token(s, &viewer.csrf)) {
            return super::UiError::Csrf.into_response();
        }
        if st.read_only && parts.uri.path() != "/ui/logout" {
            return super::UiError::ReadOnly.into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    req.extensions_mut().insert(viewer);
    next.run(req).await
}

/// The client's address (unknown under `oneshot` tests).
pub fn client_ip(req_ext: &axum::http::Extensions) -> Option<IpAddr> {
    req_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// Whose sign-ins are counted: the email, lower-cased, and the address.
fn limit_key(email: &str, ip: Option<IpAddr>) -> String {
    let ip = ip.map(|a| a.to_string()).unwrap_or_default();
    format!("{} {ip}", email.trim().to_lowercase())
}

/// The failed sign-ins are kept in the database, so that every replica
/// counts the same ones: when (email, address) is blocked, how long until
/// it may try again.
pub async fn blocked(
    conn: &mut AnyConnection,
    email: &str,
    ip: Option<IpAddr>,
) -> ApiResult<Option<Duration>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        failed_at: String,
    }
    let now = jiff::Timestamp::now();
    let mut sql = Sql::new("SELECT failed_at FROM ui_sign_in_failures WHERE limit_key = ");
    sql.bind(limit_key(email, ip))
        .push(" AND failed_at > ")
        .bind(timestamp(now - WINDOW))
        .push(" ORDER BY failed_at DESC LIMIT ")
        .bind(MAX_FAILURES as i64);
    let recent: Vec<Row> = rows(sql.fetch_all(conn).await?)?;
    if recent.len() < MAX_FAILURES {
        return Ok(None);
    }
    // The oldest of the last MAX_FAILURES leaves the window first.
    let oldest = recent
        .last()
        .and_then(|r| r.failed_at.parse::<jiff::Timestamp>().ok())
        .unwrap_or(now);
    let elapsed = u64::try_from(now.as_microsecond() - oldest.as_microsecond()).unwrap_or(0);
    Ok(Some(WINDOW.saturating_sub(Duration::from_micros(elapsed))))
}

/// Count a failed sign-in; failures older than [`WINDOW`] go on the way.
pub async fn fail(conn: &mut AnyConnection, email: &str, ip: Option<IpAddr>) -> ApiResult<()> {
    let now = jiff::Timestamp::now();
    let mut purge = Sql::new("DELETE FROM ui_sign_in_failures WHERE failed_at <= ");
    purge.bind(timestamp(now - WINDOW));
    purge.execute(&mut *conn).await?;
    let mut sql = Sql::new("INSERT INTO ui_sign_in_failures (limit_key, failed_at) VALUES (");
    sql.bind(limit_key(email, ip))
        .push(", ")
        .bind(timestamp(now))
        .push(")");
    sql.execute(conn).await?;
    Ok(())
}

/// Forget the failures of (email, address) after a successful sign-in.
pub async fn clear(conn: &mut AnyConnection, email: &str, ip: Option<IpAddr>) -> ApiResult<()> {
    let mut sql = Sql::new("DELETE FROM ui_sign_in_failures WHERE limit_key = ");
    sql.bind(limit_key(email, ip));
    sql.execute(conn).await?;
    Ok(())
}

/// 429 with `Retry-After` in whole seconds (at least 1).
pub fn too_many(wait: Duration) -> Response {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let info = super::errors::ErrorInfo::new(
        "Too many tries",
        format!("Too many failed sign-ins; try again in {secs} seconds."),
    );
    let mut res = super::errors::render(StatusCode::TOO_MANY_REQUESTS, info, None);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}
