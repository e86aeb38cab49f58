//! Freshness of a passive service and the on-demand host check of a DOWN host's services, end to
//! end with real processes: `shinken run` starts an arbiter, a scheduler, a poller, a
//! reactionner and a broker on loopback ports chosen at run time (interval_length=1);
//! checks are the real `check_dummy` plugin, notifications a real script appending a line to a
//! file. The whole process group is stopped on drop, panics included.
//!
//! - `a_stale_passive_service_gets_its_freshness_check`: a passive-only service
//!   (`active_checks_enabled 0`, `check_freshness 1`, `freshness_threshold 3`) is given an OK
//!   result through the scheduler's `run_external_commands`, then nothing: the scheduler logs
//!   that its results are stale and runs its check_command (`check_dummy 2`): CRITICAL.
//! - `a_failing_service_checks_its_host_on_demand_and_stays_silent_while_it_is_down`: the host is
//!   checked every hour (check_interval 3600); when its service fails, the host is checked at once
//!   (it goes DOWN long before its own interval, and before the service, retried every 3 s,
//!   reaches HARD); the host's PROBLEM goes out, the service's does not (a service of a DOWN host
//!   is silent, as Shinken does).

use shinken::messages::{CommandOutcome, ExternalCommands, ItemStatus, SchedulerStatus};
use shinken::protocol::{Client, Token};
use shinken_testkit::TempDir;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// `shinken run` in its own process group; the whole group is stopped on drop (panics included).
struct Cluster {
    child: Child,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: the process group this test created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let l: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    l.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The main file (daemons and `extra` settings), the notification script and a 24x7 contact;
/// `objects` appended to the objects file.
fn write_config(dir: &Path, extra: &str, objects: &str) -> u16 {
    // Every role defined, on ports chosen now: a missing one would be Shinken's `Default-<Role>`
    // on its fixed port (two tests at once would collide).
    let ports = free_ports(5);
    let mut cfg =
        format!("interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n$USER1$={PLUGINS}\n{extra}cfg_dir=objects\n");
    for (role, port) in ["arbiter", "scheduler", "poller", "reactionner", "broker"].iter().zip(&ports) {
        cfg.push_str(&format!(
            "define {role} {{\n    {role}_name {role}-1\n    address 127.0.0.1\n    port {port}\n    check_interval 1\n    max_check_attempts 3\n    timeout 2\n}}\n"
        ));
    }
    std::fs::write(dir.join("shinken.cfg"), cfg).unwrap();
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("notify.sh"),
        format!("#!/bin/sh\necho \"$(date +%s.%N)|$1|$2|$3|$4\" >> {d}/notified\n"),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("notify.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let common = format!(
        "define timeperiod {{\n    timeperiod_name 24x7\n    alias always\n    monday 00:00-24:00\n    tuesday 00:00-24:00\n    wednesday 00:00-24:00\n    thursday 00:00-24:00\n    friday 00:00-24:00\n    saturday 00:00-24:00\n    sunday 00:00-24:00\n}}\n\
         define command {{\n    command_name notify-svc\n    command_line {d}/notify.sh \"$NOTIFICATIONTYPE$\" \"$HOSTNAME$/$SERVICEDESC$\" \"$SERVICESTATE$\" \"$SERVICENOTIFICATIONNUMBER$\"\n}}\n\
         define command {{\n    command_name notify-host\n    command_line {d}/notify.sh \"$NOTIFICATIONTYPE$\" \"$HOSTNAME$\" \"$HOSTSTATE$\" \"$HOSTNOTIFICATIONNUMBER$\"\n}}\n\
         define contact {{\n    contact_name admin\n    email admin@example.com\n    service_notification_period 24x7\n    host_notification_period 24x7\n    service_notification_options w,u,c,r\n    host_notification_options d,u,r\n    service_notification_commands notify-svc\n    host_notification_commands notify-host\n}}\n"
    );
    std::fs::write(dir.join("objects/objects.cfg"), format!("{common}{objects}")).unwrap();
    ports[1]
}

/// Fields drop in order: the processes stop before their directory is removed.
struct Test {
    _cluster: Cluster,
    dir: TempDir,
    rt: tokio::runtime::Runtime,
    sched: Client,
}

impl Test {
    fn start(prefix: &str, extra: &str, objects: impl Fn(&Path) -> String) -> Test {
        let dir = TempDir::new(prefix).unwrap();
        let port = write_config(dir.path(), extra, &objects(dir.path()));
        let child = Command::new(env!("CARGO_BIN_EXE_shinken"))
            .arg("run")
            .arg(dir.path())
            .env("SHINKEN_LOG", "info")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("run.log")).unwrap())
            .spawn()
            .unwrap();
        let cluster = Cluster { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        let token: Token = loop {
            if let Ok(t) = shinken::protocol::load_token(&dir.path().join("shinken.token")) {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "no token file created\n{}",
                std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let sched = Client::new(
            &format!("http://127.0.0.1:{port}"),
            token,
            Duration::from_secs(2),
            Duration::from_secs(10),
        )
        .unwrap();
        Test {
            _cluster: cluster,
            dir,
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            sched,
        }
    }

    fn status(&self) -> Option<SchedulerStatus> {
        self.rt.block_on(self.sched.get::<SchedulerStatus>("status", &[], false)).ok()
    }

    fn item(&self, host: &str, service: Option<&str>) -> Option<ItemStatus> {
        let s = self.status()?;
        let list = if service.is_some() { s.services } else { s.hosts };
        list.into_iter()
            .find(|i| i.host_name == host && i.service_description.as_deref() == service)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run.log")).unwrap_or_default()
    }

    /// The notification script's lines: (time, type, what, state, number).
    fn notified(&self) -> Vec<(f64, String, String, String, String)> {
        std::fs::read_to_string(self.dir.path().join("notified"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f.len() == 5).then(|| (f[0].parse().unwrap_or(0.0), f[1].into(), f[2].into(), f[3].into(), f[4].into()))
            })
            .collect()
    }

    fn context(&self) -> String {
        format!(
            "status: {:#?}\nnotified: {:#?}\n--- run.log ---\n{}",
            self.status(),
            self.notified(),
            self.log()
        )
    }

    /// Polls `f` every 200 ms until it gives a value; panics with everything known after `secs`.
    fn wait<T>(&self, what: &str, secs: u64, mut f: impl FnMut(&Test) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", self.context());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn commands(&self, commands: Vec<String>) -> Vec<CommandOutcome> {
        self.rt
            .block_on(
                self.sched
                    .post::<_, Vec<CommandOutcome>>("run_external_commands", &ExternalCommands { commands }, false),
            )
            .unwrap()
    }
}

#[test]
fn a_stale_passive_service_gets_its_freshness_check() {
    let t = Test::start("shinken-freshness", "additional_freshness_latency=1\n", |_| {
        "define command {\n    command_name stale_check\n    command_line $USER1$/check_dummy 2 \"forced by freshness\"\n}\n\
         define command {\n    command_name host_up\n    command_line $USER1$/check_dummy 0 \"up\"\n}\n\
         define host {\n    host_name box\n    address 127.0.0.1\n    check_command host_up\n    check_interval 1\n    max_check_attempts 1\n}\n\
         define service {\n    host_name box\n    service_description passive\n    check_command stale_check\n    active_checks_enabled 0\n    passive_checks_enabled 1\n    check_freshness 1\n    freshness_threshold 3\n    check_interval 1\n    retry_interval 1\n    max_check_attempts 1\n    notifications_enabled 0\n}\n"
            .to_string()
    });
    t.wait("the scheduler's part", 60, |t| t.item("box", Some("passive")));
    let ts = now() as i64;
    let out = t.commands(vec![format!("[{ts}] PROCESS_SERVICE_CHECK_RESULT;box;passive;0;passive all good")]);
    assert!(out.iter().all(|o| o.ok), "{out:?}");
    let ok = t.wait("the passive OK", 30, |t| {
        t.item("box", Some("passive"))
            .filter(|i| i.state == "OK" && i.output.contains("passive all good"))
    });
    let passive_at = ok.last_check.unwrap_or_else(now);
    // Then nothing: the freshness check runs check_dummy 2.
    let crit = t.wait("the freshness check's CRITICAL", 90, |t| {
        t.item("box", Some("passive")).filter(|i| i.state == "CRITICAL")
    });
    assert!(crit.output.contains("forced by freshness"), "{crit:?}");
    assert!(
        crit.last_check.unwrap_or(0.0) >= passive_at + 3.0,
        "{crit:?} (passive result at {passive_at})"
    );
    let log = t.log();
    assert!(
        log.contains("The results of service 'passive' on host 'box' are stale by")
            && log.contains("I'm forcing an immediate check of the service."),
        "no stale line\n{}",
        t.context()
    );
    assert!(log.contains("SERVICE ALERT: box;passive;CRITICAL;HARD;1;"), "{}", t.context());
}

#[test]
fn a_failing_service_checks_its_host_on_demand_and_stays_silent_while_it_is_down() {
    let t = Test::start("shinken-on-demand", "cached_host_check_horizon=1\n", |d| {
        std::fs::write(d.join("host_state"), "0\n").unwrap();
        std::fs::write(d.join("svc_state"), "0\n").unwrap();
        let d = d.display();
        format!(
            "define command {{\n    command_name host_from_file\n    command_line /bin/sh -c '$USER1$/check_dummy $(cat {d}/host_state) \"host output\"'\n}}\n\
             define command {{\n    command_name svc_from_file\n    command_line /bin/sh -c '$USER1$/check_dummy $(cat {d}/svc_state) \"svc output\"'\n}}\n\
             define host {{\n    host_name box\n    address 127.0.0.1\n    check_command host_from_file\n    check_interval 3600\n    retry_interval 3600\n    max_check_attempts 1\n    contacts admin\n    notification_period 24x7\n    notification_interval 3600\n}}\n\
             define service {{\n    host_name box\n    service_description svc\n    check_command svc_from_file\n    check_interval 1\n    retry_interval 3\n    max_check_attempts 3\n    contacts admin\n    notification_period 24x7\n    notification_interval 3600\n}}\n"
        )
    });
    let host0 = t.wait("the host UP and the service OK", 60, |t| {
        let h = t.item("box", None).filter(|h| h.state == "UP" && h.last_check.is_some())?;
        t.item("box", Some("svc")).filter(|s| s.state == "OK")?;
        Some(h)
    });
    let host_checked = host0.last_check.unwrap();
    // Past the cached horizon (1 s) after the host's only check: the host and the service fail.
    t.wait("the cached host check horizon to pass", 10, |_| {
        (now() > host_checked + 2.0).then_some(())
    });
    std::fs::write(t.dir.path().join("host_state"), "2\n").unwrap();
    std::fs::write(t.dir.path().join("svc_state"), "2\n").unwrap();
    let flipped = now();

    // The host is checked on demand: DOWN HARD, long before its hour.
    let down = t.wait("the host DOWN (on demand)", 60, |t| {
        t.item("box", None).filter(|h| h.state == "DOWN")
    });
    assert_eq!(down.state_type, "HARD", "{down:?}");
    assert!(down.last_check.unwrap_or(0.0) < host_checked + 3600.0 - 60.0 && down.last_check.unwrap_or(0.0) >= flipped - 1.0);
    // The host's PROBLEM goes out; the service reaches CRITICAL HARD (its problem raised while
    // the host is DOWN) and a few more results after that.
    t.wait("the host's PROBLEM notification", 60, |t| {
        t.notified().into_iter().find(|n| n.1 == "PROBLEM" && n.2 == "box" && n.3 == "DOWN")
    });
    let hard = t.wait("the service CRITICAL HARD", 60, |t| {
        t.item("box", Some("svc"))
            .filter(|s| s.state == "CRITICAL" && s.state_type == "HARD")
    });
    let hard_at = hard.last_check.unwrap_or(0.0);
    assert!(
        down.last_check.unwrap_or(f64::MAX) <= hard_at,
        "the host was DOWN before the service went HARD: {down:?} {hard:?}"
    );
    t.wait("three more service results while the host is DOWN", 60, |t| {
        t.item("box", Some("svc")).filter(|s| s.last_check.unwrap_or(0.0) >= hard_at + 3.0)
    });
    assert_eq!(t.item("box", None).map(|h| h.state), Some("DOWN".to_string()), "{}", t.context());
    assert!(
        t.log().contains("HOST ALERT: box;DOWN;HARD;1;"),
        "the host's alert\n{}",
        t.context()
    );
    let svc_notes: Vec<_> = t.notified().into_iter().filter(|n| n.2 == "box/svc").collect();
    assert!(
        svc_notes.is_empty(),
        "a service of a DOWN host notified: {svc_notes:?}\n{}",
        t.context()
    );
    assert!(!t.log().contains("SERVICE NOTIFICATION: admin;box;svc;"), "{}", t.context());
}
