//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! replicas only one reconciles.
//!
//! ```text
//!  standby ──lease free or expired──► leader: controller::run
//!     ▲                                    │
//!     └──────── lease lost ◄───────────────┘   shutdown: stop, release the lease
//! ```
//!
//! The lease itself is kept by `kube-lease-manager`: it takes a free or
//! expired lease, renews it `grace` seconds before it expires, and writes
//! with server-side apply under a field manager per replica, so two replicas
//! cannot both take it. A standby therefore takes over at the latest when
//! the lease of a leader that died runs out, and at once (within its next
//! look, at most the lease duration) when a leader stopping gracefully
//! releases it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError, LeaseParams};
use tokio::sync::watch;

use crate::controller::{self, Settings};
use crate::metrics::Metrics;

/// Which lease, who we are, and how long a lease lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Election {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Seconds a lease lasts without renewal.
    pub duration_secs: u64,
    /// Seconds before expiry the leader renews.
    pub renew_before_secs: u64,
}

impl Election {
    /// Election for `identity` with the defaults of the install manifests:
    /// a 15 s lease, renewed every 5 s or so.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            lease_name: "crm-operator".into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration_secs: 15,
            renew_before_secs: 10,
        }
    }
}

/// Why the election could not run.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// Durations that cannot work.
    #[error(
        "lease duration {duration}s must be longer than the renewal margin {renew_before}s, both above zero"
    )]
    Durations {
        /// Lease duration.
        duration: u64,
        /// Renewal margin.
        renew_before: u64,
    },
    /// The Lease could not be read or created.
    #[error("preparing lease {namespace}/{name}: {source}")]
    PrepareLease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What went wrong.
        #[source]
        source: LeaseManagerError,
    },
    /// The lease keeper stopped on its own.
    #[error("the lease keeper stopped unexpectedly")]
    KeeperStopped,
}

/// Runs `controller::run` whenever this replica holds the lease, until
/// `shutdown` turns true; then stops the controller and releases the lease.
///
/// `standby` is true while waiting for the lease, for readiness.
pub async fn run(
    client: Client,
    settings: Settings,
    election: Election,
    metrics: Arc<Metrics>,
    standby: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ElectionError> {
    if election.duration_secs == 0
        || election.renew_before_secs == 0
        || election.renew_before_secs >= election.duration_secs
    {
        return Err(ElectionError::Durations {
            duration: election.duration_secs,
            renew_before: election.renew_before_secs,
        });
    }
    let params = LeaseParams::new(
        election.identity.clone(),
        election.duration_secs,
        election.renew_before_secs,
    );
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_parameters(params)
        .build()
        .await
        .map_err(|source| ElectionError::PrepareLease {
            namespace: election.namespace.clone(),
            name: election.lease_name.clone(),
            source,
        })?;
    let (mut leading, keeper) = manager.watch().await;
    let identity = election.identity.as_str();
    let result = loop {
        standby.store(true, Ordering::Release);
        tracing::info!(identity, lease = %election.lease_name, "standing by for the leader lease");
        tokio::select! {
            acquired = leading.wait_for(|leader| *leader) => {
                if acquired.is_err() {
                    break Err(ElectionError::KeeperStopped);
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => break Ok(()),
        }
        standby.store(false, Ordering::Release);
        metrics.set_leader(true);
        tracing::info!(
            identity,
            "acquired the leader lease; starting the controller"
        );
        let mut lost = leading.clone();
        let mut stop = shutdown.clone();
        controller::run(
            client.clone(),
            settings.clone(),
            metrics.clone(),
            async move {
                tokio::select! {
                    _ = lost.wait_for(|leader| !*leader) => {}
                    _ = stop.wait_for(|stop| *stop) => {}
                }
            },
        )
        .await;
        metrics.set_leader(false);
        if *shutdown.borrow() {
            break Ok(());
        }
        tracing::warn!(identity, "lost the leader lease; controller stopped");
    };
    standby.store(false, Ordering::Release);
    // Closing the channel makes the keeper release the lease and return.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), keeper).await {
        Ok(Ok(Ok(_))) => tracing::info!(identity, "released the leader lease"),
        Ok(Ok(Err(error))) => tracing::warn!(identity, %error, "could not release the lease"),
        Ok(Err(error)) => tracing::warn!(identity, %error, "the lease keeper failed"),
        Err(_) => tracing::warn!(identity, "releasing the lease timed out"),
    }
    result
}
