//! The dashboard's figures: reports over every deal and ticket, too costly
//! to compute for each page view. The first view computes them; later views
//! get the last figures at once, and when those are older than the TTL one
//! view starts a refresh in the background, so no view waits for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::AppState;
use crate::error::ApiError;
use crate::reports::{self, TicketStats};

/// A line of a dashboard table: a stage (or month), a count and a sum.
#[derive(Debug)]
pub struct Total {
    pub(super) stage: String,
    pub(super) currency: String,
    pub(super) count: i64,
    pub(super) total: String,
}

impl Total {
    fn new(label: String, currency: String, count: i64, total_minor: i64) -> Self {
        Self {
            stage: label,
            currency,
            count,
            total: super::money(total_minor),
        }
    }
}

/// What the dashboard shows, for every role (each sees its part).
#[derive(Debug)]
pub struct Figures {
    /// Deals by stage and currency.
    pub pipeline: Vec<Total>,
    /// Won revenue by month and currency.
    pub revenue: Vec<Total>,
    /// Ticket statistics.
    pub tickets: Option<TicketStats>,
}

/// Figures and when they were computed.
type Dated = (Instant, Arc<Figures>);

/// The last figures, shared by the replica's requests.
#[derive(Debug, Clone)]
pub struct Held {
    last: Arc<Mutex<Option<Dated>>>,
    refreshing: Arc<AtomicBool>,
    ttl: Duration,
}

impl Held {
    /// Figures refreshed once older than `ttl`; computed for every view
    /// when it is zero.
    pub fn new(ttl: Duration) -> Self {
        Self {
            last: Arc::default(),
            refreshing: Arc::default(),
            ttl,
        }
    }

    /// The figures to show now.
    pub async fn get(&self, st: &AppState) -> Result<Arc<Figures>, ApiError> {
        if self.ttl.is_zero() {
            return Ok(Arc::new(compute(st).await?));
        }
        let last = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some((at, figures)) = last else {
            let figures = Arc::new(compute(st).await?);
            self.keep(figures.clone());
            return Ok(figures);
        };
        if at.elapsed() >= self.ttl && !self.refreshing.swap(true, Ordering::AcqRel) {
            let (held, st) = (self.clone(), st.clone());
            tokio::spawn(async move {
                match compute(&st).await {
                    Ok(f) => held.keep(Arc::new(f)),
                    Err(e) => tracing::warn!(error = %e, "dashboard figures: refresh failed"),
                }
                held.refreshing.store(false, Ordering::Release);
            });
        }
        Ok(figures)
    }

    fn keep(&self, figures: Arc<Figures>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), figures));
    }
}

/// The reports behind the dashboard (none without the reports module).
async fn compute(st: &AppState) -> Result<Figures, ApiError> {
    if !st.modules.reports {
        return Ok(Figures {
            pipeline: Vec::new(),
            revenue: Vec::new(),
            tickets: None,
        });
    }
    let mut conn = st.db.pool.acquire().await?;
    let pipeline = reports::pipeline_rows(&mut conn)
        .await?
        .into_iter()
        .map(|r| Total::new(r.stage, r.currency, r.count, r.total_minor))
        .collect();
    let revenue = reports::revenue_rows(&mut conn, None, None)
        .await?
        .into_iter()
        .map(|r| Total::new(r.month, r.currency, r.deals, r.total_minor))
        .collect();
    let tickets = Some(reports::ticket_stats(&mut conn, st.db.kind).await?);
    Ok(Figures {
        pipeline,
        revenue,
        tickets,
    })
}
