//! `shinken run PATH [--token-file F]`: a whole cluster on one machine, every daemon of the
//! configuration as its own child process.
//!
//! What it does, in order:
//! 1. loads the configuration; with errors it prints them as `check-config` does and exits 1,
//!    nothing started;
//! 2. checks that every daemon's `address:port` is free and bindable (and that no two daemons
//!    share one); otherwise it names the daemon and the address and exits 1, nothing started;
//! 3. creates the cluster token file when absent (mode 0600; `shinken.token` beside the main cfg
//!    by default) and says so;
//! 4. starts the schedulers and satellites, waits (briefly, bounded) until they listen, then the
//!    arbiters, so that the arbiters' first probes find them: each is
//!    `shinken <role> --config MAIN --name NAME --token-file F`, listening on its definition's
//!    address and port;
//! 5. forwards every line a daemon writes (stdout and stderr) to our stderr as `[NAME] line`;
//! 6. watches them: a daemon that exits is reported and never restarted silently, the others
//!    keep running; when none is left, exits 1;
//! 7. on SIGINT or SIGTERM, sends SIGTERM to every daemon, waits up to [`STOP_GRACE`], kills
//!    the stragglers (a second signal kills at once), reaps them all and exits 0.
//!
//! Children stay in our process group (a Ctrl-C at the terminal reaches them too, and they stop
//! gracefully on it) and ask the kernel to send them SIGTERM if we die without stopping them
//! (`PR_SET_PDEATHSIG`), so no daemon outlives `shinken run`.

use crate::protocol::{default_token_path, ensure_token};
use shinken_config::daemons::{DaemonDef, Role};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

/// How long the daemons have to stop after SIGTERM before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long the arbiters' start waits for the other daemons to listen.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// How long, once every daemon is reaped, their last output lines have to reach us.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

const USAGE: &str = "usage: shinken run PATH [--token-file F]";

/// The start order: schedulers and satellites first, arbiters last.
const START_ORDER: [Role; 6] = [
    Role::Scheduler,
    Role::Poller,
    Role::Reactionner,
    Role::Broker,
    Role::Receiver,
    Role::Arbiter,
];

/// The arguments of `shinken run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub path: PathBuf,
    pub token_file: Option<PathBuf>,
}

impl RunArgs {
    pub fn parse(args: &[String]) -> Result<RunArgs, String> {
        let mut path = None;
        let mut token_file = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--token-file" => token_file = Some(PathBuf::from(it.next().ok_or("--token-file needs a value")?)),
                s if s.starts_with("--token-file=") => token_file = Some(PathBuf::from(&s["--token-file=".len()..])),
                s if s.starts_with('-') => return Err(format!("unknown option {s}")),
                s if path.is_none() => path = Some(PathBuf::from(s)),
                s => return Err(format!("unexpected argument {s}")),
            }
        }
        Ok(RunArgs {
            path: path.ok_or("a PATH is required")?,
            token_file,
        })
    }
}

/// `shinken run`: see the module documentation.
pub fn run(args: &[String]) -> ExitCode {
    let args = match RunArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shinken run: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = match shinken_config::load(&args.path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shinken run: cannot read the configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.has_errors() {
        eprint!("{}", shinken_config::output::text(&cfg));
        eprintln!("shinken run: the configuration has errors; nothing started");
        return ExitCode::FAILURE;
    }
    let warnings = cfg.diag.reports(shinken_config::diag::Severity::Warning, &cfg.sources);
    if !warnings.is_empty() {
        let mut text = format!("Total Warnings: {}\n", warnings.len());
        for w in &warnings {
            text.push_str(&format!("{w}\n"));
        }
        eprint!("{text}");
    }
    let main_file = absolute(&cfg.main_file);
    let daemons = start_order(&cfg.topology.daemons);
    if daemons.is_empty() {
        eprintln!("shinken run: {} defines no daemon; nothing to run", main_file.display());
        return ExitCode::FAILURE;
    }

    let problems = check_addresses(&daemons);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("shinken run: {p}");
        }
        eprintln!("shinken run: nothing started");
        return ExitCode::FAILURE;
    }

    let token_file = absolute(&args.token_file.clone().unwrap_or_else(|| default_token_path(&main_file)));
    let existed = std::fs::symlink_metadata(&token_file).is_ok();
    if let Err(e) = ensure_token(&token_file) {
        eprintln!("shinken run: {e}; nothing started");
        return ExitCode::FAILURE;
    }
    if !existed {
        eprintln!("shinken run: created the cluster token in {} (mode 0600)", token_file.display());
    }

    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shinken run: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shinken run: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One thread: the children are all forked from it, and it lives as long as we do, which
    // PR_SET_PDEATHSIG needs (the signal follows the death of the forking thread).
    let plan = Plan {
        exe,
        main_file,
        token_file,
        daemons,
    };
    runtime.block_on(supervise(plan))
}

