//! The OpenAPI document lists every route, and every listed route exists.

use crate::common;

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
    "PATCH /companies/{id}",
    "DELETE /companies/{id}",
    "GET /contacts",
    "POST /contacts",
    "GET /contacts/{id}",
    "PUT /contacts/{id}",
    "PATCH /contacts/{id}",
    "DELETE /contacts/{id}",
    "GET /contacts/{id}/notes",
    "POST /contacts/{id}/notes",
    "GET /companies.csv",
    "POST /companies.csv",
    "GET /contacts.csv",
    "POST /contacts.csv",
    "POST /contacts/batch",
    "POST /companies/batch",
    "GET /contacts/duplicates",
    "POST /contacts/{id}/merge",
    "GET /deals",
    "POST /deals",
    "GET /deals/{id}",
    "PUT /deals/{id}",
    "PATCH /deals/{id}",
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
    "PATCH /tickets/{id}",
    "DELETE /tickets/{id}",
    "PUT /tickets/{id}/feedback",
    "GET /campaigns",
    "POST /campaigns",
    "GET /campaigns/{id}",
    "PUT /campaigns/{id}",
    "PATCH /campaigns/{id}",
    "DELETE /campaigns/{id}",
    "GET /campaigns/{id}/members",
    "PUT /campaigns/{id}/members/{contact_id}",
    "DELETE /campaigns/{id}/members/{contact_id}",
    "GET /reports/pipeline",
    "GET /reports/revenue",
    "GET /reports/tickets",
    "GET /reports/campaigns",
    "GET /webhooks",
    "POST /webhooks",
    "GET /webhooks/{id}",
    "DELETE /webhooks/{id}",
    "GET /webhooks/{id}/deliveries",
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

async fn document() -> serde_json::Value {
    let app = TestApp::new(Backend::Sqlite).await;
    let req = Request::get("/api/v1/openapi.json")
        .body(Body::empty())
        .expect("req");
    app.send(req).await.body
}

/// The schema of query parameter `name` of `GET path`.
fn query_schema<'a>(doc: &'a serde_json::Value, path: &str, name: &str) -> &'a serde_json::Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{path} has no parameter {name}"))
}

#[tokio::test]
async fn the_document_states_the_constraints_the_server_enforces() {
    let doc = document().await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Channel"]["enum"],
        serde_json::json!(["email", "social", "ads", "event", "other"])
    );
    assert_eq!(
        query_schema(&doc, "/campaigns", "channel")["$ref"],
        "#/components/schemas/Channel"
    );
    for name in ["created_from", "created_to"] {
        let s = query_schema(&doc, "/contacts", name);
        assert_eq!(s["format"], "date", "{name}: {s}");
    }
    let limit = query_schema(&doc, "/deals", "limit");
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&1.into(), &200.into())
    );
    let sort = query_schema(&doc, "/companies", "sort")["pattern"]
        .as_str()
        .expect("sort pattern");
    let re_ok = sort.contains("name") && !sort.contains("email");
    assert!(re_ok, "companies sort by their own fields only: {sort}");
    assert_eq!(schemas["Name"]["minLength"], 1);
    assert_eq!(schemas["Name"]["maxLength"], 200);
    assert!(schemas["Name"]["pattern"].is_string());
    assert_eq!(schemas["Currency"]["pattern"], "^[A-Z]{3}$");
    assert_eq!(schemas["Rating"]["minimum"], 1);
    assert_eq!(schemas["Rating"]["maximum"], 5);
    assert_eq!(schemas["CompanyInput"]["additionalProperties"], false);
    assert_eq!(
        schemas["CompanyInput"]["required"],
        serde_json::json!(["name"])
    );
}

#[tokio::test]
async fn every_status_a_route_can_answer_is_documented() {
    let doc = document().await;
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("item") {
            let codes: BTreeSet<&str> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(String::as_str)
                .collect();
            for code in ["401", "408", "500"] {
                assert!(codes.contains(code), "{method} {path} lacks {code}");
            }
            assert!(
                !codes.iter().any(|c| c.contains('X')),
                "{method} {path}: no ranges"
            );
            let body = op.get("requestBody").is_some();
            if body {
                for code in ["400", "413", "415", "422"] {
                    assert!(codes.contains(code), "{method} {path} lacks {code}");
                }
            }
            if path.contains('{') {
                assert!(codes.contains("404"), "{method} {path} lacks 404");
            }
        }
    }
    let put = &doc["paths"]["/contacts/{id}"]["put"];
    for code in ["409", "412", "428"] {
        assert!(
            put["responses"][code].is_object(),
            "PUT /contacts/{{id}} lacks {code}"
        );
    }
    let if_match = put["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "If-Match"))
        .expect("If-Match");
    assert_eq!(if_match["in"], "header");
    assert_eq!(if_match["required"], true);
    assert!(put["responses"]["200"]["headers"]["ETag"].is_object());
    let order = &doc["paths"]["/deals/{id}/order"]["post"]["responses"];
    assert!(order["422"].is_object() && order["409"].is_object());
}

#[tokio::test]
async fn csv_routes_declare_text_csv() {
    let doc = document().await;
    for path in ["/contacts.csv", "/companies.csv"] {
        let item = &doc["paths"][path];
        assert!(
            item["get"]["responses"]["200"]["content"]["text/csv"].is_object(),
            "GET {path}: {}",
            item["get"]["responses"]["200"]
        );
        let body = &item["post"]["requestBody"]["content"];
        assert!(body["text/csv"].is_object(), "POST {path}: {body}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only text/csv");
        assert!(item["get"]["responses"]["401"].is_object());
    }
}
