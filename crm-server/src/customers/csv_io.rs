//! CSV import and export of contacts and companies. Imports are all or
//! nothing: one bad row rejects the file, naming the row and field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Company, CompanyInput, Contact, ContactInput, insert_contact};
use crate::AppState;
use crate::db::{Sql, now, rows};
use crate::error::{ApiError, ApiResult, db_error};
use crate::http::body_error;
use crate::store::one;

/// CSV routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_companies, import_companies))
        .routes(routes!(export_contacts, import_contacts))
}

/// Result of an import.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// Rows written.
    pub imported: usize,
}

/// A CSV request body.
#[derive(Debug)]
pub struct CsvBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/csv"));
        if !ok {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(CsvBody(
            Bytes::from_request(req, state).await.map_err(body_error)?,
        ))
    }
}

/// Parse every row as `T` through JSON, so the same validation (and field
/// names) apply as for the JSON API. Empty cells are absent values.
fn parse_rows<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<Vec<T>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = rdr
        .headers()
        .map_err(|e| ApiError::BadRequest(format!("CSV: {e}")))?
        .clone();
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| ApiError::BadRequest(format!("CSV row {}: {e}", i + 1)))?;
        let mut obj = serde_json::Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            if v.is_empty() {
                continue;
            }
            let value = match v.parse::<i64>() {
                Ok(n) if h.ends_with("_id") => serde_json::Value::from(n),
                _ => serde_json::Value::from(v),
            };
            obj.insert(h.to_string(), value);
        }
        let bytes = serde_json::to_vec(&obj).map_err(|e| ApiError::Internal(e.to_string()))?;
        let row = crate::http::parse_json::<T>(&bytes).map_err(|e| match e {
            ApiError::Validation { field, message } => {
                ApiError::invalid(format!("[{}].{field}", i + 1), message)
            }
            other => other,
        })?;
        out.push(row);
    }
    Ok(out)
}

fn csv_response<T: Serialize>(items: &[T]) -> ApiResult<Response> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for item in items {
        w.serialize(item)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let data = w
        .into_inner()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut res = data.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    Ok(res)
}

#[utoipa::path(get, path = "/companies.csv", tag = "customers",
    responses((status = 200, description = "All companies as CSV", content_type = "text/csv", body = String)),
    security(("api_key" = [])))]
async fn export_companies(State(st): State<AppState>) -> ApiResult<Response> {
    let sql = Sql::new("SELECT * FROM companies ORDER BY id");
    let all: Vec<Company> = rows(sql.fetch_all(&st.db.pool).await?)?;
    csv_response(&all)
}

#[utoipa::path(post, path = "/companies.csv", tag = "customers",
    request_body(content = String, description = "Header: name,domain,industry", content_type = "text/csv"),
    responses((status = 201, description = "Imported", body = Imported),
        (status = "4XX", description = "Problem", body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn import_companies(
    State(st): State<AppState>,
    CsvBody(body): CsvBody,
) -> ApiResult<Response> {
    let input: Vec<CompanyInput> = parse_rows(&body)?;
    let n = input.len();
    let mut tx = st.db.pool.begin().await?;
    for b in input {
        let ts = now();
        let mut sql = Sql::new(
            "INSERT INTO companies (name, domain, industry, created_at, updated_at) VALUES (",
        );
        sql.bind(String::from(b.name))
            .push(", ")
            .bind(b.domain.map(String::from));
        sql.push(", ")
            .bind(b.industry.map(String::from))
            .push(", ")
            .bind(ts.clone());
        sql.push(", ").bind(ts).push(") RETURNING *");
        let _: Company = one(sql
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_error(e, "name"))?)?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(Imported { imported: n })).into_response())
}

#[utoipa::path(get, path = "/contacts.csv", tag = "customers",
    responses((status = 200, description = "All contacts as CSV", content_type = "text/csv", body = String)),
    security(("api_key" = [])))]
async fn export_contacts(State(st): State<AppState>) -> ApiResult<Response> {
    let sql = Sql::new("SELECT * FROM contacts ORDER BY id");
    let all: Vec<Contact> = rows(sql.fetch_all(&st.db.pool).await?)?;
    csv_response(&all)
}

/// Columns accepted for contacts; extra export columns (id, timestamps) are
/// ignored so an export can be re-imported elsewhere.
#[derive(Debug, Deserialize)]
struct ContactRow {
    first_name: serde_json::Value,
    last_name: serde_json::Value,
    email: serde_json::Value,
    #[serde(default)]
    phone: Option<serde_json::Value>,
    #[serde(default)]
    company_id: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/contacts.csv", tag = "customers",
    request_body(content = String, description = "Header: first_name,last_name,email,phone,company_id", content_type = "text/csv"),
    responses((status = 201, description = "Imported", body = Imported),
        (status = "4XX", description = "Problem", body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn import_contacts(
    State(st): State<AppState>,
    CsvBody(body): CsvBody,
) -> ApiResult<Response> {
    let raw: Vec<ContactRow> = parse_rows(&body)?;
    let mut input = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let v = serde_json::json!({"first_name": r.first_name, "last_name": r.last_name,
            "email": r.email, "phone": r.phone, "company_id": r.company_id});
        let c: ContactInput = serde_path_to_error::deserialize(v).map_err(|e| {
            ApiError::invalid(format!("[{}].{}", i + 1, e.path()), e.inner().to_string())
        })?;
        input.push(c);
    }
    let n = input.len();
    let mut tx = st.db.pool.begin().await?;
    for (i, c) in input.into_iter().enumerate() {
        insert_contact(&mut *tx, c).await.map_err(|e| match e {
            ApiError::Conflict { field } => ApiError::Conflict {
                field: format!("[{}].{field}", i + 1),
            },
            other => other,
        })?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(Imported { imported: n })).into_response())
}
