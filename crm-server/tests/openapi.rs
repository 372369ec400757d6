//! The OpenAPI document lists every route, and every listed route exists.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Backend, TestApp};

/// Every API route the server has, as `METHOD /path` under `/api/v1`.
const ROUTES: &[&str] = &[
    "GET /companies",
    "POST /companies",
    "GET /companies/{id}",
    "PUT /companies/{id}",
    "DELETE /companies/{id}",
    "GET /contacts",
    "POST /contacts",
    "GET /contacts/{id}",
    "PUT /contacts/{id}",
    "DELETE /contacts/{id}",
    "GET /contacts/{id}/notes",
    "POST /contacts/{id}/notes",
    "GET /companies.csv",
    "POST /companies.csv",
    "GET /contacts.csv",
    "POST /contacts.csv",
    "GET /deals",
    "POST /deals",
    "GET /deals/{id}",
    "PUT /deals/{id}",
    "DELETE /deals/{id}",
    "POST /deals/{id}/order",
    "GET /deals/{id}/notes",
    "POST /deals/{id}/notes",
    "GET /orders",
    "GET /orders/{id}",
    "GET /tickets",
    "POST /tickets",
    "GET /tickets/{id}",
    "PUT /tickets/{id}",
    "DELETE /tickets/{id}",
    "PUT /tickets/{id}/feedback",
    "GET /campaigns",
    "POST /campaigns",
    "GET /campaigns/{id}",
    "PUT /campaigns/{id}",
    "DELETE /campaigns/{id}",
    "GET /campaigns/{id}/members",
    "PUT /campaigns/{id}/members/{contact_id}",
    "DELETE /campaigns/{id}/members/{contact_id}",
    "GET /reports/pipeline",
    "GET /reports/revenue",
    "GET /reports/tickets",
    "GET /reports/campaigns",
];

#[tokio::test]
async fn every_route_is_documented_and_routed() {
    let app = TestApp::new(Backend::Sqlite).await;
    let req = Request::get("/api/v1/openapi.json")
        .body(Body::empty())
        .expect("req");
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "the document needs no key");
    assert!(
        r.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let mut documented = BTreeSet::new();
    for (path, item) in r.body["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES.iter().map(|s| s.to_string()).collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented but not in the route list: {extra:?}"
    );
    for route in ROUTES {
        let (method, path) = route.split_once(' ').expect("route");
        let path = format!(
            "/api/v1{}",
            path.replace("{id}", "1").replace("{contact_id}", "1")
        );
        let method: Method = method.parse().expect("method");
        let res = app.call(method, &path, None).await;
        assert_ne!(
            res.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{route} is not routed"
        );
        let unrouted = res.status == StatusCode::NOT_FOUND && res.body["title"] == "No such route";
        assert!(!unrouted, "{route} is not routed");
    }
}
