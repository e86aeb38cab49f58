//! `cargo bench -p shinken --bench engine`: sustained checks per second end to end (scheduler ->
//! poller -> result) on 10k services with a trivial plugin, against, in the same run, (a) the
//! machine's raw rate of spawning and reaping that plugin with no scheduler and (b) Nagios 4 on
//! the same generated objects; then the scheduler's memory per service at 100k services.
//!
//! Every configuration runs once: a warm-up, then a fixed window. Figures only, no assertion.
//!
//! - Raw: `slots` threads (the poller's concurrency, 2 x CPUs by default) each spawn the plugin
//!   with `std::process::Command` (stdout and stderr piped and read, as a poller does) and reap
//!   it, in a loop; rate = completions inside the window / window.
//! - Nagios 4: `nagios4 main.cfg` in the foreground; every service writes `$TIMET$` to a
//!   perfdata file when its result is processed; after Nagios stops (closing the file), lines
//!   whose second falls inside the window (whole seconds) are counted.
//! - Ours: `shinken scheduler` and `shinken poller` (and `shinken broker` when it exists and
//!   `BENCH_BROKER` is not 0) given their configuration as the arbiter does (cut, part cfg text,
//!   `put_conf`); the scheduler's open `/metrics` counter `shinken_scheduler_results_total` is
//!   read at both ends of the window.
//! - Memory: a scheduler holding a 100k-service part (active checks disabled): VmRSS after the
//!   part is loaded minus VmRSS idle, per service; Nagios 4 likewise (100k services minus 1).
//!
//! Environment: `BENCH_WINDOW_SECS` (20), `BENCH_WARMUP_SECS` (3), `BENCH_SERVICES` (10000),
//! `BENCH_MEM_SERVICES` (100000, 0 skips the memory part), `BENCH_SLOTS` (16 x CPUs: a poller runs many checks at once; at 2 x CPUs the round trip to the scheduler, not the CPU, bounds a 4-slot poller),
//! `BENCH_SHELL` (1: also run everything with a `#!/bin/sh` plugin; 0 skips),
//! `BENCH_ONLY` (comma list of raw,nagios,shinken,memory), `BENCH_BROKER` (1).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shinken::messages::{PutConf, SatelliteConf, SchedulerConf, SchedulerLink};
use shinken::protocol::{Client, Token, ensure_token};
use shinken_testkit::{TempDir, nagios};

/// Cargo builds the binary with the bench profile (optimised) and names it here.
const SHINKEN: &str = env!("CARGO_BIN_EXE_shinken");
const PLUGINS: &str = "/usr/lib/nagios/plugins";
const SCHEDULER: &str = "scheduler-bench";
const POLLER: &str = "poller-bench";
const BROKER: &str = "broker-bench";

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    window: Duration,
    warmup: Duration,
    services: usize,
    mem_services: usize,
    slots: usize,
    cpus: usize,
    shell: bool,
    broker: bool,
    only: Vec<String>,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

