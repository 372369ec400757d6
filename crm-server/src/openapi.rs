//! The OpenAPI 3 document, assembled from the handlers' annotations.

use std::sync::Arc;

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder, ServerBuilder};

/// The document before routes are added: info, server prefix, auth scheme.
pub fn base() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("crm-server")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "CRM REST API. Authenticate with `Authorization: Bearer <CRM_API_KEY>`. \
                     Errors are application/problem+json. Updates need `If-Match` with the \
                     ETag from the last read (412 when stale, 428 when missing). Lists take \
                     `cursor` (from `next_cursor`), `limit`, `sort` (`field` or `-field`).",
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url("/api/v1").build()]))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn serve(doc: Arc<OpenApi>) -> Json<OpenApi> {
    Json((*doc).clone())
}
