//! The real kube-runtime controller of `crm-operator run` on a fresh API
//! double, and what tests do to it as a user or as Kubernetes would.
#![allow(dead_code, unused_imports)]

pub use std::collections::{BTreeMap, BTreeSet};
pub use std::sync::Arc;
pub use std::time::Duration;

pub use crm_crds::{CrmTenant, Phase, annotation, condition};
pub use crm_operator::build::{self, Credentials};
pub use crm_operator::controller::{self, Settings};
pub use crm_operator::metrics::{Metrics, Outcome};
pub use crm_operator::validate;
pub use crm_tests::{ApiDouble, Fault, FaultResponse};
pub use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
pub use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
pub use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
pub use k8s_openapi::api::events::v1::Event;
pub use kube::api::{Patch, PatchParams, PostParams};
pub use kube::{Api, ResourceExt};
pub use serde_json::{Value, json};
pub use tokio::sync::oneshot;
pub use tokio::task::JoinHandle;

/// How long the operator gets to converge before a test fails.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// The controller running against a fresh double.
pub struct Operator {
    pub double: ApiDouble,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    autoscaler: JoinHandle<()>,
}

impl Operator {
    pub fn start() -> Self {
        Self::start_with(Settings::default())
    }

    pub fn start_with(settings: Settings) -> Self {
        Self::start_on(ApiDouble::new(), settings)
    }

    /// A controller on an existing API server, as after an operator restart.
    pub fn start_on(double: ApiDouble, settings: Settings) -> Self {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let (stop, stopped) = oneshot::channel::<()>();
        let settings = Settings {
            default_image: Some("crm-server:test".into()),
            ..settings
        };
        let task = tokio::spawn(controller::run(
            double.client(),
            settings,
            metrics.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        // Kubernetes' HPA controller, as the double plays it.
        let autoscaler = double.run_autoscalers(Duration::from_millis(20));
        Self {
            double,
            metrics,
            stop: Some(stop),
            task,
            autoscaler,
        }
    }

    pub async fn shutdown(mut self) {
        self.autoscaler.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(CONVERGE, &mut self.task)
            .await
            .expect("the controller stops on shutdown")
            .expect("the controller task does not panic");
    }

    pub fn tenants(&self, ns: &str) -> Api<CrmTenant> {
        Api::namespaced(self.double.client(), ns)
    }

    pub async fn create(&self, tenant: &CrmTenant) -> CrmTenant {
        self.tenants(&tenant.namespace().expect("namespace"))
            .create(&PostParams::default(), tenant)
            .await
            .expect("create the tenant")
    }

    /// A JSON merge patch of the tenant, as `kubectl patch --type merge` sends.
    pub async fn patch(&self, tenant: &CrmTenant, patch: Value) {
        self.tenants(&tenant.namespace().expect("namespace"))
            .patch(
                &tenant.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("patch the tenant");
    }

    pub fn tenant(&self, tenant: &CrmTenant) -> CrmTenant {
        self.get(tenant, "")
            .unwrap_or_else(|| panic!("tenant {} is stored", tenant.name_any()))
    }

    pub fn get<K>(&self, tenant: &CrmTenant, suffix: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        let ns = tenant.namespace().expect("namespace");
        self.double
            .get_object::<K>(&ns, &format!("{}{suffix}", tenant.name_any()))
    }

    /// Waits until the tenant's child `<tenant><suffix>` of kind `K` is gone.
    pub async fn gone<K>(&self, tenant: &CrmTenant, suffix: &str, what: &str)
    where
        K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        self.eventually(what, |op| {
            op.get::<K>(tenant, suffix).is_none().then_some(())
        })
        .await
    }

    /// Waits until the double has had no request for half a second: the
    /// reconciles that the last changes caused have finished.
    pub async fn quiet(&self) {
        let mut seen = self.double.request_count();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.double.request_count();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    /// Polls `check` until it returns something, or fails the test naming `what`.
    pub async fn eventually<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        crm_tests::eventually(
            &self.double,
            what,
            CONVERGE,
            Duration::from_millis(20),
            || check(self),
        )
        .await
    }

    pub async fn phase(&self, tenant: &CrmTenant, phase: Phase) -> CrmTenant {
        let what = format!("phase {phase:?} of {}", tenant.name_any());
        self.eventually(&what, |op| {
            let stored = op.tenant(tenant);
            let status = stored.status.as_ref()?;
            (status.phase == Some(phase)
                && status.observed_generation == stored.metadata.generation)
                .then_some(stored)
        })
        .await
    }

    /// Reports the tenant's replicas (and its PostgreSQL) ready, as the
    /// Deployment and StatefulSet controllers would.
    pub fn pods_ready(&self, tenant: &CrmTenant, replicas: i32) {
        let ns = tenant.namespace().expect("namespace");
        self.double
            .report_ready(&ns, &tenant.name_any(), replicas, 1);
    }

    /// Creates the tenant and walks it to Ready.
    pub async fn ready(&self, tenant: &CrmTenant) -> CrmTenant {
        self.create(tenant).await;
        self.eventually("the Deployment", |op| op.get::<Deployment>(tenant, ""))
            .await;
        let stored = self.phase(tenant, Phase::Provisioning).await;
        let replicas = stored
            .status
            .and_then(|s| s.sizing)
            .map_or(1, |s| s.min_replicas);
        self.pods_ready(tenant, replicas);
        self.phase(tenant, Phase::Ready).await
    }

    /// Waits until `n` more successful reconciles than `since` have finished.
    pub async fn reconciled(&self, since: u64, n: u64) {
        self.eventually("more reconciles", |op| {
            (op.metrics.reconciles(Outcome::Ok) >= since + n).then_some(())
        })
        .await;
    }

    /// Changes the tenant in a way its spec does not see (a label), which
    /// makes the controller reconcile it once more.
    pub fn nudge(&self, tenant: &CrmTenant, value: &str) {
        let ns = tenant.namespace().expect("namespace");
        assert!(
            self.double
                .edit_object::<CrmTenant>(&ns, &tenant.name_any(), |object| {
                    object["metadata"]["labels"]["nudge"] = json!(value);
                })
        );
    }

    /// Reasons of the Events recorded about the tenant, oldest first.
    pub fn event_reasons(&self, tenant: &CrmTenant) -> Vec<String> {
        let ns = tenant.namespace().expect("namespace");
        let mut events: Vec<Event> = self.double.list_objects::<Event>(&ns);
        events.retain(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&tenant.name_any())
        });
        events.sort_by_key(|e| e.metadata.resource_version.clone());
        events.into_iter().filter_map(|e| e.reason).collect()
    }

