//! One error type for the HTTP layer, rendered as RFC 9457 problem+json.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every way a request can fail. 5xx details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The resource does not exist (or its module is disabled).
    #[error("not found")]
    NotFound,
    /// No route matches the path (or the route's module is disabled).
    #[error("no such route")]
    NoRoute,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// The request body or a parameter failed validation.
    #[error("invalid value at {field}: {message}")]
    Validation {
        /// Path of the offending field, e.g. `amount.currency`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The body is not JSON (or not UTF-8), or a query parameter is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A unique constraint was violated.
    #[error("conflict on {field}")]
    Conflict {
        /// The field whose value is already taken.
        field: String,
    },
    /// The If-Match header names a version that is no longer current.
    #[error("stale If-Match")]
    PreconditionFailed,
    /// A write that needs If-Match came without it.
    #[error("If-Match required")]
    PreconditionRequired,
    /// Missing or wrong API key.
    #[error("unauthorized")]
    Unauthorized,
    /// The body exceeds the configured limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The content type is not the one this endpoint accepts.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The database failed; the cause is logged only.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Anything else internal; the cause is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A validation error on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            NoRoute => (StatusCode::NOT_FOUND, "not-found", "No such route"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout", "Request timed out"),
            Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Validation failed",
            ),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Already exists"),
            PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "stale-version",
                "Resource was modified",
            ),
            PreconditionRequired => (
                StatusCode::PRECONDITION_REQUIRED,
                "if-match-required",
                "If-Match header required",
            ),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Database(_) | Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

/// Map a database error, turning constraint violations into client errors.
/// `unique_field` names the field a unique violation is reported against.
pub fn db_error(err: sqlx::Error, unique_field: &str) -> ApiError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return ApiError::Conflict {
                field: unique_field.to_string(),
            };
        }
        if db.is_foreign_key_violation() {
            return ApiError::invalid("", "a referenced resource does not exist");
        }
    }
    ApiError::Database(err)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let mut body = json!({
            "type": format!("urn:crm:problem:{kind}"),
            "title": title,
            "status": status.as_u16(),
        });
        match &self {
            ApiError::Validation { field, message } => {
                body["detail"] = json!(message);
                body["field"] = json!(field);
            }
            ApiError::BadRequest(detail) => body["detail"] = json!(detail),
            ApiError::Conflict { field } => {
                body["detail"] = json!(format!("{field} is already taken"));
                body["field"] = json!(field);
            }
            ApiError::Database(e) => tracing::error!(error = %e, "database error"),
            ApiError::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The problem+json body, for the OpenAPI document.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable problem type, e.g. `urn:crm:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Explanation.
    pub detail: Option<String>,
    /// Path of the offending field for validation and conflict problems.
    pub field: Option<String>,
}
