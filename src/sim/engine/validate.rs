//! RunInstances (and InquiryPriceRunInstances) parameter validation, one
//! validator per parameter group: placement, image, charge, count, disks,
//! network, login, naming, tags. Each returns the settled values (defaults
//! filled in) or the API error the real service gives for the first problem.

use super::checks::{
    DATA_DISK_TYPES, INTERNET_CHARGE_TYPES, MAX_BANDWIDTH, MAX_TAGS_PER_RESOURCE, PREPAID_PERIODS,
    RENEW_FLAGS, SYSTEM_DISK_TYPES, TagProblem, check_host_name, check_password, check_user_data,
    is_short_id, tag_problem,
};
use super::naming::expand;
use super::{ApiError, Ctx, Engine, api_err, bad_value, missing};
use crate::cloud::model::{self, Tag};
use crate::sim::catalogue::{Image, InstanceType, Region, Subnet};

/// The instance type RunInstances picks when none is given.
const DEFAULT_INSTANCE_TYPE: &str = "S5.MEDIUM4";

/// A RunInstances request that passed validation.
pub(super) struct ValidatedRun {
    pub zone: String,
    pub project_id: i64,
    pub image: Image,
    pub instance_type: InstanceType,
    pub charge: Charge,
    pub count: usize,
    pub disks: Disks,
    pub network: Network,
    pub key_ids: Vec<String>,
    /// `InstanceName` and `HostName` as given (patterns not yet expanded).
    pub name: String,
    pub host_name: Option<String>,
    pub tags: Vec<Tag>,
    pub disable_api_termination: bool,
    /// `DisasterRecoverGroupIds`: at most one placement group.
    pub placement_group: Option<String>,
}

/// How the instances are paid for.
pub(super) struct Charge {
    pub charge_type: String,
    /// Months, for PREPAID.
    pub prepaid_period: Option<i64>,
    pub renew_flag: Option<String>,
}

pub(super) struct Disks {
    pub system: model::SystemDisk,
    pub data: Vec<model::DataDisk>,
}

pub(super) struct Network {
    pub subnet: Subnet,
    /// One per instance when given.
    pub private_ips: Vec<String>,
    pub internet: model::InternetAccessible,
    pub public_ip: bool,
    pub security_groups: Vec<String>,
}

impl Engine {
    /// `max_count`: the action's `InstanceCount` limit (RunInstances and
    /// InquiryPriceRunInstances differ).
    pub(super) fn validate_run(
        &self,
        ctx: &Ctx<'_>,
        req: &model::RunInstancesRequest,
        max_count: i64,
    ) -> Result<ValidatedRun, ApiError> {
        let region = self.region(ctx)?;
        let (zone, project_id) = placement(ctx, region, &self.catalogue.projects, req)?;
        let image = self.image(req)?;
        let type_name = req
            .instance_type
            .as_deref()
            .unwrap_or(DEFAULT_INSTANCE_TYPE);
        let instance_type = self.check_type_in_zone(type_name, &zone)?;
        let charge = charge(req)?;
        let count = count(req, max_count)?;
        let disks = disks(req, &image)?;
        let subnet = subnet(region, &zone, req)?;
        let private_ips = self.private_ips(req, &subnet, count)?;
        let (internet, public_ip) = internet(req, &charge)?;
        let network = Network {
            subnet,
            private_ips,
            internet,
            public_ip,
            security_groups: security_groups(region, req)?,
        };
        let key_ids = login(region, req)?;
        let (name, host_name) = naming(ctx, req, count, &network.subnet)?;
        Ok(ValidatedRun {
            zone,
            project_id,
            image,
            instance_type,
            charge,
            count,
            disks,
            network,
            key_ids,
            name,
            host_name,
            tags: tags(req)?,
            disable_api_termination: req.disable_api_termination.unwrap_or(false),
            placement_group: self.run_placement_group(ctx, req, count)?,
        })
    }

    fn image(&self, req: &model::RunInstancesRequest) -> Result<Image, ApiError> {
        let image_id = req.image_id.as_deref().ok_or_else(|| missing("ImageId"))?;
        self.find_image(image_id)
    }

