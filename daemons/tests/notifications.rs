//! Notifications and event handlers end to end, with real processes: `shinken run` starts an
//! arbiter, a scheduler, a poller and a reactionner on loopback ports chosen at run time; the
//! service's check is the real `check_dummy` plugin reading its exit code from a file, its
//! notification command and event handler are real shell scripts appending a line to a file.
//!
//! The story (interval_length=1, so minutes are seconds): the service goes CRITICAL SOFT (the
//! event handler runs), then HARD (PROBLEM #1), again after `notification_interval` (PROBLEM #2);
//! an ACKNOWLEDGE_SVC_PROBLEM through the scheduler's `run_external_commands` sends the
//! ACKNOWLEDGEMENT and stops the repeats; the acknowledgement removed and a downtime scheduled,
//! DOWNTIMESTART goes out and nothing else until DOWNTIMEEND, after which the problem repeats
//! again; the service recovers: RECOVERY, and the event handler runs again. The scheduler's `log`
//! broks carry the nagios.log lines.

use serde_json::Value;
use shinken::messages::{Broks, CommandOutcome, ExternalCommands, SchedulerStatus};
use shinken::protocol::{Client, Token};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A temporary directory, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `shinken run` in its own process group; the whole group is stopped on drop (panics included).
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

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Seconds between two PROBLEM notifications.
const NOTIFICATION_INTERVAL: f64 = 4.0;

