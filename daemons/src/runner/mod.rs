//! Runs checks, notifications and event handlers as real processes; shared by the poller and the
//! reactionner (semantics §5.2, §5.4, §3.5 worker side).
//!
//! - [`command`] decides shell (`/bin/sh -c`) versus direct exec (pure);
//! - [`output`] turns captured bytes and the exit status into Shinken's fields (pure);
//! - [`Runner`] is a bounded async pool: at most `max_concurrent` processes at once.
//!
//! Each process runs in its own process group with stdin on `/dev/null`, stdout and stderr piped
//! and read concurrently while it runs (at most `max_output_length` + 4 KiB kept per stream, the
//! rest drained and discarded so the child never blocks on a full pipe), and the environment of
//! the daemon plus the action's variables. On timeout the whole group gets SIGKILL and the child
//! is reaped. When the main child exits but something it left behind (a background grandchild)
//! still holds the pipes, the runner waits at most [`POST_EXIT_DRAIN`] and then SIGKILLs the
//! group, so a result is never held up by a lingering descendant.
//!
//! Results: [`Runner::run`] returns the result directly; [`Runner::spawn`] is fire-and-forget and
//! its result is queued inside the runner, to be collected in batches with
//! [`Runner::take_results`] (non-blocking) or [`Runner::wait_results`] (waits for at least one).

pub mod command;
pub mod output;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, Semaphore};

use command::{Launch, SHELL};
use output::Termination;

/// How long, after the main child exited, the pipes may stay open (held by a descendant) before
/// the process group is killed.
pub const POST_EXIT_DRAIN: Duration = Duration::from_millis(100);

/// How long to wait for a SIGKILLed child to be reaped before leaving it to tokio's orphan reaper
/// (a process stuck in uninterruptible sleep must not stall the runner).
const REAP_GRACE: Duration = Duration::from_secs(1);

/// Bytes kept per stream beyond `max_output_length` (parsing truncates to the exact limit).
const CAPTURE_SLACK: usize = 4096;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub id: u64,
    pub command_line: String,
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The process exited with this (raw, unmapped) code.
    Exited(i32),
    /// The process was killed by this signal (not by the runner's timeout).
    Signaled(i32),
    /// The timeout expired; the process group was SIGKILLed.
    TimedOut,
    /// The process could not be started; the text is the reason (also the result's output).
    LaunchFailed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionResult {
    pub id: u64,
    pub outcome: Outcome,
    /// Exit status as Shinken reports it from the worker: 0..3, timeout -> 3, launch failure -> 2
    /// (3 for a command line that cannot be split, "Not a valid shell command: ..."),
    /// out-of-range or signal -> 3.
    pub exit_status: u8,
    pub output: String,
    pub long_output: String,
    pub perf_data: String,
    /// When the process was launched (after waiting for a slot), Unix seconds.
    pub start_time: f64,
    /// From launch to exit (or to the timeout kill), seconds.
    pub execution_time: f64,
}

/// Pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// At most this many processes at once (0 is treated as 1).
    pub max_concurrent: usize,
    /// `max_plugins_output_length`: plugin output is truncated to this many bytes before parsing.
    pub max_output_length: usize,
}

impl Default for RunnerConfig {
    /// One slot per CPU, Shinken's default 8192-byte output limit.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        RunnerConfig {
            max_concurrent: cpus,
            max_output_length: 8192,
        }
    }
}

struct Inner {
    cfg: RunnerConfig,
    slots: Semaphore,
    in_flight: AtomicUsize,
    done: Mutex<Vec<ActionResult>>,
    done_signal: Notify,
}

/// A bounded pool: at most `max_concurrent` processes at once (a tokio Semaphore), each action
/// run to completion. Cloning gives another handle on the same pool.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

