//! Running job attempts as processes (issue 17; see docs/design/jobs.md). This module holds
//! the executor side only: the `Executor` trait a scheduler starts attempts through, the
//! local executor (a process per attempt, in its own working directory), and the shim every
//! attempt runs under, which fences the attempt to its region's lease: it kills the attempt's
//! whole process group when the executor stops extending its deadline (region dead, frozen or
//! cut off), when the executor goes away, on cancel, and on the attempt's timeout.
//!
//! Architecture invariant: nothing here writes the change log; the scheduler records what an
//! attempt did from the `Outcome` it gets.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited by itself with this status code.
    Exited(i32),
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It was cancelled and killed.
    Cancelled,
    /// Its region's lease was not extended in time (or the executor went away): killed, so
    /// that it never outlives the region that started it.
    Fenced,
    /// It died of a signal it was not sent by the shim.
    Signalled(i32),
}

/// What one attempt runs.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    /// Created if missing; the command runs there, and `stdout.txt` / `stderr.txt` land there.
    pub workdir: PathBuf,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Added to the environment (the job's key and attempt number among them).
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// How long the attempt may run without its deadline being extended.
    pub lease: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("bad attempt: {0}")]
    Invalid(String),
    #[error("could not start the attempt: {0}")]
    Start(std::io::Error),
    #[error("lost touch with the attempt's shim: {0}")]
    Shim(std::io::Error),
}

/// Where attempts run. A Kubernetes or Slurm backend implements the same, with the same
/// fencing promise (docs/design/jobs.md).
pub trait Executor: Send + Sync {
    fn start(&self, spec: &AttemptSpec) -> Result<Box<dyn RunningAttempt>, ExecError>;
}

/// A started attempt.
pub trait RunningAttempt: Send {
    /// The region's lease was renewed: the attempt may run another lease.
    fn extend(&mut self) -> Result<(), ExecError>;
    fn cancel(&mut self) -> Result<(), ExecError>;
    /// How it ended, once it has.
    fn poll(&mut self) -> Result<Option<Outcome>, ExecError>;
}

/// Attempts as local processes, each under `SHIM job-shim`.
pub struct LocalExecutor {
    /// The `tandem` binary (it holds the shim).
    shim: PathBuf,
}

impl LocalExecutor {
    pub fn new(tandem_binary: PathBuf) -> LocalExecutor {
        LocalExecutor {
            shim: tandem_binary,
        }
    }
}

struct LocalAttempt {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Executor for LocalExecutor {
    fn start(&self, spec: &AttemptSpec) -> Result<Box<dyn RunningAttempt>, ExecError> {
        if spec.command.is_empty() {
            return Err(ExecError::Invalid("no command".into()));
        }
        std::fs::create_dir_all(&spec.workdir).map_err(ExecError::Start)?;
        let out =
            std::fs::File::create(spec.workdir.join("stdout.txt")).map_err(ExecError::Start)?;
        let err =
            std::fs::File::create(spec.workdir.join("stderr.txt")).map_err(ExecError::Start)?;
        let mut cmd = Command::new(&self.shim);
        cmd.arg("job-shim")
            .arg("--lease-ms")
            .arg(spec.lease.as_millis().to_string());
        if let Some(t) = spec.timeout {
            cmd.arg("--timeout-ms").arg(t.as_millis().to_string());
        }
        cmd.arg("--")
            .args(&spec.command)
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err);
        let mut child = cmd.spawn().map_err(ExecError::Start)?;
        let stdin = child.stdin.take();
        Ok(Box::new(LocalAttempt { child, stdin }))
    }
}

impl LocalAttempt {
    fn say(&mut self, word: &str) -> Result<(), ExecError> {
        match &mut self.stdin {
            Some(s) => writeln!(s, "{word}").map_err(ExecError::Shim),
            None => Ok(()),
        }
    }
}

impl RunningAttempt for LocalAttempt {
    fn extend(&mut self) -> Result<(), ExecError> {
        self.say("extend")
    }

    fn cancel(&mut self) -> Result<(), ExecError> {
        self.say("cancel")
    }

    fn poll(&mut self) -> Result<Option<Outcome>, ExecError> {
        Ok(self
            .child
            .try_wait()
            .map_err(ExecError::Shim)?
            .map(|status| outcome_of_shim(status.code())))
    }
}

