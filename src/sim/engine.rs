//! The simulated CVM control plane: instances, their lifecycle and every
//! action's validation and effect. Pure state plus a clock argument; the HTTP
//! front ([`super::http`]) does authentication, parsing, faults and stats.
//!
//! Time is "simulation time" (real time × the time scale), passed in as `now`.
//! Each operation schedules its future steps (PENDING → RUNNING, the tail
//! where LatestOperationState is still OPERATING, removal after TERMINATING…);
//! due steps are applied lazily at the start of every request, so thousands of
//! idle instances cost nothing.

use super::catalogue::{Catalogue, Stock};
use crate::cloud::model::{self, Instance, InstanceState, OperationState, Tag};
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
    /// Bandwidth and attribute changes.
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

/// A future change of one instance.
#[derive(Debug, Clone, Default)]
struct Step {
    at: Duration,
    state: Option<InstanceState>,
    instance_type: Option<(String, i64, i64)>,
    bandwidth: Option<i64>,
    op_state: Option<OperationState>,
    error_msg: Option<String>,
    stop_charging_mode: Option<&'static str>,
    isolated_source: Option<&'static str>,
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
    host_name: String,
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

fn is_short_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|r| {
        r.len() == 8
            && r.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

pub fn is_instance_id(s: &str) -> bool {
    is_short_id(s, "ins-")
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

fn utc_now_string() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn check_instance_type_format(t: &str) -> Result<(), ApiError> {
    let ok = t.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(api_err(
            "InvalidInstanceType.Malformed",
            format!(
                "The specified InstanceType `{t}` is malformed, it should be like `S5.MEDIUM4`."
            ),
        ))
    }
}

fn check_password(p: &str) -> Result<(), ApiError> {
    const SPECIAL: &str = "()`~!@#$%^&*-+=|{}[]:;',.?/";
    let classes = [
        p.chars().any(|c| c.is_ascii_lowercase()),
        p.chars().any(|c| c.is_ascii_uppercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| SPECIAL.contains(c)),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let allowed = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SPECIAL.contains(c));
    if (8..=30).contains(&p.chars().count()) && classes >= 2 && allowed {
        Ok(())
    } else {
        Err(api_err(
            "InvalidPassword",
            "Password must be 8 to 30 characters and contain at least two of: lower-case letters, upper-case letters, digits and ()`~!@#$%^&*-+=|{}[]:;',.?/.",
        ))
    }
}

fn check_host_name(h: &str) -> Result<(), ApiError> {
    let err = || {
        api_err(
            "InvalidParameterValue.IllegalHostName",
            format!(
                "The HostName `{h}` is illegal: 2 to 60 characters, dot-separated segments of letters, digits and `-`, no leading, trailing or repeated `.` or `-`."
            ),
        )
    };
    if !(2..=60).contains(&h.len()) {
        return Err(err());
    }
    for seg in h.split('.') {
        if seg.is_empty()
            || seg.starts_with('-')
            || seg.ends_with('-')
            || seg.contains("--")
            || !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(err());
        }
    }
    Ok(())
}

fn check_user_data(u: &str) -> Result<(), ApiError> {
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(u) {
        Ok(bytes) if bytes.len() <= 16 * 1024 => Ok(()),
        Ok(_) => Err(api_err(
            "InvalidParameterValue.InvalidUserDataFormat",
            "UserData must be at most 16 KB.",
        )),
        Err(_) => Err(api_err(
            "InvalidParameterValue.InvalidUserDataFormat",
            "UserData must be base64-encoded.",
        )),
    }
}

const SYSTEM_DISK_TYPES: &[&str] = &[
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "CLOUD_BASIC",
    "CLOUD_SSD",
    "CLOUD_PREMIUM",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
];
const DATA_DISK_TYPES: &[&str] = &[
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "LOCAL_NVME",
    "LOCAL_PRO",
    "CLOUD_BASIC",
    "CLOUD_SSD",
    "CLOUD_PREMIUM",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
];
const INTERNET_CHARGE_TYPES: &[&str] = &[
    "BANDWIDTH_PREPAID",
    "TRAFFIC_POSTPAID_BY_HOUR",
    "BANDWIDTH_POSTPAID_BY_HOUR",
    "BANDWIDTH_PACKAGE",
];
const PREPAID_PERIODS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36, 48, 60];
const MAX_BANDWIDTH: i64 = 200;

/// DescribeInstances' answer, borrowing the engine's instances (and their
/// cached JSON).
pub struct InstancesView<'a> {
    pub total_count: i64,
    instance_set: Vec<&'a SimInstance>,
}

impl<'a> InstancesView<'a> {
    pub fn len(&self) -> usize {
        self.instance_set.len()
    }
    pub fn is_empty(&self) -> bool {
        self.instance_set.is_empty()
    }
    pub fn instances(&self) -> impl Iterator<Item = &'a Instance> + '_ {
        self.instance_set.iter().map(|i| &i.view)
    }
}

impl serde::Serialize for InstancesView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let set: Vec<&serde_json::value::RawValue> =
            self.instance_set.iter().map(|i| i.json()).collect();
        let mut st = s.serialize_struct("DescribeInstancesResponse", 2)?;
        st.serialize_field("TotalCount", &self.total_count)?;
        st.serialize_field("InstanceSet", &set)?;
        st.end()
    }
}

/// A RunInstances request that passed validation.
struct ValidatedRun {
    zone: String,
    project_id: i64,
    image: super::catalogue::Image,
    instance_type: super::catalogue::InstanceType,
    charge_type: String,
    prepaid_period: Option<i64>,
    renew_flag: Option<String>,
    count: usize,
    system_disk: model::SystemDisk,
    data_disks: Vec<model::DataDisk>,
    vpc_id: String,
    subnet_id: String,
    subnet_prefix: String,
    private_ips: Vec<String>,
    internet: model::InternetAccessible,
    public_ip: bool,
    security_groups: Vec<String>,
    key_ids: Vec<String>,
    name: String,
    host_name: Option<String>,
    tags: Vec<Tag>,
    disable_api_termination: bool,
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

