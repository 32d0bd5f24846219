//! Chaos cases: what a real cluster does to a long-running operator — the
//! control plane restarting under it, the cloud going away, a skewed clock,
//! a leader dying under load, keys rotated mid-flight, a long run with
//! faults. Each case runs against a real kube-apiserver + etcd, the
//! simulator and the `cvm-operator` binary, asserts what must hold, and
//! records one row of the table `make chaos` prints (`hack/chaos.sh`).
//!
//! Run alone: `cargo test --test chaos clock_skew -- --nocapture`. Sizes and
//! durations come from knobs (see [`knobs`]): `CHAOS_PROFILE=short` is the
//! few-minutes version `make test` runs; the default is `make chaos`'s.

#[path = "../support/mod.rs"]
mod support;

mod clock_skew;
mod cloud_outage;
mod common;
mod control_plane_restart;
mod key_rotation;
mod knobs;
mod leader_failover;
mod long_run;
