//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! replicas only one reconciles.
//!
//! ```text
//!  standby ──lease free or expired──► leader: controller::run
//!                                        │            │
//!              shutdown: stop, release ◄─┘            └─► lease lost: cancel, exit
//!                                                         (the pod restarts as a standby)
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

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
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
    /// Another replica took the lease, or this one could not confirm it
    /// held it in time; the process should exit and start over as a standby.
    #[error("lost the leader lease")]
    LeaseLost,
}

/// Runs the controller while this replica leads.
async fn lead(
    client: &Client,
    settings: &Settings,
    election: &Election,
    metrics: &Arc<Metrics>,
    standby: &AtomicBool,
    leading: &watch::Receiver<bool>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), ElectionError> {
    let identity = election.identity.as_str();
    standby.store(false, Ordering::Release);
    metrics.set_leader(true);
    tracing::info!(
        identity,
        "acquired the leader lease; starting the controller"
    );
    let mut stop = shutdown.clone();
    let controller = controller::run(
        client.clone(),
        settings.clone(),
        metrics.clone(),
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        },
    );
    let outcome = tokio::select! {
        () = controller => Ok(()),
        // Dropping the controller cancels its reconciles at once: another
        // replica may be leading already.
        () = lost(client, election, leading.clone()) => Err(ElectionError::LeaseLost),
    };
    metrics.set_leader(false);
    metrics.set_synced(false);
    metrics.count_tenants(None);
    if outcome.is_err() {
        tracing::error!(identity, "lost the leader lease; stopped the controller");
    }
    outcome
}

/// Resolves when this replica can no longer be sure it leads: the keeper
/// says so, the Lease names another holder, or the Lease could not be read
/// back in time (a renewal may have failed unseen).
async fn lost(client: &Client, election: &Election, mut leading: watch::Receiver<bool>) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &election.namespace);
    // The keeper renews every `duration - renew_before`. A read that finds a
    // newer renewTime than the read before proves a renewal after that
    // earlier read started, so the lease holds until at least that start +
    // `duration` (by this replica's clock). Giving up a third of the renewal
    // margin before then, and looking every eighth of it (a read may take a
    // whole period before it times out), stops the controller before any
    // other replica can take the lease, while on-time renewals never trip it.
    let duration = Duration::from_secs(election.duration_secs);
    let renew_before = Duration::from_secs(election.renew_before_secs);
    let give_up = duration.saturating_sub(renew_before / 3);
    let period = renew_before / 8;
    let watchdog = async {
        // The lease was taken just before this started.
        let mut confirmed = tokio::time::Instant::now();
        let mut previous_read = confirmed;
        let mut renewed = None;
        loop {
            tokio::time::sleep(period).await;
            let started = tokio::time::Instant::now();
            match tokio::time::timeout(period, api.get(&election.lease_name)).await {
                Ok(Ok(lease)) => {
                    let spec = lease.spec.unwrap_or_default();
                    if spec.holder_identity.as_deref() != Some(election.identity.as_str()) {
                        tracing::warn!(holder = ?spec.holder_identity, "the Lease names another holder");
                        return;
                    }
                    if spec.renew_time.is_some() && spec.renew_time != renewed {
                        confirmed = previous_read;
                        renewed = spec.renew_time;
                    }
                    previous_read = started;
                }
                Ok(Err(error)) => tracing::warn!(%error, "could not read the Lease back"),
                Err(_) => tracing::warn!("reading the Lease back timed out"),
            }
            if confirmed.elapsed() >= give_up {
                tracing::warn!(?give_up, "no renewal of the lease seen in time");
                return;
            }
        }
    };
    tokio::select! {
        _ = leading.wait_for(|leader| !*leader) => {}
        () = watchdog => {}
    }
}

/// Waits for the lease, then runs `controller::run` until `shutdown` turns
/// true, and releases the lease. A leader that loses the lease stops its
/// controller at once and returns [`ElectionError::LeaseLost`]: the process
/// exits and comes back as a standby, as client-go's elector does.
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
    standby.store(true, Ordering::Release);
    tracing::info!(identity, lease = %election.lease_name, "standing by for the leader lease");
    let acquired = tokio::select! {
        acquired = leading.wait_for(|leader| *leader) => acquired.is_ok(),
        _ = shutdown.wait_for(|stop| *stop) => false,
    };
    let result = if acquired {
        lead(
            &client, &settings, &election, &metrics, &standby, &leading, &shutdown,
        )
        .await
    } else if *shutdown.borrow() {
        Ok(())
    } else {
        Err(ElectionError::KeeperStopped)
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
