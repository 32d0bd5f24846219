//! The control plane's processes: spawned from one long-lived thread (their
//! parent-death signal follows the spawning *thread*), stopped gracefully
//! or killed, started again with the same arguments.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How to stop a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, then SIGKILL after 10 s.
    Graceful,
    /// SIGKILL: a crash, a node lost.
    Kill,
}

/// One process of the plane, with what it takes to start it again.
pub struct Component {
    pub name: &'static str,
    pub bin: PathBuf,
    pub args: Vec<String>,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Component {
    pub fn new(name: &'static str, bin: PathBuf, args: Vec<String>, log: PathBuf) -> Self {
        Self {
            name,
            bin,
            args,
            log,
            child: None,
        }
    }

    /// The exit status, if it exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn stop(&mut self, how: Stop) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, how);
        }
    }
}

type Request = (
    PathBuf,
    Vec<String>,
    PathBuf,
    mpsc::Sender<std::io::Result<Child>>,
);

/// Spawns children from a thread that lives as long as the spawner (the
/// plane): they die with the test process, never with a worker thread.
pub struct Spawner {
    tx: std::sync::Mutex<mpsc::Sender<Request>>,
}

impl Spawner {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (bin, args, log, reply) in rx {
                let _ = reply.send(spawn(&bin, &args, &log));
            }
        });
        Self {
            tx: std::sync::Mutex::new(tx),
        }
    }

    pub fn launch(&self, c: &mut Component) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        let request = (c.bin.clone(), c.args.clone(), c.log.clone(), reply);
        self.tx
            .lock()
            .unwrap()
            .send(request)
            .map_err(|_| "the spawner thread is gone".to_string())?;
        let child = answer
            .recv()
            .map_err(|_| "the spawner thread is gone".to_string())?
            .map_err(|e| format!("cannot start {}: {e}", c.name))?;
        c.child = Some(child);
        Ok(())
    }
}

/// Starts `bin` in its own process group, output appended to `log`; killed
/// when the spawning thread exits (PR_SET_PDEATHSIG).
fn spawn(bin: &Path, args: &[String], log: &Path) -> std::io::Result<Child> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .process_group(0);
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
}

fn stop(child: &mut Child, how: Stop) {
    let pgid = -(child.id() as i32);
    if how == Stop::Graceful {
        unsafe { libc::kill(pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    unsafe { libc::kill(pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let content = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = content.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reads lines of a child's stdout until one matches.
pub fn wait_for_line(reader: &mut impl BufRead, pred: impl Fn(&str) -> bool) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if pred(&line) {
            return Some(line.trim().to_string());
        }
    }
}
