//! The simulated CVM control plane: instances, their lifecycle and every
//! action's validation and effect. Pure state plus a clock argument; the HTTP
//! front ([`super::http`]) does authentication, parsing, faults and stats.
//!
//! Time is "simulation time" (real time × the time scale), passed in as `now`.
//! Each operation schedules its future steps (PENDING → RUNNING, the tail
//! where LatestOperationState is still OPERATING, removal after TERMINATING…);
//! due steps are applied lazily at the start of every request, so thousands of
//! idle instances cost nothing.
//!
//! This module holds the shared state, the clock and the checks every action
//! uses; each action family has its own file: [`run`] (RunInstances and its
//! validation), [`price`] (InquiryPriceRunInstances), [`lifecycle`]
//! (start, stop, reboot, terminate), [`modify`] (type, bandwidth and attribute
//! changes), [`describe`] (read-only queries) and [`tags`] (the Tag
//! service's actions on instances).

mod billing;
mod checks;
mod describe;
mod disks;
mod lifecycle;
mod login;
mod modify;
mod naming;
mod network;
mod price;
mod run;
mod tags;
#[cfg(test)]
mod tests;
mod validate;

use checks::check_instance_id;
pub use checks::is_instance_id;
pub use describe::InstancesView;

use super::catalogue::{Catalogue, InstanceType, Region, Stock};
use crate::cloud::model::{Instance, InstanceState, OperationState};
use checks::check_instance_type_format;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::Duration;

/// An API error: code and message. The HTTP front adds the RequestId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

pub fn api_err(code: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        code: code.to_string(),
        message: message.into(),
    }
}

fn missing(param: &str) -> ApiError {
    api_err(
        "MissingParameter",
        format!("The request is missing a required parameter `{param}`."),
    )
}

fn bad_value(param: &str, why: &str) -> ApiError {
    api_err(
        "InvalidParameterValue",
        format!("The value of parameter `{param}` is invalid: {why}."),
    )
}

/// How long each transition takes, in simulation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Timings {
    /// PENDING → RUNNING (or LAUNCH_FAILED).
    pub launch: Duration,
    pub start: Duration,
    pub stop: Duration,
    pub reboot: Duration,
    /// TERMINATING → gone.
    pub terminate: Duration,
    /// Prepaid first terminate → SHUTDOWN.
    pub shutdown: Duration,
    pub reset_type: Duration,
    /// ResetInstance's reinstall (the instance is stopped meanwhile).
    pub reinstall: Duration,
    /// Bandwidth and attribute changes, and the work of a change made while
    /// the instance is stopped (keys, password, network, disks).
    pub modify: Duration,
    /// After the state is final, LatestOperationState stays OPERATING this
    /// long; mutations meanwhile get OperationDenied.InstanceOperationInProgress.
    pub operation_tail: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        let ms = Duration::from_millis;
        Self {
            launch: ms(2000),
            start: ms(1000),
            stop: ms(1000),
            reboot: ms(1000),
            terminate: ms(1000),
            shutdown: ms(1000),
            reset_type: ms(1000),
            reinstall: ms(2000),
            modify: ms(500),
            operation_tail: ms(500),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub timings: Timings,
    /// Instances per account and region (LimitExceeded.InstanceQuota).
    pub instance_quota: usize,
    /// Share of launches that end in LAUNCH_FAILED (besides broken images).
    pub launch_failure_rate: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            timings: Timings::default(),
            instance_quota: 20_000,
            launch_failure_rate: 0.0,
        }
    }
}

/// Who is calling and when.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub request_id: &'a str,
    pub now: Duration,
    /// `X-TC-Language: zh-CN` (the SDK default) gets Chinese zone names.
    pub chinese: bool,
}

/// A change of an instance's view made when its step is due (what an
/// operation changes besides the state: keys, addresses, disks, image…).
#[derive(Clone)]
struct Patch(std::sync::Arc<dyn Fn(&mut Instance) + Send + Sync>);

impl Patch {
    fn new(f: impl Fn(&mut Instance) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for Patch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Patch")
    }
}

