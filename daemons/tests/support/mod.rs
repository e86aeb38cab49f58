//! The HA course (`shared/corpus/course4-etc`) as running processes, for `tests/ha_course.rs` and
//! `benches/failover.rs` (included there by path).
//!
//! [`Course::start`] copies the course tree twice (box A's `/etc/shinken` and box B's, as the
//! course copies it with `scp`), rewrites the copies for a test run (see [`rewrite`]), starts the
//! MongoDB stand-in on 127.0.0.4 and every daemon as its own process: box A's (every master,
//! 127.0.0.2) in one process group, box B's (every spare, 127.0.0.3) in another, so that a box
//! dies at once with one `kill(-pgid, SIGKILL)`. Everything is killed and reaped on drop.

#![allow(dead_code)]

use serde_json::Value;
use shinken::messages::{ArbiterStatus, CommandOutcome, ExternalCommands, Managed};
use shinken::protocol::{CallError, Client, Token};
use shinken_testkit::TempDir;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_shinken");
pub const COURSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/course4-etc");
pub const SECRET: &str = "ha-course-test-token-0123456789abcdef";
pub const BOX_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub const BOX_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
pub const MONGO_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// The course's daemons: (file under the tree, role, name once loaded, box A?).
/// The spare poller, reactionner and broker keep their master's name in the course's files;
/// the loader keeps both and renames the spare `<name>-spare`.
pub const DAEMONS: [(&str, &str, &str, bool); 12] = [
    ("arbiters/arbiter-master.cfg", "arbiter", "arbiter-master", true),
    ("arbiters/arbiter-spare.cfg", "arbiter", "arbiter-spare", false),
    ("schedulers/scheduler-master.cfg", "scheduler", "scheduler-master", true),
    ("schedulers/scheduler-spare.cfg", "scheduler", "scheduler-spare", false),
    ("pollers/poller-master.cfg", "poller", "poller-master", true),
    ("pollers/poller-spare.cfg", "poller", "poller-master-spare", false),
    ("reactionners/reactionner-master.cfg", "reactionner", "reactionner-master", true),
    (
        "reactionners/reactionner-spare.cfg",
        "reactionner",
        "reactionner-master-spare",
        false,
    ),
    ("brokers/broker-master.cfg", "broker", "broker-master", true),
    ("brokers/broker-spare.cfg", "broker", "broker-master-spare", false),
    ("receivers/receiver-master.cfg", "receiver", "receiver-master", true),
    ("receivers/receiver-spare.cfg", "receiver", "receiver-1", false),
];

/// The timings of a run.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Daemons' `check_interval` (seconds between probes).
    pub daemon_check_interval: u32,
    /// Daemons' `max_check_attempts` (failed probes before dead).
    pub daemon_max_attempts: u32,
    /// Daemons' `timeout` (seconds a probe may take).
    pub daemon_timeout: u32,
    /// `retry_interval` of courses-a/Load (WARNING, 3 attempts): how long it stays SOFT 2.
    pub warning_retry: u32,
}

impl Timings {
    /// The test's: 1 s probes, dead after 2.
    pub const TEST: Timings = Timings {
        daemon_check_interval: 1,
        daemon_max_attempts: 2,
        daemon_timeout: 1,
        warning_retry: 25,
    };
}

/// `n` ports free on `addr` right now (all held until all are found, so distinct).
pub fn free_ports(addr: Ipv4Addr, n: usize) -> Vec<u16> {
    let l: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind((addr, 0)).unwrap()).collect();
    l.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The MongoDB stand-in's binary: `$SECANTUSD`, else `secantusd-py` on PATH, else the venv's;
/// panics (the test fails) when there is none.
pub fn secantusd() -> PathBuf {
    if let Some(p) = std::env::var_os("SECANTUSD").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("secantusd-py");
            if p.is_file() {
                return p;
            }
        }
    }
    let p = PathBuf::from("/opt/shinken-venv/bin/secantusd-py");
    assert!(
        p.is_file(),
        "secantusd-py not found: set SECANTUSD, put it on PATH or install it in /opt/shinken-venv"
    );
    p
}

