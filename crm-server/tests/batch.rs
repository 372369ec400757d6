//! Batch upserts with Idempotency-Key, duplicates, merge, and CSV import's
//! onDuplicate, on both backends.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{Res, TestApp};
use serde_json::{Value, json};

fn person(first: &str, email: &str) -> Value {
    json!({"first_name": first, "last_name": "Lovelace", "email": email})
}

async fn post(app: &TestApp, path: &str, body: Value) -> Res {
    app.call(Method::POST, path, Some(body)).await
}

async fn count(app: &TestApp, path: &str) -> usize {
    let r = app.call(Method::GET, path, None).await;
    r.body["items"].as_array().map_or(0, Vec::len)
}

both!(
    contact_batch_creates_updates_leaves_and_reports_each_item,
    |app: TestApp| async move {
        let r = post(&app, "/api/v1/contacts", person("Ada", "ada@acme.io")).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let ada = r.body["id"].as_i64().expect("id");
        post(&app, "/api/v1/contacts", person("Grace", "grace@acme.io")).await;
        let body = json!({"matchOn": "email", "items": [
            person("Alan", "alan@acme.io"),
            person("Augusta Ada", "ADA@Acme.io"),
            person("Grace", "grace@acme.io"),
            {"first_name": "Bad", "last_name": "Email", "email": "nope"},
            {"first_name": "No", "last_name": "Company", "email": "n@c.io", "company_id": 999},
            person("Linus", "linus@acme.io"),
        ]});
        let r = post(&app, "/api/v1/contacts/batch", body).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let results: Vec<&str> = r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["result"].as_str().expect("result"))
            .collect();
        assert_eq!(
            results,
            [
                "created",
                "updated",
                "unchanged",
                "error",
                "error",
                "created"
            ]
        );
        assert_eq!(r.body["items"][1]["id"], ada);
        assert_eq!(r.body["items"][1]["version"], 2);
        assert_eq!(r.body["items"][3]["field"], "items[3].email");
        assert_eq!(r.body["items"][4]["field"], "items[4].company_id");
        assert_eq!(
            (r.body["created"].as_u64(), r.body["errors"].as_u64()),
            (Some(2), Some(2))
        );
        let got = app
            .call(Method::GET, &format!("/api/v1/contacts/{ada}"), None)
            .await;
        assert_eq!(got.body["first_name"], "Augusta Ada");
        // The failed items left nothing behind, the others were kept.
        assert_eq!(count(&app, "/api/v1/contacts?limit=200").await, 4);
    }
);

both!(
    company_batch_matches_domain_ignoring_case,
    |app: TestApp| async move {
        let r = post(
            &app,
            "/api/v1/companies",
            json!({"name": "Acme", "domain": "Acme.io"}),
        )
        .await;
        let acme = r.body["id"].as_i64().expect("id");
        let body = json!({"items": [
            {"name": "Acme Corp", "domain": "acme.IO"},
            {"name": "Globex", "domain": "globex.com", "industry": "energy"},
            {"name": "No domain"},
        ]});
        let r = post(&app, "/api/v1/companies/batch", body).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["items"][0]["result"], "updated");
        assert_eq!(r.body["items"][0]["id"], acme);
        assert_eq!(r.body["items"][1]["result"], "created");
        assert_eq!(r.body["items"][2]["result"], "error");
        assert_eq!(r.body["items"][2]["field"], "items[2].domain");
    }
);

