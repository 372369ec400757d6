//! Likely duplicate contacts, and merging them into one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Contact, Key, store};
use crate::AppState;
use crate::db::{Sql, now, rows};
use crate::error::{ApiError, ApiResult};
use crate::http::{Id, IdPath, JsonBody, Q, with_etag};
use crate::sales::Deal;
use crate::service::Ticket;
use crate::webhooks::Event;
use crate::webhooks::outbox::record;

/// Duplicate and merge routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_duplicates))
        .routes(routes!(merge_contacts))
}

/// Most contacts one merge may remove.
pub const MAX_MERGE: usize = 100;

/// The phone number with its usual separators removed, in SQL: the same
/// expression on SQLite and PostgreSQL, so `+1 (555) 010-0000` and
/// `15550100000` meet.
const PHONE_KEY: &str = "REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(\
    phone, ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''), '/', ''), '+', '')";

/// Why contacts are grouped as likely duplicates.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The same email, ignoring case.
    Email,
    /// The same phone number once spaces, dashes, dots, slashes,
    /// parentheses and `+` are removed.
    Phone,
    /// The same first and last name (ignoring case) at the same company.
    NameAndCompany,
}

/// A group of contacts that are likely one person.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DuplicateGroup {
    /// What they share.
    pub reason: Reason,
    /// The shared value (lower-cased email, phone digits, or
    /// `first last @ company id`).
    pub key: String,
    /// The contacts, oldest first.
    pub contacts: Vec<Contact>,
}

/// The groups found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Duplicates {
    /// Groups by email, then by phone, then by name and company.
    pub groups: Vec<DuplicateGroup>,
}

/// Duplicate search parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DuplicateParams {
    /// Most groups answered, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/contacts/duplicates", tag = "customers", params(DuplicateParams),
    responses((status = 200, description = "Groups of likely duplicates", body = Duplicates)))]
async fn list_duplicates(
    State(st): State<AppState>,
    Q(p): Q<DuplicateParams>,
) -> ApiResult<axum::Json<Duplicates>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    let mut conn = st.db.pool.acquire().await?;
    let mut groups = Vec::new();
    let searches: [(Reason, &'static str, &'static str); 3] = [
        (Reason::Email, "LOWER(email)", "email IS NOT NULL"),
        (Reason::Phone, PHONE_KEY, "phone IS NOT NULL"),
        (
            Reason::NameAndCompany,
            "LOWER(first_name) || ' ' || LOWER(last_name) || ' @ ' || CAST(company_id AS TEXT)",
            "company_id IS NOT NULL",
        ),
    ];
    for (reason, key, present) in searches {
        let left = limit - groups.len() as i64;
        if left <= 0 {
            break;
        }
        let mut sql = Sql::new("SELECT ");
        sql.push(key)
            .push(" AS k FROM contacts WHERE ")
            .push(present);
        sql.push(" GROUP BY ")
            .push(key)
            .push(" HAVING COUNT(*) > 1 AND ")
            .push(key)
            .push(" <> '' ORDER BY MIN(id) LIMIT ")
            .bind(left);
        let keys: Vec<String> = sql
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        for k in keys {
            let mut sql = Sql::new("SELECT * FROM contacts WHERE ");
            sql.push(present).push(" AND ").push(key).push(" = ");
            sql.bind(k.clone()).push(" ORDER BY id");
            let contacts = rows(sql.fetch_all(&mut *conn).await?)?;
            groups.push(DuplicateGroup {
                reason,
                key: k,
                contacts,
            });
        }
    }
    Ok(axum::Json(Duplicates { groups }))
}

/// Contacts to merge into the one named in the path.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeInput {
    /// Ids of the contacts merged in and then removed (1 to 100, without
    /// the surviving contact).
    #[schema(min_items = 1, max_items = 100)]
    pub from: Vec<i64>,
}

#[utoipa::path(post, path = "/contacts/{id}/merge", tag = "customers", params(IdPath),
    request_body = MergeInput,
    responses((status = 200, description = "The surviving contact, with the others' notes, deals, tickets and campaign memberships", body = Contact)))]
