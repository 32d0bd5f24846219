//! Knobs and the results table.
//!
//! `CHAOS_PROFILE=short` (in `make test`) or `full` (the default, `make
//! chaos`) picks every size and duration; `CHAOS_<NAME>` overrides one (the
//! names are in each case's `knob` calls, and in the README). Each case
//! writes one row — case, load, faults, result, figures — to the file
//! `CHAOS_REPORT` names (tab-separated), which `hack/chaos.sh` prints as one
//! table; a failing case writes its row with `FAIL`.

use std::io::Write;

pub fn short() -> bool {
    std::env::var("CHAOS_PROFILE").as_deref() == Ok("short")
}

/// `CHAOS_<name>`, else the profile's value.
pub fn knob(name: &str, short_value: u64, full_value: u64) -> u64 {
    std::env::var(format!("CHAOS_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short() { short_value } else { full_value })
}

/// One row of the table, written when the case ends (pass or fail). A case
/// holds the machine while it runs: cases never overlap, even when the
/// binary runs tests in parallel (their timings assume a quiet machine).
pub struct Case {
    name: &'static str,
    pub load: String,
    pub faults: String,
    figures: Vec<String>,
    _alone: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Case {
    pub fn new(name: &'static str, load: impl Into<String>, faults: impl Into<String>) -> Self {
        let alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!("== chaos case: {name}");
        Case {
            name,
            load: load.into(),
            faults: faults.into(),
            figures: Vec::new(),
            _alone: alone,
        }
    }

    /// A measured figure for the table (also printed at once).
    pub fn figure(&mut self, f: impl Into<String>) {
        let f = f.into();
        eprintln!("   {}: {f}", self.name);
        self.figures.push(f);
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let result = if std::thread::panicking() {
            "FAIL"
        } else {
            "pass"
        };
        let row = [
            self.name,
            &self.load,
            &self.faults,
            result,
            &self.figures.join("; "),
        ]
        .map(|c| c.replace(['\t', '\n'], " "))
        .join("\t");
        eprintln!("== {row}");
        if let Some(path) = std::env::var_os("CHAOS_REPORT") {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            if let Ok(mut f) = f {
                let _ = writeln!(f, "{row}");
            }
        }
    }
}
