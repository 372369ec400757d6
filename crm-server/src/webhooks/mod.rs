//! Webhooks: subscriptions, an outbox written with each change, and a
//! delivery worker that POSTs signed events with retries.
//!
//! ```text
//! write ─► storage fn ─► same transaction: row + outbox rows (one per subscription)
//!                                   │
//! deliver::run (own task) ◄─────────┘  claim due rows ─► POST ─► attempt row
//!                                       └─ retry with backoff and jitter
//! ```
//!
//! A subscription's secret is stored to sign deliveries and never answered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::{Sql, now, rows};
use crate::error::{ApiError, ApiResult};
use crate::http::{Id, IdPath, JsonBody, Page, Q};
use crate::pagination::Lister;

pub mod deliver;
pub mod outbox;
pub mod target;

/// Every event a subscription may ask for.
pub const EVENTS: &[&str] = &[
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "company.created",
    "company.updated",
    "company.deleted",
    "deal.created",
    "deal.updated",
    "deal.deleted",
    "deal.stage_changed",
    "ticket.created",
    "ticket.updated",
    "ticket.deleted",
];

/// Routes of webhooks.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
}

/// An event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Event {
    /// `contact.created`.
    #[serde(rename = "contact.created")]
    ContactCreated,
    /// `contact.updated`.
    #[serde(rename = "contact.updated")]
    ContactUpdated,
    /// `contact.deleted`.
    #[serde(rename = "contact.deleted")]
    ContactDeleted,
    /// `company.created`.
    #[serde(rename = "company.created")]
    CompanyCreated,
    /// `company.updated`.
    #[serde(rename = "company.updated")]
    CompanyUpdated,
    /// `company.deleted`.
    #[serde(rename = "company.deleted")]
    CompanyDeleted,
    /// `deal.created`.
    #[serde(rename = "deal.created")]
    DealCreated,
    /// `deal.updated`.
    #[serde(rename = "deal.updated")]
    DealUpdated,
    /// `deal.deleted`.
    #[serde(rename = "deal.deleted")]
    DealDeleted,
    /// `deal.stage_changed`.
    #[serde(rename = "deal.stage_changed")]
    DealStageChanged,
    /// `ticket.created`.
    #[serde(rename = "ticket.created")]
    TicketCreated,
    /// `ticket.updated`.
    #[serde(rename = "ticket.updated")]
    TicketUpdated,
    /// `ticket.deleted`.
    #[serde(rename = "ticket.deleted")]
    TicketDeleted,
}

impl Event {
    /// The wire name, e.g. `contact.created`.
    pub fn as_str(self) -> &'static str {
        EVENTS[self as usize]
    }
}

/// Body to subscribe.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where events are POSTed: an `http` or `https` URL without user
    /// information. Loopback, private and link-local addresses are refused
    /// unless the server runs with `CRM_WEBHOOK_ALLOW_LOOPBACK=true`.
    #[schema(
        max_length = 2000,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^@/?#\\s]+([/?#]\\S*)?$"
    )]
    pub url: String,
    /// The events to receive (at least one; repeats count once).
    #[schema(min_items = 1)]
    pub events: Vec<Event>,
    /// Key of the HMAC-SHA256 signature each delivery carries; 16 to 256
    /// characters. Never answered back.
    #[schema(min_length = 16, max_length = 256, pattern = "^[!-~]+$")]
    pub secret: String,
}

// The secret must never reach a log through `{:?}`.
impl std::fmt::Debug for WebhookInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookInput")
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// A subscription as answered (without its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    /// Id.
    pub id: i64,
    /// Target URL.
    pub url: String,
    /// Events delivered.
    pub events: Vec<String>,
    /// Creation time.
    pub created_at: String,
}

fn webhook(row: &sqlx::any::AnyRow) -> ApiResult<Webhook> {
    let events: String = row.try_get("events")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect(),
        created_at: row.try_get("created_at")?,
    })
}

/// Paging of subscriptions and deliveries.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebhookParams {
    /// Cursor.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, description = "Subscribed", body = Webhook)))]
