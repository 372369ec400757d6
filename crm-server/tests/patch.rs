//! PATCH with a JSON merge patch and If-Match on the main entities.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Res, TestApp};
use serde_json::{Value, json};

const MERGE_PATCH: &str = "application/merge-patch+json";

async fn patch(app: &TestApp, path: &str, if_match: Option<&str>, ct: &str, body: Value) -> Res {
    let mut b = Request::builder()
        .method(Method::PATCH)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", common::KEY))
        .header(header::CONTENT_TYPE, ct);
    if let Some(v) = if_match {
        b = b.header(header::IF_MATCH, v);
    }
    app.send(b.body(Body::from(body.to_string())).expect("request"))
        .await
}

both!(
    patch_changes_only_what_it_names_and_checks_the_version,
    |app: TestApp| async move {
        let c = app
            .call(
                Method::POST,
                "/api/v1/contacts",
                Some(json!({"first_name": "Ada", "last_name": "Lovelace",
                    "email": "ada@acme.io", "phone": "+44 1"})),
            )
            .await;
        let path = format!("/api/v1/contacts/{}", c.body["id"]);
        let etag = c.etag();
        let r = patch(
            &app,
            &path,
            Some(&etag),
            MERGE_PATCH,
            json!({"last_name": "King"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["last_name"], "King");
        assert_eq!(r.body["first_name"], "Ada", "untouched");
        assert_eq!(r.body["phone"], "+44 1", "untouched");
        assert_ne!(r.etag(), etag, "a new version");
        let stale = patch(
            &app,
            &path,
            Some(&etag),
            MERGE_PATCH,
            json!({"first_name": "X"}),
        )
        .await;
        assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
        let none = patch(&app, &path, None, MERGE_PATCH, json!({"first_name": "X"})).await;
        assert_eq!(none.status, StatusCode::PRECONDITION_REQUIRED);
        let json_ct = patch(&app, &path, Some(&r.etag()), "application/json", json!({})).await;
        assert_eq!(json_ct.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        // null removes an optional field; on a required one it is a named 422.
        let cleared = patch(
            &app,
            &path,
            Some(&r.etag()),
            MERGE_PATCH,
            json!({"phone": null}),
        )
        .await;
        assert_eq!(cleared.status, StatusCode::OK, "{:?}", cleared.body);
        assert!(cleared.body["phone"].is_null());
        let etag = cleared.etag();
        for (body, field) in [
            (json!({"email": null}), "email"),
            (json!({"email": "not-an-email"}), "email"),
            (json!({"nickname": "Al"}), "nickname"),
            (json!({"company_id": 999_999}), "company_id"),
        ] {
            let r = patch(&app, &path, Some(&etag), MERGE_PATCH, body.clone()).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {:?}",
                r.body
            );
            assert_eq!(r.body["field"], field, "{body}");
        }
        let not_object = patch(&app, &path, Some(&etag), MERGE_PATCH, json!([1])).await;
        assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);
        let got = app.call(Method::GET, &path, None).await;
        assert_eq!(got.etag(), etag, "refused patches wrote nothing");
        assert_eq!(got.body["email"], "ada@acme.io");
        let any = patch(
            &app,
            &path,
            Some("*"),
            MERGE_PATCH,
            json!({"first_name": "Augusta"}),
        )
        .await;
        assert_eq!(any.status, StatusCode::OK);
        let missing = patch(
            &app,
            "/api/v1/contacts/999999",
            Some("*"),
            MERGE_PATCH,
            json!({}),
        )
        .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
);

both!(
    every_main_entity_takes_a_merge_patch,
    |app: TestApp| async move {
        let creates = [
            (
                "/api/v1/companies",
                json!({"name": "Acme"}),
                json!({"industry": "tools"}),
            ),
            (
                "/api/v1/deals",
                json!({"title": "Rollout", "amount_minor": 100, "currency": "EUR", "owner": "sam"}),
                json!({"stage": "won"}),
            ),
            (
                "/api/v1/tickets",
                json!({"subject": "Login"}),
                json!({"priority": "urgent"}),
            ),
            (
                "/api/v1/campaigns",
                json!({"name": "Spring", "channel": "email", "budget_minor": 5,
                    "currency": "EUR", "starts_on": "2026-03-01"}),
                json!({"ends_on": "2026-03-31"}),
            ),
        ];
        for (collection, body, change) in creates {
            let c = app.call(Method::POST, collection, Some(body)).await;
            assert_eq!(c.status, StatusCode::CREATED, "{collection}: {:?}", c.body);
            let path = format!("{collection}/{}", c.body["id"]);
            let r = patch(&app, &path, Some(&c.etag()), MERGE_PATCH, change.clone()).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
            for (k, v) in change.as_object().expect("object") {
                assert_eq!(&r.body[k], v, "{path} {k}");
            }
            assert_eq!(
                r.body["version"].as_i64(),
                c.body["version"].as_i64().map(|v| v + 1)
            );
        }
        // Rules between fields hold for the merged result too.
        let c = app
            .call(
                Method::POST,
                "/api/v1/campaigns",
                Some(
                    json!({"name": "Autumn", "channel": "ads", "budget_minor": 5,
                    "currency": "EUR", "starts_on": "2026-09-01"}),
                ),
            )
            .await;
        let path = format!("/api/v1/campaigns/{}", c.body["id"]);
        let r = patch(
            &app,
            &path,
            Some(&c.etag()),
            MERGE_PATCH,
            json!({"ends_on": "2026-08-01"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["field"], "ends_on");
    }
);
