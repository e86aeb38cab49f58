//! The HA course (`shared/corpus/course4-etc`) cut in two by a network partition, with real
//! processes in network namespaces that the test makes (and removes) itself.
//!
//! Topology: one namespace per machine, joined by veth "cables", each end carrying its box's
//! address as a point-to-point `/32` (`ip addr add LOCAL peer REMOTE`), so the route to a peer
//! exists only while its cable is up:
//!
//! ```text
//!                 A 10.231.N.1 ---------------- B 10.231.N.2
//!     (every master daemon)   \   (cable a-b)   /   (every spare daemon)
//!                              \               /
//!                               M 10.231.N.3     (MongoDB: secantusd-py)
//!
//!     observer 10.231.N.254 (the test process, root namespace): one cable to each of A, B, M
//! ```
//!
//! - MongoDB gets its own machine, as in the course (its own address, 192.168.56.103 there):
//!   the retention store both boxes reach, and where the arbiters keep the epoch counter.
//! - The observer's cables are never cut, so the test reads every daemon's API from its own
//!   namespace during the partition. The namespaces have no other route and no forwarding:
//!   traffic to 10.231.N.x never leaves the namespaces and cables made here. N (the third octet)
//!   is chosen per run, under a lock, among those no route of the root namespace uses, so runs
//!   in parallel do not collide; names carry the pid. Everything is removed on drop, even on
//!   panic (process groups killed, root-side cables deleted, `ip netns del`); leftovers of runs
//!   that died without unwinding (their pid is gone) are removed at the start.
//!
//! The course runs with masters on A, checks flow and their states reach MongoDB; then the
//! partition. B's spare arbiter takes the lead after its wait and gives the part to
//! scheduler-spare with a newer epoch; A's scheduler-master must stop acting on the part; once
//! the cables are back, A's arbiter leads again, adopts B's epoch and idles scheduler-master (no
//! fail-back), and every record in MongoDB still carries B's epoch. Two partitions, two
//! mechanisms of the real code ([`shinken::scheduler::fencing`], [`shinken::arbiter::ha`]):
//!
//! - `a_partition_fences_the_side_without_the_newest_epoch`: the a-b cable only. A and B lose
//!   each other and both keep MongoDB: the split-brain case epochs exist for, both sides can
//!   still write. A's arbiter-master still reaches A's scheduler-master, so that scheduler keeps
//!   hearing an arbiter and its silence timer never fires. The store stops it: once
//!   scheduler-spare holds the part it claims every record with its newer epoch;
//!   scheduler-master's next write-behind (every result is written within 500 ms) is refused as
//!   stale and it fences itself at once ("stale epoch") until an arbiter gives it a part. The
//!   test checks that this is the cause, and that A's scheduler still hears its arbiter.
//! - `box_a_cut_from_b_and_from_mongodb_fences_itself`: the a-b and a-m cables. A's writes fail
//!   rather than being refused, so the store cannot stop it. A's arbiter-master reaches neither
//!   a spare arbiter nor the epoch store: it cannot tell whether the spare leads now, so after
//!   the spare's wait it stops speaking to the daemons ([`shinken::arbiter::ha::Witness`]), and
//!   A's scheduler-master fences itself when its fencing window passes without an arbiter's
//!   call ("silence").
//!
//! The times from the partition to each step are printed (no tighter timed assertion than 3
//! fencing windows).
//!
//! The server binary of MongoDB: `$SECANTUSD`, else `secantusd-py` on PATH, else
//! `/opt/shinken-venv/bin/secantusd-py`. Without it, or without the right to make network
//! namespaces (root), the test fails: it is never skipped.

mod support;

use serde_json::Value;
use shinken::messages::{ArbiterStatus, Managed};
use shinken::protocol::{Client, Token};
use shinken::retention::{MongoStore, RetentionStore};
use shinken::scheduler::fencing::{Cause, Fencing, FencingStatus};
use shinken_testkit::TempDir;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{BIN, COURSE, DAEMONS, SECRET, Snapshot, Timings, wait_for};

/// iproute2.
const IP: &str = "/usr/sbin/ip";

/// The daemons' probes: every second, dead after 3 failures, 1 s each.
const TIMINGS: Timings = Timings {
    daemon_check_interval: 1,
    daemon_max_attempts: 3,
    daemon_timeout: 1,
    warning_retry: 25,
};

