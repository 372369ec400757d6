//! The real binary over real sockets: graceful shutdown and durability of
//! acknowledged writes across `kill -9`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::wire::{free_port, read_response, request};
use common::{Backend, KEY, fresh_url};

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(url: &str, port: u16, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crm-server"));
        cmd.env("CRM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", url)
            .env("CRM_API_KEY", KEY)
            .env("CRM_REQUIRE_API_KEY", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn server");
        let s = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if s.request("GET", "/readyz", None)
                .map(|(st, _)| st == 200)
                .unwrap_or(false)
            {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server did not become ready");
    }

    /// One HTTP/1.1 request with `Connection: close`; (status, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        request(self.port, method, path, body)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn readiness_false_then_drain(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let server = Server::start(&url, free_port(), &[("CRM_SHUTDOWN_DELAY_SECS", "2")]);
    // Start a request and leave its body half-sent: it is in flight.
    let mut inflight = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let body = r#"{"name": "In flight Ltd"}"#;
    write!(
        inflight,
        "POST /api/v1/companies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..5]
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    server.signal("-TERM");
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = server.request("GET", "/readyz", None).expect("readyz");
    assert_eq!(status, 503, "readiness goes false on SIGTERM");
    let (status, _) = server.request("GET", "/healthz", None).expect("healthz");
    assert_eq!(status, 200, "still alive while draining");
    inflight
        .write_all(&body.as_bytes()[5..])
        .expect("rest of body");
    inflight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, resp) = read_response(&mut inflight).expect("in-flight response");
    assert_eq!(status, 201, "in-flight request finishes: {resp}");
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(code) = server.child.try_wait().expect("wait") {
            assert!(code.success(), "clean exit, got {code:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn acknowledged_writes_survive_kill_9(backend: Backend) {
    let (url, _dir) = fresh_url(backend).await;
    let port = free_port();
    let server = Server::start(&url, port, &[]);
    let mut ids = Vec::new();
    for i in 0..50 {
        let body = format!(r#"{{"name": "Durable {i}"}}"#);
        let (status, resp) = server
            .request("POST", "/api/v1/companies", Some(&body))
            .expect("post");
        assert_eq!(status, 201, "{resp}");
        let v: serde_json::Value = serde_json::from_str(&resp).expect("json");
        ids.push(v["id"].as_i64().expect("id"));
    }
    server.signal("-KILL");
    drop(server);
    let server = Server::start(&url, port, &[]);
    for id in ids {
        let (status, _) = server
            .request("GET", &format!("/api/v1/companies/{id}"), None)
            .expect("get");
        assert_eq!(status, 200, "company {id} lost after kill -9");
    }
}

#[tokio::test]
async fn shutdown_sqlite() {
    readiness_false_then_drain(Backend::Sqlite).await;
}

#[tokio::test]
async fn shutdown_postgres() {
    readiness_false_then_drain(Backend::Postgres).await;
}

#[tokio::test]
async fn kill_9_sqlite() {
    acknowledged_writes_survive_kill_9(Backend::Sqlite).await;
}

#[tokio::test]
async fn kill_9_postgres() {
    acknowledged_writes_survive_kill_9(Backend::Postgres).await;
}

#[test]
fn deployed_server_refuses_to_start_without_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .env_remove("CRM_API_KEY")
        .env("CRM_REQUIRE_API_KEY", "true")
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CRM_API_KEY"));
}

#[test]
fn help_documents_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "CRM_LISTEN_ADDR",
        "CRM_API_KEY",
        "CRM_REQUIRE_API_KEY",
        "DATABASE_URL",
        "CRM_DB_POOL_SIZE",
        "CRM_MODULES",
        "CRM_LOG_FORMAT",
        "CRM_METRICS_ADDR",
    ] {
        assert!(help.contains(var), "--help lacks {var}");
    }
}

#[test]
fn local_run_generates_and_prints_a_key() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crm-server"))
        .env_remove("CRM_API_KEY")
        .env_remove("CRM_REQUIRE_API_KEY")
        .env("CRM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display()),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read");
    let key = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("generated API key"), "{line}");
    assert!(key.len() >= 32, "{key}");
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_and_nothing_else() {
    let (url, _dir) = fresh_url(Backend::Sqlite).await;
    let metrics_port = free_port();
    let server = Server::start(
        &url,
        free_port(),
        &[("CRM_METRICS_ADDR", &format!("127.0.0.1:{metrics_port}"))],
    );
    let (status, _) = server
        .request("GET", "/api/v1/companies", None)
        .expect("API");
    assert_eq!(status, 200, "the API stays on the main port");
    let (status, body) = request(metrics_port, "GET", "/metrics", None).expect("metrics");
    assert_eq!(status, 200);
    assert!(body.contains("crm_http_requests_total"), "{body}");
    for path in ["/api/v1/companies", "/healthz", "/api/v1/openapi.json"] {
        let (status, _) = request(metrics_port, "GET", path, None).expect(path);
        assert_eq!(status, 404, "{path} on the metrics port");
    }
}