impl Opts {
    fn from_env() -> Opts {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Opts {
            window: Duration::from_secs(env_num("BENCH_WINDOW_SECS", 20).max(1)),
            warmup: Duration::from_secs(env_num("BENCH_WARMUP_SECS", 3)),
            services: (env_num("BENCH_SERVICES", 10_000) as usize).max(1),
            mem_services: env_num("BENCH_MEM_SERVICES", 100_000) as usize,
            slots: (env_num("BENCH_SLOTS", 16 * cpus as u64) as usize).max(1),
            cpus,
            shell: env_num("BENCH_SHELL", 1) != 0,
            broker: env_num("BENCH_BROKER", 1) != 0,
            only: std::env::var("BENCH_ONLY")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

// ---------------------------------------------------------------------------------------------
// The trivial plugin

struct Plugin {
    /// For the table.
    label: String,
    program: PathBuf,
    args: Vec<String>,
    /// The `command_line` of the `check_dummy` command in the generated objects (`$ARG1$` is 0).
    command_line: String,
}

fn check_dummy() -> Plugin {
    Plugin {
        label: "check_dummy 0 ok".into(),
        program: Path::new(PLUGINS).join("check_dummy"),
        args: vec!["0".into(), "ok".into()],
        command_line: "$USER1$/check_dummy $ARG1$ ok".into(),
    }
}

fn shell_plugin(dir: &Path) -> Plugin {
    let path = dir.join("trivial.sh");
    std::fs::write(&path, "#!/bin/sh\necho OK\n").expect("write the shell plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod the shell plugin");
    Plugin {
        label: "sh: echo OK".into(),
        program: path.clone(),
        args: Vec::new(),
        command_line: path.display().to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Processes: guards, /proc

/// A child process stopped (SIGTERM, then SIGKILL after 10 s) and reaped when dropped.
struct Guard {
    name: String,
    child: Child,
    done: bool,
}

impl Guard {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Guard {
        let out = std::fs::File::create(log).expect("create a log file");
        let err = out.try_clone().expect("clone a log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Guard {
            name: name.to_string(),
            child,
            done: false,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (reaping it), with its status.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.done = true;
                Some(s)
            }
            _ => None,
        }
    }

    fn stop(&mut self) {
        if self.done {
            return;
        }
        // SAFETY: our own un-reaped child: the pid cannot have been reused.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: {} ignored SIGTERM for 10 s: killed", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// (ppid, utime+stime, cutime+cstime) in clock ticks.
fn proc_stat(pid: u32) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Some((n(1) as u32, n(11) + n(12), n(13) + n(14)))
}

/// CPU of a process tree, in ticks: the root itself, its live descendants themselves, and every
/// reaped child of any of them (short-lived plugins end up there).
#[derive(Debug, Clone, Copy, Default)]
struct TreeCpu {
    own: u64,
    descendants: u64,
    reaped: u64,
}

fn tree_cpu(root: u32) -> TreeCpu {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some((ppid, _, _)) = proc_stat(pid)
            {
                parents.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut cpu = TreeCpu::default();
    if let Some((_, own, reaped)) = proc_stat(root) {
        cpu.own = own;
        cpu.reaped = reaped;
    }
    let mut stack: Vec<u32> = parents.get(&root).cloned().unwrap_or_default();
    while let Some(pid) = stack.pop() {
        if let Some((_, own, reaped)) = proc_stat(pid) {
            cpu.descendants += own;
            cpu.reaped += reaped;
        }
        stack.extend(parents.get(&pid).cloned().unwrap_or_default());
    }
    cpu
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
fn machine_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Machine CPU and process-tree CPU between two instants.
struct CpuWindow {
    t0: Instant,
    machine0: (u64, u64),
    trees0: Vec<(String, u32, TreeCpu)>,
}

/// Cores used over the window, per tree: (name, own, descendants, reaped children).
struct CpuUse {
    machine_busy: f64,
    trees: Vec<(String, f64, f64, f64)>,
}

impl CpuWindow {
    fn start(procs: &[(&str, u32)]) -> CpuWindow {
        CpuWindow {
            t0: Instant::now(),
            machine0: machine_cpu(),
            trees0: procs.iter().map(|(n, p)| (n.to_string(), *p, tree_cpu(*p))).collect(),
        }
    }

    fn end(&self) -> CpuUse {
        let secs = self.t0.elapsed().as_secs_f64().max(1e-9);
        let (b1, t1) = machine_cpu();
        let (b0, t0) = self.machine0;
        let tck = clk_tck();
        let cores = |d: u64| d as f64 / tck / secs;
        CpuUse {
            machine_busy: (b1 - b0) as f64 / (t1 - t0).max(1) as f64,
            trees: self
                .trees0
                .iter()
                .map(|(n, p, c0)| {
                    let c1 = tree_cpu(*p);
                    (
                        n.clone(),
                        cores(c1.own.saturating_sub(c0.own)),
                        cores(c1.descendants.saturating_sub(c0.descendants)),
                        cores(c1.reaped.saturating_sub(c0.reaped)),
                    )
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generated configuration

/// Writes the objects (`hosts` x 10 services, one file per 1000 hosts), `resource.cfg` and
/// Nagios's `main.cfg` with the tuning of the benchmark. Hosts are never actively checked;
/// services are checked every `interval_length` (1 s) when `active`.
fn write_objects(dir: &Path, services: usize, plugin: &Plugin, active: bool) -> PathBuf {
    let hosts = services.div_ceil(10);
    let objects = dir.join("objects");
    std::fs::create_dir_all(&objects).expect("objects dir");
    let mut c = String::new();
    let _ = write!(
        c,
        "define command {{\n    command_name check_dummy\n    command_line {}\n}}\n\n\
         define command {{\n    command_name notify-none\n    command_line /bin/true\n}}\n\n\
         define timeperiod {{\n    timeperiod_name 24x7\n    alias Always\n",
        plugin.command_line
    );
    for d in ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"] {
        let _ = writeln!(c, "    {d} 00:00-24:00");
    }
    let _ = write!(
        c,
        "}}\n\n\
         define contact {{\n    contact_name admin\n    email admin@example.com\n\
         \x20   host_notification_period 24x7\n    service_notification_period 24x7\n\
         \x20   host_notification_options n\n    service_notification_options n\n\
         \x20   host_notification_commands notify-none\n    service_notification_commands notify-none\n}}\n\n\
         define contactgroup {{\n    contactgroup_name admins\n    alias Admins\n    members admin\n}}\n\n\
         define host {{\n    name bench-host\n    register 0\n    check_command check_dummy!0\n\
         \x20   active_checks_enabled 0\n    max_check_attempts 3\n    check_interval 3600\n    retry_interval 60\n\
         \x20   check_period 24x7\n    notification_period 24x7\n    notifications_enabled 0\n\
         \x20   contact_groups admins\n}}\n\n\
         define service {{\n    name bench-service\n    register 0\n    check_command check_dummy!0\n\
         \x20   active_checks_enabled {}\n    max_check_attempts 3\n    check_interval 1\n    retry_interval 1\n\
         \x20   check_period 24x7\n    notification_period 24x7\n    notifications_enabled 0\n\
         \x20   contact_groups admins\n}}\n",
        u8::from(active)
    );
    std::fs::write(objects.join("common.cfg"), c).expect("write common.cfg");
    let mut left = services;
    for chunk in 0..hosts.div_ceil(1000) {
        let mut f = String::new();
        for h in chunk * 1000..((chunk + 1) * 1000).min(hosts) {
            let _ = write!(
                f,
                "define host {{\n    use bench-host\n    host_name host-{h:06}\n    address 10.{}.{}.{}\n}}\n\n",
                h >> 16 & 255,
                h >> 8 & 255,
                h & 255
            );
            for k in 0..10.min(left) {
                let _ = write!(
                    f,
                    "define service {{\n    use bench-service\n    host_name host-{h:06}\n    service_description svc-{k}\n}}\n\n"
                );
            }
            left = left.saturating_sub(10);
        }
        std::fs::write(objects.join(format!("hosts-{chunk:03}.cfg")), f).expect("write hosts");
    }
    std::fs::write(dir.join("resource.cfg"), format!("$USER1$={PLUGINS}\n")).expect("write resource.cfg");
    let main = nagios::write_main_cfg(dir, "objects").expect("write main.cfg");
    let mut text = std::fs::read_to_string(&main).expect("read main.cfg");
    let _ = write!(
        text,
        "interval_length=1\n\
         max_concurrent_checks=0\n\
         check_result_reaper_frequency=1\n\
         max_check_result_reaper_time=30\n\
         service_inter_check_delay_method=n\n\
         max_service_check_spread=1\n\
         use_large_installation_tweaks=1\n\
         enable_environment_macros=0\n\
         process_performance_data=1\n\
         service_perfdata_file={}\n\
         service_perfdata_file_template=$TIMET$\n\
         service_perfdata_file_mode=a\n\
         service_perfdata_file_processing_interval=0\n",
        dir.join("perf.dat").display()
    );
    std::fs::write(&main, text).expect("write main.cfg");
    main
}

/// A port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Ports {
    scheduler: u16,
    poller: u16,
    broker: u16,
}

/// `shinken.cfg`: Nagios's `main.cfg` plus the daemons; and the token file (mode 0600).
fn write_shinken_cfg(dir: &Path, main: &Path, ports: &Ports, opts: &Opts) -> (PathBuf, Token) {
    let daemons = format!(
        "define scheduler {{\n    scheduler_name {SCHEDULER}\n    address 127.0.0.1\n    port {}\n}}\n\n\
         define poller {{\n    poller_name {POLLER}\n    address 127.0.0.1\n    port {}\n\
         \x20   min_workers {}\n    max_workers {}\n    processes_by_worker 1\n}}\n\n\
         define broker {{\n    broker_name {BROKER}\n    address 127.0.0.1\n    port {}\n}}\n",
        ports.scheduler, ports.poller, opts.slots, opts.slots, ports.broker
    );
    std::fs::write(dir.join("daemons.cfg"), daemons).expect("write daemons.cfg");
    let mut text = std::fs::read_to_string(main).expect("read main.cfg");
    text.push_str("cfg_file=daemons.cfg\n");
    let path = dir.join("shinken.cfg");
    std::fs::write(&path, text).expect("write shinken.cfg");
    let token = ensure_token(&dir.join("shinken.token")).expect("token file");
    (path, token)
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/// A plain `GET` of an open endpoint: (status code, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the daemon answers `/health`; `None` when it exited first (its status).
fn wait_healthy(g: &mut Guard, port: u16, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = g.exited() {
            return Err(format!("{} exited ({s})", g.name));
        }
        if matches!(http_get(port, "/health"), Some((200, _))) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} did not answer /health within {within:?}", g.name))
}

fn post_conf(rt: &tokio::runtime::Runtime, port: u16, token: &Token, conf: &PutConf) -> Result<(), String> {
    let client = Client::new(
        &format!("http://127.0.0.1:{port}"),
        token.clone(),
        Duration::from_secs(5),
        Duration::from_secs(600),
    )
    .map_err(|e| e.to_string())?;
    rt.block_on(client.post::<_, serde_json::Value>("put_conf", conf, true))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// (a) Raw spawn rate

struct Rate {
    /// Completions counted inside the window.
    count: u64,
    secs: f64,
    failures: u64,
    cpu: Option<CpuUse>,
    note: String,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.count as f64 / self.secs.max(1e-9)
    }
}

fn raw_spawn(plugin: &Plugin, opts: &Opts) -> Rate {
    let start = Instant::now();
    let (ws, we) = (start + opts.warmup, start + opts.warmup + opts.window);
    let count = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..opts.slots)
        .map(|_| {
            let (program, args) = (plugin.program.clone(), plugin.args.clone());
            let (count, failures) = (count.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut buf = Vec::with_capacity(4096);
                while Instant::now() < we {
                    let child = Command::new(&program)
                        .args(&args)
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn();
                    let ok = match child {
                        Ok(mut c) => {
                            buf.clear();
                            let _ = c.stdout.take().map(|mut o| o.read_to_end(&mut buf));
                            let _ = c.stderr.take().map(|mut e| e.read_to_end(&mut buf));
                            c.wait().map(|s| s.success()).unwrap_or(false)
                        }
                        Err(_) => false,
                    };
                    let now = Instant::now();
                    if now >= ws && now < we {
                        if ok {
                            count.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(ws.saturating_duration_since(Instant::now()));
    let cpu = CpuWindow::start(&[("bench threads", std::process::id())]);
    std::thread::sleep(we.saturating_duration_since(Instant::now()));
    let cpu = cpu.end();
    for t in threads {
        let _ = t.join();
    }
    Rate {
        count: count.load(Ordering::Relaxed),
        secs: opts.window.as_secs_f64(),
        failures: failures.load(Ordering::Relaxed),
        cpu: Some(cpu),
        note: format!("{} threads", opts.slots),
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Nagios 4

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Sleeps until the Unix time `t`.
fn sleep_until_unix(t: f64) {
    let d = t - unix_now();
    if d > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(d));
    }
}

fn run_nagios(plugin: &Plugin, opts: &Opts) -> Result<Rate, String> {
    let dir = TempDir::new("bench-engine-nagios").map_err(|e| e.to_string())?;
    let main = write_objects(dir.path(), opts.services, plugin, true);
    let v = nagios::verify(&main).map_err(|e| e.to_string())?;
    if !v.success || v.count("services") != opts.services as u64 {
        return Err(format!("nagios4 -v refused the configuration:\n{}", v.output));
    }
    let log = dir.path().join("nagios.out");
    let mut g = Guard::spawn("nagios4", Command::new(nagios::binary()).arg(&main), &log);
    // Started when the status file appears (written once the event loop runs).
    let status = dir.path().join("var/status.dat");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !status.exists() {
        if let Some(s) = g.exited() {
            return Err(format!("nagios4 exited ({s}):\n{}", log_tail(&log)));
        }
        if Instant::now() > deadline {
            return Err("nagios4 wrote no status.dat within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The window is whole seconds, the unit of $TIMET$.
    let ws = (unix_now() + opts.warmup.as_secs_f64()).ceil();
    let we = ws + opts.window.as_secs_f64();
    sleep_until_unix(ws);
    let cpu = CpuWindow::start(&[("nagios4", g.pid())]);
    sleep_until_unix(we);
    let cpu = cpu.end();
    // Results of the window's last second are written within it; give stragglers a second.
    sleep_until_unix(we + 1.0);
    let rss = rss_kib(g.pid());
    g.stop();
    let perf = std::fs::read_to_string(dir.path().join("perf.dat")).map_err(|e| format!("no perfdata file: {e}"))?;
    let (ws, we) = (ws as u64, we as u64);
    let mut count = 0;
    let mut total = 0;
    for l in perf.lines() {
        if let Ok(t) = l.trim().parse::<u64>() {
            total += 1;
            if t >= ws && t < we {
                count += 1;
            }
        }
    }
    Ok(Rate {
        count,
        secs: (we - ws) as f64,
        failures: 0,
        cpu: Some(cpu),
        note: format!("{total} results in all, RSS {rss} KiB"),
    })
}

// ---------------------------------------------------------------------------------------------
// Ours

/// A scheduler (and satellites) started on a generated tree, configured as the arbiter does.
/// Fields drop in order: the daemons stop (a scheduler writes its retention file as it stops)
/// before the directory is removed.
struct Cluster {
    ports: Ports,
    scheduler: Guard,
    satellites: Vec<(Guard, u16)>,
    logs: PathBuf,
    _dir: TempDir,
}

fn start_daemon(role: &str, name: &str, cfg: &Path, log: &Path) -> Guard {
    let mut cmd = Command::new(SHINKEN);
    cmd.args([role, "--config"]).arg(cfg).args(["--name", name]);
    Guard::spawn(&format!("shinken {role}"), &mut cmd, log)
}

/// Whether `shinken <role>` exists in this build (an unknown command exits 2 at once).
fn has_subcommand(role: &str) -> bool {
    Command::new(SHINKEN)
        .arg(role)
        .stdin(Stdio::null())
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stderr).contains("unknown command"))
        .unwrap_or(false)
}

/// Starts the scheduler (and, with `satellites`, the poller and maybe the broker), loads the
/// configuration in-process and gives every daemon its part. Returns the cluster and how long
/// the scheduler took to load its part.
fn start_cluster(services: usize, plugin: &Plugin, active: bool, satellites: &[&str], opts: &Opts) -> Result<(Cluster, Duration), String> {
    let dir = TempDir::new("bench-engine-shinken").map_err(|e| e.to_string())?;
    let main = write_objects(dir.path(), services, plugin, active);
    let ports = Ports {
        scheduler: free_port(),
        poller: free_port(),
        broker: free_port(),
    };
    let (cfg_path, token) = write_shinken_cfg(dir.path(), &main, &ports, opts);
    let logs = dir.path().to_path_buf();
    let mut scheduler = start_daemon("scheduler", SCHEDULER, &cfg_path, &logs.join("scheduler.log"));
    let mut started = Vec::new();
    for &role in satellites {
        let (name, port) = match role {
            "poller" => (POLLER, ports.poller),
            _ => (BROKER, ports.broker),
        };
        started.push((start_daemon(role, name, &cfg_path, &logs.join(format!("{role}.log"))), port));
    }
    wait_healthy(&mut scheduler, ports.scheduler, Duration::from_secs(60))
        .map_err(|e| format!("{e}\n{}", log_tail(&logs.join("scheduler.log"))))?;
    for (g, port) in &mut started {
        let name = g.name.clone();
        wait_healthy(g, *port, Duration::from_secs(60)).map_err(|e| format!("{e}\n{}", log_tail(&logs.join(format!("{name}.log")))))?;
    }

    // What the arbiter does: load, cut, write the part, push it.
    let cfg = shinken_config::load(&cfg_path).map_err(|e| format!("cannot load {}: {e}", cfg_path.display()))?;
    if cfg.has_errors() {
        let errors = cfg.diag.reports(shinken_config::diag::Severity::Error, &cfg.sources);
        let first: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
        return Err(format!("the configuration has errors: {}", first.join("; ")));
    }
    let parts = shinken::arbiter::cut_config(&cfg).map_err(|e| e.to_string())?;
    let part = parts.iter().find(|p| p.scheduler == SCHEDULER).ok_or("no part for the scheduler")?;
    let text = shinken::arbiter::part_cfg::part_cfg(&cfg, part);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    post_conf(
        &rt,
        ports.scheduler,
        &token,
        &PutConf::Scheduler(SchedulerConf {
            scheduler_name: SCHEDULER.into(),
            part_id: part.id as u32,
            epoch: 1,
            realm: part.realm.clone(),
            cfg: text,
            arbiter: "bench".into(),
        }),
    )
    .map_err(|e| format!("put_conf to the scheduler: {e}"))?;
    let load_time = t.elapsed();
    let topo = &cfg.topology;
    let sched_def = topo.find(SCHEDULER).ok_or("no scheduler definition")?;
    for (g, port) in &started {
        let name = if *port == ports.poller { POLLER } else { BROKER };
        let def = topo.find(name).ok_or("no satellite definition")?;
        let conf = PutConf::Satellite(SatelliteConf {
            name: name.into(),
            epoch: 2,
            schedulers: vec![SchedulerLink {
                part_id: part.id as u32,
                epoch: 1,
                name: SCHEDULER.into(),
                url: format!("http://127.0.0.1:{}", ports.scheduler),
                timeout: sched_def.timeout,
                data_timeout: sched_def.data_timeout,
            }],
            tags: def.tags.clone(),
            polling_interval: def.polling_interval,
            max_workers: def.max_workers,
            processes_by_worker: def.processes_by_worker,
            results_batch: def.results_batch,
            max_plugins_output_length: def.max_plugins_output_length.unwrap_or(8192),
            arbiter: "bench".into(),
        });
        post_conf(&rt, *port, &token, &conf).map_err(|e| format!("put_conf to {}: {e}", g.name))?;
    }
    Ok((
        Cluster {
            ports,
            scheduler,
            satellites: started,
            logs,
            _dir: dir,
        },
        load_time,
    ))
}

fn run_shinken(plugin: &Plugin, opts: &Opts, satellites: &[&str]) -> Result<Rate, String> {
    let (mut c, _) = start_cluster(opts.services, plugin, true, satellites, opts)?;
    let results = |c: &Cluster| metric(c.ports.scheduler, "shinken_scheduler_results_total");
    std::thread::sleep(opts.warmup);
    let mut procs: Vec<(&str, u32)> = vec![("scheduler", c.scheduler.pid())];
    for (g, _) in &c.satellites {
        procs.push((g.name.strip_prefix("shinken ").unwrap_or(&g.name), g.pid()));
    }
    let r0 = results(&c).ok_or("no results counter in the scheduler's /metrics")?;
    let cpu = CpuWindow::start(&procs);
    std::thread::sleep(opts.window);
    let r1 = results(&c).ok_or("no results counter in the scheduler's /metrics")?;
    let secs = cpu.t0.elapsed().as_secs_f64();
    let cpu = cpu.end();
    let in_flight = metric(c.ports.scheduler, "shinken_scheduler_checks_in_flight").unwrap_or(0.0);
    let rss = rss_kib(c.scheduler.pid());
    for (g, _) in &mut c.satellites {
        if let Some(s) = g.exited() {
            return Err(format!("{} exited during the run ({s})", g.name));
        }
    }
    if let Some(s) = c.scheduler.exited() {
        return Err(format!(
            "the scheduler exited during the run ({s})\n{}",
            log_tail(&c.logs.join("scheduler.log"))
        ));
    }
    let count = (r1 - r0).max(0.0) as u64;
    if count == 0 {
        eprintln!("no results: scheduler log tail:\n{}", log_tail(&c.logs.join("scheduler.log")));
        for (g, _) in &c.satellites {
            let role = g.name.strip_prefix("shinken ").unwrap_or(&g.name);
            eprintln!("{role} log tail:\n{}", log_tail(&c.logs.join(format!("{role}.log"))));
        }
    }
    Ok(Rate {
        count,
        secs,
        failures: 0,
        cpu: Some(cpu),
        note: format!("{in_flight} in flight at the end, scheduler RSS {rss} KiB"),
    })
}

// ---------------------------------------------------------------------------------------------
// Memory

struct Memory {
    services: usize,
    idle_kib: u64,
    loaded_kib: u64,
    load_time: Duration,
    /// Size of the JSON `put_conf` body.
    body_bytes: usize,
}

impl Memory {
    fn per_service(&self) -> f64 {
        self.loaded_kib.saturating_sub(self.idle_kib) as f64 * 1024.0 / self.services as f64
    }
}

/// Why the memory part failed, with the size of the `put_conf` body when it got that far.
struct MemError {
    reason: String,
    body_bytes: Option<usize>,
}

impl From<String> for MemError {
    fn from(reason: String) -> MemError {
        MemError { reason, body_bytes: None }
    }
}

impl From<&str> for MemError {
    fn from(reason: &str) -> MemError {
        MemError::from(reason.to_string())
    }
}

fn scheduler_memory(opts: &Opts, services: usize) -> Result<Memory, MemError> {
    // The idle figure is the same process's, read before its part arrives.
    let plugin = check_dummy();
    let dir = TempDir::new("bench-engine-mem").map_err(|e| e.to_string())?;
    let main = write_objects(dir.path(), services, &plugin, false);
    let ports = Ports {
        scheduler: free_port(),
        poller: free_port(),
        broker: free_port(),
    };
    let (cfg_path, token) = write_shinken_cfg(dir.path(), &main, &ports, opts);
    let log = dir.path().join("scheduler.log");
    let mut g = start_daemon("scheduler", SCHEDULER, &cfg_path, &log);
    wait_healthy(&mut g, ports.scheduler, Duration::from_secs(120)).map_err(|e| format!("{e}\n{}", log_tail(&log)))?;
    std::thread::sleep(Duration::from_millis(500));
    let idle_kib = rss_kib(g.pid());
    let cfg = shinken_config::load(&cfg_path).map_err(|e| e.to_string())?;
    let parts = shinken::arbiter::cut_config(&cfg).map_err(|e| e.to_string())?;
    let part = parts.iter().find(|p| p.scheduler == SCHEDULER).ok_or("no part for the scheduler")?;
    let text = shinken::arbiter::part_cfg::part_cfg(&cfg, part);
    let part = part.clone();
    drop(cfg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let conf = PutConf::Scheduler(SchedulerConf {
        scheduler_name: SCHEDULER.into(),
        part_id: part.id as u32,
        epoch: 1,
        realm: part.realm.clone(),
        cfg: text,
        arbiter: "bench".into(),
    });
    let body_bytes = serde_json::to_vec(&conf).map(|v| v.len()).unwrap_or(0);
    let t = Instant::now();
    post_conf(&rt, ports.scheduler, &token, &conf).map_err(|e| MemError {
        reason: format!("put_conf of a {body_bytes}-byte body: {e}"),
        body_bytes: Some(body_bytes),
    })?;
    let load_time = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(ports.scheduler, "shinken_scheduler_services").unwrap_or(0.0) as usize != services {
        if Instant::now() > deadline {
            return Err(format!("the scheduler does not report {services} services").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let a tick or two pass (the engine's own housekeeping) before reading.
    std::thread::sleep(Duration::from_secs(2));
    let loaded_kib = rss_kib(g.pid());
    g.stop();
    Ok(Memory {
        services,
        idle_kib,
        loaded_kib,
        load_time,
        body_bytes,
    })
}

/// Nagios 4's main process RSS once running with `services` (active checks off).
fn nagios_rss(services: usize) -> Result<(u64, Duration), String> {
    let dir = TempDir::new("bench-engine-nagios-mem").map_err(|e| e.to_string())?;
    let main = write_objects(dir.path(), services, &check_dummy(), false);
    let log = dir.path().join("nagios.out");
    let t = Instant::now();
    let mut g = Guard::spawn("nagios4", Command::new(nagios::binary()).arg(&main), &log);
    let status = dir.path().join("var/status.dat");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !status.exists() {
        if let Some(s) = g.exited() {
            return Err(format!("nagios4 exited ({s}):\n{}", log_tail(&log)));
        }
        if Instant::now() > deadline {
            return Err("nagios4 wrote no status.dat within 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(g.pid());
    g.stop();
    Ok((rss, started))
}

// ---------------------------------------------------------------------------------------------
// Report

/// `/proc/loadavg`'s three averages: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn nofile() -> (String, String) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is valid for writes.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    let f = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    (f(r.rlim_cur), f(r.rlim_max))
}

struct PluginRun {
    label: String,
    raw: Option<Rate>,
    nagios: Result<Rate, String>,
    ours: Result<Rate, String>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

fn print_cpu(who: &str, cpu: &Option<CpuUse>) {
    let Some(c) = cpu else { return };
    let mut line = format!("    {who:<24} machine busy {:>5.1}%", c.machine_busy * 100.0);
    let mut ours = 0.0;
    for (n, own, desc, reaped) in &c.trees {
        let _ = write!(line, " | {n}: {own:.2} cores");
        if *desc > 0.005 {
            let _ = write!(line, " + workers {desc:.2}");
        }
        if *reaped > 0.005 {
            let _ = write!(line, " + reaped children {reaped:.2}");
        }
        ours += own + desc + reaped;
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let _ = write!(line, " | everything else {:.2}", (c.machine_busy * cpus - ours).max(0.0));
    println!("{line}");
}

fn main() {
    let opts = Opts::from_env();
    let (soft, hard) = nofile();
    println!("shinken: {SHINKEN}");
    println!("nagios:  {}", nagios::binary().display());
    println!(
        "ulimit -n {soft} (hard {hard}); {} CPUs; concurrency {} slots (raw threads; poller max_workers {} x processes_by_worker 1); \
         window {} s after {} s warm-up; {} services",
        opts.cpus,
        opts.slots,
        opts.slots,
        opts.window.as_secs(),
        opts.warmup.as_secs(),
        opts.services
    );

    println!("load average at start: {}", loadavg());
    let poller = has_subcommand("poller");
    let broker = opts.broker && has_subcommand("broker");
    let mut satellites = Vec::new();
    if poller {
        satellites.push("poller");
    }
    if broker {
        satellites.push("broker");
    }
    println!(
        "daemons: scheduler{}{}",
        if poller {
            " + poller"
        } else {
            " (no `shinken poller` in this build)"
        },
        if broker { " + broker" } else { " (no broker)" }
    );

    let shell_dir = TempDir::new("bench-engine-plugin").expect("temp dir");
    let mut plugins = vec![check_dummy()];
    if opts.shell {
        plugins.push(shell_plugin(shell_dir.path()));
    }
    let mut runs = Vec::new();
    for plugin in &plugins {
        let raw = opts.wants("raw").then(|| {
            eprintln!("[{}] raw spawn rate...", plugin.label);
            raw_spawn(plugin, &opts)
        });
        let nagios = if opts.wants("nagios") {
            eprintln!("[{}] nagios4...", plugin.label);
            run_nagios(plugin, &opts)
        } else {
            Err("skipped".into())
        };
        let ours = if !opts.wants("shinken") {
            Err("skipped".into())
        } else if !poller {
            Err("no `shinken poller` subcommand yet".into())
        } else {
            eprintln!("[{}] shinken scheduler + {}...", plugin.label, satellites.join(" + "));
            run_shinken(plugin, &opts, &satellites)
        };
        runs.push(PluginRun {
            label: plugin.label.clone(),
            raw,
            nagios,
            ours,
        });
    }

    let memory = (opts.wants("memory") && opts.mem_services > 0).then(|| {
        eprintln!("memory: scheduler with {} services...", opts.mem_services);
        let mut ours = vec![(opts.mem_services, scheduler_memory(&opts, opts.mem_services))];
        // A part past the API's body limit is refused (413): measure the largest that fits too,
        // so there is a figure per service, and say so.
        if let Err(MemError {
            body_bytes: Some(bytes), ..
        }) = &ours[0].1
            && *bytes as u64 > shinken::protocol::DEFAULT_BODY_LIMIT
        {
            let per = *bytes as f64 / opts.mem_services as f64;
            let fit = (shinken::protocol::DEFAULT_BODY_LIMIT as f64 * 0.9 / per) as usize / 1000 * 1000;
            if fit > 0 {
                eprintln!("memory: scheduler with {fit} services (the largest part under the body limit)...");
                ours.push((fit, scheduler_memory(&opts, fit)));
            }
        }
        eprintln!("memory: nagios4 with {} services and with 1...", opts.mem_services);
        let big = nagios_rss(opts.mem_services);
        let small = nagios_rss(1);
        (ours, big, small)
    });

    println!();
    println!("{:<18} | {:<26} | {:>10} | {:>9} | notes", "plugin", "measure", "checks/s", "count");
    println!("{}", "-".repeat(110));
    for r in &runs {
        let raw = r.raw.as_ref().map(Rate::per_sec);
        let nag = r.nagios.as_ref().ok().map(Rate::per_sec);
        let ours = r.ours.as_ref().ok().map(Rate::per_sec);
        let row = |what: &str, rate: Result<&Rate, &str>| match rate {
            Ok(x) => {
                let fail = if x.failures > 0 {
                    format!(", {} failed", x.failures)
                } else {
                    String::new()
                };
                println!(
                    "{:<18} | {what:<26} | {:>10.0} | {:>9} | {}{fail}",
                    r.label,
                    x.per_sec(),
                    x.count,
                    x.note
                );
            }
            Err(e) => println!(
                "{:<18} | {what:<26} | {:>10} | {:>9} | {}",
                r.label,
                "-",
                "-",
                e.lines().next().unwrap_or("")
            ),
        };
        row("(a) raw spawn+reap", r.raw.as_ref().ok_or("skipped"));
        row("(b) nagios4", r.nagios.as_ref().map_err(String::as_str));
        row("ours (sched+poller)", r.ours.as_ref().map_err(String::as_str));
        println!(
            "{:<18} | {:<26} | {:>10} |           | target >= 0.80",
            r.label,
            "ratio ours / raw",
            ratio(ours, raw)
        );
        println!(
            "{:<18} | {:<26} | {:>10} |           | target >= 1.5",
            r.label,
            "ratio ours / nagios4",
            ratio(ours, nag)
        );
        println!(
            "{:<18} | {:<26} | {:>10} |           | (issue: about 0.5)",
            r.label,
            "ratio nagios4 / raw",
            ratio(nag, raw)
        );
    }
    if let Some((ours, big, small)) = &memory {
        for (services, r) in ours {
            match r {
                Ok(m) => println!(
                    "{:<18} | {:<26} | {:>10.0} |           | B/service (target <= 1024): RSS {} KiB idle -> {} KiB with {} services \
                     ({:.0} B/service all-in); put_conf body {:.1} MiB, loaded in {:.1} s",
                    "memory",
                    "ours scheduler",
                    m.per_service(),
                    m.idle_kib,
                    m.loaded_kib,
                    m.services,
                    m.loaded_kib as f64 * 1024.0 / m.services as f64,
                    m.body_bytes as f64 / 1048576.0,
                    m.load_time.as_secs_f64()
                ),
                Err(e) => println!(
                    "{:<18} | {:<26} | {:>10} |           | {services} services: {}",
                    "memory",
                    "ours scheduler",
                    "-",
                    e.reason.lines().next().unwrap_or("")
                ),
            }
        }
        match (big, small) {
            (Ok((b, t)), Ok((s, _))) => println!(
                "{:<18} | {:<26} | {:>10.0} |           | B/service: nagios4 RSS {s} KiB with 1 service -> {b} KiB with {} (started in {:.1} s)",
                "memory",
                "nagios4",
                b.saturating_sub(*s) as f64 * 1024.0 / opts.mem_services as f64,
                opts.mem_services,
                t.as_secs_f64()
            ),
            (Err(e), _) | (_, Err(e)) => println!("{:<18} | {:<26} | {:>10} |           | {}", "memory", "nagios4", "-", e),
        }
    }
    println!("\nCPU over each window (cores; 'reaped children' = plugins and workers reaped by the tree):");
    for r in &runs {
        if let Some(x) = &r.raw {
            print_cpu(&format!("{} raw", r.label), &x.cpu);
        }
        if let Ok(x) = &r.nagios {
            print_cpu(&format!("{} nagios4", r.label), &x.cpu);
        }
        if let Ok(x) = &r.ours {
            print_cpu(&format!("{} ours", r.label), &x.cpu);
        }
    }
    println!("load average at end: {}", loadavg());
    println!("\none run per configuration, counted over a fixed window after the warm-up; no assertion on time.");
}