both!(
    batch_refuses_more_than_500_items,
    |app: TestApp| async move {
        let items: Vec<Value> = (0..501)
            .map(|i| person("A", &format!("a{i}@x.io")))
            .collect();
        let r = post(&app, "/api/v1/contacts/batch", json!({"items": items})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["field"], "items");
        let r = post(
            &app,
            "/api/v1/contacts/batch",
            json!({"matchOn": "domain", "items": []}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["field"], "matchOn");
        assert_eq!(count(&app, "/api/v1/contacts").await, 0);
    }
);

both!(
    idempotency_key_replays_the_first_answer_and_refuses_another_body,
    |app: TestApp| async move {
        let body = json!({"items": [person("Ada", "ada@acme.io")]});
        let send = |body: Value, key: &'static str| {
            let app = &app;
            async move {
                app.call_with(
                    Method::POST,
                    "/api/v1/contacts/batch",
                    Some(body),
                    &[("idempotency-key", key)],
                )
                .await
            }
        };
        let first = send(body.clone(), "k-1").await;
        assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
        assert_eq!(first.body["items"][0]["result"], "created");
        // Changed meanwhile: a replay must not write it back.
        let id = first.body["items"][0]["id"].as_i64().expect("id");
        let path = format!("/api/v1/contacts/{id}");
        let changed = json!({"first_name": "Changed", "last_name": "L", "email": "ada@acme.io"});
        let r = app
            .call_with(Method::PUT, &path, Some(changed), &[("if-match", "*")])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let again = send(body.clone(), "k-1").await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body, first.body, "the first answer, again");
        assert_eq!(again.headers["idempotent-replayed"], "true");
        let got = app.call(Method::GET, &path, None).await;
        assert_eq!(got.body["first_name"], "Changed", "nothing written again");
        assert_eq!(got.body["version"], 2);
        let other = send(json!({"items": [person("Grace", "g@acme.io")]}), "k-1").await;
        assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(other.body["field"], "Idempotency-Key");
        assert_eq!(count(&app, "/api/v1/contacts").await, 1);
        // Without a key, the same body is simply run again.
        let plain = post(&app, "/api/v1/contacts/batch", body).await;
        assert_eq!(plain.body["items"][0]["result"], "updated");
        let bad = send(json!({"items": []}), "has space").await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
);

both!(
    duplicates_are_grouped_by_email_phone_and_name_at_company,
    |app: TestApp| async move {
        let co = post(&app, "/api/v1/companies", json!({"name": "Acme"})).await;
        let co = co.body["id"].as_i64().expect("id");
        let make = |first: &str, last: &str, email: &str, phone: Option<&str>, company| {
            json!({"first_name": first, "last_name": last, "email": email,
                "phone": phone, "company_id": company})
        };
        for b in [
            make(
                "Ada",
                "Lovelace",
                "ada@a.io",
                Some("+44 20 7946-0000"),
                None,
            ),
            make("Augusta", "King", "aking@b.io", Some("442079460000"), None),
            make("Grace", "Hopper", "grace@a.io", None, Some(co)),
            make("grace", "HOPPER", "gh@b.io", None, Some(co)),
            make("Grace", "Hopper", "gh@c.io", None, None),
            make("Alan", "Turing", "alan@a.io", Some("555"), None),
        ] {
            assert_eq!(
                post(&app, "/api/v1/contacts", b).await.status,
                StatusCode::CREATED
            );
        }
        let r = app
            .call(Method::GET, "/api/v1/contacts/duplicates", None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let groups = r.body["groups"].as_array().expect("groups");
        let summary: Vec<(String, Vec<String>)> = groups
            .iter()
            .map(|g| {
                let emails = g["contacts"]
                    .as_array()
                    .expect("contacts")
                    .iter()
                    .map(|c| c["email"].as_str().expect("email").to_string())
                    .collect();
                (g["reason"].as_str().expect("reason").to_string(), emails)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "phone".to_string(),
                    vec!["ada@a.io".into(), "aking@b.io".into()]
                ),
                (
                    "name_and_company".to_string(),
                    vec!["grace@a.io".into(), "gh@b.io".into()]
                ),
            ]
        );
    }
);