// The shim's exit codes, one per outcome it decides.
const CODE_TIMED_OUT: i32 = 124;
const CODE_CANCELLED: i32 = 125;
const CODE_FENCED: i32 = 126;
/// 200 + signal: the command died of a signal the shim did not send.
const CODE_SIGNAL_BASE: i32 = 200;

fn outcome_of_shim(code: Option<i32>) -> Outcome {
    match code {
        Some(CODE_TIMED_OUT) => Outcome::TimedOut,
        Some(CODE_CANCELLED) => Outcome::Cancelled,
        Some(CODE_FENCED) => Outcome::Fenced,
        Some(c) if c > CODE_SIGNAL_BASE => Outcome::Signalled(c - CODE_SIGNAL_BASE),
        Some(c) => Outcome::Exited(c),
        // The shim itself was killed: its attempt cannot be trusted to have finished.
        None => Outcome::Fenced,
    }
}

/// `tandem job-shim`: runs `command` in a process group of its own and kills the group when
/// the deadline passes without an `extend` line on stdin, when stdin closes (the executor
/// is gone), on a `cancel` line, or at the timeout. Returns the shim's exit code.
pub fn run_shim(lease: Duration, timeout: Option<Duration>, command: &[String]) -> i32 {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let Some((program, args)) = command.split_first() else {
        eprintln!("tandem job-shim: no command");
        return 2;
    };
    let started = Instant::now();
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem job-shim: cannot start {program}: {e}");
            return 127;
        }
    };
    let group = child.id() as i32;
    let kill_group = || {
        // SAFETY: kill(2) with a negative pid signals the process group the shim created.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    };
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    let mut deadline = Instant::now() + lease;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // Whatever it left running in its group goes with it.
            kill_group();
            return match (status.code(), status.signal()) {
                (Some(c), _) => c,
                (None, Some(sig)) => CODE_SIGNAL_BASE + sig,
                _ => 1,
            };
        }
        let now = Instant::now();
        let mut decided = None;
        if timeout.is_some_and(|t| now.duration_since(started) >= t) {
            decided = Some((CODE_TIMED_OUT, "ran past its timeout"));
        } else if now >= deadline {
            decided = Some((CODE_FENCED, "its region's lease was not extended in time"));
        } else {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Some(l)) if l.trim() == "extend" => deadline = Instant::now() + lease,
                Ok(Some(l)) if l.trim() == "cancel" => {
                    decided = Some((CODE_CANCELLED, "cancelled"))
                }
                Ok(Some(_)) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    decided = Some((CODE_FENCED, "its executor went away"))
                }
            }
        }
        if let Some((code, why)) = decided {
            kill_group();
            let _ = child.wait();
            eprintln!("tandem job-shim: killed the attempt: {why}");
            return code;
        }
    }
}

/// A named compute target of a region and its quota: at most `slots` attempts at once, and
/// the CPUs and memory (MB) they may ask for together (`None`: not limited beyond slots).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeTarget {
    pub name: String,
    pub slots: u32,
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

impl ComputeTarget {
    /// `local`: as many slots and CPUs as this machine has cores.
    pub fn local_default() -> ComputeTarget {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        ComputeTarget {
            name: "local".into(),
            slots: cores,
            cpus: Some(cores),
            memory_mb: None,
        }
    }

    /// Whether one attempt asking for `cpus` and `memory_mb` could ever run here.
    pub fn could_hold(&self, cpus: u32, memory_mb: u64) -> bool {
        self.slots >= 1
            && self.cpus.is_none_or(|c| cpus <= c)
            && self.memory_mb.is_none_or(|m| memory_mb <= m)
    }
}

/// The `[[compute]]` entries of a configuration: names unique and well-formed, slots ≥ 1.
pub fn validate_compute(targets: &[ComputeTarget]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for t in targets {
        crate::api::assets::validate_asset_name("environment", &t.name).map_err(|_| {
            format!(
                "compute name '{}' must be letters, digits, '.', '_' or '-'",
                t.name
            )
        })?;
        if !seen.insert(&t.name) {
            return Err(format!("compute '{}' is declared twice", t.name));
        }
        if t.slots == 0 || t.cpus == Some(0) {
            return Err(format!(
                "compute '{}' needs at least one slot and one CPU",
                t.name
            ));
        }
    }
    Ok(())
}
