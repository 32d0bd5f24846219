//! Where an instance sits: ModifyInstancesVpcAttribute (another subnet or
//! private IP; the call stops a RUNNING instance and starts it again) and
//! ModifyInstancesDisasterRecoverGroup (placement groups of the catalogue,
//! each with a capacity; `Force` may move a running instance to another
//! host, which reboots it).

use super::checks::is_short_id;
use super::run::default_host_name;
use super::{ApiError, Ctx, Engine, Patch, SimInstance, api_err, bad_value, missing};
use crate::cloud::model::{self, InstanceState};
use std::collections::HashSet;

impl Engine {
    pub fn modify_instances_vpc_attribute(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ModifyInstancesVpcAttributeRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let vpc = &req.virtual_private_cloud;
        let vpc_id = vpc
            .vpc_id
            .as_deref()
            .ok_or_else(|| missing("VirtualPrivateCloud.VpcId"))?;
        let subnet_id = vpc
            .subnet_id
            .as_deref()
            .ok_or_else(|| missing("VirtualPrivateCloud.SubnetId"))?;
        let subnet = self.vpc_subnet(ctx, vpc_id, subnet_id)?;
        for id in &req.instance_ids {
            if self.instances[id].view.zone() != Some(subnet.zone) {
                return Err(bad_value(
                    "VirtualPrivateCloud.SubnetId",
                    &format!(
                        "the subnet `{subnet_id}` is in zone {}, not in the zone of `{id}`",
                        subnet.zone
                    ),
                ));
            }
        }
        let asked = vpc.private_ip_addresses.clone().unwrap_or_default();
        self.check_asked_ips(&req.instance_ids, &asked, &subnet)?;
        // ForceStop defaults to true here (api.json): the call stops a
        // RUNNING instance unless told not to.
        self.check_stoppable(&req.instance_ids, req.force_stop != Some(false))?;
        let keep_host_name = req.reserve_host_name != Some(false);
        let work = self.config.timings.modify;
        for (n, id) in req.instance_ids.iter().enumerate() {
            let ip = match asked.get(n) {
                Some(ip) => ip.clone(),
                None => self.alloc_private_ip(subnet.id, subnet.prefix),
            };
            let platform = self.instance_platform(id);
            let (vpc_id, subnet_id) = (subnet.vpc_id.to_string(), subnet.id.to_string());
            let patch = Patch::new(move |v| {
                let net = v.virtual_private_cloud.get_or_insert_with(Default::default);
                net.vpc_id = Some(vpc_id.clone());
                net.subnet_id = Some(subnet_id.clone());
                net.private_ip_addresses = Some(vec![ip.clone()]);
                v.private_ip_addresses = Some(vec![ip.clone()]);
                if !keep_host_name {
                    v.host_name = Some(default_host_name(&ip, &platform));
                }
            });
            self.begin_stopped_change(id, "ModifyInstancesVpcAttribute", ctx, work, patch, false);
        }
        Ok(())
    }

    /// The subnet of a VPC change: well-formed ids, in the region, of
    /// that VPC.
    fn vpc_subnet(
        &self,
        ctx: &Ctx<'_>,
        vpc_id: &str,
        subnet_id: &str,
    ) -> Result<crate::sim::catalogue::Subnet, ApiError> {
        if !is_short_id(vpc_id, "vpc-") {
            return Err(api_err(
                "InvalidParameterValue.VpcIdMalformed",
                format!("The VPC id `{vpc_id}` is malformed, it should be like `vpc-xxxxxxxx`."),
            ));
        }
        if !is_short_id(subnet_id, "subnet-") {
            return Err(api_err(
                "InvalidParameterValue.SubnetIdMalformed",
                format!(
                    "The subnet id `{subnet_id}` is malformed, it should be like `subnet-xxxxxxxx`."
                ),
            ));
        }
        let region = self.region(ctx)?;
        if !region.vpcs.contains(&vpc_id) {
            return Err(bad_value(
                "VirtualPrivateCloud.VpcId",
                &format!("the VPC `{vpc_id}` does not exist"),
            ));
        }
        let subnet = region
            .subnet(subnet_id)
            .filter(|s| s.vpc_id == vpc_id)
            .ok_or_else(|| {
                bad_value(
                    "VirtualPrivateCloud.SubnetId",
                    &format!("the subnet `{subnet_id}` does not exist in `{vpc_id}`"),
                )
            })?;
        Ok(subnet.clone())
    }

