//! The `cvm-operator` binary: parses flags, builds the pieces, runs them.

use anyhow::{Context, Result};
use clap::{ArgAction, Args, Parser, Subcommand};
use cvm_operator::api::{DeletionPolicy, ManagementPolicy};
use cvm_operator::cloud::{
    ClientConfig, CredentialProvider, Credentials, CvmClient, Endpoint, RateLimits, model,
};
use cvm_operator::controller::leader::{self, LeaseConfig};
use cvm_operator::controller::observe::{ObserverConfig, Timing};
use cvm_operator::controller::{self, server};
use cvm_operator::import;
use cvm_operator::sim::{self, Faults, LostMode, SimAccount, SimConfig, Simulator};
use cvm_operator::telemetry::{self, LogFormat};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "cvm-operator",
    version,
    about = "Kubernetes operator for Tencent Cloud CVM instances"
)]
struct Cli {
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `cvm_operator=debug` (RUST_LOG wins).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    #[command(args_override_self = true)]
    Run(Box<RunArgs>),
    /// Print CvmInstance manifests that adopt existing instances.
    Import(ImportArgs),
    /// Serve the offline CVM API simulator.
    Simulator(SimulatorArgs),
    /// Print the CustomResourceDefinitions (YAML), as committed under crds/.
    Crd(CrdArgs),
    /// Show what applying manifests would do to the cloud: the operator's
    /// actions in order, their disruption, the price change (reads only).
    /// Exit code: 0 no changes, 1 error or refused by admission, 2 changes,
    /// 3 changes that disrupt a running instance.
    Plan(Box<PlanArgs>),
}

#[derive(Args, Debug)]
struct PlanArgs {
    /// Manifests: a file, a directory (its .yaml, .yml and .json files) or
    /// `-` for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    filename: Vec<String>,
    /// Also the manifests in subdirectories.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// The namespace of manifests that name none (default: the kubeconfig's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// `text` for people, `json` for pipelines.
    #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
    output: String,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Plan without a cluster: every manifest is new, admission is checked
    /// in-process (the CEL rules only).
    #[arg(long)]
    no_cluster: bool,
    /// Cloud credentials (read-only ones are enough): auto
    /// (TENCENTCLOUD_SECRET_ID/_SECRET_KEY, else ~/.tencentcloud/credentials,
    /// else TKE workload identity), instance-role, or none (plan from the
    /// live objects' status).
    #[arg(long, value_parser = ["auto", "instance-role", "none"], default_value = "auto")]
    credentials: String,
    /// The CVM instance metadata service (`--credentials instance-role`).
    #[arg(long, env = "CVM_METADATA_ENDPOINT", default_value = cvm_operator::cloud::metadata::DEFAULT_METADATA_ENDPOINT)]
    metadata_endpoint: String,
    #[command(flatten)]
    cloud: CloudArgs,
}

/// Where the CVM API is and how to call it (shared by `run` and `import`).
#[derive(Args, Debug, Clone)]
struct CloudArgs {
    /// CVM endpoint: a URL (e.g. the simulator, http://127.0.0.1:8080),
    /// `default` (https://cvm.tencentcloudapi.com) or `region` (cvm.<region>.tencentcloudapi.com).
    #[arg(long, env = "CVM_ENDPOINT", default_value = "default")]
    endpoint: String,
    /// Default region (import, and the start-up credentials check).
    #[arg(long, env = "CVM_DEFAULT_REGION", default_value = "ap-guangzhou")]
    region: String,
    /// Override a client-side rate limit, `Action=N` per second (repeatable).
    #[arg(long)]
    rate_limit: Vec<String>,
    /// Timeout of one CVM API request, in seconds.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// The currency the API's prices are in, as `status.price` and `plan`
    /// name it: the API's answers do not say; its documentation gives yuan.
    #[arg(long, env = "CVM_PRICE_CURRENCY", default_value = "CNY")]
    price_currency: String,
    /// When the API refuses a request's timestamp (the node's clock is off by
    /// more than 300 s), sign with the API's time from its Date header.
    #[arg(long, env = "CVM_CORRECT_CLOCK_SKEW", default_value_t = true, action = ArgAction::Set)]
    correct_clock_skew: bool,
}

