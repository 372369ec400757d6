//! Storage helpers shared by the modules: single-row decoding, optimistic
//! concurrency (versioned writes) and common filters.
//!
//! Storage functions take a connection (`&mut AnyConnection`): a pooled
//! one (`&mut *pool.acquire().await?`) or a transaction's (`&mut *tx`), so
//! one transaction can span several of them.

use sqlx::AnyConnection;

use crate::db::Sql;
use crate::domain::Date;
use crate::error::{ApiError, ApiResult, db_error};

/// Append created_at date-range conditions.
pub fn date_range(sql: &mut Sql, from: Option<&str>, to: Option<&str>) -> ApiResult<()> {
    if let Some(f) = from {
        let d = Date::parse(f).map_err(|m| ApiError::invalid("created_from", m))?;
        sql.push(" AND created_at >= ").bind(d.as_str());
    }
    if let Some(t) = to {
        let d = Date::parse(t).map_err(|m| ApiError::invalid("created_to", m))?;
        // Inclusive: everything before the next day starts.
        sql.push(" AND created_at < ")
            .bind(format!("{}T99", d.as_str()));
    }
    Ok(())
}

/// Name the field of a foreign-key violation.
pub fn fk_field(e: ApiError, field: &str) -> ApiError {
    match e {
        ApiError::Validation { field: f, message } if f.is_empty() => ApiError::Validation {
            field: field.to_string(),
            message,
        },
        other => other,
    }
}

/// Decode exactly one row or answer 404.
pub fn one<T>(row: Option<sqlx::any::AnyRow>) -> ApiResult<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    let row = row.ok_or(ApiError::NotFound)?;
    T::from_row(&row).map_err(ApiError::Database)
}

/// Restrict an UPDATE/DELETE to the expected version, and return the row.
pub fn versioned(sql: &mut Sql, expected: Option<i64>) {
    if let Some(v) = expected {
        sql.push(" AND version = ").bind(v);
    }
    sql.push(" RETURNING *");
}

/// After a versioned write matched nothing: 412 if the row exists, else 404.
pub async fn stale_or_missing<T>(
    conn: &mut AnyConnection,
    table: &'static str,
    id: i64,
    row: Option<sqlx::any::AnyRow>,
) -> ApiResult<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    if row.is_some() {
        return one(row);
    }
    let mut sql = Sql::new("SELECT id FROM ");
    sql.push(table).push(" WHERE id = ").bind(id);
    match sql.fetch_optional(conn).await? {
        Some(_) => Err(ApiError::PreconditionFailed),
        None => Err(ApiError::NotFound),
    }
}

/// Delete a versioned row; the expected version (If-Match) is optional
/// here but honoured.
pub async fn delete_row(
    conn: &mut AnyConnection,
    delete: &'static str,
    table: &'static str,
    id: i64,
    expected: Option<i64>,
) -> ApiResult<()> {
    let mut sql = Sql::new(delete);
    sql.bind(id);
    versioned(&mut sql, expected);
    let row = sql
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db_error(e, "id"))?;
    stale_or_missing::<IdOnly>(conn, table, id, row).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct IdOnly {
    #[allow(dead_code)]
    id: i64,
}