/// What `supervise` starts.
struct Plan {
    /// Our own executable; each daemon is a subcommand of it.
    exe: PathBuf,
    /// Absolute, so the daemons do not depend on our working directory.
    main_file: PathBuf,
    token_file: PathBuf,
    /// In start order.
    daemons: Vec<DaemonDef>,
}

/// The daemons in start order: by role as [`START_ORDER`], masters before spares, then as defined.
pub fn start_order(daemons: &[DaemonDef]) -> Vec<DaemonDef> {
    let mut out: Vec<DaemonDef> = daemons.to_vec();
    let rank = |r: Role| START_ORDER.iter().position(|&x| x == r).unwrap_or(START_ORDER.len());
    out.sort_by_key(|d| (rank(d.role), d.spare));
    out
}

/// Every reason the daemons cannot all listen where their definitions say: two daemons on one
/// address, an address that does not resolve, or one that cannot be bound (in use, not local).
pub fn check_addresses(daemons: &[DaemonDef]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<SocketAddr, &DaemonDef> = BTreeMap::new();
    for d in daemons {
        let text = format!("{}:{}", d.address, d.port);
        let addr = match text.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            Ok(None) => {
                problems.push(format!("{} {}: address {text} resolves to nothing", d.role.name(), d.name));
                continue;
            }
            Err(e) => {
                problems.push(format!("{} {}: cannot resolve address {text}: {e}", d.role.name(), d.name));
                continue;
            }
        };
        if let Some(other) = seen.get(&addr) {
            problems.push(format!(
                "{} {} and {} {} both listen on {addr}",
                other.role.name(),
                other.name,
                d.role.name(),
                d.name
            ));
            continue;
        }
        seen.insert(addr, d);
        if let Err(e) = TcpListener::bind(addr) {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "already in use (is another Shinken or another program running?)".to_string()
            } else {
                e.to_string()
            };
            problems.push(format!("{} {}: cannot listen on {addr} ({text}): {why}", d.role.name(), d.name));
        }
    }
    problems
}

/// What a daemon's watcher reports.
struct Exited {
    name: String,
    role: Role,
    status: std::io::Result<ExitStatus>,
}

/// How far the stop has gone: the watchers act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Running,
    /// SIGTERM sent; killed after [`STOP_GRACE`].
    Terminate,
    /// Kill now.
    Kill,
}

