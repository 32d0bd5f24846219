//! Resizing: ResizeInstanceDisks (grow one cloud disk; online or stopped)
//! and DescribeInstancesModification (the types an instance may change to,
//! which ResetInstancesType enforces alike).

use super::describe::type_config;
use super::{ApiError, Ctx, Engine, Patch, api_err, bad_value};
use crate::cloud::model::{self, InstanceState};
use crate::sim::catalogue::Stock;

/// The largest system disk, as RunInstances allows it.
const MAX_SYSTEM_DISK: i64 = 1024;
const MAX_DATA_DISK: i64 = 32000;

/// The disk a ResizeInstanceDisks call grows: the system disk, or the data
/// disk at this index of the instance's `DataDisks`.
#[derive(Debug, Clone, Copy)]
enum Target {
    System,
    Data(usize),
}

impl Engine {
    pub fn resize_instance_disks(
        &mut self,
        ctx: &Ctx<'_>,
        req: model::ResizeInstanceDisksRequest,
    ) -> Result<(), ApiError> {
        let id = req.instance_id.clone();
        let ids = std::slice::from_ref(&id);
        self.check_ids(ctx, ids, 1)?;
        let (target, size) = self.resize_target(&req)?;
        let online = req.resize_online == Some(true);
        if online {
            // Online means the instance keeps running: a stopped one is
            // refused (the action's list has InstanceStateStopped).
            self.check_mutable(ids, &[InstanceState::Running])?;
        } else {
            // A running instance needs ForceStop or ResizeOnline (api.json).
            self.check_stoppable(ids, req.force_stop == Some(true))?;
        }
        let patch = Patch::new(move |v| match target {
            Target::System => {
                v.system_disk.get_or_insert_with(Default::default).disk_size = Some(size);
            }
            Target::Data(i) => {
                if let Some(d) = v.data_disks.as_mut().and_then(|d| d.get_mut(i)) {
                    d.disk_size = Some(size);
                }
            }
        });
        let work = self.config.timings.modify;
        if online {
            self.begin_change(&id, "ResizeInstanceDisks", ctx, work, patch);
        } else {
            self.begin_stopped_change(&id, "ResizeInstanceDisks", ctx, work, patch, false);
        }
        Ok(())
    }

