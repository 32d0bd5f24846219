//! Prometheus metrics of the operator, served on `/metrics`.

use crate::cloud::{CallRecord, ErrorClass};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `true`, `false` or `unknown` (no Ready condition yet, or Unknown).
    pub ready: String,
}

/// One resource's `Ready` condition as the watch cache holds it.
pub struct Readiness {
    /// The condition's status (`None`: the resource has none yet).
    pub ready: Option<String>,
    /// Since when it has not been Ready: the condition's lastTransitionTime,
    /// or the resource's creation when it has no condition yet.
    pub since: Option<jiff::Timestamp>,
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
    pub resources: Family<ReadyLabels, Gauge>,
    pub not_ready_max: Gauge<f64, AtomicU64>,
    /// CVM API endpoints that do not answer now (see `cloud::reachability`).
    pub cloud_unreachable: Gauge,
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
        let resources = Family::<ReadyLabels, Gauge>::default();
        registry.register(
            "resources",
            "CvmInstance resources by their Ready condition",
            resources.clone(),
        );
        let not_ready_max = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "resource_not_ready_max_seconds",
            "The longest time any CvmInstance has been continuously not Ready (0: all Ready)",
            not_ready_max.clone(),
        );
        let cloud_unreachable = Gauge::default();
        registry.register(
            "cloud_endpoints_unreachable",
            "CVM API endpoints that do not answer (calls wait; one probe per interval)",
            cloud_unreachable.clone(),
        );
        Self {
            registry,
            resources,
            not_ready_max,
            cloud_unreachable,
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

    /// Replaces the readiness gauges from the watch cache's view at `now`.
    pub fn set_readiness(
        &self,
        resources: impl IntoIterator<Item = Readiness>,
        now: jiff::Timestamp,
    ) {
        let mut counts = [0i64; 3];
        let mut longest = 0f64;
        for r in resources {
            let slot = match r.ready.as_deref() {
                Some("True") => 0,
                Some("False") => 1,
                _ => 2,
            };
            counts[slot] += 1;
            if slot != 0
                && let Some(since) = r.since
            {
                longest = longest.max(now.duration_since(since).as_secs_f64().max(0.0));
            }
        }
        for (label, n) in ["true", "false", "unknown"].into_iter().zip(counts) {
            self.resources
                .get_or_create(&ReadyLabels {
                    ready: label.into(),
                })
                .set(n);
        }
        self.not_ready_max.set(longest);
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

    fn at(secs: i64) -> Option<jiff::Timestamp> {
        Some(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn sample(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("{series} not in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn readiness_counts_and_the_longest_not_ready_spell() {
        let m = Metrics::default();
        let r = |ready: Option<&str>, since| Readiness {
            ready: ready.map(str::to_string),
            since,
        };
        let now = jiff::Timestamp::from_second(2_000).unwrap();
        m.set_readiness(
            [
                r(Some("True"), at(0)),
                r(Some("False"), at(1_000)),
                r(Some("Unknown"), at(1_500)),
                r(None, at(1_900)),
                r(Some("False"), at(1_200)),
            ],
            now,
        );
        let text = m.encode();
        let ready = |v: &str| sample(&text, &format!("cvm_operator_resources{{ready=\"{v}\"}}"));
        assert_eq!(
            (ready("true"), ready("false"), ready("unknown")),
            (1.0, 2.0, 2.0)
        );
        // Ready since 0 does not count; the oldest not-Ready spell began at 1,000.
        let longest = "cvm_operator_resource_not_ready_max_seconds";
        assert_eq!(sample(&text, longest), 1_000.0);
        // All Ready again: the gauge falls to 0 and the counts are replaced.
        m.set_readiness([r(Some("True"), at(1_000))], now);
        let text = m.encode();
        assert_eq!(sample(&text, longest), 0.0);
        let not_ready = r#"cvm_operator_resources{ready="false"}"#;
        assert_eq!(sample(&text, not_ready), 0.0);
    }
}
