//! Prometheus metrics of the operator, served on `/metrics`.

use crate::cloud::{CallRecord, ErrorClass};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub action: String,
    /// `ok`, or the error class.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ClassLabels, Counter>,
    pub cloud_calls: Family<CallLabels, Counter>,
    pub cloud_latency: Family<ActionLabels, Histogram>,
    pub reconcile_duration: Histogram,
    pub instances: Family<StateLabels, Gauge>,
    /// 1 while this replica holds the lease (or runs without election).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cvm_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        let errors = Family::<ClassLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile errors by class",
            errors.clone(),
        );
        let cloud_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "cloud_calls",
            "CVM API calls (HTTP attempts) by action and result",
            cloud_calls.clone(),
        );
        let cloud_latency = Family::<ActionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        registry.register(
            "cloud_call_duration_seconds",
            "CVM API call latency",
            cloud_latency.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        let instances = Family::<StateLabels, Gauge>::default();
        registry.register(
            "instances",
            "Managed instances by observed state",
            instances.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica holds the lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            cloud_calls,
            cloud_latency,
            reconcile_duration,
            instances,
            leader,
        }
    }
}

impl Metrics {
    /// Feeds a client call record (installed as the client's observer).
    pub fn record_call(&self, r: &CallRecord) {
        let result = r.error.as_ref().map(|(_, c)| c.as_str()).unwrap_or("ok");
        self.cloud_calls
            .get_or_create(&CallLabels {
                action: r.action.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.cloud_latency
            .get_or_create(&ActionLabels {
                action: r.action.to_string(),
            })
            .observe(r.duration.as_secs_f64());
    }

    pub fn reconciled(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    pub fn error(&self, class: Option<ErrorClass>) {
        let class = class.map(ErrorClass::as_str).unwrap_or("kubernetes");
        self.errors
            .get_or_create(&ClassLabels {
                class: class.into(),
            })
            .inc();
    }

    /// Replaces the instance-state gauge.
    pub fn set_instance_states(&self, counts: &std::collections::HashMap<String, i64>) {
        self.instances.clear();
        for (state, n) in counts {
            self.instances
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(*n);
        }
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_gauge_is_part_of_the_registry() {
        let m = Metrics::default();
        assert!(m.encode().contains("cvm_operator_leader 0\n"));
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains("# TYPE cvm_operator_leader gauge\n"),
            "{text}"
        );
        assert!(text.contains("cvm_operator_leader 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
