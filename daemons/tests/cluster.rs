//! `shinken run` and `shinken status` end to end, with real processes: a whole cluster on
//! 127.0.0.1 on ports free at run time, checks run by monitoring-plugins' `check_dummy`.
//!
//! Every `shinken run` started here is in its own process group, killed as a whole when its
//! guard drops (a failed assertion included), so no daemon outlives a test.

use shinken_testkit::tempdir::TempDir;
use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shinken");
const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// A `shinken run` in its own process group; dropping it kills the group.
struct Cluster {
    child: Child,
    pgid: i32,
    log: PathBuf,
    reaped: bool,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let log = dir.join("run.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("run")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        Cluster {
            child,
            pgid,
            log,
            reaped: false,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits at most `limit` for `shinken run` to end.
    fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.reaped = true;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether any process is left in the group.
    fn group_alive(&self) -> bool {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(-self.pgid, 0) == 0 }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: kills the process group this test created, nothing else.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        if !self.reaped {
            let _ = self.child.wait();
        }
    }
}

/// `n` distinct ports free on 127.0.0.1 right now (all held until all are found).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// The daemons of the generated cluster: (role, name, spare).
const DAEMONS: [(&str, &str, bool); 7] = [
    ("arbiter", "arbiter-master", false),
    ("scheduler", "scheduler-master", false),
    ("scheduler", "scheduler-spare", true),
    ("poller", "poller-master", false),
    ("reactionner", "reactionner-master", false),
    ("broker", "broker-master", false),
    ("receiver", "receiver-master", false),
];

/// Writes a cluster configuration like `examples/two-boxes`, on 127.0.0.1 with the given ports
/// (one per entry of [`DAEMONS`]); `extra` is appended to the services file.
fn write_config(dir: &Path, ports: &[u16], extra: &str) {
    let mut main = String::from(
        "cfg_dir=daemons\ncfg_dir=objects\nresource_file=resource.cfg\n\
         interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n",
    );
    main.push_str("retention_update_interval=60\n");
    std::fs::write(dir.join("shinken.cfg"), main).unwrap();
    std::fs::write(dir.join("resource.cfg"), format!("$USER1$={PLUGINS}\n")).unwrap();
    std::fs::create_dir_all(dir.join("daemons")).unwrap();
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    let mut daemons = String::from("define realm {\n    realm_name All\n    default 1\n}\n");
    for ((role, name, spare), port) in DAEMONS.iter().zip(ports) {
        daemons.push_str(&format!(
            "define {role} {{\n    {role}_name {name}\n    address 127.0.0.1\n    port {port}\n    spare {}\n    \
             timeout 1\n    data_timeout 30\n    max_check_attempts 3\n    check_interval 1\n    polling_interval 1\n{}}}\n",
            u8::from(*spare),
            if *role == "arbiter" { "" } else { "    realm All\n" }
        ));
    }
    std::fs::write(dir.join("daemons/daemons.cfg"), daemons).unwrap();
    let objects = format!(
        "define command {{\n    command_name ok\n    command_line $USER1$/check_dummy 0 \"all is well\"\n}}\n\
         define command {{\n    command_name critical\n    command_line $USER1$/check_dummy 2 \"meant to fail\"\n}}\n\
         define command {{\n    command_name notify\n    command_line /bin/true\n}}\n\
         define timeperiod {{\n    timeperiod_name 24x7\n    sunday 00:00-24:00\n    monday 00:00-24:00\n    \
         tuesday 00:00-24:00\n    wednesday 00:00-24:00\n    thursday 00:00-24:00\n    friday 00:00-24:00\n    \
         saturday 00:00-24:00\n}}\n\
         define contact {{\n    contact_name admin\n    host_notification_period 24x7\n    service_notification_period 24x7\n    \
         host_notification_commands notify\n    service_notification_commands notify\n}}\n\
         define host {{\n    host_name box\n    address 127.0.0.1\n    check_command ok\n    max_check_attempts 2\n    \
         check_interval 1\n    retry_interval 1\n    check_period 24x7\n    contacts admin\n}}\n\
         define service {{\n    name svc\n    register 0\n    host_name box\n    max_check_attempts 2\n    check_interval 1\n    \
         retry_interval 1\n    check_period 24x7\n    contacts admin\n}}\n\
         define service {{\n    use svc\n    service_description Fine\n    check_command ok\n}}\n\
         define service {{\n    use svc\n    service_description Broken\n    check_command critical\n}}\n{extra}"
    );
    std::fs::write(dir.join("objects/objects.cfg"), objects).unwrap();
}

