//! Service: support tickets and the customer's feedback on them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::{Acquire, AnyConnection};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::{Sql, now, rows};
use crate::domain::{Name, Priority, Rating, Text, TicketStatus};
use crate::error::{ApiError, ApiResult, db_error};
use crate::http::{
    Id, IdPath, JsonBody, Page, Q, if_match, like_pattern, require_if_match, with_etag,
};
use crate::pagination::Lister;
use crate::patch::{self, MergePatch};
use crate::store::{date_range, delete_row, fk_field, one, stale_or_missing, versioned};
use crate::webhooks::Event;
use crate::webhooks::outbox::record;

/// Routes of the service module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tickets, create_ticket))
        .routes(routes!(
            get_ticket,
            update_ticket,
            patch_ticket,
            delete_ticket
        ))
        .routes(routes!(put_feedback))
}

/// A ticket as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Ticket {
    /// Id.
    pub id: i64,
    /// Reporting contact.
    pub contact_id: Option<i64>,
    /// Subject.
    pub subject: String,
    /// Description.
    pub description: Option<String>,
    /// open, pending, resolved or closed.
    pub status: String,
    /// low, normal, high or urgent.
    pub priority: String,
    /// Customer rating 1..=5, once given.
    pub rating: Option<i64>,
    /// Customer comment, once given.
    pub feedback: Option<String>,
    /// When it was first resolved or closed.
    pub resolved_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last update time.
    pub updated_at: String,
    /// Row version, also the ETag.
    pub version: i64,
}

fn default_status() -> TicketStatus {
    TicketStatus::Open
}
fn default_priority() -> Priority {
    Priority::Normal
}

/// Body to create or replace a ticket.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketInput {
    /// Subject.
    pub subject: Name,
    /// Description.
    #[serde(default)]
    pub description: Option<Text>,
    /// Reporting contact.
    #[serde(default)]
    pub contact_id: Option<i64>,
    /// Status; `open` when omitted.
    #[serde(default = "default_status")]
    pub status: TicketStatus,
    /// Priority; `normal` when omitted.
    #[serde(default = "default_priority")]
    pub priority: Priority,
}

/// The customer's feedback.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    /// 1 to 5.
    pub rating: Rating,
    /// Free text.
    #[serde(default)]
    pub comment: Option<Text>,
}

/// Ticket list filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TicketParams {
    /// Text search on the subject.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub q: Option<String>,
    /// Only this status.
    #[param(value_type = Option<TicketStatus>)]
    pub status: Option<String>,
    /// Only this priority.
    #[param(value_type = Option<Priority>)]
    pub priority: Option<String>,
    /// Only this contact.
    pub contact_id: Option<i64>,
    /// Created on or after.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_from: Option<String>,
    /// Created on or before.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_to: Option<String>,
    /// Sort field.
    #[param(pattern = r"^-?(created_at|subject|status|id)$")]
    pub sort: Option<String>,
    /// Cursor.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/tickets", tag = "service", params(TicketParams), responses((status = 200, description = "Success", body = Page<Ticket>)))]
async fn list_tickets(
    State(st): State<AppState>,
    Q(p): Q<TicketParams>,
) -> ApiResult<axum::Json<Page<Ticket>>> {
    let page = list_ticket_rows(&mut *st.db.pool.acquire().await?, &p).await?;
    Ok(axum::Json(page))
}

fn is_done(s: TicketStatus) -> bool {
    matches!(s, TicketStatus::Resolved | TicketStatus::Closed)
}

#[utoipa::path(post, path = "/tickets", tag = "service", request_body = TicketInput, responses((status = 201, description = "Success", body = Ticket)))]
async fn create_ticket(
    State(st): State<AppState>,
    JsonBody(b): JsonBody<TicketInput>,
) -> ApiResult<Response> {
    let t = insert_ticket(&mut *st.db.pool.acquire().await?, b).await?;
    Ok(with_etag(StatusCode::CREATED, t.version, &t))
}

/// Insert a ticket.
pub async fn insert_ticket(conn: &mut AnyConnection, b: TicketInput) -> ApiResult<Ticket> {
    let ts = now();
    let mut sql = Sql::new(
        "INSERT INTO tickets (subject, description, contact_id, status, priority, resolved_at, \
         created_at, updated_at) VALUES (",
    );
    sql.bind(String::from(b.subject))
        .push(", ")
        .bind(b.description.map(String::from));
    sql.push(", ")
        .bind(b.contact_id)
        .push(", ")
        .bind(b.status.as_str());
    sql.push(", ").bind(b.priority.as_str()).push(", ");
    sql.bind(is_done(b.status).then(|| ts.clone()))
        .push(", ")
        .bind(ts.clone());
    sql.push(", ").bind(ts).push(") RETURNING *");
    let mut tx = conn.begin().await?;
    let row = sql
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| fk_field(db_error(e, "id"), "contact_id"))?;
    let t: Ticket = one(row)?;
    record(&mut tx, Event::TicketCreated, &t).await?;
    tx.commit().await?;
    Ok(t)
}

#[utoipa::path(get, path = "/tickets/{id}", tag = "service", params(IdPath), responses((status = 200, description = "Success", body = Ticket)))]
async fn get_ticket(State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let t = fetch_ticket(&st, id).await?;
    Ok(with_etag(StatusCode::OK, t.version, &t))
}

/// The ticket with this id, or 404.
pub async fn get_ticket_row(conn: &mut AnyConnection, id: i64) -> ApiResult<Ticket> {
    let mut sql = Sql::new("SELECT * FROM tickets WHERE id = ");
    sql.bind(id);
    one(sql.fetch_optional(conn).await?)
}

async fn fetch_ticket(st: &AppState, id: i64) -> ApiResult<Ticket> {
    st.db
        .read(async |conn| get_ticket_row(conn, id).await)
        .await
}

