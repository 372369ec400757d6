//! The operator under measurement: the controller in a task of this process,
//! or `crm-operator run` as a process of its own talking HTTP to the API
//! double served on loopback, so that its memory is measured alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use crm_operator::controller::{self, Settings};
use crm_operator::metrics::Metrics;
use crm_tests::ApiDouble;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::Service;

use crate::proc::{command_name, cpu_ticks, group_members, pid_status_kib};

/// A running operator.
#[allow(missing_debug_implementations)] // the HTTP client and task handles are opaque
pub enum Operator {
    /// `crm_operator::controller::run` in a task of this process.
    InProcess {
        /// Its metrics registry.
        metrics: Arc<Metrics>,
        /// Stops it.
        stop: oneshot::Sender<()>,
        /// The task.
        task: JoinHandle<()>,
    },
    /// `crm-operator run` as a child process.
    Process(Box<External>),
}

/// `crm-operator run` as a child process, leading a process group of its
/// own: when the binary is a wrapper (`/usr/bin/time`, heaptrack, a script)
/// the operator is the wrapper's child, and only the group reaches both.
/// Dropping it kills the whole group, so no operator outlives a run that
/// ends early (an error, a panic, Ctrl-C).
#[allow(missing_debug_implementations)] // the HTTP client is opaque
pub struct External {
    /// The process.
    child: Child,
    /// Its process group (its pid); `None` once the group has been ended.
    group: Option<u32>,
    /// Where it serves `/metrics`.
    metrics_addr: SocketAddr,
    /// Scrapes it.
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl Operator {
    /// The controller in a task of this process, on the double's client.
    pub fn in_process(double: &ApiDouble, settings: Settings) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            double.client(),
            settings,
            metrics.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Self::InProcess {
            metrics,
            stop,
            task,
        })
    }

    /// `binary run` against the double at `api`, configured through a
    /// kubeconfig written into `dir`.
    pub async fn process(
        binary: &Path,
        api: SocketAddr,
        dir: &Path,
        settings: &Settings,
    ) -> anyhow::Result<Self> {
        let kubeconfig = write_kubeconfig(dir, api)?;
        let metrics_addr = free_loopback_port().await?;
        let mut command = Command::new(binary);
        command
            .arg("run")
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .arg("--concurrency")
            .arg(settings.concurrency.to_string())
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(image) = &settings.default_image {
            command.arg("--server-image").arg(image);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let group = child.id();
        let http = Client::builder(TokioExecutor::new()).build_http();
        let operator = Self::Process(Box::new(External {
            child,
            group,
            metrics_addr,
            http,
        }));
        // Serving /metrics means it has started.
        for _ in 0..200 {
            if operator.metrics_text().await.is_ok() {
                return Ok(operator);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} did not serve /metrics within 10 s", binary.display())
    }

    /// Its metrics in the Prometheus text format.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        match self {
            Self::InProcess { metrics, .. } => Ok(metrics.encode()),
            Self::Process(external) => {
                let External {
                    metrics_addr, http, ..
                } = external.as_ref();
                let uri: hyper::Uri = format!("http://{metrics_addr}/metrics").parse()?;
                let response = http.get(uri).await?;
                let body = response.into_body().collect().await?.to_bytes();
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
        }
    }

    /// Waits until it reports ready (`/readyz`: its caches filled) and
    /// returns how long that took from now.
    pub async fn wait_ready(&self, deadline: tokio::time::Instant) -> anyhow::Result<Duration> {
        let start = tokio::time::Instant::now();
        loop {
            if self.ready().await {
                return Ok(start.elapsed());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the operator did not become ready in time");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn ready(&self) -> bool {
        match self {
            Self::InProcess { metrics, .. } => metrics.is_synced(),
            Self::Process(external) => {
                let External {
                    metrics_addr, http, ..
                } = external.as_ref();
                let Ok(uri) = format!("http://{metrics_addr}/readyz").parse::<hyper::Uri>() else {
                    return false;
                };
                http.get(uri)
                    .await
                    .is_ok_and(|response| response.status().is_success())
            }
        }
    }

    /// Reconciles finished, successful or not.
    pub async fn reconciles(&self) -> u64 {
        self.metrics_text()
            .await
            .map_or(0, |text| counter(&text, "crm_operator_reconciles_total"))
    }

    /// The operator process's peak resident memory so far, in KiB: the
    /// process of the group named `crm-operator` (not its wrapper's), or the
    /// largest of the group when none is; `None` in process.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        match self {
            Self::InProcess { .. } => None,
            Self::Process(external) => {
                let peak = |pids: &[u32]| {
                    pids.iter()
                        .filter_map(|pid| pid_status_kib(*pid, "VmHWM"))
                        .max()
                };
                peak(&external.operators()).or_else(|| peak(&group_members(external.group?)))
            }
        }
    }

    /// CPU time (user + system) of the operator process so far, in clock
    /// ticks; `None` in process, where it cannot be told from the double's.
    pub fn cpu_ticks(&self) -> Option<u64> {
        match self {
            Self::InProcess { .. } => None,
            Self::Process(external) => {
                let pids = external.operators();
                let pids = if pids.is_empty() {
                    group_members(external.group?)
                } else {
                    pids
                };
                Some(pids.iter().filter_map(|pid| cpu_ticks(*pid)).sum())
            }
        }
    }

    /// Stops it the way Kubernetes stops a pod, and waits.
    pub async fn stop(self) -> anyhow::Result<()> {
        match self {
            Self::InProcess { stop, task, .. } => {
                let _ = stop.send(());
                tokio::time::timeout(Duration::from_secs(60), task)
                    .await
                    .context("controller did not stop")?
                    .context("controller task panicked")
            }
            Self::Process(mut external) => {
                // SIGTERM, as the kubelet sends, to the operator itself: a
                // wrapper then exits with it, and one that would die of the
                // signal (heaptrack's interpreter) finishes its work first.
                // Without a process of that name, the whole group gets it.
                let operators = external.operators();
                if operators.is_empty() {
                    external.signal_group("TERM");
                } else {
                    for pid in operators {
                        signal(&pid.to_string(), "TERM");
                    }
                }
                let waited =
                    tokio::time::timeout(Duration::from_secs(60), external.child.wait()).await;
                // The wrapper has gone; wait for what it left in the group.
                for _ in 0..600 {
                    if external.group.is_none_or(|g| group_members(g).is_empty()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                external.signal_group("KILL");
                let status = waited.context("crm-operator did not stop on SIGTERM")??;
                if !status.success() {
                    bail!("crm-operator exited with {status}");
                }
                Ok(())
            }
        }
    }
}

/// The name Linux gives the operator's process (`/proc/<pid>/comm`).
const OPERATOR_COMMAND: &str = "crm-operator";

impl External {
    /// The processes of its group that are the operator itself.
    fn operators(&self) -> Vec<u32> {
        let Some(group) = self.group else {
            return Vec::new();
        };
        group_members(group)
            .into_iter()
            .filter(|pid| command_name(*pid).as_deref() == Some(OPERATOR_COMMAND))
            .collect()
    }

    /// Sends `signal` to every process of its group, once for `KILL`.
    fn signal_group(&mut self, name: &str) {
        if let Some(group) = self.group {
            signal(&format!("-{group}"), name);
            if name == "KILL" {
                self.group = None;
            }
        }
    }
}

impl Drop for External {
    fn drop(&mut self) {
        self.signal_group("KILL");
    }
}

/// `kill -SIGNAL -- TARGET` (a pid, or `-pgid` for a whole group); quiet
/// when the target has already gone.
fn signal(target: &str, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg("--")
        .arg(target)
        .stderr(Stdio::null())
        .status();
}

/// The sum of every sample of counter `name` in a Prometheus text.
pub fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Where the operator under test runs against a double: as a task of this
/// process on the double's client, or, given a binary, as a process of its
/// own against the double served over loopback HTTP, configured through a
/// kubeconfig in a directory of its own. Dropping it stops serving and
/// removes the directory.
#[derive(Debug)]
pub struct Target {
    double: ApiDouble,
    served: Option<Served>,
}

#[derive(Debug)]
struct Served {
    binary: PathBuf,
    addr: SocketAddr,
    dir: PathBuf,
    task: JoinHandle<()>,
}

impl Target {
    /// In this process without `binary`; otherwise `binary` against
    /// `double` served over HTTP, its kubeconfig under a directory named
    /// after this process and `name`.
    pub async fn new(
        double: &ApiDouble,
        binary: Option<&Path>,
        name: &str,
    ) -> anyhow::Result<Self> {
        let served = match binary {
            Some(binary) => {
                let (addr, task) = serve_double(double).await?;
                let dir = std::env::temp_dir()
                    .join(format!("operator-scale-{}-{name}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                Some(Served {
                    binary: binary.to_owned(),
                    addr,
                    dir,
                    task,
                })
            }
            None => None,
        };
        Ok(Self {
            double: double.clone(),
            served,
        })
    }

    /// Starts an operator with `settings`.
    pub async fn start(&self, settings: &Settings) -> anyhow::Result<Operator> {
        match &self.served {
            Some(served) => {
                Operator::process(&served.binary, served.addr, &served.dir, settings).await
            }
            None => Operator::in_process(&self.double, settings.clone()),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(served) = &self.served {
            served.task.abort();
            let _ = std::fs::remove_dir_all(&served.dir);
        }
    }
}

/// Serves the double over HTTP/1 on a loopback port, as an API server would.
pub async fn serve_double(double: &ApiDouble) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let double = double.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // As the API server's: Go sets TCP_NODELAY on every connection,
            // so a watch event leaves at once rather than batched with the
            // next (which the operator's pass measured 0.04 faster).
            let _ = stream.set_nodelay(true);
            let double = double.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let mut double = double.clone();
                    async move {
                        let request = into_kube_request(request).await?;
                        let Ok(response) = double.call(request).await;
                        anyhow::Ok(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

/// A request as the double takes it: its body read whole (API requests are
/// small; only responses stream).
async fn into_kube_request(
    request: hyper::Request<Incoming>,
) -> anyhow::Result<http::Request<kube::client::Body>> {
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(http::Request::from_parts(
        parts,
        kube::client::Body::from(bytes),
    ))
}

fn write_kubeconfig(dir: &Path, api: SocketAddr) -> anyhow::Result<PathBuf> {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: double\n  cluster:\n    server: http://{api}\n\
         users:\n- name: bench\n  user: {{}}\n\
         contexts:\n- name: double\n  context:\n    cluster: double\n    user: bench\n    namespace: default\n\
         current-context: double\n"
    );
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

async fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::counter;

    #[test]
    fn counters_sum_their_labelled_samples() {
        let text = "# HELP x\ncrm_operator_reconciles_total{result=\"ok\"} 7\n\
                    crm_operator_reconciles_total{result=\"error\"} 2\n\
                    crm_operator_reconciles_total_other 5\n";
        assert_eq!(counter(text, "crm_operator_reconciles_total"), 9);
    }
}
