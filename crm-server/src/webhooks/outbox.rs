//! The outbox: events written in the transaction of the change they
//! describe, one row per subscription that asked for them.

use serde::Serialize;
use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::Event;
use crate::db::{Sql, now};
use crate::error::{ApiError, ApiResult};

/// Queue `event` about `data` for every subscription to it. Call it on the
/// connection (transaction) that made the change.
pub async fn record<T: Serialize>(
    conn: &mut AnyConnection,
    event: Event,
    data: &T,
) -> ApiResult<()> {
    let name = event.as_str();
    let mut sql = Sql::new("SELECT id FROM webhooks WHERE events LIKE ");
    sql.bind(format!("%,{name},%"));
    let subscribers: Vec<i64> = sql
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    if subscribers.is_empty() {
        return Ok(());
    }
    let ts = now();
    for webhook in subscribers {
        let delivery = delivery_id()?;
        let payload = json!({
            "id": delivery,
            "event": name,
            "occurred_at": ts,
            "data": data,
        });
        let mut sql = Sql::new(
            "INSERT INTO webhook_outbox (webhook_id, event, delivery_id, payload, state, \
             attempts, next_attempt_at, created_at) VALUES (",
        );
        sql.bind(webhook).push(", ").bind(name).push(", ");
        sql.bind(delivery)
            .push(", ")
            .bind(payload.to_string())
            .push(", 'pending', 0, ");
        sql.bind(ts.clone()).push(", ").bind(ts.clone()).push(")");
        sql.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A unique delivery id: 128 random bits as hex.
fn delivery_id() -> ApiResult<String> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| ApiError::Internal(format!("random id: {e}")))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::super::{EVENTS, Event};

    #[test]
    fn event_names_match_their_wire_names() {
        for name in EVENTS {
            let e: Event = serde_json::from_value(serde_json::json!(name)).expect(name);
            assert_eq!(e.as_str(), *name);
        }
    }
}