/// Decrements the in-flight count when dropped (also on panic or cancellation).
struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Runner {
    pub fn new(cfg: RunnerConfig) -> Self {
        let permits = cfg.max_concurrent.max(1);
        Runner {
            inner: Arc::new(Inner {
                cfg,
                slots: Semaphore::new(permits),
                in_flight: AtomicUsize::new(0),
                done: Mutex::new(Vec::new()),
                done_signal: Notify::new(),
            }),
        }
    }

    /// The settings this pool was built with.
    pub fn config(&self) -> &RunnerConfig {
        &self.inner.cfg
    }

    fn enter(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.inner.clone())
    }

    /// Runs one action; waits for a slot first. Dropping the future kills the process group.
    pub async fn run(&self, action: Action) -> ActionResult {
        let _in_flight = self.enter();
        let _permit = self.inner.slots.acquire().await.expect("runner semaphore is never closed");
        execute(&self.inner.cfg, action).await
    }

    /// Submits an action and returns at once (must be called within a tokio runtime). The result
    /// is queued inside the runner, to be collected with [`Runner::take_results`] or
    /// [`Runner::wait_results`]; it is queued before [`Runner::in_flight`] stops counting the
    /// action, so `in_flight() == 0` followed by `take_results()` sees every result.
    pub fn spawn(&self, action: Action) {
        let in_flight = self.enter();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = {
                let _permit = inner.slots.acquire().await.expect("runner semaphore is never closed");
                execute(&inner.cfg, action).await
            };
            inner.done.lock().unwrap_or_else(|e| e.into_inner()).push(result);
            inner.done_signal.notify_one();
            drop(in_flight);
        });
    }

    /// Takes every queued result of [`Runner::spawn`]ed actions, in completion order (may be empty).
    pub fn take_results(&self) -> Vec<ActionResult> {
        std::mem::take(&mut *self.inner.done.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until at least one result of a [`Runner::spawn`]ed action is queued, then takes them
    /// all. Waits forever if nothing was spawned; wrap it in a timeout.
    pub async fn wait_results(&self) -> Vec<ActionResult> {
        loop {
            let results = self.take_results();
            if !results.is_empty() {
                return results;
            }
            self.inner.done_signal.notified().await;
        }
    }

    /// How many results of spawned actions are queued, not yet taken.
    pub fn queued_results(&self) -> usize {
        self.inner.done.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// How many actions are running or waiting.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// How many processes could start right now.
    pub fn free_slots(&self) -> usize {
        self.inner.slots.available_permits()
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The text of an OS error as Python prints it (`[Errno 2] No such file or directory: 'x'`).
fn os_error_text(err: &io::Error, program: &str) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            let suffix = format!(" (os error {code})");
            let text = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("[Errno {code}] {text}: '{program}'")
        }
        None => format!("{err}: '{program}'"),
    }
}

fn build_command(launch: &Launch, env: &[(String, String)]) -> Command {
    let mut cmd = match launch {
        Launch::Shell(line) => {
            let mut c = Command::new(SHELL);
            c.arg("-c").arg(line);
            c
        }
        Launch::Direct(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

fn spawn_child(action: &Action, launch: Launch) -> Result<Child, (io::Error, String)> {
    let program = match &launch {
        Launch::Shell(_) => SHELL.to_string(),
        Launch::Direct(argv) => argv[0].clone(),
    };
    match build_command(&launch, &action.env).spawn() {
        Ok(child) => Ok(child),
        // A script without a `#!` line: retry through the shell, as Shinken does.
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) && matches!(launch, Launch::Direct(_)) => {
            build_command(&Launch::Shell(action.command_line.clone()), &action.env)
                .spawn()
                .map_err(|e| (e, SHELL.to_string()))
        }
        Err(e) => Err((e, program)),
    }
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// SIGKILLs the process group when dropped while armed (the run was cancelled).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pgid);
        }
    }
}

/// One captured stream: keeps at most `cap` bytes, drains the rest.
struct Capture<R> {
    pipe: Option<R>,
    data: Vec<u8>,
    cap: usize,
    chunk: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> Capture<R> {
    fn new(pipe: Option<R>, cap: usize) -> Self {
        Capture {
            pipe,
            data: Vec::new(),
            cap,
            chunk: vec![0u8; 8192].into_boxed_slice(),
        }
    }

    fn open(&self) -> bool {
        self.pipe.is_some()
    }

    /// Reads once (cancel safe); closes the stream on EOF or error.
    async fn read_some(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return std::future::pending().await;
        };
        match pipe.read(&mut self.chunk).await {
            Ok(0) => self.pipe = None,
            Ok(n) => {
                let room = self.cap.saturating_sub(self.data.len());
                self.data.extend_from_slice(&self.chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.pipe = None,
        }
    }
}

/// Reads both streams until both are closed or `deadline` passes; true if both closed.
async fn drain_until<A, B>(out: &mut Capture<A>, err: &mut Capture<B>, deadline: tokio::time::Instant) -> bool
where
    A: AsyncRead + Unpin,
    B: AsyncRead + Unpin,
{
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    while out.open() || err.open() {
        tokio::select! {
            _ = out.read_some(), if out.open() => {}
            _ = err.read_some(), if err.open() => {}
            _ = &mut sleep => return false,
        }
    }
    true
}

fn failed(action: &Action, start_time: f64, started: Instant, exit_status: u8, text: String) -> ActionResult {
    ActionResult {
        id: action.id,
        outcome: Outcome::LaunchFailed(text.clone()),
        exit_status,
        output: text,
        long_output: String::new(),
        perf_data: String::new(),
        start_time,
        execution_time: started.elapsed().as_secs_f64(),
    }
}

/// Runs one action to completion (the caller holds a slot).
async fn execute(cfg: &RunnerConfig, action: Action) -> ActionResult {
    let start_time = unix_now();
    let started = Instant::now();
    let launch = match command::plan(&action.command_line) {
        Ok(l) => l,
        Err(e) => return failed(&action, start_time, started, 3, format!("Not a valid shell command: {e}")),
    };
    let mut child = match spawn_child(&action, launch) {
        Ok(c) => c,
        Err((e, program)) => return failed(&action, start_time, started, 2, os_error_text(&e, &program)),
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let mut guard = GroupGuard { pgid, armed: true };

    let cap = cfg.max_output_length.saturating_add(CAPTURE_SLACK);
    let mut out = Capture::new(child.stdout.take(), cap);
    let mut err = Capture::new(child.stderr.take(), cap);
    // A timeout too large to represent means no timeout in practice (about 30 years).
    let deadline = started
        .checked_add(action.timeout)
        .unwrap_or_else(|| started + Duration::from_secs(30 * 365 * 86_400));
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
    tokio::pin!(sleep);

    let status: Option<ExitStatus> = loop {
        tokio::select! {
            _ = out.read_some(), if out.open() => {}
            _ = err.read_some(), if err.open() => {}
            // `wait` failing (it should not) is reported as exit code 127.
            res = child.wait() => break Some(res.unwrap_or_else(|_| ExitStatus::from_raw(127 << 8))),
            _ = &mut sleep => break None,
        }
    };
    let execution_time = started.elapsed().as_secs_f64();

    let Some(status) = status else {
        // Timed out: kill the whole group, reap the child, keep what was captured.
        kill_group(pgid);
        let _ = child.start_kill();
        let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
        drain_until(&mut out, &mut err, tokio::time::Instant::now() + POST_EXIT_DRAIN).await;
        guard.armed = false;
        let parsed = output::parse_captured(&out.data, &err.data, cfg.max_output_length);
        return ActionResult {
            id: action.id,
            outcome: Outcome::TimedOut,
            exit_status: 3,
            output: parsed.output,
            long_output: parsed.long_output,
            perf_data: parsed.perf_data,
            start_time,
            execution_time,
        };
    };

    // Exited: drain what is left; a descendant still holding the pipes gets killed.
    if !drain_until(&mut out, &mut err, tokio::time::Instant::now() + POST_EXIT_DRAIN).await {
        kill_group(pgid);
        drain_until(&mut out, &mut err, tokio::time::Instant::now() + POST_EXIT_DRAIN).await;
    }
    guard.armed = false;

    let (termination, outcome) = match (status.code(), status.signal()) {
        (Some(code), _) => (Termination::Exited(code), Outcome::Exited(code)),
        (None, Some(sig)) => (Termination::Signaled(sig), Outcome::Signaled(sig)),
        (None, None) => (Termination::Exited(127), Outcome::Exited(127)),
    };
    let finished = output::finish(termination, &out.data, &err.data, cfg.max_output_length);
    ActionResult {
        id: action.id,
        outcome,
        exit_status: finished.exit_status,
        output: finished.parsed.output,
        long_output: finished.parsed.long_output,
        perf_data: finished.parsed.perf_data,
        start_time,
        execution_time,
    }
}