async fn merge_contacts(
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(b): JsonBody<MergeInput>,
) -> ApiResult<Response> {
    check(id, &b.from)?;
    let mut tx = st.db.begin_write().await?;
    let res = merge(&mut tx, id, &b.from).await;
    let c = match res {
        Ok(c) => {
            tx.commit().await?;
            c
        }
        Err(e) => {
            tx.rollback().await?;
            return Err(e);
        }
    };
    for gone in b.from.iter().chain([&id]) {
        st.cache.evict(&Key::Contact(*gone));
    }
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

fn check(id: i64, from: &[i64]) -> ApiResult<()> {
    if from.is_empty() || from.len() > MAX_MERGE {
        return Err(ApiError::invalid(
            "from",
            format!("must name 1 to {MAX_MERGE} contacts"),
        ));
    }
    for (i, f) in from.iter().enumerate() {
        if *f == id {
            return Err(ApiError::invalid(
                format!("from[{i}]"),
                "is the surviving contact",
            ));
        }
        if from[..i].contains(f) {
            return Err(ApiError::invalid(format!("from[{i}]"), "appears twice"));
        }
    }
    Ok(())
}

/// Give `table`'s rows of contact `from` to contact `to`, bumping their
/// version, and answer them as they now are.
async fn reassign<T>(
    conn: &mut AnyConnection,
    table: &'static str,
    to: i64,
    from: i64,
) -> ApiResult<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    let mut sql = Sql::new("UPDATE ");
    sql.push(table).push(" SET contact_id = ").bind(to);
    sql.push(", updated_at = ")
        .bind(now())
        .push(", version = version + 1 WHERE contact_id = ")
        .bind(from)
        .push(" RETURNING *");
    rows(sql.fetch_all(&mut *conn).await?)
}

/// Move everything of `from` to `id`, fill the survivor's empty phone and
/// company from the others (oldest first), and delete them.
pub async fn merge(conn: &mut AnyConnection, id: i64, from: &[i64]) -> ApiResult<Contact> {
    let survivor = store::get_contact(conn, id).await?;
    let mut phone = survivor.phone.clone();
    let mut company = survivor.company_id;
    for (i, f) in from.iter().enumerate() {
        let other = match store::get_contact(conn, *f).await {
            Err(ApiError::NotFound) => {
                return Err(ApiError::invalid(format!("from[{i}]"), "no such contact"));
            }
            other => other?,
        };
        phone = phone.or(other.phone);
        company = company.or(other.company_id);
        let mut sql = Sql::new("UPDATE notes SET contact_id = ");
        sql.bind(id).push(" WHERE contact_id = ").bind(*f);
        sql.execute(&mut *conn).await?;
        // Deals and tickets change owner: each gets a new version and an
        // event, as any other update of theirs does.
        for deal in reassign::<Deal>(conn, "deals", id, *f).await? {
            record(conn, Event::DealUpdated, &deal).await?;
        }
        for ticket in reassign::<Ticket>(conn, "tickets", id, *f).await? {
            record(conn, Event::TicketUpdated, &ticket).await?;
        }
        // A campaign both were members of keeps the survivor's response;
        // the other's membership goes with the contact.
        let mut sql = Sql::new("UPDATE campaign_members SET contact_id = ");
        sql.bind(id).push(" WHERE contact_id = ").bind(*f);
        sql.push(
            " AND campaign_id NOT IN (SELECT campaign_id FROM campaign_members WHERE contact_id = ",
        )
        .bind(id)
        .push(")");
        sql.execute(&mut *conn).await?;
        store::delete_contact(conn, *f, None).await?;
    }
    let mut sql = Sql::new("UPDATE contacts SET phone = ");
    sql.bind(phone).push(", company_id = ").bind(company);
    sql.push(", updated_at = ")
        .bind(now())
        .push(", version = version + 1 WHERE id = ")
        .bind(id)
        .push(" RETURNING *");
    let c: Contact = crate::store::one(sql.fetch_optional(&mut *conn).await?)?;
    record(conn, Event::ContactUpdated, &c).await?;
    Ok(c)
}
