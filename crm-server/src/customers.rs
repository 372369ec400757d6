//! Customers: companies and contacts.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::domain::{Email, Name};
use crate::error::ApiResult;
use crate::http::{Id, IdPath, JsonBody, Page, Q, if_match, require_if_match, with_etag};
use crate::patch::{self, MergePatch};

pub mod batch;
pub mod csv_export;
pub mod csv_io;
pub mod merge;
pub mod search;
pub mod store;

/// What the read cache holds for this module.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A company.
    Company(Company),
    /// A contact.
    Contact(Contact),
}

/// The read cache's key: kind and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A company id.
    Company(i64),
    /// A contact id.
    Contact(i64),
}

/// Routes of the customers module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_companies, create_company))
        .routes(routes!(
            get_company,
            update_company,
            patch_company,
            delete_company
        ))
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(
            get_contact,
            update_contact,
            patch_contact,
            delete_contact
        ))
        .merge(csv_io::router())
        .merge(batch::router())
        .merge(merge::router())
}

/// A company as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Company {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Web domain.
    pub domain: Option<String>,
    /// Industry.
    pub industry: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update time (RFC 3339).
    pub updated_at: String,
    /// Row version, also the ETag.
    pub version: i64,
}

/// Body to create or replace a company.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyInput {
    /// Name.
    pub name: Name,
    /// Web domain.
    #[serde(default)]
    pub domain: Option<Name>,
    /// Industry.
    #[serde(default)]
    pub industry: Option<Name>,
}

/// Company list filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompanyParams {
    /// Case-insensitive text search on name and domain.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub q: Option<String>,
    /// Created on or after this date.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_from: Option<String>,
    /// Created on or before this date.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_to: Option<String>,
    /// `field` or `-field`.
    #[param(pattern = r"^-?(name|created_at|id)$")]
    pub sort: Option<String>,
    /// Opaque cursor from `next_cursor`.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size, 1..=200.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Contact list filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactParams {
    /// Case-insensitive prefix of the full name (`first last`), last name,
    /// email, phone or company name.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub q: Option<String>,
    /// Only contacts of this company.
    pub company_id: Option<i64>,
    /// Created on or after this date.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_from: Option<String>,
    /// Created on or before this date.
    #[param(value_type = Option<String>, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub created_to: Option<String>,
    /// `field` or `-field`.
    #[param(pattern = r"^-?(last_name|first_name|email|created_at|id)$")]
    pub sort: Option<String>,
    /// Opaque cursor from `next_cursor`.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size, 1..=200.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/companies", tag = "customers", params(CompanyParams), responses((status = 200, description = "Success", body = Page<Company>)))]
async fn list_companies(
    State(st): State<AppState>,
    Q(p): Q<CompanyParams>,
) -> ApiResult<axum::Json<Page<Company>>> {
    let page = store::list_companies(&mut *st.db.pool.acquire().await?, &p).await?;
    Ok(axum::Json(page))
}

#[utoipa::path(post, path = "/companies", tag = "customers", request_body = CompanyInput, responses((status = 201, description = "Success", body = Company)))]
async fn create_company(
    State(st): State<AppState>,
    JsonBody(b): JsonBody<CompanyInput>,
) -> ApiResult<Response> {
    let c = store::insert_company(&mut *st.db.pool.acquire().await?, b).await?;
    Ok(with_etag(StatusCode::CREATED, c.version, &c))
}

/// Fetch a company by id.
pub async fn fetch_company(st: &AppState, id: i64) -> ApiResult<Company> {
    if let Some(Entry::Company(c)) = st.cache.get(&Key::Company(id)) {
        st.metrics.cache_hits.inc();
        return Ok(c);
    }
    st.metrics.cache_misses.inc();
    let c = st
        .db
        .read(async |conn| store::get_company(conn, id).await)
        .await?;
    st.cache.put(Key::Company(id), Entry::Company(c.clone()));
    Ok(c)
}

#[utoipa::path(get, path = "/companies/{id}", tag = "customers", params(IdPath), responses((status = 200, description = "Success", body = Company)))]
async fn get_company(State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let c = fetch_company(&st, id).await?;
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

#[utoipa::path(put, path = "/companies/{id}", tag = "customers", params(IdPath), request_body = CompanyInput, responses((status = 200, description = "Success", body = Company)))]
async fn update_company(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    JsonBody(b): JsonBody<CompanyInput>,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    write_company(&st, id, expected, b).await
}

/// Fields of a company a PUT sends.
const COMPANY_FIELDS: &[&str] = &["name", "domain", "industry"];

#[utoipa::path(patch, path = "/companies/{id}", tag = "customers", params(IdPath), request_body(content = CompanyInput, content_type = "application/merge-patch+json", description = "A JSON merge patch (RFC 7396) of the fields of a PUT body; null removes an optional field"), responses((status = 200, description = "Success", body = Company)))]
async fn patch_company(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    MergePatch(p): MergePatch,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    st.cache.evict(&Key::Company(id));
    let current = fetch_company(&st, id).await?;
    let b = patch::apply_versioned(&current, current.version, COMPANY_FIELDS, p, expected)?;
    write_company(&st, id, Some(current.version), b).await
}

/// Replace a company's fields if its version is `expected` (any when None).
async fn write_company(
    st: &AppState,
    id: i64,
    expected: Option<i64>,
    b: CompanyInput,
) -> ApiResult<Response> {
    st.cache.evict(&Key::Company(id));
    let res = store::update_company(&mut *st.db.pool.acquire().await?, id, expected, b).await;
    // Evicted again after the write: a read racing the update may have
    // cached the old row in between.
    st.cache.evict(&Key::Company(id));
    let c = res?;
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

#[utoipa::path(delete, path = "/companies/{id}", tag = "customers", params(IdPath), responses((status = 204, description = "Success")))]
async fn delete_company(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let expected = if_match(&headers)?;
    let res = store::delete_company(&mut *st.db.pool.acquire().await?, id, expected)
        .await
        .map(|()| StatusCode::NO_CONTENT);
    // Contacts of the company were unlinked by the database too.
    st.cache.clear();
    res
}

/// A contact as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Contact {
    /// Id.
    pub id: i64,
    /// The company the contact works for.
    pub company_id: Option<i64>,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Email, unique per tenant.
    pub email: String,
    /// Phone number.
    pub phone: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update time (RFC 3339).
    pub updated_at: String,
    /// Row version, also the ETag.
    pub version: i64,
}

/// Body to create or replace a contact.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Given name.
    pub first_name: Name,
    /// Family name.
    pub last_name: Name,
    /// Email, unique per tenant.
    pub email: Email,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<Name>,
    /// Company the contact works for.
    #[serde(default)]
    pub company_id: Option<i64>,
}