fn status_json(dir: &Path) -> (Option<i32>, Option<serde_json::Value>, String) {
    let out = Command::new(BIN).args(["status", "--format", "json"]).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), serde_json::from_str(&text).ok(), format!("{text}{err}"))
}

fn service<'a>(v: &'a serde_json::Value, desc: &str) -> Option<&'a serde_json::Value> {
    v["services"]
        .as_array()?
        .iter()
        .find(|s| s["host_name"] == "box" && s["service_description"] == desc)
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_millis(300)).is_ok()
}

#[test]
fn a_whole_cluster_runs_reports_and_stops() {
    let tmp = TempDir::new("shinken-cluster").unwrap();
    let dir = tmp.path();
    let ports = free_ports(DAEMONS.len());
    write_config(dir, &ports, "");
    let token = dir.join("shinken.token");
    assert!(!token.exists());

    let mut cluster = Cluster::start(dir);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let report = loop {
        assert!(
            Instant::now() < deadline,
            "no CRITICAL HARD / OK within 60 s.\nlast status:\n{last}\nrun log:\n{}",
            cluster.log()
        );
        if let Some(s) = cluster.child.try_wait().unwrap() {
            cluster.reaped = true;
            panic!("shinken run ended early ({s}):\n{}", cluster.log());
        }
        std::thread::sleep(Duration::from_millis(500));
        let (code, json, text) = status_json(dir);
        last = text;
        let Some(v) = json else { continue };
        let broken = service(&v, "Broken");
        let fine = service(&v, "Fine");
        if code == Some(0)
            && broken.is_some_and(|s| s["state"] == "CRITICAL" && s["state_type"] == "HARD")
            && fine.is_some_and(|s| s["state"] == "OK")
        {
            break v;
        }
    };

    // The JSON shape other tools rely on.
    let obj = report.as_object().unwrap();
    for k in ["hosts", "services", "daemons"] {
        assert!(obj.get(k).is_some_and(|x| x.is_array()), "{k} missing: {report}");
    }
    let broken = service(&report, "Broken").unwrap();
    for k in [
        "host_name",
        "service_description",
        "state",
        "state_type",
        "attempt",
        "max_check_attempts",
        "last_check",
        "output",
        "acknowledged",
        "in_downtime",
        "scheduler",
    ] {
        assert!(broken.get(k).is_some(), "service without {k}: {broken}");
    }
    assert_eq!(broken["attempt"], 2, "{broken}");
    assert_eq!(broken["max_check_attempts"], 2, "{broken}");
    assert!(broken["last_check"].is_number(), "{broken}");
    assert!(broken["output"].as_str().unwrap().contains("meant to fail"), "{broken}");
    // Listed once, though two schedulers may answer.
    let n = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["service_description"] == "Broken")
        .count();
    assert_eq!(n, 1, "{report}");
    let host = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host_name"] == "box")
        .expect("host box");
    assert!(host.get("service_description").is_none(), "{host}");
    for k in [
        "state",
        "state_type",
        "attempt",
        "max_check_attempts",
        "last_check",
        "output",
        "scheduler",
    ] {
        assert!(host.get(k).is_some(), "host without {k}: {host}");
    }
    let daemons = report["daemons"].as_array().unwrap();
    for (role, name, spare) in DAEMONS.iter().filter(|d| d.0 != "arbiter") {
        let d = daemons
            .iter()
            .find(|d| d["name"] == *name)
            .unwrap_or_else(|| panic!("{name} not in {report}"));
        assert_eq!(d["role"], *role, "{d}");
        assert_eq!(d["spare"], *spare, "{d}");
        for k in ["alive", "address", "port", "realm", "parts"] {
            assert!(d.get(k).is_some(), "daemon without {k}: {d}");
        }
    }

    // The text form answers too.
    let text = Command::new(BIN).arg("status").arg(dir).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Broken") && text.contains("CRITICAL") && text.contains("s ago"),
        "{text}"
    );

    // The token was made for us, readable by its owner only.
    let mode = std::fs::metadata(&token).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token mode {mode:o}");
    let log = cluster.log();
    assert!(log.contains("created the cluster token"), "{log}");
    // Daemon output is forwarded with its name.
    assert!(log.contains("[scheduler-master] "), "{log}");

    // SIGTERM to `shinken run` alone: it stops every daemon and exits 0.
    // SAFETY: our own child.
    unsafe { libc::kill(cluster.child.id() as i32, libc::SIGTERM) };
    let status = cluster.wait_for_exit(Duration::from_secs(20));
    let log = cluster.log();
    let status = status.unwrap_or_else(|| panic!("shinken run did not stop within 20 s:\n{log}"));
    assert!(status.success(), "{status}:\n{log}");
    assert!(!cluster.group_alive(), "processes left in the group:\n{log}");
    for p in &ports {
        assert!(!answers(*p), "port {p} still answers:\n{log}");
    }
    // A status now finds no arbiter: exit 1, still valid JSON.
    let (code, json, text) = status_json(dir);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(json.unwrap()["daemons"], serde_json::json!([]));
}