    /// `DisasterRecoverGroupIds`: one group of the region with room for
    /// `count` more instances.
    fn run_placement_group(
        &self,
        ctx: &Ctx<'_>,
        req: &model::RunInstancesRequest,
        count: usize,
    ) -> Result<Option<String>, ApiError> {
        let groups = req
            .disaster_recover_group_ids
            .as_deref()
            .unwrap_or_default();
        let [group] = groups else {
            return match groups {
                [] => Ok(None),
                _ => Err(bad_value(
                    "DisasterRecoverGroupIds",
                    "one placement group is supported",
                )),
            };
        };
        let found =
            self.placement_group(ctx, group, "FailedOperation.DisasterRecoverGroupNotFound")?;
        let members = self.group_members(ctx, group).len();
        if members + count > found.capacity {
            return Err(api_err(
                "ResourceInsufficient.DisasterRecoverGroupCvmQuota",
                format!(
                    "The placement group `{group}` holds at most {} instances; {members} are in it.",
                    found.capacity
                ),
            ));
        }
        Ok(Some(group.clone()))
    }

    /// An image of the catalogue, or why not.
    pub(super) fn find_image(&self, image_id: &str) -> Result<Image, ApiError> {
        if !is_short_id(image_id, "img-") {
            return Err(api_err(
                "InvalidImageId.Malformed",
                format!(
                    "The specified ImageId `{image_id}` is malformed, it should be like `img-xxxxxxxx`."
                ),
            ));
        }
        self.catalogue.image(image_id).cloned().ok_or_else(|| {
            api_err(
                "InvalidImageId.NotFound",
                format!("The image `{image_id}` does not exist."),
            )
        })
    }

    /// `VirtualPrivateCloud.PrivateIpAddresses`: one per instance, inside the
    /// subnet, not in use.
    fn private_ips(
        &self,
        req: &model::RunInstancesRequest,
        subnet: &Subnet,
        count: usize,
    ) -> Result<Vec<String>, ApiError> {
        let private_ips = req
            .virtual_private_cloud
            .as_ref()
            .and_then(|v| v.private_ip_addresses.clone())
            .unwrap_or_default();
        if private_ips.is_empty() {
            return Ok(private_ips);
        }
        if private_ips.len() != count {
            return Err(api_err(
                "InvalidParameterCombination",
                "The number of VirtualPrivateCloud.PrivateIpAddresses must equal InstanceCount.",
            ));
        }
        for ip in &private_ips {
            self.check_free_ip(ip, subnet)?;
        }
        Ok(private_ips)
    }

    /// A private address one may ask for: inside `subnet`, not in use.
    pub(super) fn check_free_ip(&self, ip: &str, subnet: &Subnet) -> Result<(), ApiError> {
        let network = subnet.prefix.rsplit_once('.').map(|p| p.0).unwrap_or("");
        if !ip.starts_with(&format!("{network}.")) {
            return Err(api_err(
                "VpcAddrNotInSubNet",
                format!("The address `{ip}` is not in subnet `{}`.", subnet.id),
            ));
        }
        if self.instances.values().any(|i| {
            i.view
                .private_ip_addresses
                .as_ref()
                .is_some_and(|a| a.iter().any(|a| a == ip))
        }) {
            return Err(api_err(
                "VpcIpIsUsed",
                format!("The address `{ip}` is already in use."),
            ));
        }
        Ok(())
    }
}

/// `Placement`: the zone (required, in the region, on sale) and project
/// (one of the account's).
fn placement(
    ctx: &Ctx<'_>,
    region: &Region,
    projects: &[i64],
    req: &model::RunInstancesRequest,
) -> Result<(String, i64), ApiError> {
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
    let project = placement.project_id.unwrap_or(0);
    if !projects.contains(&project) {
        return Err(api_err(
            "InvalidProjectId.NotFound",
            format!("The project `{project}` does not exist."),
        ));
    }
    Ok((zone, project))
}

