//! The Tencent Cloud CVM API client. Knows nothing of Kubernetes.

pub mod client;
pub mod credentials;
pub mod error;
pub mod form;
pub mod model;
pub mod ratelimit;
pub mod sign;

pub use client::{
    CallObserver, CallRecord, ClientConfig, CvmClient, Endpoint, HttpMethod, Reply, RetryPolicy,
};
pub use credentials::{Credentials, Secret};
pub use error::{CloudError, ErrorClass, classify_code};
pub use ratelimit::RateLimits;
