//! The delivery worker: a task of its own that claims due outbox rows,
//! POSTs them signed, records each attempt and schedules retries with
//! exponential backoff and jitter. The API never waits for it, so a slow
//! or dead receiver costs the API nothing; each attempt has a timeout and
//! at most `concurrency` run at once.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Request, header};
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use sqlx::Row;

use super::target;
use crate::db::{Db, Sql, now, timestamp};

/// How deliveries are made.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Deliver to loopback, private and link-local addresses too
    /// (`CRM_WEBHOOK_ALLOW_LOOPBACK`).
    pub allow_private: bool,
    /// Wait before the first retry; doubled for each further one, capped at
    /// an hour, with ±20 % jitter.
    pub retry_base: Duration,
    /// Attempts before a delivery is given up (state `failed`).
    pub max_attempts: i64,
    /// Longest an attempt may take.
    pub timeout: Duration,
    /// Attempts in flight at once.
    pub concurrency: usize,
}

impl Default for Settings {
    /// 8 attempts: retries after about 30 s, 1, 2, 4, 8, 16 and 32 min.
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_base: Duration::from_secs(30),
            max_attempts: 8,
            timeout: Duration::from_secs(10),
            concurrency: 8,
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector<target::Resolver>>, Full<Bytes>>;

/// Start the worker on the runtime.
pub fn spawn(db: Db, settings: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(db, settings))
}

