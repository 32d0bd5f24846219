//! The launch journal in a set's status, and the names it gives: pure.
//!
//! A launch is recorded (sequence number, count, first member index,
//! ClientToken) before its RunInstances is sent; its ids are recorded when
//! they are known; it leaves the journal once every member it launched is
//! visible in the watch cache. Until then its instances count as members, so
//! no pass — even one after a crash, or one reading a cache that does not
//! show the new members yet — launches them again.

use crate::api::AccountRecord;
use crate::api::set::{
    BatchState, CvmInstanceSetStatus, LaunchBatch, MAX_BATCH, MAX_BATCHES_IN_FLIGHT,
};
use std::collections::HashSet;

/// The ClientToken of a set's launch: the same for every retry and replay,
/// and never another launch's (at most 7 + 36 + 1 + 19 = 63 characters, the
/// API allows 64).
pub fn client_token(set_uid: &str, seq: i64) -> String {
    format!("cvmset-{set_uid}-{seq}")
}

/// A member's name, and its instance's name with `prefix` in place of the
/// set name when the template names instances.
pub fn member_name(prefix: &str, index: i64) -> String {
    format!("{prefix}-{index}")
}

/// The `InstanceName` of a launch: `{R:x}` numbers the instances of one
/// call x, x+1, … (the api.json document of RunInstances' InstanceName).
pub fn name_pattern(prefix: &str, first_index: i64) -> String {
    format!("{prefix}-{{R:{first_index}}}")
}

