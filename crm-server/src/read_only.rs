//! Read-only mode: while a tenant's data is being moved or restored, writes
//! are refused with 503 and `Retry-After`, and reads keep working.
//!
//! The mode is a setting (`CRM_READ_ONLY`), not a switch at run time: the
//! operator sets it in the pod template, and a finished rollout then proves
//! that no replica can still write, which is what makes a copy taken
//! afterwards complete.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// Seconds a client is asked to wait before retrying a refused write.
pub const RETRY_AFTER_SECS: u64 = 30;

/// Whether a request only reads.
pub fn reads_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: in read-only mode, answers writes with 503.
pub async fn refuse_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.read_only && !reads_only(req.method()) {
        return refusal();
    }
    next.run(req).await
}

fn refusal() -> Response {
    let body = json!({
        "type": "urn:crm:problem:read-only",
        "title": "Service unavailable",
        "status": 503,
        "detail": "the CRM is read-only while its data is being moved or restored; retry later",
    });
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    res
}
