//! Finding the differences between a spec and an instance, in the order
//! they are fixed. Pure.

use super::drift::{DiskRef, Drift, Network, Tags};
use crate::api::limits::RESERVED_TAG_PREFIXES;
use crate::api::{CvmInstanceSpec, InstanceChargeType, RunState, StoppedMode};
use crate::cloud::model::InstanceState;
use crate::controller::observation::{Compared, Observation, WriteOnly};

/// Every difference between the spec and an instance, in the order they
/// are fixed: what needs nothing (while the instance runs; disks grow
/// online), what takes effect at a reboot, what needs the instance stopped
/// (all in one stop: keys, password, VPC), what boots it (type, then a
/// reinstall), and the power state last. A reinstall sets the login, host
/// name and user data itself, so those are not listed beside it.
/// `write_only`: how the values the API never shows compare with what was
/// last applied.
pub fn drift(
    spec: &CvmInstanceSpec,
    instance_name: &str,
    o: &Observation,
    write_only: &WriteOnly,
) -> Vec<Drift> {
    let image = (spec.image_id != o.settings.image_id).then(|| Drift::Image {
        want: spec.image_id.clone(),
        have: o.settings.image_id.to_string(),
    });
    let reinstalling = image.is_some();
    let mut out = Vec::new();
    attributes(spec, instance_name, o, &mut out);
    settings(spec, o, &mut out);
    if write_only.user_data == Compared::Changed && !reinstalling {
        out.push(Drift::UserData);
    }
    billing(spec, o, &mut out);
    disks(spec, o, &mut out);
    if !reinstalling {
        host_name(spec, o, &mut out);
    }
    placement_group(spec, o, &mut out);
    if !reinstalling {
        login(spec, o, write_only, &mut out);
    }
    network(spec, o, &mut out);
    if o.instance_type != spec.instance_type {
        out.push(Drift::InstanceType {
            want: spec.instance_type.clone(),
            have: o.instance_type.to_string(),
        });
    }
    out.extend(image);
    power(spec, o, &mut out);
    out
}

/// The attributes the operator always kept: bandwidth, name, security
/// groups, termination protection.
fn attributes(spec: &CvmInstanceSpec, instance_name: &str, o: &Observation, out: &mut Vec<Drift>) {
    if let Some(ia) = &spec.internet_accessible
        && ia.internet_max_bandwidth_out != o.bandwidth_out
    {
        out.push(Drift::Bandwidth {
            want: ia.internet_max_bandwidth_out,
            have: o.bandwidth_out,
        });
    }
    if o.name != instance_name {
        out.push(Drift::Name {
            want: instance_name.into(),
            have: o.name.clone(),
        });
    }
    if let Some(sgs) = &spec.security_group_ids
        && *sgs != o.security_group_ids
    {
        out.push(Drift::SecurityGroups {
            want: sgs.clone(),
            have: o.security_group_ids.clone(),
        });
    }
    if let Some(p) = spec.disable_api_termination
        && p != o.disable_api_termination
    {
        out.push(Drift::TerminationProtection {
            want: p,
            have: o.disable_api_termination,
        });
    }
}

/// The instance's tags the spec manages: all but the operator's own and
/// those under prefixes the API reserves.
fn managed_tags(o: &Observation) -> Tags {
    let mut tags: Tags = o
        .settings
        .tags
        .iter()
        .filter(|(k, _)| !RESERVED_TAG_PREFIXES.iter().any(|p| k.starts_with(p)))
        .cloned()
        .collect();
    tags.sort();
    tags
}

/// CAM role, tags, project.
fn settings(spec: &CvmInstanceSpec, o: &Observation, out: &mut Vec<Drift>) {
    let s = &o.settings;
    if let Some(role) = &spec.cam_role_name
        && *role != s.cam_role_name
    {
        out.push(Drift::CamRole {
            want: role.clone(),
            have: s.cam_role_name.clone(),
        });
    }
    if let Some(tags) = &spec.tags {
        let want: Tags = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let have = managed_tags(o);
        if want != have {
            out.push(Drift::Tags { want, have });
        }
    }
    if let Some(p) = spec.project_id
        && p != s.project_id
    {
        out.push(Drift::Project {
            want: p,
            have: s.project_id,
        });
    }
}

