//! How `plan` prints: a sizing summary as YAML comments followed by the
//! manifests (so the whole text is still valid multi-document YAML), or one
//! JSON object per tenant and line.

use std::fmt::Write;

use base64::Engine;
use serde_json::{Value, json};

use crate::build::Desired;
use crate::model::ModelCondition;
use crate::validate::Tenant;

/// What stands in for secret values in `plan`'s output.
pub const GENERATED: &str = "<generated>";

/// One tenant, validated and built: what `plan` prints.
#[derive(Debug)]
pub struct Planned {
    /// The validated tenant with its sizing.
    pub tenant: Tenant,
    /// Its objects, secrets as placeholders.
    pub desired: Desired,
}

/// Appends one tenant's text output: its sizing summary, then its objects.
pub fn text(out: &mut String, p: &Planned) {
    summary(out, p);
    for object in objects(p) {
        let yaml = serde_saphyr::to_string(&object).unwrap_or_else(|e| format!("# {e}\n"));
        let _ = write!(out, "---\n{yaml}");
    }
}

/// Appends one tenant's JSON object, on a line of its own.
pub fn json_line(out: &mut String, p: &Planned) {
    let line = json!({
        "tenant": p.tenant.name,
        "namespace": p.tenant.namespace,
        "databaseMode": p.tenant.database.mode.mode(),
        "sizing": p.tenant.capacity.sizing,
        "conditions": p.tenant.capacity.conditions.iter().map(condition_json).collect::<Vec<_>>(),
        "objects": objects(p),
    });
    // Straight to bytes: `Display` would go through a formatter per token.
    out.push_str(
        &serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
    );
    out.push('\n');
}

fn summary(out: &mut String, p: &Planned) {
    let t = &p.tenant;
    let s = &t.capacity.sizing;
    let _ = writeln!(
        out,
        "# {}/{}: tier {:?}, database {:?}{}",
        t.namespace,
        t.name,
        t.tier,
        t.database.mode.mode(),
        if t.suspend { ", suspended" } else { "" }
    );
    let rows = [
        (
            "load",
            format!(
                "peak {} req/s, average {} req/s",
                s.peak_requests_per_second, s.average_requests_per_second
            ),
        ),
        (
            "per replica",
            format!(
                "{} req/s at full CPU ({} cores)",
                s.per_replica_throughput, t.cpu
            ),
        ),
        ("replicas", replicas_line(p)),
        ("predicted", predicted_line(p)),
        (
            "capacity",
            format!(
                "{} req/s at the target utilisation",
                s.capacity_requests_per_second
            ),
        ),
        (
            "database pool",
            format!(
                "{} connections per replica, {} allowed in all",
                s.db_pool_size, t.database.max_connections
            ),
        ),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "#   {label:<15}{value}");
    }
    for c in &t.capacity.conditions {
        let status = if c.status { "True" } else { "False" };
        let _ = writeln!(
            out,
            "#   {:<15}{}={status} ({}): {}",
            "condition", c.type_, c.reason, c.message
        );
    }
}

fn replicas_line(p: &Planned) -> String {
    let s = &p.tenant.capacity.sizing;
    if p.tenant.autoscaling {
        format!(
            "{} at peak; autoscaling {}..{} at {} % CPU",
            s.replicas, s.min_replicas, s.max_replicas, s.target_cpu_utilization
        )
    } else {
        format!("{} (fixed, no autoscaling)", s.replicas)
    }
}

fn predicted_line(p: &Planned) -> String {
    let s = &p.tenant.capacity.sizing;
    match (s.predicted_p95_latency_ms, s.in_flight_per_replica) {
        (Some(p95), Some(in_flight)) => format!(
            "p95 {p95} ms at peak, utilisation {}, {in_flight} requests in flight per replica",
            s.predicted_utilization
        ),
        _ => format!(
            "the replicas cannot keep up with the peak (utilisation {})",
            s.predicted_utilization
        ),
    }
}

fn condition_json(c: &ModelCondition) -> Value {
    json!({
        "type": c.type_,
        "status": if c.status { "True" } else { "False" },
        "reason": c.reason,
        "message": c.message,
    })
}

/// The tenant's objects with Secret values shown as their placeholders.
fn objects(p: &Planned) -> Vec<Value> {
    let mut objects = p.desired.objects();
    objects.iter_mut().for_each(show_secret_placeholders);
    objects
}

/// `plan` builds Secrets from placeholder strings; showing them base64-encoded
/// would hide that, so they are printed as `stringData`.
fn show_secret_placeholders(object: &mut Value) {
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    let Some(Value::Object(data)) = object.as_object_mut().and_then(|o| o.remove("data")) else {
        return;
    };
    let decoded: serde_json::Map<String, Value> = data
        .into_iter()
        .map(|(key, encoded)| {
            let text = encoded
                .as_str()
                .and_then(|e| base64::engine::general_purpose::STANDARD.decode(e).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_else(|| GENERATED.to_owned());
            (key, Value::String(text))
        })
        .collect();
    if let Some(o) = object.as_object_mut() {
        o.insert("stringData".into(), Value::Object(decoded));
    }
}