/// `secantusd-py` on 127.0.0.4 with its storage in the test's directory; killed on drop.
pub struct Mongo {
    pub port: u16,
    storage: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Mongo {
    pub fn start(storage: &Path, log: &Path) -> Mongo {
        let mut m = Mongo {
            port: free_ports(MONGO_ADDR, 1)[0],
            storage: storage.to_path_buf(),
            log: log.to_path_buf(),
            child: None,
        };
        m.restart();
        m
    }

    /// Starts the server (again) on the same address, port and storage; waits until it listens.
    pub fn restart(&mut self) {
        fs::create_dir_all(&self.storage).unwrap();
        let log = File::options().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(secantusd())
            .args([
                "--host",
                &MONGO_ADDR.to_string(),
                "--port",
                &self.port.to_string(),
                "--storage-path",
            ])
            .arg(&self.storage)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start secantusd-py");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect((MONGO_ADDR, self.port)).is_err() {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("secantusd-py exited ({st}):\n{}", fs::read_to_string(&self.log).unwrap_or_default());
            }
            assert!(start.elapsed() < Duration::from_secs(60), "secantusd-py does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://{MONGO_ADDR}:{}/?directConnection=true", self.port)
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The processes of one box, in one process group (created by the first one started).
pub struct Group {
    pgid: Option<i32>,
    children: Vec<(String, Child)>,
}

impl Group {
    fn new() -> Group {
        Group {
            pgid: None,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, role: &str, name: &str, main: &Path, log: &Path) {
        let file = File::options().create(true).append(true).open(log).unwrap();
        let child = Command::new(BIN)
            .args([role, "--config"])
            .arg(main)
            .args(["--name", name])
            .env("SHINKEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .process_group(self.pgid.unwrap_or(0))
            .spawn()
            .unwrap_or_else(|e| panic!("start {role} {name}: {e}"));
        self.pgid.get_or_insert(child.id() as i32);
        self.children.push((name.to_string(), child));
    }

    /// SIGKILL to the whole group at once (one system call), then reaps. Returns the time the
    /// signal was sent.
    pub fn kill_all(&mut self) -> SystemTime {
        let t = SystemTime::now();
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: the process group this test created, nothing else.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        for (_, c) in self.children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        t
    }

    /// SIGKILL to one process of the group.
    pub fn kill_one(&mut self, name: &str) -> SystemTime {
        let t = SystemTime::now();
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
        t
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// One host or service as a scheduler reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub state: String,
    pub state_type: String,
    pub attempt: u64,
    pub max_attempts: u64,
    pub acknowledged: bool,
    pub in_downtime: bool,
    pub last_check: Option<f64>,
}

impl Item {
    pub fn brief(&self) -> String {
        format!(
            "{} {} {}/{}{}{} last_check={:?}",
            self.state,
            self.state_type,
            self.attempt,
            self.max_attempts,
            if self.acknowledged { " ACK" } else { "" },
            if self.in_downtime { " DOWNTIME" } else { "" },
            self.last_check
        )
    }
}

/// A scheduler's `/v1/status`, by item key (`host` or `host/service`), taken at `at`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: SystemTime,
    pub part_id: Option<u64>,
    pub epoch: u64,
    pub items: BTreeMap<String, Item>,
}

impl Snapshot {
    pub fn parse(v: &Value, at: SystemTime) -> Snapshot {
        let mut items = BTreeMap::new();
        for list in ["hosts", "services"] {
            for i in v[list].as_array().into_iter().flatten() {
                let mut key = i["host_name"].as_str().unwrap_or_default().to_string();
                if let Some(d) = i["service_description"].as_str() {
                    key = format!("{key}/{d}");
                }
                items.insert(
                    key,
                    Item {
                        state: i["state"].as_str().unwrap_or_default().into(),
                        state_type: i["state_type"].as_str().unwrap_or_default().into(),
                        attempt: i["attempt"].as_u64().unwrap_or(0),
                        max_attempts: i["max_check_attempts"].as_u64().unwrap_or(0),
                        acknowledged: i["acknowledged"].as_bool().unwrap_or(false),
                        in_downtime: i["in_downtime"].as_bool().unwrap_or(false),
                        last_check: i["last_check"].as_f64(),
                    },
                );
            }
        }
        Snapshot {
            at,
            part_id: v["part_id"].as_u64(),
            epoch: v["epoch"].as_u64().unwrap_or(0),
            items,
        }
    }

    pub fn item(&self, key: &str) -> Option<&Item> {
        self.items.get(key)
    }

    pub fn max_last_check(&self) -> f64 {
        self.items.values().filter_map(|i| i.last_check).fold(0.0, f64::max)
    }

    pub fn pending(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|(_, i)| i.state == "PENDING" || i.last_check.is_none())
            .map(|(k, _)| k.as_str())
            .collect()
    }

    pub fn table(&self) -> String {
        self.items.iter().map(|(k, i)| format!("  {k}: {}\n", i.brief())).collect()
    }
}

/// What a takeover kept, compared against the master's history before the kill.
///
/// The rule, per host and service present in the last snapshot taken at least `grace` before
/// the kill (`base`):
/// - the spare has it, not PENDING, with a last check;
/// - `acknowledged` and `in_downtime` equal to the master's last snapshot before the kill;
/// - (state, state_type, attempt) equal to one the master showed between `base` and its last
///   snapshot, with a last_check no older than that one's (the same result, or a later result
///   with the same state: a HARD state or an OK re-checked);
/// - or one more result than the master's last snapshot: same state, attempt + 1, later
///   last_check, SOFT (or HARD when attempt + 1 reaches max_check_attempts).
///
/// Anything else is a loss (a state change older than `grace` missing, or a state from nowhere).
pub fn compare(history: &[Snapshot], killed: SystemTime, grace: Duration, spare: &Snapshot) -> Vec<String> {
    let before: Vec<&Snapshot> = history.iter().filter(|s| s.at <= killed).collect();
    let Some(last) = before.last() else {
        return vec!["no snapshot of the master before the kill".into()];
    };
    let Some(base_i) = before.iter().rposition(|s| s.at + grace <= killed) else {
        return vec![format!("no snapshot of the master {grace:?} before the kill")];
    };
    let base = before[base_i];
    let window = &before[base_i..];
    let mut problems = Vec::new();
    for (key, b) in &base.items {
        let Some(s) = spare.item(key) else {
            problems.push(format!("{key}: missing on the spare"));
            continue;
        };
        if s.state == "PENDING" || s.last_check.is_none() {
            problems.push(format!("{key}: PENDING on the spare ({}), was {}", s.brief(), b.brief()));
            continue;
        }
        let l = last.item(key).unwrap_or(b);
        if (s.acknowledged, s.in_downtime) != (l.acknowledged, l.in_downtime) {
            problems.push(format!("{key}: ack/downtime lost: spare {} master {}", s.brief(), l.brief()));
            continue;
        }
        let lc = s.last_check.unwrap_or(0.0);
        let seen = window.iter().filter_map(|w| w.item(key)).any(|w| {
            (&w.state, &w.state_type, w.attempt) == (&s.state, &s.state_type, s.attempt) && lc + 1e-3 >= w.last_check.unwrap_or(0.0)
        });
        let next = s.state == l.state
            && s.attempt == l.attempt + 1
            && lc > l.last_check.unwrap_or(0.0)
            && (s.state_type == "SOFT" || (s.state_type == "HARD" && s.attempt >= s.max_attempts));
        if !(seen || next) {
            problems.push(format!(
                "{key}: spare {} matches nothing the master showed from {:.1} s before the kill (then {}, last {})",
                s.brief(),
                killed.duration_since(base.at).unwrap_or_default().as_secs_f64(),
                b.brief(),
                l.brief()
            ));
        }
    }
    problems
}

/// A running course: two boxes, the MongoDB stand-in, clients.
pub struct Course {
    pub tmp: TempDir,
    pub etc_a: PathBuf,
    pub etc_b: PathBuf,
    pub logs: PathBuf,
    /// Name -> (role, address, port, box A?).
    pub daemons: BTreeMap<String, (String, Ipv4Addr, u16, bool)>,
    pub mongo: Mongo,
    pub box_a: Group,
    pub box_b: Group,
    pub rt: tokio::runtime::Runtime,
    pub timings: Timings,
}

/// Rewrites one file of the course tree for a run (the course's text otherwise kept):
/// - daemons: `port` -> a free port on the daemon's own address (kept); probes `check_interval`,
///   `max_check_attempts`, `timeout` -> the run's (added to the arbiters, which have none);
/// - the MongoDB uri -> the stand-in on 127.0.0.4:<port>, directConnection;
/// - the named pipe and the notification log -> the test's directory;
/// - plugins made deterministic (`check_dummy`, keeping each command's name and arguments):
///   host alive -> UP, tcp ports -> OK, root disk -> CRITICAL, load -> WARNING;
/// - hosts and services checked every second (`interval_length=1`), retried every second,
///   except courses-a/Load (retry `warning_retry`, so that it sits at WARNING SOFT 2).
pub fn rewrite(rel: &str, text: &str, port: Option<u16>, t: &Timings, mongo_uri: &str, dir: &Path) -> String {
    let mut out = String::new();
    if rel == "shinken.cfg" {
        return format!("{text}interval_length=1\n");
    }
    let is_daemon = port.is_some();
    let mut seen: Vec<&str> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let key = trimmed.split_whitespace().next().unwrap_or("");
        let indent = "    ";
        let replaced = match key {
            "port" if is_daemon => Some(format!("{indent}port  {}", port.unwrap())),
            "check_interval" if is_daemon => Some(format!("{indent}check_interval  {}", t.daemon_check_interval)),
            "max_check_attempts" if is_daemon => Some(format!("{indent}max_check_attempts  {}", t.daemon_max_attempts)),
            "timeout" if is_daemon => Some(format!("{indent}timeout  {}", t.daemon_timeout)),
            "uri" => Some(format!("{indent}uri  {mongo_uri}")),
            "command_file" => Some(format!("{indent}command_file  {}", dir.join("nagios.cmd").display())),
            "check_interval" if rel.starts_with("templates/") => Some(format!("{indent}check_interval  1")),
            "}" if is_daemon => {
                for (k, v) in [
                    ("check_interval", t.daemon_check_interval),
                    ("max_check_attempts", t.daemon_max_attempts),
                    ("timeout", t.daemon_timeout),
                ] {
                    if !seen.contains(&k) {
                        out.push_str(&format!("{indent}{k}  {v}\n"));
                    }
                }
                seen.clear();
                None
            }
            _ => None,
        };
        if is_daemon && ["check_interval", "max_check_attempts", "timeout"].contains(&key) {
            seen.push(match key {
                "check_interval" => "check_interval",
                "max_check_attempts" => "max_check_attempts",
                _ => "timeout",
            });
        }
        let mut line = replaced.unwrap_or_else(|| line.to_string());
        if rel == "commands/commands.cfg" && key == "command_line" {
            let plugins = "$USER1$/check_dummy";
            if line.contains("check_tcp -H $HOSTADDRESS$ -p $_HOSTALIVE_PORT$") {
                line = format!("{indent}command_line    {plugins} 0 \"host alive (port $_HOSTALIVE_PORT$)\"");
            } else if line.contains("check_tcp -H") {
                line = format!("{indent}command_line    {plugins} 0 \"TCP OK - port $ARG1$\"");
            } else if line.contains("check_disk") {
                line = format!("{indent}command_line    {plugins} 2 \"DISK CRITICAL - $ARG3$ is full\"");
            } else if line.contains("check_load") {
                line = format!("{indent}command_line    {plugins} 1 \"LOAD WARNING - load average over $ARG1$\"");
            } else if line.contains("/tmp/shinken-notifications.log") {
                line = line.replace(
                    "/tmp/shinken-notifications.log",
                    &dir.join("notifications.log").display().to_string(),
                );
            }
        }
        out.push_str(&line);
        out.push('\n');
        if rel == "services/services.cfg" && key == "check_command" && line.contains("check_local_load") {
            out.push_str(&format!(
                "{indent}max_check_attempts      3\n{indent}retry_interval          {}\n",
                t.warning_retry
            ));
        }
    }
    out
}

/// Copies the course tree into `etc`, rewritten.
fn write_tree(etc: &Path, ports: &BTreeMap<&str, u16>, t: &Timings, mongo_uri: &str, dir: &Path) {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                walk(root, &r, out);
            } else {
                out.push(r);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(COURSE), Path::new(""), &mut files);
    assert!(files.len() >= 20, "the course tree at {COURSE} looks incomplete: {files:?}");
    for rel in files {
        let rel_s = rel.to_str().unwrap();
        let text = fs::read_to_string(Path::new(COURSE).join(&rel)).unwrap();
        let port = ports.get(rel_s).copied();
        let text = rewrite(rel_s, &text, port, t, mongo_uri, dir);
        let dest = etc.join(&rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(dest, text).unwrap();
    }
    let token = etc.join("shinken.token");
    fs::write(&token, format!("{SECRET}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
}

/// Polls `f` every 100 ms until it gives `Some`; panics after `within` with `what` and `info()`.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>, info: impl Fn() -> String) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}\n{}",
            info()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Course {
    /// Writes both boxes' trees and starts MongoDB; no daemon yet.
    pub fn prepare(prefix: &str, timings: Timings) -> Course {
        let tmp = TempDir::new(prefix).unwrap();
        let logs = tmp.path().join("logs");
        fs::create_dir_all(&logs).unwrap();
        let mongo = Mongo::start(&tmp.path().join("mongo"), &logs.join("secantusd.log"));
        let a_ports = free_ports(BOX_A, 6);
        let b_ports = free_ports(BOX_B, 6);
        let (mut ia, mut ib) = (a_ports.into_iter(), b_ports.into_iter());
        let mut by_file = BTreeMap::new();
        let mut daemons = BTreeMap::new();
        for (file, role, name, a) in DAEMONS {
            let port = if a { ia.next() } else { ib.next() }.unwrap();
            by_file.insert(file, port);
            daemons.insert(name.to_string(), (role.to_string(), if a { BOX_A } else { BOX_B }, port, a));
        }
        let etc_a = tmp.path().join("courses-a/etc/shinken");
        let etc_b = tmp.path().join("courses-b/etc/shinken");
        write_tree(&etc_a, &by_file, &timings, &mongo.uri(), &tmp.path().join("courses-a"));
        write_tree(&etc_b, &by_file, &timings, &mongo.uri(), &tmp.path().join("courses-b"));
        Course {
            tmp,
            etc_a,
            etc_b,
            logs,
            daemons,
            mongo,
            box_a: Group::new(),
            box_b: Group::new(),
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            timings,
        }
    }

    /// Starts one daemon on its box (the box's own copy of the configuration).
    pub fn start_daemon(&mut self, name: &str) {
        let (role, _, _, a) = self.daemons[name].clone();
        let log = self.logs.join(format!("{name}.log"));
        if a {
            self.box_a.spawn(&role, name, &self.etc_a.join("shinken.cfg"), &log);
        } else {
            self.box_b.spawn(&role, name, &self.etc_b.join("shinken.cfg"), &log);
        }
    }

    /// Starts the whole course: satellites and schedulers of both boxes, then the arbiters;
    /// waits until scheduler-master holds part 0 and the spare arbiter has the master's
    /// configuration. Returns part 0's epoch.
    pub fn start(prefix: &str, timings: Timings) -> (Course, u64) {
        let mut c = Course::prepare(prefix, timings);
        let names: Vec<String> = c.daemons.iter().filter(|(_, d)| d.0 != "arbiter").map(|(n, _)| n.clone()).collect();
        for n in &names {
            c.start_daemon(n);
        }
        for n in &names {
            c.wait_health(n);
        }
        c.start_daemon("arbiter-master");
        c.start_daemon("arbiter-spare");
        let e1 = wait_for(
            Duration::from_secs(60),
            "scheduler-master to hold part 0",
            || c.managed("scheduler-master").and_then(|m| m.get(&0).copied()),
            || c.all_logs(),
        );
        wait_for(
            Duration::from_secs(30),
            "the spare arbiter to get the master's configuration",
            || {
                c.log("arbiter-spare")
                    .contains("Configuration received from arbiter arbiter-master")
                    .then_some(())
            },
            || c.all_logs(),
        );
        (c, e1)
    }

    pub fn client(&self, name: &str) -> Client {
        let (_, addr, port, _) = &self.daemons[name];
        Client::new(
            &format!("http://{addr}:{port}"),
            Token::new(SECRET).unwrap(),
            Duration::from_secs(2),
            Duration::from_secs(10),
        )
        .unwrap()
    }

    pub fn wait_health(&self, name: &str) {
        let c = self.client(name);
        wait_for(
            Duration::from_secs(30),
            &format!("{name} to answer /health"),
            || self.rt.block_on(c.health()).ok(),
            || self.log(name),
        );
    }

    pub fn managed(&self, name: &str) -> Option<Managed> {
        self.rt.block_on(self.client(name).get("what_i_managed", &[], false)).ok()
    }

    pub fn arbiter_status(&self, name: &str) -> Option<ArbiterStatus> {
        self.rt.block_on(self.client(name).get("status", &[], false)).ok()
    }

    pub fn scheduler_json(&self, name: &str) -> Option<Value> {
        self.rt.block_on(self.client(name).get("status", &[], false)).ok()
    }

    pub fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let v = self.scheduler_json(name)?;
        Some(Snapshot::parse(&v, SystemTime::now()))
    }

    pub fn external(&self, scheduler: &str, commands: Vec<String>) -> Result<Vec<CommandOutcome>, CallError> {
        self.rt.block_on(
            self.client(scheduler)
                .post("run_external_commands", &ExternalCommands { commands }, false),
        )
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The tail of every daemon's log (for failure messages).
    pub fn all_logs(&self) -> String {
        let mut s = String::new();
        for n in self.daemons.keys().map(String::as_str).chain(["secantusd"]) {
            let log = self.log(n);
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            s.push_str(&format!("----- {n} (last 25 lines)\n{tail}\n"));
        }
        s
    }

    /// Waits until the states are varied on scheduler-master: courses-b/Always critical
    /// CRITICAL HARD, courses-a/Root disk CRITICAL HARD, courses-a/Load WARNING SOFT 2, every
    /// item checked; with `ack_and_downtime`, also Root disk acknowledged and courses-a/Scheduler
    /// port in downtime (through run_external_commands). Returns the last snapshot.
    pub fn wait_varied(&self, ack_and_downtime: bool, soft2: bool) -> Snapshot {
        let crit_hard = |s: &Snapshot, k: &str| s.item(k).is_some_and(|i| i.state == "CRITICAL" && i.state_type == "HARD");
        wait_for(
            Duration::from_secs(60),
            "CRITICAL HARD services and every item checked on scheduler-master",
            || {
                self.snapshot("scheduler-master").filter(|s| {
                    s.items.len() == 9
                        && s.pending().is_empty()
                        && crit_hard(s, "courses-b/Always critical")
                        && crit_hard(s, "courses-a/Root disk")
                })
            },
            || self.all_logs(),
        );
        if ack_and_downtime {
            let ts = unix_now() as u64;
            let commands = vec![
                format!("[{ts}] ACKNOWLEDGE_SVC_PROBLEM;courses-a;Root disk;1;1;1;admin;looking at it"),
                format!(
                    "[{ts}] SCHEDULE_SVC_DOWNTIME;courses-a;Scheduler port;{ts};{};1;0;3600;admin;maintenance",
                    ts + 3600
                ),
            ];
            let out = self
                .external("scheduler-master", commands)
                .unwrap_or_else(|e| panic!("run_external_commands: {e}\n{}", self.log("scheduler-master")));
            assert!(out.iter().all(|o| o.ok), "{out:?}");
        }
        wait_for(
            Duration::from_secs(60),
            "WARNING SOFT 2 (and the acknowledgement and downtime) on scheduler-master",
            || {
                self.snapshot("scheduler-master").filter(|s| {
                    let load = s.item("courses-a/Load");
                    (!soft2 || load.is_some_and(|i| (i.state.as_str(), i.state_type.as_str(), i.attempt) == ("WARNING", "SOFT", 2)))
                        && (!ack_and_downtime
                            || (s.item("courses-a/Root disk").is_some_and(|i| i.acknowledged)
                                && s.item("courses-a/Scheduler port").is_some_and(|i| i.in_downtime)))
                })
            },
            || {
                format!(
                    "{}\n{}",
                    self.snapshot("scheduler-master").map(|s| s.table()).unwrap_or_default(),
                    self.all_logs()
                )
            },
        )
    }

    /// Snapshots of `scheduler` every 100 ms for `d`.
    pub fn record(&self, scheduler: &str, d: Duration, into: &mut Vec<Snapshot>) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if let Some(s) = self.snapshot(scheduler) {
                into.push(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `shinken_scheduler_results_total` of `scheduler` (open `/metrics`): results taken in by
    /// the part it holds (counted from 0 when the part is loaded).
    pub fn results_total(&self, scheduler: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let (_, addr, port, _) = &self.daemons[scheduler];
        let mut s = TcpStream::connect_timeout(&(*addr, *port).into(), Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("shinken_scheduler_results_total "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// After a kill at `killed`: waits for `scheduler` to hold part 0 and return its first
    /// snapshot (the states it starts from), then for its first check result (its
    /// `results_total` above 0; `last_check` has a 1 s resolution). Returns (first snapshot,
    /// time to first snapshot, time to first result).
    pub fn watch_takeover(&self, scheduler: &str, killed: SystemTime, within: Duration) -> (Snapshot, Duration, Duration) {
        let first = wait_for(
            within,
            &format!("{scheduler} to hold part 0"),
            || self.snapshot(scheduler).filter(|s| s.part_id.is_some() && !s.items.is_empty()),
            || self.all_logs(),
        );
        let t_first = first.at.duration_since(killed).unwrap_or_default();
        wait_for(
            within,
            &format!("a new check result on {scheduler}"),
            || self.results_total(scheduler).filter(|n| *n > 0),
            || self.all_logs(),
        );
        (first, t_first, killed.elapsed().unwrap_or_default())
    }
}
