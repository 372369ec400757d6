//! `Idempotency-Key`: a client that retries a write with the same key and
//! body gets the first answer again and nothing is written twice; the same
//! key with another body is a 422. The answer is stored in the transaction
//! that made the writes, so either both are kept or neither.

use std::future::Future;
use std::pin::Pin;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::db::{Db, Sql, now};
use crate::error::{ApiError, ApiResult};

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// What a key may be: 1 to 255 visible ASCII characters.
pub const PATTERN: &str = "^[!-~]{1,255}$";
/// How long an answer is kept for replay.
const KEEP_SECS: i64 = 24 * 3600;

/// The work a keyed request does in its transaction: the status and body
/// of its answer.
pub type Work<'c> = Pin<Box<dyn Future<Output = ApiResult<(StatusCode, Value)>> + Send + 'c>>;

/// The key of a request, if it sent one (422 when malformed).
pub fn key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid(HEADER, "must be 1 to 255 visible ASCII characters");
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_string()))
}

/// Run `work` in a transaction, once per `key` of `scope` (a route): a
/// repeated key with the same `body` answers what the first call answered.
pub async fn run<F>(
    db: &Db,
    scope: &'static str,
    key: Option<String>,
    body: &[u8],
    work: F,
) -> ApiResult<Response>
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> Work<'c>,
{
    let pool = &db.pool;
    let digest = hex::encode(Sha256::digest(body));
    if let Some(k) = &key
        && let Some(stored) = find(&mut *pool.acquire().await?, scope, k).await?
    {
        return replay(stored, &digest);
    }
    let mut tx = db.begin_write().await?;
    if let Some(k) = &key
        && !claim(&mut tx, scope, k, &digest).await?
    {
        // Another request with this key committed first.
        tx.rollback().await?;
        return match find(&mut *pool.acquire().await?, scope, k).await? {
            Some(stored) => replay(stored, &digest),
            None => Err(ApiError::Conflict {
                field: HEADER.into(),
            }),
        };
    }
    let (status, value) = work(&mut tx).await?;
    let text = value.to_string();
    if let Some(k) = &key {
        let mut sql = Sql::new("UPDATE idempotency_keys SET status = ");
        sql.bind(i64::from(status.as_u16()))
            .push(", response = ")
            .bind(text.clone());
        sql.push(" WHERE scope = ")
            .bind(scope)
            .push(" AND idempotency_key = ")
            .bind(k.clone());
        sql.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(json_response(status, text, false))
}

struct Stored {
    digest: String,
    status: i64,
    response: String,
}

async fn find(conn: &mut AnyConnection, scope: &str, key: &str) -> ApiResult<Option<Stored>> {
    let mut sql =
        Sql::new("SELECT request_sha256, status, response FROM idempotency_keys WHERE scope = ");
    sql.bind(scope)
        .push(" AND idempotency_key = ")
        .bind(key)
        .push(" AND status > 0");
    let Some(row) = sql.fetch_optional(conn).await? else {
        return Ok(None);
    };
    use sqlx::Row;
    Ok(Some(Stored {
        digest: row.try_get(0)?,
        status: row.try_get(1)?,
        response: row.try_get(2)?,
    }))
}

/// Take the key for this request; false when another request holds it.
/// Expired keys are dropped on the way.
async fn claim(conn: &mut AnyConnection, scope: &str, key: &str, digest: &str) -> ApiResult<bool> {
    let cutoff = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(KEEP_SECS))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    let mut purge = Sql::new("DELETE FROM idempotency_keys WHERE created_at < ");
    purge.bind(cutoff);
    purge.execute(&mut *conn).await?;
    let mut sql = Sql::new(
        "INSERT INTO idempotency_keys (scope, idempotency_key, request_sha256, status, \
         response, created_at) VALUES (",
    );
    sql.bind(scope).push(", ").bind(key).push(", ").bind(digest);
    sql.push(", 0, '', ")
        .bind(now())
        .push(") ON CONFLICT DO NOTHING");
    Ok(sql.execute(conn).await? == 1)
}

fn replay(stored: Stored, digest: &str) -> ApiResult<Response> {
    if stored.digest != digest {
        return Err(ApiError::invalid(
            HEADER,
            "was already used with a different request body",
        ));
    }
    let status = u16::try_from(stored.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::Internal("stored status out of range".into()))?;
    Ok(json_response(status, stored.response, true))
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}