#[test]
fn a_daemon_that_exits_is_reported_and_not_restarted() {
    let tmp = TempDir::new("shinken-cluster-exit").unwrap();
    let dir = tmp.path();
    let ports = free_ports(DAEMONS.len());
    write_config(dir, &ports, "");
    let mut cluster = Cluster::start(dir);
    // Wait until the poller listens, then kill it.
    let poller_port = ports[3];
    let start = Instant::now();
    while !answers(poller_port) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "poller never listened:\n{}",
            cluster.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = cluster
        .log()
        .lines()
        .find(|l| l.contains("started poller poller-master"))
        .and_then(|l| l.rsplit("pid ").next())
        .and_then(|p| p.trim().parse::<i32>().ok())
        .expect("the poller's pid in the log");
    // SAFETY: a process of the group this test created.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let start = Instant::now();
    while !cluster.log().contains("daemon poller-master (poller) exited with status 137") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no report of the poller's death:\n{}",
            cluster.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cluster.log().contains("not restarting it"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!answers(poller_port), "the poller came back:\n{}", cluster.log());
    assert!(cluster.child.try_wait().unwrap().is_none(), "run ended:\n{}", cluster.log());
    assert!(answers(ports[1]), "the scheduler stopped too:\n{}", cluster.log());
    // SAFETY: our own child.
    unsafe { libc::kill(cluster.child.id() as i32, libc::SIGINT) };
    let status = cluster.wait_for_exit(Duration::from_secs(20)).expect("run stops on SIGINT");
    assert!(status.success(), "{status}:\n{}", cluster.log());
    assert!(!cluster.group_alive());
}

#[test]
fn a_configuration_with_errors_starts_nothing() {
    let tmp = TempDir::new("shinken-cluster-bad").unwrap();
    let dir = tmp.path();
    let ports = free_ports(DAEMONS.len());
    write_config(
        dir,
        &ports,
        "define service {\n    use svc\n    service_description Bad\n    check_command no_such_command\n}\n",
    );
    let mut cluster = Cluster::start(dir);
    let status = cluster.wait_for_exit(Duration::from_secs(20)).expect("run ends at once");
    let log = cluster.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Total Errors:") && log.contains("no_such_command"), "{log}");
    assert!(log.contains("nothing started"), "{log}");
    assert!(!log.contains("started scheduler"), "{log}");
    assert!(!dir.join("shinken.token").exists(), "the token was made for nothing");
    assert!(!cluster.group_alive());
    assert!(ports.iter().all(|p| !answers(*p)));
}

#[test]
fn a_port_in_use_is_named_and_nothing_starts() {
    let tmp = TempDir::new("shinken-cluster-busy").unwrap();
    let dir = tmp.path();
    let ports = free_ports(DAEMONS.len());
    write_config(dir, &ports, "");
    // Someone else holds the broker's port.
    let busy = TcpListener::bind(("127.0.0.1", ports[5])).unwrap();
    let mut cluster = Cluster::start(dir);
    let status = cluster.wait_for_exit(Duration::from_secs(20)).expect("run ends at once");
    let log = cluster.log();
    assert_eq!(status.code(), Some(1), "{log}");
    let addr = format!("127.0.0.1:{}", ports[5]);
    assert!(
        log.lines()
            .any(|l| l.contains("broker-master") && l.contains(&addr) && l.contains("in use")),
        "{log}"
    );
    assert!(log.contains("nothing started") && !log.contains("started scheduler"), "{log}");
    assert!(!cluster.group_alive());
    for (i, p) in ports.iter().enumerate() {
        if i != 5 {
            assert!(!answers(*p), "port {p} answers:\n{log}");
        }
    }
    drop(busy);
}

#[test]
fn status_refuses_bad_arguments_and_missing_configurations() {
    let out = Command::new(BIN).args(["status", "--format", "xml", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["status", "/nonexistent/shinken.cfg"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["run", "/nonexistent/shinken.cfg"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let mut s = String::new();
    let _ = std::io::Cursor::new(out.stderr).read_to_string(&mut s);
    assert!(s.contains("cannot read the configuration"), "{s}");
}

#[test]
fn the_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/two-boxes");
    let out = Command::new(BIN).arg("check-config").arg(&example).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Total Errors:   0"), "{text}");
    assert!(
        text.contains("Checked 2 arbiters.") && text.contains("Checked 2 receivers."),
        "{text}"
    );
}
