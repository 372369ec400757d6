//! The raw baseline of `operator-scale`: a plain kube client server-side
//! applying exactly the objects the operator writes for the same tenants, at
//! the same concurrency, with nothing else (no watches, no caches, no status).
//! The operator's first pass is then judged as a share of that rate.

use std::time::{Duration, Instant};

use anyhow::Context;
use crm_crds::CrmTenant;
use crm_operator::build::{self, Credentials};
use crm_operator::validate;
use crm_tests::ApiDouble;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::operator::serve_double;

/// What the raw client did.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    /// Objects applied.
    pub objects: usize,
    /// Time from the first apply to the last answer.
    pub elapsed: Duration,
}

impl Baseline {
    /// Objects applied per second.
    pub fn rate(&self) -> f64 {
        self.objects as f64 / self.elapsed.as_secs_f64()
    }
}

/// The children the operator builds for `tenants`, each with where it goes.
pub fn children(tenants: &[CrmTenant]) -> anyhow::Result<Vec<(ApiResource, String, Value)>> {
    let credentials = Credentials::new("k".repeat(32), "p".repeat(32));
    let mut out = Vec::new();
    for tenant in tenants {
        let validated = validate::validate(tenant)
            .with_context(|| format!("validate {}", tenant.name_any()))?;
        for object in build::build(&validated, &credentials).objects() {
            let (group, version) = match object["apiVersion"].as_str().unwrap_or_default() {
                api_version if api_version.contains('/') => {
                    api_version.split_once('/').unwrap_or_default()
                }
                version => ("", version),
            };
            let kind = object["kind"].as_str().unwrap_or_default();
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            out.push((resource, validated.namespace.clone(), object));
        }
    }
    Ok(out)
}

/// Server-side applies every object, `concurrency` at a time.
pub async fn apply(
    client: &Client,
    objects: Vec<(ApiResource, String, Value)>,
    concurrency: usize,
) -> anyhow::Result<Baseline> {
    let count = objects.len();
    let params = PatchParams::apply("raw-baseline").force();
    let started = Instant::now();
    stream::iter(objects)
        .map(|(resource, namespace, object)| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            let params = params.clone();
            async move {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                api.patch(&name, &params, &Patch::Apply(&object))
                    .await
                    .with_context(|| format!("apply {}/{name}", resource.kind))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await?;
    Ok(Baseline {
        objects: count,
        elapsed: started.elapsed(),
    })
}

/// Applies the tenants' children with a plain client to a fresh double of
/// their own (served over loopback HTTP when `over_http`); also how long
/// that double's store was held meanwhile.
pub async fn run(
    tenants: &[CrmTenant],
    concurrency: u16,
    over_http: bool,
) -> anyhow::Result<(Baseline, Duration)> {
    let double = ApiDouble::new();
    for t in tenants {
        double.put_object(t)?;
    }
    let objects = children(tenants)?;
    let (client, server) = if over_http {
        let (addr, task) = serve_double(&double).await?;
        let config = kube::Config::new(format!("http://{addr}").parse()?);
        (kube::Client::try_from(config)?, Some(task))
    } else {
        (double.client(), None)
    };
    let held = double.store_held();
    let result = apply(&client, objects, usize::from(concurrency)).await;
    if let Some(task) = server {
        task.abort();
    }
    Ok((result?, double.store_held() - held))
}
