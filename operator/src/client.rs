//! The Kubernetes client, instrumented: a tower layer around its HTTP
//! service counts every request by RBAC verb and response code. And
//! [`write`], which sends a write and reads of its answer only what the
//! operator uses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::metrics::Metrics;
use crate::rbac;

/// Counts requests into `crm_operator_api_requests_total{verb, code}`.
#[derive(Clone, Debug)]
pub struct ApiMetricsLayer {
    metrics: Arc<Metrics>,
}

impl ApiMetricsLayer {
    /// A layer counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ApiMetricsLayer {
    type Service = ApiMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`ApiMetricsLayer`] wraps around the client's.
#[derive(Clone, Debug)]
pub struct ApiMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<Request<B>> for ApiMetrics<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let verb = rbac::verb(request.method().as_str(), &path);
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            match &result {
                Ok(response) => metrics.api_request(verb, response.status().as_str()),
                Err(_) => metrics.api_request(verb, "error"),
            }
            result
        })
    }
}

/// A client from the kubeconfig or the in-cluster service account, counting
/// its requests into `metrics`.
pub async fn instrumented(metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&ApiMetricsLayer::new(metrics))
        .build();
    Ok(client)
}

/// What the operator reads of the answer to a write: the object's name and
/// resourceVersion.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// The object's name (the server's choice for an Event).
    pub name: Option<String>,
    /// The version the write made.
    pub resource_version: Option<String>,
}

/// Sends the write `request` (`verb` names it in the client's traces) and
/// reads only [`Written`] from its answer; the rest of the object, managed
/// fields and all, is skipped unread: decoding it into its type cost more
/// CPU than building and comparing it (`bench/README.md`, "Operator at
/// scale").
pub async fn write(
    client: &kube::Client,
    mut request: Request<Vec<u8>>,
    verb: &'static str,
) -> kube::Result<Written> {
    /// The answer, but for the metadata's name and version, skipped unread.
    #[derive(serde::Deserialize)]
    struct Answer {
        metadata: Written,
    }
    request.extensions_mut().insert(verb);
    Ok(client.request::<Answer>(request).await?.metadata)
}

/// Sends `patch` to the object `name` of kind `K` in `namespace`, or to its
/// `subresource`, through [`write`].
pub async fn patch<K, P>(
    client: &kube::Client,
    namespace: &str,
    subresource: Option<&str>,
    name: &str,
    params: &kube::api::PatchParams,
    patch: &kube::api::Patch<P>,
) -> kube::Result<Written>
where
    K: kube::Resource<DynamicType = ()>,
    P: serde::Serialize,
{
    let at = kube::core::Request::new(K::url_path(&(), Some(namespace)));
    let (request, verb) = match subresource {
        Some(subresource) => (
            at.patch_subresource(subresource, name, params, patch),
            "patch_subresource",
        ),
        None => (at.patch(name, params, patch), "patch"),
    };
    write(client, request.map_err(kube::Error::BuildRequest)?, verb).await
}