async fn create_webhook(
    State(st): State<AppState>,
    JsonBody(b): JsonBody<WebhookInput>,
) -> ApiResult<Response> {
    target::check_url(&b.url, st.webhooks.allow_private).await?;
    if !(16..=256).contains(&b.secret.chars().count())
        || !b.secret.bytes().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::invalid(
            "secret",
            "must be 16 to 256 visible ASCII characters",
        ));
    }
    if b.events.is_empty() {
        return Err(ApiError::invalid("events", "name at least one event"));
    }
    for (i, e) in b.events.iter().enumerate() {
        if b.events[..i].contains(e) {
            return Err(ApiError::invalid(format!("events[{i}]"), "appears twice"));
        }
    }
    let events: String = b
        .events
        .iter()
        .map(|e| format!(",{}", e.as_str()))
        .collect();
    let mut sql = Sql::new("INSERT INTO webhooks (url, events, secret, created_at) VALUES (");
    sql.bind(b.url)
        .push(", ")
        .bind(format!("{events},"))
        .push(", ")
        .bind(b.secret);
    sql.push(", ")
        .bind(now())
        .push(") RETURNING id, url, events, created_at");
    let row = sql
        .fetch_optional(&st.db.pool)
        .await?
        .ok_or(ApiError::Internal("insert returned no row".into()))?;
    Ok((StatusCode::CREATED, axum::Json(webhook(&row)?)).into_response())
}

#[utoipa::path(get, path = "/webhooks", tag = "webhooks", params(WebhookParams),
    responses((status = 200, description = "Success", body = Page<Webhook>)))]
async fn list_webhooks(
    State(st): State<AppState>,
    Q(p): Q<WebhookParams>,
) -> ApiResult<axum::Json<Page<Webhook>>> {
    let lister = Lister::new(None, p.cursor.as_deref(), p.limit, &[])?;
    let mut sql = Sql::new("SELECT id, url, events, created_at FROM webhooks WHERE 1=1");
    lister.apply(&mut sql);
    let items = sql
        .fetch_all(&st.db.pool)
        .await?
        .iter()
        .map(webhook)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(axum::Json(lister.page(items)))
}

async fn fetch(st: &AppState, id: i64) -> ApiResult<Webhook> {
    let mut sql = Sql::new("SELECT id, url, events, created_at FROM webhooks WHERE id = ");
    sql.bind(id);
    match sql.fetch_optional(&st.db.pool).await? {
        Some(row) => webhook(&row),
        None => Err(ApiError::NotFound),
    }
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(IdPath),
    responses((status = 200, description = "Success", body = Webhook)))]
async fn get_webhook(State(st): State<AppState>, Id(id): Id) -> ApiResult<axum::Json<Webhook>> {
    fetch(&st, id).await.map(axum::Json)
}

#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(IdPath),
    responses((status = 204, description = "Unsubscribed; pending deliveries are dropped")))]
async fn delete_webhook(State(st): State<AppState>, Id(id): Id) -> ApiResult<StatusCode> {
    let mut sql = Sql::new("DELETE FROM webhooks WHERE id = ");
    sql.bind(id);
    match sql.execute(&st.db.pool).await? {
        0 => Err(ApiError::NotFound),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// One delivery attempt.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Attempt {
    /// Id.
    pub id: i64,
    /// The delivery (`X-CRM-Delivery`); its attempts share it.
    pub delivery_id: String,
    /// The event (`X-CRM-Event`).
    pub event: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// The receiver's status, when it answered.
    pub status_code: Option<i64>,
    /// Why the attempt failed, when it did not get an answer.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// When it was made.
    pub attempted_at: String,
}

#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", params(IdPath, WebhookParams),
    responses((status = 200, description = "Every attempt, newest first", body = Page<Attempt>)))]
async fn list_deliveries(
    State(st): State<AppState>,
    Id(id): Id,
    Q(p): Q<WebhookParams>,
) -> ApiResult<axum::Json<Page<Attempt>>> {
    fetch(&st, id).await?;
    let lister = Lister::new(Some("-id"), p.cursor.as_deref(), p.limit, &[])?;
    let mut sql = Sql::new(
        "SELECT id, delivery_id, event, attempt, status_code, error, duration_ms, attempted_at \
         FROM webhook_attempts WHERE webhook_id = ",
    );
    sql.bind(id);
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(&st.db.pool).await?)?;
    Ok(axum::Json(lister.page(items)))
}