impl CloudArgs {
    fn client_config(&self, endpoint_override: Option<&str>) -> Result<ClientConfig> {
        let endpoint = Endpoint::parse(endpoint_override.unwrap_or(&self.endpoint))
            .map_err(anyhow::Error::msg)?;
        Ok(ClientConfig {
            endpoint,
            request_timeout: Duration::from_secs(self.request_timeout),
            correct_clock_skew: self.correct_clock_skew,
            rate_limits: RateLimits::default()
                .with_overrides(&self.rate_limit)
                .map_err(anyhow::Error::msg)?,
            ..ClientConfig::default()
        })
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    #[command(flatten)]
    cloud: CloudArgs,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Reconcile only resources matching this label selector (for sharding).
    #[arg(long, env = "LABEL_SELECTOR")]
    label_selector: Option<String>,
    /// Serve only the CvmAccounts matching this label selector. Give each
    /// shard its own when operators run with different credentials of their
    /// own, so a resource cannot pick another operator's credentials by its labels.
    #[arg(long, env = "ACCOUNT_SELECTOR")]
    account_selector: Option<String>,
    /// Where the operator's own credentials come from — what CvmAccounts with
    /// `source: Environment` use (no namespace gets them otherwise). auto:
    /// TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY (and
    /// TENCENTCLOUD_SESSION_TOKEN), else TKE workload identity (TKE_REGION,
    /// TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN), else none.
    #[arg(
        long,
        env = "CVM_OPERATOR_CREDENTIALS",
        value_enum,
        default_value = "auto"
    )]
    operator_credentials: OwnCredentials,
    /// With `--operator-credentials instance-role`: the CVM role's name
    /// (default: the role bound to the CVM, as the metadata service says).
    #[arg(long, env = "CVM_INSTANCE_ROLE")]
    instance_role: Option<String>,
    /// The CVM instance metadata service (instance-role credentials).
    #[arg(long, env = "CVM_METADATA_ENDPOINT", default_value = cvm_operator::cloud::metadata::DEFAULT_METADATA_ENDPOINT)]
    metadata_endpoint: String,
    /// Reconciles running at once.
    /// (A cache miss shares one DescribeInstances with the other reconciles
    /// in flight, so around 100 lets start-up use full 100-id batches.)
    #[arg(long, env = "CVM_CONCURRENCY", default_value_t = 100)]
    concurrency: u16,
    /// Steady-state drift detection period, in seconds (one DescribeInstances per 100 instances).
    #[arg(long, env = "CVM_POLL_INTERVAL", default_value_t = 300)]
    poll_interval: u64,
    /// Polling period while instances change, in milliseconds.
    #[arg(long, env = "CVM_FAST_POLL_MS", default_value_t = 2000)]
    fast_poll_ms: u64,
    /// How long cache misses wait to share one DescribeInstances, in milliseconds.
    #[arg(long, default_value_t = 25)]
    observe_window_ms: u64,
    /// Deleting a resource whose credentials are gone releases it after this many seconds.
    #[arg(long, default_value_t = 300)]
    orphan_grace: u64,
    /// After a create was sent, deletion keeps looking for the instance this many seconds.
    #[arg(long, default_value_t = 60)]
    create_grace: u64,
    /// Health and metrics address (/healthz, /readyz, /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Only the holder of a coordination.k8s.io Lease reconciles.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false, action = ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "cvm-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: POD_NAMESPACE, else `default`).
    #[arg(long, env = "LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Lease duration in seconds: a dead leader is replaced after about this long.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// This replica's identity (events, Lease holder).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Start an in-process CVM simulator and use it (no Tencent account needed).
    #[arg(long)]
    simulator: bool,
    /// Address of the in-process simulator.
    #[arg(long, default_value = "127.0.0.1:0")]
    simulator_listen: SocketAddr,
    #[command(flatten)]
    sim: SimOptions,
}

/// See `RunArgs::operator_credentials`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OwnCredentials {
    Auto,
    Environment,
    WebIdentity,
    InstanceRole,
    None,
}

#[derive(Args, Debug)]
struct ImportArgs {
    #[command(flatten)]
    cloud: CloudArgs,
    /// Namespace of the printed resources.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// A DescribeInstances filter, `name=value[,value…]` (repeatable), e.g. `zone=ap-guangzhou-3`, `tag:team=web`.
    #[arg(long)]
    filter: Vec<String>,
    /// Delete (terminate with the resource) or Retain (default: adopting is safe to undo).
    #[arg(long, default_value = "Retain", value_parser = ["Delete", "Retain"])]
    deletion_policy: String,
    /// Full (manage) or ObserveOnly.
    #[arg(long, default_value = "Full", value_parser = ["Full", "ObserveOnly"])]
    management_policy: String,
}

