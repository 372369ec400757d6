//! Batch upserts of contacts and companies: up to 500 items a call, each
//! matched on its email (contacts) or domain (companies), ignoring case,
//! and created, updated or left unchanged. Each item runs in a savepoint of
//! one transaction, so an item that fails leaves the others written.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Acquire, AnyConnection};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Company, CompanyInput, Contact, ContactInput, store};
use crate::AppState;
use crate::db::Sql;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBytes;
use crate::idempotency;
use crate::store::one;

/// Most items one call may carry.
pub const MAX_ITEMS: usize = 500;

/// Batch routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(batch_contacts))
        .routes(routes!(batch_companies))
}

/// What contacts are matched on.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContactMatch {
    /// The email, ignoring case.
    #[default]
    Email,
}

/// What companies are matched on.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompanyMatch {
    /// The web domain, ignoring case.
    #[default]
    Domain,
}

/// Contacts to create or update.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBatch {
    /// The field an item is matched on; `email` when omitted.
    #[serde(rename = "matchOn", default)]
    pub match_on: ContactMatch,
    /// Up to 500 contacts, each a `ContactInput`: a full replacement (as
    /// for PUT) of the contact it matches. Each item is judged on its own,
    /// and one that is not a valid `ContactInput` gets result `error`.
    #[schema(value_type = Vec<Object>, max_items = 500)]
    pub items: Vec<Value>,
}

/// Companies to create or update.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyBatch {
    /// The field an item is matched on; `domain` when omitted.
    #[serde(rename = "matchOn", default)]
    pub match_on: CompanyMatch,
    /// Up to 500 companies, each a `CompanyInput` with a `domain`: a full
    /// replacement (as for PUT) of the company it matches. Each item is
    /// judged on its own, and one that is not a valid `CompanyInput` gets
    /// result `error`.
    #[schema(value_type = Vec<Object>, max_items = 500)]
    pub items: Vec<Value>,
}

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// No match: a new record.
    Created,
    /// The match was changed.
    Updated,
    /// The match already held these values; nothing was written.
    Unchanged,
    /// The item was refused; `field` and `detail` say why.
    Error,
}

/// The result of one item, in the order sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemResult {
    /// Position of the item in `items`.
    pub index: usize,
    /// What happened.
    pub result: Outcome,
    /// The record created, updated or matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Its version after the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// For errors: the problem type, as for a single write.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For errors: path of the offending field, e.g. `items[3].email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For errors: what is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The answer to a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// Items created.
    pub created: usize,
    /// Items that updated their match.
    pub updated: usize,
    /// Items whose match already held their values.
    pub unchanged: usize,
    /// Items refused.
    pub errors: usize,
    /// One result per item, in the order sent.
    pub items: Vec<ItemResult>,
}

#[utoipa::path(post, path = "/contacts/batch", tag = "customers",
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
        description = "Makes a retry safe: the same key and body answer as the first call did, writing nothing")),
    request_body = ContactBatch,
    responses((status = 200, description = "One result per item", body = BatchResult)))]
async fn batch_contacts(
    State(st): State<AppState>,
    headers: HeaderMap,
    JsonBytes(b, raw): JsonBytes<ContactBatch>,
) -> ApiResult<Response> {
    let ContactMatch::Email = b.match_on;
    let scope = "POST /contacts/batch";
    run_batch(&st, &headers, scope, &raw, b.items, upsert_contact).await
}

#[utoipa::path(post, path = "/companies/batch", tag = "customers",
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
        description = "Makes a retry safe: the same key and body answer as the first call did, writing nothing")),
    request_body = CompanyBatch,
    responses((status = 200, description = "One result per item", body = BatchResult)))]
async fn batch_companies(
    State(st): State<AppState>,
    headers: HeaderMap,
    JsonBytes(b, raw): JsonBytes<CompanyBatch>,
) -> ApiResult<Response> {
    let CompanyMatch::Domain = b.match_on;
    let scope = "POST /companies/batch";
    run_batch(&st, &headers, scope, &raw, b.items, upsert_company).await
}

/// Judge the batch's shape, then upsert its items in one transaction under
/// the call's Idempotency-Key.
async fn run_batch<T, F>(
    st: &AppState,
    headers: &HeaderMap,
    scope: &'static str,
    raw: &[u8],
    items: Vec<Value>,
    upsert: F,
) -> ApiResult<Response>
where
    T: DeserializeOwned + Send,
    F: for<'c> Fn(&'c mut AnyConnection, T) -> Upsert<'c> + Send + 'static,
{
    let key = idempotency::key(headers)?;
    check_items(&items)?;
    let res = idempotency::run(&st.db, scope, key, raw, |conn| {
        Box::pin(async move {
            let r = run_items(conn, items, upsert).await?;
            Ok((
                StatusCode::OK,
                serde_json::to_value(r).unwrap_or(Value::Null),
            ))
        })
    })
    .await;
    // Updated rows may be cached.
    st.cache.clear();
    res
}

/// The shape of the batch is judged as a whole: the number of items, and
/// each an object.
fn check_items(items: &[Value]) -> ApiResult<()> {
    let n = items.len();
    if n > MAX_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!("at most {MAX_ITEMS} items per call, got {n}"),
        ));
    }
    match items.iter().position(|i| !i.is_object()) {
        Some(i) => Err(ApiError::invalid(
            format!("items[{i}]"),
            "must be a JSON object",
        )),
        None => Ok(()),
    }
}

