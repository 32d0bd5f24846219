//! Restart on request: `cvm.tencentcloud.io/restartedAt` reboots a running
//! instance exactly once per distinct value. Pure.
//!
//! The intent (`status.restart`, Pending, with the instance's latest
//! operation's RequestId) is recorded before RebootInstances is sent. A
//! reconcile that finds a Pending intent looks at the instance: another
//! latest operation means the call reached the cloud (a crash hid the
//! answer) and it is only recorded; the same one means it never left, and
//! it is sent. So a crash between the call and the status write never
//! reboots twice.

use crate::api::{RestartState, RestartStatus};
use crate::cloud::model::InstanceState;
use crate::controller::observation::Observation;

/// The restart asked for and what status says of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestartInput<'a> {
    /// The annotation's value.
    pub requested: Option<&'a str>,
    /// `status.restart`.
    pub recorded: Option<&'a RestartStatus>,
}

pub(super) enum Next {
    Nothing,
    /// Record this without a call.
    Record(RestartStatus),
    /// RebootInstances for this value (when nothing else is to be done).
    Reboot(String),
}

/// `want_running`: the spec asks for a running instance. A stopped instance
/// that is to stay stopped is not started by a restart (recorded as
/// Skipped); one that is to run again waits for its start.
pub(super) fn next(input: &RestartInput<'_>, o: &Observation, want_running: bool) -> Next {
    let Some(want) = input.requested else {
        return Next::Nothing;
    };
    let recorded = input.recorded.filter(|r| r.requested_at == want);
    match recorded {
        Some(r) if r.state != RestartState::Pending => Next::Nothing,
        Some(r) if r.previous_operation.as_deref() != Some(&o.latest_operation_request_id) => {
            Next::Record(RestartStatus {
                requested_at: want.into(),
                state: RestartState::Rebooted,
                previous_operation: None,
                request_id: Some(o.latest_operation_request_id.clone()).filter(|r| !r.is_empty()),
            })
        }
        _ if o.state == InstanceState::Stopped && !want_running && !o.operating => {
            Next::Record(RestartStatus {
                requested_at: want.into(),
                state: RestartState::Skipped,
                ..Default::default()
            })
        }
        _ if o.state == InstanceState::Running => Next::Reboot(want.into()),
        _ => Next::Nothing,
    }
}

/// The intent recorded before RebootInstances is sent for `requested_at`.
pub fn intent(requested_at: &str, o: &Observation) -> RestartStatus {
    RestartStatus {
        requested_at: requested_at.into(),
        state: RestartState::Pending,
        previous_operation: Some(o.latest_operation_request_id.clone()),
        request_id: None,
    }
}

/// What a restart call ended with: `request_id` when it was accepted,
/// `None` when it failed permanently.
pub fn outcome(requested_at: &str, request_id: Option<&str>) -> RestartStatus {
    RestartStatus {
        requested_at: requested_at.into(),
        state: match request_id {
            Some(_) => RestartState::Rebooted,
            None => RestartState::Failed,
        },
        previous_operation: None,
        request_id: request_id.map(str::to_string),
    }
}
