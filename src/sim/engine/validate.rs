//! RunInstances (and InquiryPriceRunInstances) parameter validation, one
//! validator per parameter group: placement, image, charge, count, disks,
//! network, login, naming, tags. Each returns the settled values (defaults
//! filled in) or the API error the real service gives for the first problem.

use super::checks::{
    DATA_DISK_TYPES, INTERNET_CHARGE_TYPES, MAX_BANDWIDTH, PREPAID_PERIODS, SYSTEM_DISK_TYPES,
    check_host_name, check_password, check_user_data, is_short_id,
};
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
    pub name: String,
    pub host_name: Option<String>,
    pub tags: Vec<Tag>,
    pub disable_api_termination: bool,
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
    pub(super) fn validate_run(
        &self,
        ctx: &Ctx<'_>,
        req: &model::RunInstancesRequest,
    ) -> Result<ValidatedRun, ApiError> {
        let region = self.region(ctx)?;
        let (zone, project_id) = placement(ctx, region, req)?;
        let image = self.image(req)?;
        let type_name = req
            .instance_type
            .as_deref()
            .unwrap_or(DEFAULT_INSTANCE_TYPE);
        let instance_type = self.check_type_in_zone(type_name, &zone)?;
        let charge = charge(req)?;
        let count = count(req)?;
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
        let (name, host_name) = naming(ctx, req)?;
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
        })
    }

    fn image(&self, req: &model::RunInstancesRequest) -> Result<Image, ApiError> {
        let image_id = req.image_id.clone().ok_or_else(|| missing("ImageId"))?;
        if !is_short_id(&image_id, "img-") {
            return Err(api_err(
                "InvalidImageId.Malformed",
                format!(
                    "The specified ImageId `{image_id}` is malformed, it should be like `img-xxxxxxxx`."
                ),
            ));
        }
        self.catalogue.image(&image_id).cloned().ok_or_else(|| {
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
        let network = subnet.prefix.rsplit_once('.').map(|p| p.0).unwrap_or("");
        for ip in &private_ips {
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
                    .is_some_and(|a| a.contains(ip))
            }) {
                return Err(api_err(
                    "VpcIpIsUsed",
                    format!("The address `{ip}` is already in use."),
                ));
            }
        }
        Ok(private_ips)
    }
}

/// `Placement`: the zone (required, in the region, on sale) and project.
fn placement(
    ctx: &Ctx<'_>,
    region: &Region,
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
    Ok((zone, placement.project_id.unwrap_or(0)))
}

/// `InstanceChargeType`, `InstanceChargePrepaid`, `InstanceMarketOptions`.
fn charge(req: &model::RunInstancesRequest) -> Result<Charge, ApiError> {
    let charge_type = req
        .instance_charge_type
        .clone()
        .unwrap_or_else(|| "POSTPAID_BY_HOUR".into());
    let (mut prepaid_period, mut renew_flag) = (None, None);
    match charge_type.as_str() {
        "POSTPAID_BY_HOUR" => {}
        "SPOTPAID" => spot(req)?,
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
            format!("The period {period} is not allowed; use 1-12, 24, 36, 48 or 60 months."),
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
    Ok((period, flag))
}

/// `InstanceMarketOptions` of a SPOTPAID request (optional).
fn spot(req: &model::RunInstancesRequest) -> Result<(), ApiError> {
    let Some(mo) = &req.instance_market_options else {
        return Ok(());
    };
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
    Ok(())
}

/// `InstanceCount` and `MinCount`.
fn count(req: &model::RunInstancesRequest) -> Result<usize, ApiError> {
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
            "InvalidSnapshotId.Malformed",
            format!("The snapshot id `{s}` is malformed."),
        ));
    }
    Ok(model::DataDisk {
        disk_size: Some(size),
        disk_type: Some(t),
        delete_with_instance: Some(d.delete_with_instance.unwrap_or(true)),
        snapshot_id: d.snapshot_id.clone(),
        encrypt: d.encrypt,
        ..Default::default()
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
                "InvalidKeyPairId.NotFound",
                format!("The key pair `{k}` does not exist."),
            ));
        }
        key_ids.push(k.clone());
    }
    Ok(key_ids)
}

/// `InstanceName`, `HostName` and `UserData`.
fn naming(
    ctx: &Ctx<'_>,
    req: &model::RunInstancesRequest,
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
        check_host_name(h)?;
    }
    if let Some(u) = &req.user_data {
        check_user_data(u.expose())?;
    }
    Ok((name, req.host_name.clone()))
}

/// `TagSpecification`: the tags for resource type `instance`, the last value
/// of a key winning.
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
    if tags.len() > 50 {
        return Err(api_err(
            "LimitExceeded.TagResourceQuota",
            "At most 50 tags per resource.",
        ));
    }
    Ok(tags)
}
