//! What a pass of the operator did, read from the double's request log and
//! the operator's own metrics.

use std::collections::BTreeMap;
use std::time::Instant as StdInstant;

use crm_tests::{ApiDouble, Request};
use tokio::time::Instant;

use crate::operator::{Operator, counter};

/// When the first pass's requests came, from the operator's start, up to
/// every tenant provisioned: what went to starting, to the work itself,
/// and to noticing that it was done.
#[derive(Debug)]
pub struct Timeline {
    first_request: f64,
    first_write: f64,
    last_write: f64,
    provisioned: f64,
}

impl Timeline {
    /// Reads `log` from `started` (the operator's start) up to `provisioned`.
    pub fn of(log: &[Request], started: Instant, provisioned: Instant) -> Self {
        let since = |at: StdInstant| at.saturating_duration_since(started.into_std());
        let seconds = |at: Option<&Request>| at.map_or(f64::NAN, |r| since(r.at).as_secs_f64());
        let until: Vec<_> = log
            .iter()
            .filter(|r| r.at <= provisioned.into_std())
            .collect();
        let writes = || {
            until
                .iter()
                .copied()
                .filter(|r| r.is_write() && !r.is_event())
        };
        Self {
            first_request: seconds(until.first().copied()),
            first_write: seconds(writes().next()),
            last_write: seconds(writes().next_back()),
            provisioned: since(provisioned.into_std()).as_secs_f64(),
        }
    }

    /// Prints the `first-pass-timeline` line.
    pub fn print(&self) {
        println!(
            "first-pass-timeline first_request_seconds={:.3} first_write_seconds={:.3} \
             last_write_seconds={:.3} provisioned_seconds={:.3}",
            self.first_request, self.first_write, self.last_write, self.provisioned
        );
    }
}

/// Figures of one pass.
#[derive(Debug)]
pub struct Pass {
    seconds: f64,
    requests: usize,
    writes: usize,
    events: usize,
    reconciles: u64,
    errors: u64,
    p99: String,
    /// The operator process's peak RSS in KiB, when it runs as its own process.
    operator_hwm_kib: Option<u64>,
    /// Writes by verb and resource (`PATCH deployments`), Events excluded.
    by_resource: BTreeMap<String, usize>,
}

impl Pass {
    /// Reads the double's request log and the operator's metrics; the pass
    /// took `seconds`.
    pub async fn of(double: &ApiDouble, operator: &Operator, seconds: f64) -> Self {
        let log = double.request_log();
        let text = operator.metrics_text().await.unwrap_or_default();
        let reconciles = |result: &str| {
            let line = format!("crm_operator_reconciles_total{{result=\"{result}\"}}");
            counter(&text, &line)
        };
        Self {
            seconds,
            requests: log.len(),
            writes: double.count_writes_excluding_events(),
            events: log.iter().filter(|r| r.is_event() && r.is_write()).count(),
            reconciles: reconciles("ok"),
            errors: reconciles("error"),
            p99: reconcile_p99(&text),
            operator_hwm_kib: operator.peak_rss_kib(),
            by_resource: writes_by_resource(&log),
        }
    }

    /// Prints the pass's lines, each starting with `name`.
    pub fn print(&self, name: &str, tenants: usize, concurrency: u16) {
        let per = |x: usize| x as f64 / tenants as f64;
        println!(
            "{name} tenants={tenants} concurrency={concurrency} seconds={:.2} requests={} \
             requests_per_tenant={:.2} writes_excl_events={} writes_per_tenant={:.2} \
             event_writes={} reconciles_ok={} reconciles_error={} reconcile_p99={}",
            self.seconds,
            self.requests,
            per(self.requests),
            self.writes,
            per(self.writes),
            self.events,
            self.reconciles,
            self.errors,
            self.p99,
        );
        if let Some(kib) = self.operator_hwm_kib {
            println!(
                "{name}-operator-process vm_hwm_mib={:.1}",
                kib as f64 / 1024.0
            );
        }
        let by: Vec<String> = self
            .by_resource
            .iter()
            .map(|(what, n)| format!("{}={:.2}", what.replace(' ', ":"), per(*n)))
            .collect();
        println!("{name}-writes-per-tenant {}", by.join(" "));
    }
}

/// Counts writes by verb and resource plural, read from the request path
/// (`/apis/apps/v1/namespaces/ns/deployments/name/status` → `PATCH deployments/status`).
fn writes_by_resource(log: &[Request]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in log.iter().filter(|r| r.is_write() && !r.is_event()) {
        let path = request.path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let resource = match segments.iter().position(|s| *s == "namespaces") {
            Some(i) if segments.len() > i + 2 => {
                let mut what = segments[i + 2].to_owned();
                if segments.len() > i + 4 {
                    what = format!("{what}/{}", segments[i + 4]);
                }
                what
            }
            _ => segments.last().copied().unwrap_or_default().to_owned(),
        };
        *counts
            .entry(format!("{} {resource}", request.verb))
            .or_insert(0) += 1;
    }
    counts
}

/// The upper bound of the histogram bucket holding the 99th percentile of
/// successful reconciles, from the Prometheus text (`<=0.05s`).
fn reconcile_p99(text: &str) -> String {
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter(|l| {
            l.starts_with("crm_operator_reconcile_duration_seconds_bucket")
                && l.contains("result=\"ok\"")
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_owned();
            let count = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((le, count))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= 0.99 * total)
        .map_or_else(|| "-".into(), |(le, _)| format!("<={le}s"))
}
