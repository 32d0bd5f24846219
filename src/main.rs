//! The `cvm-operator` binary: parses flags, builds the pieces, runs them.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use cvm_operator::cloud::RateLimits;
use cvm_operator::sim::{self, Faults, LostMode, SimAccount, SimConfig, Simulator};
use cvm_operator::telemetry::{self, LogFormat};
use std::net::SocketAddr;
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
    /// Serve the offline CVM API simulator.
    Simulator(SimulatorArgs),
    /// Print the CustomResourceDefinition (YAML), as committed under crds/.
    Crd,
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
    rate_limit: Vec<String>,
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
            .with_overrides(&self.rate_limit)
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

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    telemetry::init_logging(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Simulator(args) => run_simulator(args).await,
        Command::Crd => {
            print!("{}", cvm_operator::api::crd_yaml());
            Ok(())
        }
    }
}
