//! The cloud side of a plan, read-only: credentials found the way the
//! official SDKs find them, instances as DescribeInstances shows them, and
//! prices (InquiryPrice*). Nothing here can mutate: it calls only
//! DescribeInstances, DescribeInstancesModification, the InquiryPrice*
//! actions and, for web identity, STS.

use crate::cloud::model::{self, Filter};
use crate::cloud::source_config::{CredentialSourceConfig, SourceContext};
use crate::cloud::{CloudError, Credentials, CvmClient, profile};
use crate::controller::observation::Observation;
use crate::controller::price::Pricer;
use std::path::Path;
use std::sync::Arc;

/// Where `plan` looks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsChoice {
    /// As the SDKs do: `TENCENTCLOUD_SECRET_ID`/`_SECRET_KEY` (and
    /// `_SESSION_TOKEN`), else the profile file, else TKE workload identity.
    Auto,
    /// The CVM instance role (the metadata service).
    InstanceRole,
    /// None: plan from the live objects' status only.
    None,
}

/// Read access to the cloud.
pub struct Cloud {
    client: CvmClient,
    creds: Credentials,
    /// Where the credentials came from (for the output; never the keys).
    pub source: String,
    pub pricer: Pricer,
}

/// Where credentials are looked for.
pub struct Lookup<'a> {
    pub choice: CredentialsChoice,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<&'a Path>,
    pub metadata_endpoint: String,
    pub currency: String,
}

impl Cloud {
    /// The credentials `lookup` finds, or why there are none.
    pub async fn connect(client: CvmClient, lookup: Lookup<'_>) -> Result<Cloud, String> {
        let (creds, source) = match lookup.choice {
            CredentialsChoice::None => return Err("not read (--credentials none)".into()),
            CredentialsChoice::Auto => auto(&client, &lookup).await?,
            CredentialsChoice::InstanceRole => {
                let config = CredentialSourceConfig::instance_role(None);
                built(&client, &lookup, config).await?
            }
        };
        Ok(Cloud {
            pricer: Pricer::new(client.clone(), lookup.currency),
            client,
            creds,
            source,
        })
    }

    pub fn client(&self) -> &CvmClient {
        &self.client
    }

    pub fn creds(&self) -> &Credentials {
        &self.creds
    }

    /// Instance `id`, if the region has it.
    pub async fn describe(
        &self,
        region: &str,
        id: &str,
    ) -> Result<Option<Arc<Observation>>, CloudError> {
        let found = self
            .client
            .describe_instances_by_ids(&self.creds, region, &[id.to_string()])
            .await?;
        Ok(found
            .iter()
            .find(|i| i.id() == id)
            .map(|i| Arc::new(Observation::from_instance(i))))
    }

    /// The instance carrying the UID tag `uid` (what the operator's create
    /// guard looks for).
    pub async fn find_by_uid(
        &self,
        region: &str,
        uid: &str,
    ) -> Result<Option<Arc<Observation>>, CloudError> {
        let tag = Filter::new(format!("tag:{}", crate::api::UID_TAG), [uid]);
        let found = self
            .client
            .describe_instances_filtered(&self.creds, region, vec![tag])
            .await?;
        Ok(found
            .iter()
            .find(|i| i.instance_state != Some(model::InstanceState::Terminating))
            .map(|i| Arc::new(Observation::from_instance(i))))
    }
}

/// The SDKs' order: the environment's keys, the profile file, TKE workload
/// identity. (The instance role only when asked for: probing the metadata
/// service off a CVM stalls.)
async fn auto(client: &CvmClient, lookup: &Lookup<'_>) -> Result<(Credentials, String), String> {
    if let Ok(c) = Credentials::from_lookup(lookup.env) {
        let source = format!(
            "keys {} from {}",
            c.masked_id(),
            crate::cloud::credentials::ENV_SECRET_ID
        );
        return Ok((c, source));
    }
    if let Some((path, c)) = profile::find(lookup.home) {
        let source = format!("keys {} from {}", c.masked_id(), path.display());
        return Ok((c, source));
    }
    match CredentialSourceConfig::from_environment(lookup.env) {
        Some(config) => built(client, lookup, config).await,
        None => Err(format!(
            "no credentials ({} and {} unset, no profile file at {}, no TKE workload identity)",
            crate::cloud::credentials::ENV_SECRET_ID,
            crate::cloud::credentials::ENV_SECRET_KEY,
            profile::paths(lookup.home)
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

async fn built(
    client: &CvmClient,
    lookup: &Lookup<'_>,
    config: CredentialSourceConfig,
) -> Result<(Credentials, String), String> {
    let ctx = SourceContext {
        metadata_endpoint: lookup.metadata_endpoint.clone(),
        ..SourceContext::new(client.clone(), lookup.env)
    };
    let provider = config.build(&ctx).map_err(|e| e.to_string())?;
    let creds = provider
        .credentials()
        .await
        .map_err(|e| format!("{}: {e}", provider.describe()))?;
    Ok((creds, provider.describe().to_string()))
}
