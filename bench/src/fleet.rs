//! The fleet the operator benchmarks reconcile: tenants alternately
//! Growth/Managed and Starter/Embedded, over 20 namespaces.

use anyhow::Context;
use crm_crds::CrmTenant;

const MANAGED: &str = include_str!("../../examples/growth-managed.yaml");
const EMBEDDED: &str = include_str!("../../examples/starter-embedded.yaml");

/// `n` tenants named `t00000`…, alternately from the Growth/Managed and the
/// Starter/Embedded example, in namespaces `bench-00`…`bench-19`.
pub fn tenants(n: usize) -> anyhow::Result<Vec<CrmTenant>> {
    let managed: CrmTenant = serde_saphyr::from_str(MANAGED).context("parse growth-managed")?;
    let embedded: CrmTenant = serde_saphyr::from_str(EMBEDDED).context("parse starter-embedded")?;
    Ok((0..n)
        .map(|i| {
            let mut t = if i % 2 == 0 {
                managed.clone()
            } else {
                embedded.clone()
            };
            t.metadata.name = Some(format!("t{i:05}"));
            t.metadata.namespace = Some(format!("bench-{:02}", i % 20));
            t
        })
        .collect())
}
