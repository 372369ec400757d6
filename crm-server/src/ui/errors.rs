//! Errors of the web UI as HTML pages: in the signed-in layout when the
//! viewer is known, else in the plain one. An answer that is not HTML (a
//! JSON problem from a shared extractor, a plain-text rejection of a form
//! or query, a bare 405) becomes such a page with the same status.

use askama::Template;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::page;
use super::session::{self, Viewer};
use crate::AppState;

/// What an error page says.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// The heading.
    pub title: &'static str,
    /// One sentence for the person.
    pub detail: String,
}

impl ErrorInfo {
    /// A page's heading and sentence.
    pub fn new(title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            title,
            detail: detail.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct PlainErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
}

#[derive(Template)]
#[template(path = "error_signed_in.html")]
struct ErrorPage<'a> {
    v: &'a Viewer,
    title: &'a str,
    detail: &'a str,
}

/// The error page with `status`, in the signed-in layout when `v` is
/// known. The [`ErrorInfo`] stays in the response's extensions, so that a
/// layer that knows the viewer can render it again in the layout.
pub fn render(status: StatusCode, info: ErrorInfo, v: Option<&Viewer>) -> Response {
    let (title, detail) = (info.title, info.detail.as_str());
    let mut res = match v {
        Some(v) => page(&ErrorPage { v, title, detail }),
        None => page(&PlainErrorPage { title, detail }),
    };
    *res.status_mut() = status;
    res.extensions_mut().insert(info);
    res
}

/// A signed-in answer as the person sees it: an error in the layout.
pub async fn in_layout(v: &Viewer, res: Response) -> Response {
    let status = res.status();
    let info = match res.extensions().get::<ErrorInfo>() {
        Some(info) => info.clone(),
        None if !is_error(status) || is_html(res.headers()) => return res,
        None => {
            let (_, body) = res.into_parts();
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .unwrap_or_default();
            return render(status, of_status(status, &text), Some(v));
        }
    };
    let mut page = render(status, info, Some(v));
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = res.headers().get(&name) {
            page.headers_mut().insert(name, value.clone());
        }
    }
    page
}

/// 404 for a path under `/ui/` that no route serves: in the layout for a
/// signed-in person, else in the plain one.
pub async fn not_found(st: &AppState, headers: &HeaderMap) -> Response {
    let info = ErrorInfo::new("Not found", "There is no such page.");
    let viewer = match session::cookie(headers, session::COOKIE) {
        Some(tok) => match st.db.pool.acquire().await {
            Ok(mut conn) => session::find(&mut conn, tok).await.ok().flatten(),
            Err(_) => None,
        },
        None => None,
    };
    render(StatusCode::NOT_FOUND, info, viewer.as_ref())
}

fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}

/// The page for an answer that only has a status and a body: a JSON
/// problem's `detail`, or a short plain-text reason, is shown for a bad
/// request; nothing else of the body is.
fn of_status(status: StatusCode, body: &[u8]) -> ErrorInfo {
    match status {
        StatusCode::NOT_FOUND => ErrorInfo::new("Not found", "There is no such page."),
        StatusCode::METHOD_NOT_ALLOWED => {
            ErrorInfo::new("Not allowed", "This page cannot be used that way.")
        }
        StatusCode::FORBIDDEN => ErrorInfo::new("Not allowed", "Your role does not allow this."),
        StatusCode::PAYLOAD_TOO_LARGE => ErrorInfo::new("Too large", "The form is too large."),
        StatusCode::REQUEST_TIMEOUT => {
            ErrorInfo::new("Too slow", "The page took too long. Try again.")
        }
        s if s.is_client_error() => ErrorInfo::new("Bad request", reason(body)),
        _ => ErrorInfo::new("Something went wrong", "The error was logged."),
    }
}

fn reason(body: &[u8]) -> String {
    let problem = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string));
    let text = problem.or_else(|| {
        std::str::from_utf8(body)
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 300 && !t.starts_with('{'))
            .map(str::to_string)
    });
    text.unwrap_or_else(|| "The request was malformed.".into())
}