    /// `PrivateIpAddresses`: none, or one per instance, each an IPv4
    /// address of the subnet that no other instance has.
    fn check_asked_ips(
        &self,
        ids: &[String],
        asked: &[String],
        subnet: &crate::sim::catalogue::Subnet,
    ) -> Result<(), ApiError> {
        if asked.is_empty() {
            return Ok(());
        }
        if asked.len() != ids.len() {
            return Err(bad_value(
                "VirtualPrivateCloud.PrivateIpAddresses",
                "give one address per instance, in the order of InstanceIds",
            ));
        }
        let mut seen = HashSet::new();
        for (ip, id) in asked.iter().zip(ids) {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(api_err(
                    "InvalidParameterValue.IPAddressMalformed",
                    format!("`{ip}` is not an IPv4 address."),
                ));
            }
            if !seen.insert(ip) {
                return Err(api_err(
                    "VpcIpIsUsed",
                    format!("The address `{ip}` is given twice."),
                ));
            }
            let own = self.instances[id]
                .view
                .private_ip_addresses
                .as_ref()
                .is_some_and(|a| a.contains(ip));
            if !own {
                self.check_free_ip(ip, subnet)?;
            }
        }
        Ok(())
    }

    fn instance_platform(&self, id: &str) -> String {
        let image = self.instances[id]
            .view
            .image_id
            .as_deref()
            .unwrap_or_default();
        self.catalogue
            .image(image)
            .map(|i| i.platform.to_string())
            .unwrap_or_else(|| "linux".into())
    }

    pub fn modify_instances_disaster_recover_group(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ModifyInstancesDisasterRecoverGroupRequest,
    ) -> Result<(), ApiError> {
        self.check_ids(ctx, &req.instance_ids, 100)?;
        let groups = match (
            &req.disaster_recover_group_ids,
            &req.disaster_recover_group_id,
        ) {
            (Some(ids), _) => ids.clone(),
            (None, Some(id)) => vec![id.clone()],
            (None, None) => return Err(missing("DisasterRecoverGroupIds")),
        };
        if groups.len() > 1 {
            return Err(api_err(
                "InvalidParameterValue.LimitExceeded",
                "One placement group per instance is supported.",
            ));
        }
        let group = groups.first().cloned();
        if let Some(g) = &group {
            self.check_group_room(ctx, g, &req.instance_ids)?;
        }
        if let Some(p) = req.partition_number {
            return Err(api_err(
                "InvalidParameterValue.NotSupported",
                format!(
                    "PartitionNumber {p}: the simulated placement groups are spread groups, without partitions."
                ),
            ));
        }
        self.check_mutable(
            &req.instance_ids,
            &[InstanceState::Running, InstanceState::Stopped],
        )?;
        self.check_not_stop_charging(&req.instance_ids)?;
        let t = self.config.timings.clone();
        let action = "ModifyInstancesDisasterRecoverGroup";
        for id in &req.instance_ids {
            // Membership counts at once (the group's capacity is reserved);
            // the operation finishes later.
            let inst = self.instances.get_mut(id).map(SimInstance::touch);
            let v = &mut inst.expect("checked").view;
            v.disaster_recover_group_ids = Some(group.iter().cloned().collect());
            if req.force == Some(true) && v.instance_state == Some(InstanceState::Running) {
                // Moved to another host: the instance restarts.
                let steps = self.settle(t.reboot, Some(InstanceState::Running));
                self.begin_in(id, InstanceState::Rebooting, action, ctx, steps);
            } else {
                let steps = self.settle(t.modify, None);
                self.begin(id, action, ctx, steps);
            }
        }
        Ok(())
    }

    /// A placement group that exists, none of `ids` is in already, and has
    /// room for them.
    fn check_group_room(&self, ctx: &Ctx<'_>, group: &str, ids: &[String]) -> Result<(), ApiError> {
        let found = self.placement_group(
            ctx,
            group,
            "InvalidParameterValue.DisasterRecoverGroupIdMalformed",
        )?;
        let members = self.group_members(ctx, group);
        if let Some(id) = ids.iter().find(|id| members.contains(id)) {
            return Err(api_err(
                "FailedOperation.AlreadyInDisasterRecoverGroup",
                format!("The instance `{id}` is already in the placement group `{group}`."),
            ));
        }
        if members.len() + ids.len() > found.capacity {
            return Err(api_err(
                "ResourceInsufficient.DisasterRecoverGroupCvmQuota",
                format!(
                    "The placement group `{group}` holds at most {} instances; {} are in it.",
                    found.capacity,
                    members.len()
                ),
            ));
        }
        Ok(())
    }

    /// A placement group of the region (`malformed_code` for a bad id, as
    /// each action's list names it).
    pub(super) fn placement_group(
        &self,
        ctx: &Ctx<'_>,
        group: &str,
        malformed_code: &str,
    ) -> Result<crate::sim::catalogue::PlacementGroup, ApiError> {
        if !is_short_id(group, "ps-") {
            return Err(api_err(
                malformed_code,
                format!(
                    "The placement group id `{group}` is malformed, it should be like `ps-xxxxxxxx`."
                ),
            ));
        }
        self.region(ctx)?
            .placement_group(group)
            .cloned()
            .ok_or_else(|| {
                api_err(
                    "FailedOperation.DisasterRecoverGroupNotFound",
                    format!("The placement group `{group}` does not exist."),
                )
            })
    }

    /// The caller's instances in a placement group.
    pub(super) fn group_members(&self, ctx: &Ctx<'_>, group: &str) -> Vec<String> {
        self.instances
            .iter()
            .filter(|(_, i)| i.account == ctx.account && i.region == ctx.region)
            .filter(|(_, i)| {
                i.view
                    .disaster_recover_group_ids
                    .as_ref()
                    .is_some_and(|g| g.iter().any(|g| g == group))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}
