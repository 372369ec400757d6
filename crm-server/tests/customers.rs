//! Health, auth, errors and the customers module, on both backends.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Res, TestApp};
use serde_json::{Value, json};

async fn company(app: &TestApp, name: &str) -> Res {
    let r = app
        .call(
            Method::POST,
            "/api/v1/companies",
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r
}

async fn contact(app: &TestApp, email: &str, company_id: Option<i64>) -> Res {
    let body = json!({"first_name": "Ada", "last_name": "Lovelace", "email": email,
        "company_id": company_id});
    app.call(Method::POST, "/api/v1/contacts", Some(body)).await
}

both!(health_needs_no_key, |app: TestApp| async move {
    for path in ["/healthz", "/readyz"] {
        let req = Request::get(path).body(Body::empty()).expect("req");
        assert_eq!(app.send(req).await.status, StatusCode::OK, "{path}");
    }
});

both!(auth_is_required, |app: TestApp| async move {
    let req = Request::get("/api/v1/companies")
        .body(Body::empty())
        .expect("req");
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.is_problem());
    let req = Request::get("/api/v1/companies")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(Body::empty())
        .expect("req");
    assert_eq!(app.send(req).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.call(Method::GET, "/api/v1/companies", None)
            .await
            .status,
        StatusCode::OK
    );
});

