//! Sales, notes, service, marketing and reports, on both backends.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use crm_server::config::Modules;
use serde_json::{Value, json};

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app.call(Method::POST, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
    r.body
}

fn deal_body(stage: &str, amount: i64) -> Value {
    json!({"title": "Big deal", "stage": stage, "amount_minor": amount, "currency": "EUR",
        "expected_close": "2026-12-31", "owner": "sam"})
}

both!(deals_orders_and_notes, |app: TestApp| async move {
    let deal = post(&app, "/api/v1/deals", deal_body("lead", 1000)).await;
    let id = deal["id"].as_i64().expect("id");
    let path = format!("/api/v1/deals/{id}");
    let r = app.call(Method::POST, &format!("{path}/order"), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "only won deals");
    let got = app.call(Method::GET, &path, None).await;
    let won = app
        .call_with(
            Method::PUT,
            &path,
            Some(deal_body("won", 1500)),
            &[("if-match", &got.etag())],
        )
        .await;
    assert_eq!(won.status, StatusCode::OK, "{:?}", won.body);
    assert!(won.body["closed_at"].is_string());
    let order = app.call(Method::POST, &format!("{path}/order"), None).await;
    assert_eq!(order.status, StatusCode::CREATED);
    assert_eq!(order.body["amount_minor"], 1500);
    let again = app.call(Method::POST, &format!("{path}/order"), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let orders = app.call(Method::GET, "/api/v1/orders", None).await;
    assert_eq!(orders.body["items"].as_array().map(Vec::len), Some(1));
    post(
        &app,
        &format!("{path}/notes"),
        json!({"kind": "call", "body": "Called them"}),
    )
    .await;
    post(
        &app,
        &format!("{path}/notes"),
        json!({"body": "Sent offer"}),
    )
    .await;
    let notes = app.call(Method::GET, &format!("{path}/notes"), None).await;
    assert_eq!(notes.body["items"][0]["body"], "Sent offer", "newest first");
    let r = app.call(Method::GET, "/api/v1/deals?stage=won", None).await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
    let r = app
        .call(Method::GET, "/api/v1/deals?stage=bogus", None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = json!({"title": "x", "amount_minor": -5, "currency": "eur", "owner": "a"});
    let r = app.call(Method::POST, "/api/v1/deals", Some(bad)).await;
    assert_eq!(r.body["field"], "amount_minor");
    let r = app
        .call(
            Method::POST,
            "/api/v1/contacts/999/notes",
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
});

both!(tickets_and_feedback, |app: TestApp| async move {
    let t = post(
        &app,
        "/api/v1/tickets",
        json!({"subject": "Broken", "priority": "high"}),
    )
    .await;
    let id = t["id"].as_i64().expect("id");
    assert_eq!(t["status"], "open");
    let path = format!("/api/v1/tickets/{id}");
    let etag = app.call(Method::GET, &path, None).await.etag();
    let body = json!({"subject": "Broken", "priority": "high", "status": "resolved"});
    let r = app
        .call_with(Method::PUT, &path, Some(body), &[("if-match", &etag)])
        .await;
    assert!(r.body["resolved_at"].is_string(), "{:?}", r.body);
    let fb = json!({"rating": 6});
    let r = app
        .call(Method::PUT, &format!("{path}/feedback"), Some(fb))
        .await;
    assert_eq!(r.body["field"], "rating");
    let fb = json!({"rating": 4, "comment": "Quick fix"});
    let r = app
        .call(Method::PUT, &format!("{path}/feedback"), Some(fb))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    post(&app, "/api/v1/tickets", json!({"subject": "Another"})).await;
    let stats = app
        .call(Method::GET, "/api/v1/reports/tickets", None)
        .await
        .body;
    assert_eq!(stats["open"], 1);
    assert_eq!(stats["resolved"], 1);
    assert_eq!(stats["average_rating"], 4.0);
    assert!(stats["mean_seconds_to_resolve"].as_f64().is_some());
    let r = app
        .call(Method::GET, "/api/v1/tickets?status=open", None)
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
});

both!(campaigns_members_and_reports, |app: TestApp| async move {
    let body = json!({"name": "Spring", "channel": "email", "budget_minor": 50000,
        "currency": "EUR", "starts_on": "2026-03-01", "ends_on": "2026-03-31"});
    let c = post(&app, "/api/v1/campaigns", body).await;
    let id = c["id"].as_i64().expect("id");
    let bad = json!({"name": "x", "channel": "email", "budget_minor": 1, "currency": "EUR",
        "starts_on": "2026-03-02", "ends_on": "2026-03-01"});
    let r = app.call(Method::POST, "/api/v1/campaigns", Some(bad)).await;
    assert_eq!(r.body["field"], "ends_on");
    for (i, resp) in ["converted", "sent", "responded"].iter().enumerate() {
        let ct = post(
            &app,
            "/api/v1/contacts",
            json!({"first_name": "A", "last_name": "B",
            "email": format!("m{i}@x.io")}),
        )
        .await;
        let cid = ct["id"].as_i64().expect("id");
        let path = format!("/api/v1/campaigns/{id}/members/{cid}");
        let r = app
            .call(Method::PUT, &path, Some(json!({"response": resp})))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/campaigns/{id}/members/999"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let m = app
        .call(
            Method::GET,
            &format!("/api/v1/campaigns/{id}/members"),
            None,
        )
        .await;
    assert_eq!(m.body["items"].as_array().map(Vec::len), Some(3));
    let rep = app
        .call(Method::GET, "/api/v1/reports/campaigns", None)
        .await
        .body;
    assert_eq!(rep[0]["members"], 3);
    assert_eq!(rep[0]["converted"], 1);
    assert_eq!(rep[0]["responded"], 2);
    post(&app, "/api/v1/deals", deal_body("won", 700)).await;
    post(&app, "/api/v1/deals", deal_body("won", 300)).await;
    post(&app, "/api/v1/deals", deal_body("lead", 5)).await;
    let p = app
        .call(Method::GET, "/api/v1/reports/pipeline", None)
        .await
        .body;
    let won = p
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["stage"] == "won")
        .cloned();
    assert_eq!(
        won.map(|w| (w["count"].clone(), w["total_minor"].clone())),
        Some((json!(2), json!(1000)))
    );
    let rev = app
        .call(Method::GET, "/api/v1/reports/revenue", None)
        .await
        .body;
    assert_eq!(rev[0]["total_minor"], 1000);
    assert_eq!(rev[0]["month"].as_str().map(str::len), Some(7));
});

#[tokio::test]
async fn disabled_module_is_404_problem() {
    let modules = Modules::parse("customers").expect("modules");
    let app = TestApp::with_modules(Backend::Sqlite, modules).await;
    let r = app.call(Method::GET, "/api/v1/deals", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.is_problem());
    assert_eq!(
        app.call(Method::GET, "/api/v1/contacts", None).await.status,
        StatusCode::OK
    );
    assert!(Modules::parse("customers,bogus").is_err());
}

both!(
    keyset_pages_survive_deletes_and_nulls,
    |app: TestApp| async move {
        for i in 0..7 {
            let mut body = deal_body("lead", i);
            if i % 2 == 0 {
                body["expected_close"] = json!(null);
            }
            post(&app, "/api/v1/deals", body).await;
        }
        let mut seen = Vec::new();
        let mut url = "/api/v1/deals?sort=expected_close&limit=2".to_string();
        let mut first = true;
        loop {
            let r = app.call(Method::GET, &url, None).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            for d in r.body["items"].as_array().expect("items") {
                seen.push(d["id"].as_i64().expect("id"));
            }
            if first {
                // Deleting a row already seen must not shift later pages.
                let del = app
                    .call(Method::DELETE, &format!("/api/v1/deals/{}", seen[0]), None)
                    .await;
                assert_eq!(del.status, StatusCode::NO_CONTENT);
                first = false;
            }
            match r.body["next_cursor"].as_str() {
                Some(c) => url = format!("/api/v1/deals?sort=expected_close&limit=2&cursor={c}"),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 7, "every row exactly once: {seen:?}");
        let r = app.call(Method::GET, "/api/v1/deals?limit=2", None).await;
        let c = r.body["next_cursor"].as_str().expect("cursor").to_string();
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/deals?sort=-id&cursor={c}"),
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor from another sort"
        );
    }
);
