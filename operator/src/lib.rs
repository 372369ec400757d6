//! The CrmTenant operator.
//!
//! ```text
//! CrmTenant ─► validate ─► resolve ─────────► build ─► apply (+ prune) ─► status ─► events
//!              (model)     (credentials,      (pure)   (server-side,      (pure)
//!                           Shared database)            ownership)
//! ```
//!
//! `model`, `autopilot`, `validate`, `build` and `status` are pure: no I/O,
//! no clients; `observe` reads measured load from Prometheus for autopilot.
//! `reconcile` runs the flow for one tenant, `apply` and `database` talk to
//! the API server and the shared PostgreSQL servers, `kinds` lists every kind
//! of child once (caches, watches, pruning), `gateway_api` types the Gateway
//! API's HTTPRoute (k8s-openapi has none), `context` holds what reconciles
//! share, `events` tells `kubectl describe` what happened, and `controller`
//! wires it all to kube-runtime. Modules depend on each other one way only;
//! `tests/tests/layers.rs` keeps it so.
#![forbid(unsafe_code)]

pub mod apply;
pub mod autopilot;
pub mod build;
pub mod cli;
pub mod client;
pub mod compact;
pub mod context;
pub mod controller;
pub mod database;
pub mod events;
pub mod gateway_api;
pub mod kinds;
pub mod labels;
pub mod leader;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod owned;
pub mod ownership;
pub mod rbac;
pub mod reconcile;
pub mod recorder;
pub mod server;
pub mod status;
pub mod synced;
pub mod validate;
pub mod written;

/// Why a reconcile failed. Each variant names the action that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be run; waiting for it to change.
    #[error("invalid spec: {0}")]
    Invalid(#[from] validate::ValidationError),
    /// Server-side apply of a child was refused or failed.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        /// Kind of the child.
        kind: &'static str,
        /// Name of the child.
        name: String,
        /// What the API said.
        #[source]
        source: kube::Error,
    },
    /// Deleting a child the spec no longer asks for failed.
    #[error("deleting {kind} {name}: {source}")]
    Prune {
        /// Kind of the child.
        kind: &'static str,
        /// Name of the child.
        name: String,
        /// What the API said.
        #[source]
        source: kube::Error,
    },
    /// Writing the tenant's status failed.
    #[error("updating the status of {name}: {source}")]
    PatchStatus {
        /// The tenant.
        name: String,
        /// What the API said.
        #[source]
        source: kube::Error,
    },
    /// No random bytes for a new credential.
    #[error(transparent)]
    GenerateCredentials(#[from] database::credentials::RandomError),
    /// The shared PostgreSQL server is not registered, or its Secret cannot be used.
    #[error("shared PostgreSQL server {server}: {problem}")]
    SharedServer {
        /// `spec.database.shared.server`.
        server: String,
        /// What is wrong with its registration (never the URL itself).
        problem: String,
        /// CamelCase reason: ServerNotRegistered or InvalidServerUrl.
        reason: &'static str,
    },
    /// Provisioning or cleaning up the tenant's role and database failed.
    #[error("shared PostgreSQL server {server}: {source}")]
    SharedDatabase {
        /// `spec.database.shared.server`.
        server: String,
        /// What the server said, free of credentials.
        #[source]
        source: database::shared::DbError,
    },
    /// Adding or removing the tenant's finalizer failed.
    #[error("updating the finalizers of {name}: {source}")]
    Finalizer {
        /// The tenant.
        name: String,
        /// What the API said.
        #[source]
        source: kube::Error,
    },
    /// Reading a credentials Secret the cache did not hold failed.
    #[error("reading Secret {name}: {source}")]
    ReadSecret {
        /// The Secret.
        name: String,
        /// What the API said.
        #[source]
        source: kube::Error,
    },
    /// The spec asks for a kind of object the cluster does not serve.
    #[error(
        "{kind} {name}: the cluster does not serve {api_version} (install its CRDs and restart the operator, or choose another way to expose the tenant)"
    )]
    Unserved {
        /// Kind of the child.
        kind: &'static str,
        /// Name of the child.
        name: String,
        /// The API version the cluster lacks.
        api_version: &'static str,
    },
    /// The API server did not answer within the reconcile timeout.
    #[error("reconcile took longer than {0:?}; the API server did not answer in time")]
    Timeout(std::time::Duration),
}

impl Error {
    /// Whether retrying could help without a spec change: conflicts, rate
    /// limits, server errors, timeouts and broken connections could; a spec
    /// or object the API server rejects as invalid cannot.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Invalid(_) | Error::Unserved { .. } => false,
            // A server that is down, or a registration Secret being fixed,
            // comes right without a spec change; the Secret is not watched,
            // so only a retry notices.
            Error::GenerateCredentials(_)
            | Error::Timeout(_)
            | Error::SharedServer { .. }
            | Error::SharedDatabase { .. } => true,
            Error::Apply { source, .. }
            | Error::Prune { source, .. }
            | Error::PatchStatus { source, .. }
            | Error::Finalizer { source, .. }
            | Error::ReadSecret { source, .. } => match source {
                kube::Error::Api(status) => matches!(status.code, 408 | 409 | 429 | 500..=599),
                _ => true,
            },
        }
    }

    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "InvalidSpec",
            Error::Apply { .. } => "ApplyFailed",
            Error::Prune { .. } => "PruneFailed",
            Error::PatchStatus { .. } => "StatusUpdateFailed",
            Error::GenerateCredentials(_) => "CredentialGenerationFailed",
            Error::Timeout(_) => "Timeout",
            Error::Unserved { .. } => "KindNotServed",
            Error::ReadSecret { .. } => "ReadSecretFailed",
            Error::SharedServer { reason, .. } => reason,
            Error::SharedDatabase { source, .. } => source.kind.reason(),
            Error::Finalizer { .. } => "FinalizerUpdateFailed",
        }
    }
}

impl Error {
    /// For a failure of the database itself, the DatabaseReady condition's
    /// reason and message; None when the failure was elsewhere.
    pub fn database_failure(&self) -> Option<(&'static str, String)> {
        matches!(
            self,
            Error::SharedServer { .. } | Error::SharedDatabase { .. }
        )
        .then(|| (self.reason(), self.to_string()))
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
