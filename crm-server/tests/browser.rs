//! The web UI in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) against the real binary. Sign in, search a contact,
//! create a deal and move it to another stage, all without JavaScript of
//! ours. With `CRM_UI_SCREENSHOTS=DIR` the main pages are saved there as
//! PNG (scripts/ui-screenshots).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::KEY;
use common::wire::{free_port, request};
use fantoccini::{Client, ClientBuilder, Locator};

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "browser-test-password";

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> PathBuf {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.exists(),
        "{} not found: the browser test needs Debian's chromium and chromium-driver \
         (`apt-get install -y chromium chromium-driver`, which scripts/test does), \
         or CHROMEDRIVER=/path/to/chromedriver",
        path.display()
    );
    path
}

/// Wait until `child` answers: `path` with 200, or with no path until it
/// accepts connections.
fn wait_until_up(port: u16, path: Option<&str>, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let up = match path {
            Some(path) => request(port, "GET", path, None).is_ok_and(|(s, _)| s == 200),
            None => TcpStream::connect(("127.0.0.1", port)).is_ok(),
        };
        if up {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not answer on port {port} within 60 s");
}

fn save(dir: Option<&Path>, name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// The text of `css` once it satisfies `want`. A click that submits a form
/// only starts a navigation: until the next page is in, the old one is still
/// on screen, and an element read from it may be torn down mid-read. So this
/// polls, and a page that never shows what `want` asks for fails the test
/// with the last text seen.
async fn text_once(c: &Client, css: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = match c.find(Locator::Css(css)).await {
            Ok(element) => match element.text().await {
                Ok(text) if want(&text) => return text,
                Ok(text) => text,
                Err(e) => format!("(unreadable: {e})"),
            },
            Err(e) => format!("(not found: {e})"),
        };
        assert!(
            Instant::now() < deadline,
            "{css} did not show what was expected within 10 s; last seen: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the browser's address contains `part`: the form just
/// submitted has been answered and its page is the one on screen.
async fn arrived(c: &Client, part: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let at = c.current_url().await.expect("the current address");
        if at.as_str().contains(part) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the browser did not get to {part} within 10 s; it is at {at}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sign_in_search_create_and_move_a_deal() {
    let driver_bin = chromedriver();
    let shots = std::env::var_os("CRM_UI_SCREENSHOTS").map(PathBuf::from);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("crm.db").display());

    let port = free_port();
    let server = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .env("CRM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &url)
        .env("CRM_API_KEY", KEY)
        .env("CRM_ADMIN_EMAIL", ADMIN)
        .env("CRM_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn crm-server");
    let mut server = Killed(server);
    wait_until_up(port, Some("/readyz"), "crm-server", &mut server.0);
    let seed = [
        (
            "/api/v1/companies",
            r#"{"name":"Analytical Engines","domain":"engines.example"}"#,
        ),
        (
            "/api/v1/contacts",
            r#"{"first_name":"Ada","last_name":"Lovelace","email":"ada@engines.example","company_id":1}"#,
        ),
        (
            "/api/v1/contacts",
            r#"{"first_name":"Charles","last_name":"Babbage","email":"charles@engines.example","company_id":1}"#,
        ),
        (
            "/api/v1/deals",
            r#"{"title":"Difference engine","amount_minor":1700000,"currency":"GBP","owner":"Ada","stage":"proposal"}"#,
        ),
        (
            "/api/v1/tickets",
            r#"{"subject":"Punched cards jam","priority":"high","contact_id":2}"#,
        ),
    ];
    for (path, body) in seed {
        let (status, answer) = request(port, "POST", path, Some(body)).expect("seed");
        assert_eq!(status, 201, "{path}: {answer}");
    }

    let driver_port = free_port();
    let driver = Command::new(driver_bin)
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let mut driver = Killed(driver);
    wait_until_up(driver_port, None, "chromedriver", &mut driver.0);

    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session");
    let base = format!("http://127.0.0.1:{port}");

    // Sign in.
    c.goto(&format!("{base}/")).await.expect("open");
    c.find(Locator::Css("#email"))
        .await
        .expect("email")
        .send_keys(ADMIN)
        .await
        .expect("type");
    c.find(Locator::Css("#password"))
        .await
        .expect("pw")
        .send_keys(PASSWORD)
        .await
        .expect("type");
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    text_once(&c, "main h1", |t| t == "Dashboard").await;
    text_once(&c, "main", |t| t.contains("proposal")).await;
    save(
        shots.as_deref(),
        "dashboard",
        &c.screenshot().await.expect("shot"),
    );

    // Search a contact by the start of the company's name.
    c.goto(&format!("{base}/ui/contacts"))
        .await
        .expect("contacts");
    c.find(Locator::Css("#q"))
        .await
        .expect("q")
        .send_keys("analyt")
        .await
        .expect("type");
    c.find(Locator::Css("form[role=search] button"))
        .await
        .expect("b")
        .click()
        .await
        .expect("search");
    arrived(&c, "q=analyt").await;
    text_once(&c, "table.list", |t| {
        t.contains("Ada Lovelace") && t.contains("Charles Babbage")
    })
    .await;
    c.find(Locator::Css("#q"))
        .await
        .expect("q")
        .clear()
        .await
        .expect("clear");
    c.find(Locator::Css("#q"))
        .await
        .expect("q")
        .send_keys("ada lo")
        .await
        .expect("type");
    c.find(Locator::Css("form[role=search] button"))
        .await
        .expect("b")
        .click()
        .await
        .expect("search");
    text_once(&c, "table.list", |t| {
        t.contains("Ada Lovelace") && !t.contains("Babbage")
    })
    .await;
    save(
        shots.as_deref(),
        "contacts",
        &c.screenshot().await.expect("shot"),
    );

    // Create a deal.
    c.goto(&format!("{base}/ui/deals/new"))
        .await
        .expect("new deal");
    c.find(Locator::Css("#f-title"))
        .await
        .expect("title")
        .send_keys("Analytical engine")
        .await
        .expect("type");
    c.find(Locator::Css("#f-amount"))
        .await
        .expect("amount")
        .send_keys("250000")
        .await
        .expect("type");
    c.find(Locator::Css("main form button[type=submit]"))
        .await
        .expect("b")
        .click()
        .await
        .expect("create");
    text_once(&c, "section[aria-labelledby=stage-lead]", |t| {
        t.contains("Analytical engine") && t.contains("250,000.00 EUR")
    })
    .await;

    // Move it to "won" with the card's own form.
    let card = c
        .find(Locator::XPath(
            "//li[contains(@class,'deal')][.//h3[text()='Analytical engine']]",
        ))
        .await
        .expect("the card");
    card.find(Locator::Css("select"))
        .await
        .expect("select")
        .select_by_value("won")
        .await
        .expect("pick");
    card.find(Locator::Css("button"))
        .await
        .expect("move")
        .click()
        .await
        .expect("move");
    text_once(&c, "section[aria-labelledby=stage-won]", |t| {
        t.contains("Analytical engine")
    })
    .await;
    text_once(&c, "section[aria-labelledby=stage-lead]", |t| {
        !t.contains("Analytical engine")
    })
    .await;
    save(
        shots.as_deref(),
        "deals",
        &c.screenshot().await.expect("shot"),
    );

    c.goto(&format!("{base}/ui/tickets"))
        .await
        .expect("tickets");
    text_once(&c, "table.list", |t| t.contains("Punched cards jam")).await;
    save(
        shots.as_deref(),
        "tickets",
        &c.screenshot().await.expect("shot"),
    );

    c.close().await.expect("close the browser");
}