fn write_config(dir: &Path) -> Vec<u16> {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let roles = ["arbiter", "scheduler", "poller", "reactionner"];
    let mut cfg = String::from(
        "interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n\
         $USER1$=/usr/lib/nagios/plugins\ncfg_dir=objects\n",
    );
    for (role, port) in roles.iter().zip(&ports) {
        cfg.push_str(&format!(
            "define {role} {{\n    {role}_name {role}-1\n    address 127.0.0.1\n    port {port}\n    check_interval 1\n    max_check_attempts 3\n    timeout 2\n}}\n"
        ));
    }
    std::fs::write(dir.join("shinken.cfg"), cfg).unwrap();
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    let d = dir.display();
    let notify = format!("#!/bin/sh\necho \"$(date +%s.%N) $1 $2 $3 $4\" >> {d}/notified\n");
    let handler = format!("#!/bin/sh\necho \"$(date +%s.%N) $1 $2 $3\" >> {d}/handled\n");
    std::fs::write(dir.join("notify.sh"), notify).unwrap();
    std::fs::write(dir.join("handler.sh"), handler).unwrap();
    for f in ["notify.sh", "handler.sh"] {
        std::fs::set_permissions(dir.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.join("state"), "0\n").unwrap();
    let interval = NOTIFICATION_INTERVAL;
    let objects = format!(
        "define timeperiod {{\n    timeperiod_name 24x7\n    alias always\n    monday 00:00-24:00\n    tuesday 00:00-24:00\n    wednesday 00:00-24:00\n    thursday 00:00-24:00\n    friday 00:00-24:00\n    saturday 00:00-24:00\n    sunday 00:00-24:00\n}}\n\
         define command {{\n    command_name from_file\n    command_line /bin/sh -c '$USER1$/check_dummy $(cat {d}/state) \"svc output\"'\n}}\n\
         define command {{\n    command_name notify-svc\n    command_line {d}/notify.sh \"$NOTIFICATIONTYPE$\" \"$SERVICESTATE$\" \"$SERVICENOTIFICATIONNUMBER$\" \"$CONTACTNAME$\"\n}}\n\
         define command {{\n    command_name notify-host\n    command_line {d}/notify.sh \"$NOTIFICATIONTYPE$\" \"$HOSTSTATE$\" \"$HOSTNOTIFICATIONNUMBER$\" \"$CONTACTNAME$\"\n}}\n\
         define command {{\n    command_name handler\n    command_line {d}/handler.sh \"$SERVICESTATE$\" \"$SERVICESTATETYPE$\" \"$SERVICEATTEMPT$\"\n}}\n\
         define contact {{\n    contact_name admin\n    email admin@example.com\n    service_notification_period 24x7\n    host_notification_period 24x7\n    service_notification_options w,u,c,r,f,s\n    host_notification_options d,u,r,f,s\n    service_notification_commands notify-svc\n    host_notification_commands notify-host\n}}\n\
         define contactgroup {{\n    contactgroup_name admins\n    members admin\n}}\n\
         define host {{\n    host_name box\n    address 127.0.0.1\n    max_check_attempts 1\n    contact_groups admins\n    notification_period 24x7\n}}\n\
         define service {{\n    host_name box\n    service_description svc\n    check_command from_file\n    check_interval 1\n    retry_interval 1\n    max_check_attempts 2\n    contact_groups admins\n    notification_interval {interval}\n    notification_period 24x7\n    event_handler handler\n    event_handler_enabled 1\n}}\n"
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

/// One line a script wrote: when, and its words.
#[derive(Debug, Clone)]
struct Line {
    at: f64,
    words: Vec<String>,
}

fn read_lines(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let at = it.next()?.parse().ok()?;
            Some(Line {
                at,
                words: it.map(str::to_string).collect(),
            })
        })
        .collect()
}

struct Test {
    dir: Dir,
    rt: tokio::runtime::Runtime,
    sched: Client,
    /// The `log` broks fetched so far (fetched often: a broker's queue is bounded).
    log_broks: std::cell::RefCell<Vec<String>>,
}

impl Test {
    fn notified(&self) -> Vec<Line> {
        read_lines(&self.dir.0.join("notified"))
    }

    fn handled(&self) -> Vec<Line> {
        read_lines(&self.dir.0.join("handled"))
    }

    fn of(&self, kind: &str) -> Vec<Line> {
        self.notified().into_iter().filter(|l| l.words[0] == kind).collect()
    }

    fn context(&self) -> String {
        let log = std::fs::read_to_string(self.dir.0.join("run.log")).unwrap_or_default();
        let status = self
            .rt
            .block_on(self.sched.get::<SchedulerStatus>("status", &[], false))
            .map(|s| format!("{:#?}", s.services))
            .unwrap_or_default();
        format!(
            "notified: {:#?}\nhandled: {:#?}\nstatus: {status}\n--- run.log ---\n{log}",
            self.notified(),
            self.handled()
        )
    }

    /// Waits (bounded) until `done` gives a value; panics with everything known otherwise.
    fn wait<T>(&self, what: &str, secs: u64, mut done: impl FnMut(&Test) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            self.collect();
            if let Some(v) = done(self) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}\n{}", self.context());
    }

    fn commands(&self, commands: Vec<String>) -> Vec<CommandOutcome> {
        self.rt
            .block_on(
                self.sched
                    .post::<_, Vec<CommandOutcome>>("run_external_commands", &ExternalCommands { commands }, false),
            )
            .unwrap()
    }

    /// Fetches the new log broks.
    fn collect(&self) {
        let new = self.broks();
        self.log_broks.borrow_mut().extend(new);
    }

    /// Sleeps `secs`, fetching broks meanwhile.
    fn sleep(&self, secs: f64) {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < until {
            self.collect();
            std::thread::sleep(Duration::from_millis(200).min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn broks(&self) -> Vec<String> {
        let b: Broks = self
            .rt
            .block_on(self.sched.get("get_broks", &[("bname", "test-broker".to_string())], false))
            .unwrap_or_default();
        b.broks
            .into_iter()
            .filter(|b| b.kind == "log")
            .filter_map(|b| b.data.get("log").and_then(Value::as_str).map(str::to_string))
            .collect()
    }
}

#[test]
fn problem_repeat_acknowledgement_downtime_recovery_and_event_handlers() {
    let dir = Dir(std::env::temp_dir().join(format!("shinken-notif-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let ports = write_config(&dir.0);
    let _cluster = start(&dir.0);
    let token = token(&dir.0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sched = Client::new(
        &format!("http://127.0.0.1:{}", ports[1]),
        token,
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap();
    let t = Test {
        dir,
        rt,
        sched,
        log_broks: Default::default(),
    };
    // Registers as a broker as soon as the part is there, so the log broks queue for us; the
    // service starts OK, then goes CRITICAL.
    t.wait("the service OK", 60, |t| {
        t.rt.block_on(t.sched.get::<SchedulerStatus>("status", &[], false))
            .ok()
            .filter(|s| s.services.iter().any(|s| s.state == "OK"))
    });
    std::fs::write(t.dir.0.join("state"), "2\n").unwrap();

    // SOFT: the event handler runs on the soft change; then HARD: PROBLEM #1, and #2 one
    // notification_interval later.
    let soft = t.wait("the event handler of the soft change", 60, |t| {
        t.handled().into_iter().find(|l| l.words == ["CRITICAL", "SOFT", "1"])
    });
    let first = t.wait("PROBLEM #1", 60, |t| t.of("PROBLEM").into_iter().next());
    assert_eq!(first.words, ["PROBLEM", "CRITICAL", "1", "admin"]);
    assert!(first.at >= soft.at, "the problem goes out after the soft attempt");
    assert!(
        t.handled().iter().any(|l| l.words == ["CRITICAL", "HARD", "2"]),
        "the event handler runs on the hard change too: {:#?}",
        t.handled()
    );
    let second = t.wait("PROBLEM #2", 60, |t| t.of("PROBLEM").into_iter().nth(1));
    assert_eq!(second.words, ["PROBLEM", "CRITICAL", "2", "admin"]);
    let gap = second.at - first.at;
    assert!(
        (NOTIFICATION_INTERVAL - 1.0..=NOTIFICATION_INTERVAL + 4.0).contains(&gap),
        "PROBLEM #2 came {gap:.2} s after #1 (interval {NOTIFICATION_INTERVAL} s)\n{}",
        t.context()
    );

    // Acknowledged: the ACKNOWLEDGEMENT goes out, the repeats stop.
    let ts = now() as i64;
    let out = t.commands(vec![format!("[{ts}] ACKNOWLEDGE_SVC_PROBLEM;box;svc;1;1;0;tester;looking at it")]);
    assert!(out.iter().all(|o| o.ok), "{out:?}");
    let ack = t.wait("the ACKNOWLEDGEMENT", 60, |t| t.of("ACKNOWLEDGEMENT").into_iter().next());
    assert_eq!(ack.words[1..], ["CRITICAL", "2", "admin"]);
    let problems_at_ack = t.of("PROBLEM").len();
    t.sleep(NOTIFICATION_INTERVAL * 2.5);
    assert_eq!(
        t.of("PROBLEM").len(),
        problems_at_ack,
        "no repeat while acknowledged\n{}",
        t.context()
    );

    // The acknowledgement removed and a downtime scheduled at once: DOWNTIMESTART, then silence
    // until DOWNTIMEEND, then the problem repeats again.
    let ts = now() as i64;
    let end = ts + 10;
    let out = t.commands(vec![
        format!("[{ts}] REMOVE_SVC_ACKNOWLEDGEMENT;box;svc"),
        format!("[{ts}] SCHEDULE_SVC_DOWNTIME;box;svc;{};{end};1;0;0;tester;maintenance", ts - 1),
    ]);
    assert!(out.iter().all(|o| o.ok), "{out:?}");
    let dt_start = t.wait("the DOWNTIMESTART", 60, |t| t.of("DOWNTIMESTART").into_iter().next());
    let dt_end = t.wait("the DOWNTIMEEND", 60, |t| t.of("DOWNTIMEEND").into_iter().next());
    assert!(dt_end.at - dt_start.at >= 7.0, "{dt_start:?} {dt_end:?}");
    // The scripts run concurrently: a PROBLEM raised right after the downtime's end may write
    // its line just before DOWNTIMEEND's. The scheduler's log (in order) is exact, below.
    let during: Vec<Line> = t
        .of("PROBLEM")
        .into_iter()
        .filter(|l| l.at > ack.at && l.at < dt_end.at - 1.5)
        .collect();
    assert!(
        during.is_empty(),
        "no PROBLEM while acknowledged or in downtime: {during:#?}\n{}",
        t.context()
    );
    let again = t.wait("PROBLEM after the downtime", 60, |t| {
        t.of("PROBLEM").into_iter().find(|l| l.at > ack.at)
    });
    assert!(again.at > dt_end.at - 1.5, "{again:?} {dt_end:?}");
    assert_eq!(again.words, ["PROBLEM", "CRITICAL", "3", "admin"]);

    // Recovery: RECOVERY (number 0) and the event handler of the recovery.
    std::fs::write(t.dir.0.join("state"), "0\n").unwrap();
    let rec = t.wait("the RECOVERY", 60, |t| t.of("RECOVERY").into_iter().next());
    assert_eq!(rec.words, ["RECOVERY", "OK", "0", "admin"]);
    t.wait("the event handler of the recovery", 60, |t| {
        t.handled().into_iter().find(|l| l.words == ["OK", "HARD", "1"])
    });
    // Nothing more after the recovery.
    let total = t.notified().len();
    t.sleep(NOTIFICATION_INTERVAL + 1.0);
    assert_eq!(t.notified().len(), total, "{}", t.context());

    // The nagios.log lines as log broks, and in the scheduler's log.
    let log_broks = t.log_broks.borrow().clone();
    let want = [
        "SERVICE EVENT HANDLER: box;svc;CRITICAL;SOFT;1;handler",
        "SERVICE NOTIFICATION: admin;box;svc;CRITICAL;notify-svc;CRITICAL: svc output",
        "SERVICE NOTIFICATION: admin;box;svc;ACKNOWLEDGEMENT (CRITICAL);notify-svc;CRITICAL: svc output",
        "SERVICE NOTIFICATION: admin;box;svc;DOWNTIMESTART (CRITICAL);notify-svc;CRITICAL: svc output",
        "SERVICE NOTIFICATION: admin;box;svc;DOWNTIMEEND (CRITICAL);notify-svc;CRITICAL: svc output",
        "SERVICE NOTIFICATION: admin;box;svc;OK;notify-svc;OK: svc output",
        "SERVICE EVENT HANDLER: box;svc;OK;HARD;1;handler",
    ];
    let run_log = std::fs::read_to_string(t.dir.0.join("run.log")).unwrap_or_default();
    for w in want {
        assert!(log_broks.iter().any(|l| l == w), "no log brok '{w}' in {log_broks:#?}");
        assert!(run_log.contains(w), "'{w}' not in the scheduler's log\n{}", t.context());
    }
    // In the scheduler's order: no PROBLEM between the acknowledgement and the end of the
    // downtime (its STOPPED alert); DOWNTIMESTART in between.
    let from = log_broks.iter().position(|l| l.contains(";ACKNOWLEDGEMENT (")).unwrap();
    let to = log_broks
        .iter()
        .position(|l| l.starts_with("SERVICE DOWNTIME ALERT: box;svc;STOPPED;"))
        .unwrap();
    let between = &log_broks[from..to];
    assert!(
        !between
            .iter()
            .any(|l| l.starts_with("SERVICE NOTIFICATION: admin;box;svc;CRITICAL;")),
        "{between:#?}"
    );
    assert!(between.iter().any(|l| l.contains(";DOWNTIMESTART (")), "{between:#?}");
    let problems = log_broks
        .iter()
        .filter(|l| l.starts_with("SERVICE NOTIFICATION: admin;box;svc;CRITICAL;"))
        .count();
    assert_eq!(problems, t.of("PROBLEM").len(), "one log line per PROBLEM sent");
}
