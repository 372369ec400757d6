//! Watches: initial or replayed events, then live events, as
//! newline-delimited JSON.

use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, stream};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::handlers::partial;
use crate::route::Route;
use crate::store::{ApiError, Event};
use crate::{ApiDouble, DoubleBody};

/// Which events a watch passes on.
#[derive(Clone, Debug)]
struct Filter {
    route: Route,
    meta_only: bool,
}

impl Filter {
    fn line(
        &self,
        etype: &str,
        res_ns: (&crate::route::Res, &str),
        object: &Value,
    ) -> Option<Bytes> {
        let (res, ns) = res_ns;
        let wanted = *res == self.route.res
            && self.route.ns.as_deref().is_none_or(|n| n == ns)
            && self.route.query.selector.matches(object);
        if !wanted {
            return None;
        }
        if self.meta_only {
            Some(encode(etype, &partial(object)))
        } else {
            Some(encode(etype, object))
        }
    }

    fn event(&self, e: &Event) -> Option<Bytes> {
        self.line(e.etype, (&e.res, &e.ns), &e.object)
    }
}

/// One line of a watch, serialized straight from the stored object.
#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    etype: &'a str,
    object: &'a Value,
}

fn encode(etype: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&Line { etype, object }).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Start a watch for `route`.
pub(crate) fn watch(
    double: &ApiDouble,
    route: &Route,
    meta_only: bool,
) -> http::Response<DoubleBody> {
    let filter = Filter {
        route: route.clone(),
        meta_only,
    };
    let since = route
        .query
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse::<u64>().ok())
        .filter(|rv| *rv > 0);
    let (initial, rx, last) = {
        let state = double.lock();
        let rx = double.tx().subscribe(&route.res);
        let initial: Option<Vec<Bytes>> = match since {
            None => Some(
                state
                    .objects_of(&route.res, route.ns.as_deref(), None)
                    .filter_map(|(k, v)| filter.line("ADDED", (&k.0, &k.1), v))
                    .collect(),
            ),
            Some(rv) => state
                .history_since(rv)
                .map(|evs| evs.iter().filter_map(|e| filter.event(e)).collect()),
        };
        (initial, rx, state.rv)
    };
    let Some(initial) = initial else {
        let status = ApiError::new(410, "too old resource version").to_status();
        return stream_response(stream::iter(vec![encode("ERROR", &status)]).boxed());
    };
    let live = stream::unfold((rx, filter), move |(mut rx, filter)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.rv > last => {
                    if let Some(line) = filter.event(&e) {
                        return Some((line, (rx, filter)));
                    }
                }
                Ok(_) => {}
                Err(
                    broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed,
                ) => return None,
            }
        }
    });
    let timeout = Duration::from_secs(route.query.timeout_seconds.unwrap_or(300));
    let all = stream::iter(initial)
        .chain(live)
        .take_until(tokio::time::sleep(timeout));
    stream_response(all.boxed())
}

fn stream_response(
    lines: futures::stream::BoxStream<'static, Bytes>,
) -> http::Response<DoubleBody> {
    let body = StreamBody::new(lines.map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))));
    let mut resp = http::Response::new(BodyExt::boxed_unsync(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