#[derive(Args, Debug)]
struct CrdArgs {
    /// Only this kind's CRD (default: all of them, one YAML document each).
    #[arg(long, value_parser = ["CvmInstance", "CvmAccount", "CvmInstanceSet"])]
    kind: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, env = "CVM_SIM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    sim: SimOptions,
}

/// Everything that shapes a simulator (shared by `simulator` and `run --simulator`).
#[derive(Args, Debug, Clone)]
pub struct SimOptions {
    /// The SecretId the simulator accepts.
    #[arg(long = "sim-secret-id", env = "TENCENTCLOUD_SECRET_ID", default_value = sim::DEFAULT_SECRET_ID)]
    secret_id: String,
    /// The SecretKey the simulator accepts.
    #[arg(long = "sim-secret-key", env = "TENCENTCLOUD_SECRET_KEY", default_value = sim::DEFAULT_SECRET_KEY, hide_env_values = true)]
    secret_key: String,
    /// Simulation seconds per real second (a benchmark may use 100).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// PENDING → RUNNING, in simulation milliseconds.
    #[arg(long, default_value_t = 2000)]
    launch_ms: u64,
    /// STARTING/STOPPING/REBOOTING/TERMINATING and type changes, in simulation milliseconds.
    #[arg(long, default_value_t = 1000)]
    transition_ms: u64,
    /// Attribute and bandwidth changes, in simulation milliseconds.
    #[arg(long, default_value_t = 500)]
    modify_ms: u64,
    /// How long LatestOperationState stays OPERATING after the state is final.
    #[arg(long, default_value_t = 500)]
    operation_tail_ms: u64,
    /// Instances per account and region.
    #[arg(long, default_value_t = 20_000)]
    instance_quota: usize,
    /// Share of launches that end in LAUNCH_FAILED.
    #[arg(long, default_value_t = 0.0)]
    launch_failure_rate: f64,
    /// Turn off the per-action rate limits (RequestLimitExceeded).
    #[arg(long)]
    no_rate_limits: bool,
    /// Override a rate limit, `Action=N` per second (repeatable).
    #[arg(long = "sim-rate-limit")]
    sim_rate_limit: Vec<String>,
    /// Inject an error: `[Action:]Code=RATE` (repeatable).
    #[arg(long)]
    fault_error: Vec<String>,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_latency_ms: u64,
    /// Lose responses after the action took effect: `[Action=]RATE` (repeatable).
    #[arg(long)]
    fault_lost: Vec<String>,
    /// How a lost response is lost: drop (connection cut), server-error (502) or hang.
    #[arg(long, default_value = "drop", value_parser = ["drop", "server-error", "hang"])]
    fault_lost_mode: String,
    /// For `--fault-lost-mode hang`: how long to hold the response.
    #[arg(long, default_value_t = 60_000)]
    fault_hold_ms: u64,
}

