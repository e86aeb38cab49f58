//! The monitoring engine end to end, with real processes: `shinken run` starts an arbiter, a
//! scheduler, a poller, a reactionner, a broker and a receiver on loopback ports chosen at run
//! time; real plugins run; the scheduler's API is asked for states.
//!
//! Covered here: every exit code, soft then hard after `max_check_attempts` with
//! `retry_interval` spacing, recovery, a timeout, multi-line output with perfdata,
//! `check_period` honoured, and a reload that keeps the states of what did not change.

use serde_json::Value;
use shinken::messages::{ItemStatus, SchedulerStatus};
use shinken::protocol::{Client, Token};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A temporary directory, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `shinken run` in its own process group; the whole group is stopped on drop.
struct Cluster {
    child: Child,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const SLEEPER: &str = "#!/bin/sh\nsleep 30\necho never\n";
const MULTILINE: &str = "#!/bin/sh\necho 'DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968'\necho '/ 15272 MB (77%);'\necho '/boot 68 MB (69%);'\necho '/home 69357 MB (27%);'\necho '/var/log 819 MB (84%); | /boot=68MB;88;93;0;98'\necho '/home=69357MB;253404;253409;0;253414'\necho '/var/log=818MB;970;975;0;980'\nexit 0\n";

/// The daemons, a few hosts and services, on free ports.
fn write_config(dir: &Path, extra: &str) -> Vec<u16> {
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let roles = ["arbiter", "scheduler", "poller", "reactionner", "broker", "receiver"];
    let mut cfg = String::from(
        "interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\nservice_check_timeout=60\ntimeout_exit_status=2\n\
         $USER1$=/usr/lib/nagios/plugins\ncfg_dir=objects\n",
    );
    for (role, port) in roles.iter().zip(&ports) {
        cfg.push_str(&format!(
            "define {role} {{\n    {role}_name {role}-1\n    address 127.0.0.1\n    port {port}\n    check_interval 1\n    max_check_attempts 3\n    timeout 2\n}}\n"
        ));
    }
    std::fs::write(dir.join("shinken.cfg"), cfg).unwrap();
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    std::fs::write(dir.join("sleeper.sh"), SLEEPER).unwrap();
    std::fs::write(dir.join("multiline.sh"), MULTILINE).unwrap();
    for f in ["sleeper.sh", "multiline.sh"] {
        std::fs::set_permissions(dir.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.join("flip-state"), "2\n").unwrap();
    let d = dir.display();
    let objects = format!(
        "define command {{\n    command_name dummy\n    command_line $USER1$/check_dummy $ARG1$ \"$SERVICEDESC$ output\"\n}}\n\
         define command {{\n    command_name sleeper\n    command_line {d}/sleeper.sh\n    timeout 1\n}}\n\
         define command {{\n    command_name multiline\n    command_line {d}/multiline.sh\n}}\n\
         define command {{\n    command_name from_file\n    command_line /bin/sh -c 'exit $(cat {d}/flip-state)'\n}}\n\
         define timeperiod {{\n    timeperiod_name never\n    alias never\n}}\n\
         define service {{\n    name svc\n    register 0\n    check_interval 1\n    retry_interval 2\n    max_check_attempts 3\n}}\n\
         define host {{\n    host_name box\n    address 127.0.0.1\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description ok\n    check_command dummy!0\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description warning\n    check_command dummy!1\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description critical\n    check_command dummy!2\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description unknown\n    check_command dummy!3\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description slow\n    check_command sleeper\n    max_check_attempts 1\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description disk\n    check_command multiline\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description flips\n    check_command from_file\n    max_check_attempts 2\n    retry_interval 1\n}}\n\
         define service {{\n    use svc\n    host_name box\n    service_description never\n    check_command dummy!2\n    check_period never\n}}\n\
         {extra}"
    );
    std::fs::write(dir.join("objects/objects.cfg"), objects).unwrap();
    ports
}

fn start(dir: &Path) -> Cluster {
    let child = Command::new(env!("CARGO_BIN_EXE_shinken"))
        .arg("run")
        .arg(dir)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    Cluster { child }
}

fn token(dir: &Path) -> Token {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(t) = shinken::protocol::load_token(&dir.join("shinken.token")) {
            return t;
        }
        assert!(Instant::now() < deadline, "no token file created");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scheduler_status(rt: &tokio::runtime::Runtime, client: &Client) -> Option<SchedulerStatus> {
    rt.block_on(client.get::<SchedulerStatus>("status", &[], false)).ok()
}

fn service<'a>(st: &'a SchedulerStatus, desc: &str) -> Option<&'a ItemStatus> {
    st.services.iter().find(|s| s.service_description.as_deref() == Some(desc))
}

/// Waits (bounded) until `done` holds on the scheduler's status; panics with the last status and
/// the cluster's log otherwise.
fn wait_for(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    dir: &Path,
    what: &str,
    secs: u64,
    done: impl Fn(&SchedulerStatus) -> bool,
) -> SchedulerStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(st) = scheduler_status(rt, client) {
            if done(&st) {
                return st;
            }
            last = Some(st);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    panic!("timed out waiting for {what}; last status: {last:#?}\n--- run.log ---\n{log}");
}

fn hard(st: &SchedulerStatus, desc: &str, state: &str) -> bool {
    service(st, desc).is_some_and(|s| s.state == state && s.state_type == "HARD")
}

#[test]
fn states_timeouts_output_periods_recovery_and_reload() {
    let dir = Dir(std::env::temp_dir().join(format!("shinken-e2e-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let ports = write_config(&dir.0, "");
    let _cluster = start(&dir.0);
    let token = token(&dir.0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sched = Client::new(
        &format!("http://127.0.0.1:{}", ports[1]),
        token.clone(),
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap();

    // Every exit code; soft then hard after 3 attempts.
    let st = wait_for(&rt, &sched, &dir.0, "every exit code HARD", 60, |st| {
        hard(st, "ok", "OK") && hard(st, "warning", "WARNING") && hard(st, "critical", "CRITICAL") && hard(st, "unknown", "UNKNOWN")
    });
    let crit = service(&st, "critical").unwrap();
    assert_eq!(crit.attempt, 3);
    assert_eq!(crit.max_check_attempts, 3);
    assert_eq!(crit.output, "CRITICAL: critical output");
    assert_eq!(service(&st, "ok").unwrap().output, "OK: ok output");
    assert_eq!(service(&st, "ok").unwrap().attempt, 1);

    // The scheduler logged the soft attempts spaced by retry_interval (2 s), then the hard one.
    let log = std::fs::read_to_string(dir.0.join("run.log")).unwrap();
    let alerts: Vec<&str> = log.lines().filter(|l| l.contains("SERVICE ALERT: box;critical;CRITICAL")).collect();
    assert!(alerts.len() >= 3, "{alerts:#?}");
    assert!(
        alerts[0].contains(";SOFT;1;") && alerts[1].contains(";SOFT;2;") && alerts[2].contains(";HARD;3;"),
        "{alerts:#?}"
    );
    let at = |l: &str| -> f64 {
        let ts = l
            .split_whitespace()
            .find(|w| w.contains('T') && w.ends_with('Z'))
            .unwrap_or_default();
        let time = ts.split('T').nth(1).unwrap_or("0:0:0Z").trim_end_matches('Z');
        let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap_or(0.0)).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    let gap = at(alerts[1]) - at(alerts[0]);
    assert!(gap >= 1.0, "retries are spaced by retry_interval: {gap} s between attempts 1 and 2");

    // A check that outlives its command timeout: killed, CRITICAL (timeout_exit_status 2).
    let st = wait_for(&rt, &sched, &dir.0, "the timeout", 60, |st| hard(st, "slow", "CRITICAL"));
    assert_eq!(service(&st, "slow").unwrap().output, "(Service Check Timed Out)");

    // Multi-line output with perfdata.
    let st = wait_for(&rt, &sched, &dir.0, "multi-line output", 30, |st| {
        service(st, "disk").is_some_and(|s| s.state == "OK")
    });
    let disk = service(&st, "disk").unwrap();
    assert_eq!(disk.output, "DISK OK - free space: / 3326 MB (56%);");
    assert_eq!(
        disk.long_output,
        "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);"
    );
    assert_eq!(
        disk.perf_data,
        "/=2643MB;5948;5958;0;5968 /boot=68MB;88;93;0;98 /home=69357MB;253404;253409;0;253414 /var/log=818MB;970;975;0;980"
    );

    // check_period honoured: a period with no valid time means no check, ever.
    let never = service(&st, "never").unwrap();
    assert_eq!((never.state.as_str(), never.last_check), ("PENDING", None));

    // Recovery: the plugin's answer flips to OK.
    wait_for(&rt, &sched, &dir.0, "flips HARD CRITICAL", 30, |st| hard(st, "flips", "CRITICAL"));
    std::fs::write(dir.0.join("flip-state"), "0\n").unwrap();
    let st = wait_for(&rt, &sched, &dir.0, "recovery", 30, |st| hard(st, "flips", "OK"));
    assert_eq!(service(&st, "flips").unwrap().attempt, 1);

    // Reload: a new service appears, the others keep their states.
    let before = scheduler_status(&rt, &sched).unwrap();
    let crit_check = service(&before, "critical").unwrap().last_check;
    let extra = "define service {\n    use svc\n    host_name box\n    service_description added\n    check_command dummy!0\n}\n";
    let objects = std::fs::read_to_string(dir.0.join("objects/objects.cfg")).unwrap();
    std::fs::write(dir.0.join("objects/objects.cfg"), format!("{objects}{extra}")).unwrap();
    let arbiter = Client::new(
        &format!("http://127.0.0.1:{}", ports[0]),
        token,
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .unwrap();
    let reloaded_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let reload: Value = rt
        .block_on(arbiter.post::<_, Value>("reload", &serde_json::json!({}), true))
        .expect("reload accepted");
    let _ = reload;
    let st = wait_for(&rt, &sched, &dir.0, "the reloaded part", 30, |st| service(st, "added").is_some());
    let crit = service(&st, "critical").unwrap();
    assert_eq!(
        (crit.state.as_str(), crit.state_type.as_str(), crit.attempt),
        ("CRITICAL", "HARD", 3),
        "kept across the reload"
    );
    assert!(crit.last_check >= crit_check, "not reset to PENDING");
    // The new service starts fresh: PENDING, or (1 s intervals) already checked, but only
    // after the reload; it inherits no state.
    let added = service(&st, "added").unwrap();
    assert!(
        added.state == "PENDING" || added.last_check.is_some_and(|t| t >= reloaded_at.floor()),
        "{added:?}"
    );
    wait_for(&rt, &sched, &dir.0, "the added service checked", 30, |st| hard(st, "added", "OK"));
}