    /// The note of the newest Event about the tenant with `reason`.
    pub fn event_note(&self, tenant: &CrmTenant, reason: &str) -> Option<String> {
        let ns = tenant.namespace().expect("namespace");
        let mut events: Vec<Event> = self.double.list_objects::<Event>(&ns);
        events.retain(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&tenant.name_any())
                && e.reason.as_deref() == Some(reason)
        });
        events.sort_by_key(|e| e.metadata.resource_version.clone());
        events.pop()?.note
    }

    /// The sizing in status, once status describes the current generation.
    pub fn sizing(&self, tenant: &CrmTenant) -> Option<crm_crds::Sizing> {
        let stored = self.tenant(tenant);
        let status = stored.status?;
        (status.observed_generation == stored.metadata.generation).then_some(status.sizing?)
    }

    pub fn condition(&self, tenant: &CrmTenant, type_: &str) -> Option<(String, String)> {
        let stored = self.tenant(tenant);
        let conditions = stored.status?.conditions;
        let found = conditions.into_iter().find(|c| c.type_ == type_)?;
        Some((found.status, found.reason))
    }
}

pub fn example(name: &str) -> CrmTenant {
    crm_tests::example(name)
}

/// `Kind/name` of every object the builders want for this tenant.
pub fn desired(tenant: &CrmTenant) -> BTreeSet<String> {
    let validated = validate::validate(tenant).expect("valid example");
    let credentials = Credentials::new("k", "p");
    build::build(&validated, &credentials)
        .objects()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// `Kind/name` of every object in the namespace labelled as the tenant's;
/// each is controlled by the tenant, except what holds data under Retain.
pub fn owned(double: &ApiDouble, tenant: &CrmTenant, uid: &str) -> BTreeSet<String> {
    let ns = tenant.namespace().expect("namespace");
    let mut found = BTreeSet::new();
    let mut collect = |kind: &str, objects: Vec<kube::core::DynamicObject>| {
        for object in objects {
            if object.labels().get("app.kubernetes.io/instance") != Some(&tenant.name_any()) {
                continue;
            }
            let name = object.name_any();
            let controlled = object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true));
            let retained =
                name.ends_with("-db") || name.ends_with("-data") || name.ends_with("-backups");
            assert_eq!(controlled, !retained, "{kind}/{name} owner reference");
            found.insert(format!("{kind}/{name}"));
        }
    };
    macro_rules! kinds {
        ($($kind:ty),*) => {$(
            let objects = double
                .list_objects::<$kind>(&ns)
                .into_iter()
                .map(|o| serde_json::from_value(serde_json::to_value(o).expect("json")).expect("dynamic"))
                .collect();
            collect(<$kind as kube::Resource>::kind(&()).as_ref(), objects);
        )*};
    }
    use crm_operator::gateway_api::HttpRoute;
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ServiceAccount};
    use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    kinds!(
        ServiceAccount,
        Secret,
        ConfigMap,
        Deployment,
        Service,
        HorizontalPodAutoscaler,
        PodDisruptionBudget,
        NetworkPolicy,
        Ingress,
        HttpRoute,
        StatefulSet,
        CronJob,
        Job,
        PersistentVolumeClaim
    );
    found
}