/// Upsert each item in a savepoint; client errors become the item's result,
/// anything else (the database failing) fails the whole call.
async fn run_items<T, F>(
    conn: &mut AnyConnection,
    items: Vec<Value>,
    upsert: F,
) -> ApiResult<BatchResult>
where
    T: DeserializeOwned,
    F: for<'c> Fn(&'c mut AnyConnection, T) -> Upsert<'c>,
{
    let mut out = BatchResult {
        created: 0,
        updated: 0,
        unchanged: 0,
        errors: 0,
        items: Vec::with_capacity(items.len()),
    };
    for (index, raw) in items.into_iter().enumerate() {
        let at = |path: &str| match path {
            "" | "." => format!("items[{index}]"),
            p => format!("items[{index}].{p}"),
        };
        let result = match serde_path_to_error::deserialize::<_, T>(raw) {
            Err(e) => Err(ApiError::invalid(
                e.path().to_string(),
                e.into_inner().to_string(),
            )),
            Ok(input) => {
                let mut sp = conn.begin().await?;
                match upsert(&mut sp, input).await {
                    Ok(done) => {
                        sp.commit().await?;
                        Ok(done)
                    }
                    Err(e) => {
                        sp.rollback().await?;
                        Err(e)
                    }
                }
            }
        };
        let item = match result {
            Ok((outcome, id, version)) => {
                match outcome {
                    Outcome::Created => out.created += 1,
                    Outcome::Updated => out.updated += 1,
                    _ => out.unchanged += 1,
                }
                ItemResult {
                    index,
                    result: outcome,
                    id: Some(id),
                    version: Some(version),
                    kind: None,
                    field: None,
                    detail: None,
                }
            }
            Err(e) => {
                let (kind, field, detail) = match e {
                    ApiError::Validation { field, message } => ("validation", field, message),
                    ApiError::Conflict { field } => {
                        let detail = format!("{field} is already taken");
                        ("conflict", field, detail)
                    }
                    other @ (ApiError::Database(_) | ApiError::Internal(_)) => return Err(other),
                    other => ("validation", String::new(), other.to_string()),
                };
                out.errors += 1;
                ItemResult {
                    index,
                    result: Outcome::Error,
                    id: None,
                    version: None,
                    kind: Some(format!("urn:crm:problem:{kind}")),
                    field: Some(at(&field)),
                    detail: Some(detail),
                }
            }
        };
        out.items.push(item);
    }
    Ok(out)
}

/// An item's upsert: outcome, id and version.
pub type Upsert<'c> = std::pin::Pin<
    Box<dyn std::future::Future<Output = ApiResult<(Outcome, i64, i64)>> + Send + 'c>,
>;

/// What an upsert does with a contact that matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMatch {
    /// Replace its fields (unchanged when they are the same).
    Update,
    /// Leave it as it is (the outcome is `Unchanged`).
    Skip,
}

fn upsert_contact(conn: &mut AnyConnection, b: ContactInput) -> Upsert<'_> {
    upsert_contact_with(conn, b, OnMatch::Update)
}

/// Create the contact, or treat the one with its email as `on_match` says.
pub fn upsert_contact_with(
    conn: &mut AnyConnection,
    b: ContactInput,
    on_match: OnMatch,
) -> Upsert<'_> {
    Box::pin(async move {
        // Emails are stored lower-cased (domain::Email), as `b.email` is.
        let mut sql = Sql::new("SELECT * FROM contacts WHERE email = ");
        sql.bind(b.email.as_str());
        let found: Option<Contact> = match sql.fetch_optional(&mut *conn).await? {
            Some(row) => Some(one(Some(row))?),
            None => None,
        };
        let Some(c) = found else {
            let c = store::insert_contact(conn, b).await?;
            return Ok((Outcome::Created, c.id, c.version));
        };
        if on_match == OnMatch::Skip {
            return Ok((Outcome::Unchanged, c.id, c.version));
        }
        let same = c.first_name == b.first_name.as_str()
            && c.last_name == b.last_name.as_str()
            && c.phone.as_deref() == b.phone.as_ref().map(|p| p.as_str())
            && c.company_id == b.company_id;
        if same {
            return Ok((Outcome::Unchanged, c.id, c.version));
        }
        let c = store::update_contact(conn, c.id, Some(c.version), b).await?;
        Ok((Outcome::Updated, c.id, c.version))
    })
}

fn upsert_company(conn: &mut AnyConnection, b: CompanyInput) -> Upsert<'_> {
    Box::pin(async move {
        let Some(domain) = b.domain.as_ref().map(|d| d.as_str().to_lowercase()) else {
            return Err(ApiError::invalid(
                "domain",
                "is required to match companies on their domain",
            ));
        };
        let mut sql = Sql::new("SELECT * FROM companies WHERE LOWER(domain) = ");
        sql.bind(domain).push(" ORDER BY id LIMIT 2");
        let found: Vec<Company> = crate::db::rows(sql.fetch_all(&mut *conn).await?)?;
        let c = match found.as_slice() {
            [] => {
                let c = store::insert_company(conn, b).await?;
                return Ok((Outcome::Created, c.id, c.version));
            }
            [c] => c,
            [..] => {
                return Err(ApiError::invalid(
                    "domain",
                    "several companies have this domain; update them one by one",
                ));
            }
        };
        let same = c.name == b.name.as_str()
            && c.domain.as_deref() == b.domain.as_ref().map(|d| d.as_str())
            && c.industry.as_deref() == b.industry.as_ref().map(|i| i.as_str());
        if same {
            return Ok((Outcome::Unchanged, c.id, c.version));
        }
        let c = store::update_company(conn, c.id, Some(c.version), b).await?;
        Ok((Outcome::Updated, c.id, c.version))
    })
}
