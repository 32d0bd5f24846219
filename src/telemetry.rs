//! Logging setup. (Metrics live with the controller that records them.)

use std::io::IsTerminal;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive such
/// as `info` or `cvm_operator=debug,kube=info`; `RUST_LOG` wins when set.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(colour_wanted(std::io::stderr().is_terminal()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) is harmless.
    let _ = result;
}

/// Colour only for a person at a terminal: `kubectl logs`, log files and
/// pipes get plain text. `NO_COLOR` (https://no-color.org) turns it off even
/// there.
fn colour_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Limits glibc to two malloc arenas. By default every thread that
/// allocates gets its own arena, and freed memory scattered over them stays
/// resident: at 10,000 resources that alone was 13 MiB of a 69 MiB RSS
/// (55 MiB with two arenas). Must run before other threads start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands freed heap memory back to the kernel now and then. glibc keeps
/// freed chunks resident; after the start-up burst (listing and reconciling
/// thousands of resources) that was tens of MiB of a small operator's RSS.
pub async fn trim_memory_periodically(every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim has no preconditions; it only releases free memory.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
