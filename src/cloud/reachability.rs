//! Whether the API answers, per endpoint host: a circuit breaker.
//!
//! When calls to a host have gone unanswered (connection refused, timeouts,
//! a gateway's 5xx) for a while, the host is *down*: calls are not sent but
//! fail at once with [`CloudError::Unreachable`](super::CloudError), so a
//! thousand reconciles do not each wait out a timeout or hammer a dead
//! endpoint, and one call per probe interval goes through as the probe
//! (whoever makes it; [`Reachability::probe_due`] gives an idle caller the
//! credentials to make one). The first answer of any kind — even an error
//! the API returns — means it is back: the recovery is announced on
//! [`Reachability::recoveries`], so whoever waits can be woken at once.

use super::credentials::Credentials;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
// Tokio's clock, so the tests can run on a paused one.
use tokio::time::Instant;

/// Unanswered calls in a row before a host is declared down…
const DOWN_AFTER_FAILURES: u32 = 3;
/// …and for at least this long with no answer (a lost response or two
/// among thousands of calls is not an outage).
const DOWN_AFTER: Duration = Duration::from_secs(5);

/// What became of one attempt, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The API answered (a success or an error of its own).
    Answered,
    /// No answer: the connection failed, timed out, or a gateway said 5xx.
    Unanswered,
}

/// A host that is down, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub host: String,
    /// When calls started going unanswered.
    pub since: jiff::Timestamp,
    /// The last error, `code: message`.
    pub last_error: String,
}

#[derive(Default)]
struct HostState {
    unanswered_in_a_row: u32,
    /// The last answer (or when tracking began).
    last_answer: Option<Instant>,
    first_unanswered: Option<(Instant, jiff::Timestamp)>,
    last_error: String,
    down: bool,
    next_probe: Option<Instant>,
    /// The credentials and region of the last call, to probe with.
    probe_with: Option<(Credentials, String)>,
}

struct Inner {
    hosts: Mutex<HashMap<String, HostState>>,
    probe_interval: Duration,
    recoveries: watch::Sender<u64>,
}

/// Cheap to clone; shared by a client's clones.
#[derive(Clone)]
pub struct Reachability {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reachability")
            .field("down", &self.down())
            .finish_non_exhaustive()
    }
}

