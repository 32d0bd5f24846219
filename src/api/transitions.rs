//! What may change after creation, and how (CEL transition rules, with
//! messages that name the field and say what to do instead). The rest of
//! the spec changes in place; these are the API's own limits: disks only
//! grow and keep their type, a prepaid instance stays prepaid, a spot one
//! stays spot, an instance cannot move.

use kube::core::{Message, Rule};

/// Data disks the spec may list (RunInstances: one local and 20 cloud).
pub const MAX_DATA_DISKS: usize = 21;

/// `spec.instanceChargeType`: POSTPAID_BY_HOUR may become PREPAID
/// (ModifyInstancesChargeType); the reverse the API refuses.
pub fn prepaid_stays_prepaid_rule() -> Rule {
    Rule::new("oldSelf != 'PREPAID' || self == 'PREPAID'").message(
        "spec.instanceChargeType: a PREPAID instance cannot become postpaid — the API refuses it \
         (it stays prepaid until it expires or is terminated); create a new CvmInstance for a \
         postpaid one",
    )
}

/// `spec.instanceChargeType`: spot billing is fixed at purchase.
pub fn spot_stays_spot_rule() -> Rule {
    Rule::new("(oldSelf == 'SPOTPAID') == (self == 'SPOTPAID')").message(
        "spec.instanceChargeType: SPOTPAID is fixed at purchase (the API converts only \
         POSTPAID_BY_HOUR to PREPAID); create a new CvmInstance",
    )
}

/// `spec.systemDisk.diskType`.
pub fn disk_type_rule(field: &str) -> Rule {
    Rule::new("self == oldSelf").message(Message::Message(format!(
        "{field} is immutable: the API does not change a disk's type; create a new CvmInstance"
    )))
}

/// `spec.systemDisk.diskSize`.
pub fn disk_grows_rule() -> Rule {
    Rule::new("self >= oldSelf")
        .message("spec.systemDisk.diskSize can only grow: the API does not shrink disks")
}

/// `spec.systemDisk`: a local disk keeps its size.
pub fn local_system_disk_rule() -> Rule {
    Rule::new("!self.diskType.startsWith('LOCAL_') || self.diskSize == oldSelf.diskSize").message(
        "spec.systemDisk.diskSize of a local disk cannot change: only cloud disks can be grown",
    )
}

/// `spec.dataDisks`: the same disks (count, type, snapshot, deletion with
/// the instance), each the same size or bigger, local ones the same size.
pub fn data_disks_count_rule() -> Rule {
    Rule::new("self.size() == oldSelf.size()").message(
        "the number of spec.dataDisks cannot change: the operator only grows the disks the \
         instance was created with; attach and detach disks with the CBS API",
    )
}

/// Each disk's `field` (absent: `default`), in order, as before.
fn same(field: &str, default: &str) -> String {
    format!(
        "self.map(d, has(d.{field}) ? d.{field} : {default}) == oldSelf.map(d, has(d.{field}) ? d.{field} : {default})"
    )
}

pub fn data_disks_type_rule() -> Rule {
    Rule::new(same("diskType", "''"))
        .message("spec.dataDisks[].diskType is immutable: the API does not change a disk's type")
}

pub fn data_disks_snapshot_rule() -> Rule {
    Rule::new(same("snapshotId", "''")).message(
        "spec.dataDisks[].snapshotId is immutable: a disk is made from a snapshot only at creation",
    )
}

pub fn data_disks_deletion_rule() -> Rule {
    Rule::new(same("deleteWithInstance", "true")).message(
        "spec.dataDisks[].deleteWithInstance is immutable: it is set when the disk is created",
    )
}

/// CEL cannot walk two lists side by side, so the per-disk condition is
/// spelled out for every index the schema allows (when the count is the
/// same; another rule refuses a new count).
fn each_disk(cond: impl Fn(usize) -> String) -> String {
    let all: Vec<String> = (0..MAX_DATA_DISKS)
        .map(|i| format!("(self.size() <= {i} || {})", cond(i)))
        .collect();
    format!("self.size() != oldSelf.size() || ({})", all.join(" && "))
}

pub fn data_disks_grow_rule() -> Rule {
    Rule::new(each_disk(|i| {
        format!("self[{i}].diskSize >= oldSelf[{i}].diskSize")
    }))
    .message("spec.dataDisks[].diskSize can only grow: the API does not shrink disks")
}

pub fn data_disks_local_rule() -> Rule {
    Rule::new(each_disk(|i| {
        format!(
            "!self[{i}].diskType.startsWith('LOCAL_') || self[{i}].diskSize == oldSelf[{i}].diskSize"
        )
    }))
    .message("spec.dataDisks[].diskSize of a local disk cannot change: only cloud disks can be grown")
}