pub fn api_key(secret: &Secret) -> Vec<u8> {
    secret.data.as_ref().expect("data")["api-key"].0.clone()
}

pub fn config_hash(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("crm.tenancy.dev/config-hash").cloned())
        .expect("config-hash annotation")
}

pub fn spec_replicas(deployment: &Deployment) -> Option<i32> {
    deployment.spec.as_ref().and_then(|s| s.replicas)
}

impl Operator {
    /// Reports the Deployment's rollout complete at its current generation,
    /// with `replicas` ready, as the Deployment controller would.
    pub fn rolled_out(&self, tenant: &CrmTenant, replicas: i32) {
        let ns = tenant.namespace().expect("namespace");
        let deployment = self
            .get::<Deployment>(tenant, "")
            .expect("the Deployment exists");
        let generation = deployment.metadata.generation.expect("a generation");
        self.double
            .report_ready(&ns, &tenant.name_any(), replicas, generation);
    }

    /// Creates (or updates) the Managed PostgreSQL's claim
    /// `data-<t>-postgres-0` as the StatefulSet controller does: owned by
    /// the StatefulSet when its retention policy deletes claims with it,
    /// else by nothing.
    pub fn postgres_claim(&self, tenant: &CrmTenant) {
        use k8s_openapi::api::core::v1::PersistentVolumeClaim;
        let statefulset = self
            .get::<StatefulSet>(tenant, "-postgres")
            .expect("the PostgreSQL StatefulSet exists");
        let retention = statefulset
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
            .and_then(|p| p.when_deleted.clone());
        let owners = match retention.as_deref() {
            Some("Delete") => json!([{ "apiVersion": "apps/v1", "kind": "StatefulSet",
                "name": statefulset.name_any(), "uid": statefulset.uid().expect("uid"),
                "controller": true, "blockOwnerDeletion": true }]),
            _ => json!([]),
        };
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": { "name": format!("data-{}-postgres-0", tenant.name_any()),
                "namespace": tenant.namespace().expect("namespace"),
                "ownerReferences": owners },
            "spec": { "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": "1Gi" } } },
        }))
        .expect("a claim");
        self.double.put_object(&claim).expect("stored");
    }

    /// Waits for the tenant's Job whose name starts with `<t>-<prefix>-`.
    pub async fn job(&self, tenant: &CrmTenant, prefix: &str) -> k8s_openapi::api::batch::v1::Job {
        let ns = tenant.namespace().expect("namespace");
        let start = format!("{}-{prefix}-", tenant.name_any());
        self.eventually(&format!("a Job {start}…"), |op| {
            op.double
                .list_objects::<k8s_openapi::api::batch::v1::Job>(&ns)
                .into_iter()
                .find(|j| j.name_any().starts_with(&start))
        })
        .await
    }

    /// Reports a Job finished, as the Job controller would.
    pub fn job_finishes(&self, tenant: &CrmTenant, job: &str, succeeded: bool) {
        let ns = tenant.namespace().expect("namespace");
        let (type_, reason, message) = if succeeded {
            ("Complete", "Completed", "Job completed")
        } else {
            (
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        };
        let status = json!({
            "conditions": [{
                "type": type_, "status": "True", "reason": reason, "message": message,
                "lastTransitionTime": "2026-11-30T10:15:00Z",
            }],
            "succeeded": i32::from(succeeded), "failed": i32::from(!succeeded),
        });
        assert!(
            self.double
                .set_status::<k8s_openapi::api::batch::v1::Job>(&ns, job, status)
        );
    }

    /// Waits until the Deployment's template is read-only (`true`) or not.
    pub async fn read_only(&self, tenant: &CrmTenant, wanted: bool) -> Deployment {
        let what = format!("CRM_READ_ONLY {wanted} on {}", tenant.name_any());
        self.eventually(&what, |op| {
            let deployment = op.get::<Deployment>(tenant, "")?;
            (env_value(&deployment, "CRM_READ_ONLY").as_deref() == wanted.then_some("true"))
                .then_some(deployment)
        })
        .await
    }

    /// Drives a move or restore that has begun to its end: the read-only
    /// rollout, the Job, and its result; returns the Job's name.
    pub async fn transfer(&self, tenant: &CrmTenant, prefix: &str, succeeded: bool) -> String {
        self.read_only(tenant, true).await;
        self.pods_ready(tenant, 1);
        self.rolled_out(tenant, 1);
        let job = self.job(tenant, prefix).await.name_any();
        self.job_finishes(tenant, &job, succeeded);
        job
    }
}

/// The literal value of `name` in the first container's env.
pub fn env_value(deployment: &Deployment, name: &str) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

/// Whether the first container reads `DATABASE_URL` from a Secret.
pub fn url_from_secret(deployment: &Deployment) -> Option<String> {
    let env = deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .env
        .clone()?;
    let var = env.into_iter().find(|e| e.name == "DATABASE_URL")?;
    let key = var.value_from?.secret_key_ref?;
    Some(format!("{}/{}", key.name, key.key))
}
