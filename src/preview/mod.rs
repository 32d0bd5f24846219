//! `cvm-operator plan` (also `kubectl cvm plan`): what applying manifests
//! would do to the cloud, before it happens — the actions the operator
//! would take, in order, with their disruption, and the price change. Runs
//! the operator's own pure planner over a model of each action's effect
//! (`controller::plan::sequence`); only reads (a test counts the calls at
//! the simulator).
//!
//! - [`manifests`]: reading files, directories, standard input;
//! - [`cluster`]: the live objects and admission (a server-side dry run);
//! - [`cloud`]: read-only credentials, DescribeInstances, prices;
//! - [`instance`]: one `CvmInstance`'s plan; [`set`]: a `CvmInstanceSet`'s;
//! - [`output`] (and `-o json`), [`render`] (text): what is printed, and
//!   the exit code.

pub mod cloud;
pub mod cluster;
pub mod instance;
pub mod manifests;
pub mod output;
pub mod render;
pub mod set;

use crate::api::GROUP;
use crate::controller::applied::Fingerprints;
use cloud::Cloud;
use manifests::{Document, ManifestError};
use output::{Ignored, PlanOutput};

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Files, directories, or `-`.
    pub files: Vec<String>,
    pub recursive: bool,
    /// The namespace of manifests that name none (default: the
    /// kubeconfig's).
    pub namespace: Option<String>,
}

/// What the plan can see.
pub struct Access {
    /// The cluster (`None`: not reachable, or not asked for).
    pub client: Option<kube::Client>,
    /// What was (or could not be) reached, for the output.
    pub cluster_note: String,
    /// Read access to the cloud, or why there is none.
    pub cloud: Result<Cloud, String>,
}

/// Where the plan looks.
pub struct Reach<'a> {
    /// The kubeconfig (default: KUBECONFIG, ~/.kube/config, in-cluster);
    /// `None` with `cluster: false`: plan without one.
    pub kubeconfig: Option<&'a std::path::Path>,
    pub cluster: bool,
    pub cloud: crate::cloud::ClientConfig,
    pub lookup: cloud::Lookup<'a>,
}

/// Reaches the cluster and the cloud as far as they can be reached; what
/// cannot be is said in the output, not an error.
pub async fn reach(r: Reach<'_>) -> Result<Access, crate::cloud::CloudError> {
    let (client, cluster_note) = match r.cluster {
        false => (None, "cluster: not used (--no-cluster)".to_string()),
        true => match connect(r.kubeconfig).await {
            Ok((client, note)) => (Some(client), note),
            Err(why) => (
                None,
                format!(
                    "cluster: not reachable ({why}): no live objects; admission is checked in-process"
                ),
            ),
        },
    };
    let client_cloud = crate::cloud::CvmClient::new(r.cloud)?;
    let cloud = Cloud::connect(client_cloud, r.lookup).await;
    Ok(Access {
        client,
        cluster_note,
        cloud,
    })
}

async fn connect(kubeconfig: Option<&std::path::Path>) -> Result<(kube::Client, String), String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| e.to_string())?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let note = format!("cluster: {url} (Kubernetes {})", version.git_version);
    Ok((client, note))
}

/// The plan of every manifest in `opts.files`.
pub async fn run(opts: &Options, access: &Access) -> Result<PlanOutput, ManifestError> {
    let docs = manifests::load(&opts.files, opts.recursive)?;
    let default_namespace = opts
        .namespace
        .clone()
        .or_else(|| {
            access
                .client
                .as_ref()
                .map(|c| c.default_namespace().to_string())
        })
        .unwrap_or_else(|| "default".into());
    let mut notes = vec![access.cluster_note.clone()];
    notes.push(match &access.cloud {
        Ok(c) => format!("cloud: read with {}", c.source),
        Err(why) => format!(
            "cloud: {why}; instances are planned from the live objects' status (the operator's last observation)"
        ),
    });
    let fingerprints = Fingerprints::new();
    let ctx = instance::Ctx {
        client: access.client.as_ref(),
        cloud: access.cloud.as_ref().ok(),
        default_namespace: &default_namespace,
        fingerprints: &fingerprints,
    };
    let mut resources = Vec::new();
    let mut ignored = Vec::new();
    for doc in &docs {
        match kind_of(doc) {
            Some("CvmInstance") => resources.push(instance::plan(doc, &ctx).await),
            Some("CvmInstanceSet") => resources.push(set::plan(doc, &ctx).await),
            Some(other) => ignored.push(ignore(
                doc,
                &format!("{other} is not planned by this version"),
            )),
            None => ignored.push(ignore(doc, "not a cvm-operator resource")),
        }
    }
    Ok(PlanOutput::new(resources, ignored, notes))
}

/// The kind of one of the operator's resources.
fn kind_of(doc: &Document) -> Option<&str> {
    let group = doc.api_version().split('/').next().unwrap_or_default();
    (group == GROUP).then(|| doc.kind())
}

fn ignore(doc: &Document, why: &str) -> Ignored {
    Ignored {
        kind: doc.kind().to_string(),
        name: doc.name().to_string(),
        origin: doc.origin.clone(),
        why: why.to_string(),
    }
}

#[cfg(test)]
mod tests {
    /// The CI examples the README points to stay valid YAML that runs the
    /// plan and acts on its exit codes.
    #[test]
    fn the_ci_examples_are_yaml_that_run_the_plan() {
        for file in ["github-actions-plan.yaml", "gitlab-ci-plan.yml"] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/ci/").to_string() + file;
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: serde_json::Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
            assert!(doc.is_object(), "{file}");
            assert!(text.contains("plan -f"), "{file} runs the plan");
            assert!(text.contains("\"$code\" != 1"), "{file}: exit 1 fails");
            assert!(text.contains('3'), "{file}: exit 3 is told apart");
        }
    }
}