    pub fn config(&self) -> &EngineConfig {
        &self.config
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
                    if let Some((t, cpu, mem)) = step.instance_type {
                        v.instance_type = Some(t);
                        v.cpu = Some(cpu);
                        v.memory = Some(mem);
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

    // -- lookups ---------------------------------------------------------------

    fn visible(&self, ctx: &Ctx<'_>, id: &str) -> bool {
        self.instances
            .get(id)
            .is_some_and(|i| i.account == ctx.account && i.region == ctx.region)
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
            if !is_instance_id(id) {
                return Err(api_err(
                    "InvalidInstanceId.Malformed",
                    format!(
                        "The specified InstanceId `{id}` is malformed, it should be like `ins-xxxxxxxx`."
                    ),
                ));
            }
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
    fn check_mutable(&self, ids: &[String], allowed: &[InstanceState]) -> Result<(), ApiError> {
        for id in ids {
            let v = &self.instances[id].view;
            let state = v.instance_state.clone().unwrap_or(InstanceState::Pending);
            if !allowed.contains(&state) {
                return Err(api_err(
                    &format!("UnsupportedOperation.InstanceState{}", state.error_suffix()),
                    format!(
                        "The instance `{id}` is in state {state}, which does not allow this operation."
                    ),
                ));
            }
            if v.operating() {
                return Err(api_err(
                    "OperationDenied.InstanceOperationInProgress",
                    format!(
                        "The instance `['{id}']` already has operation in progress. Please try again later."
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

    // -- RunInstances ------------------------------------------------------------

    fn validate_run(
        &self,
        ctx: &Ctx<'_>,
        req: &model::RunInstancesRequest,
    ) -> Result<ValidatedRun, ApiError> {
        let region = self.catalogue.region(ctx.region).ok_or_else(|| {
            api_err(
                "UnsupportedRegion",
                format!("The region `{}` is not supported.", ctx.region),
            )
        })?;
        let placement = req.placement.as_ref().ok_or_else(|| missing("Placement"))?;
        let zone = placement
            .zone
            .clone()
            .ok_or_else(|| missing("Placement.Zone"))?;
        let z = region.zone(&zone).ok_or_else(|| {
            api_err(
                "InvalidZone.MismatchRegion",
                format!(
                    "The zone `{zone}` does not exist in region `{}`.",
                    ctx.region
                ),
            )
        })?;
        if !z.available {
            return Err(api_err(
                "InvalidParameterValue.ZoneNotSupported",
                format!("The zone `{zone}` is not available for purchase."),
            ));
        }
        let image_id = req.image_id.clone().ok_or_else(|| missing("ImageId"))?;
        if !is_short_id(&image_id, "img-") {
            return Err(api_err(
                "InvalidImageId.Malformed",
                format!(
                    "The specified ImageId `{image_id}` is malformed, it should be like `img-xxxxxxxx`."
                ),
            ));
        }
        let image = self.catalogue.image(&image_id).cloned().ok_or_else(|| {
            api_err(
                "InvalidImageId.NotFound",
                format!("The image `{image_id}` does not exist."),
            )
        })?;
        let type_name = req
            .instance_type
            .clone()
            .unwrap_or_else(|| "S5.MEDIUM4".into());
        let instance_type = self.check_type_in_zone(&type_name, &zone)?;

        let charge_type = req
            .instance_charge_type
            .clone()
            .unwrap_or_else(|| "POSTPAID_BY_HOUR".into());
        let (mut prepaid_period, mut renew_flag) = (None, None);
        match charge_type.as_str() {
            "POSTPAID_BY_HOUR" | "SPOTPAID" => {}
            "PREPAID" => {
                let p = req
                    .instance_charge_prepaid
                    .as_ref()
                    .ok_or_else(|| missing("InstanceChargePrepaid"))?;
                let period = p
                    .period
                    .ok_or_else(|| missing("InstanceChargePrepaid.Period"))?;
                if !PREPAID_PERIODS.contains(&period) {
                    return Err(api_err(
                        "InvalidPeriod",
                        format!(
                            "The period {period} is not allowed; use 1-12, 24, 36, 48 or 60 months."
                        ),
                    ));
                }
                let flag = p
                    .renew_flag
                    .clone()
                    .unwrap_or_else(|| "NOTIFY_AND_MANUAL_RENEW".into());
                if ![
                    "NOTIFY_AND_AUTO_RENEW",
                    "NOTIFY_AND_MANUAL_RENEW",
                    "DISABLE_NOTIFY_AND_MANUAL_RENEW",
                ]
                .contains(&flag.as_str())
                {
                    return Err(bad_value(
                        "InstanceChargePrepaid.RenewFlag",
                        "unknown renew flag",
                    ));
                }
                prepaid_period = Some(period);
                renew_flag = Some(flag);
            }
            "CDHPAID" | "CDCPAID" => {
                return Err(api_err(
                    "UnsupportedOperation.InstanceChargeType",
                    format!(
                        "The charge type `{charge_type}` needs a dedicated host, which this account has none of."
                    ),
                ));
            }
            other => {
                return Err(bad_value(
                    "InstanceChargeType",
                    &format!("unknown charge type `{other}`"),
                ));
            }
        }
        if charge_type == "SPOTPAID"
            && let Some(mo) = &req.instance_market_options
        {
            if mo.market_type.as_deref().is_some_and(|m| m != "spot") {
                return Err(bad_value(
                    "InstanceMarketOptions.MarketType",
                    "must be `spot`",
                ));
            }
            if let Some(p) = mo
                .spot_options
                .as_ref()
                .and_then(|s| s.max_price.as_deref())
                && p.parse::<f64>().map(|v| v <= 0.0).unwrap_or(true)
            {
                return Err(bad_value(
                    "InstanceMarketOptions.SpotOptions.MaxPrice",
                    "must be a positive number",
                ));
            }
        }

        let count = req.instance_count.unwrap_or(1);
        if !(1..=100).contains(&count) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                "InstanceCount must be between 1 and 100.",
            ));
        }
        if req.min_count.is_some_and(|m| m < 1 || m > count) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                "MinCount must be between 1 and InstanceCount.",
            ));
        }

        let mut system_disk = req.system_disk.clone().unwrap_or_default();
        let disk_type = system_disk
            .disk_type
            .get_or_insert_with(|| "CLOUD_PREMIUM".into())
            .clone();
        if !SYSTEM_DISK_TYPES.contains(&disk_type.as_str()) {
            return Err(bad_value(
                "SystemDisk.DiskType",
                &format!("unknown disk type `{disk_type}`"),
            ));
        }
        let size = *system_disk.disk_size.get_or_insert(50);
        if !(20..=1024).contains(&size) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                format!("SystemDisk.DiskSize {size} is out of range [20, 1024]."),
            ));
        }
        if size < image.size_gb {
            return Err(api_err(
                "InvalidParameterValue.Range",
                format!(
                    "SystemDisk.DiskSize {size} is smaller than the image ({} GB).",
                    image.size_gb
                ),
            ));
        }
        let data_disks = req.data_disks.clone().unwrap_or_default();
        if data_disks.len() > 21 {
            return Err(api_err(
                "InvalidParameterValue.LimitExceeded",
                "At most 21 data disks are allowed.",
            ));
        }
        let mut data_disks_out = Vec::new();
        for (i, d) in data_disks.iter().enumerate() {
            let size = d
                .disk_size
                .ok_or_else(|| missing(&format!("DataDisks.{i}.DiskSize")))?;
            if !(10..=32000).contains(&size) || size % 10 != 0 {
                return Err(api_err(
                    "InvalidParameterValue.Range",
                    format!(
                        "DataDisks.{i}.DiskSize {size} must be a multiple of 10 in [10, 32000]."
                    ),
                ));
            }
            let t = d
                .disk_type
                .clone()
                .unwrap_or_else(|| "CLOUD_PREMIUM".into());
            if !DATA_DISK_TYPES.contains(&t.as_str()) {
                return Err(bad_value(
                    &format!("DataDisks.{i}.DiskType"),
                    &format!("unknown disk type `{t}`"),
                ));
            }
            if let Some(s) = &d.snapshot_id
                && !is_short_id(s, "snap-")
            {
                return Err(api_err(
                    "InvalidSnapshotId.Malformed",
                    format!("The snapshot id `{s}` is malformed."),
                ));
            }
            data_disks_out.push(model::DataDisk {
                disk_size: Some(size),
                disk_type: Some(t),
                delete_with_instance: Some(d.delete_with_instance.unwrap_or(true)),
                snapshot_id: d.snapshot_id.clone(),
                encrypt: d.encrypt,
                ..Default::default()
            });
        }

        let vpc = req
            .virtual_private_cloud
            .clone()
            .unwrap_or(model::VirtualPrivateCloud {
                vpc_id: Some("DEFAULT".into()),
                subnet_id: Some("DEFAULT".into()),
                ..Default::default()
            });
        let vpc_id = vpc
            .vpc_id
            .clone()
            .ok_or_else(|| missing("VirtualPrivateCloud.VpcId"))?;
        let subnet_id = vpc
            .subnet_id
            .clone()
            .ok_or_else(|| missing("VirtualPrivateCloud.SubnetId"))?;
        let subnet = if vpc_id == "DEFAULT" && subnet_id == "DEFAULT" {
            region.default_subnet(&zone).cloned()
        } else {
            if !region.vpcs.contains(&vpc_id.as_str()) {
                return Err(api_err(
                    "InvalidParameterValue.VpcIdNotExist",
                    format!("The VPC `{vpc_id}` does not exist."),
                ));
            }
            let s = region
                .subnet(&subnet_id)
                .filter(|s| s.vpc_id == vpc_id)
                .ok_or_else(|| {
                    api_err(
                        "InvalidParameterValue.SubnetNotExist",
                        format!("The subnet `{subnet_id}` does not exist in `{vpc_id}`."),
                    )
                })?;
            if s.zone != zone {
                return Err(api_err(
                    "InvalidParameterValue.SubnetNotExist",
                    format!(
                        "The subnet `{subnet_id}` is in zone `{}`, not `{zone}`.",
                        s.zone
                    ),
                ));
            }
            Some(s.clone())
        };
        let subnet = subnet.ok_or_else(|| {
            api_err(
                "InvalidParameterValue.SubnetNotExist",
                "No subnet in this zone.",
            )
        })?;
        let private_ips = vpc.private_ip_addresses.clone().unwrap_or_default();
        if !private_ips.is_empty() {
            if private_ips.len() as i64 != count {
                return Err(api_err(
                    "InvalidParameterCombination",
                    "The number of VirtualPrivateCloud.PrivateIpAddresses must equal InstanceCount.",
                ));
            }
            for ip in &private_ips {
                if !ip.starts_with(&format!(
                    "{}.",
                    subnet.prefix.rsplit_once('.').map(|p| p.0).unwrap_or("")
                )) {
                    return Err(api_err(
                        "VpcAddrNotInSubNet",
                        format!("The address `{ip}` is not in subnet `{}`.", subnet.id),
                    ));
                }
                if self.instances.values().any(|i| {
                    i.view
                        .private_ip_addresses
                        .as_ref()
                        .is_some_and(|a| a.contains(ip))
                }) {
                    return Err(api_err(
                        "VpcIpIsUsed",
                        format!("The address `{ip}` is already in use."),
                    ));
                }
            }
        }

        let mut internet = req.internet_accessible.clone().unwrap_or_default();
        let bw = *internet.internet_max_bandwidth_out.get_or_insert(0);
        if !(0..=MAX_BANDWIDTH).contains(&bw) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                format!(
                    "InternetAccessible.InternetMaxBandwidthOut {bw} is out of range [0, {MAX_BANDWIDTH}]."
                ),
            ));
        }
        let ict = internet
            .internet_charge_type
            .get_or_insert_with(|| {
                if charge_type == "PREPAID" {
                    "BANDWIDTH_PREPAID".into()
                } else {
                    "TRAFFIC_POSTPAID_BY_HOUR".into()
                }
            })
            .clone();
        if !INTERNET_CHARGE_TYPES.contains(&ict.as_str()) {
            return Err(bad_value(
                "InternetAccessible.InternetChargeType",
                &format!("unknown `{ict}`"),
            ));
        }
        if bw == 0 && internet.public_ip_assigned == Some(true) {
            return Err(api_err(
                "InvalidParameterCombination",
                "InternetAccessible.PublicIpAssigned cannot be true when InternetMaxBandwidthOut is 0.",
            ));
        }
        let public_ip = bw > 0 && internet.public_ip_assigned != Some(false);
        internet.public_ip_assigned = None;

        let security_groups = match &req.security_group_ids {
            Some(sgs) => {
                for sg in sgs {
                    if !region.security_groups.contains(&sg.as_str()) {
                        return Err(api_err(
                            "InvalidSecurityGroupId.NotFound",
                            format!("The security group `{sg}` does not exist."),
                        ));
                    }
                }
                sgs.clone()
            }
            None => vec![region.security_groups[0].to_string()],
        };

        let mut key_ids = Vec::new();
        if let Some(ls) = &req.login_settings {
            if ls.password.is_some() && ls.key_ids.as_ref().is_some_and(|k| !k.is_empty()) {
                return Err(api_err(
                    "InvalidParameterCombination",
                    "LoginSettings.Password and LoginSettings.KeyIds cannot be given together.",
                ));
            }
            if let Some(p) = &ls.password {
                check_password(p.expose())?;
            }
            for k in ls.key_ids.iter().flatten() {
                if !region.key_ids.contains(&k.as_str()) {
                    return Err(api_err(
                        "InvalidKeyPairId.NotFound",
                        format!("The key pair `{k}` does not exist."),
                    ));
                }
                key_ids.push(k.clone());
            }
        }

        let name = req.instance_name.clone().unwrap_or_else(|| {
            if ctx.chinese {
                "未命名".into()
            } else {
                "Unnamed".into()
            }
        });
        if name.chars().count() > 128 {
            return Err(api_err(
                "InvalidInstanceName.TooLong",
                "InstanceName must be at most 128 characters.",
            ));
        }
        if let Some(h) = &req.host_name {
            check_host_name(h)?;
        }
        if let Some(u) = &req.user_data {
            check_user_data(u.expose())?;
        }
        let mut tags = Vec::new();
        for spec in req.tag_specification.iter().flatten() {
            if spec.resource_type.is_empty() {
                return Err(missing("TagSpecification.ResourceType"));
            }
            if spec.resource_type == "instance" {
                for t in &spec.tags {
                    if t.key.is_empty() || t.key.len() > 127 || t.value.len() > 255 {
                        return Err(api_err(
                            "InvalidParameterValue.TagKeyNotFound",
                            "Tag keys must be 1-127 characters and values at most 255.",
                        ));
                    }
                    tags.retain(|x: &Tag| x.key != t.key);
                    tags.push(t.clone());
                }
            }
        }
        if tags.len() > 50 {
            return Err(api_err(
                "LimitExceeded.TagResourceQuota",
                "At most 50 tags per resource.",
            ));
        }
        Ok(ValidatedRun {
            zone,
            project_id: placement.project_id.unwrap_or(0),
            image,
            instance_type,
            charge_type,
            prepaid_period,
            renew_flag,
            count: count as usize,
            system_disk,
            data_disks: data_disks_out,
            vpc_id: subnet.vpc_id.to_string(),
            subnet_id: subnet.id.to_string(),
            subnet_prefix: subnet.prefix.to_string(),
            private_ips,
            internet,
            public_ip,
            security_groups,
            key_ids,
            name,
            host_name: req.host_name.clone(),
            tags,
            disable_api_termination: req.disable_api_termination.unwrap_or(false),
        })
    }

    fn check_type_in_zone(
        &self,
        type_name: &str,
        zone: &str,
    ) -> Result<super::catalogue::InstanceType, ApiError> {
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

    fn alloc_private_ip(&mut self, subnet_id: &str, prefix: &str) -> String {
        let k = self.next_private.entry(subnet_id.to_string()).or_insert(0);
        let n = *k;
        *k += 1;
        let (ab, c) = prefix.rsplit_once('.').unwrap_or(("10.0", "0"));
        let c: u32 = c.parse().unwrap_or(0) + n / 250;
        format!("{ab}.{}.{}", c.min(255), 2 + n % 250)
    }

    fn alloc_public_ip(&mut self) -> String {
        let n = self.next_public;
        self.next_public += 1;
        format!(
            "43.{}.{}.{}",
            128 + (n / 62500) % 128,
            (n / 250) % 250,
            1 + n % 250
        )
    }

    fn new_instance_id(&self) -> String {
        loop {
            let id = format!("ins-{}", random_suffix());
            if !self.instances.contains_key(&id) {
                return id;
            }
        }
    }

    pub fn run_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::RunInstancesRequest,
    ) -> Result<model::RunInstancesResponse, ApiError> {
        if let Some(t) = &req.client_token
            && (t.len() > 64 || !t.is_ascii())
        {
            return Err(api_err(
                "InvalidClientToken.TooLong",
                "ClientToken must be at most 64 ASCII characters.",
            ));
        }
        let token_key = req
            .client_token
            .as_ref()
            .filter(|t| !t.is_empty())
            .map(|t| (ctx.account.to_string(), ctx.region.to_string(), t.clone()));
        if let Some(key) = &token_key
            && let Some(ids) = self.tokens.get(key)
        {
            // Idempotent replay: the first call's ids, nothing created.
            return Ok(model::RunInstancesResponse {
                instance_id_set: Some(ids.clone()),
            });
        }
        let v = self.validate_run(ctx, &req)?;
        let existing = self
            .instances
            .values()
            .filter(|i| i.account == ctx.account && i.region == ctx.region)
            .count();
        if existing + v.count > self.config.instance_quota {
            return Err(api_err(
                "LimitExceeded.InstanceQuota",
                format!(
                    "The instance quota of this account in {} is {}; {existing} are in use and {} more were requested.",
                    ctx.region, self.config.instance_quota, v.count
                ),
            ));
        }
        if req.dry_run == Some(true) {
            return Err(api_err(
                "DryRunOperation",
                "The request would have succeeded, but the DryRun parameter was set.",
            ));
        }

        let mut ids = Vec::with_capacity(v.count);
        let created = utc_now_string();
        let expired = v.prepaid_period.map(|months| {
            let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
            now.checked_add(jiff::Span::new().months(months))
                .map(|z| z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default()
        });
        for n in 0..v.count {
            let id = self.new_instance_id();
            let private_ip = v
                .private_ips
                .get(n)
                .cloned()
                .unwrap_or_else(|| self.alloc_private_ip(&v.subnet_id, &v.subnet_prefix));
            let public_ips = v.public_ip.then(|| vec![self.alloc_public_ip()]);
            let name = if v.count > 1 {
                format!("{}{}", v.name, n + 1)
            } else {
                v.name.clone()
            };
            let mut system_disk = v.system_disk.clone();
            system_disk.disk_id = Some(format!("disk-{}", random_suffix()));
            let data_disks: Vec<model::DataDisk> = v
                .data_disks
                .iter()
                .map(|d| model::DataDisk {
                    disk_id: Some(format!("disk-{}", random_suffix())),
                    ..d.clone()
                })
                .collect();
            let view = Instance {
                instance_id: Some(id.clone()),
                uuid: Some(uuid::Uuid::new_v4().to_string()),
                instance_state: Some(InstanceState::Pending),
                instance_type: Some(v.instance_type.name.to_string()),
                cpu: Some(v.instance_type.cpu),
                memory: Some(v.instance_type.memory),
                instance_name: Some(name),
                instance_charge_type: Some(v.charge_type.clone()),
                placement: Some(model::Placement {
                    zone: Some(v.zone.clone()),
                    project_id: Some(v.project_id),
                    ..Default::default()
                }),
                system_disk: Some(system_disk),
                data_disks: Some(data_disks),
                private_ip_addresses: Some(vec![private_ip.clone()]),
                public_ip_addresses: public_ips,
                internet_accessible: Some(v.internet.clone()),
                virtual_private_cloud: Some(model::VirtualPrivateCloud {
                    vpc_id: Some(v.vpc_id.clone()),
                    subnet_id: Some(v.subnet_id.clone()),
                    as_vpc_gateway: Some(false),
                    private_ip_addresses: Some(vec![private_ip]),
                    ..Default::default()
                }),
                image_id: Some(v.image.id.to_string()),
                os_name: Some(v.image.os_name.to_string()),
                renew_flag: v.renew_flag.clone(),
                created_time: Some(created.clone()),
                expired_time: expired.clone(),
                security_group_ids: Some(v.security_groups.clone()),
                login_settings: Some(model::LoginSettings {
                    key_ids: (!v.key_ids.is_empty()).then(|| v.key_ids.clone()),
                    ..Default::default()
                }),
                tags: Some(v.tags.clone()),
                latest_operation: None,
                latest_operation_state: None,
                latest_operation_request_id: None,
                latest_operation_error_msg: None,
                restrict_state: Some("NORMAL".into()),
                isolated_source: Some("NOTISOLATED".into()),
                stop_charging_mode: Some("NOT_APPLICABLE".into()),
                disable_api_termination: Some(v.disable_api_termination),
                default_login_user: Some("root".into()),
                default_login_port: Some(22),
                license_type: Some("TencentCloud".into()),
                cam_role_name: None,
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, id.clone());
            self.instances.insert(
                id.clone(),
                SimInstance {
                    account: ctx.account.to_string(),
                    region: ctx.region.to_string(),
                    seq,
                    view,
                    json: Default::default(),
                    host_name: v.host_name.clone().unwrap_or_else(|| format!("VM-{}", seq)),
                    steps: VecDeque::new(),
                },
            );
            let fails = v.image.launch_fails
                || (self.config.launch_failure_rate > 0.0
                    && fastrand::f64() < self.config.launch_failure_rate);
            let t = &self.config.timings;
            let steps = if fails {
                vec![Step {
                    at: t.launch,
                    state: Some(InstanceState::LaunchFailed),
                    op_state: Some(OperationState::Failed),
                    error_msg: Some(format!(
                        "LaunchFailed: the image `{}` could not be booted; the instance was not started and is not billed.",
                        v.image.id
                    )),
                    ..Default::default()
                }]
            } else {
                self.settle(t.launch, Some(InstanceState::Running))
            };
            self.begin(&id, "RunInstances", ctx, steps);
            ids.push(id);
        }
        if let Some(key) = token_key {
            self.tokens.insert(key, ids.clone());
        }
        Ok(model::RunInstancesResponse {
            instance_id_set: Some(ids),
        })
    }

    pub fn inquiry_price_run_instances(
        &self,
        ctx: &Ctx<'_>,
        req: model::RunInstancesRequest,
    ) -> Result<model::InquiryPriceRunInstancesResponse, ApiError> {
        let v = self.validate_run(ctx, &req)?;
        let n = v.count as f64;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let bw = v.internet.internet_max_bandwidth_out.unwrap_or(0) as f64;
        let instance_price = match v.prepaid_period {
            Some(months) => {
                // Monthly price ≈ 720 h at a 30 % discount for committing.
                let original = round(v.instance_type.hourly_price * 720.0 * months as f64 * n);
                model::ItemPrice {
                    original_price: Some(original),
                    discount_price: Some(round(original * 0.7)),
                    discount: Some(70.0),
                    ..Default::default()
                }
            }
            None => {
                let unit = round(v.instance_type.hourly_price * n);
                let unit = if v.charge_type == "SPOTPAID" {
                    round(unit * 0.2)
                } else {
                    unit
                };
                model::ItemPrice {
                    unit_price: Some(unit),
                    charge_unit: Some("HOUR".into()),
                    unit_price_discount: Some(unit),
                    discount: Some(100.0),
                    ..Default::default()
                }
            }
        };
        let bandwidth_price = match v.internet.internet_charge_type.as_deref() {
            Some("TRAFFIC_POSTPAID_BY_HOUR") => model::ItemPrice {
                unit_price: Some(0.8),
                charge_unit: Some("GB".into()),
                unit_price_discount: Some(0.8),
                discount: Some(100.0),
                ..Default::default()
            },
            Some("BANDWIDTH_POSTPAID_BY_HOUR") => {
                let unit = round(0.063 * bw * n);
                model::ItemPrice {
                    unit_price: Some(unit),
                    charge_unit: Some("HOUR".into()),
                    unit_price_discount: Some(unit),
                    discount: Some(100.0),
                    ..Default::default()
                }
            }
            Some("BANDWIDTH_PREPAID") => {
                let original = round(23.0 * bw * v.prepaid_period.unwrap_or(1) as f64 * n);
                model::ItemPrice {
                    original_price: Some(original),
                    discount_price: Some(original),
                    discount: Some(100.0),
                    ..Default::default()
                }
            }
            _ => model::ItemPrice::default(),
        };
        let _ = ctx;
        Ok(model::InquiryPriceRunInstancesResponse {
            price: Some(model::Price {
                instance_price: Some(instance_price),
                bandwidth_price: Some(bandwidth_price),
            }),
        })
    }

    // -- Describe ------------------------------------------------------------------

    fn page_bounds(offset: Option<i64>, limit: Option<i64>) -> Result<(usize, usize), ApiError> {
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(20);
        if offset < 0 {
            return Err(api_err(
                "InvalidParameterValue.Range",
                "Offset must not be negative.",
            ));
        }
        if !(0..=100).contains(&limit) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                "Limit must be between 0 and 100.",
            ));
        }
        Ok((offset as usize, limit as usize))
    }

    fn check_filters(
        filters: &[model::Filter],
        known: impl Fn(&str) -> bool,
        max_values: usize,
    ) -> Result<(), ApiError> {
        if filters.len() > 10 {
            return Err(api_err(
                "InvalidParameterValue.LimitExceeded",
                "At most 10 filters are allowed.",
            ));
        }
        for f in filters {
            if !known(&f.name) {
                return Err(api_err(
                    "InvalidFilter",
                    format!("The filter `{}` is not supported.", f.name),
                ));
            }
            if f.values.len() > max_values {
                return Err(api_err(
                    "InvalidFilterValue.LimitExceeded",
                    format!("The filter `{}` takes at most {max_values} values.", f.name),
                ));
            }
        }
        Ok(())
    }

    fn matches(i: &Instance, f: &model::Filter) -> bool {
        let any = |v: Option<&str>| v.is_some_and(|v| f.values.iter().any(|x| x == v));
        let any_of =
            |vs: Option<&Vec<String>>| vs.is_some_and(|vs| vs.iter().any(|v| f.values.contains(v)));
        let created = || {
            i.created_time
                .as_deref()
                .map(|c| c.replace('T', " ").trim_end_matches('Z').to_string())
                .unwrap_or_default()
        };
        match f.name.as_str() {
            "zone" => any(i.zone()),
            "project-id" => any(i
                .placement
                .as_ref()
                .and_then(|p| p.project_id)
                .map(|p| p.to_string())
                .as_deref()),
            "vpc-id" => any(i
                .virtual_private_cloud
                .as_ref()
                .and_then(|v| v.vpc_id.as_deref())),
            "subnet-id" => any(i
                .virtual_private_cloud
                .as_ref()
                .and_then(|v| v.subnet_id.as_deref())),
            "instance-id" => any(i.instance_id.as_deref()),
            "uuid" => any(i.uuid.as_deref()),
            "security-group-id" => any_of(i.security_group_ids.as_ref()),
            "instance-name" => any(i.instance_name.as_deref()),
            "instance-charge-type" => any(i.instance_charge_type.as_deref()),
            "instance-state" => any(i.instance_state.as_ref().map(|s| s.as_str())),
            "private-ip-address" => any_of(i.private_ip_addresses.as_ref()),
            "public-ip-address" => any_of(i.public_ip_addresses.as_ref()),
            "image-id" => any(i.image_id.as_deref()),
            "tag-key" => i.tags.iter().flatten().any(|t| f.values.contains(&t.key)),
            "tag-value" => i.tags.iter().flatten().any(|t| f.values.contains(&t.value)),
            "creation-start-time" => f.values.iter().all(|v| created().as_str() >= v.as_str()),
            "creation-end-time" => f.values.iter().all(|v| created().as_str() <= v.as_str()),
            name => match name.strip_prefix("tag:") {
                Some(key) => i.tag(key).is_some_and(|v| f.values.iter().any(|x| x == v)),
                None => false,
            },
        }
    }

    /// DescribeInstances. The answer borrows the stored instances: nothing is
    /// copied, it is serialised straight from the engine (under its lock).
    pub fn describe_instances<'a>(
        &'a self,
        ctx: &Ctx<'_>,
        req: model::DescribeInstancesRequest,
    ) -> Result<InstancesView<'a>, ApiError> {
        let (offset, limit) = Self::page_bounds(req.offset, req.limit)?;
        let has_ids = req.instance_ids.as_ref().is_some_and(|v| !v.is_empty());
        let has_filters = req.filters.as_ref().is_some_and(|v| !v.is_empty());
        if has_ids && has_filters {
            return Err(api_err(
                "InvalidParameter",
                "The parameters `InstanceIds` and `Filters` cannot be specified at the same time.",
            ));
        }
        let mut matched: Vec<&SimInstance> = Vec::new();
        if let Some(ids) = req.instance_ids.as_ref().filter(|v| !v.is_empty()) {
            if ids.len() > 100 {
                return Err(api_err(
                    "InvalidParameterValue.LimitExceeded",
                    "The number of `InstanceIds` exceeds the limit of 100.",
                ));
            }
            let mut seen = HashSet::new();
            for id in ids {
                if !is_instance_id(id) {
                    return Err(api_err(
                        "InvalidInstanceId.Malformed",
                        format!(
                            "The specified InstanceId `{id}` is malformed, it should be like `ins-xxxxxxxx`."
                        ),
                    ));
                }
                if seen.insert(id) && self.visible(ctx, id) {
                    matched.push(&self.instances[id]);
                }
            }
        } else {
            let filters = req.filters.clone().unwrap_or_default();
            const KNOWN: &[&str] = &[
                "zone",
                "project-id",
                "host-id",
                "dedicated-cluster-id",
                "vpc-id",
                "subnet-id",
                "instance-id",
                "uuid",
                "security-group-id",
                "instance-name",
                "instance-charge-type",
                "instance-state",
                "private-ip-address",
                "public-ip-address",
                "ipv6-address",
                "tag-key",
                "tag-value",
                "creation-start-time",
                "creation-end-time",
                "image-id",
            ];
            Self::check_filters(&filters, |n| KNOWN.contains(&n) || n.starts_with("tag:"), 5)?;
            for id in self.order.values() {
                let inst = &self.instances[id];
                if inst.account == ctx.account
                    && inst.region == ctx.region
                    && filters.iter().all(|f| Self::matches(&inst.view, f))
                {
                    matched.push(inst);
                }
            }
        }
        let total = matched.len();
        Ok(InstancesView {
            total_count: total as i64,
            instance_set: matched.into_iter().skip(offset).take(limit).collect(),
        })
    }

    pub fn describe_instances_status(
        &self,
        ctx: &Ctx<'_>,
        req: model::DescribeInstancesStatusRequest,
    ) -> Result<model::DescribeInstancesStatusResponse, ApiError> {
        let d = self.describe_instances(
            ctx,
            model::DescribeInstancesRequest {
                instance_ids: req.instance_ids,
                filters: None,
                offset: req.offset,
                limit: req.limit,
            },
        )?;
        Ok(model::DescribeInstancesStatusResponse {
            total_count: Some(d.total_count),
            instance_status_set: Some(
                d.instances()
                    .map(|i| model::InstanceStatus {
                        instance_id: i.instance_id.clone(),
                        instance_state: i.instance_state.clone(),
                    })
                    .collect(),
            ),
        })
    }

    // -- Power ---------------------------------------------------------------------

    pub fn start_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::StartInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        self.check_mutable(&req.instance_ids, &[InstanceState::Stopped])?;
        let t = self.config.timings.start;
        for id in &req.instance_ids {
            let mut steps = self.settle(t, Some(InstanceState::Running));
            steps[0].stop_charging_mode = Some("NOT_APPLICABLE");
            self.begin_in(id, InstanceState::Starting, "StartInstances", ctx, steps);
        }
        Ok(())
    }

    pub fn stop_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::StopInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        if req.force_stop.is_some() && req.stop_type.is_some() {
            return Err(api_err(
                "InvalidParameterCombination",
                "`ForceStop` and `StopType` cannot be specified at the same time.",
            ));
        }
        if let Some(st) = &req.stop_type
            && !["SOFT", "HARD", "SOFT_FIRST"].contains(&st.as_str())
        {
            return Err(bad_value("StopType", "must be SOFT, HARD or SOFT_FIRST"));
        }
        let mode = match req.stopped_mode.as_deref() {
            None | Some("KEEP_CHARGING") => "KEEP_CHARGING",
            Some("STOP_CHARGING") => "STOP_CHARGING",
            Some(_) => {
                return Err(bad_value(
                    "StoppedMode",
                    "must be KEEP_CHARGING or STOP_CHARGING",
                ));
            }
        };
        self.check_mutable(&req.instance_ids, &[InstanceState::Running])?;
        if mode == "STOP_CHARGING" {
            for id in &req.instance_ids {
                let ct = self.instances[id]
                    .view
                    .instance_charge_type
                    .as_deref()
                    .unwrap_or_default();
                if ct != "POSTPAID_BY_HOUR" {
                    return Err(api_err(
                        "UnsupportedOperation.StoppedModeStopCharging",
                        format!("The instance `{id}` ({ct}) does not support STOP_CHARGING."),
                    ));
                }
            }
        }
        let t = self.config.timings.stop;
        for id in &req.instance_ids {
            let mut steps = self.settle(t, Some(InstanceState::Stopped));
            steps[0].stop_charging_mode = Some(mode);
            self.begin_in(id, InstanceState::Stopping, "StopInstances", ctx, steps);
        }
        Ok(())
    }

    pub fn reboot_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::RebootInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        if req.force_reboot.is_some() && req.stop_type.is_some() {
            return Err(api_err(
                "InvalidParameterCombination",
                "`ForceReboot` and `StopType` cannot be specified at the same time.",
            ));
        }
        self.check_mutable(&req.instance_ids, &[InstanceState::Running])?;
        let t = self.config.timings.reboot;
        for id in &req.instance_ids {
            let steps = self.settle(t, Some(InstanceState::Running));
            self.begin_in(id, InstanceState::Rebooting, "RebootInstances", ctx, steps);
        }
        Ok(())
    }

    pub fn terminate_instances(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::TerminateInstancesRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let charge_types: HashSet<&str> = req
            .instance_ids
            .iter()
            .map(|id| {
                self.instances[id]
                    .view
                    .instance_charge_type
                    .as_deref()
                    .unwrap_or_default()
            })
            .collect();
        if charge_types.len() > 1 {
            return Err(api_err(
                "UnsupportedOperation.InstanceMixedPricingModel",
                "Instances of different charge types cannot be terminated in one request.",
            ));
        }
        for id in &req.instance_ids {
            if self.instances[id].view.disable_api_termination == Some(true) {
                return Err(api_err(
                    "UnsupportedOperation.InstancesProtected",
                    format!("The instance `{id}` has termination protection enabled."),
                ));
            }
        }
        self.check_mutable(
            &req.instance_ids,
            &[
                InstanceState::Running,
                InstanceState::Stopped,
                InstanceState::Shutdown,
            ],
        )?;
        let t = self.config.timings.clone();
        for id in &req.instance_ids {
            let inst = self
                .instances
                .get_mut(id)
                .map(SimInstance::touch)
                .expect("checked");
            let prepaid = inst.view.instance_charge_type.as_deref() == Some("PREPAID");
            let state = inst.view.instance_state.clone();
            if prepaid && state != Some(InstanceState::Shutdown) {
                // First terminate of a prepaid instance: to the recycle bin.
                let steps = vec![
                    Step {
                        at: t.shutdown,
                        state: Some(InstanceState::Shutdown),
                        isolated_source: Some("MANMADE"),
                        ..Default::default()
                    },
                    Step {
                        at: t.shutdown + t.operation_tail,
                        op_state: Some(OperationState::Success),
                        ..Default::default()
                    },
                ];
                self.begin(id, "TerminateInstances", ctx, steps);
            } else {
                inst.view.instance_state = Some(InstanceState::Terminating);
                let steps = vec![Step {
                    at: t.terminate,
                    remove: true,
                    ..Default::default()
                }];
                self.begin(id, "TerminateInstances", ctx, steps);
            }
        }
        Ok(())
    }

    // -- Modifications ---------------------------------------------------------------

    pub fn reset_instances_type(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ResetInstancesTypeRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 1)?;
        let id = req.instance_ids[0].clone();
        let zone = self.instances[&id]
            .view
            .zone()
            .unwrap_or_default()
            .to_string();
        let new_type = self.check_type_in_zone(&req.instance_type, &zone)?;
        let view = &self.instances[&id].view;
        if view.instance_type.as_deref() == Some(req.instance_type.as_str()) {
            return Err(api_err(
                "InvalidParameterValue",
                format!(
                    "The instance `{id}` already has type `{}`.",
                    req.instance_type
                ),
            ));
        }
        if view.instance_charge_type.as_deref() == Some("SPOTPAID") {
            return Err(api_err(
                "UnsupportedOperation.InstanceChargeType",
                "Spot instances cannot change type.",
            ));
        }
        let running = view.instance_state == Some(InstanceState::Running);
        // A running instance needs ForceStop (the operator stops it first
        // instead); see cvm-api.md §3.6 for why this is a modelling choice.
        let allowed: &[InstanceState] = if req.force_stop == Some(true) {
            &[InstanceState::Stopped, InstanceState::Running]
        } else {
            &[InstanceState::Stopped]
        };
        self.check_mutable(std::slice::from_ref(&id), allowed)?;
        if self.instances[&id].view.stop_charging_mode.as_deref() == Some("STOP_CHARGING") {
            return Err(api_err(
                "UnsupportedOperation.StoppedModeStopCharging",
                format!(
                    "The instance `{id}` is stopped without charging and cannot change type; start it first."
                ),
            ));
        }
        let t = self.config.timings.clone();
        let ty = Some((new_type.name.to_string(), new_type.cpu, new_type.memory));
        let steps = if running {
            self.instances
                .get_mut(&id)
                .map(SimInstance::touch)
                .expect("checked")
                .view
                .instance_state = Some(InstanceState::Stopping);
            vec![
                Step {
                    at: t.stop,
                    state: Some(InstanceState::Stopped),
                    ..Default::default()
                },
                Step {
                    at: t.stop + t.reset_type,
                    state: Some(InstanceState::Starting),
                    instance_type: ty,
                    ..Default::default()
                },
                Step {
                    at: t.stop + t.reset_type + t.start,
                    state: Some(InstanceState::Running),
                    ..Default::default()
                },
                Step {
                    at: t.stop + t.reset_type + t.start + t.operation_tail,
                    op_state: Some(OperationState::Success),
                    ..Default::default()
                },
            ]
        } else {
            let mut s = self.settle(t.reset_type, None);
            s[0].instance_type = ty;
            s
        };
        self.begin(&id, "ResetInstancesType", ctx, steps);
        Ok(())
    }

    pub fn reset_instances_internet_max_bandwidth(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ResetInstancesInternetMaxBandwidthRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let bw = req
            .internet_accessible
            .internet_max_bandwidth_out
            .ok_or_else(|| missing("InternetAccessible.InternetMaxBandwidthOut"))?;
        if !(0..=MAX_BANDWIDTH).contains(&bw) {
            return Err(api_err(
                "InvalidParameterValue.Range",
                format!("InternetMaxBandwidthOut {bw} is out of range [0, {MAX_BANDWIDTH}]."),
            ));
        }
        let mut charge_types = HashSet::new();
        for id in &req.instance_ids {
            let ct = self.instances[id]
                .view
                .internet_accessible
                .as_ref()
                .and_then(|i| i.internet_charge_type.clone())
                .unwrap_or_default();
            if (ct == "BANDWIDTH_PREPAID" || ct == "BANDWIDTH_POSTPAID_BY_HOUR")
                && req.instance_ids.len() > 1
            {
                return Err(api_err(
                    "InvalidParameterValue.LimitExceeded",
                    format!("Instances with {ct} bandwidth must be changed one at a time."),
                ));
            }
            if ct == "BANDWIDTH_PREPAID" {
                let cur = self.instances[id].view.bandwidth_out().unwrap_or(0);
                if bw < cur {
                    return Err(api_err(
                        "InvalidParameterValue",
                        "Prepaid bandwidth cannot be lowered before it expires.",
                    ));
                }
            } else if req.start_time.is_some() || req.end_time.is_some() {
                return Err(api_err(
                    "InvalidParameterCombination",
                    "StartTime and EndTime apply only to BANDWIDTH_PREPAID.",
                ));
            }
            charge_types.insert(ct);
        }
        if charge_types.len() > 1 {
            return Err(api_err(
                "InvalidParameterValue",
                "Instances with different bandwidth charge types cannot be changed together.",
            ));
        }
        self.check_mutable(
            &req.instance_ids,
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        let t = self.config.timings.modify;
        for id in &req.instance_ids {
            let mut steps = self.settle(t, None);
            steps[0].bandwidth = Some(bw);
            self.begin(id, "ResetInstancesInternetMaxBandwidth", ctx, steps);
        }
        Ok(())
    }

    pub fn modify_instances_attribute(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ModifyInstancesAttributeRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let given = [
            req.instance_name.is_some(),
            req.user_data.is_some(),
            req.security_groups.is_some(),
            req.cam_role_name.is_some(),
            req.host_name.is_some(),
            req.disable_api_termination.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given == 0 {
            return Err(api_err(
                "MissingParameter",
                "One attribute to modify (InstanceName, UserData, SecurityGroups, CamRoleName, HostName or DisableApiTermination) is required.",
            ));
        }
        if given > 1 {
            return Err(api_err(
                "InvalidParameterCombination",
                "Only one attribute can be modified per request.",
            ));
        }
        if let Some(name) = &req.instance_name {
            if name.chars().count() > 60 {
                return Err(api_err(
                    "InvalidInstanceName.TooLong",
                    "InstanceName must be at most 60 characters.",
                ));
            }
            if name.is_empty() {
                return Err(bad_value("InstanceName", "must not be empty"));
            }
        }
        if let Some(sgs) = &req.security_groups {
            let region = self
                .catalogue
                .region(ctx.region)
                .expect("region checked by the front");
            if sgs.len() > 5 {
                return Err(api_err(
                    "LimitExceeded.AssociateUSGLimitExceeded",
                    "At most 5 security groups.",
                ));
            }
            for sg in sgs {
                if !region.security_groups.contains(&sg.as_str()) {
                    return Err(api_err(
                        "InvalidSecurityGroupId.NotFound",
                        format!("The security group `{sg}` does not exist."),
                    ));
                }
            }
        }
        if let Some(h) = &req.host_name {
            check_host_name(h)?;
        }
        if let Some(u) = &req.user_data {
            check_user_data(u.expose())?;
        }
        if req
            .cam_role_type
            .as_deref()
            .is_some_and(|t| !["user", "system", "service_linked"].contains(&t))
        {
            return Err(bad_value(
                "CamRoleType",
                "must be user, system or service_linked",
            ));
        }
        self.check_mutable(
            &req.instance_ids,
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        let t = self.config.timings.clone();
        for id in &req.instance_ids {
            let inst = self
                .instances
                .get_mut(id)
                .map(SimInstance::touch)
                .expect("checked");
            let v = &mut inst.view;
            if let Some(n) = &req.instance_name {
                v.instance_name = Some(n.clone());
            }
            if let Some(sgs) = &req.security_groups {
                v.security_group_ids = Some(sgs.clone());
            }
            if let Some(d) = req.disable_api_termination {
                v.disable_api_termination = Some(d);
            }
            if req.cam_role_name.is_some() {
                v.cam_role_name = req.cam_role_name.clone().filter(|n| !n.is_empty());
            }
            let mut steps = settle(t.operation_tail, t.modify, None);
            if let Some(h) = &req.host_name {
                inst.host_name = h.clone();
                if inst.view.instance_state == Some(InstanceState::Running)
                    && req.auto_reboot != Some(false)
                {
                    // A new host name takes effect by rebooting.
                    inst.view.instance_state = Some(InstanceState::Rebooting);
                    steps = settle(t.operation_tail, t.reboot, Some(InstanceState::Running));
                }
            }
            self.begin(id, "ModifyInstancesAttribute", ctx, steps);
        }
        Ok(())
    }

    // -- Catalogue queries -----------------------------------------------------------

    pub fn describe_zones(&self, ctx: &Ctx<'_>) -> Result<model::DescribeZonesResponse, ApiError> {
        let region = self.catalogue.region(ctx.region).ok_or_else(|| {
            api_err(
                "UnsupportedRegion",
                format!("The region `{}` is not supported.", ctx.region),
            )
        })?;
        let zones: Vec<model::ZoneInfo> = region
            .zones
            .iter()
            .map(|z| model::ZoneInfo {
                zone: Some(z.zone.into()),
                zone_name: Some(if ctx.chinese { z.name_zh } else { z.name_en }.into()),
                zone_id: Some(z.zone_id.into()),
                zone_state: Some(
                    if z.available {
                        "AVAILABLE"
                    } else {
                        "UNAVAILABLE"
                    }
                    .into(),
                ),
            })
            .collect();
        Ok(model::DescribeZonesResponse {
            total_count: Some(zones.len() as i64),
            zone_set: Some(zones),
        })
    }

    pub fn describe_instance_type_configs(
        &self,
        ctx: &Ctx<'_>,
        req: model::DescribeInstanceTypeConfigsRequest,
    ) -> Result<model::DescribeInstanceTypeConfigsResponse, ApiError> {
        let filters = req.filters.unwrap_or_default();
        Self::check_filters(
            &filters,
            |n| ["zone", "instance-family", "instance-type"].contains(&n),
            1,
        )?;
        let region = self.catalogue.region(ctx.region).ok_or_else(|| {
            api_err(
                "UnsupportedRegion",
                format!("The region `{}` is not supported.", ctx.region),
            )
        })?;
        let get = |name: &str| {
            filters
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.values.first())
        };
        let mut out = Vec::new();
        for z in &region.zones {
            if get("zone").is_some_and(|v| v != z.zone) {
                continue;
            }
            for t in &self.catalogue.types {
                if t.stock_in(z.zone).is_none()
                    || get("instance-family").is_some_and(|v| v != t.family)
                    || get("instance-type").is_some_and(|v| v != t.name)
                {
                    continue;
                }
                out.push(model::InstanceTypeConfig {
                    zone: Some(z.zone.into()),
                    instance_type: Some(t.name.into()),
                    instance_family: Some(t.family.into()),
                    gpu: Some(if t.family.starts_with("GN") { 1 } else { 0 }),
                    cpu: Some(t.cpu),
                    memory: Some(t.memory),
                    fpga: Some(0),
                });
            }
        }
        Ok(model::DescribeInstanceTypeConfigsResponse {
            instance_type_config_set: Some(out),
        })
    }

    pub fn describe_images(
        &self,
        _ctx: &Ctx<'_>,
        req: model::DescribeImagesRequest,
    ) -> Result<model::DescribeImagesResponse, ApiError> {
        let (offset, limit) = Self::page_bounds(req.offset, req.limit)?;
        let ids = req.image_ids.unwrap_or_default();
        let filters = req.filters.unwrap_or_default();
        if !ids.is_empty() && !filters.is_empty() {
            return Err(api_err(
                "InvalidParameter.InvalidParameterCoexistImageIdsFilters",
                "ImageIds and Filters cannot be specified at the same time.",
            ));
        }
        Self::check_filters(
            &filters,
            |n| {
                [
                    "image-id",
                    "image-type",
                    "image-name",
                    "platform",
                    "tag-key",
                    "tag-value",
                ]
                .contains(&n)
                    || n.starts_with("tag:")
            },
            5,
        )?;
        for id in &ids {
            if !is_short_id(id, "img-") {
                return Err(api_err(
                    "InvalidImageId.Malformed",
                    format!("The specified ImageId `{id}` is malformed."),
                ));
            }
        }
        if let Some(t) = &req.instance_type {
            check_instance_type_format(t)?;
        }
        let matched: Vec<model::Image> = self
            .catalogue
            .images
            .iter()
            .filter(|img| ids.is_empty() || ids.iter().any(|i| i == img.id))
            .filter(|img| {
                filters.iter().all(|f| match f.name.as_str() {
                    "image-id" => f.values.iter().any(|v| v == img.id),
                    "image-type" => f.values.iter().any(|v| v == img.image_type),
                    "image-name" => f.values.iter().any(|v| img.name.contains(v.as_str())),
                    "platform" => f.values.iter().any(|v| img.platform.contains(v.as_str())),
                    _ => false,
                })
            })
            .map(|img| model::Image {
                image_id: Some(img.id.into()),
                os_name: Some(img.os_name.into()),
                image_type: Some(img.image_type.into()),
                created_time: Some("2024-01-01T00:00:00Z".into()),
                image_name: Some(img.name.into()),
                image_description: Some(img.name.into()),
                image_size: Some(img.size_gb),
                architecture: Some("x86_64".into()),
                image_state: Some("NORMAL".into()),
                platform: Some(img.platform.into()),
                image_creator: Some(
                    if img.image_type == "PUBLIC_IMAGE" {
                        "TencentCloud"
                    } else {
                        "user"
                    }
                    .into(),
                ),
                image_source: Some(
                    if img.image_type == "PUBLIC_IMAGE" {
                        "OFFICIAL"
                    } else {
                        "CREATE_IMAGE"
                    }
                    .into(),
                ),
                is_support_cloudinit: Some(true),
                license_type: Some("TencentCloud".into()),
            })
            .collect();
        Ok(model::DescribeImagesResponse {
            total_count: Some(matched.len() as i64),
            image_set: Some(matched.into_iter().skip(offset).take(limit).collect()),
        })
    }
}
