//! The web UI over HTTP: sign-in, sessions, CSRF, roles, the rate limit,
//! forms and the deal board, on SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Res, TestApp};
use crm_server::domain::{Email, Name};
use crm_server::ui::users::{NewUser, Role, insert_user};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// A client that keeps cookies, like a browser.
struct Client<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

impl<'a> Client<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Res {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut b = Request::builder().method(method).uri(path);
        if !cookie.is_empty() {
            b = b.header(header::COOKIE, cookie.join("; "));
        }
        let req = match form {
            Some(pairs) => {
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", encode(v)))
                    .collect();
                b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body.join("&")))
            }
            None => b.body(Body::empty()),
        };
        let res = self.app.send(req.expect("request")).await;
        for v in res.headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().expect("cookie");
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').expect("name=value");
            if v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
        res
    }

    async fn get(&mut self, path: &str) -> Res {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Res {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Sign in; the answer to the form's POST.
    async fn sign_in(&mut self, email: &str, password: &str) -> Res {
        let form = self.get("/ui/login").await;
        let csrf = csrf(&form);
        self.post(
            "/ui/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// The CSRF token of the session, read from a page.
    async fn csrf(&mut self) -> String {
        csrf(&self.get("/ui/").await)
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn html(res: &Res) -> String {
    String::from_utf8(res.raw.clone()).expect("utf-8")
}

fn csrf(res: &Res) -> String {
    let page = html(res);
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().expect("token").to_string()
}

fn location(res: &Res) -> &str {
    res.headers[header::LOCATION].to_str().expect("location")
}

async fn user(app: &TestApp, email: &str, role: Role) {
    let new = NewUser {
        email: Email::parse(email).expect("email"),
        display_name: Name::parse("Pat Doe").expect("name"),
        role,
        password: PASSWORD.into(),
    };
    insert_user(&mut app.state.db.pool.acquire().await.expect("conn"), new)
        .await
        .expect("user");
}

both!(sign_in_session_and_sign_out, |app: TestApp| async move {
    user(&app, "ada@example.com", Role::Sales).await;
    let mut c = Client::new(&app);
    let anonymous = c.get("/ui/contacts").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&anonymous), "/ui/login");

    let res = c.sign_in("Ada@Example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", html(&res));
    let set: Vec<&str> = res
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    let session = set
        .iter()
        .find(|v| v.starts_with("crm_session="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    assert!(
        !session.contains("Secure"),
        "plain HTTP without the setting"
    );

    let dash = c.get("/ui/").await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(html(&dash).contains("Pipeline by stage"));
    let token = c.cookies["crm_session"].clone();

    let csrf = c.csrf().await;
    let out = c.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!c.cookies.contains_key("crm_session"));
    // The old cookie no longer opens anything: the session ended server-side.
    c.cookies.insert("crm_session".into(), token);
    assert_eq!(c.get("/ui/").await.status, StatusCode::SEE_OTHER);
});

both!(a_wrong_password_is_refused, |app: TestApp| async move {
    user(&app, "ada@example.com", Role::Admin).await;
    let mut c = Client::new(&app);
    let res = c.sign_in("ada@example.com", "not the password").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(html(&res).contains("Wrong email or password"));
    assert!(!html(&res).contains("not the password"), "never echoed");
    assert!(!c.cookies.contains_key("crm_session"));
    let nobody = c.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
});

both!(
    forms_need_the_sessions_csrf_token,
    |app: TestApp| async move {
        user(&app, "ada@example.com", Role::Sales).await;
        let mut c = Client::new(&app);
        c.sign_in("ada@example.com", PASSWORD).await;
        let fields = [
            ("first_name", "Grace"),
            ("last_name", "Hopper"),
            ("email", "grace@navy.mil"),
        ];
        let missing = c.post("/ui/contacts", &fields).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN);
        let mut wrong = vec![("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")];
        wrong.extend(fields);
        assert_eq!(
            c.post("/ui/contacts", &wrong).await.status,
            StatusCode::FORBIDDEN
        );
        let list = c.get("/ui/contacts?q=grace").await;
        assert!(
            html(&list).contains("No contacts found"),
            "nothing was written"
        );

        let csrf = c.csrf().await;
        let mut good = vec![("csrf", csrf.as_str())];
        good.extend(fields);
        let created = c.post("/ui/contacts", &good).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", html(&created));
        let list = c.get("/ui/contacts?q=grace%20h").await;
        assert!(html(&list).contains("grace@navy.mil"));

        // The sign-in form has its own token, bound to a cookie.
        let mut other = Client::new(&app);
        let login = other
            .post(
                "/ui/login",
                &[("email", "ada@example.com"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(login.status, StatusCode::FORBIDDEN);
    }
);

both!(
    forms_show_what_is_wrong_next_to_the_field,
    |app: TestApp| async move {
        user(&app, "ada@example.com", Role::Sales).await;
        let mut c = Client::new(&app);
        c.sign_in("ada@example.com", PASSWORD).await;
        let csrf = c.csrf().await;
        let res = c
            .post(
                "/ui/contacts",
                &[
                    ("csrf", &csrf),
                    ("first_name", "Grace"),
                    ("last_name", " "),
                    ("email", "not-an-email"),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        let page = html(&res);
        assert!(page.contains("id=\"e-email\">must contain @"), "{page}");
        assert!(page.contains("id=\"e-last_name\">must not be empty"));
        assert!(page.contains("value=\"Grace\""), "typed values are kept");
    }
);

both!(each_role_has_its_limits, |app: TestApp| async move {
    for (email, role) in [
        ("admin@example.com", Role::Admin),
        ("sales@example.com", Role::Sales),
        ("support@example.com", Role::Support),
        ("ro@example.com", Role::Readonly),
    ] {
        user(&app, email, role).await;
    }
    let ticket = app
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(serde_json::json!({"subject": "Cannot sign in"})),
        )
        .await;
    assert_eq!(ticket.status, StatusCode::CREATED);
    let set_status = format!("/ui/tickets/{}/status", ticket.body["id"]);

    let mut ro = Client::new(&app);
    ro.sign_in("ro@example.com", PASSWORD).await;
    let csrf = ro.csrf().await;
    assert_eq!(ro.get("/ui/contacts").await.status, StatusCode::OK);
    assert_eq!(ro.get("/ui/deals").await.status, StatusCode::OK);
    let write = [("csrf", csrf.as_str()), ("name", "Acme")];
    assert_eq!(
        ro.post("/ui/companies", &write).await.status,
        StatusCode::FORBIDDEN
    );
    let status = [
        ("csrf", csrf.as_str()),
        ("status", "closed"),
        ("version", "1"),
    ];
    assert_eq!(
        ro.post(&set_status, &status).await.status,
        StatusCode::FORBIDDEN
    );

    let mut support = Client::new(&app);
    support.sign_in("support@example.com", PASSWORD).await;
    let csrf = support.csrf().await;
    assert_eq!(support.get("/ui/deals").await.status, StatusCode::FORBIDDEN);
    assert!(!html(&support.get("/ui/").await).contains("/ui/deals"));
    let status = [
        ("csrf", csrf.as_str()),
        ("status", "pending"),
        ("version", "1"),
    ];
    assert_eq!(
        support.post(&set_status, &status).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(html(&support.get("/ui/tickets?status=pending").await).contains("Cannot sign in"));
    let write = [("csrf", csrf.as_str()), ("name", "Acme")];
    assert_eq!(
        support.post("/ui/companies", &write).await.status,
        StatusCode::FORBIDDEN
    );

    let mut sales = Client::new(&app);
    sales.sign_in("sales@example.com", PASSWORD).await;
    let csrf = sales.csrf().await;
    let write = [("csrf", csrf.as_str()), ("name", "Acme")];
    assert_eq!(
        sales.post("/ui/companies", &write).await.status,
        StatusCode::SEE_OTHER
    );
    let status = [
        ("csrf", csrf.as_str()),
        ("status", "closed"),
        ("version", "2"),
    ];
    assert_eq!(
        sales.post(&set_status, &status).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(sales.get("/ui/users").await.status, StatusCode::FORBIDDEN);

    let mut admin = Client::new(&app);
    admin.sign_in("admin@example.com", PASSWORD).await;
    let csrf = admin.csrf().await;
    assert_eq!(admin.get("/ui/users").await.status, StatusCode::OK);
    let add = [
        ("csrf", csrf.as_str()),
        ("email", "new@example.com"),
        ("display_name", "New Person"),
        ("role", "readonly"),
        ("password", "short"),
    ];
    let refused = admin.post("/ui/users", &add).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&refused).contains("at least 10 characters"));
    assert!(
        !html(&refused).contains("value=\"short\""),
        "passwords are not echoed"
    );

    // Disabling a user ends their sessions at once.
    let page = html(&admin.get("/ui/users").await);
    let at = page.find("Role of sales@example.com").expect("sales row");
    let action = page[..at].rfind("action=\"/ui/users/").expect("form") + 8;
    let path = page[action..].split('"').next().expect("path").to_string();
    let change = [
        ("csrf", csrf.as_str()),
        ("role", "sales"),
        ("disabled", "1"),
        ("version", "1"),
    ];
    assert_eq!(
        admin.post(&path, &change).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(sales.get("/ui/").await.status, StatusCode::SEE_OTHER);
    let again = sales.sign_in("sales@example.com", PASSWORD).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
});

both!(
    failed_sign_ins_are_rate_limited,
    |app: TestApp| async move {
        user(&app, "ada@example.com", Role::Sales).await;
        let mut c = Client::new(&app);
        for _ in 0..5 {
            let res = c.sign_in("ada@example.com", "wrong password!").await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        }
        let limited = c.sign_in("ada@example.com", PASSWORD).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = limited.headers[header::RETRY_AFTER]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&wait), "{wait}");
        // Another account from the same place is not blocked.
        user(&app, "bob@example.com", Role::Sales).await;
        assert_eq!(
            c.sign_in("bob@example.com", PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
    }
);

both!(
    a_deal_is_created_and_moved_on_the_board,
    |app: TestApp| async move {
        user(&app, "ada@example.com", Role::Sales).await;
        let mut c = Client::new(&app);
        c.sign_in("ada@example.com", PASSWORD).await;
        let csrf = c.csrf().await;
        let deal = [
            ("csrf", csrf.as_str()),
            ("title", "Acme rollout"),
            ("amount", "12,500.50"),
            ("currency", "EUR"),
            ("stage", "lead"),
            ("owner", "Ada"),
            ("expected_close", ""),
            ("company_id", ""),
            ("contact_id", ""),
        ];
        assert_eq!(
            c.post("/ui/deals", &deal).await.status,
            StatusCode::SEE_OTHER
        );
        let board = html(&c.get("/ui/deals").await);
        assert!(board.contains("Acme rollout") && board.contains("12,500.50 EUR"));
        let id = app.call(Method::GET, "/api/v1/deals", None).await.body["items"][0]["id"].clone();
        let path = format!("/ui/deals/{id}/stage");
        let moved = c
            .post(
                &path,
                &[("csrf", &csrf), ("stage", "won"), ("version", "1")],
            )
            .await;
        assert_eq!(moved.status, StatusCode::SEE_OTHER);
        let api = app
            .call(Method::GET, &format!("/api/v1/deals/{id}"), None)
            .await;
        assert_eq!(api.body["stage"], "won");
        assert!(api.body["closed_at"].is_string());
        // A stale card does not overwrite the newer stage.
        let stale = c
            .post(
                &path,
                &[("csrf", &csrf), ("stage", "lost"), ("version", "1")],
            )
            .await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        let api = app
            .call(Method::GET, &format!("/api/v1/deals/{id}"), None)
            .await;
        assert_eq!(api.body["stage"], "won");
    }
);

both!(the_ui_stays_out_of_the_api, |app: TestApp| async move {
    let doc = app.call(Method::GET, "/api/v1/openapi.json", None).await;
    let paths = doc.body["paths"].as_object().expect("paths");
    assert!(paths.keys().all(|p| !p.starts_with("/ui")));
    let root = app.call(Method::GET, "/", None).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&root), "/ui/");
    let css = app.call(Method::GET, "/ui/assets/ui.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CACHE_CONTROL]
            .to_str()
            .expect("ascii")
            .contains("max-age")
    );
    // The API still answers with its key, and without it as before.
    let res = app
        .send(
            Request::get("/api/v1/contacts")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
});

both!(
    the_rate_limit_holds_across_replicas,
    |app: TestApp| async move {
        user(&app, "ada@example.com", Role::Sales).await;
        let other = app.replica().await;
        let (mut one, mut two) = (Client::new(&app), Client::new(&other));
        for i in 0..5 {
            // Failures alternate between the replicas, as a load balancer
            // would send them.
            let c = if i % 2 == 0 { &mut one } else { &mut two };
            let res = c.sign_in("ada@example.com", "wrong password!").await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        }
        for c in [&mut one, &mut two] {
            let limited = c.sign_in("ADA@example.com", PASSWORD).await;
            assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
            assert!(limited.headers.contains_key(header::RETRY_AFTER));
            assert!(html(&limited).contains("Too many failed sign-ins"));
        }
    }
);

both!(
    unknown_pages_are_html_in_the_layout,
    |app: TestApp| async move {
        user(&app, "ada@example.com", Role::Sales).await;
        let mut c = Client::new(&app);
        let anonymous = c.get("/ui/no-such-page").await;
        assert_eq!(anonymous.status, StatusCode::NOT_FOUND);
        assert!(html(&anonymous).contains("There is no such page."));
        c.sign_in("ada@example.com", PASSWORD).await;
        for path in [
            "/ui/no-such-page",
            "/ui/contacts/999999",
            "/ui/contacts/abc",
            "/ui/companies/0/edit",
            "/ui/campaigns/-1",
        ] {
            let res = c.get(path).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
            let content_type = res.headers[header::CONTENT_TYPE].to_str().expect("ascii");
            assert!(
                content_type.starts_with("text/html"),
                "{path}: {content_type}"
            );
            let page = html(&res);
            assert!(page.contains("<h1>Not found</h1>"), "{path}: {page}");
            // The signed-in layout: the navigation and the way out.
            assert!(page.contains("aria-label=\"Main\""), "{path}");
            assert!(page.contains("Sign out"), "{path}");
        }
        // A malformed form is an HTML page too, not a plain-text rejection.
        let csrf = c.csrf().await;
        let bad = c
            .post(
                "/ui/tickets/1/status",
                &[("csrf", &csrf), ("status", "open")],
            )
            .await;
        assert!(bad.status.is_client_error(), "{}", bad.status);
        assert!(html(&bad).contains("Sign out"));
        let wrong_method = c.get("/ui/logout").await;
        assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(html(&wrong_method).contains("<h1>Not allowed</h1>"));
        // The API keeps its problems.
        let api = app.call(Method::GET, "/api/v1/contacts/999999", None).await;
        assert!(api.is_problem());
    }
);

both!(
    campaign_members_show_name_and_email,
    |app: TestApp| async move {
        user(&app, "ada@example.com", Role::Sales).await;
        let camp =
            json!({"name": "Spring", "channel": "email", "budget_minor": 0, "currency": "EUR"});
        let camp = app
            .call(Method::POST, "/api/v1/campaigns", Some(camp))
            .await;
        let camp = camp.body["id"].as_i64().expect("campaign");
        for (first, email) in [("Grace", "grace@example.com"), ("Alan", "alan@example.com")] {
            let body = json!({"first_name": first, "last_name": "Member", "email": email});
            let ct = app.call(Method::POST, "/api/v1/contacts", Some(body)).await;
            let id = ct.body["id"].as_i64().expect("contact");
            let path = format!("/api/v1/campaigns/{camp}/members/{id}");
            let r = app
                .call(Method::PUT, &path, Some(json!({"response": "opened"})))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
        let mut c = Client::new(&app);
        c.sign_in("ada@example.com", PASSWORD).await;
        let res = c.get(&format!("/ui/campaigns/{camp}")).await;
        assert_eq!(res.status, StatusCode::OK);
        let page = html(&res);
        for text in [
            "Grace Member",
            "grace@example.com",
            "Alan Member",
            "alan@example.com",
        ] {
            assert!(page.contains(text), "{text} missing: {page}");
        }
        assert!(!page.contains("Contact #"));
    }
);
