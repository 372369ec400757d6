//! Tickets (status, feedback) and campaigns with their members.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::session::Viewer;
use super::{PAGE_SIZE, UiError, UiResult, page, require, see_other};
use crate::AppState;
use crate::domain::{Name, Priority, Text, TicketStatus};
use crate::error::ApiError;
use crate::http::Id;
use crate::marketing::{self, Campaign, CampaignParams, MemberContact, MemberParams};
use crate::service::{self, Ticket, TicketInput, TicketParams};

/// Routes of the ticket list.
pub fn tickets_router() -> Router<AppState> {
    Router::new()
        .route("/ui/tickets", get(tickets))
        .route("/ui/tickets/{id}/status", post(set_status))
}

/// Routes of campaigns.
pub fn campaigns_router() -> Router<AppState> {
    Router::new()
        .route("/ui/campaigns", get(campaigns))
        .route("/ui/campaigns/{id}", get(campaign))
}

/// Filter and position of the ticket list.
#[derive(Debug, Default, Deserialize)]
pub struct TicketQuery {
    /// Only this status (empty: all).
    #[serde(default)]
    pub status: String,
    /// Cursor of the page.
    pub cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "tickets.html")]
struct TicketList<'a> {
    v: &'a Viewer,
    status: &'a str,
    statuses: &'static [TicketStatus],
    items: Vec<Ticket>,
    next: Option<String>,
}

async fn tickets(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Query(tq): Query<TicketQuery>,
) -> UiResult {
    let params = TicketParams {
        q: None,
        status: Some(tq.status.clone()).filter(|s| !s.is_empty()),
        priority: None,
        contact_id: None,
        created_from: None,
        created_to: None,
        sort: Some("-id".into()),
        cursor: tq.cursor.clone(),
        limit: Some(PAGE_SIZE),
    };
    let list = service::list_ticket_rows(&mut *st.db.pool.acquire().await?, &params).await?;
    Ok(page(&TicketList {
        v: &v,
        status: &tq.status,
        statuses: TicketStatus::ALL,
        items: list.items,
        next: list.next_cursor,
    }))
}

/// A ticket's new status.
#[derive(Debug, Deserialize)]
pub struct StatusForm {
    status: String,
    version: i64,
}

async fn set_status(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Form(f): Form<StatusForm>,
) -> UiResult {
    require(v.role().writes_tickets())?;
    let status =
        TicketStatus::parse(&f.status).map_err(|m| UiError::BadRequest(format!("status {m}")))?;
    let mut conn = st.db.pool.acquire().await?;
    let t = service::get_ticket_row(&mut conn, id).await?;
    let stored = |e: String| UiError::Internal(ApiError::Internal(format!("stored ticket: {e}")));
    let input = TicketInput {
        subject: Name::parse(&t.subject).map_err(stored)?,
        description: t
            .description
            .as_deref()
            .map(Text::parse)
            .transpose()
            .map_err(stored)?,
        contact_id: t.contact_id,
        status,
        priority: Priority::parse(&t.priority).map_err(stored)?,
    };
    match service::update_ticket_row(&mut conn, id, Some(f.version), input).await {
        Ok(_) | Err(ApiError::PreconditionFailed) => Ok(see_other("/ui/tickets")),
        Err(e) => Err(e.into()),
    }
}

/// Position of a list.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Cursor of the page.
    pub cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct CampaignList<'a> {
    v: &'a Viewer,
    items: Vec<Campaign>,
    next: Option<String>,
}

async fn campaigns(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Query(pq): Query<PageQuery>,
) -> UiResult {
    let params = CampaignParams {
        q: None,
        status: None,
        channel: None,
        created_from: None,
        created_to: None,
        sort: Some("-id".into()),
        cursor: pq.cursor,
        limit: Some(PAGE_SIZE),
    };
    let list = marketing::list_campaign_rows(&mut *st.db.pool.acquire().await?, &params).await?;
    Ok(page(&CampaignList {
        v: &v,
        items: list.items,
        next: list.next_cursor,
    }))
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage<'a> {
    v: &'a Viewer,
    c: Campaign,
    members: Vec<MemberContact>,
    next: Option<String>,
}

async fn campaign(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Query(pq): Query<PageQuery>,
) -> UiResult {
    let mut conn = st.db.pool.acquire().await?;
    let c = marketing::get_campaign_row(&mut conn, id).await?;
    let params = MemberParams {
        response: None,
        cursor: pq.cursor,
        limit: Some(PAGE_SIZE),
    };
    let members = marketing::list_member_contacts(&mut conn, id, &params).await?;
    Ok(page(&CampaignPage {
        v: &v,
        c,
        members: members.items,
        next: members.next_cursor,
    }))
}
