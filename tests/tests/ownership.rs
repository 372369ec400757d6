//! A tenant's replica count under server-side apply ownership, as a real API
//! server keeps it: the operator against the double's field managers, its
//! removal of fields an applier stops sending, and its HPA controller.
//!
//! Each test is one of the ways a running tenant lost its capacity on a real
//! cluster: a resume that stayed at zero, autoscaling turned off and on again
//! followed by an unrelated change that reset the count to one, and a field
//! the operator stopped sending that the API server never heard about.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::harness::*;
use crm_operator::labels::FIELD_MANAGER;

/// Managers that own the Deployment's `spec.replicas`.
fn replica_owners(deployment: &Deployment) -> Vec<String> {
    deployment
        .managed_fields()
        .iter()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.pointer("/f:spec/f:replicas"))
                .is_some()
        })
        .filter_map(|e| e.manager.clone())
        .collect()
}

fn hpa_min(operator: &Operator, tenant: &CrmTenant) -> i32 {
    operator
        .sizing(tenant)
        .expect("sizing of the current generation")
        .min_replicas
}

/// Samples the Deployment's replica count every few milliseconds and keeps
/// the lowest seen, until the returned guard is dropped.
struct Sampler {
    lowest: Arc<AtomicI32>,
    task: JoinHandle<()>,
}

