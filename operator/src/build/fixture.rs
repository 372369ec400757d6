//! A chainable test tenant: `Tenant::test().with_database(..).suspended()`.
//! Built directly, not through `validate`, so build tests do not depend on
//! the capacity model.

use crm_crds::{DeletionPolicy, EnvVar, Module, SecretKeyRef, Sizing, Tier};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::Credentials;
use crate::model::Capacity;
use crate::validate::{Database, DatabaseTarget, Server, Tenant};

impl Tenant {
    /// A Growth tenant `acme` in `crm-acme` with a Managed database,
    /// autoscaling between 2 and 4 replicas.
    pub(crate) fn test() -> Tenant {
        Tenant {
            name: "acme".into(),
            namespace: "crm-acme".into(),
            owner: OwnerReference {
                api_version: crm_crds::API_VERSION.into(),
                kind: crm_crds::KIND.into(),
                name: "acme".into(),
                uid: "0b7e1c7a-acme".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            generation: Some(1),
            tier: Tier::Growth,
            suspend: false,
            capacity: Capacity {
                sizing: sizing(3, 2, 4),
                conditions: Vec::new(),
            },
            autoscaling: true,
            cpu: 0.5,
            memory: "256Mi".into(),
            database: Database {
                mode: managed(),
                deletion_policy: DeletionPolicy::Retain,
                max_connections: 100,
                storage: "1Gi".into(),
                storage_class_name: None,
            },
            server: Server {
                image: "crm-tenancy/crm-server:0.1.0".into(),
                modules: vec![Module::Customers, Module::Sales],
                env: vec![EnvVar {
                    name: "FEATURE_X".into(),
                    value: "1".into(),
                }],
                allowed_namespaces: vec!["ingress".into()],
                expose: None,
            },
            monitoring_namespaces: Some(crate::labels::namespace_named("monitoring")),
            backup: None,
            transfer: None,
            inputs: inputs(),
            autopilot: crate::autopilot::Settings::from_spec(None),
            learned: None,
        }
    }

    /// Exposed at `crm.acme.example.com` through an Ingress of class
    /// `nginx`, with a certificate from the ClusterIssuer `letsencrypt`.
    pub(crate) fn exposed_through_ingress(mut self) -> Tenant {
        self.server.expose = Some(crm_crds::ExposeSpec {
            host: "crm.acme.example.com".into(),
            ingress: Some(crm_crds::IngressExposeSpec {
                class_name: "nginx".into(),
                controller_namespace: "ingress-nginx".into(),
            }),
            gateway: None,
            tls: Some(crm_crds::TlsSpec {
                secret_name: None,
                issuer: Some(crm_crds::IssuerRef {
                    name: "letsencrypt".into(),
                    kind: crm_crds::IssuerKind::ClusterIssuer,
                }),
            }),
        });
        self
    }

    /// Exposed at `crm.acme.example.com` through the Gateway
    /// `gateway-system/public`, listener `https`.
    pub(crate) fn exposed_through_gateway(mut self) -> Tenant {
        self.server.expose = Some(crm_crds::ExposeSpec {
            host: "crm.acme.example.com".into(),
            ingress: None,
            gateway: Some(crm_crds::GatewayExposeSpec {
                name: "public".into(),
                namespace: Some("gateway-system".into()),
                section_name: Some("https".into()),
                controller_namespace: None,
            }),
            tls: None,
        });
        self
    }

    /// Another database mode. Embedded also turns autoscaling off, as
    /// `validate` does: it runs exactly one replica.
    pub(crate) fn with_database(mut self, mode: DatabaseTarget) -> Tenant {
        if mode == DatabaseTarget::Embedded {
            self.autoscaling = false;
            self.capacity.sizing = sizing(1, 1, 1);
        }
        self.database.mode = mode;
        self
    }

    /// The model's replica figures: peak, autoscaler minimum and maximum.
    pub(crate) fn with_replicas(mut self, replicas: i32, min: i32, max: i32) -> Tenant {
        self.capacity.sizing = Sizing {
            replicas,
            min_replicas: min,
            max_replicas: max,
            ..self.capacity.sizing
        };
        self
    }

    /// The whole sizing.
    pub(crate) fn with_sizing(mut self, sizing: Sizing) -> Tenant {
        self.capacity.sizing = sizing;
        self
    }

    pub(crate) fn with_autoscaling(mut self, on: bool) -> Tenant {
        self.autoscaling = on;
        self
    }

    pub(crate) fn with_tier(mut self, tier: Tier) -> Tenant {
        self.tier = tier;
        self
    }

    pub(crate) fn with_deletion_policy(mut self, policy: DeletionPolicy) -> Tenant {
        self.database.deletion_policy = policy;
        self
    }

    pub(crate) fn with_storage_class(mut self, class: &str) -> Tenant {
        self.database.storage_class_name = Some(class.into());
        self
    }

    pub(crate) fn with_cpu(mut self, cores: f64) -> Tenant {
        self.cpu = cores;
        self
    }

    pub(crate) fn with_env(mut self, name: &str, value: &str) -> Tenant {
        self.server.env.push(EnvVar {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    pub(crate) fn suspended(mut self) -> Tenant {
        self.suspend = true;
        self
    }
}

/// Sizing with the given replica figures and plausible other numbers.
pub(crate) fn sizing(replicas: i32, min: i32, max: i32) -> Sizing {
    Sizing {
        peak_requests_per_second: 300.0,
        average_requests_per_second: 100.0,
        per_replica_throughput: 250.0,
        replicas,
        min_replicas: min,
        max_replicas: max,
        target_cpu_utilization: 70,
        predicted_p95_latency_ms: Some(34.96),
        predicted_utilization: 0.6,
        capacity_requests_per_second: 350.0,
        in_flight_per_replica: Some(2.1),
        db_pool_size: 4,
        slo_feasible: true,
        min_cpu_for_slo: None,
    }
}

pub(crate) fn managed() -> DatabaseTarget {
    DatabaseTarget::Managed {
        image: "postgres:17-alpine".into(),
        cpu: 0.5,
        memory: "512Mi".into(),
    }
}

pub(crate) fn shared() -> DatabaseTarget {
    DatabaseTarget::Shared {
        server: "main".into(),
    }
}

pub(crate) fn external() -> DatabaseTarget {
    DatabaseTarget::External {
        secret_ref: SecretKeyRef {
            name: "acme-external-db".into(),
            key: "connection".into(),
        },
    }
}

/// Every database mode.
pub(crate) fn all_modes() -> [DatabaseTarget; 4] {
    [DatabaseTarget::Embedded, managed(), shared(), external()]
}

pub(crate) fn credentials() -> Credentials {
    Credentials::new("api-key-0123456789", "db-password-0123456789")
        .with_admin_password("admin-password-0123456789")
}

/// The model's inputs of a Growth tenant at 300 req/s (not what its fixed
/// sizing says: build reads the sizing, never the inputs).
fn inputs() -> crate::model::Inputs {
    let spec: crm_crds::CrmTenantSpec = serde_json::from_value(serde_json::json!({
        "tier": "Growth",
        "load": {"peakRequestsPerSecond": 300}
    }))
    .expect("a valid spec");
    crate::model::Inputs::from_spec(&spec, crm_crds::DatabaseMode::Managed).expect("valid inputs")
}
