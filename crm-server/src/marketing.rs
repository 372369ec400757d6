//! Marketing: campaigns and the contacts they reach.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::{Sql, now, rows};
use crate::domain::{CampaignStatus, Channel, Currency, Date, MemberResponse, MinorUnits, Name};
use crate::error::{ApiError, ApiResult, db_error};
use crate::http::{
    Id, IdPath, Ids, JsonBody, Page, Q, if_match, like_pattern, require_if_match, with_etag,
};
use crate::pagination::Lister;
use crate::patch::{self, MergePatch};
use crate::store::{date_range, delete_row, fk_field, one, stale_or_missing, versioned};

/// Routes of the marketing module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(
            get_campaign,
            update_campaign,
            patch_campaign,
            delete_campaign
        ))
        .routes(routes!(list_members))
        .routes(routes!(put_member, delete_member))
}

/// A campaign as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Campaign {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// email, social, ads, event or other.
    pub channel: String,
    /// planned, active, completed or cancelled.
    pub status: String,
    /// Budget in minor units.
    pub budget_minor: i64,
    /// Currency of the budget.
    pub currency: String,
    /// First day.
    pub starts_on: Option<String>,
    /// Last day.
    pub ends_on: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last update time.
    pub updated_at: String,
    /// Row version, also the ETag.
    pub version: i64,
}

fn default_status() -> CampaignStatus {
    CampaignStatus::Planned
}

/// Body to create or replace a campaign.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// Name.
    pub name: Name,
    /// Channel.
    pub channel: Channel,
    /// Status; `planned` when omitted.
    #[serde(default = "default_status")]
    pub status: CampaignStatus,
    /// Budget in minor units.
    pub budget_minor: MinorUnits,
    /// Currency.
    pub currency: Currency,
    /// First day.
    #[serde(default)]
    pub starts_on: Option<Date>,
    /// Last day, not before `starts_on`.
    #[serde(default)]
    pub ends_on: Option<Date>,
}

impl CampaignInput {
    fn check(&self) -> ApiResult<()> {
        if let (Some(s), Some(e)) = (&self.starts_on, &self.ends_on) {
            // ISO dates order the same as text.
            if e.as_str() < s.as_str() {
                return Err(ApiError::invalid("ends_on", "must not be before starts_on"));
            }
        }
        Ok(())
    }
}

/// Campaign list filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CampaignParams {
    /// Text search on the name.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub q: Option<String>,
    /// Only this status.
    #[param(value_type = Option<CampaignStatus>)]
    pub status: Option<String>,
    /// Only this channel.
    #[param(value_type = Option<Channel>)]
    pub channel: Option<String>,
    /// Created on or after.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_from: Option<String>,
    /// Created on or before.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_to: Option<String>,
    /// Sort field.
    #[param(pattern = r"^-?(name|starts_on|created_at|id)$")]
    pub sort: Option<String>,
    /// Cursor.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/campaigns", tag = "marketing", params(CampaignParams), responses((status = 200, description = "Success", body = Page<Campaign>)))]
async fn list_campaigns(
    State(st): State<AppState>,
    Q(p): Q<CampaignParams>,
) -> ApiResult<axum::Json<Page<Campaign>>> {
    let page = list_campaign_rows(&mut *st.db.pool.acquire().await?, &p).await?;
    Ok(axum::Json(page))
}

#[utoipa::path(post, path = "/campaigns", tag = "marketing", request_body = CampaignInput, responses((status = 201, description = "Success", body = Campaign)))]
async fn create_campaign(
    State(st): State<AppState>,
    JsonBody(b): JsonBody<CampaignInput>,
) -> ApiResult<Response> {
    b.check()?;
    let ts = now();
    let mut sql = Sql::new(
        "INSERT INTO campaigns (name, channel, status, budget_minor, currency, starts_on, \
         ends_on, created_at, updated_at) VALUES (",
    );
    sql.bind(String::from(b.name))
        .push(", ")
        .bind(b.channel.as_str());
    sql.push(", ")
        .bind(b.status.as_str())
        .push(", ")
        .bind(b.budget_minor.get());
    sql.push(", ").bind(String::from(b.currency));
    sql.push(", ").bind(b.starts_on.map(String::from));
    sql.push(", ").bind(b.ends_on.map(String::from));
    sql.push(", ")
        .bind(ts.clone())
        .push(", ")
        .bind(ts)
        .push(") RETURNING *");
    let c: Campaign = one(sql.fetch_optional(&st.db.pool).await?)?;
    Ok(with_etag(StatusCode::CREATED, c.version, &c))
}

/// The campaign with this id, or 404.
pub async fn get_campaign_row(conn: &mut AnyConnection, id: i64) -> ApiResult<Campaign> {
    let mut sql = Sql::new("SELECT * FROM campaigns WHERE id = ");
    sql.bind(id);
    one(sql.fetch_optional(conn).await?)
}

