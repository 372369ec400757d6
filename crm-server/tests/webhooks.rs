//! Webhooks against a real receiver on loopback: subscriptions, signed
//! deliveries from the outbox, retries, and the attempts listed; on both
//! backends.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use common::TestApp;
use crm_server::webhooks::deliver::{self, Settings};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "a-secret-of-some-length";

/// What the receiver saw: headers and raw body of each POST.
type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver on loopback that answers 500 to its first `failures` calls.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let mut l = log.lock().expect("lock");
                l.push((headers, body.to_vec()));
                if l.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn wait_for<F: Fn() -> bool>(what: &str, done: F) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

both!(
    deliveries_are_signed_retried_and_listed,
    |mut app: TestApp| async move {
        let (url, seen) = receiver(2).await;
        let sub = json!({"url": url, "events": ["contact.created", "deal.stage_changed"],
            "secret": SECRET});
        // Loopback is refused unless allowed.
        let r = app
            .call(Method::POST, "/api/v1/webhooks", Some(sub.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.body["field"], "url");
        let settings = Settings {
            allow_private: true,
            retry_base: Duration::from_millis(50),
            ..Settings::default()
        };
        app.state.webhooks = settings;
        app.router = crm_server::app(app.state.clone());
        let r = app.call(Method::POST, "/api/v1/webhooks", Some(sub)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let hook = r.body["id"].as_i64().expect("id");
        let listed = app.call(Method::GET, "/api/v1/webhooks", None).await;
        for raw in [&r.raw, &listed.raw] {
            assert!(!String::from_utf8_lossy(raw).contains(SECRET));
        }
        // The event is queued with the change, before any worker runs.
        let c = json!({"first_name": "Ada", "last_name": "L", "email": "ada@a.io"});
        let r = app.call(Method::POST, "/api/v1/contacts", Some(c)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let worker = deliver::spawn(app.state.db.clone(), settings);
        wait_for("three attempts", || seen.lock().expect("lock").len() >= 3).await;
        {
            let calls = seen.lock().expect("lock");
            let ids: Vec<&str> = calls
                .iter()
                .map(|(h, _)| h["x-crm-delivery"].to_str().expect("id"))
                .collect();
            assert!(ids.iter().all(|i| *i == ids[0]), "one delivery: {ids:?}");
            for (h, body) in calls.iter() {
                assert_eq!(h["x-crm-event"], "contact.created");
                let sig = h["x-crm-signature-256"].to_str().expect("sig");
                assert_eq!(sig, format!("sha256={}", hmac_hex(body)));
                let v: Value = serde_json::from_slice(body).expect("json");
                assert_eq!(v["event"], "contact.created");
                assert_eq!(v["data"]["email"], "ada@a.io");
            }
        }
        let path = format!("/api/v1/webhooks/{hook}/deliveries");
        let mut codes = Vec::new();
        for _ in 0..100 {
            let r = app.call(Method::GET, &path, None).await;
            codes = r.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|a| a["status_code"].as_i64().unwrap_or(0))
                .collect();
            if codes.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(codes, [204, 500, 500], "newest first");
        // A deal changing stage sends deal.stage_changed (not deal.updated,
        // which the subscription did not ask for).
        let d = json!({"title": "D", "amount_minor": 1, "currency": "EUR", "owner": "sam"});
        let r = app.call(Method::POST, "/api/v1/deals", Some(d)).await;
        let deal = r.body["id"].as_i64().expect("deal");
        let r = app
            .call_with(
                Method::PUT,
                &format!("/api/v1/deals/{deal}"),
                Some(json!({"title": "D", "amount_minor": 1, "currency": "EUR",
                    "owner": "sam", "stage": "won"})),
                &[("if-match", "*")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        wait_for("the stage change", || seen.lock().expect("lock").len() >= 4).await;
        {
            let calls = seen.lock().expect("lock");
            assert_eq!(calls.len(), 4, "only the subscribed events");
            let (h, body) = &calls[3];
            assert_eq!(h["x-crm-event"], "deal.stage_changed");
            let v: Value = serde_json::from_slice(body).expect("json");
            assert_eq!(v["data"]["stage"], "won");
        }
        worker.abort();
        let r = app
            .call(Method::DELETE, &format!("/api/v1/webhooks/{hook}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
);

both!(subscriptions_are_validated, |app: TestApp| async move {
    for (body, field) in [
        (
            json!({"url": "ftp://x.io/", "events": ["contact.created"], "secret": SECRET}),
            "url",
        ),
        (
            json!({"url": "https://10.0.0.1/", "events": ["contact.created"], "secret": SECRET}),
            "url",
        ),
        (
            json!({"url": "https://x.io/", "events": ["contact.created"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"url": "https://x.io/", "events": [], "secret": SECRET}),
            "events",
        ),
        (
            json!({"url": "https://x.io/", "events": ["contact.merged"], "secret": SECRET}),
            "events[0]",
        ),
    ] {
        let r = app.call(Method::POST, "/api/v1/webhooks", Some(body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.body["field"], field, "{:?}", r.body);
        assert!(!String::from_utf8_lossy(&r.raw).contains(SECRET));
    }
});

both!(
    a_receiver_that_never_answers_holds_up_no_request,
    |mut app: TestApp| async move {
        // A receiver that accepts every delivery and never answers: each
        // attempt waits for the delivery timeout (10 s) while the API serves.
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let hung = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                log.lock().expect("lock").push((headers, body.to_vec()));
                std::future::pending::<StatusCode>()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, hung).await });
        let settings = Settings {
            allow_private: true,
            ..Settings::default()
        };
        app.state.webhooks = settings;
        app.router = crm_server::app(app.state.clone());
        let sub = json!({"url": url, "events": ["contact.created"], "secret": SECRET});
        let r = app.call(Method::POST, "/api/v1/webhooks", Some(sub)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let worker = deliver::spawn(app.state.db.clone(), settings);
        let contact = |i: usize| {
            json!({"first_name": "Ada", "last_name": format!("L{i}"),
                "email": format!("ada{i}@a.io")})
        };
        for i in 0..12 {
            let r = app
                .call(Method::POST, "/api/v1/contacts", Some(contact(i)))
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        wait_for("deliveries in flight", || {
            !seen.lock().expect("lock").is_empty()
        })
        .await;
        // Every slot of the worker is now stuck on the receiver; writes that
        // queue more events and reads still answer at once.
        for i in 12..24 {
            let call = app.call(Method::POST, "/api/v1/contacts", Some(contact(i)));
            let r = tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .expect("a write waited for the receiver");
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            let read = app.call(Method::GET, "/api/v1/contacts?limit=5", None);
            let r = tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .expect("a read waited for the receiver");
            assert_eq!(r.status, StatusCode::OK);
        }
        worker.abort();
    }
);

both!(
    a_delivery_connects_only_to_addresses_it_checked,
    |mut app: TestApp| async move {
        // Subscriptions made while loopback was allowed; the worker now
        // refuses it. `localhost` passes through the connector's resolver,
        // a literal address through the delivery's own check: neither
        // reaches the receiver.
        let (url, seen) = receiver(0).await;
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/hook");
        app.state.webhooks = Settings {
            allow_private: true,
            ..Settings::default()
        };
        app.router = crm_server::app(app.state.clone());
        let mut hooks = Vec::new();
        for url in [url.clone(), format!("http://localhost:{port}/hook")] {
            let sub = json!({"url": url, "events": ["contact.created"], "secret": SECRET});
            let r = app.call(Method::POST, "/api/v1/webhooks", Some(sub)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            hooks.push(r.body["id"].as_i64().expect("id"));
        }
        let c = json!({"first_name": "Ada", "last_name": "L", "email": "ada@a.io"});
        let r = app.call(Method::POST, "/api/v1/contacts", Some(c)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let settings = Settings {
            allow_private: false,
            max_attempts: 1,
            ..Settings::default()
        };
        let worker = deliver::spawn(app.state.db.clone(), settings);
        for hook in hooks {
            let path = format!("/api/v1/webhooks/{hook}/deliveries");
            let mut attempts = Vec::new();
            for _ in 0..200 {
                let r = app.call(Method::GET, &path, None).await;
                attempts = r.body["items"].as_array().expect("items").clone();
                if !attempts.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(attempts.len(), 1, "hook {hook}: {attempts:?}");
            assert_eq!(attempts[0]["status_code"], Value::Null);
            let error = attempts[0]["error"].as_str().expect("an error");
            assert!(error.contains("loopback"), "hook {hook}: {error}");
        }
        assert!(seen.lock().expect("lock").is_empty(), "nothing delivered");
        worker.abort();
    }
);