/// A future change of one instance.
#[derive(Debug, Clone, Default)]
struct Step {
    at: Duration,
    state: Option<InstanceState>,
    bandwidth: Option<i64>,
    op_state: Option<OperationState>,
    error_msg: Option<String>,
    stop_charging_mode: Option<&'static str>,
    isolated_source: Option<&'static str>,
    patch: Option<Patch>,
    remove: bool,
}

struct SimInstance {
    account: String,
    region: String,
    seq: u64,
    view: Instance,
    /// `view` as JSON, cached until the next change: DescribeInstances then
    /// costs a copy per instance instead of a serialisation.
    json: std::cell::OnceCell<Box<serde_json::value::RawValue>>,
    steps: VecDeque<Step>,
}

impl SimInstance {
    /// Mutable access; drops the cached JSON.
    fn touch(&mut self) -> &mut Self {
        self.json.take();
        self
    }

    fn json(&self) -> &serde_json::value::RawValue {
        self.json.get_or_init(|| {
            serde_json::value::to_raw_value(&self.view).expect("an Instance serialises")
        })
    }
}

pub struct Engine {
    config: EngineConfig,
    catalogue: Catalogue,
    instances: HashMap<String, SimInstance>,
    /// Creation order (seq → id), the order DescribeInstances lists in.
    order: BTreeMap<u64, String>,
    wakeups: BinaryHeap<Reverse<(Duration, u64, String)>>,
    /// (account, region, ClientToken) → ids of that create.
    tokens: HashMap<(String, String, String), Vec<String>>,
    next_seq: u64,
    next_private: HashMap<String, u32>,
    next_public: u32,
}

/// The steps of an operation that reaches `final_state` after `took` and then
/// finishes its tail (LatestOperationState OPERATING → SUCCESS).
fn settle(tail: Duration, took: Duration, final_state: Option<InstanceState>) -> Vec<Step> {
    vec![
        Step {
            at: took,
            state: final_state,
            ..Default::default()
        },
        Step {
            at: took + tail,
            op_state: Some(OperationState::Success),
            ..Default::default()
        },
    ]
}