/// Deliver forever.
pub async fn run(db: Db, settings: Settings) {
    let mut http = HttpConnector::new_with_resolver(target::Resolver {
        allow_private: settings.allow_private,
    });
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.timeout));
    let connector = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b.https_or_http().enable_http1().wrap_connector(http),
        Err(e) => {
            tracing::warn!(error = %e, "webhooks: no trusted root certificates; deliveries stay queued");
            return;
        }
    };
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let poll = settings.retry_base.min(Duration::from_secs(1));
    loop {
        match claim_due(&db, &settings).await {
            Ok(due) if !due.is_empty() => {
                futures::stream::iter(due)
                    .for_each_concurrent(settings.concurrency, |d| {
                        attempt(&db, &client, &settings, d)
                    })
                    .await;
            }
            Ok(_) => tokio::time::sleep(poll).await,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: reading the outbox failed");
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// A delivery to attempt. No `Debug`: it holds the secret.
struct Due {
    id: i64,
    webhook_id: i64,
    event: String,
    delivery_id: String,
    payload: String,
    attempts: i64,
    url: String,
    secret: String,
}

/// Due rows, each leased to this worker (for the attempt's timeout plus a
/// minute) so another replica's worker leaves it alone meanwhile.
async fn claim_due(db: &Db, s: &Settings) -> Result<Vec<Due>, sqlx::Error> {
    let mut sql = Sql::new(
        "SELECT o.id, o.webhook_id, o.event, o.delivery_id, o.payload, o.attempts, \
         o.next_attempt_at, w.url, w.secret FROM webhook_outbox o \
         JOIN webhooks w ON w.id = o.webhook_id \
         WHERE o.state = 'pending' AND o.next_attempt_at <= ",
    );
    sql.bind(now())
        .push(" ORDER BY o.next_attempt_at, o.id LIMIT 32");
    let lease = timestamp(jiff::Timestamp::now() + s.timeout + Duration::from_secs(60));
    let mut due = Vec::new();
    for row in sql.fetch_all(&db.pool).await? {
        let id: i64 = row.try_get(0)?;
        let was: String = row.try_get(6)?;
        let mut claim = Sql::new("UPDATE webhook_outbox SET next_attempt_at = ");
        claim.bind(lease.clone()).push(" WHERE id = ").bind(id);
        claim
            .push(" AND state = 'pending' AND next_attempt_at = ")
            .bind(was);
        if claim.execute(&db.pool).await? == 1 {
            due.push(Due {
                id,
                webhook_id: row.try_get(1)?,
                event: row.try_get(2)?,
                delivery_id: row.try_get(3)?,
                payload: row.try_get(4)?,
                attempts: row.try_get(5)?,
                url: row.try_get(7)?,
                secret: row.try_get(8)?,
            });
        }
    }
    Ok(due)
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC takes keys of any length.
        Err(_) => String::new(),
    }
}

async fn send(client: &HttpClient, s: &Settings, d: &Due) -> Result<u16, String> {
    let t = target::parse(&d.url)?;
    target::check_literal(&t, s.allow_private)?;
    let req = Request::post(t.uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "crm-server-webhooks")
        .header("X-CRM-Event", d.event.as_str())
        .header("X-CRM-Delivery", d.delivery_id.as_str())
        .header(
            "X-CRM-Signature-256",
            signature(&d.secret, d.payload.as_bytes()),
        )
        .body(Full::new(Bytes::from(d.payload.clone())))
        .map_err(|e| format!("building the request: {e}"))?;
    let res = tokio::time::timeout(s.timeout, client.request(req))
        .await
        .map_err(|_| format!("no answer within {} s", s.timeout.as_secs_f64()))?
        .map_err(|e| format!("request failed: {}", chain(&e)))?;
    Ok(res.status().as_u16())
}

/// An error with its causes, outermost first: the client's own error says
/// only "client error (Connect)".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

async fn attempt(db: &Db, client: &HttpClient, s: &Settings, d: Due) {
    let n = d.attempts + 1;
    let started = Instant::now();
    let outcome = send(client, s, &d).await;
    let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let delivered = matches!(outcome, Ok(code) if (200..300).contains(&code));
    let (code, error) = match outcome {
        Ok(c) => (Some(i64::from(c)), None),
        Err(e) => (None, Some(e)),
    };
    if let Err(e) = record(db, s, &d, n, code, error, ms, delivered).await {
        // The lease runs out and the attempt is made again: at least once.
        tracing::warn!(error = %e, delivery = %d.delivery_id, "webhooks: recording an attempt failed");
    }
}

#[allow(clippy::too_many_arguments)]
async fn record(
    db: &Db,
    s: &Settings,
    d: &Due,
    n: i64,
    code: Option<i64>,
    error: Option<String>,
    ms: i64,
    delivered: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let mut sql = Sql::new(
        "INSERT INTO webhook_attempts (webhook_id, delivery_id, event, attempt, status_code, \
         error, duration_ms, attempted_at) VALUES (",
    );
    sql.bind(d.webhook_id)
        .push(", ")
        .bind(d.delivery_id.as_str())
        .push(", ");
    sql.bind(d.event.as_str()).push(", ").bind(n).push(", ");
    sql.bind(code).push(", ").bind(error).push(", ").bind(ms);
    sql.push(", ").bind(now()).push(")");
    sql.execute(&mut *tx).await?;
    let state = if delivered {
        "delivered"
    } else if n >= s.max_attempts {
        "failed"
    } else {
        "pending"
    };
    let mut sql = Sql::new("UPDATE webhook_outbox SET state = ");
    sql.bind(state)
        .push(", attempts = ")
        .bind(n)
        .push(", next_attempt_at = ");
    sql.bind(timestamp(jiff::Timestamp::now() + backoff(s.retry_base, n)));
    sql.push(" WHERE id = ").bind(d.id);
    sql.execute(&mut *tx).await?;
    tx.commit().await
}

/// Wait after attempt `n` failed: `base * 2^(n-1)`, at most an hour, times
/// a random factor in [0.8, 1.2) so failed receivers are not hit in step.
pub fn backoff(base: Duration, n: i64) -> Duration {
    let exp = u32::try_from(n.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let plain = base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(Duration::from_secs(3600));
    let mut r = [0u8; 2];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) => 0.8 + 0.4 * f64::from(u16::from_le_bytes(r)) / 65536.0,
        Err(_) => 1.0,
    };
    plain.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_span_more_than_ten_minutes_in_five_attempts_or_more() {
        let s = Settings::default();
        let total: Duration = (1..s.max_attempts).map(|n| backoff(s.retry_base, n)).sum();
        assert!(s.max_attempts >= 5);
        assert!(total >= Duration::from_secs(600), "{total:?}");
        for n in 1..30 {
            assert!(backoff(s.retry_base, n) <= Duration::from_secs(3600).mul_f64(1.2));
        }
    }
}