    /// Which disk grows to what: exactly one of `SystemDisk` and one entry of
    /// `DataDisks` (by `DiskId`), a cloud disk, only bigger, within limits.
    fn resize_target(
        &self,
        req: &model::ResizeInstanceDisksRequest,
    ) -> Result<(Target, i64), ApiError> {
        let v = &self.instances[&req.instance_id].view;
        let (target, asked, current, max): (Target, Disk, Disk, i64) =
            match (&req.system_disk, &req.data_disks) {
                (None, None) => {
                    return Err(api_err(
                        "MissingParameter.AtLeastOne",
                        "One of SystemDisk and DataDisks is required.",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(bad_value(
                        "DataDisks",
                        "SystemDisk and DataDisks cannot be given together",
                    ));
                }
                (Some(asked), None) => {
                    let current = v.system_disk.clone().unwrap_or_default();
                    (
                        Target::System,
                        asked.clone().into(),
                        current.into(),
                        MAX_SYSTEM_DISK,
                    )
                }
                (None, Some(list)) => {
                    let [asked] = list.as_slice() else {
                        return Err(bad_value(
                            "DataDisks",
                            "one data disk can be grown per request",
                        ));
                    };
                    let disk_id = asked
                        .disk_id
                        .as_deref()
                        .ok_or_else(|| super::missing("DataDisks.0.DiskId"))?;
                    let disks = v.data_disks.as_deref().unwrap_or_default();
                    let i = disks
                        .iter()
                        .position(|d| d.disk_id.as_deref() == Some(disk_id))
                        .ok_or_else(|| {
                            api_err(
                                "UnsupportedOperation.InvalidDataDisk",
                                format!(
                                    "The disk `{disk_id}` is not a data disk of `{}`.",
                                    req.instance_id
                                ),
                            )
                        })?;
                    (
                        Target::Data(i),
                        asked.clone().into(),
                        disks[i].clone().into(),
                        MAX_DATA_DISK,
                    )
                }
            };
        let what = match target {
            Target::System => "SystemDisk",
            Target::Data(_) => "DataDisks.0",
        };
        if asked.id.is_some() && asked.id != current.id {
            return Err(bad_value(
                &format!("{what}.DiskId"),
                "not the disk of this instance",
            ));
        }
        if asked.kind.is_some() && asked.kind != current.kind {
            return Err(bad_value(
                &format!("{what}.DiskType"),
                "only the size of a disk can be changed",
            ));
        }
        let kind = current.kind.unwrap_or_default();
        if kind.starts_with("LOCAL_") {
            return Err(match target {
                Target::System => bad_value("SystemDisk", "only cloud disks can be grown"),
                Target::Data(_) => api_err(
                    "UnsupportedOperation.InvalidDataDisk",
                    "Local data disks cannot be grown (only on dedicated hosts).",
                ),
            });
        }
        let size = asked
            .size
            .ok_or_else(|| super::missing(&format!("{what}.DiskSize")))?;
        let now = current.size.unwrap_or(0);
        if size <= now || size > max || size % 10 != 0 {
            return Err(bad_value(
                &format!("{what}.DiskSize"),
                &format!(
                    "{size} GB: disks only grow ({now} GB now), in steps of 10 GB, to at most {max} GB"
                ),
            ));
        }
        Ok((target, size))
    }

    pub fn describe_instances_modification(
        &self,
        ctx: &Ctx<'_>,
        req: model::DescribeInstancesModificationRequest,
    ) -> Result<model::DescribeInstancesModificationResponse, ApiError> {
        self.check_ids(ctx, &req.instance_ids, 20)?;
        let filters = req.filters.unwrap_or_default();
        Self::check_filters(&filters, |n| n == "status", 2)?;
        let zone = self.instances[&req.instance_ids[0]]
            .view
            .zone()
            .unwrap_or_default();
        let mut current = Vec::new();
        for id in &req.instance_ids {
            let v = &self.instances[id].view;
            if v.zone() != Some(zone) {
                return Err(api_err(
                    "FailedOperation.ZoneInconsistent",
                    "The instances must all be in one zone.",
                ));
            }
            let t = v.instance_type.as_deref().unwrap_or_default();
            current.extend(self.catalogue.instance_type(t));
        }
        let set: Vec<model::InstanceTypeConfigStatus> = self
            .catalogue
            .types
            .iter()
            .filter(|t| current.iter().all(|c| c.can_change_to(t)))
            .filter_map(|t| {
                let (status, message) = match t.stock_in(zone)? {
                    Stock::Sell => ("SELL", String::new()),
                    Stock::SoldOut => ("UNAVAILABLE", format!("{} is sold out in {zone}.", t.name)),
                };
                Some(model::InstanceTypeConfigStatus {
                    status: Some(status.into()),
                    message: Some(message),
                    instance_type_config: Some(type_config(t, zone)),
                })
            })
            .filter(|s| {
                filters.iter().all(|f| {
                    f.values
                        .iter()
                        .any(|v| Some(v.as_str()) == s.status.as_deref())
                })
            })
            .collect();
        Ok(model::DescribeInstancesModificationResponse {
            total_count: Some(set.len() as i64),
            instance_type_config_status_set: Some(set),
        })
    }
}

/// The members of a system or data disk a resize looks at.
struct Disk {
    id: Option<String>,
    kind: Option<String>,
    size: Option<i64>,
}

impl From<model::SystemDisk> for Disk {
    fn from(d: model::SystemDisk) -> Self {
        Self {
            id: d.disk_id,
            kind: d.disk_type,
            size: d.disk_size,
        }
    }
}

impl From<model::DataDisk> for Disk {
    fn from(d: model::DataDisk) -> Self {
        Self {
            id: d.disk_id,
            kind: d.disk_type,
            size: d.disk_size,
        }
    }
}