#[utoipa::path(put, path = "/tickets/{id}", tag = "service", params(IdPath), request_body = TicketInput, responses((status = 200, description = "Success", body = Ticket)))]
async fn update_ticket(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    JsonBody(b): JsonBody<TicketInput>,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    let t = update_ticket_row(&mut *st.db.pool.acquire().await?, id, expected, b).await?;
    Ok(with_etag(StatusCode::OK, t.version, &t))
}

/// Fields of a ticket a PUT sends.
const TICKET_FIELDS: &[&str] = &["subject", "description", "contact_id", "status", "priority"];

#[utoipa::path(patch, path = "/tickets/{id}", tag = "service", params(IdPath), request_body(content = TicketInput, content_type = "application/merge-patch+json", description = "A JSON merge patch (RFC 7396) of the fields of a PUT body; null removes an optional field"), responses((status = 200, description = "Success", body = Ticket)))]
async fn patch_ticket(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    MergePatch(p): MergePatch,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    let current = fetch_ticket(&st, id).await?;
    let b = patch::apply_versioned(&current, current.version, TICKET_FIELDS, p, expected)?;
    let mut conn = st.db.pool.acquire().await?;
    let t = update_ticket_row(&mut conn, id, Some(current.version), b).await?;
    Ok(with_etag(StatusCode::OK, t.version, &t))
}

/// Replace a ticket's fields if its version is `expected` (any when None):
/// 412 when it is not, 404 when there is no such ticket.
pub async fn update_ticket_row(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
    b: TicketInput,
) -> ApiResult<Ticket> {
    let ts = now();
    let mut sql = Sql::new("UPDATE tickets SET subject = ");
    sql.bind(String::from(b.subject));
    sql.push(", description = ")
        .bind(b.description.map(String::from));
    sql.push(", contact_id = ")
        .bind(b.contact_id)
        .push(", status = ")
        .bind(b.status.as_str());
    sql.push(", priority = ").bind(b.priority.as_str());
    if is_done(b.status) {
        sql.push(", resolved_at = COALESCE(resolved_at, ")
            .bind(ts.clone())
            .push(")");
    } else {
        sql.push(", resolved_at = NULL");
    }
    sql.push(", updated_at = ")
        .bind(ts)
        .push(", version = version + 1 WHERE id = ")
        .bind(id);
    versioned(&mut sql, expected);
    let mut tx = conn.begin().await?;
    let row = sql
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| fk_field(db_error(e, "id"), "contact_id"))?;
    let t: Ticket = stale_or_missing(&mut tx, "tickets", id, row).await?;
    record(&mut tx, Event::TicketUpdated, &t).await?;
    tx.commit().await?;
    Ok(t)
}

#[utoipa::path(put, path = "/tickets/{id}/feedback", tag = "service", params(IdPath), request_body = FeedbackInput, responses((status = 200, description = "Success", body = Ticket)))]
async fn put_feedback(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    JsonBody(b): JsonBody<FeedbackInput>,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let mut sql = Sql::new("UPDATE tickets SET rating = ");
    sql.bind(b.rating.get())
        .push(", feedback = ")
        .bind(b.comment.map(String::from));
    sql.push(", updated_at = ")
        .bind(now())
        .push(", version = version + 1 WHERE id = ")
        .bind(id);
    versioned(&mut sql, expected);
    let mut tx = st.db.pool.begin().await?;
    let row = sql.fetch_optional(&mut *tx).await?;
    let t: Ticket = stale_or_missing(&mut tx, "tickets", id, row).await?;
    record(&mut tx, Event::TicketUpdated, &t).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, t.version, &t))
}

#[utoipa::path(delete, path = "/tickets/{id}", tag = "service", params(IdPath), responses((status = 204, description = "Success")))]
async fn delete_ticket(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let expected = if_match(&headers)?;
    delete_ticket_row(&mut *st.db.pool.acquire().await?, id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a ticket.
pub async fn delete_ticket_row(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
) -> ApiResult<()> {
    let delete = "DELETE FROM tickets WHERE id = ";
    let mut tx = conn.begin().await?;
    delete_row(&mut tx, delete, "tickets", id, expected).await?;
    record(
        &mut tx,
        Event::TicketDeleted,
        &serde_json::json!({"id": id}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One page of tickets.
pub async fn list_ticket_rows(
    conn: &mut AnyConnection,
    p: &TicketParams,
) -> ApiResult<Page<Ticket>> {
    let mut sql = Sql::new("SELECT * FROM tickets WHERE 1=1");
    if let Some(q) = p.q.as_deref().filter(|q| !q.is_empty()) {
        sql.push(" AND LOWER(subject) LIKE ")
            .bind(like_pattern(q))
            .push(" ESCAPE '\\'");
    }
    if let Some(s) = p.status.as_deref() {
        let s = TicketStatus::parse(s).map_err(|m| ApiError::invalid("status", m))?;
        sql.push(" AND status = ").bind(s.as_str());
    }
    if let Some(s) = p.priority.as_deref() {
        let s = Priority::parse(s).map_err(|m| ApiError::invalid("priority", m))?;
        sql.push(" AND priority = ").bind(s.as_str());
    }
    if let Some(c) = p.contact_id {
        sql.push(" AND contact_id = ").bind(c);
    }
    date_range(&mut sql, p.created_from.as_deref(), p.created_to.as_deref())?;
    let allowed = [
        ("created_at", "created_at"),
        ("subject", "subject"),
        ("status", "status"),
    ];
    let lister = Lister::new(p.sort.as_deref(), p.cursor.as_deref(), p.limit, &allowed)?;
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(&mut *conn).await?)?;
    Ok(lister.page(items))
}