impl Engine {
    pub fn new(config: EngineConfig, catalogue: Catalogue) -> Self {
        Self {
            config,
            catalogue,
            instances: HashMap::new(),
            order: BTreeMap::new(),
            wakeups: BinaryHeap::new(),
            tokens: HashMap::new(),
            next_seq: 0,
            next_private: HashMap::new(),
            next_public: 0,
        }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Applies every step that is due at `now`.
    pub fn advance(&mut self, now: Duration) {
        while let Some(Reverse((at, _, _))) = self.wakeups.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, id))) = self.wakeups.pop() else {
                break;
            };
            let mut remove = false;
            if let Some(inst) = self.instances.get_mut(&id).map(SimInstance::touch) {
                while inst.steps.front().is_some_and(|s| s.at <= now) {
                    let step = inst.steps.pop_front().expect("checked");
                    let v = &mut inst.view;
                    if let Some(s) = step.state {
                        v.instance_state = Some(s);
                    }
                    if let Some(bw) = step.bandwidth {
                        v.internet_accessible
                            .get_or_insert_with(Default::default)
                            .internet_max_bandwidth_out = Some(bw);
                    }
                    if let Some(op) = step.op_state {
                        v.latest_operation_state = Some(op);
                    }
                    if let Some(msg) = step.error_msg {
                        v.latest_operation_error_msg = Some(msg);
                    }
                    if let Some(m) = step.stop_charging_mode {
                        v.stop_charging_mode = Some(m.into());
                    }
                    if let Some(s) = step.isolated_source {
                        v.isolated_source = Some(s.into());
                    }
                    if let Some(p) = step.patch {
                        (p.0)(v);
                    }
                    remove |= step.remove;
                }
            }
            if remove && let Some(inst) = self.instances.remove(&id) {
                self.order.remove(&inst.seq);
            }
        }
    }

    /// Puts an instance in the transitional `state` and begins `action`.
    fn begin_in(
        &mut self,
        id: &str,
        state: InstanceState,
        action: &str,
        ctx: &Ctx<'_>,
        steps: Vec<Step>,
    ) {
        if let Some(inst) = self.instances.get_mut(id).map(SimInstance::touch) {
            inst.view.instance_state = Some(state);
        }
        self.begin(id, action, ctx, steps);
    }

    /// Marks the start of `action` on an instance and schedules its steps
    /// (offsets relative to `now`).
    fn begin(&mut self, id: &str, action: &str, ctx: &Ctx<'_>, steps: Vec<Step>) {
        let Some(inst) = self.instances.get_mut(id).map(SimInstance::touch) else {
            return;
        };
        inst.view.latest_operation = Some(action.to_string());
        inst.view.latest_operation_state = Some(OperationState::Operating);
        inst.view.latest_operation_request_id = Some(ctx.request_id.to_string());
        inst.view.latest_operation_error_msg = Some(String::new());
        inst.steps.clear();
        for mut s in steps {
            s.at += ctx.now;
            self.wakeups.push(Reverse((s.at, inst.seq, id.to_string())));
            inst.steps.push_back(s);
        }
    }

    fn settle(&self, took: Duration, final_state: Option<InstanceState>) -> Vec<Step> {
        settle(self.config.timings.operation_tail, took, final_state)
    }

    /// Begins `action`, a change that needs the instance stopped and takes
    /// `work`: a RUNNING instance (the caller checked `ForceStop`) is
    /// stopped first (STOPPING → STOPPED, still OPERATING), `patch`
    /// applies, and it is started again (STARTING → RUNNING), as the
    /// documentation of each such action says; a STOPPED one stays stopped
    /// unless the change `boots` it (a reinstall).
    fn begin_stopped_change(
        &mut self,
        id: &str,
        action: &str,
        ctx: &Ctx<'_>,
        work: Duration,
        patch: Patch,
        boots: bool,
    ) {
        let t = self.config.timings.clone();
        let running = self.instances[id].view.instance_state == Some(InstanceState::Running);
        let start_after = running || boots;
        let mut steps = Vec::new();
        let mut at = Duration::ZERO;
        if running {
            at += t.stop;
            steps.push(Step {
                at,
                state: Some(InstanceState::Stopped),
                stop_charging_mode: Some("KEEP_CHARGING"),
                ..Default::default()
            });
        }
        at += work;
        steps.push(Step {
            at,
            state: start_after.then_some(InstanceState::Starting),
            patch: Some(patch),
            ..Default::default()
        });
        if start_after {
            at += t.start;
            steps.push(Step {
                at,
                state: Some(InstanceState::Running),
                stop_charging_mode: Some("NOT_APPLICABLE"),
                ..Default::default()
            });
        }
        steps.push(Step {
            at: at + t.operation_tail,
            op_state: Some(OperationState::Success),
            ..Default::default()
        });
        if running {
            self.begin_in(id, InstanceState::Stopping, action, ctx, steps);
        } else {
            self.begin(id, action, ctx, steps);
        }
    }

    /// Begins `action`, a change without a state change: `patch` applies
    /// after `took`, then the OPERATING tail ends.
    fn begin_change(
        &mut self,
        id: &str,
        action: &str,
        ctx: &Ctx<'_>,
        took: Duration,
        patch: Patch,
    ) {
        let mut steps = self.settle(took, None);
        steps[0].patch = Some(patch);
        self.begin(id, action, ctx, steps);
    }

    // -- lookups ---------------------------------------------------------------

    fn visible(&self, ctx: &Ctx<'_>, id: &str) -> bool {
        self.visible_in(ctx.account, ctx.region, id)
    }

    fn visible_in(&self, account: &str, region: &str, id: &str) -> bool {
        self.instances
            .get(id)
            .is_some_and(|i| i.account == account && i.region == region)
    }

    fn check_ids(&self, ctx: &Ctx<'_>, ids: &[String], max: usize) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Err(missing("InstanceIds"));
        }
        if ids.len() > max {
            return Err(api_err(
                "InvalidParameterValue.LimitExceeded",
                format!("The number of `InstanceIds` exceeds the limit of {max}."),
            ));
        }
        let mut seen = HashSet::new();
        for id in ids {
            check_instance_id(id)?;
            if !seen.insert(id) {
                return Err(api_err(
                    "InvalidParameterValue.Duplicate",
                    format!("`{id}` is given twice."),
                ));
            }
        }
        for id in ids {
            if !self.visible(ctx, id) {
                return Err(api_err(
                    "InvalidInstanceId.NotFound",
                    format!("The instance `{id}` does not exist."),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a mutation when an instance is in the wrong state or busy.
    /// One such instance fails the whole call (the API's documented batch
    /// behaviour: "如果批量实例存在不允许操作的实例，操作会以特定错误码返回");
    /// the message names every instance that fails the same way, in the
    /// `['ins-…', …]` form the service's messages use, so a caller can split
    /// them off.
    fn check_mutable(&self, ids: &[String], allowed: &[InstanceState]) -> Result<(), ApiError> {
        let problem = |id: &String| {
            let v = &self.instances[id].view;
            let state = v.instance_state.clone().unwrap_or(InstanceState::Pending);
            if !allowed.contains(&state) {
                Some((
                    format!("UnsupportedOperation.InstanceState{}", state.error_suffix()),
                    Some(state),
                ))
            } else if v.operating() {
                Some((
                    "OperationDenied.InstanceOperationInProgress".to_string(),
                    None,
                ))
            } else {
                None
            }
        };
        let Some((code, state)) = ids.iter().find_map(problem) else {
            return Ok(());
        };
        let named: Vec<String> = ids
            .iter()
            .filter(|id| problem(id).is_some_and(|(c, _)| c == code))
            .map(|id| format!("'{id}'"))
            .collect();
        let list = format!("[{}]", named.join(", "));
        Err(match state {
            Some(state) => api_err(
                &code,
                format!(
                    "The instance `{list}` is in state {state}, which does not allow this operation."
                ),
            ),
            None => api_err(
                &code,
                format!(
                    "The instance `{list}` already has operation in progress. Please try again later."
                ),
            ),
        })
    }

    /// The states of a change that needs the instance stopped: STOPPED, or
    /// RUNNING when the caller asked for `ForceStop`; never an instance
    /// stopped without charging (its resources may be gone).
    fn check_stoppable(&self, ids: &[String], force_stop: bool) -> Result<(), ApiError> {
        let allowed: &[InstanceState] = if force_stop {
            &[InstanceState::Stopped, InstanceState::Running]
        } else {
            &[InstanceState::Stopped]
        };
        self.check_mutable(ids, allowed)?;
        self.check_not_stop_charging(ids)
    }

    /// `UnsupportedOperation.StoppedModeStopCharging` for an instance
    /// stopped with `StoppedMode=STOP_CHARGING`.
    fn check_not_stop_charging(&self, ids: &[String]) -> Result<(), ApiError> {
        for id in ids {
            let v = &self.instances[id].view;
            if v.instance_state == Some(InstanceState::Stopped)
                && v.stop_charging_mode.as_deref() == Some("STOP_CHARGING")
            {
                return Err(api_err(
                    "UnsupportedOperation.StoppedModeStopCharging",
                    format!(
                        "The instance `{id}` is stopped without charging, which does not allow this operation; start it first."
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn instance_count(&self) -> usize {
        self.instances.len()
    }

    pub fn state_counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for i in self.instances.values() {
            let s = i
                .view
                .instance_state
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            *out.entry(s).or_insert(0) += 1;
        }
        out
    }

    fn region(&self, ctx: &Ctx<'_>) -> Result<&Region, ApiError> {
        self.catalogue.region(ctx.region).ok_or_else(|| {
            api_err(
                "UnsupportedRegion",
                format!("The region `{}` is not supported.", ctx.region),
            )
        })
    }

    fn check_type_in_zone(&self, type_name: &str, zone: &str) -> Result<InstanceType, ApiError> {
        check_instance_type_format(type_name)?;
        let t = self.catalogue.instance_type(type_name).ok_or_else(|| {
            api_err(
                "InvalidParameterValue.InstanceTypeNotFound",
                format!("The instance type `{type_name}` does not exist."),
            )
        })?;
        match t.stock_in(zone) {
            None => Err(api_err(
                "ResourceUnavailable.InstanceType",
                format!(
                    "This instance type `{type_name}` is not available in the current zone `{zone}`."
                ),
            )),
            Some(Stock::SoldOut) => Err(api_err(
                "ResourceInsufficient.SpecifiedInstanceType",
                format!("The instance type `{type_name}` is sold out in zone `{zone}`."),
            )),
            Some(Stock::Sell) => Ok(t.clone()),
        }
    }
}