/// The spare arbiter's wait for the master (`check_interval x max_check_attempts`), seconds.
fn takeover_window() -> f64 {
    f64::from(TIMINGS.daemon_check_interval * TIMINGS.daemon_max_attempts)
}

/// A scheduler's fencing window (the takeover window plus one interval), seconds.
fn fencing_window() -> f64 {
    Fencing::window_for(TIMINGS.daemon_check_interval, TIMINGS.daemon_max_attempts)
}

// ---------------------------------------------------------------------------------------------
// The network.

/// Runs `ip ARGS`; its stderr when it fails.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new(IP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {IP}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `ip ARGS`, or the test fails with what this test needs.
fn ip_must(args: &[&str]) -> String {
    ip(args).unwrap_or_else(|e| {
        panic!("{e}\nthis test makes network namespaces and veth pairs with iproute2: it must run as root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    })
}

/// The machines of the test. The observer is the test process in the root namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    A,
    B,
    M,
    Observer,
}

impl Host {
    fn letter(self) -> char {
        match self {
            Host::A => 'a',
            Host::B => 'b',
            Host::M => 'm',
            Host::Observer => 'o',
        }
    }

    fn last_octet(self) -> u8 {
        match self {
            Host::A => 1,
            Host::B => 2,
            Host::M => 3,
            Host::Observer => 254,
        }
    }
}

/// Prefix of this test's namespaces (`<prefix><pid>-<host>`).
const NS_PREFIX: &str = "shinken-hap-";
/// Prefix of this test's directories (`<prefix>-<pid>-...`, see [`TempDir`]).
const TMP_PREFIX: &str = "shinken-ha-partition";
/// Prefix of this test's veth ends (`<prefix><pid><from><to>`: at most 11 characters).
const LINK_PREFIX: &str = "hp";

/// The namespaces, cables and addresses of one run; removed on drop.
struct Net {
    pid: u32,
    /// The third octet of this run's 10.231.N.0/24.
    octet: u8,
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name made by this test (`<prefix><pid>...`), if it is one.
fn pid_in(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes what runs that died without unwinding left behind (their pid is gone: their
/// daemons, namespaces, cables and files), and what an earlier process with this pid left.
fn sweep_leftovers() {
    let me = std::process::id();
    let stale = |pid: u32| pid == me || !pid_alive(pid);
    for line in ip(&["-o", "link", "show"]).unwrap_or_default().lines() {
        // "12: hp1234oa@if3: <...": root-side ends of observer cables.
        let Some(name) = line.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("")) else {
            continue;
        };
        if let Some(pid) = pid_in(name, LINK_PREFIX)
            && name.len() == LINK_PREFIX.len() + pid.to_string().len() + 2
            && name[..name.len() - 1].ends_with('o')
            && name.ends_with(['a', 'b', 'm'])
            && stale(pid)
        {
            let _ = ip(&["link", "del", name]);
        }
    }
    for line in ip(&["netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = pid_in(name, NS_PREFIX)
            && stale(pid)
        {
            // The daemons that run had started there, if it was killed before its drop.
            for p in ip(&["netns", "pids", name]).unwrap_or_default().split_whitespace() {
                if let Ok(p) = p.parse::<i32>() {
                    // SAFETY: a process inside a namespace this test made (named after a pid
                    // that is gone): a daemon an earlier run of this test started.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            let _ = ip(&["netns", "del", name]);
        }
    }
    for e in fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = pid_in(&name, &format!("{TMP_PREFIX}-"))
            && stale(pid)
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// An exclusive lock on a file, released when dropped (closed).
struct FileLock(#[allow(dead_code)] File);

impl FileLock {
    fn take(path: &Path) -> FileLock {
        let f = File::options().create(true).truncate(false).write(true).open(path).unwrap();
        // SAFETY: a valid descriptor owned by `f`.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}: {}", path.display(), std::io::Error::last_os_error());
        FileLock(f)
    }
}

impl Net {
    /// Makes the namespaces and cables (see the module documentation), or fails the test.
    fn create() -> Net {
        assert!(Path::new(IP).is_file(), "{IP} (iproute2) is required by this test");
        // The choice of the subnet and the routes of the root namespace, one run at a time.
        let _lock = FileLock::take(&std::env::temp_dir().join(format!("{TMP_PREFIX}.lock")));
        sweep_leftovers();
        let routes = ip_must(&["-4", "route", "show"]) + &ip_must(&["-4", "addr", "show"]);
        let pid = std::process::id();
        let octet = (0..250u32)
            .map(|k| ((pid + k) % 250 + 1) as u8)
            .find(|o| !routes.contains(&format!("10.231.{o}.")))
            .expect("no free 10.231.N.0/24 in the root namespace");
        let net = Net { pid, octet };
        for h in [Host::A, Host::B, Host::M] {
            ip_must(&["netns", "add", &net.ns(h)]);
            ip_must(&["-n", &net.ns(h), "link", "set", "lo", "up"]);
        }
        for (x, y) in [
            (Host::A, Host::B),
            (Host::A, Host::M),
            (Host::B, Host::M),
            (Host::Observer, Host::A),
            (Host::Observer, Host::B),
            (Host::Observer, Host::M),
        ] {
            net.cable(x, y);
        }
        net
    }

    fn ns(&self, h: Host) -> String {
        assert_ne!(h, Host::Observer, "the observer is the root namespace");
        format!("{NS_PREFIX}{}-{}", self.pid, h.letter())
    }

    /// The end of the cable from `from` to `to` (in `from`'s namespace).
    fn end(&self, from: Host, to: Host) -> String {
        format!("{LINK_PREFIX}{}{}{}", self.pid, from.letter(), to.letter())
    }

    fn addr(&self, h: Host) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.octet, h.last_octet())
    }

    /// `ip [-n NS] ARGS` in `h`'s namespace.
    fn ip_in(&self, h: Host, args: &[&str]) -> Result<String, String> {
        let mut all: Vec<&str> = Vec::new();
        let ns = (h != Host::Observer).then(|| self.ns(h));
        if let Some(ns) = &ns {
            all.extend(["-n", ns.as_str()]);
        }
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A veth pair between `x` and `y`, each end carrying its host's address with the other's
    /// as its point-to-point peer.
    fn cable(&self, x: Host, y: Host) {
        let (ex, ey) = (self.end(x, y), self.end(y, x));
        let mut add: Vec<String> = vec!["link".into(), "add".into(), "name".into(), ex.clone()];
        if x != Host::Observer {
            add.extend(["netns".into(), self.ns(x)]);
        }
        add.extend(["type", "veth", "peer", "name"].map(String::from));
        add.push(ey.clone());
        add.extend(["netns".into(), self.ns(y)]);
        ip_must(&add.iter().map(String::as_str).collect::<Vec<_>>());
        for (h, end, peer) in [(x, &ex, y), (y, &ey, x)] {
            let (local, remote) = (self.addr(h).to_string(), format!("{}/32", self.addr(peer)));
            self.ip_in(h, &["addr", "add", &local, "peer", &remote, "dev", end])
                .unwrap_or_else(|e| panic!("{e}"));
            self.ip_in(h, &["link", "set", end, "up"]).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Pulls the cables between `x` and `y`: both ends down (their routes go with them).
    fn cut(&self, x: Host, y: Host) {
        for (h, other) in [(x, y), (y, x)] {
            self.ip_in(h, &["link", "set", &self.end(h, other), "down"])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Plugs it back: the point-to-point routes come back with the links.
    fn plug(&self, x: Host, y: Host) {
        for (h, other) in [(x, y), (y, x)] {
            self.ip_in(h, &["link", "set", &self.end(h, other), "up"])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Whether `from` has a route to `to` now.
    fn routed(&self, from: Host, to: Host) -> bool {
        self.ip_in(from, &["-4", "route", "show", &format!("{}/32", self.addr(to))])
            .is_ok_and(|r| !r.trim().is_empty())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The root-side ends first (at once; a deleted namespace frees its cables later).
        for h in [Host::A, Host::B, Host::M] {
            let _ = ip(&["link", "del", &self.end(Host::Observer, h)]);
        }
        for h in [Host::A, Host::B, Host::M] {
            let _ = ip(&["netns", "del", &self.ns(h)]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// The processes of one machine, in one process group; SIGKILLed and reaped on drop.
struct Machine {
    ns: String,
    pgid: Option<i32>,
    children: Vec<(String, Child)>,
}

impl Machine {
    fn new(ns: String) -> Machine {
        Machine {
            ns,
            pgid: None,
            children: Vec::new(),
        }
    }

    /// Starts `program ARGS` inside the namespace (`ip netns exec` execs it: same pid), its
    /// output appended to `log`.
    fn spawn(&mut self, name: &str, program: &Path, args: &[&str], log: &Path) {
        let file = File::options().create(true).append(true).open(log).unwrap();
        let child = Command::new(IP)
            .args(["netns", "exec", &self.ns])
            .arg(program)
            .args(args)
            .env("SHINKEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .process_group(self.pgid.unwrap_or(0))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} in {}: {e}", self.ns));
        self.pgid.get_or_insert(child.id() as i32);
        self.children.push((name.to_string(), child));
    }

    /// Panics with the log of a process that exited.
    fn assert_running(&mut self, logs: &Path) {
        for (name, c) in &mut self.children {
            if let Ok(Some(st)) = c.try_wait() {
                panic!(
                    "{name} exited ({st}):\n{}",
                    fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default()
                );
            }
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: the process group this test created, nothing else.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The course on the machines.

/// Copies the course tree into `etc`, rewritten as for `tests/ha_course.rs`
/// ([`support::rewrite`]), with the boxes' addresses in place of 127.0.0.2 and 127.0.0.3.
fn write_tree(etc: &Path, ports: &BTreeMap<&str, u16>, mongo_uri: &str, dir: &Path, a: Ipv4Addr, b: Ipv4Addr) {
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
        let text = support::rewrite(rel_s, &text, ports.get(rel_s).copied(), &TIMINGS, mongo_uri, dir)
            .replace("127.0.0.2", &a.to_string())
            .replace("127.0.0.3", &b.to_string());
        let dest = etc.join(&rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(dest, text).unwrap();
    }
    let token = etc.join("shinken.token");
    fs::write(&token, format!("{SECRET}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
}

/// The course running on A and B, MongoDB on M. Dropped in field order: processes first, then
/// the network, then the files.
struct Lab {
    a: Machine,
    b: Machine,
    m: Machine,
    net: Net,
    tmp: TempDir,
    logs: PathBuf,
    etc_a: PathBuf,
    etc_b: PathBuf,
    /// Name -> (role, address, port, on box A).
    daemons: BTreeMap<String, (String, Ipv4Addr, u16, bool)>,
    mongo_port: u16,
    rt: tokio::runtime::Runtime,
}

impl Lab {
    /// The network, MongoDB and both trees; no daemon yet.
    fn prepare() -> Lab {
        let net = Net::create();
        let tmp = TempDir::new(TMP_PREFIX).unwrap();
        let logs = tmp.path().join("logs");
        fs::create_dir_all(&logs).unwrap();
        // Ports chosen now. Each machine is a fresh namespace of this run, so nothing else
        // listens there; they are taken among those free here only to differ from run to run.
        let ports = support::free_ports(Ipv4Addr::LOCALHOST, DAEMONS.len() + 1);
        let mongo_port = ports[DAEMONS.len()];
        let (addr_a, addr_b) = (net.addr(Host::A), net.addr(Host::B));
        let mut by_file = BTreeMap::new();
        let mut daemons = BTreeMap::new();
        for ((file, role, name, on_a), port) in DAEMONS.into_iter().zip(ports.iter().copied()) {
            by_file.insert(file, port);
            daemons.insert(name.to_string(), (role.to_string(), if on_a { addr_a } else { addr_b }, port, on_a));
        }
        let mongo_uri = format!("mongodb://{}:{mongo_port}/?directConnection=true", net.addr(Host::M));
        let etc_a = tmp.path().join("courses-a/etc/shinken");
        let etc_b = tmp.path().join("courses-b/etc/shinken");
        write_tree(&etc_a, &by_file, &mongo_uri, &tmp.path().join("courses-a"), addr_a, addr_b);
        write_tree(&etc_b, &by_file, &mongo_uri, &tmp.path().join("courses-b"), addr_a, addr_b);
        let mut lab = Lab {
            a: Machine::new(net.ns(Host::A)),
            b: Machine::new(net.ns(Host::B)),
            m: Machine::new(net.ns(Host::M)),
            net,
            tmp,
            logs,
            etc_a,
            etc_b,
            daemons,
            mongo_port,
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        };
        lab.start_mongo();
        lab
    }

    fn start_mongo(&mut self) {
        let storage = self.tmp.path().join("mongo");
        fs::create_dir_all(&storage).unwrap();
        let (host, port) = (self.net.addr(Host::M).to_string(), self.mongo_port.to_string());
        let args = [
            "--host",
            host.as_str(),
            "--port",
            port.as_str(),
            "--storage-path",
            storage.to_str().unwrap(),
        ];
        let log = self.logs.join("secantusd.log");
        self.m.spawn("secantusd", &support::secantusd(), &args, &log);
        let addr = (self.net.addr(Host::M), self.mongo_port);
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1)).is_err() {
            self.m.assert_running(&self.logs);
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "secantusd-py does not listen on {addr:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_daemon(&mut self, name: &str) {
        let (role, _, _, on_a) = self.daemons[name].clone();
        let log = self.logs.join(format!("{name}.log"));
        let (machine, etc) = if on_a {
            (&mut self.a, &self.etc_a)
        } else {
            (&mut self.b, &self.etc_b)
        };
        let main = etc.join("shinken.cfg");
        machine.spawn(
            name,
            Path::new(BIN),
            &[&role, "--config", main.to_str().unwrap(), "--name", name],
            &log,
        );
    }

    /// The whole course: satellites and schedulers of both boxes, then the arbiters; waits
    /// until scheduler-master holds part 0 and the spare arbiter has the master's
    /// configuration. Returns part 0's epoch.
    fn start() -> (Lab, u64) {
        let mut lab = Lab::prepare();
        let names: Vec<String> = lab
            .daemons
            .iter()
            .filter(|(_, d)| d.0 != "arbiter")
            .map(|(n, _)| n.clone())
            .collect();
        for n in &names {
            lab.start_daemon(n);
        }
        for n in &names {
            lab.wait_health(n);
        }
        lab.start_daemon("arbiter-master");
        lab.start_daemon("arbiter-spare");
        let e1 = wait_for(
            Duration::from_secs(60),
            "scheduler-master to hold part 0",
            || lab.managed("scheduler-master").and_then(|m| m.get(&0).copied()),
            || lab.all_logs(),
        );
        wait_for(
            Duration::from_secs(30),
            "the spare arbiter to get the master's configuration",
            || {
                lab.log("arbiter-spare")
                    .contains("Configuration received from arbiter arbiter-master")
                    .then_some(())
            },
            || lab.all_logs(),
        );
        (lab, e1)
    }

    fn client(&self, name: &str) -> Client {
        let (_, addr, port, _) = &self.daemons[name];
        Client::new(
            &format!("http://{addr}:{port}"),
            Token::new(SECRET).unwrap(),
            Duration::from_secs(2),
            Duration::from_secs(10),
        )
        .unwrap()
    }

    fn wait_health(&mut self, name: &str) {
        let c = self.client(name);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.rt.block_on(c.health()).is_err() {
            self.a.assert_running(&self.logs);
            self.b.assert_running(&self.logs);
            assert!(Instant::now() < deadline, "{name} does not answer /health\n{}", self.log(name));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn managed(&self, name: &str) -> Option<Managed> {
        self.rt.block_on(self.client(name).get("what_i_managed", &[], false)).ok()
    }

    fn arbiter_status(&self, name: &str) -> Option<ArbiterStatus> {
        self.rt.block_on(self.client(name).get("status", &[], false)).ok()
    }

    fn scheduler_json(&self, name: &str) -> Option<Value> {
        self.rt.block_on(self.client(name).get("status", &[], false)).ok()
    }

    fn snapshot(&self, name: &str) -> Option<Snapshot> {
        Some(Snapshot::parse(&self.scheduler_json(name)?, std::time::SystemTime::now()))
    }

    fn fencing(&self, name: &str) -> Option<FencingStatus> {
        self.rt.block_on(self.client(name).get("fencing", &[], false)).ok()
    }

    /// `shinken_scheduler_results_total` of `scheduler` (open `/metrics`): results taken in by
    /// the part it holds.
    fn results_total(&self, scheduler: &str) -> Option<u64> {
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

    /// The retention records of `keys` in MongoDB (read through the observer's cable to M).
    fn records(&self, keys: &[String]) -> BTreeMap<String, u64> {
        let uri = format!("mongodb://{}:{}/?directConnection=true", self.net.addr(Host::M), self.mongo_port);
        self.rt.block_on(async {
            let store = MongoStore::connect(&uri, "shinken", None, Duration::from_secs(5)).await.unwrap();
            let records = store.load(keys).await.unwrap();
            records.into_iter().map(|(k, r)| (k, r.epoch)).collect()
        })
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The tail of every log (for failure messages).
    fn all_logs(&self) -> String {
        let mut s = String::new();
        for n in self.daemons.keys().map(String::as_str).chain(["secantusd"]) {
            let log = self.log(n);
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            s.push_str(&format!("----- {n} (last 25 lines)\n{tail}\n"));
        }
        s
    }
}

/// Seconds since `t`, for the report.
fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Which cables the partition pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// A-B only: both boxes keep MongoDB.
    AFromB,
    /// A-B and A-M: box A is alone with itself.
    AFromBAndStore,
}

/// A and B lose each other; A's scheduler-master keeps hearing A's arbiter-master, and still
/// reaches MongoDB: fenced by the store refusing its stale writes.
#[test]
fn a_partition_fences_the_side_without_the_newest_epoch() {
    partition(Cut::AFromB);
}

/// A loses B and MongoDB: A's arbiter-master, reaching neither a spare arbiter nor the epoch
/// store, falls silent; A's scheduler-master then fences itself on the arbiters' silence.
#[test]
fn box_a_cut_from_b_and_from_mongodb_fences_itself() {
    partition(Cut::AFromBAndStore);
}

fn partition(cut: Cut) {
    let (lab, e1) = Lab::start();
    for (from, to) in [(Host::A, Host::B), (Host::B, Host::A), (Host::A, Host::M), (Host::B, Host::M)] {
        assert!(lab.net.routed(from, to), "{from:?} has no route to {to:?} before the partition");
    }

    // 1. Steady state: the masters on A serve the part, checks flow, states are recorded in
    //    MongoDB with the master's epoch.
    let steady = wait_for(
        Duration::from_secs(60),
        "every item checked on scheduler-master, courses-b/Always critical CRITICAL HARD",
        || {
            lab.snapshot("scheduler-master").filter(|s| {
                s.items.len() == 9
                    && s.pending().is_empty()
                    && s.item("courses-b/Always critical")
                        .is_some_and(|i| i.state == "CRITICAL" && i.state_type == "HARD")
            })
        },
        || lab.all_logs(),
    );
    assert_eq!(steady.epoch, e1);
    let keys: Vec<String> = steady.items.keys().cloned().collect();
    wait_for(
        Duration::from_secs(20),
        "scheduler-master's states in MongoDB with its epoch",
        || {
            let r = lab.records(&keys);
            (r.len() == keys.len() && r.values().all(|e| *e == e1)).then_some(())
        },
        || format!("{:?}\n{}", lab.records(&keys), lab.all_logs()),
    );
    let f = lab.fencing("scheduler-master").unwrap();
    assert!(!f.fenced, "{f:?}");
    assert!(lab.results_total("scheduler-master").unwrap_or(0) > 0);
    assert!(lab.managed("scheduler-spare").unwrap().is_empty(), "the spare scheduler waits");
    let s = lab.arbiter_status("arbiter-spare").unwrap();
    assert!(!s.master, "{s:?}");

    // 2. The partition.
    let logs_at: BTreeMap<String, usize> = lab.daemons.keys().map(|n| (n.clone(), lab.log(n).len())).collect();
    let since = |name: &str| lab.log(name).get(logs_at[name]..).unwrap_or_default().to_string();
    let t0 = Instant::now();
    lab.net.cut(Host::A, Host::B);
    if cut == Cut::AFromBAndStore {
        lab.net.cut(Host::A, Host::M);
    }
    assert!(!lab.net.routed(Host::A, Host::B) && !lab.net.routed(Host::B, Host::A));
    assert_eq!(lab.net.routed(Host::A, Host::M), cut == Cut::AFromB);
    assert!(lab.net.routed(Host::B, Host::M));
    eprintln!(
        "{cut:?}: partition at t0; takeover window {:.0} s, scheduler fencing window {:.0} s",
        takeover_window(),
        fencing_window()
    );

    // Side B takes over while side A stops: both watched from the same loop.
    let (mut lead, mut b_holds, mut b_acts, mut a_silent, mut a_fenced) = (None, None, None, None, None);
    let mut e2 = 0;
    let mut a_fence = FencingStatus::default();
    let deadline = t0 + Duration::from_secs(45);
    while lead.is_none() || b_acts.is_none() || a_fenced.is_none() {
        if lead.is_none() && since("arbiter-spare").contains("Arbiter Master is dead. The arbiter arbiter-spare take the lead") {
            lead = Some(secs(t0));
        }
        if a_silent.is_none() && since("arbiter-master").contains("I stop speaking to the daemons") {
            a_silent = Some(secs(t0));
        }
        if b_holds.is_none()
            && let Some(e) = lab.managed("scheduler-spare").and_then(|m| m.get(&0).copied())
        {
            e2 = e;
            b_holds = Some(secs(t0));
        }
        if b_holds.is_some() && b_acts.is_none() && lab.results_total("scheduler-spare").is_some_and(|n| n > 0) {
            b_acts = Some(secs(t0));
        }
        if a_fenced.is_none()
            && let Some(f) = lab.fencing("scheduler-master").filter(|f| f.fenced)
        {
            a_fence = f;
            a_fenced = Some(secs(t0));
        }
        assert!(
            Instant::now() < deadline,
            "after {:.1} s of partition: spare arbiter leads {lead:?}, scheduler-spare holds {b_holds:?} acts {b_acts:?}, \
             scheduler-master fenced {a_fenced:?}\nscheduler-master: {:?}\n{}",
            secs(t0),
            lab.fencing("scheduler-master"),
            lab.all_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (lead, b_holds, b_acts, a_fenced) = (lead.unwrap(), b_holds.unwrap(), b_acts.unwrap(), a_fenced.unwrap());
    eprintln!(
        "{cut:?}: the spare arbiter leads at {lead:.2} s, scheduler-spare holds part 0 (epoch {e2}) at {b_holds:.2} s and has \
         its first result at {b_acts:.2} s; A's arbiter-master falls silent at {a_silent:.2?} s; scheduler-master stops \
         acting at {a_fenced:.2} s ({:?}: {})",
        a_fence.cause,
        a_fence.reason.as_deref().unwrap_or_default()
    );

    // (1) B's scheduler-spare acts on the part with the newer epoch, from the retained states.
    assert!(e2 > e1, "the spare's epoch {e2} is newer than the master's {e1}");
    let b_view = lab.snapshot("scheduler-spare").unwrap();
    assert_eq!((b_view.part_id, b_view.epoch), (Some(0), e2));
    assert!(
        b_view.pending().is_empty(),
        "the spare starts from the retained states:\n{}",
        b_view.table()
    );
    assert!(!lab.fencing("scheduler-spare").unwrap().fenced);
    let s = lab.arbiter_status("arbiter-spare").unwrap();
    assert!(s.master, "{s:?}");
    let held = s.daemons.iter().find(|d| d.name == "scheduler-spare").unwrap();
    assert_eq!(held.parts.get(&0), Some(&e2), "{s:?}");

    // (2) A's scheduler-master stopped acting, within a generous bound.
    let window = fencing_window();
    assert!(
        a_fenced <= 3.0 * window,
        "scheduler-master went on acting {a_fenced:.1} s after the partition (3 x the {window} s window)"
    );
    let a_log = since("arbiter-master");
    match cut {
        Cut::AFromB => {
            // Fenced by the store: a newer epoch holds its records. A's arbiter-master still
            // reaches the store, so it still speaks to A's scheduler: not the silence.
            assert_eq!(a_fence.cause, Some(Cause::StaleEpoch), "{a_fence:?}");
            assert!(
                a_fence.reason.as_deref().is_some_and(|r| r.contains(&format!("epoch {e1}"))),
                "{a_fence:?}"
            );
            let log = since("scheduler-master");
            assert!(log.contains("Retention refused my write of"), "{log}");
            assert!(a_silent.is_none() && !a_log.contains("I stop speaking"), "{a_log}");
        }
        Cut::AFromBAndStore => {
            // Fenced by the silence of A's arbiter, which reached neither B's arbiter nor the
            // epoch store for longer than the spare's wait.
            assert_eq!(a_fence.cause, Some(Cause::Silence), "{a_fence:?}");
            let silent = a_silent.unwrap_or_else(|| panic!("A's arbiter-master did not fall silent:\n{a_log}"));
            assert!(silent <= a_fenced, "silent at {silent:.1} s, fenced at {a_fenced:.1} s");
        }
    }
    let a_results = lab.results_total("scheduler-master").unwrap();
    let a_last = lab.snapshot("scheduler-master").unwrap().max_last_check();
    let b_results = lab.results_total("scheduler-spare").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let f = lab.fencing("scheduler-master").unwrap();
    assert!(f.fenced, "{f:?}");
    let heard = support::unix_now() - f.last_arbiter_contact.unwrap_or(0.0);
    match cut {
        Cut::AFromB => assert!(heard < 2.5, "A's scheduler still hears its arbiter: last call {heard:.1} s ago"),
        Cut::AFromBAndStore => assert!(heard > window, "A's scheduler hears no arbiter: last call {heard:.1} s ago"),
    }
    assert_eq!(
        lab.results_total("scheduler-master"),
        Some(a_results),
        "no result taken in while fenced"
    );
    assert_eq!(
        lab.snapshot("scheduler-master").unwrap().max_last_check(),
        a_last,
        "no check run while fenced"
    );
    assert!(lab.results_total("scheduler-spare").unwrap() > b_results, "checks flow on B");
    let s = lab.arbiter_status("arbiter-master").unwrap();
    assert!(s.master, "A's arbiter does not hand the lead over by itself: {s:?}");

    // 3. The partition heals: A's arbiter-master takes the lead back and adopts the spare's
    //    newer epoch; A's scheduler stays idle (no fail-back); nothing stale overwrote B's
    //    states in MongoDB.
    let t1 = Instant::now();
    lab.net.plug(Host::A, Host::B);
    if cut == Cut::AFromBAndStore {
        lab.net.plug(Host::A, Host::M);
    }
    wait_for(
        Duration::from_secs(5),
        "the routes between A and B to come back",
        || (lab.net.routed(Host::A, Host::B) && lab.net.routed(Host::B, Host::A)).then_some(()),
        String::new,
    );
    wait_for(
        Duration::from_secs(30),
        "the spare arbiter to step down",
        || {
            since("arbiter-spare")
                .contains("Arbiter Master arbiter-master is back")
                .then_some(())
        },
        || lab.all_logs(),
    );
    let stepped_down = secs(t1);
    wait_for(
        Duration::from_secs(30),
        "the master arbiter to see part 0 on scheduler-spare and scheduler-master alive and idle",
        || {
            lab.arbiter_status("arbiter-master").filter(|s| {
                s.master
                    && s.daemons
                        .iter()
                        .any(|d| d.name == "scheduler-spare" && d.alive && d.parts.get(&0) == Some(&e2))
                    && s.daemons
                        .iter()
                        .any(|d| d.name == "scheduler-master" && d.alive && d.parts.is_empty())
            })
        },
        || format!("{:?}\n{}", lab.arbiter_status("arbiter-master"), lab.all_logs()),
    );
    eprintln!(
        "{cut:?}, after the heal: the spare arbiter stepped down at {stepped_down:.2} s; the master arbiter adopted epoch {e2} \
         and idled scheduler-master at {:.2} s",
        secs(t1)
    );
    if cut == Cut::AFromBAndStore {
        assert!(since("arbiter-master").contains("I speak to the daemons again"));
    }
    // A silence fence is lifted by the first arbiter call (the resumed master's probe), a
    // moment before that master tells the stale holder to idle; writes it makes then carry
    // the old epoch and are refused (checked below).
    let relifted = since("scheduler-master").contains("An arbiter spoke to me again");
    eprintln!("{cut:?}: scheduler-master's fence lifted by a probe before it was told to idle: {relifted}");
    std::thread::sleep(Duration::from_secs_f64(window));
    assert!(
        lab.managed("scheduler-master").unwrap().is_empty(),
        "the master scheduler stays idle"
    );
    assert_eq!(lab.managed("scheduler-spare").unwrap(), Managed::from([(0, e2)]), "no fail-back");
    let s = lab.arbiter_status("arbiter-spare").unwrap();
    assert!(!s.master, "{s:?}");
    let log = since("scheduler-master");
    assert!(
        !log.contains("New configuration received"),
        "scheduler-master got a part again:\n{log}"
    );
    let records = lab.records(&keys);
    assert_eq!(records.len(), keys.len(), "{records:?}");
    for (k, e) in &records {
        assert_eq!(*e, e2, "{k}: record epoch {e} (the spare holds {e2}): a stale write went through");
    }
    let before = lab.results_total("scheduler-spare").unwrap();
    wait_for(
        Duration::from_secs(10),
        "checks to go on on scheduler-spare",
        || (lab.results_total("scheduler-spare")? > before).then_some(()),
        || lab.all_logs(),
    );
}