async fn supervise(plan: Plan) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    // Listen for signals before the first child exists, so none is missed.
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("shinken run: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(Stop::Running);
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<Exited>();
    let mut forwarders = Vec::new();
    let mut running = 0usize;
    let total = plan.daemons.len();

    let mut arbiters_waited = false;
    for d in &plan.daemons {
        if d.role == Role::Arbiter && !arbiters_waited {
            arbiters_waited = true;
            wait_listening(&plan.daemons, &mut exit_rx, &mut running).await;
        }
        let mut child = match spawn(&plan, d) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("shinken run: cannot start {} {}: {e}; stopping the others", d.role.name(), d.name);
                let _ = stop_tx.send(Stop::Terminate);
                drain(&mut exit_rx, &mut running).await;
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "shinken run: started {} {} ({}) on {}:{}, pid {}",
            d.role.name(),
            d.name,
            if d.spare { "spare" } else { "master" },
            d.address,
            d.port,
            child.id().unwrap_or(0)
        );
        if let Some(out) = child.stdout.take() {
            forwarders.push(tokio::spawn(forward(d.name.clone(), out)));
        }
        if let Some(err) = child.stderr.take() {
            forwarders.push(tokio::spawn(forward(d.name.clone(), err)));
        }
        running += 1;
        tokio::spawn(watch_child(d.name.clone(), d.role, child, stop_rx.clone(), exit_tx.clone()));
    }
    drop(exit_tx);
    eprintln!("shinken run: {total} daemons started; SIGINT or SIGTERM stops them all");

    let mut code = ExitCode::SUCCESS;
    loop {
        tokio::select! {
            ev = exit_rx.recv() => {
                let Some(ev) = ev else { break };
                running -= 1;
                report_exit(&ev);
                if running == 0 {
                    eprintln!("shinken run: every daemon has exited");
                    code = ExitCode::FAILURE;
                    break;
                }
            }
            _ = term.recv() => { eprintln!("shinken run: SIGTERM received, stopping the daemons"); break }
            _ = int.recv() => { eprintln!("shinken run: SIGINT received, stopping the daemons"); break }
        }
    }

    if running > 0 {
        let _ = stop_tx.send(Stop::Terminate);
        let deadline = tokio::time::Instant::now() + STOP_GRACE + Duration::from_secs(5);
        while running > 0 {
            tokio::select! {
                ev = exit_rx.recv() => {
                    let Some(ev) = ev else { break };
                    running -= 1;
                    match &ev.status {
                        Ok(s) => eprintln!("shinken run: daemon {} ({}) stopped ({})", ev.name, ev.role.name(), describe(*s)),
                        Err(e) => eprintln!("shinken run: daemon {} ({}): cannot wait for it: {e}", ev.name, ev.role.name()),
                    }
                }
                _ = term.recv() => { eprintln!("shinken run: second signal: killing the daemons"); let _ = stop_tx.send(Stop::Kill); }
                _ = int.recv() => { eprintln!("shinken run: second signal: killing the daemons"); let _ = stop_tx.send(Stop::Kill); }
                _ = tokio::time::sleep_until(deadline) => {
                    // The watchers kill at STOP_GRACE; this only guards against a wait that never ends.
                    eprintln!("shinken run: {running} daemons did not end; giving up on them");
                    break;
                }
            }
        }
        eprintln!("shinken run: all daemons stopped");
    }
    // The last lines of the daemons, then we are done.
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        for f in forwarders {
            let _ = f.await;
        }
    })
    .await;
    code
}

/// Waits (at most [`LISTEN_WAIT`]) until every daemon but the arbiters accepts connections on
/// its address, or has exited.
async fn wait_listening(daemons: &[DaemonDef], exit_rx: &mut mpsc::UnboundedReceiver<Exited>, running: &mut usize) {
    let mut pending: Vec<&DaemonDef> = daemons.iter().filter(|d| d.role != Role::Arbiter).collect();
    let start = Instant::now();
    while !pending.is_empty() && start.elapsed() < LISTEN_WAIT {
        while let Ok(ev) = exit_rx.try_recv() {
            *running -= 1;
            report_exit(&ev);
            pending.retain(|d| d.name != ev.name || d.role != ev.role);
        }
        let mut still = Vec::new();
        for d in pending {
            let addr = format!("{}:{}", d.address, d.port);
            let up = tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr))
                .await
                .is_ok_and(|r| r.is_ok());
            if !up {
                still.push(d);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if !pending.is_empty() {
        let names: Vec<&str> = pending.iter().map(|d| d.name.as_str()).collect();
        eprintln!(
            "shinken run: not listening yet after {}s: {}; starting the arbiters anyway",
            LISTEN_WAIT.as_secs(),
            names.join(", ")
        );
    }
}

/// Starts one daemon, its output piped to us.
fn spawn(plan: &Plan, d: &DaemonDef) -> std::io::Result<Child> {
    let mut cmd = Command::new(&plan.exe);
    cmd.arg(d.role.name())
        .arg("--config")
        .arg(&plan.main_file)
        .arg("--name")
        .arg(&d.name)
        .arg("--token-file")
        .arg(&plan.token_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, kill, getpid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // We died between the fork and the prctl: the signal will never come.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Copies one pipe of a daemon to our stderr, a line at a time, prefixed with its name.
async fn forward(name: String, pipe: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                    line.pop();
                }
                let text = String::from_utf8_lossy(&line);
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "[{name}] {text}");
            }
        }
    }
}