impl SimOptions {
    pub fn to_config(&self) -> Result<SimConfig> {
        let ms = Duration::from_millis;
        let mode = match self.fault_lost_mode.as_str() {
            "server-error" => LostMode::ServerError,
            "hang" => LostMode::Hang,
            _ => LostMode::Drop,
        };
        let faults = Faults {
            errors: self
                .fault_error
                .iter()
                .map(|s| Faults::parse_error(s))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
            latency_ms: self.fault_latency_ms,
            lost: self
                .fault_lost
                .iter()
                .map(|s| Faults::parse_lost(s, mode, self.fault_hold_ms))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
        };
        let mut rate_limits = RateLimits::default()
            .with_overrides(&self.sim_rate_limit)
            .map_err(anyhow::Error::msg)?;
        rate_limits.enabled = !self.no_rate_limits;
        anyhow::ensure!(self.time_scale > 0.0, "--time-scale must be positive");
        Ok(SimConfig {
            accounts: vec![SimAccount::new(&self.secret_id, &self.secret_key)],
            engine: sim::EngineConfig {
                timings: sim::Timings {
                    launch: ms(self.launch_ms),
                    start: ms(self.transition_ms),
                    stop: ms(self.transition_ms),
                    reboot: ms(self.transition_ms),
                    terminate: ms(self.transition_ms),
                    shutdown: ms(self.transition_ms),
                    reset_type: ms(self.transition_ms),
                    reinstall: ms(self.launch_ms),
                    modify: ms(self.modify_ms),
                    operation_tail: ms(self.operation_tail_ms),
                },
                instance_quota: self.instance_quota,
                launch_failure_rate: self.launch_failure_rate,
            },
            time_scale: self.time_scale,
            rate_limits,
            faults,
            max_clock_skew_secs: 300,
        })
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_simulator(args: SimulatorArgs) -> Result<()> {
    let config = args.sim.to_config()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, secret_id = %args.sim.secret_id, time_scale = config.time_scale, "CVM simulator listening");
    // The line scripts wait for; keep its shape.
    println!("cvm simulator listening on http://{addr}");
    let sim = Simulator::new(config);
    tokio::select! {
        r = sim.serve(listener) => r.context("simulator server failed")?,
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// The operator's own credentials, as `--operator-credentials` says.
fn operator_credentials(args: &RunArgs, client: &CvmClient) -> Result<Option<CredentialProvider>> {
    use cvm_operator::cloud::source_config::{CredentialSourceConfig, SourceContext};
    let env = |k: &str| std::env::var(k).ok();
    let config = match args.operator_credentials {
        OwnCredentials::None => None,
        OwnCredentials::Auto => CredentialSourceConfig::from_environment(&env),
        OwnCredentials::Environment => Some(CredentialSourceConfig::default()),
        OwnCredentials::WebIdentity => Some(CredentialSourceConfig {
            source: cvm_operator::cloud::source_config::SourceKind::WebIdentity,
            ..Default::default()
        }),
        OwnCredentials::InstanceRole => Some(CredentialSourceConfig::instance_role(
            args.instance_role.clone(),
        )),
    };
    let Some(config) = config else {
        tracing::warn!(
            "no credentials of its own: CvmAccounts with source Environment cannot be used"
        );
        return Ok(None);
    };
    let ctx = SourceContext {
        metadata_endpoint: args.metadata_endpoint.clone(),
        ..SourceContext::new(client.clone(), &env)
    };
    let provider = config
        .build(&ctx)
        .context("the operator's own credentials (--operator-credentials)")?;
    tracing::info!(source = %provider.describe(), "credentials of its own");
    Ok(Some(provider))
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// The in-process simulator, when asked for: its endpoint and the
/// credentials it accepts replace the configured ones.
async fn start_simulator(args: &RunArgs) -> Result<Option<(sim::RunningSimulator, Credentials)>> {
    if !args.simulator {
        return Ok(None);
    }
    let cfg = args.sim.to_config()?;
    let account = cfg.accounts[0].clone();
    let running = Simulator::new(cfg).spawn(args.simulator_listen).await?;
    tracing::info!(endpoint = %running.endpoint(), "in-process CVM simulator started");
    let creds = Credentials::new(account.secret_id, account.secret_key.expose(), None)?;
    Ok(Some((running, creds)))
}

impl RunArgs {
    fn identity(&self) -> String {
        self.pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("cvm-operator-{}", uuid::Uuid::new_v4().simple()))
    }

    fn controller_config(&self, client: ClientConfig, identity: &str) -> controller::Config {
        let timing = Timing {
            poll_interval: Duration::from_secs(self.poll_interval.max(1)),
            fast_interval: Duration::from_millis(self.fast_poll_ms.max(100)),
        };
        controller::Config {
            reconcile: controller::ReconcileConfig {
                orphan_grace: Duration::from_secs(self.orphan_grace),
                create_grace: Duration::from_secs(self.create_grace),
                price_currency: self.cloud.price_currency.clone(),
            },
            observer: ObserverConfig {
                timing,
                window: Duration::from_millis(self.observe_window_ms),
                ..ObserverConfig::default()
            },
            concurrency: self.concurrency,
            watch_namespace: self.watch_namespace.clone().filter(|s| !s.is_empty()),
            label_selector: self.label_selector.clone().filter(|s| !s.is_empty()),
            account_selector: self.account_selector.clone().filter(|s| !s.is_empty()),
            // Built once the client exists (it makes the STS calls).
            operator_credentials: None,
            metadata_endpoint: self.metadata_endpoint.clone(),
            client,
            instance_name: identity.to_string(),
        }
    }

    fn lease(&self, identity: &str) -> Option<LeaseConfig> {
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        self.leader_election.then(|| LeaseConfig {
            name: self.lease_name.clone(),
            namespace,
            identity: identity.to_string(),
            duration_secs: self.lease_duration,
        })
    }
}

/// Serves /healthz, /readyz and /metrics in the background.
async fn serve_health(addr: SocketAddr, state: server::ServerState) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "health and metrics endpoint");
    tokio::spawn(async move {
        let _ = axum::serve(listener, server::router(state)).await;
    });
    Ok(())
}

/// A cheap call once leading (a standby makes no cloud calls), so wrong
/// credentials of its own or a wrong endpoint show in the first log lines.
async fn probe_credentials(client: &CvmClient, provider: &CredentialProvider, region: &str) {
    let creds = match provider.credentials().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot obtain the operator's own credentials; accounts using them will report it");
            return;
        }
    };
    let probe = client
        .call::<model::DescribeZones>(&creds, region, &model::DescribeZonesRequest {})
        .await;
    match probe {
        Ok(_) => {
            tracing::info!(%region, secret_id = %creds.masked_id(), "CVM credentials accepted")
        }
        Err(e) => {
            tracing::error!(error = %e, "CVM start-up check failed; reconciles will report it")
        }
    }
}