impl Sampler {
    fn start(operator: &Operator, tenant: &CrmTenant) -> Self {
        let lowest = Arc::new(AtomicI32::new(i32::MAX));
        let (double, ns, name) = (
            operator.double.clone(),
            tenant.namespace().expect("namespace"),
            tenant.name_any(),
        );
        let seen = lowest.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(replicas) = double
                    .get_object::<Deployment>(&ns, &name)
                    .and_then(|d| d.spec?.replicas)
                {
                    seen.fetch_min(replicas, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Self { lowest, task }
    }

    fn lowest(&self) -> i32 {
        self.lowest.load(Ordering::SeqCst)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Autoscaling off at 1,200 req/s, where the peak count is well above the
/// HPA's minimum; returns that count once the Deployment has it.
async fn autoscaling_off_at_a_high_load(operator: &Operator, tenant: &CrmTenant) -> i32 {
    let spec = json!({ "spec": {
        "autoscaling": { "enabled": false },
        "load": { "peakRequestsPerSecond": 1200 },
    } });
    operator.patch(tenant, spec).await;
    let peak = operator
        .eventually("sizing without autoscaling", |op| op.sizing(tenant))
        .await
        .replicas;
    operator
        .eventually("the peak count set", |op| {
            (spec_replicas(&op.get::<Deployment>(tenant, "")?) == Some(peak)).then_some(())
        })
        .await;
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_autoscaled_tenant_starts_at_the_hpa_minimum_and_hands_it_over() {
    let operator = Operator::start();
    let tenant = example("growth-managed");
    operator.ready(&tenant).await;
    let min = hpa_min(&operator, &tenant);
    // Created at the floor, not at the API server's default of one: the
    // HPA had nothing to raise, so the count is still the operator's.
    let deployment = operator.get::<Deployment>(&tenant, "").expect("Deployment");
    assert_eq!(spec_replicas(&deployment), Some(min));
    assert_eq!(replica_owners(&deployment), [FIELD_MANAGER]);

    // The HPA scales up; an unrelated change then applies without the
    // count, and the HPA's count stays.
    let ns = tenant.namespace().expect("namespace");
    operator.double.recommend(&ns, &tenant.name_any(), min + 1);
    operator
        .eventually("the HPA's count", |op| {
            (spec_replicas(&op.get::<Deployment>(&tenant, "")?) == Some(min + 1)).then_some(())
        })
        .await;
    operator
        .patch(
            &tenant,
            json!({ "spec": { "server": { "env": [{ "name": "TZ", "value": "UTC" }] } } }),
        )
        .await;
    let deployment = operator
        .eventually("the change applied", |op| {
            let d = op.get::<Deployment>(&tenant, "")?;
            let env = serde_json::to_string(&d.spec.as_ref()?.template).ok()?;
            env.contains("\"TZ\"").then_some(d)
        })
        .await;
    assert_eq!(spec_replicas(&deployment), Some(min + 1));
    assert!(!replica_owners(&deployment).contains(&FIELD_MANAGER.to_owned()));
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_under_autoscaling_starts_at_the_base_count_and_the_hpa_takes_over() {
    let operator = Operator::start();
    let tenant = example("growth-managed");
    operator.ready(&tenant).await;
    let min = hpa_min(&operator, &tenant);

    operator
        .patch(&tenant, json!({ "spec": { "suspend": true } }))
        .await;
    operator
        .eventually("zero replicas", |op| {
            (spec_replicas(&op.get::<Deployment>(&tenant, "")?) == Some(0)).then_some(())
        })
        .await;
    operator.pods_ready(&tenant, 0);
    operator.phase(&tenant, Phase::Suspended).await;

    operator
        .patch(&tenant, json!({ "spec": { "suspend": false } }))
        .await;
    // The HPA never scales up from zero: the operator must set the count.
    operator
        .eventually("replicas back at the base count", |op| {
            (spec_replicas(&op.get::<Deployment>(&tenant, "")?) == Some(min)).then_some(())
        })
        .await;
    let name = tenant.name_any();
    let ns = tenant.namespace().expect("namespace");
    let max = operator
        .eventually("sizing after resume", |op| op.sizing(&tenant))
        .await
        .max_replicas;
    assert!(max > min, "the HPA has room to scale");
    operator.double.recommend(&ns, &name, max);
    let deployment = operator
        .eventually("the HPA scaling the resumed tenant", |op| {
            let d = op.get::<Deployment>(&tenant, "")?;
            (spec_replicas(&d) == Some(max)).then_some(d)
        })
        .await;
    assert_eq!(replica_owners(&deployment), ["kube-controller-manager"]);
    operator.pods_ready(&tenant, max);
    operator.phase(&tenant, Phase::Ready).await;
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaling_off_then_on_then_an_unrelated_change_keeps_the_replica_count() {
    let operator = Operator::start();
    let tenant = example("growth-managed");
    operator.ready(&tenant).await;

    let peak = autoscaling_off_at_a_high_load(&operator, &tenant).await;

    let sampler = Sampler::start(&operator, &tenant);
    operator
        .patch(
            &tenant,
            json!({ "spec": { "autoscaling": { "enabled": true } } }),
        )
        .await;
    operator
        .eventually("the HPA back", |op| {
            op.get::<HorizontalPodAutoscaler>(&tenant, "")
        })
        .await;
    let min = operator
        .eventually("sizing with autoscaling", |op| op.sizing(&tenant))
        .await
        .min_replicas;
    operator
        .patch(
            &tenant,
            json!({ "spec": { "resources": { "memory": "768Mi" } } }),
        )
        .await;
    operator
        .eventually("the new memory applied", |op| {
            let d = op.get::<Deployment>(&tenant, "")?;
            let container = d.spec?.template.spec?.containers.into_iter().next()?;
            let limits = container.resources?.limits?;
            (limits.get("memory")?.0 == "768Mi").then_some(())
        })
        .await;
    // One more reconcile after the change, to see that it, too, leaves the count.
    let since = operator.metrics.reconciles(Outcome::Ok);
    operator.nudge(&tenant, "after-memory");
    operator.reconciled(since, 1).await;
    let deployment = operator.get::<Deployment>(&tenant, "").expect("deployment");
    assert_eq!(
        spec_replicas(&deployment),
        Some(peak),
        "turning autoscaling on keeps the count"
    );
    assert!(
        sampler.lowest() >= min,
        "replicas fell to {} below the HPA's minimum {min}",
        sampler.lowest()
    );
    assert!(
        !replica_owners(&deployment).contains(&"crm-operator".to_owned()),
        "the operator gave spec.replicas up: {:?}",
        replica_owners(&deployment)
    );
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_the_operator_stops_sending_is_given_up_even_with_no_other_change() {
    let operator = Operator::start();
    let tenant = example("growth-managed");
    operator.ready(&tenant).await;
    let peak = autoscaling_off_at_a_high_load(&operator, &tenant).await;
    let deployment = operator.get::<Deployment>(&tenant, "").expect("deployment");
    assert!(replica_owners(&deployment).contains(&"crm-operator".to_owned()));

    // Autoscaling on: the Deployment the operator wants differs from the
    // live one only by a field it no longer sends.
    operator
        .patch(
            &tenant,
            json!({ "spec": { "autoscaling": { "enabled": true } } }),
        )
        .await;
    let deployment = operator
        .eventually("spec.replicas given up by the operator", |op| {
            let d = op.get::<Deployment>(&tenant, "")?;
            (!replica_owners(&d).contains(&"crm-operator".to_owned())).then_some(d)
        })
        .await;
    assert_eq!(spec_replicas(&deployment), Some(peak));
    // And the HPA can move it now.
    let min = operator
        .eventually("sizing with autoscaling", |op| op.sizing(&tenant))
        .await
        .min_replicas;
    assert!(peak > min, "{peak} > {min}");
    let (ns, name) = (tenant.namespace().expect("ns"), tenant.name_any());
    operator.double.recommend(&ns, &name, min);
    operator
        .eventually("the HPA moving the count", |op| {
            (spec_replicas(&op.get::<Deployment>(&tenant, "")?) == Some(min)).then_some(())
        })
        .await;
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_key_the_spec_no_longer_needs_is_removed() {
    let operator = Operator::start();
    let tenant = example("starter-embedded");
    operator.ready(&tenant).await;
    let has_sqlite_url = |op: &Operator| {
        let config = op.get::<ConfigMap>(&tenant, "-config")?;
        Some(config.data?.contains_key("DATABASE_URL"))
    };
    assert_eq!(has_sqlite_url(&operator), Some(true));

    operator
        .patch(
            &tenant,
            json!({ "spec": { "database": { "mode": "Managed" } } }),
        )
        .await;
    operator.transfer(&tenant, "migrate", true).await;
    operator
        .eventually("DATABASE_URL gone from the ConfigMap", |op| {
            (has_sqlite_url(op) == Some(false)).then_some(())
        })
        .await;
    operator.shutdown().await;
}
