//! Sales: deals moving through pipeline stages, and orders from won deals.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::{Acquire, AnyConnection, Row};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::{Sql, now, rows};
use crate::domain::{Currency, Date, DealStage, MinorUnits, Name};
use crate::error::{ApiError, ApiResult, db_error};
use crate::http::{
    Id, IdPath, JsonBody, Page, Q, if_match, like_pattern, require_if_match, with_etag,
};
use crate::pagination::Lister;
use crate::patch::{self, MergePatch};
use crate::store::{date_range, delete_row, fk_field, one, stale_or_missing, versioned};
use crate::webhooks::Event;
use crate::webhooks::outbox::record;

/// Routes of the sales module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deals, create_deal))
        .routes(routes!(get_deal, update_deal, patch_deal, delete_deal))
        .routes(routes!(create_order))
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
}

/// A deal as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Deal {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Customer company.
    pub company_id: Option<i64>,
    /// Main contact.
    pub contact_id: Option<i64>,
    /// Pipeline stage.
    pub stage: String,
    /// Amount in minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Expected close date.
    pub expected_close: Option<String>,
    /// Who owns the deal.
    pub owner: String,
    /// When the deal was won or lost.
    pub closed_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last update time.
    pub updated_at: String,
    /// Row version, also the ETag.
    pub version: i64,
}

fn default_stage() -> DealStage {
    DealStage::Lead
}

/// Body to create or replace a deal.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    /// Title.
    pub title: Name,
    /// Customer company.
    #[serde(default)]
    pub company_id: Option<i64>,
    /// Main contact.
    #[serde(default)]
    pub contact_id: Option<i64>,
    /// Stage; `lead` when omitted.
    #[serde(default = "default_stage")]
    pub stage: DealStage,
    /// Amount in minor units.
    pub amount_minor: MinorUnits,
    /// ISO 4217 currency.
    pub currency: Currency,
    /// Expected close date.
    #[serde(default)]
    pub expected_close: Option<Date>,
    /// Owner.
    pub owner: Name,
}

/// Deal list filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DealParams {
    /// Text search on the title.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub q: Option<String>,
    /// Only this stage.
    #[param(value_type = Option<DealStage>)]
    pub stage: Option<String>,
    /// Only this company.
    pub company_id: Option<i64>,
    /// Only this owner.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub owner: Option<String>,
    /// Created on or after.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_from: Option<String>,
    /// Created on or before.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_to: Option<String>,
    /// Sort field.
    #[param(pattern = r"^-?(title|amount_minor|expected_close|created_at|stage|id)$")]
    pub sort: Option<String>,
    /// Cursor.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/deals", tag = "sales", params(DealParams), responses((status = 200, description = "Success", body = Page<Deal>)))]
async fn list_deals(
    State(st): State<AppState>,
    Q(p): Q<DealParams>,
) -> ApiResult<axum::Json<Page<Deal>>> {
    let page = list_deal_rows(&mut *st.db.pool.acquire().await?, &p).await?;
    Ok(axum::Json(page))
}

fn closes(stage: DealStage) -> bool {
    matches!(stage, DealStage::Won | DealStage::Lost)
}

fn ref_error(e: sqlx::Error) -> ApiError {
    fk_field(db_error(e, "id"), "company_id or contact_id")
}

#[utoipa::path(post, path = "/deals", tag = "sales", request_body = DealInput, responses((status = 201, description = "Success", body = Deal)))]
async fn create_deal(
    State(st): State<AppState>,
    JsonBody(b): JsonBody<DealInput>,
) -> ApiResult<Response> {
    let d = insert_deal(&mut *st.db.pool.acquire().await?, b).await?;
    Ok(with_etag(StatusCode::CREATED, d.version, &d))
}

/// Insert a deal.
pub async fn insert_deal(conn: &mut AnyConnection, b: DealInput) -> ApiResult<Deal> {
    let ts = now();
    let mut sql = Sql::new(
        "INSERT INTO deals (title, company_id, contact_id, stage, amount_minor, currency, \
         expected_close, owner, closed_at, created_at, updated_at) VALUES (",
    );
    let closed = closes(b.stage).then(|| ts.clone());
    sql.bind(String::from(b.title))
        .push(", ")
        .bind(b.company_id)
        .push(", ")
        .bind(b.contact_id);
    sql.push(", ")
        .bind(b.stage.as_str())
        .push(", ")
        .bind(b.amount_minor.get());
    sql.push(", ").bind(String::from(b.currency)).push(", ");
    sql.bind(b.expected_close.map(String::from))
        .push(", ")
        .bind(String::from(b.owner));
    sql.push(", ")
        .bind(closed)
        .push(", ")
        .bind(ts.clone())
        .push(", ")
        .bind(ts);
    sql.push(") RETURNING *");
    let mut tx = conn.begin().await?;
    let d: Deal = one(sql.fetch_optional(&mut *tx).await.map_err(ref_error)?)?;
    record(&mut tx, Event::DealCreated, &d).await?;
    tx.commit().await?;
    Ok(d)
}

