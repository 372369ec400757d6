//! Reaching a tenant from outside the cluster: the controller applies the
//! Ingress or HTTPRoute `spec.server.expose` asks for, reports
//! `https://HOST`, follows changes, prunes what is no longer asked for, and
//! says so plainly when the cluster lacks the Gateway API.

use crate::harness::*;
use crm_operator::gateway_api::HttpRoute;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};

fn endpoint(operator: &Operator, tenant: &CrmTenant) -> Option<String> {
    operator.tenant(tenant).status?.endpoint
}

/// Namespaces the server policy admits to the API port.
fn admitted_namespaces(policy: &NetworkPolicy) -> Vec<String> {
    let rules = policy.spec.as_ref().and_then(|s| s.ingress.clone());
    rules.expect("rules")[0]
        .from
        .iter()
        .flatten()
        .filter_map(|peer| peer.namespace_selector.as_ref())
        .flat_map(|s| s.match_expressions.clone().unwrap_or_default())
        .flat_map(|e| e.values.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_example_gets_its_ingress_an_https_endpoint_and_its_controller_admitted() {
    let operator = Operator::start();
    let tenant = example("growth-ingress");
    let stored = operator.ready(&tenant).await;
    let uid = stored.uid().expect("uid");
    assert_eq!(owned(&operator.double, &tenant, &uid), desired(&tenant));
    let ingress: Ingress = operator.get(&tenant, "").expect("the Ingress");
    let annotations = ingress.metadata.annotations.clone().expect("annotations");
    assert_eq!(annotations["cert-manager.io/cluster-issuer"], "letsencrypt");
    let spec = ingress.spec.expect("spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        spec.tls.expect("tls")[0].secret_name.as_deref(),
        Some("contoso-tls")
    );
    assert_eq!(
        endpoint(&operator, &tenant).as_deref(),
        Some("https://crm.contoso.example.com")
    );
    let policy: NetworkPolicy = operator.get(&tenant, "").expect("the policy");
    assert_eq!(admitted_namespaces(&policy), ["ingress-nginx"]);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_example_gets_its_route_and_keeps_it_when_settled() {
    let operator = Operator::start();
    let tenant = example("growth-gateway");
    let stored = operator.ready(&tenant).await;
    let uid = stored.uid().expect("uid");
    assert_eq!(owned(&operator.double, &tenant, &uid), desired(&tenant));
    let route: HttpRoute = operator.get(&tenant, "").expect("the HTTPRoute");
    assert_eq!(route.spec.hostnames, ["fabrikam.crm.example.com"]);
    let parent = &route.spec.parent_refs[0];
    assert_eq!(
        (parent.name.as_str(), parent.namespace.as_deref()),
        ("public", Some("gateway-system"))
    );
    assert_eq!(
        endpoint(&operator, &tenant).as_deref(),
        Some("https://fabrikam.crm.example.com")
    );
    // Settled: more reconciles write nothing.
    operator.double.clear_log();
    let since = operator.metrics.reconciles(Outcome::Ok);
    operator.nudge(&tenant, "a");
    operator.reconciled(since, 1).await;
    assert_eq!(operator.double.count_writes_excluding_events(), 0);
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposure_follows_the_spec_changed_moved_and_turned_off() {
    let operator = Operator::start();
    let tenant = example("growth-ingress");
    operator.ready(&tenant).await;
    operator
        .eventually("the Ingress", |op| op.get::<Ingress>(&tenant, ""))
        .await;

    // A new host and a Secret of our own instead of cert-manager.
    operator
        .patch(
            &tenant,
            json!({"spec": {"server": {"expose": {"host": "crm.contoso.example.org",
                "tls": {"issuer": null, "secretName": "contoso-wildcard"}}}}}),
        )
        .await;
    let ingress = operator
        .eventually("the Ingress for the new host", |op| {
            let ingress = op.get::<Ingress>(&tenant, "")?;
            let rules = ingress.spec.as_ref()?.rules.clone()?;
            (rules[0].host.as_deref() == Some("crm.contoso.example.org")).then_some(ingress)
        })
        .await;
    let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !annotations
            .keys()
            .any(|k| k.starts_with("cert-manager.io/")),
        "the issuer annotation went: {annotations:?}"
    );
    let tls = ingress.spec.and_then(|s| s.tls).expect("tls");
    assert_eq!(tls[0].secret_name.as_deref(), Some("contoso-wildcard"));
    operator
        .eventually("the new endpoint", |op| {
            (endpoint(op, &tenant).as_deref() == Some("https://crm.contoso.example.org"))
                .then_some(())
        })
        .await;

    // From the Ingress to a Gateway: the route comes, the Ingress goes.
    operator
        .patch(
            &tenant,
            json!({"spec": {"server": {"expose": {"ingress": null, "tls": null,
                "gateway": {"name": "public", "namespace": "gateway-system"}}}}}),
        )
        .await;
    operator
        .eventually("the route replacing the Ingress", |op| {
            let route = op.get::<HttpRoute>(&tenant, "")?;
            op.get::<Ingress>(&tenant, "").is_none().then_some(route)
        })
        .await;
    let policy: NetworkPolicy = operator.get(&tenant, "").expect("the policy");
    assert_eq!(admitted_namespaces(&policy), ["gateway-system"]);

    // Off: the route is pruned, the policy admits no proxy, the endpoint
    // is the Service's again.
    operator
        .patch(&tenant, json!({"spec": {"server": {"expose": null}}}))
        .await;
    operator
        .eventually("the route pruned and the in-cluster endpoint", |op| {
            let gone = op.get::<HttpRoute>(&tenant, "").is_none();
            let url = endpoint(op, &tenant)?;
            (gone && url == "http://contoso.crm-tenants.svc:80").then_some(())
        })
        .await;
    let policy: NetworkPolicy = operator.get(&tenant, "").expect("the policy");
    assert!(admitted_namespaces(&policy).is_empty());
    operator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_gateway_api_a_gateway_tenant_stalls_saying_why_and_others_run() {
    let double = ApiDouble::new();
    double.stop_serving("gateway.networking.k8s.io");
    let operator = Operator::start_on(double, Settings::default());
    // The operator is not held up by the kind the cluster lacks.
    let ingress = example("growth-ingress");
    operator.ready(&ingress).await;

    let tenant = example("growth-gateway");
    operator.create(&tenant).await;
    let stored = operator.phase(&tenant, Phase::Degraded).await;
    let conditions = stored.status.expect("status").conditions;
    let stalled = conditions
        .iter()
        .find(|c| c.type_ == condition::STALLED)
        .expect("Stalled");
    assert_eq!(stalled.status, "True");
    assert!(
        stalled.message.contains("gateway.networking.k8s.io/v1"),
        "{}",
        stalled.message
    );
    assert!(
        operator
            .event_reasons(&tenant)
            .contains(&"KindNotServed".to_owned())
    );
    let writes: Vec<_> = operator
        .double
        .request_log()
        .into_iter()
        .filter(|r| r.is_write() && r.path.contains("httproutes"))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    operator.shutdown().await;
}
