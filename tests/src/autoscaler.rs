//! A HorizontalPodAutoscaler controller for the double, following the rules
//! of Kubernetes' own: the replica count it wants comes from the metrics
//! (here: what a test says the load needs), clamped into [min, max]; it never
//! scales a target whose replica count is zero; and it writes through the
//! target's `scale` subresource as `kube-controller-manager`, so it owns
//! `spec.replicas` from then on. Stabilization windows and tolerances are
//! left out: a test's recommendation takes effect on the next pass.

use std::time::Duration;

use serde_json::{Value, json};

use crate::ApiDouble;
use crate::fields::{Scope, Writer};
use crate::route::Res;
use crate::store::{Key, Mode, Owner};

/// The manager the controller writes as.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";

const SCALER: Writer<'static> = Writer {
    manager: CONTROLLER_MANAGER,
    scope: Scope::Scale,
};
const STATUS: Writer<'static> = Writer {
    manager: CONTROLLER_MANAGER,
    scope: Scope::Status,
};

fn hpas() -> Res {
    Res {
        group: "autoscaling".into(),
        version: "v2".into(),
        plural: "horizontalpodautoscalers".into(),
    }
}

fn deployments() -> Res {
    Res {
        group: "apps".into(),
        version: "v1".into(),
        plural: "deployments".into(),
    }
}

impl ApiDouble {
    /// Says what the metrics of HPA `ns/name` ask for: the replica count it
    /// moves its target towards (within its bounds) from the next pass on.
    pub fn recommend(&self, ns: &str, name: &str, replicas: i32) {
        self.lock()
            .recommendations
            .insert((ns.to_owned(), name.to_owned()), replicas);
    }

    /// One pass of the HPA controller over every HPA.
    pub fn sync_autoscalers(&self) {
        let mut state = self.lock();
        let keys: Vec<Key> = state
            .objects
            .keys()
            .filter(|k| k.0 == hpas())
            .cloned()
            .collect();
        for key in keys {
            let Some(hpa) = state.objects.get(&key).cloned() else {
                continue;
            };
            let target = hpa
                .pointer("/spec/scaleTargetRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let target_key = (deployments(), key.1.clone(), target.to_owned());
            let current = state.objects.get(&target_key).map(|d| {
                d.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            });
            let min = hpa
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let max = hpa
                .pointer("/spec/maxReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(min);
            let wanted = state
                .recommendations
                .get(&(key.1.clone(), key.2.clone()))
                .map(|r| i64::from(*r));
            let (status, scale_to) = decide(current, wanted, min, max);
            if let (Some(replicas), Some(mut deployment)) =
                (scale_to, state.objects.get(&target_key).cloned())
            {
                deployment["spec"]["replicas"] = replicas.into();
                let tx = self.tx().clone();
                let _ = state.update(
                    &tx,
                    target_key,
                    deployment,
                    Mode::Main,
                    Owner::Update(SCALER),
                );
            }
            let tx = self.tx().clone();
            let body = json!({ "status": status });
            let _ = state.update(&tx, key, body, Mode::Status, Owner::Update(STATUS));
        }
    }

    /// Runs the HPA controller every `every` until the test ends.
    pub fn run_autoscalers(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let double = self.clone();
        tokio::spawn(async move {
            loop {
                double.sync_autoscalers();
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// The HPA's status, and the replica count to scale to (if it changes).
fn decide(current: Option<i64>, wanted: Option<i64>, min: i64, max: i64) -> (Value, Option<i64>) {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| json!({"type": type_, "status": status, "reason": reason, "message": message});
    let Some(current) = current else {
        let able = condition(
            "AbleToScale",
            "False",
            "FailedGetScale",
            "the HPA controller was unable to get the target's current scale",
        );
        return (
            json!({"currentReplicas": 0, "desiredReplicas": 0, "conditions": [able]}),
            None,
        );
    };
    if current == 0 && min != 0 {
        let active = condition(
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        return (
            json!({"currentReplicas": 0, "desiredReplicas": 0, "conditions": [active]}),
            None,
        );
    }
    let desired = wanted.unwrap_or(current).clamp(min, max.max(min));
    let active = condition(
        "ScalingActive",
        "True",
        "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count",
    );
    let status = json!({
        "currentReplicas": current,
        "desiredReplicas": desired,
        "conditions": [active],
    });
    (status, (desired != current).then_some(desired))
}

#[cfg(test)]
mod tests {
    use super::decide;

    #[test]
    fn never_scales_from_zero_and_clamps_into_its_bounds() {
        assert_eq!(decide(Some(0), Some(5), 2, 8).1, None);
        assert_eq!(decide(Some(1), None, 2, 8).1, Some(2));
        assert_eq!(decide(Some(9), None, 2, 8).1, Some(8));
        assert_eq!(decide(Some(4), Some(20), 2, 8).1, Some(8));
        assert_eq!(decide(Some(4), Some(4), 2, 8).1, None);
        assert_eq!(decide(None, Some(4), 2, 8).1, None);
    }
}