impl Reachability {
    pub fn new(probe_interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                hosts: Mutex::new(HashMap::new()),
                probe_interval,
                recoveries: watch::Sender::new(0),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, HostState>) -> T) -> T {
        f(&mut self.inner.hosts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Before a call to `host`: `Ok` to send it (the host is up, or this
    /// call is the probe), else the outage to report. Remembers the
    /// credentials for later probes.
    pub fn admit(&self, host: &str, creds: Option<&Credentials>, region: &str) -> Result<(), Down> {
        let now = Instant::now();
        let interval = self.inner.probe_interval;
        self.with(|hosts| {
            let h = hosts.entry(host.to_string()).or_default();
            if let Some(c) = creds {
                h.probe_with = Some((c.clone(), region.to_string()));
            }
            if !h.down || h.next_probe.is_none_or(|t| t <= now) {
                if h.down {
                    h.next_probe = Some(now + interval);
                }
                return Ok(());
            }
            Err(down_of(host, h))
        })
    }

    /// After an attempt to `host`. `error` is its `code: message` when
    /// unanswered.
    pub fn record(&self, host: &str, outcome: Outcome, error: impl FnOnce() -> String) {
        let now = Instant::now();
        let interval = self.inner.probe_interval;
        let recovered = self.with(|hosts| {
            let h = hosts.entry(host.to_string()).or_default();
            match outcome {
                Outcome::Answered => {
                    let was_down = h.down;
                    if was_down && let Some((since, _)) = h.first_unanswered {
                        tracing::info!(%host, down_for = ?since.elapsed(), "the CVM API answers again");
                    }
                    h.unanswered_in_a_row = 0;
                    h.first_unanswered = None;
                    h.last_answer = Some(now);
                    h.down = false;
                    h.next_probe = None;
                    was_down
                }
                Outcome::Unanswered => {
                    h.unanswered_in_a_row += 1;
                    h.last_error = error();
                    let first = *h
                        .first_unanswered
                        .get_or_insert_with(|| (now, jiff::Timestamp::now()));
                    let quiet_for = now.duration_since(h.last_answer.unwrap_or(first.0));
                    if !h.down
                        && h.unanswered_in_a_row >= DOWN_AFTER_FAILURES
                        && quiet_for >= DOWN_AFTER
                    {
                        h.down = true;
                        h.next_probe = Some(now + interval);
                        tracing::warn!(
                            %host,
                            last_error = %h.last_error,
                            probe_every = ?interval,
                            "the CVM API does not answer; calls wait for it (one probe per interval)"
                        );
                    }
                    false
                }
            }
        });
        if recovered {
            self.inner.recoveries.send_modify(|n| *n += 1);
        }
    }

    /// Hosts that are down now.
    pub fn down(&self) -> Vec<Down> {
        self.with(|hosts| {
            let mut out: Vec<Down> = hosts
                .iter()
                .filter(|(_, h)| h.down)
                .map(|(host, h)| down_of(host, h))
                .collect();
            out.sort_by(|a, b| a.host.cmp(&b.host));
            out
        })
    }

    /// Hosts with a probe due and the credentials and region to make it
    /// with (taking the probe slot, as [`admit`](Self::admit) would).
    pub fn probe_due(&self) -> Vec<(String, Credentials, String)> {
        let now = Instant::now();
        let interval = self.inner.probe_interval;
        self.with(|hosts| {
            hosts
                .iter_mut()
                .filter(|(_, h)| h.down && h.next_probe.is_none_or(|t| t <= now))
                .filter_map(|(host, h)| {
                    let (creds, region) = h.probe_with.clone()?;
                    h.next_probe = Some(now + interval);
                    Some((host.clone(), creds, region))
                })
                .collect()
        })
    }

    /// Counts recoveries: changes whenever a down host answers again.
    pub fn recoveries(&self) -> watch::Receiver<u64> {
        self.inner.recoveries.subscribe()
    }

    pub fn probe_interval(&self) -> Duration {
        self.inner.probe_interval
    }
}

fn down_of(host: &str, h: &HostState) -> Down {
    Down {
        host: host.to_string(),
        since: h
            .first_unanswered
            .map_or_else(jiff::Timestamp::now, |(_, t)| t),
        last_error: h.last_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new("AKIDTEST0000", "key", None).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_is_down_after_sustained_silence_and_back_at_the_first_answer() {
        let r = Reachability::new(Duration::from_secs(10));
        let mut recoveries = r.recoveries();
        let host = "cvm.tencentcloudapi.com";
        let miss = || "ClientError.Timeout: timed out".to_string();
        r.record(host, Outcome::Answered, String::new);
        // Three misses at once are not an outage: the API answered just now.
        for _ in 0..3 {
            assert!(r.admit(host, Some(&creds()), "ap-guangzhou").is_ok());
            r.record(host, Outcome::Unanswered, miss);
        }
        assert!(r.down().is_empty());
        tokio::time::advance(DOWN_AFTER).await;
        r.record(host, Outcome::Unanswered, miss);
        let down = r.down();
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].last_error, "ClientError.Timeout: timed out");
        // Calls fail at once; no probe is due yet, nor offered.
        assert!(r.admit(host, None, "ap-guangzhou").is_err());
        assert!(r.probe_due().is_empty());
        // One probe per interval: the first caller after it goes through.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(r.admit(host, None, "ap-guangzhou").is_ok(), "the probe");
        assert!(r.admit(host, None, "ap-guangzhou").is_err(), "only one");
        r.record(host, Outcome::Unanswered, miss);
        // An idle operator probes with the last caller's credentials.
        tokio::time::advance(Duration::from_secs(10)).await;
        let due = r.probe_due();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].2, "ap-guangzhou");
        assert!(r.probe_due().is_empty(), "the slot is taken");
        assert!(!recoveries.has_changed().unwrap());
        // Any answer, even an API error, ends the outage and announces it.
        r.record(host, Outcome::Answered, String::new);
        assert!(r.down().is_empty());
        assert!(recoveries.has_changed().unwrap());
        assert_eq!(*recoveries.borrow_and_update(), 1);
        assert!(r.admit(host, None, "ap-guangzhou").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_are_independent() {
        let r = Reachability::new(Duration::from_secs(10));
        let miss = || "ClientError.NetworkError: refused".to_string();
        for _ in 0..3 {
            r.record("a", Outcome::Unanswered, miss);
        }
        tokio::time::advance(DOWN_AFTER).await;
        r.record("a", Outcome::Unanswered, miss);
        assert!(r.admit("a", None, "").is_err());
        assert!(r.admit("b", None, "").is_ok());
    }
}