/// The member index an instance name of `prefix` carries.
pub fn index_of(prefix: &str, instance_name: &str) -> Option<i64> {
    let digits = instance_name.strip_prefix(prefix)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The member indexes of a launch.
pub fn indexes(batch: &LaunchBatch) -> std::ops::Range<i64> {
    batch.first_index..batch.first_index + i64::from(batch.count)
}

/// Instances recorded in the journal whose members are not visible yet.
pub fn in_flight(status: &CvmInstanceSetStatus, visible: &HashSet<i64>) -> usize {
    status
        .batches
        .iter()
        .flat_map(indexes)
        .filter(|i| !visible.contains(i))
        .count()
}

/// Records launches for up to `wanted` more instances (≤ [`MAX_BATCH`] per
/// launch, ≤ [`MAX_BATCHES_IN_FLIGHT`] launches in the journal). Returns how
/// many instances were recorded.
pub fn record(
    status: &mut CvmInstanceSetStatus,
    set_uid: &str,
    wanted: usize,
    template_hash: &str,
    account: &AccountRecord,
    now: &str,
) -> usize {
    let mut recorded = 0;
    while recorded < wanted && status.batches.len() < MAX_BATCHES_IN_FLIGHT {
        let count = (wanted - recorded).min(MAX_BATCH);
        status.last_batch += 1;
        let seq = status.last_batch;
        status.batches.push(LaunchBatch {
            seq,
            count: count as i32,
            first_index: status.next_index,
            client_token: client_token(set_uid, seq),
            state: BatchState::Pending,
            instance_ids: Vec::new(),
            template_hash: template_hash.to_string(),
            account: Some(account.clone()),
            time: Some(now.to_string()),
        });
        status.next_index += count as i64;
        recorded += count;
    }
    recorded
}

/// The ids of a launch in member order: by the index each instance's name
/// carries when the names are as launched (one per index), else in the
/// order RunInstances returned them.
pub fn in_member_order(
    batch: &LaunchBatch,
    prefix: &str,
    returned: &[String],
    named: &[(String, String)],
) -> Vec<String> {
    let mut by_index: Vec<(i64, String)> = named
        .iter()
        .filter_map(|(id, name)| Some((index_of(prefix, name)?, id.clone())))
        .filter(|(i, _)| indexes(batch).contains(i))
        .collect();
    by_index.sort();
    by_index.dedup_by_key(|(i, _)| *i);
    if by_index.len() == returned.len() && by_index.len() == batch.count as usize {
        by_index.into_iter().map(|(_, id)| id).collect()
    } else {
        returned.to_vec()
    }
}

/// Launches whose members are all visible leave the journal.
pub fn settle(status: &mut CvmInstanceSetStatus, visible: &HashSet<i64>) {
    status
        .batches
        .retain(|b| b.state != BatchState::Launched || !indexes(b).all(|i| visible.contains(&i)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountRecord {
        AccountRecord {
            kind: crate::api::AccountKind::CvmAccount,
            name: "default".into(),
            uin: "100000000001".into(),
        }
    }

    #[test]
    fn names_tokens_and_patterns() {
        let uid = "0b9f2c8e-3c1a-4c5e-9d55-7f1f6b1a2c3d";
        let token = client_token(uid, i64::MAX);
        assert!(token.len() <= 64, "{}", token.len());
        assert_ne!(client_token(uid, 1), client_token(uid, 2));
        assert_eq!(name_pattern("web", 200), "web-{R:200}");
        assert_eq!(member_name("web", 7), "web-7");
        assert_eq!(index_of("web", "web-17"), Some(17));
        for other in ["web", "web-", "web-1a", "webx-1", "api-1", "web--1"] {
            assert_eq!(index_of("web", other), None, "{other}");
        }
    }

    #[test]
    fn launches_are_cut_at_100_and_the_journal_is_bounded() {
        let mut st = CvmInstanceSetStatus::default();
        assert_eq!(record(&mut st, "u", 250, "h1", &account(), "t"), 250);
        let cut: Vec<(i64, i32, i64)> = st
            .batches
            .iter()
            .map(|b| (b.seq, b.count, b.first_index))
            .collect();
        assert_eq!(cut, [(1, 100, 0), (2, 100, 100), (3, 50, 200)]);
        assert_eq!((st.last_batch, st.next_index), (3, 250));
        assert!(
            st.batches
                .iter()
                .all(|b| b.state == BatchState::Pending && b.template_hash == "h1")
        );
        assert_eq!(st.batches[2].client_token, "cvmset-u-3");
        // At most ten launches in flight: 2,000 more records 700 now.
        assert_eq!(record(&mut st, "u", 2000, "h1", &account(), "t"), 700);
        assert_eq!(st.batches.len(), MAX_BATCHES_IN_FLIGHT);
        assert_eq!(record(&mut st, "u", 1, "h1", &account(), "t"), 0);
        assert_eq!(in_flight(&st, &HashSet::new()), 950);
    }

    #[test]
    fn a_launch_counts_until_all_its_members_are_visible() {
        let mut st = CvmInstanceSetStatus::default();
        record(&mut st, "u", 3, "h", &account(), "t");
        let visible: HashSet<i64> = [0, 1].into();
        assert_eq!(in_flight(&st, &visible), 1);
        // Pending launches stay whatever is visible.
        settle(&mut st, &[0, 1, 2].into());
        assert_eq!(st.batches.len(), 1);
        st.batches[0].state = BatchState::Launched;
        settle(&mut st, &visible);
        assert_eq!(st.batches.len(), 1, "one member not visible yet");
        settle(&mut st, &[0, 1, 2].into());
        assert!(st.batches.is_empty());
        // The counters stay: the next launch never reuses a token or a name.
        assert_eq!((st.last_batch, st.next_index), (1, 3));
    }

    #[test]
    fn ids_follow_the_names_and_fall_back_to_the_returned_order() {
        let mut st = CvmInstanceSetStatus {
            next_index: 10,
            ..Default::default()
        };
        record(&mut st, "u", 3, "h", &account(), "t");
        let b = &st.batches[0];
        let returned: Vec<String> = ["ins-a", "ins-b", "ins-c"].map(String::from).to_vec();
        let named = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(i, n)| (i.to_string(), n.to_string()))
                .collect()
        };
        let shuffled = named(&[
            ("ins-a", "web-12"),
            ("ins-b", "web-10"),
            ("ins-c", "web-11"),
        ]);
        assert_eq!(
            in_member_order(b, "web", &returned, &shuffled),
            ["ins-b", "ins-c", "ins-a"]
        );
        // A name that is not the launch's: the returned order.
        let renamed = named(&[("ins-a", "web-12"), ("ins-b", "db-1"), ("ins-c", "web-11")]);
        assert_eq!(in_member_order(b, "web", &returned, &renamed), returned);
    }
}
