//! Reports: read-only aggregates over the other modules.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::{DbKind, Sql, rows};
use crate::domain::Date;
use crate::error::{ApiError, ApiResult};
use crate::http::Q;

/// Routes of the reports module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pipeline))
        .routes(routes!(revenue))
        .routes(routes!(tickets))
        .routes(routes!(campaigns))
}

/// Deals per stage and currency.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StageTotal {
    /// Stage.
    pub stage: String,
    /// Currency of `total_minor`.
    pub currency: String,
    /// Number of deals.
    pub count: i64,
    /// Sum of amounts in minor units.
    pub total_minor: i64,
}

#[utoipa::path(get, path = "/reports/pipeline", tag = "reports", responses((status = 200, description = "Success", body = Vec<StageTotal>)))]
async fn pipeline(State(st): State<AppState>) -> ApiResult<axum::Json<Vec<StageTotal>>> {
    let totals = pipeline_rows(&mut *st.db.pool.acquire().await?).await?;
    Ok(axum::Json(totals))
}

/// Deals per stage and currency, ordered by stage and currency.
pub async fn pipeline_rows(conn: &mut AnyConnection) -> ApiResult<Vec<StageTotal>> {
    // Casts keep the aggregate types integral on PostgreSQL (SUM is NUMERIC).
    let sql = Sql::new(
        "SELECT stage, currency, CAST(COUNT(*) AS BIGINT) AS count, \
         CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS total_minor \
         FROM deals GROUP BY stage, currency ORDER BY stage, currency",
    );
    rows(sql.fetch_all(conn).await?)
}

/// Won revenue in one month and currency.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MonthRevenue {
    /// `YYYY-MM`.
    pub month: String,
    /// Currency.
    pub currency: String,
    /// Number of deals won.
    pub deals: i64,
    /// Revenue in minor units.
    pub total_minor: i64,
}

/// Date range of a report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First day included.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last day included.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub to: Option<String>,
}

#[utoipa::path(get, path = "/reports/revenue", tag = "reports", params(RangeParams), responses((status = 200, description = "Success", body = Vec<MonthRevenue>)))]
async fn revenue(
    State(st): State<AppState>,
    Q(p): Q<RangeParams>,
) -> ApiResult<axum::Json<Vec<MonthRevenue>>> {
    let (from, to) = (p.from.as_deref(), p.to.as_deref());
    let months = revenue_rows(&mut *st.db.pool.acquire().await?, from, to).await?;
    Ok(axum::Json(months))
}

/// Won revenue per month and currency, closed between `from` and `to`
/// (dates, both included, either open).
pub async fn revenue_rows(
    conn: &mut AnyConnection,
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<Vec<MonthRevenue>> {
    let mut sql = Sql::new(
        "SELECT SUBSTR(closed_at, 1, 7) AS month, currency, CAST(COUNT(*) AS BIGINT) AS deals, \
         CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS total_minor \
         FROM deals WHERE stage = 'won' AND closed_at IS NOT NULL",
    );
    if let Some(f) = from {
        let d = Date::parse(f).map_err(|m| ApiError::invalid("from", m))?;
        sql.push(" AND closed_at >= ").bind(d.as_str());
    }
    if let Some(t) = to {
        let d = Date::parse(t).map_err(|m| ApiError::invalid("to", m))?;
        sql.push(" AND closed_at < ")
            .bind(format!("{}T99", d.as_str()));
    }
    sql.push(" GROUP BY SUBSTR(closed_at, 1, 7), currency ORDER BY month, currency");
    rows(sql.fetch_all(conn).await?)
}

/// Service statistics.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketStats {
    /// Tickets open or pending.
    pub open: i64,
    /// Tickets resolved or closed.
    pub resolved: i64,
    /// Mean seconds from creation to resolution, over resolved tickets.
    pub mean_seconds_to_resolve: Option<f64>,
    /// Mean rating over rated tickets.
    pub average_rating: Option<f64>,
    /// Number of rated tickets.
    pub ratings: i64,
}