#[utoipa::path(get, path = "/contacts", tag = "customers", params(ContactParams), responses((status = 200, description = "Success", body = Page<Contact>)))]
async fn list_contacts(
    State(st): State<AppState>,
    Q(p): Q<ContactParams>,
) -> ApiResult<axum::Json<Page<Contact>>> {
    let kind = st.db.kind;
    let page = store::list_contacts(&mut *st.db.pool.acquire().await?, kind, &p).await?;
    Ok(axum::Json(page))
}

#[utoipa::path(post, path = "/contacts", tag = "customers", request_body = ContactInput, responses((status = 201, description = "Success", body = Contact)))]
async fn create_contact(
    State(st): State<AppState>,
    JsonBody(b): JsonBody<ContactInput>,
) -> ApiResult<Response> {
    let c = store::insert_contact(&mut *st.db.pool.acquire().await?, b).await?;
    Ok(with_etag(StatusCode::CREATED, c.version, &c))
}

/// Fetch a contact by id.
pub async fn fetch_contact(st: &AppState, id: i64) -> ApiResult<Contact> {
    if let Some(Entry::Contact(c)) = st.cache.get(&Key::Contact(id)) {
        st.metrics.cache_hits.inc();
        return Ok(c);
    }
    st.metrics.cache_misses.inc();
    let c = st
        .db
        .read(async |conn| store::get_contact(conn, id).await)
        .await?;
    st.cache.put(Key::Contact(id), Entry::Contact(c.clone()));
    Ok(c)
}

#[utoipa::path(get, path = "/contacts/{id}", tag = "customers", params(IdPath), responses((status = 200, description = "Success", body = Contact)))]
async fn get_contact(State(st): State<AppState>, Id(id): Id) -> ApiResult<Response> {
    let c = fetch_contact(&st, id).await?;
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

#[utoipa::path(put, path = "/contacts/{id}", tag = "customers", params(IdPath), request_body = ContactInput, responses((status = 200, description = "Success", body = Contact)))]
async fn update_contact(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    JsonBody(b): JsonBody<ContactInput>,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    write_contact(&st, id, expected, b).await
}

/// Fields of a contact a PUT sends.
const CONTACT_FIELDS: &[&str] = &["first_name", "last_name", "email", "phone", "company_id"];

#[utoipa::path(patch, path = "/contacts/{id}", tag = "customers", params(IdPath), request_body(content = ContactInput, content_type = "application/merge-patch+json", description = "A JSON merge patch (RFC 7396) of the fields of a PUT body; null removes an optional field"), responses((status = 200, description = "Success", body = Contact)))]
async fn patch_contact(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    MergePatch(p): MergePatch,
) -> ApiResult<Response> {
    let expected = require_if_match(&headers)?;
    st.cache.evict(&Key::Contact(id));
    let current = fetch_contact(&st, id).await?;
    let b = patch::apply_versioned(&current, current.version, CONTACT_FIELDS, p, expected)?;
    write_contact(&st, id, Some(current.version), b).await
}

/// Replace a contact's fields if its version is `expected` (any when None).
async fn write_contact(
    st: &AppState,
    id: i64,
    expected: Option<i64>,
    b: ContactInput,
) -> ApiResult<Response> {
    st.cache.evict(&Key::Contact(id));
    let res = store::update_contact(&mut *st.db.pool.acquire().await?, id, expected, b).await;
    st.cache.evict(&Key::Contact(id));
    let c = res?;
    Ok(with_etag(StatusCode::OK, c.version, &c))
}

#[utoipa::path(delete, path = "/contacts/{id}", tag = "customers", params(IdPath), responses((status = 204, description = "Success")))]
async fn delete_contact(
    State(st): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let expected = if_match(&headers)?;
    let res = store::delete_contact(&mut *st.db.pool.acquire().await?, id, expected)
        .await
        .map(|()| StatusCode::NO_CONTENT);
    st.cache.evict(&Key::Contact(id));
    res
}
