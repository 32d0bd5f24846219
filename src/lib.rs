//! cvm-operator: a Kubernetes operator for Tencent Cloud CVM instances.
//!
//! Modules, one per concept (see DEVELOPERS.md):
//! - [`cloud`]: the signed CVM API client (no Kubernetes);
//! - [`sim`]: the offline CVM API simulator (no Kubernetes).

pub mod api;
pub mod cloud;
pub mod controller;
pub mod import;
pub mod preview;
pub mod sim;
pub mod telemetry;