#[derive(sqlx::FromRow)]
struct TicketAggregate {
    total: i64,
    open: i64,
    ratings: i64,
    average_rating: Option<f64>,
    mean_seconds_to_resolve: Option<f64>,
}

#[utoipa::path(get, path = "/reports/tickets", tag = "reports", responses((status = 200, description = "Success", body = TicketStats)))]
async fn tickets(State(st): State<AppState>) -> ApiResult<axum::Json<TicketStats>> {
    let kind = st.db.kind;
    let stats = ticket_stats(&mut *st.db.pool.acquire().await?, kind).await?;
    Ok(axum::Json(stats))
}

/// Open and resolved tickets, resolution time and ratings.
pub async fn ticket_stats(conn: &mut AnyConnection, kind: DbKind) -> ApiResult<TicketStats> {
    // One pass in the database; only the date arithmetic differs per dialect
    // (timestamps are RFC 3339 text in both).
    let (seconds, float) = match kind {
        DbKind::Sqlite => (
            "(julianday(resolved_at) - julianday(created_at)) * 86400.0",
            "REAL",
        ),
        DbKind::Postgres => (
            "EXTRACT(EPOCH FROM (CAST(resolved_at AS TIMESTAMPTZ) - CAST(created_at AS TIMESTAMPTZ)))",
            "DOUBLE PRECISION",
        ),
    };
    let mut sql = Sql::new(
        "SELECT CAST(COUNT(*) AS BIGINT) AS total, \
         CAST(COALESCE(SUM(CASE WHEN status IN ('open', 'pending') THEN 1 ELSE 0 END), 0) AS BIGINT) AS open, \
         CAST(COUNT(rating) AS BIGINT) AS ratings, CAST(AVG(rating) AS ",
    );
    sql.push(float)
        .push(") AS average_rating, CAST(AVG(")
        .push(seconds)
        .push(") AS ")
        .push(float)
        .push(") AS mean_seconds_to_resolve FROM tickets");
    let aggregate: TicketAggregate = rows(sql.fetch_all(conn).await?)?
        .pop()
        .ok_or(ApiError::Database(sqlx::Error::RowNotFound))?;
    Ok(TicketStats {
        open: aggregate.open,
        resolved: aggregate.total - aggregate.open,
        mean_seconds_to_resolve: aggregate.mean_seconds_to_resolve,
        average_rating: aggregate.average_rating,
        ratings: aggregate.ratings,
    })
}

/// Conversion of one campaign.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CampaignConversion {
    /// Campaign id.
    pub campaign_id: i64,
    /// Campaign name.
    pub name: String,
    /// Members.
    pub members: i64,
    /// Members who responded or converted.
    pub responded: i64,
    /// Members who converted.
    pub converted: i64,
}

#[utoipa::path(get, path = "/reports/campaigns", tag = "reports", responses((status = 200, description = "Success", body = Vec<CampaignConversion>)))]
async fn campaigns(State(st): State<AppState>) -> ApiResult<axum::Json<Vec<CampaignConversion>>> {
    let sql = Sql::new(
        "SELECT c.id AS campaign_id, c.name AS name, CAST(COUNT(m.contact_id) AS BIGINT) AS members, \
         CAST(COALESCE(SUM(CASE WHEN m.response IN ('responded', 'converted') THEN 1 ELSE 0 END), 0) AS BIGINT) AS responded, \
         CAST(COALESCE(SUM(CASE WHEN m.response = 'converted' THEN 1 ELSE 0 END), 0) AS BIGINT) AS converted \
         FROM campaigns c LEFT JOIN campaign_members m ON m.campaign_id = c.id \
         GROUP BY c.id, c.name ORDER BY c.id",
    );
    Ok(axum::Json(rows(sql.fetch_all(&st.db.pool).await?)?))
}
