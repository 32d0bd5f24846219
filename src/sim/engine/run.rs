//! RunInstances: the ClientToken replay, the quota, and the creation of each
//! instance (PENDING, then RUNNING or LAUNCH_FAILED after the launch time).
//! Parameter validation is in [`super::validate`].

use super::checks::{random_suffix, utc_now_string};
use super::naming::expand;
use super::validate::ValidatedRun;
use super::{ApiError, Ctx, Engine, SimInstance, Step, api_err};
use crate::cloud::model::{self, Instance, InstanceState, OperationState};
use std::collections::VecDeque;

/// RunInstances' `InstanceCount` range is [1, 500] (api.json).
const MAX_RUN_COUNT: i64 = 500;

/// What every instance of one RunInstances call shares.
struct Batch<'a> {
    v: &'a ValidatedRun,
    created: String,
    expired: Option<String>,
}

impl Engine {
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
        let v = self.validate_run(ctx, &req, MAX_RUN_COUNT)?;
        self.check_quota(ctx, v.count)?;
        if req.dry_run == Some(true) {
            return Err(api_err(
                "DryRunOperation",
                "The request would have succeeded, but the DryRun parameter was set.",
            ));
        }
        let batch = Batch {
            v: &v,
            created: utc_now_string(),
            expired: v.charge.prepaid_period.map(expiry_after_months),
        };
        let ids: Vec<String> = (0..v.count).map(|n| self.create(ctx, &batch, n)).collect();
        if let Some(key) = token_key {
            self.tokens.insert(key, ids.clone());
        }
        Ok(model::RunInstancesResponse {
            instance_id_set: Some(ids),
        })
    }

    /// `LimitExceeded.InstanceQuota` when `more` instances would exceed the
    /// account's quota in the region.
    fn check_quota(&self, ctx: &Ctx<'_>, more: usize) -> Result<(), ApiError> {
        let existing = self
            .instances
            .values()
            .filter(|i| i.account == ctx.account && i.region == ctx.region)
            .count();
        if existing + more > self.config.instance_quota {
            return Err(api_err(
                "LimitExceeded.InstanceQuota",
                format!(
                    "The instance quota of this account in {} is {}; {existing} are in use and {more} more were requested.",
                    ctx.region, self.config.instance_quota
                ),
            ));
        }
        Ok(())
    }

    /// Creates the `n`-th instance of a batch in PENDING and schedules its
    /// launch. Returns its id.
    fn create(&mut self, ctx: &Ctx<'_>, batch: &Batch<'_>, n: usize) -> String {
        let v = batch.v;
        let id = self.new_instance_id();
        let private_ip =
            v.network.private_ips.get(n).cloned().unwrap_or_else(|| {
                self.alloc_private_ip(v.network.subnet.id, v.network.subnet.prefix)
            });
        let public_ips = v.network.public_ip.then(|| vec![self.alloc_public_ip()]);
        let mut view = instance_view(batch, n, private_ip);
        view.instance_id = Some(id.clone());
        view.public_ip_addresses = public_ips;
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
                steps: VecDeque::new(),
            },
        );
        let steps = self.launch_steps(v);
        self.begin(&id, "RunInstances", ctx, steps);
        id
    }

    /// PENDING → RUNNING, or → LAUNCH_FAILED for a broken image (or by the
    /// configured failure rate).
    fn launch_steps(&self, v: &ValidatedRun) -> Vec<Step> {
        let fails = v.image.launch_fails
            || (self.config.launch_failure_rate > 0.0
                && fastrand::f64() < self.config.launch_failure_rate);
        let t = &self.config.timings;
        if !fails {
            return self.settle(t.launch, Some(InstanceState::Running));
        }
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
    }

    pub(super) fn alloc_private_ip(&mut self, subnet_id: &str, prefix: &str) -> String {
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
}

/// `now + months` as the API writes times (prepaid expiry).
pub(super) fn expiry_after_months(months: i64) -> String {
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    now.checked_add(jiff::Span::new().months(months))
        .map(|z| z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The host name the cloud gives when none is asked for: `VM-<the last two
/// octets of the private IP>-<OS>`, e.g. `VM-3-12-ubuntu`.
pub(super) fn default_host_name(private_ip: &str, platform: &str) -> String {
    let mut octets = private_ip.rsplit('.');
    let (d, c) = (octets.next().unwrap_or("0"), octets.next().unwrap_or("0"));
    format!("VM-{c}-{d}-{}", platform.to_ascii_lowercase())
}

/// The DescribeInstances view of the `n`-th new instance of a batch, in
/// PENDING, before its first operation is recorded.
fn instance_view(batch: &Batch<'_>, n: usize, private_ip: String) -> Instance {
    let v = batch.v;
    let name = expand(&v.name, n, v.count, None);
    let host_name = match &v.host_name {
        Some(template) => expand(template, n, v.count, Some(&private_ip)),
        None => default_host_name(&private_ip, v.image.platform),
    };
    let mut system_disk = v.disks.system.clone();
    system_disk.disk_id = Some(format!("disk-{}", random_suffix()));
    let data_disks: Vec<model::DataDisk> = v
        .disks
        .data
        .iter()
        .map(|d| model::DataDisk {
            disk_id: Some(format!("disk-{}", random_suffix())),
            ..d.clone()
        })
        .collect();
    Instance {
        instance_id: None,
        uuid: Some(uuid::Uuid::new_v4().to_string()),
        instance_state: Some(InstanceState::Pending),
        instance_type: Some(v.instance_type.name.to_string()),
        cpu: Some(v.instance_type.cpu),
        memory: Some(v.instance_type.memory),
        instance_name: Some(name),
        instance_charge_type: Some(v.charge.charge_type.clone()),
        placement: Some(model::Placement {
            zone: Some(v.zone.clone()),
            project_id: Some(v.project_id),
            ..Default::default()
        }),
        system_disk: Some(system_disk),
        data_disks: Some(data_disks),
        private_ip_addresses: Some(vec![private_ip.clone()]),
        public_ip_addresses: None,
        internet_accessible: Some(v.network.internet.clone()),
        virtual_private_cloud: Some(model::VirtualPrivateCloud {
            vpc_id: Some(v.network.subnet.vpc_id.to_string()),
            subnet_id: Some(v.network.subnet.id.to_string()),
            as_vpc_gateway: Some(false),
            private_ip_addresses: Some(vec![private_ip]),
            ..Default::default()
        }),
        image_id: Some(v.image.id.to_string()),
        os_name: Some(v.image.os_name.to_string()),
        renew_flag: v.charge.renew_flag.clone(),
        created_time: Some(batch.created.clone()),
        expired_time: batch.expired.clone(),
        security_group_ids: Some(v.network.security_groups.clone()),
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
        host_name: Some(host_name),
        // The deprecated single id is answered empty, as the service does.
        disaster_recover_group_id: Some(String::new()),
        disaster_recover_group_ids: Some(v.placement_group.iter().cloned().collect()),
        // IPv6, RDMA, HPC and CDC clusters are not modelled: answered
        // empty, as for an instance that has none.
        ipv6_addresses: None,
        rdma_ip_addresses: Some(Vec::new()),
        hpc_cluster_id: Some(String::new()),
        dedicated_cluster_id: Some(String::new()),
    }
}