/// The deal with this id, or 404.
pub async fn get_deal_row(conn: &mut AnyConnection, id: i64) -> ApiResult<Deal> {
    let mut sql = Sql::new("SELECT * FROM deals WHERE id = ");
    sql.bind(id);
    one(sql.fetch_optional(conn).await?)
}

async fn fetch_deal(st: &AppState, id: i64) -> ApiResult<Deal> {
    st.db.read(async |conn| get_deal_row(conn, id).await).await
}

#[utoipa::path(get, path = "/deals/{id}", tag = "sales", params(IdPath), responses((status = 200, description = "Success", body = Deal)))]
async fn get_deal(State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let d = fetch_deal(&st, id).await?;
    Ok(with_etag(StatusCode::OK, d.version, &d))
}

#[utoipa::path(put, path = "/deals/{id}", tag = "sales", params(IdPath), request_body = DealInput, responses((status = 200, description = "Success", body = Deal)))]
async fn update_deal(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    JsonBody(b): JsonBody<DealInput>,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    let d = update_deal_row(&mut *st.db.pool.acquire().await?, id, expected, b).await?;
    Ok(with_etag(StatusCode::OK, d.version, &d))
}

/// Fields of a deal a PUT sends.
const DEAL_FIELDS: &[&str] = &[
    "title",
    "company_id",
    "contact_id",
    "stage",
    "amount_minor",
    "currency",
    "expected_close",
    "owner",
];

#[utoipa::path(patch, path = "/deals/{id}", tag = "sales", params(IdPath), request_body(content = DealInput, content_type = "application/merge-patch+json", description = "A JSON merge patch (RFC 7396) of the fields of a PUT body; null removes an optional field"), responses((status = 200, description = "Success", body = Deal)))]
async fn patch_deal(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    MergePatch(p): MergePatch,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    let current = fetch_deal(&st, id).await?;
    let b = patch::apply_versioned(&current, current.version, DEAL_FIELDS, p, expected)?;
    let mut conn = st.db.pool.acquire().await?;
    let d = update_deal_row(&mut conn, id, Some(current.version), b).await?;
    Ok(with_etag(StatusCode::OK, d.version, &d))
}

/// Replace a deal's fields if its version is `expected` (any when None):
/// 412 when it is not, 404 when there is no such deal.
pub async fn update_deal_row(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
    b: DealInput,
) -> ApiResult<Deal> {
    let ts = now();
    let mut sql = Sql::new("UPDATE deals SET title = ");
    sql.bind(String::from(b.title))
        .push(", company_id = ")
        .bind(b.company_id);
    sql.push(", contact_id = ")
        .bind(b.contact_id)
        .push(", stage = ")
        .bind(b.stage.as_str());
    sql.push(", amount_minor = ").bind(b.amount_minor.get());
    sql.push(", currency = ").bind(String::from(b.currency));
    sql.push(", expected_close = ")
        .bind(b.expected_close.map(String::from));
    sql.push(", owner = ").bind(String::from(b.owner));
    if closes(b.stage) {
        // Keep the first closing time when moving between won and lost.
        sql.push(", closed_at = COALESCE(closed_at, ")
            .bind(ts.clone())
            .push(")");
    } else {
        sql.push(", closed_at = NULL");
    }
    sql.push(", updated_at = ")
        .bind(ts)
        .push(", version = version + 1 WHERE id = ")
        .bind(id);
    versioned(&mut sql, expected);
    let mut tx = conn.begin().await?;
    // Write first, so the row is locked (PostgreSQL) and the write lock
    // held (SQLite) before the old stage is read.
    let mut lock = Sql::new("UPDATE deals SET stage = stage WHERE id = ");
    lock.bind(id);
    lock.execute(&mut *tx).await?;
    let mut before = Sql::new("SELECT stage FROM deals WHERE id = ");
    before.bind(id);
    let was: Option<String> = match before.fetch_optional(&mut *tx).await? {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    };
    let row = sql.fetch_optional(&mut *tx).await.map_err(ref_error)?;
    let d: Deal = stale_or_missing(&mut tx, "deals", id, row).await?;
    record(&mut tx, Event::DealUpdated, &d).await?;
    if was.is_some_and(|w| w != d.stage) {
        record(&mut tx, Event::DealStageChanged, &d).await?;
    }
    tx.commit().await?;
    Ok(d)
}

