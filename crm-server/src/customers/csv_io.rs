//! CSV import and export of contacts and companies (exports stream, see
//! `csv_export`). Imports are all or nothing: one bad row rejects the file, naming the row and field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::batch::{OnMatch, Outcome, upsert_contact_with};
use super::{Company, CompanyInput, Contact, ContactInput, csv_export, store};
use crate::AppState;
use crate::db::Sql;
use crate::error::{ApiError, ApiResult};
use crate::http::{Q, body_error};

/// CSV routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_companies, import_companies))
        .routes(routes!(export_contacts, import_contacts))
}

/// Result of an import.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Imported {
    /// Rows written: created, or updated under `onDuplicate=update`.
    pub imported: usize,
    /// Rows that updated an existing contact (`onDuplicate=update`).
    pub updated: usize,
    /// Rows left out because their email was taken (`onDuplicate=skip`).
    pub skipped: usize,
}

/// What a contacts import does with a row whose email is taken.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicate {
    /// Leave the existing contact as it is and go on.
    Skip,
    /// Replace the existing contact's fields with the row's.
    Update,
    /// Refuse the whole file (409 naming the row).
    #[default]
    Error,
}

/// Contacts import parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// A row whose email is taken: `skip` it, `update` that contact, or
    /// refuse the file (`error`, the default).
    #[serde(rename = "onDuplicate", default)]
    #[param(rename = "onDuplicate", inline)]
    pub on_duplicate: OnDuplicate,
}

/// A CSV request body: `Content-Type: text/csv` (parameters such as
/// `charset=utf-8` allowed), anything else is 415.
#[derive(Debug)]
pub struct CsvBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/csv"));
        if !ok {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(CsvBody(
            Bytes::from_request(req, state).await.map_err(body_error)?,
        ))
    }
}

/// The columns an import understands.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    /// Every file must have these.
    pub required: &'static [&'static str],
    /// Read when present.
    pub optional: &'static [&'static str],
    /// Columns of an export that an import skips (so an export re-imports).
    pub ignored: &'static [&'static str],
}

impl Columns {
    fn expected(&self) -> String {
        let opt = self.optional.iter().map(|c| format!("[{c}]"));
        self.required
            .iter()
            .map(|c| c.to_string())
            .chain(opt)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Check the header row: every required column, no unknown or repeated
    /// one. Returns, per column, whether its values are read.
    fn check(&self, header: &csv::StringRecord) -> ApiResult<Vec<bool>> {
        let problem = |m: String| ApiError::invalid("header", m);
        let expected = self.expected();
        if header.iter().all(str::is_empty) {
            return Err(problem(format!(
                "the first line must be a header row: {expected}"
            )));
        }
        let mut read = Vec::with_capacity(header.len());
        for (i, name) in header.iter().enumerate() {
            if header.iter().take(i).any(|n| n == name) {
                return Err(problem(format!("column {name:?} appears twice")));
            }
            let wanted = self.required.contains(&name) || self.optional.contains(&name);
            if !wanted && !self.ignored.contains(&name) {
                return Err(problem(format!(
                    "unknown column {name:?}; expected {expected}"
                )));
            }
            read.push(wanted);
        }
        if let Some(missing) = self
            .required
            .iter()
            .find(|c| !header.iter().any(|n| n == **c))
        {
            return Err(problem(format!(
                "missing column {missing:?}; expected {expected}"
            )));
        }
        Ok(read)
    }
}

/// Parse every row as `T` through JSON, so the same validation (and field
/// names) apply as for the JSON API. Empty cells are absent values.
fn parse_rows<T: serde::de::DeserializeOwned>(body: &[u8], cols: Columns) -> ApiResult<Vec<T>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = rdr
        .headers()
        .map_err(|e| ApiError::BadRequest(format!("CSV header row: {e}")))?
        .clone();
    let read = cols.check(&headers)?;
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| ApiError::BadRequest(format!("CSV row {}: {e}", i + 1)))?;
        let mut obj = serde_json::Map::new();
        for ((h, v), wanted) in headers.iter().zip(rec.iter()).zip(&read) {
            if !wanted {
                continue;
            }
            if v.is_empty() {
                if cols.required.contains(&h) {
                    return Err(ApiError::invalid(
                        format!("[{}].{h}", i + 1),
                        "must not be empty",
                    ));
                }
                continue;
            }
            let value = match v.parse::<i64>() {
                Ok(n) if h.ends_with("_id") => serde_json::Value::from(n),
                _ => serde_json::Value::from(v),
            };
            obj.insert(h.to_string(), value);
        }
        let row =
            serde_path_to_error::deserialize(serde_json::Value::Object(obj)).map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." {
                    String::new()
                } else {
                    format!(".{field}")
                };
                ApiError::invalid(format!("[{}]{field}", i + 1), e.into_inner().to_string())
            })?;
        out.push(row);
    }
    Ok(out)
}