/// config → server → leadership → run.
async fn run_operator(args: RunArgs) -> Result<()> {
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let simulator = start_simulator(&args).await?;
    let endpoint = simulator.as_ref().map(|(s, _)| s.endpoint());
    let mut client_config = args.cloud.client_config(endpoint.as_deref())?;
    // An API that stopped answering is probed a few times per poll interval
    // (at most every 15 s), so its return is noticed well within one.
    client_config.probe_interval = Duration::from_secs(args.poll_interval.max(1))
        .div_f64(4.0)
        .clamp(Duration::from_secs(1), Duration::from_secs(15));
    let identity = args.identity();
    let mut config = args.controller_config(client_config, &identity);
    let handles = controller::handles(&config)?;
    config.operator_credentials = match &simulator {
        Some((_, creds)) => Some(CredentialProvider::fixed(creds.clone())),
        None => operator_credentials(&args, handles.observer.client())?,
    };

    let ready = Arc::new(AtomicBool::new(false));
    let state = server::ServerState {
        metrics: handles.metrics.clone(),
        ready: ready.clone(),
        cloud: Some(handles.observer.client().reachability().clone()),
    };
    serve_health(args.metrics_addr, state).await?;

    let lease = args.lease(&identity);
    let metrics = handles.metrics.clone();
    let leading = leader::acquire(client.clone(), lease, &metrics, &ready, shutdown_signal());
    let Some(leadership) = leading.await? else {
        return Ok(());
    };
    if let Some(own) = &config.operator_credentials {
        probe_credentials(handles.observer.client(), own, &args.cloud.region).await;
    }
    ready.store(true, Ordering::Relaxed);

    let lost = Arc::new(AtomicBool::new(false));
    let lost_flag = lost.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down"),
            _ = leadership.lost() => lost_flag.store(true, Ordering::Relaxed),
        }
    };
    tokio::spawn(telemetry::trim_memory_periodically(Duration::from_secs(30)));
    controller::run(client, config, handles, shutdown).await?;
    if lost.load(Ordering::Relaxed) {
        anyhow::bail!("lost leadership");
    }
    Ok(())
}

async fn run_import(args: ImportArgs) -> Result<()> {
    let creds = Credentials::from_env()
        .context("import needs TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY")?;
    let client = CvmClient::new(args.cloud.client_config(None)?)?;
    let mut filters = Vec::new();
    for f in &args.filter {
        let (name, values) = f
            .split_once('=')
            .with_context(|| format!("--filter `{f}` must be name=value[,value…]"))?;
        filters.push(model::Filter::new(name, values.split(',')));
    }
    let opts = import::ImportOptions {
        region: args.cloud.region.clone(),
        namespace: args.namespace.clone(),
        filters,
        deletion_policy: if args.deletion_policy == "Delete" {
            DeletionPolicy::Delete
        } else {
            DeletionPolicy::Retain
        },
        management_policy: if args.management_policy == "ObserveOnly" {
            ManagementPolicy::ObserveOnly
        } else {
            ManagementPolicy::Full
        },
    };
    print!("{}", import::import(&client, &creds, &opts).await?);
    Ok(())
}