both!(
    merge_moves_everything_to_the_survivor_in_one_go,
    |app: TestApp| async move {
        let c = |first: &str, email: &str| post(&app, "/api/v1/contacts", person(first, email));
        let keep = c("Ada", "ada@a.io").await.body["id"].as_i64().expect("id");
        let dup = c("Ada", "ada@b.io").await.body["id"].as_i64().expect("id");
        let dup2 = c("Ada", "ada@c.io").await.body["id"].as_i64().expect("id");
        post(
            &app,
            &format!("/api/v1/contacts/{dup}/notes"),
            json!({"body": "called"}),
        )
        .await;
        let deal = json!({"title": "Deal", "contact_id": dup2, "amount_minor": 100,
            "currency": "EUR", "owner": "sam"});
        let deal = post(&app, "/api/v1/deals", deal).await.body["id"]
            .as_i64()
            .expect("deal");
        let ticket = json!({"subject": "Help", "contact_id": dup});
        let ticket = post(&app, "/api/v1/tickets", ticket).await.body["id"]
            .as_i64()
            .expect("ticket");
        let camp = json!({"name": "Spring", "channel": "email", "budget_minor": 1,
            "currency": "EUR"});
        let camp = post(&app, "/api/v1/campaigns", camp).await.body["id"]
            .as_i64()
            .expect("campaign");
        for (who, response) in [(keep, "opened"), (dup, "converted"), (dup2, "pending")] {
            let path = format!("/api/v1/campaigns/{camp}/members/{who}");
            let r = app
                .call(Method::PUT, &path, Some(json!({"response": response})))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
        // A subscriber to updates hears of the deal and ticket that change
        // owner (the URL is never reached: the outbox row is what counts).
        let hook = json!({"url": "https://crm.example/hook", "secret": "s3cret-s3cret-s3cret",
            "events": ["deal.updated", "ticket.updated"]});
        let r = post(&app, "/api/v1/webhooks", hook).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        // A missing contact refuses the whole merge, naming it.
        let merge = format!("/api/v1/contacts/{keep}/merge");
        let r = post(&app, &merge, json!({"from": [dup, 9999]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["field"], "from[1]");
        let r = post(&app, &merge, json!({"from": [keep]})).await;
        assert_eq!(r.body["field"], "from[0]");
        let r = post(&app, &merge, json!({"from": [dup, dup2]})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["id"], keep);
        for gone in [dup, dup2] {
            let r = app
                .call(Method::GET, &format!("/api/v1/contacts/{gone}"), None)
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND);
        }
        assert_eq!(
            count(&app, &format!("/api/v1/contacts/{keep}/notes")).await,
            1
        );
        let d = app
            .call(Method::GET, &format!("/api/v1/deals/{deal}"), None)
            .await;
        assert_eq!(d.body["contact_id"], keep);
        assert_eq!(d.body["version"], 2, "a moved deal is a new version");
        let t = app
            .call(Method::GET, &format!("/api/v1/tickets/{ticket}"), None)
            .await;
        assert_eq!(t.body["contact_id"], keep);
        assert_eq!(t.body["version"], 2, "a moved ticket is a new version");
        let events: Vec<(String, String)> =
            sqlx::query_as("SELECT event, payload FROM webhook_outbox ORDER BY id")
                .fetch_all(&app.state.db.pool)
                .await
                .expect("outbox");
        let moved: Vec<(&str, i64)> = events
            .iter()
            .map(|(e, p)| {
                let v: serde_json::Value = serde_json::from_str(p).expect("payload");
                assert_eq!(v["data"]["contact_id"], keep, "{e}: {p}");
                (e.as_str(), v["data"]["id"].as_i64().expect("id"))
            })
            .collect();
        assert_eq!(moved, [("ticket.updated", ticket), ("deal.updated", deal)]);
        let m = app
            .call(
                Method::GET,
                &format!("/api/v1/campaigns/{camp}/members"),
                None,
            )
            .await;
        let members = m.body["items"].as_array().expect("members");
        assert_eq!(members.len(), 1);
        assert_eq!(members[0]["contact_id"], keep);
        assert_eq!(members[0]["response"], "opened");
    }
);

both!(
    csv_import_skips_updates_or_refuses_taken_emails,
    |app: TestApp| async move {
        post(&app, "/api/v1/contacts", person("Ada", "ada@a.io")).await;
        let csv = b"first_name,last_name,email\nAugusta,King,ADA@a.io\nGrace,Hopper,g@a.io\n";
        let r = app
            .post_raw("/api/v1/contacts.csv", "text/csv", csv.to_vec())
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.body["field"], "[1].email");
        let r = app
            .post_raw(
                "/api/v1/contacts.csv?onDuplicate=skip",
                "text/csv",
                csv.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.body, json!({"imported": 1, "updated": 0, "skipped": 1}));
        let csv = b"first_name,last_name,email\nAugusta,King,ADA@a.io\nGrace,Hopper,g@a.io\n";
        let r = app
            .post_raw(
                "/api/v1/contacts.csv?onDuplicate=update",
                "text/csv",
                csv.to_vec(),
            )
            .await;
        assert_eq!(r.body, json!({"imported": 2, "updated": 2, "skipped": 0}));
        let list = app.call(Method::GET, "/api/v1/contacts?q=ada", None).await;
        assert_eq!(list.body["items"][0]["first_name"], "Augusta");
        let r = app
            .post_raw(
                "/api/v1/contacts.csv?onDuplicate=merge",
                "text/csv",
                csv.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
);