async fn fetch_campaign(st: &AppState, id: i64) -> ApiResult<Campaign> {
    st.db
        .read(async |conn| get_campaign_row(conn, id).await)
        .await
}

#[utoipa::path(get, path = "/campaigns/{id}", tag = "marketing", params(IdPath), responses((status = 200, description = "Success", body = Campaign)))]
async fn get_campaign(State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let c = fetch_campaign(&st, id).await?;
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

#[utoipa::path(put, path = "/campaigns/{id}", tag = "marketing", params(IdPath), request_body = CampaignInput, responses((status = 200, description = "Success", body = Campaign)))]
async fn update_campaign(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    JsonBody(b): JsonBody<CampaignInput>,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    let mut conn = st.db.pool.acquire().await?;
    let c = update_campaign_row(&mut conn, id, expected, b).await?;
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

/// Fields of a campaign a PUT sends.
const CAMPAIGN_FIELDS: &[&str] = &[
    "name",
    "channel",
    "status",
    "budget_minor",
    "currency",
    "starts_on",
    "ends_on",
];

#[utoipa::path(patch, path = "/campaigns/{id}", tag = "marketing", params(IdPath), request_body(content = CampaignInput, content_type = "application/merge-patch+json", description = "A JSON merge patch (RFC 7396) of the fields of a PUT body; null removes an optional field"), responses((status = 200, description = "Success", body = Campaign)))]
async fn patch_campaign(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    MergePatch(p): MergePatch,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    let current = fetch_campaign(&st, id).await?;
    let b = patch::apply_versioned(&current, current.version, CAMPAIGN_FIELDS, p, expected)?;
    let mut conn = st.db.pool.acquire().await?;
    let c = update_campaign_row(&mut conn, id, Some(current.version), b).await?;
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

/// Replace a campaign's fields if its version is `expected` (any when
/// None): 412 when it is not, 404 when there is no such campaign.
pub async fn update_campaign_row(
    conn: &mut AnyConnection,
    id: i64,
    expected: Option<i64>,
    b: CampaignInput,
) -> ApiResult<Campaign> {
    b.check()?;
    let mut sql = Sql::new("UPDATE campaigns SET name = ");
    sql.bind(String::from(b.name))
        .push(", channel = ")
        .bind(b.channel.as_str());
    sql.push(", status = ").bind(b.status.as_str());
    sql.push(", budget_minor = ").bind(b.budget_minor.get());
    sql.push(", currency = ").bind(String::from(b.currency));
    sql.push(", starts_on = ")
        .bind(b.starts_on.map(String::from));
    sql.push(", ends_on = ").bind(b.ends_on.map(String::from));
    sql.push(", updated_at = ")
        .bind(now())
        .push(", version = version + 1 WHERE id = ")
        .bind(id);
    versioned(&mut sql, expected);
    let row = sql.fetch_optional(&mut *conn).await?;
    stale_or_missing(conn, "campaigns", id, row).await
}

#[utoipa::path(delete, path = "/campaigns/{id}", tag = "marketing", params(IdPath), responses((status = 204, description = "Success")))]
async fn delete_campaign(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let expected = if_match(&headers)?;
    let delete = "DELETE FROM campaigns WHERE id = ";
    let mut conn = st.db.pool.acquire().await?;
    delete_row(&mut conn, delete, "campaigns", id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A contact reached by a campaign.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Member {
    /// Campaign.
    pub campaign_id: i64,
    /// Contact.
    pub contact_id: i64,
    /// How they responded.
    pub response: String,
    /// Last change.
    pub updated_at: String,
}

fn default_response() -> MemberResponse {
    MemberResponse::Pending
}

/// Body to add a member or change their response.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    /// Response; `pending` when omitted.
    #[serde(default = "default_response")]
    pub response: MemberResponse,
}

/// Member list filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberParams {
    /// Only this response.
    #[param(value_type = Option<MemberResponse>)]
    pub response: Option<String>,
    /// Cursor.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(put, path = "/campaigns/{id}/members/{contact_id}", tag = "marketing", params(("id" = i64, Path, description = "Campaign id", minimum = 1), ("contact_id" = i64, Path, description = "Contact id", minimum = 1)), request_body = MemberInput, responses((status = 200, description = "Success", body = Member)))]
async fn put_member(
    State(st): State<AppState>,
    Ids(campaign, contact): Ids,
    JsonBody(b): JsonBody<MemberInput>,
) -> ApiResult<Response> {
    fetch_campaign(&st, campaign).await?;
    let mut sql = Sql::new(
        "INSERT INTO campaign_members (campaign_id, contact_id, response, updated_at) VALUES (",
    );
    sql.bind(campaign)
        .push(", ")
        .bind(contact)
        .push(", ")
        .bind(b.response.as_str());
    sql.push(", ").bind(now()).push(
        ") ON CONFLICT (campaign_id, contact_id) DO UPDATE SET response = excluded.response, \
         updated_at = excluded.updated_at RETURNING *",
    );
    let row = sql
        .fetch_optional(&st.db.pool)
        .await
        .map_err(|e| fk_field(db_error(e, "contact_id"), "contact_id"))?;
    let m: Member = one(row)?;
    Ok((StatusCode::OK, axum::Json(m)).into_response())
}

#[utoipa::path(delete, path = "/campaigns/{id}/members/{contact_id}", tag = "marketing", params(("id" = i64, Path, description = "Campaign id", minimum = 1), ("contact_id" = i64, Path, description = "Contact id", minimum = 1)), responses((status = 204, description = "Success")))]
async fn delete_member(
    State(st): State<AppState>,
    Ids(campaign, contact): Ids,
) -> ApiResult<StatusCode> {
    let mut sql = Sql::new("DELETE FROM campaign_members WHERE campaign_id = ");
    sql.bind(campaign).push(" AND contact_id = ").bind(contact);
    match sql.execute(&st.db.pool).await? {
        0 => Err(ApiError::NotFound),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

#[utoipa::path(get, path = "/campaigns/{id}/members", tag = "marketing", params(IdPath, MemberParams), responses((status = 200, description = "Success", body = Page<Member>)))]
async fn list_members(
    State(st): State<AppState>,
    Id(id): Id,
    Q(p): Q<MemberParams>,
) -> ApiResult<axum::Json<Page<Member>>> {
    fetch_campaign(&st, id).await?;
    let page = list_member_rows(&mut *st.db.pool.acquire().await?, id, &p).await?;
    Ok(axum::Json(page))
}

/// One page of campaigns.
pub async fn list_campaign_rows(
    conn: &mut AnyConnection,
    p: &CampaignParams,
) -> ApiResult<Page<Campaign>> {
    let mut sql = Sql::new("SELECT * FROM campaigns WHERE 1=1");
    if let Some(q) = p.q.as_deref().filter(|q| !q.is_empty()) {
        sql.push(" AND LOWER(name) LIKE ")
            .bind(like_pattern(q))
            .push(" ESCAPE '\\'");
    }
    if let Some(s) = p.status.as_deref() {
        let s = CampaignStatus::parse(s).map_err(|m| ApiError::invalid("status", m))?;
        sql.push(" AND status = ").bind(s.as_str());
    }
    if let Some(c) = p.channel.as_deref() {
        let c = Channel::parse(c).map_err(|m| ApiError::invalid("channel", m))?;
        sql.push(" AND channel = ").bind(c.as_str());
    }
    date_range(&mut sql, p.created_from.as_deref(), p.created_to.as_deref())?;
    let allowed = [
        ("name", "name"),
        ("starts_on", "COALESCE(starts_on, '')"),
        ("created_at", "created_at"),
    ];
    let lister = Lister::new(p.sort.as_deref(), p.cursor.as_deref(), p.limit, &allowed)?;
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(&mut *conn).await?)?;
    Ok(lister.page(items))
}

/// One page of a campaign's members (the campaign is not checked).
pub async fn list_member_rows(
    conn: &mut AnyConnection,
    id: i64,
    p: &MemberParams,
) -> ApiResult<Page<Member>> {
    let sql = Sql::new("SELECT * FROM campaign_members WHERE campaign_id = ");
    member_page(conn, sql, id, p).await
}

/// A member with the contact's name and email, as the web UI shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MemberContact {
    /// Contact.
    pub contact_id: i64,
    /// The contact's first name.
    pub first_name: String,
    /// The contact's last name.
    pub last_name: String,
    /// The contact's email.
    pub email: String,
    /// How they responded.
    pub response: String,
    /// Last change.
    pub updated_at: String,
}

/// One page of a campaign's members with their contacts' names and emails,
/// in one query (the campaign is not checked).
pub async fn list_member_contacts(
    conn: &mut AnyConnection,
    id: i64,
    p: &MemberParams,
) -> ApiResult<Page<MemberContact>> {
    // `contact_id` is a column of campaign_members only: the filters and
    // the order of the lister need no table prefix.
    let sql = Sql::new(
        "SELECT m.contact_id, c.first_name, c.last_name, c.email, m.response, m.updated_at \
         FROM campaign_members m JOIN contacts c ON c.id = m.contact_id WHERE m.campaign_id = ",
    );
    member_page(conn, sql, id, p).await
}

async fn member_page<T>(
    conn: &mut AnyConnection,
    mut sql: Sql,
    id: i64,
    p: &MemberParams,
) -> ApiResult<Page<T>>
where
    T: Serialize + for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    let lister = Lister::new(
        Some("contact_id"),
        p.cursor.as_deref(),
        p.limit,
        &[("contact_id", "contact_id")],
    )?
    .with_tie("contact_id");
    sql.bind(id);
    if let Some(r) = p.response.as_deref() {
        let r = MemberResponse::parse(r).map_err(|m| ApiError::invalid("response", m))?;
        sql.push(" AND response = ").bind(r.as_str());
    }
    lister.apply(&mut sql);
    let items = rows(sql.fetch_all(&mut *conn).await?)?;
    Ok(lister.page(items))
}