/// `cvm-operator plan`: prints the plan, returns its exit code.
async fn run_plan(args: PlanArgs) -> Result<i32> {
    use cvm_operator::preview::{self, cloud};
    let env = |k: &str| std::env::var(k).ok();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let choice = match args.credentials.as_str() {
        "none" => cloud::CredentialsChoice::None,
        "instance-role" => cloud::CredentialsChoice::InstanceRole,
        _ => cloud::CredentialsChoice::Auto,
    };
    let access = preview::reach(preview::Reach {
        kubeconfig: args.kubeconfig.as_deref(),
        cluster: !args.no_cluster,
        cloud: args.cloud.client_config(None)?,
        lookup: cloud::Lookup {
            choice,
            env: &env,
            home: home.as_deref(),
            metadata_endpoint: args.metadata_endpoint.clone(),
            currency: args.cloud.price_currency.clone(),
        },
    })
    .await?;
    let opts = preview::Options {
        files: args.filename,
        recursive: args.recursive,
        namespace: args.namespace,
    };
    let plan = preview::run(&opts, &access).await?;
    match args.output.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&plan)?),
        _ => print!("{}", preview::render::text(&plan)),
    }
    Ok(plan.exit_code)
}

/// The command line, named `kubectl cvm` when the binary is installed as the
/// kubectl plugin `kubectl-cvm` (kubectl runs it for `kubectl cvm …`).
fn command_for(argv0: Option<&std::ffi::OsStr>) -> clap::Command {
    use clap::CommandFactory;
    let invoked = argv0
        .and_then(|a| std::path::Path::new(a).file_stem())
        .map(|n| n.to_string_lossy().into_owned());
    let cmd = Cli::command();
    match invoked.as_deref() {
        Some("kubectl-cvm") => cmd.name("kubectl cvm").bin_name("kubectl cvm"),
        _ => cmd,
    }
}

fn parse_cli() -> Cli {
    use clap::FromArgMatches;
    let argv0 = std::env::args_os().next();
    let matches = command_for(argv0.as_deref()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> Result<()> {
    telemetry::tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async_main())
}

async fn async_main() -> Result<()> {
    let cli = parse_cli();
    // A plan's output is read by people and pipelines: only warnings go to
    // stderr unless a level is asked for.
    let quiet = matches!(cli.command, Command::Plan(_)) && std::env::var_os("LOG_LEVEL").is_none();
    let level = if quiet && cli.log_level == "info" {
        "warn"
    } else {
        &cli.log_level
    };
    telemetry::init_logging(cli.log_format, level);
    match cli.command {
        Command::Run(args) => run_operator(*args).await,
        Command::Import(args) => run_import(args).await,
        Command::Simulator(args) => run_simulator(args).await,
        Command::Plan(args) => {
            let code = run_plan(*args).await?;
            use std::io::Write as _;
            std::io::stdout().flush()?;
            std::process::exit(code)
        }
        Command::Crd(args) => {
            let all = [
                ("CvmInstance", cvm_operator::api::crd_yaml()),
                ("CvmAccount", cvm_operator::api::account::crd_yaml()),
                ("CvmInstanceSet", cvm_operator::api::set::crd_yaml()),
            ];
            for (kind, yaml) in all {
                if args.kind.as_deref().is_none_or(|k| k == kind) {
                    print!("{yaml}");
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn installed_as_kubectl_cvm_it_is_the_kubectl_plugin() {
        let argv0 = std::ffi::OsStr::new("/usr/local/bin/kubectl-cvm");
        let cmd = command_for(Some(argv0));
        assert_eq!(cmd.get_name(), "kubectl cvm");
        let m = cmd
            .try_get_matches_from(["kubectl-cvm", "plan", "-f", "web.yaml", "-o", "json"])
            .unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        match cli.command {
            Command::Plan(p) => assert_eq!(
                (p.filename, p.output.as_str()),
                (vec!["web.yaml".to_string()], "json")
            ),
            _ => unreachable!(),
        }
        let usage = command_for(Some(argv0)).render_usage().to_string();
        assert!(usage.contains("kubectl cvm"), "{usage}");
        let plain = command_for(Some(std::ffi::OsStr::new("cvm-operator")));
        assert_eq!(plain.get_name(), "cvm-operator");
    }

    #[test]
    fn a_later_flag_overrides_an_earlier_one() {
        let cli = Cli::try_parse_from([
            "cvm-operator",
            "run",
            "--poll-interval",
            "5",
            "--poll-interval",
            "30",
        ])
        .unwrap();
        match cli.command {
            Command::Run(args) => assert_eq!(args.poll_interval, 30),
            _ => unreachable!(),
        }
    }
}
