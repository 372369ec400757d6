//! CSV import and export of contacts and companies.

use axum::Router;

use crate::AppState;

/// CSV routes.
pub fn router() -> Router<AppState> {
    Router::new()
}