/// Owns one child: reports its exit, or stops it when told to (SIGTERM, then SIGKILL after
/// [`STOP_GRACE`] or at once on [`Stop::Kill`]). The child is signalled only through its handle,
/// which knows whether it was reaped, so a reused pid is never hit.
async fn watch_child(name: String, role: Role, mut child: Child, mut stop: watch::Receiver<Stop>, tx: mpsc::UnboundedSender<Exited>) {
    let asked = tokio::select! {
        s = child.wait() => Err(s),
        r = stop.wait_for(|s| *s >= Stop::Terminate) => Ok(r.map(|s| *s).unwrap_or(Stop::Kill)),
    };
    let status = match asked {
        Err(s) => s,
        Ok(Stop::Terminate) if child.id().is_some() => {
            if let Some(pid) = child.id() {
                // SAFETY: plain kill(2) of our own child, not yet reaped (it has an id).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
            let ended = tokio::select! {
                s = child.wait() => Some(s),
                _ = tokio::time::sleep(STOP_GRACE) => None,
                _ = async { let _ = stop.wait_for(|s| *s >= Stop::Kill).await; } => None,
            };
            match ended {
                Some(s) => s,
                None => kill_and_wait(&name, &mut child).await,
            }
        }
        Ok(_) => kill_and_wait(&name, &mut child).await,
    };
    let _ = tx.send(Exited { name, role, status });
}

async fn kill_and_wait(name: &str, child: &mut Child) -> std::io::Result<ExitStatus> {
    if child.id().is_some() {
        eprintln!("shinken run: daemon {name} did not stop in time; killing it");
    }
    let _ = child.start_kill();
    child.wait().await
}

fn report_exit(ev: &Exited) {
    match &ev.status {
        Ok(s) => eprintln!(
            "shinken run: daemon {} ({}) exited with status {}; not restarting it",
            ev.name,
            ev.role.name(),
            describe(*s)
        ),
        Err(e) => eprintln!(
            "shinken run: daemon {} ({}): cannot wait for it ({e}); not restarting it",
            ev.name,
            ev.role.name()
        ),
    }
}

/// `0`, `1`, or `143 (killed by SIGTERM)`: the shell's numbers.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(sig)) => format!("{} (killed by {})", 128 + sig, signal_name(sig)),
        (None, None) => status.to_string(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        other => format!("signal {other}"),
    }
}

/// Waits for every watcher still running to report (used when the start itself fails).
async fn drain(exit_rx: &mut mpsc::UnboundedReceiver<Exited>, running: &mut usize) {
    while *running > 0 {
        match exit_rx.recv().await {
            Some(ev) => {
                *running -= 1;
                if let Ok(s) = ev.status {
                    eprintln!("shinken run: daemon {} ({}) stopped ({})", ev.name, ev.role.name(), describe(s));
                }
            }
            None => return,
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Whether something accepts connections on `address:port` (used by tests and tools).
pub fn answers(address: &str, port: u16, timeout: Duration) -> bool {
    format!("{address}:{port}")
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, timeout).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let a = RunArgs::parse(&s(&["etc", "--token-file", "/t"])).unwrap();
        assert_eq!(a.path, PathBuf::from("etc"));
        assert_eq!(a.token_file, Some(PathBuf::from("/t")));
        assert!(RunArgs::parse(&s(&[])).unwrap_err().contains("PATH"));
        assert!(RunArgs::parse(&s(&["a", "b"])).is_err());
        assert!(RunArgs::parse(&s(&["a", "--bogus"])).is_err());
        assert!(RunArgs::parse(&s(&["a", "--token-file"])).is_err());
    }

    #[test]
    fn exit_statuses_read_like_a_shell() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe(ExitStatus::from_raw(0)), "0");
        assert_eq!(describe(ExitStatus::from_raw(2 << 8)), "2");
        assert_eq!(describe(ExitStatus::from_raw(libc::SIGKILL)), "137 (killed by SIGKILL)");
    }
}
