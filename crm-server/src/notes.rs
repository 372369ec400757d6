//! Notes and activities: a timeline on contacts and deals.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::{Sql, now, rows};
use crate::domain::{NoteKind, Text};
use crate::error::{ApiError, ApiResult};
use crate::http::{Id, IdPath, JsonBody, Page, Q};
use crate::pagination::Lister;
use crate::store::one;

/// Timeline routes on contacts (customers module).
pub fn contact_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_contact, add_contact))
}

/// Timeline routes on deals (sales module).
pub fn deal_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_deal, add_deal))
}

/// A timeline entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Note {
    /// Id.
    pub id: i64,
    /// Contact it is about.
    pub contact_id: Option<i64>,
    /// Deal it is about.
    pub deal_id: Option<i64>,
    /// note, call, email or meeting.
    pub kind: String,
    /// Text.
    pub body: String,
    /// When it happened.
    pub created_at: String,
}

fn default_kind() -> NoteKind {
    NoteKind::Note
}

/// Body of a new timeline entry.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// Kind; `note` when omitted.
    #[serde(default = "default_kind")]
    pub kind: NoteKind,
    /// Text.
    pub body: Text,
}

/// Timeline paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoteParams {
    /// Cursor.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// What a timeline belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Parent {
    /// A contact.
    Contact,
    /// A deal.
    Deal,
}

async fn add(st: &AppState, parent: Parent, id: i64, b: NoteInput) -> ApiResult<Response> {
    let n = insert(&mut *st.db.pool.acquire().await?, parent, id, b).await?;
    Ok((StatusCode::CREATED, axum::Json(n)).into_response())
}

/// Add a timeline entry; 404 when the parent does not exist.
pub async fn insert(
    conn: &mut AnyConnection,
    parent: Parent,
    id: i64,
    b: NoteInput,
) -> ApiResult<Note> {
    // One statement: the foreign key decides whether the parent exists, so
    // a delete racing the insert cannot turn into a server error.
    let (c, d) = match parent {
        Parent::Contact => (Some(id), None),
        Parent::Deal => (None, Some(id)),
    };
    let mut sql =
        Sql::new("INSERT INTO notes (contact_id, deal_id, kind, body, created_at) VALUES (");
    sql.bind(c)
        .push(", ")
        .bind(d)
        .push(", ")
        .bind(b.kind.as_str());
    sql.push(", ")
        .bind(String::from(b.body))
        .push(", ")
        .bind(now())
        .push(") RETURNING *");
    let row = sql.fetch_optional(conn).await.map_err(|e| {
        let missing_parent = matches!(&e, sqlx::Error::Database(d) if d.is_foreign_key_violation());
        if missing_parent {
            ApiError::NotFound
        } else {
            ApiError::Database(e)
        }
    })?;
    one(row)
}

async fn list(st: &AppState, parent: Parent, id: i64, p: NoteParams) -> ApiResult<Page<Note>> {
    list_for(&mut *st.db.pool.acquire().await?, parent, id, &p).await
}

/// One page of a timeline, newest first.
pub async fn list_for(
    conn: &mut AnyConnection,
    parent: Parent,
    id: i64,
    p: &NoteParams,
) -> ApiResult<Page<Note>> {
    // The timeline is newest first.
    let lister = Lister::new(
        Some("-created_at"),
        p.cursor.as_deref(),
        p.limit,
        &[("created_at", "created_at")],
    )?;
    let mut sql = Sql::new(match parent {
        Parent::Contact => "SELECT * FROM notes WHERE contact_id = ",
        Parent::Deal => "SELECT * FROM notes WHERE deal_id = ",
    });
    sql.bind(id);
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(conn).await?)?;
    Ok(lister.page(items))
}

#[utoipa::path(post, path = "/contacts/{id}/notes", tag = "customers", params(IdPath), request_body = NoteInput, responses((status = 201, description = "Success", body = Note)))]
async fn add_contact(
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(b): JsonBody<NoteInput>,
) -> ApiResult<Response> {
    add(&st, Parent::Contact, id, b).await
}

#[utoipa::path(post, path = "/deals/{id}/notes", tag = "sales", params(IdPath), request_body = NoteInput, responses((status = 201, description = "Success", body = Note)))]
async fn add_deal(
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(b): JsonBody<NoteInput>,
) -> ApiResult<Response> {
    add(&st, Parent::Deal, id, b).await
}

#[utoipa::path(get, path = "/contacts/{id}/notes", tag = "customers", params(IdPath, NoteParams), responses((status = 200, description = "Success", body = Page<Note>)))]
async fn list_contact(
    State(st): State<AppState>,
    Id(id): Id,
    Q(p): Q<NoteParams>,
) -> ApiResult<axum::Json<Page<Note>>> {
    list(&st, Parent::Contact, id, p).await.map(axum::Json)
}

#[utoipa::path(get, path = "/deals/{id}/notes", tag = "sales", params(IdPath, NoteParams), responses((status = 200, description = "Success", body = Page<Note>)))]
async fn list_deal(
    State(st): State<AppState>,
    Id(id): Id,
    Q(p): Q<NoteParams>,
) -> ApiResult<axum::Json<Page<Note>>> {
    list(&st, Parent::Deal, id, p).await.map(axum::Json)
}
