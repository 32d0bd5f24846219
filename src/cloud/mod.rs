//! The Tencent Cloud CVM API client. Knows nothing of Kubernetes.

pub mod client;
pub mod clock;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod fields;
pub mod form;
pub mod metadata;
pub mod model;
pub mod profile;
pub mod provider;
pub mod ratelimit;
pub mod reachability;
pub mod scrub;
pub mod sign;
pub mod source_config;
pub mod sources;
pub mod sts;
pub mod tag;

pub use client::{
    CallObserver, CallRecord, ClientConfig, CvmClient, Endpoint, HttpMethod, Reply, RetryPolicy,
};
pub use credentials::{Credentials, Secret};
pub use error::{CloudError, ErrorClass, classify_code};
pub use provider::{CredentialError, CredentialProvider, Identity, RefreshPolicy};
pub use ratelimit::RateLimits;
pub use source_config::CredentialSourceConfig;