/// POSTPAID_BY_HOUR → PREPAID (the only change the API makes; admission
/// refuses the others), then the renew flag of a prepaid instance.
fn billing(spec: &CvmInstanceSpec, o: &Observation, out: &mut Vec<Drift>) {
    let Some(prepaid) = spec
        .prepaid
        .as_ref()
        .filter(|_| spec.instance_charge_type == InstanceChargeType::PREPAID)
    else {
        return;
    };
    let flag = prepaid.renew_flag.as_str();
    match o.charge_type.as_str() {
        "POSTPAID_BY_HOUR" => out.push(Drift::ChargeType {
            have: o.charge_type.to_string(),
            period: prepaid.period,
            renew_flag: flag.into(),
        }),
        "PREPAID" if o.settings.renew_flag != flag => out.push(Drift::RenewFlag {
            want: flag.into(),
            have: o.settings.renew_flag.to_string(),
        }),
        _ => {}
    }
}

/// Disks smaller than the spec asks (disks only grow: a bigger one, grown
/// outside Kubernetes, is left alone).
fn disks(spec: &CvmInstanceSpec, o: &Observation, out: &mut Vec<Drift>) {
    let s = &o.settings;
    if let Some(d) = &spec.system_disk
        && d.disk_size > s.system_disk.size
        && s.system_disk.size > 0
    {
        out.push(Drift::DiskSize {
            disk: DiskRef::System,
            want: d.disk_size,
            have: s.system_disk.size,
        });
    }
    let wanted = spec.data_disks.iter().flatten();
    for (index, (want, have)) in wanted.zip(&s.data_disks).enumerate() {
        if want.disk_size > have.size && !have.id.is_empty() {
            out.push(Drift::DiskSize {
                disk: DiskRef::Data {
                    index,
                    id: have.id.clone(),
                },
                want: want.disk_size,
                have: have.size,
            });
        }
    }
}

fn host_name(spec: &CvmInstanceSpec, o: &Observation, out: &mut Vec<Drift>) {
    if let Some(h) = &spec.host_name
        && *h != o.settings.host_name
    {
        out.push(Drift::HostName {
            want: h.clone(),
            have: o.settings.host_name.clone(),
        });
    }
}

fn placement_group(spec: &CvmInstanceSpec, o: &Observation, out: &mut Vec<Drift>) {
    let have = &o.settings.disaster_recover_group_ids;
    if let Some(want) = &spec.disaster_recover_group_ids
        && want != have
    {
        out.push(Drift::PlacementGroup {
            want: want.clone(),
            have: have.clone(),
        });
    }
}

/// Key pairs (as sets) and the password (by fingerprint).
fn login(spec: &CvmInstanceSpec, o: &Observation, write_only: &WriteOnly, out: &mut Vec<Drift>) {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if let Some(keys) = spec
        .login_settings
        .as_ref()
        .and_then(|l| l.key_ids.as_ref())
    {
        let (want, have) = (sorted(keys), sorted(&o.settings.key_ids));
        if want != have {
            out.push(Drift::KeyIds { want, have });
        }
    }
    if write_only.password == Compared::Changed {
        out.push(Drift::Password);
    }
}

/// VPC and subnet, and the private IP when the spec names one.
fn network(spec: &CvmInstanceSpec, o: &Observation, out: &mut Vec<Drift>) {
    let Some(v) = &spec.vpc else { return };
    let have = Network::of(o);
    let want = Network {
        vpc_id: v.vpc_id.clone(),
        subnet_id: v.subnet_id.clone(),
        private_ip: v.private_ip_address.clone().unwrap_or_default(),
    };
    let ip_differs = !want.private_ip.is_empty() && want.private_ip != have.private_ip;
    if want.vpc_id != have.vpc_id || want.subnet_id != have.subnet_id || ip_differs {
        out.push(Drift::Vpc { want, have });
    }
}

fn power(spec: &CvmInstanceSpec, o: &Observation, out: &mut Vec<Drift>) {
    let mode = spec.stopped_mode;
    if spec.run_state == RunState::Stopped
        && o.state == InstanceState::Stopped
        && mode == StoppedMode::STOP_CHARGING
        && o.stopped_mode == Some(StoppedMode::KEEP_CHARGING)
    {
        out.push(Drift::StoppedMode {
            want: mode.as_str().into(),
            have: StoppedMode::KEEP_CHARGING.as_str().into(),
        });
    }
    let (powered_as_wanted, want) = match spec.run_state {
        RunState::Running => (o.state == InstanceState::Running, "RUNNING"),
        RunState::Stopped => (o.state == InstanceState::Stopped, "STOPPED"),
    };
    if !powered_as_wanted {
        out.push(Drift::PowerState {
            want: want.into(),
            have: o.state.as_str().to_string(),
        });
    }
}