#[utoipa::path(delete, path = "/deals/{id}", tag = "sales", params(IdPath), responses((status = 204, description = "Success")))]
async fn delete_deal(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let expected = if_match(&headers)?;
    delete_deal_row(&mut *st.db.pool.acquire().await?, id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a deal that has no order (409 when it has one).
pub async fn delete_deal_row(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
) -> ApiResult<()> {
    let mut sql = Sql::new("SELECT id FROM orders WHERE deal_id = ");
    sql.bind(id);
    if sql.fetch_optional(&mut *conn).await?.is_some() {
        return Err(ApiError::Conflict {
            field: "order".into(),
        });
    }
    let delete = "DELETE FROM deals WHERE id = ";
    let mut tx = conn.begin().await?;
    delete_row(&mut tx, delete, "deals", id, expected).await?;
    record(&mut tx, Event::DealDeleted, &serde_json::json!({"id": id})).await?;
    tx.commit().await?;
    Ok(())
}

/// An order created from a won deal.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Order {
    /// Id.
    pub id: i64,
    /// The won deal.
    pub deal_id: i64,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Creation time.
    pub created_at: String,
}

#[utoipa::path(post, path = "/deals/{id}/order", tag = "sales", params(IdPath), responses((status = 201, description = "Success", body = Order)))]
async fn create_order(State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let deal = fetch_deal(&st, id).await?;
    if deal.stage != DealStage::Won.as_str() {
        return Err(ApiError::invalid(
            "stage",
            "only won deals can become orders",
        ));
    }
    let mut sql =
        Sql::new("INSERT INTO orders (deal_id, amount_minor, currency, created_at) VALUES (");
    sql.bind(id)
        .push(", ")
        .bind(deal.amount_minor)
        .push(", ")
        .bind(deal.currency);
    sql.push(", ").bind(now()).push(") RETURNING *");
    let row = sql
        .fetch_optional(&st.db.pool)
        .await
        .map_err(|e| db_error(e, "deal_id"))?;
    let o: Order = one(row)?;
    Ok((StatusCode::CREATED, axum::Json(o)).into_response())
}

/// Order list parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderParams {
    /// Created on or after.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_from: Option<String>,
    /// Created on or before.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_to: Option<String>,
    /// Sort field.
    #[param(pattern = r"^-?(amount_minor|created_at|id)$")]
    pub sort: Option<String>,
    /// Cursor.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/orders", tag = "sales", params(OrderParams), responses((status = 200, description = "Success", body = Page<Order>)))]
async fn list_orders(
    State(st): State<AppState>,
    Q(p): Q<OrderParams>,
) -> ApiResult<axum::Json<Page<Order>>> {
    let mut sql = Sql::new("SELECT * FROM orders WHERE 1=1");
    date_range(&mut sql, p.created_from.as_deref(), p.created_to.as_deref())?;
    let allowed = [
        ("amount_minor", "amount_minor"),
        ("created_at", "created_at"),
    ];
    let lister = Lister::new(p.sort.as_deref(), p.cursor.as_deref(), p.limit, &allowed)?;
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(&st.db.pool).await?)?;
    Ok(axum::Json(lister.page(items)))
}

#[utoipa::path(get, path = "/orders/{id}", tag = "sales", params(IdPath), responses((status = 200, description = "Success", body = Order)))]
async fn get_order(State(st): State<AppState>, Id(id): Id) -> ApiResult<axum::Json<Order>> {
    let mut sql = Sql::new("SELECT * FROM orders WHERE id = ");
    sql.bind(id);
    Ok(axum::Json(one(sql.fetch_optional(&st.db.pool).await?)?))
}

/// One page of deals.
pub async fn list_deal_rows(conn: &mut AnyConnection, p: &DealParams) -> ApiResult<Page<Deal>> {
    let mut sql = Sql::new("SELECT * FROM deals WHERE 1=1");
    if let Some(q) = p.q.as_deref().filter(|q| !q.is_empty()) {
        sql.push(" AND LOWER(title) LIKE ")
            .bind(like_pattern(q))
            .push(" ESCAPE '\\'");
    }
    if let Some(s) = p.stage.as_deref() {
        let s = DealStage::parse(s).map_err(|m| ApiError::invalid("stage", m))?;
        sql.push(" AND stage = ").bind(s.as_str());
    }
    if let Some(c) = p.company_id {
        sql.push(" AND company_id = ").bind(c);
    }
    if let Some(o) = &p.owner {
        sql.push(" AND owner = ").bind(o.clone());
    }
    date_range(&mut sql, p.created_from.as_deref(), p.created_to.as_deref())?;
    let allowed = [
        ("title", "title"),
        ("amount_minor", "amount_minor"),
        ("expected_close", "COALESCE(expected_close, '')"),
        ("created_at", "created_at"),
        ("stage", "stage"),
    ];
    let lister = Lister::new(p.sort.as_deref(), p.cursor.as_deref(), p.limit, &allowed)?;
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(&mut *conn).await?)?;
    Ok(lister.page(items))
}

/// The newest `per_stage` deals of every stage, stages in pipeline order,
/// in one statement: one range of the `(stage, id)` index per stage.
pub async fn board_rows(conn: &mut AnyConnection, per_stage: i64) -> ApiResult<Vec<Deal>> {
    let mut sql = Sql::new("");
    for (i, stage) in DealStage::ALL.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push("SELECT * FROM (SELECT * FROM deals WHERE stage = ")
            .bind(stage.as_str());
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(per_stage)
            .push(") AS s");
    }
    rows(sql.fetch_all(conn).await?)
}