/// `InstanceChargeType`, `InstanceChargePrepaid`, `InstanceMarketOptions`.
fn charge(req: &model::RunInstancesRequest) -> Result<Charge, ApiError> {
    spot(req)?;
    let charge_type = req
        .instance_charge_type
        .clone()
        .unwrap_or_else(|| "POSTPAID_BY_HOUR".into());
    let (mut prepaid_period, mut renew_flag) = (None, None);
    match charge_type.as_str() {
        "POSTPAID_BY_HOUR" | "SPOTPAID" => {}
        "PREPAID" => {
            let (period, flag) = prepaid(req)?;
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
    Ok(Charge {
        charge_type,
        prepaid_period,
        renew_flag,
    })
}

/// `InstanceChargePrepaid`: period (required) and renew flag.
fn prepaid(req: &model::RunInstancesRequest) -> Result<(i64, String), ApiError> {
    prepaid_terms(req.instance_charge_prepaid.as_ref())
}

/// `InstanceChargePrepaid` (required for PREPAID): the period and the renew
/// flag (`NOTIFY_AND_MANUAL_RENEW` when unset).
pub(super) fn prepaid_terms(
    p: Option<&model::InstanceChargePrepaid>,
) -> Result<(i64, String), ApiError> {
    let p = p.ok_or_else(|| missing("InstanceChargePrepaid"))?;
    let period = p
        .period
        .ok_or_else(|| missing("InstanceChargePrepaid.Period"))?;
    if !PREPAID_PERIODS.contains(&period) {
        return Err(api_err(
            "InvalidPeriod",
            format!("The period {period} is not allowed; use 1-12, 24, 36, 48 or 60 months."),
        ));
    }
    let flag = p
        .renew_flag
        .clone()
        .unwrap_or_else(|| "NOTIFY_AND_MANUAL_RENEW".into());
    if !RENEW_FLAGS.contains(&flag.as_str()) {
        return Err(bad_value(
            "InstanceChargePrepaid.RenewFlag",
            "unknown renew flag",
        ));
    }
    Ok((period, flag))
}

/// `InstanceMarketOptions` (optional; for SPOTPAID). When given, its
/// `SpotOptions` and their `MaxPrice` are required (api.json); a spot request
/// without a price limit omits the whole object (the bid is then the current
/// market price).
fn spot(req: &model::RunInstancesRequest) -> Result<(), ApiError> {
    let Some(mo) = &req.instance_market_options else {
        return Ok(());
    };
    let options = mo
        .spot_options
        .as_ref()
        .ok_or_else(|| missing("InstanceMarketOptions.SpotOptions"))?;
    let price = options
        .max_price
        .as_deref()
        .ok_or_else(|| missing("InstanceMarketOptions.SpotOptions.MaxPrice"))?;
    if mo.market_type.as_deref().is_some_and(|m| m != "spot") {
        return Err(bad_value(
            "InstanceMarketOptions.MarketType",
            "must be `spot`",
        ));
    }
    if price.parse::<f64>().map(|v| v <= 0.0).unwrap_or(true) {
        return Err(bad_value(
            "InstanceMarketOptions.SpotOptions.MaxPrice",
            "must be a positive number",
        ));
    }
    Ok(())
}

/// `InstanceCount` and `MinCount`.
fn count(req: &model::RunInstancesRequest, max: i64) -> Result<usize, ApiError> {
    let count = req.instance_count.unwrap_or(1);
    if !(1..=max).contains(&count) {
        return Err(api_err(
            "InvalidParameterValue.Range",
            format!("InstanceCount must be between 1 and {max}."),
        ));
    }
    if req.min_count.is_some_and(|m| m < 1 || m > count) {
        return Err(api_err(
            "InvalidParameterValue.Range",
            "MinCount must be between 1 and InstanceCount.",
        ));
    }
    Ok(count as usize)
}

/// `SystemDisk` and `DataDisks`, with their defaults filled in.
fn disks(req: &model::RunInstancesRequest, image: &Image) -> Result<Disks, ApiError> {
    let mut system = req.system_disk.clone().unwrap_or_default();
    let disk_type = system
        .disk_type
        .get_or_insert_with(|| "CLOUD_PREMIUM".into())
        .clone();
    if !SYSTEM_DISK_TYPES.contains(&disk_type.as_str()) {
        return Err(bad_value(
            "SystemDisk.DiskType",
            &format!("unknown disk type `{disk_type}`"),
        ));
    }
    let size = *system.disk_size.get_or_insert(50);
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
    system.encrypt.get_or_insert(false);
    system.kms_key_id.get_or_insert_with(String::new);
    let given = req.data_disks.as_deref().unwrap_or_default();
    if given.len() > 21 {
        return Err(api_err(
            "InvalidParameterValue.LimitExceeded",
            "At most 21 data disks are allowed.",
        ));
    }
    let data = given
        .iter()
        .enumerate()
        .map(|(i, d)| data_disk(i, d))
        .collect::<Result<_, _>>()?;
    Ok(Disks { system, data })
}

fn data_disk(i: usize, d: &model::DataDisk) -> Result<model::DataDisk, ApiError> {
    let size = d
        .disk_size
        .ok_or_else(|| missing(&format!("DataDisks.{i}.DiskSize")))?;
    if !(10..=32000).contains(&size) || size % 10 != 0 {
        return Err(api_err(
            "InvalidParameterValue.Range",
            format!("DataDisks.{i}.DiskSize {size} must be a multiple of 10 in [10, 32000]."),
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
            "InvalidParameterValue.SnapshotIdMalformed",
            format!("The snapshot id `{s}` is malformed."),
        ));
    }
    // What was asked for is echoed (also the members not modelled, such as
    // CdcId or ThroughputPerformance); the always-answered ones get defaults.
    Ok(model::DataDisk {
        disk_size: Some(size),
        disk_type: Some(t),
        delete_with_instance: Some(d.delete_with_instance.unwrap_or(true)),
        encrypt: Some(d.encrypt.unwrap_or(false)),
        kms_key_id: Some(d.kms_key_id.clone().unwrap_or_default()),
        ..d.clone()
    })
}

/// `VirtualPrivateCloud`: the VPC and subnet (the zone's default subnet when
/// both are `DEFAULT` or the parameter is absent).
fn subnet(
    region: &Region,
    zone: &str,
    req: &model::RunInstancesRequest,
) -> Result<Subnet, ApiError> {
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
        .ok_or_else(|| missing("VirtualPrivateCloud.VpcId"))?;
    let subnet_id = vpc
        .subnet_id
        .ok_or_else(|| missing("VirtualPrivateCloud.SubnetId"))?;
    if vpc_id == "DEFAULT" && subnet_id == "DEFAULT" {
        return region.default_subnet(zone).cloned().ok_or_else(|| {
            api_err(
                "InvalidParameterValue.SubnetNotExist",
                "No subnet in this zone.",
            )
        });
    }
    if !region.vpcs.contains(&vpc_id.as_str()) {
        return Err(api_err(
            "InvalidParameterValue.VpcIdNotExist",
            format!("The VPC `{vpc_id}` does not exist."),
        ));
    }
    let s = region.subnet(&subnet_id).ok_or_else(|| {
        api_err(
            "InvalidParameterValue.SubnetNotExist",
            format!("The subnet `{subnet_id}` does not exist."),
        )
    })?;
    if s.vpc_id != vpc_id {
        return Err(api_err(
            "InvalidParameterValue.VpcIdSubnetIdNotMatch",
            format!(
                "The subnet `{subnet_id}` belongs to `{}`, not `{vpc_id}`.",
                s.vpc_id
            ),
        ));
    }
    if s.zone != zone {
        return Err(api_err(
            "InvalidParameterValue.SubnetIdZoneIdNotMatch",
            format!(
                "The subnet `{subnet_id}` is in zone `{}`, not `{zone}`.",
                s.zone
            ),
        ));
    }
    Ok(s.clone())
}

/// `InternetAccessible`, defaults filled in, and whether a public IP is
/// assigned.
fn internet(
    req: &model::RunInstancesRequest,
    charge: &Charge,
) -> Result<(model::InternetAccessible, bool), ApiError> {
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
            if charge.charge_type == "PREPAID" {
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
    Ok((internet, public_ip))
}

/// `SecurityGroupIds` (the region's default group when absent).
fn security_groups(
    region: &Region,
    req: &model::RunInstancesRequest,
) -> Result<Vec<String>, ApiError> {
    let Some(sgs) = &req.security_group_ids else {
        return Ok(vec![region.security_groups[0].to_string()]);
    };
    for sg in sgs {
        if !region.security_groups.contains(&sg.as_str()) {
            return Err(api_err(
                "InvalidSecurityGroupId.NotFound",
                format!("The security group `{sg}` does not exist."),
            ));
        }
    }
    Ok(sgs.clone())
}

/// `LoginSettings`: a password or key pairs, not both. Returns the key ids.
fn login(region: &Region, req: &model::RunInstancesRequest) -> Result<Vec<String>, ApiError> {
    let Some(ls) = &req.login_settings else {
        return Ok(Vec::new());
    };
    if ls.password.is_some() && ls.key_ids.as_ref().is_some_and(|k| !k.is_empty()) {
        return Err(api_err(
            "InvalidParameterCombination",
            "LoginSettings.Password and LoginSettings.KeyIds cannot be given together.",
        ));
    }
    if let Some(p) = &ls.password {
        check_password(p.expose())?;
    }
    let mut key_ids = Vec::new();
    for k in ls.key_ids.iter().flatten() {
        if !region.key_ids.contains(&k.as_str()) {
            return Err(api_err(
                "InvalidParameterValue.KeyPairNotFound",
                format!("The key pair `{k}` does not exist."),
            ));
        }
        key_ids.push(k.clone());
    }
    Ok(key_ids)
}

/// `InstanceName`, `HostName` (both may hold the patterns of
/// [`super::naming`]; host names are checked as they will be expanded) and
/// `UserData`.
fn naming(
    ctx: &Ctx<'_>,
    req: &model::RunInstancesRequest,
    count: usize,
    subnet: &Subnet,
) -> Result<(String, Option<String>), ApiError> {
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
        // The longest address of the subnet stands in for `{IP}`.
        let ip = format!("{}.254", subnet.prefix);
        for n in [0, count - 1] {
            check_host_name(&expand(h, n, count, Some(&ip)))?;
        }
    }
    if let Some(u) = &req.user_data {
        check_user_data(u.expose())?;
    }
    Ok((name, req.host_name.clone()))
}

/// `TagSpecification`: the tags for resource type `instance`, the last value
/// of a key winning. The Tag service's rules: keys 1-127 and values up to 255
/// characters of letters, digits, spaces and `+-=._:/@`; keys starting with
/// `qcloud`, `tencent` or `project` are reserved; at most 50 per resource.
fn tags(req: &model::RunInstancesRequest) -> Result<Vec<Tag>, ApiError> {
    let mut tags = Vec::new();
    for spec in req.tag_specification.iter().flatten() {
        if spec.resource_type.is_empty() {
            return Err(missing("TagSpecification.ResourceType"));
        }
        if spec.resource_type != "instance" {
            continue;
        }
        for t in &spec.tags {
            check_tag(t)?;
            tags.retain(|x: &Tag| x.key != t.key);
            tags.push(t.clone());
        }
    }
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(api_err(
            "InvalidParameterValue.TagQuotaLimitExceeded",
            format!("At most {MAX_TAGS_PER_RESOURCE} tags per resource."),
        ));
    }
    Ok(tags)
}

fn check_tag(t: &Tag) -> Result<(), ApiError> {
    use TagProblem::*;
    let Some(problem) = tag_problem(&t.key, &t.value) else {
        return Ok(());
    };
    Err(match problem {
        ReservedKey => api_err(
            "FailedOperation.TagKeyReserved",
            format!("The tag key `{}` is reserved by the system.", t.key),
        ),
        EmptyKey | KeyTooLong | KeyIllegal => api_err(
            "FailedOperation.IllegalTagKey",
            format!(
                "The tag key `{}` is illegal: 1-127 letters, digits, spaces or +-=._:/@.",
                t.key
            ),
        ),
        ValueTooLong | ValueIllegal => api_err(
            "FailedOperation.IllegalTagValue",
            format!(
                "The value of tag `{}` is illegal: at most 255 letters, digits, spaces or +-=._:/@.",
                t.key
            ),
        ),
    })
}