/// Columns every export has besides the input's.
const EXPORT_ONLY: &[&str] = &["id", "created_at", "updated_at", "version"];

/// Columns of a companies import.
pub const COMPANY_COLUMNS: Columns = Columns {
    required: &["name"],
    optional: &["domain", "industry"],
    ignored: EXPORT_ONLY,
};

/// Columns of a contacts import.
pub const CONTACT_COLUMNS: Columns = Columns {
    required: &["first_name", "last_name", "email"],
    optional: &["phone", "company_id"],
    ignored: EXPORT_ONLY,
};

#[utoipa::path(get, path = "/companies.csv", tag = "customers",
    responses((status = 200, description = "All companies as CSV", content_type = "text/csv", body = String)))]
async fn export_companies(State(st): State<AppState>) -> Response {
    let sql = Sql::new("SELECT * FROM companies ORDER BY id");
    csv_export::stream::<Company>(&st.db, sql, csv_export::COMPANY_HEADER)
}

#[utoipa::path(post, path = "/companies.csv", tag = "customers",
    request_body(content = String, description = "Header: name,domain,industry", content_type = "text/csv"),
    responses((status = 201, description = "Imported", body = Imported)))]
async fn import_companies(
    State(st): State<AppState>,
    CsvBody(body): CsvBody,
) -> ApiResult<Response> {
    let input: Vec<CompanyInput> = parse_rows(&body, COMPANY_COLUMNS)?;
    let n = input.len();
    let mut tx = st.db.begin_write().await?;
    for b in input {
        store::insert_company(&mut tx, b).await?;
    }
    tx.commit().await?;
    let done = Imported {
        imported: n,
        ..Imported::default()
    };
    Ok((StatusCode::CREATED, axum::Json(done)).into_response())
}

#[utoipa::path(get, path = "/contacts.csv", tag = "customers",
    responses((status = 200, description = "All contacts as CSV", content_type = "text/csv", body = String)))]
async fn export_contacts(State(st): State<AppState>) -> Response {
    let sql = Sql::new("SELECT * FROM contacts ORDER BY id");
    csv_export::stream::<Contact>(&st.db, sql, csv_export::CONTACT_HEADER)
}

#[utoipa::path(post, path = "/contacts.csv", tag = "customers",
    params(ImportParams),
    request_body(content = String, description = "Header: first_name,last_name,email,phone,company_id", content_type = "text/csv"),
    responses((status = 201, description = "Imported", body = Imported)))]
async fn import_contacts(
    State(st): State<AppState>,
    Q(p): Q<ImportParams>,
    CsvBody(body): CsvBody,
) -> ApiResult<Response> {
    let input: Vec<ContactInput> = parse_rows(&body, CONTACT_COLUMNS)?;
    let mut done = Imported::default();
    let mut tx = st.db.begin_write().await?;
    for (i, c) in input.into_iter().enumerate() {
        let row_error = |e| match e {
            ApiError::Conflict { field } => ApiError::Conflict {
                field: format!("[{}].{field}", i + 1),
            },
            ApiError::Validation { field, message } => ApiError::Validation {
                field: format!("[{}].{field}", i + 1),
                message,
            },
            other => other,
        };
        let on_match = match p.on_duplicate {
            OnDuplicate::Error => {
                store::insert_contact(&mut tx, c).await.map_err(row_error)?;
                done.imported += 1;
                continue;
            }
            OnDuplicate::Skip => OnMatch::Skip,
            OnDuplicate::Update => OnMatch::Update,
        };
        let (outcome, _, _) = upsert_contact_with(&mut tx, c, on_match)
            .await
            .map_err(row_error)?;
        match (outcome, on_match) {
            (Outcome::Created, _) => done.imported += 1,
            (_, OnMatch::Skip) => done.skipped += 1,
            (Outcome::Updated | Outcome::Unchanged, _) => {
                done.imported += 1;
                done.updated += 1;
            }
            (Outcome::Error, _) => {}
        }
    }
    tx.commit().await?;
    // Updated contacts may be cached.
    st.cache.clear();
    Ok((StatusCode::CREATED, axum::Json(done)).into_response())
}
