//! How writes reach watches: one broadcast channel per resource type, as
//! the API server keeps one watch cache per resource, so that a write wakes
//! only the watches of its own type and not every watch of every client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use crate::route::Res;
use crate::store::Event;

/// Events a watch may fall behind by before it is ended (a real client
/// then lists again).
const BACKLOG: usize = 4096;

/// The channels, by resource type. Cheap to clone: clones share them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Feeds {
    by_res: Arc<Mutex<HashMap<Res, broadcast::Sender<Arc<Event>>>>>,
}

impl Feeds {
    /// Announces `event` to the watches of its type, if there are any.
    pub(crate) fn send(&self, event: Arc<Event>) {
        let by_res = self.by_res.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = by_res.get(&event.res) {
            let _ = tx.send(event);
        }
    }

    /// The events of type `res` from now on.
    pub(crate) fn subscribe(&self, res: &Res) -> broadcast::Receiver<Arc<Event>> {
        let mut by_res = self.by_res.lock().unwrap_or_else(PoisonError::into_inner);
        by_res
            .entry(res.clone())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe()
    }
}
