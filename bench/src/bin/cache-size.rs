//! `cache-size`: the heap one cached child takes, kind by kind, as a typed
//! object (what kube's reflector stores hold) and in the compact form the
//! operator's caches keep (`crm_operator::compact`), for the benchmark
//! fleet's children. Counted with dhat's allocator, so the figures are the
//! same on every run and machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::bail;
use clap::Parser;
use crm_bench::{baseline, fleet};
use crm_operator::compact::{Compact, Compactable};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Heap per cached child, typed against compact.
#[derive(Debug, Parser)]
#[command(name = "cache-size", about)]
struct Args {
    /// Tenants of the benchmark fleet (`operator-scale --tenants`).
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, _, object) in baseline::children(&fleet::tenants(args.tenants)?)? {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        // As a watch delivers it: JSON text.
        by_kind.entry(kind).or_default().push(object.to_string());
    }
    println!("kind objects typed_bytes_per_object compact_bytes_per_object compact_over_typed");
    let (mut typed_total, mut compact_total) = (0, 0);
    for (kind, texts) in &by_kind {
        let (typed, compact) = match kind.as_str() {
            "ServiceAccount" => measure::<ServiceAccount>(texts)?,
            "Secret" => measure::<Secret>(texts)?,
            "ConfigMap" => measure::<ConfigMap>(texts)?,
            "PersistentVolumeClaim" => measure::<PersistentVolumeClaim>(texts)?,
            "Service" => measure::<Service>(texts)?,
            "StatefulSet" => measure::<StatefulSet>(texts)?,
            "Deployment" => measure::<Deployment>(texts)?,
            "HorizontalPodAutoscaler" => measure::<HorizontalPodAutoscaler>(texts)?,
            "PodDisruptionBudget" => measure::<PodDisruptionBudget>(texts)?,
            "NetworkPolicy" => measure::<NetworkPolicy>(texts)?,
            other => bail!("no cached kind {other}"),
        };
        let n = texts.len();
        println!(
            "{kind} {n} {} {} {:.2}",
            typed / n,
            compact / n,
            compact as f64 / typed as f64
        );
        typed_total += typed;
        compact_total += compact;
    }
    println!(
        "all tenants={} typed_mib={:.1} compact_mib={:.1} compact_over_typed={:.2}",
        args.tenants,
        mib(typed_total),
        mib(compact_total),
        compact_total as f64 / typed_total as f64
    );
    Ok(())
}

/// Heap bytes the store's `Arc`s of `texts` hold: typed, then compact.
fn measure<K: Compactable>(texts: &[String]) -> anyhow::Result<(usize, usize)> {
    let typed = held(texts, |text| serde_json::from_str::<K>(text).map(Arc::new))?;
    let compact = held(texts, |text| {
        serde_json::from_str::<Compact<K>>(text).map(Arc::new)
    })?;
    Ok((typed, compact))
}

/// Heap bytes taken by what `parse` makes of every text, kept at once.
fn held<T>(
    texts: &[String],
    parse: impl Fn(&str) -> serde_json::Result<T>,
) -> anyhow::Result<usize> {
    let mut kept = Vec::with_capacity(texts.len());
    let before = dhat::HeapStats::get().curr_bytes;
    for text in texts {
        kept.push(parse(text)?);
    }
    Ok(dhat::HeapStats::get().curr_bytes - before)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