both!(company_and_contact_crud, |app: TestApp| async move {
    let c = company(&app, "Acme").await;
    let id = c.body["id"].as_i64().expect("id");
    let r = contact(&app, "Ada@Acme.io", Some(id)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["email"], "ada@acme.io");
    let cid = r.body["id"].as_i64().expect("id");
    let got = app
        .call(Method::GET, &format!("/api/v1/contacts/{cid}"), None)
        .await;
    assert_eq!(got.body["company_id"], id);
    let list = app
        .call(
            Method::GET,
            &format!("/api/v1/contacts?company_id={id}"),
            None,
        )
        .await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    let del = app
        .call(Method::DELETE, &format!("/api/v1/contacts/{cid}"), None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = app
        .call(Method::GET, &format!("/api/v1/contacts/{cid}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.is_problem());
});

both!(
    duplicate_email_is_409_naming_field,
    |app: TestApp| async move {
        assert_eq!(
            contact(&app, "a@b.io", None).await.status,
            StatusCode::CREATED
        );
        let r = contact(&app, "A@b.io", None).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.body["field"], "email");
    }
);

both!(unknown_company_is_422, |app: TestApp| async move {
    let r = contact(&app, "a@b.io", Some(999)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["field"], "company_id");
});

both!(pagination_filter_sort, |app: TestApp| async move {
    for i in 0..7 {
        company(&app, &format!("Firm {i:02}")).await;
    }
    company(&app, "Other").await;
    let mut names = Vec::new();
    let mut url = "/api/v1/companies?q=firm&limit=3&sort=-name".to_string();
    loop {
        let r = app.call(Method::GET, &url, None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        for c in r.body["items"].as_array().expect("items") {
            names.push(c["name"].as_str().expect("name").to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/companies?q=firm&limit=3&sort=-name&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("Firm {i:02}")).collect();
    assert_eq!(names, expected);
});

both!(stale_write_is_412, |app: TestApp| async move {
    let c = company(&app, "Acme").await;
    let id = c.body["id"].as_i64().expect("id");
    let etag = c.etag();
    let path = format!("/api/v1/companies/{id}");
    let first = app
        .call_with(
            Method::PUT,
            &path,
            Some(json!({"name": "Acme 1"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_ne!(first.etag(), etag);
    let second = app
        .call_with(
            Method::PUT,
            &path,
            Some(json!({"name": "Acme 2"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(second.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(second.problem_type(), "urn:crm:problem:stale-version");
    let none = app
        .call(Method::PUT, &path, Some(json!({"name": "Acme 3"})))
        .await;
    assert_eq!(none.status, StatusCode::PRECONDITION_REQUIRED);
    let body = json!({"name": "Acme 4"});
    let empty = app
        .call_with(Method::PUT, &path, Some(body.clone()), &[("if-match", "")])
        .await;
    assert_eq!(
        empty.status,
        StatusCode::PRECONDITION_REQUIRED,
        "empty is missing"
    );
    for malformed in ["{}", "1", "\"x\"", "\"99999999999999999999\""] {
        let r = app
            .call_with(
                Method::PUT,
                &path,
                Some(body.clone()),
                &[("if-match", malformed)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "If-Match: {malformed}");
        assert!(
            r.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("If-Match"))
        );
    }
    let got = app.call(Method::GET, &path, None).await;
    assert_eq!(got.body["name"], "Acme 1");
});

both!(bad_input_is_4xx_problem, |app: TestApp| async move {
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"{not json".to_vec(), StatusCode::BAD_REQUEST, ""),
        (
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            br#"{"name": "x", "evil": 1}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            br#"{"name": 5}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            br#"{"name": ""}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            format!("{{\"name\": \"{}\"}}", "x".repeat(300)).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            vec![b' '; 2 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ];
    for (body, status, field) in cases {
        let r = app
            .post_raw("/api/v1/companies", "application/json", body)
            .await;
        assert_eq!(r.status, status, "{:?}", r.body);
        assert!(r.is_problem());
        if !field.is_empty() {
            assert_eq!(r.body["field"], field);
        }
    }
    let r = app
        .post_raw(
            "/api/v1/contacts",
            "application/json",
            br#"{"first_name":"a","last_name":"b","email":"nope"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.body["field"], "email");
    let r = app
        .post_raw("/api/v1/companies", "text/plain", b"{}".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for q in [
        "cursor=@@@",
        "limit=0",
        "limit=abc",
        "sort=password",
        "created_from=2020-13-01",
    ] {
        let r = app
            .call(Method::GET, &format!("/api/v1/companies?{q}"), None)
            .await;
        assert!(
            r.status.is_client_error() && r.is_problem(),
            "{q}: {:?}",
            r.status
        );
    }
    let r = app.call(Method::GET, "/api/v1/companies/abc", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Nothing was written by any of the above.
    let list = app.call(Method::GET, "/api/v1/companies", None).await;
    assert_eq!(list.body["items"], json!([]));
});

both!(sql_metacharacters_are_data, |app: TestApp| async move {
    let evil = "Robert'); DROP TABLE companies;-- %_\\";
    let c = company(&app, evil).await;
    assert_eq!(c.body["name"], evil);
    let r = app
        .call(Method::GET, "/api/v1/companies?q=%27%29%3B%20DROP", None)
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
    let r = app.call(Method::GET, "/api/v1/companies?q=%25", None).await;
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "% is literal"
    );
    let r: Value = app.call(Method::GET, "/api/v1/companies", None).await.body;
    assert_eq!(r["items"].as_array().map(Vec::len), Some(1));
});

both!(csv_import_export, |app: TestApp| async move {
    let csv = "name,domain,industry\nAcme,acme.io,tools\nGlobex,,\n";
    let r = app
        .post_raw("/api/v1/companies.csv", "text/csv", csv.as_bytes().to_vec())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["imported"], 2);
    let csv =
        "first_name,last_name,email,phone,company_id\nAda,L,ada@x.io,,1\nBob,M,bob@x.io,+1 555,\n";
    let r = app
        .post_raw("/api/v1/contacts.csv", "text/csv", csv.as_bytes().to_vec())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let out = app.call(Method::GET, "/api/v1/contacts.csv", None).await;
    let text = String::from_utf8(out.raw).expect("utf8");
    assert!(text.starts_with("id,company_id,first_name"), "{text}");
    assert!(text.contains("ada@x.io") && text.contains("bob@x.io"));
    // An export re-imports elsewhere, but here every email is taken: 409, nothing written.
    let r = app
        .post_raw("/api/v1/contacts.csv", "text/csv", text.into_bytes())
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let bad = "first_name,last_name,email\nOk,Row,ok@x.io\nBad,Row,not-an-email\n";
    let r = app
        .post_raw("/api/v1/contacts.csv", "text/csv", bad.as_bytes().to_vec())
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["field"], "[2].email");
    let r = app
        .post_raw(
            "/api/v1/contacts.csv",
            "text/csv",
            b"a,b\n\xff,\xfe\n".to_vec(),
        )
        .await;
    assert!(
        r.status.is_client_error() && r.is_problem(),
        "{:?}",
        r.status
    );
    let list = app.call(Method::GET, "/api/v1/contacts", None).await;
    assert_eq!(
        list.body["items"].as_array().map(Vec::len),
        Some(2),
        "no partial import"
    );
    let companies = app.call(Method::GET, "/api/v1/companies.csv", None).await;
    assert!(
        String::from_utf8(companies.raw)
            .expect("utf8")
            .contains("Globex")
    );
});

both!(
    hostile_query_strings_are_4xx_or_empty,
    |app: TestApp| async move {
        for q in [
            "q=%00",
            "q=%FF%FE",
            "q=a%00b",
            "company_id=abc",
            "company_id=99999999999999999999",
            "limit=-1",
            "cursor=",
            "created_to=yesterday",
            "unknown=1",
        ] {
            for base in [
                "/api/v1/contacts",
                "/api/v1/companies",
                "/api/v1/deals?owner=%00&x=1",
            ] {
                let sep = if base.contains('?') { '&' } else { '?' };
                let r = app
                    .call(Method::GET, &format!("{base}{sep}{q}"), None)
                    .await;
                assert!(
                    r.status.is_client_error() || r.status == StatusCode::OK,
                    "{base} {q}: {:?}",
                    r.status
                );
                if r.status != StatusCode::OK {
                    assert!(r.is_problem(), "{base} {q}");
                }
            }
        }
        let nul = json!({"name": "a\u{0}b"});
        let r = app.call(Method::POST, "/api/v1/companies", Some(nul)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
);

both!(
    csv_import_refuses_what_is_not_csv_and_writes_nothing,
    |app: TestApp| async move {
        for path in ["/api/v1/contacts.csv", "/api/v1/companies.csv"] {
            for ct in [
                "application/json",
                "text/plain",
                "text/csvx",
                "multipart/form-data",
            ] {
                let r = app.post_raw(path, ct, b"{}".to_vec()).await;
                assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path} {ct}");
                assert!(r.is_problem());
            }
            // What schemathesis sent: a JSON body labelled as CSV.
            let r = app.post_raw(path, "text/csv", b"{}".to_vec()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
            assert_eq!(r.body["field"], "header");
            let detail = r.body["detail"].as_str().unwrap_or("");
            assert!(detail.contains("unknown column \"{}\""), "{detail}");
            let r = app
                .post_raw(path, "text/csv; charset=utf-8", Vec::new())
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path}: empty body"
            );
            assert!(
                r.body["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("header row")),
                "{:?}",
                r.body
            );
        }
        let cases = [
            ("first_name,last_name\nAda,L\n", "missing column \"email\""),
            (
                "first_name,last_name,email,nickname\nAda,L,a@x.io,al\n",
                "unknown column \"nickname\"",
            ),
            (
                "first_name,last_name,email,email\nAda,L,a@x.io,b@x.io\n",
                "\"email\" appears twice",
            ),
            ("Ada,L,a@x.io\n", "unknown column \"Ada\""),
        ];
        for (body, expected) in cases {
            let r = app
                .post_raw("/api/v1/contacts.csv", "text/csv", body.as_bytes().to_vec())
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let detail = r.body["detail"].as_str().unwrap_or("");
            assert!(detail.contains(expected), "{body}: {detail}");
            assert!(
                detail.contains("expected first_name,last_name,email,[phone],[company_id]")
                    || expected.contains("twice"),
                "{detail}"
            );
        }
        // A bad row after good ones, and a duplicate email within the file:
        // the whole import is refused.
        let r = app
            .post_raw(
                "/api/v1/companies.csv",
                "text/csv",
                b"name,domain\nAcme,acme.io\n,empty.io\n".to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["field"], "[2].name", "{:?}", r.body);
        let dup = "first_name,last_name,email\nA,B,same@x.io\nC,D,same@x.io\n";
        let r = app
            .post_raw("/api/v1/contacts.csv", "text/csv", dup.as_bytes().to_vec())
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(r.body["field"], "[2].email");
        for list in ["/api/v1/contacts", "/api/v1/companies"] {
            let r = app.call(Method::GET, list, None).await;
            assert_eq!(r.body["items"], json!([]), "{list}: nothing written");
        }
        // An export's own columns are accepted back.
        let ok = "id,name,domain,industry,created_at,updated_at,version\n7,Acme,,,x,y,1\n";
        let r = app
            .post_raw("/api/v1/companies.csv", "text/csv", ok.as_bytes().to_vec())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
);

both!(
    contact_search_matches_prefixes_ignoring_case,
    |app: TestApp| async move {
        let navy = company(&app, "Navy").await.body["id"].as_i64();
        for (first, last, email, phone, company_id) in [
            ("Ada", "Lovelace", "ada@acme.io", Some("+44 20 7946"), None),
            ("Grace", "Hopper", "grace@mil.io", None, navy),
            (
                "Alan",
                "Turing",
                "alan@bletchley.io",
                Some("0161 496"),
                None,
            ),
        ] {
            let body = json!({"first_name": first, "last_name": last, "email": email,
                "phone": phone, "company_id": company_id});
            let r = app.call(Method::POST, "/api/v1/contacts", Some(body)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        }
        for (q, want) in [
            ("lov", vec!["ada@acme.io"]),
            ("ADA%20L", vec!["ada@acme.io"]),
            ("a", vec!["ada@acme.io", "alan@bletchley.io"]),
            ("GRACE%40", vec!["grace@mil.io"]),
            ("%2B44", vec!["ada@acme.io"]),
            ("nav", vec!["grace@mil.io"]),
            ("ove", vec![]),
            ("%25", vec![]),
        ] {
            let r = app
                .call(Method::GET, &format!("/api/v1/contacts?q={q}"), None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {:?}", r.body);
            let got: Vec<&str> = r.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|c| c["email"].as_str().expect("email"))
                .collect();
            assert_eq!(got, want, "q={q}");
        }
    }
);
