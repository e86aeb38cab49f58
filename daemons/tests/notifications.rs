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
//! broks carry the nagios.log lines; a broker (started by the same `shinken run`) shows every
//! notification in its `/api/v1/events`, counts them in `/metrics`
//! (`shinken_broker_notifications_total`) and writes their `SERVICE NOTIFICATION:` lines to its
//! monitoring log file.

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

/// `n` distinct free ports (all held until all are found).
fn free_ports(n: usize) -> Vec<u16> {
    let l: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    l.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// `GET path` without a token on 127.0.0.1:`port`: the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Some(body.to_string());
    }
    let (mut out, mut rest) = (String::new(), body);
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(after.get(..n)?);
        rest = after.get(n + 2..)?;
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Seconds between two PROBLEM notifications.
const NOTIFICATION_INTERVAL: f64 = 4.0;

fn write_config(dir: &Path) -> Vec<u16> {
    let ports = free_ports(5);
    let roles = ["arbiter", "scheduler", "poller", "reactionner", "broker"];
    let mut cfg = String::from(
        "interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n\
         $USER1$=/usr/lib/nagios/plugins\ncfg_dir=objects\n",
    );
    for (role, port) in roles.iter().zip(&ports) {
        let modules = if *role == "broker" { "    modules monitoring-log\n" } else { "" };
        cfg.push_str(&format!(
            "define {role} {{\n    {role}_name {role}-1\n    address 127.0.0.1\n    port {port}\n    check_interval 1\n    max_check_attempts 3\n    timeout 2\n{modules}}}\n"
        ));
    }
    cfg.push_str(&format!(
        "define module {{\n    module_name monitoring-log\n    module_type simple_log\n    path {}\n}}\n",
        dir.join("monitoring.log").display()
    ));
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

/// Fields drop in order: the processes stop before their directory is removed.
struct Test {
    _cluster: Cluster,
    dir: Dir,
    rt: tokio::runtime::Runtime,
    sched: Client,
    /// The broker's port.
    broker: u16,
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
    let cluster = start(&dir.0);
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
        _cluster: cluster,
        dir,
        rt,
        sched,
        broker: ports[4],
        log_broks: Default::default(),
    };
    // Registers as a broker as soon as the part is there, so the log broks queue for us; the
    // service starts OK, then goes CRITICAL.
    t.wait("the service OK", 60, |t| {
        t.rt.block_on(t.sched.get::<SchedulerStatus>("status", &[], false))
            .ok()
            .filter(|s| s.services.iter().any(|s| s.state == "OK"))
    });
    // The broker pulls broks from the scheduler before anything happens (it shows the service).
    t.wait("the broker to show the service", 60, |t| {
        http_get(t.broker, "/api/v1/services").filter(|b| b.contains("\"svc\""))
    });
    std::fs::write(t.dir.0.join("state"), "2\n").unwrap();

    // SOFT: the event handler runs on the soft change; then HARD: PROBLEM #1, and #2 one
    // notification_interval later.
    let soft = t.wait("the event handler of the soft change", 60, |t| {
        t.handled().into_iter().find(|l| l.words == ["CRITICAL", "SOFT", "1"])
    });
    let first = t.wait("PROBLEM #1", 60, |t| t.of("PROBLEM").into_iter().next());
    assert_eq!(first.words, ["PROBLEM", "CRITICAL", "1", "admin"]);
    // The reactionner may run the soft handler and the PROBLEM in one batch, concurrently, under
    // load: the scripts' order is not the scheduler's (checked exactly on the log broks below).
    let _ = soft;
    t.wait("the event handler of the hard change", 60, |t| {
        t.handled().into_iter().find(|l| l.words == ["CRITICAL", "HARD", "2"])
    });
    let second = t.wait("PROBLEM #2", 60, |t| t.of("PROBLEM").into_iter().nth(1));
    assert_eq!(second.words, ["PROBLEM", "CRITICAL", "2", "admin"]);
    // As Shinken, #2 is due at #1's `t_to_go` (the whole second the service went CRITICAL) +
    // the interval; #1's script ran after the scheduler's tick and the reactionner's poll, so
    // under load the scripts' gap can be shorter than the interval by up to a couple of seconds.
    let gap = second.at - first.at;
    assert!(
        (NOTIFICATION_INTERVAL - 2.5..=NOTIFICATION_INTERVAL + 6.0).contains(&gap),
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
    // In the scheduler's order: the soft handler, then PROBLEM #1.
    let soft_i = log_broks
        .iter()
        .position(|l| l == "SERVICE EVENT HANDLER: box;svc;CRITICAL;SOFT;1;handler")
        .unwrap();
    let first_i = log_broks
        .iter()
        .position(|l| l.starts_with("SERVICE NOTIFICATION: admin;box;svc;CRITICAL;"))
        .unwrap();
    assert!(soft_i < first_i, "the problem goes out after the soft attempt: {log_broks:#?}");
    // No PROBLEM between the acknowledgement and the end of the
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

    // The broker: every notification in /api/v1/events, counted in /metrics, in its log file.
    let sent: Vec<String> = log_broks
        .iter()
        .filter(|l| l.starts_with("SERVICE NOTIFICATION: "))
        .cloned()
        .collect();
    let events: Value = t.wait("the broker's events to list every notification", 60, |t| {
        let v: Value = serde_json::from_str(&http_get(t.broker, "/api/v1/events")?).ok()?;
        (v["notifications"].as_array()?.len() >= sent.len()).then_some(v)
    });
    let listed = events["notifications"].as_array().unwrap();
    assert_eq!(listed.len(), sent.len(), "{events:#}\n{sent:#?}");
    for kind in [
        "CRITICAL",
        "ACKNOWLEDGEMENT (CRITICAL)",
        "DOWNTIMESTART (CRITICAL)",
        "DOWNTIMEEND (CRITICAL)",
        "OK",
    ] {
        let want = sent.iter().filter(|l| l.split(';').nth(3) == Some(kind)).count();
        let got = listed
            .iter()
            .filter(|n| {
                n["notification_type"] == kind
                    && n["contact"] == "admin"
                    && n["host_name"] == "box"
                    && n["service_description"] == "svc"
                    && n["command"] == "notify-svc"
            })
            .count();
        assert!(want >= 1 && got == want, "{kind}: {got} listed, {want} sent\n{events:#}");
    }
    let metric = t.wait("shinken_broker_notifications_total", 60, |t| {
        http_get(t.broker, "/metrics")?
            .lines()
            .find_map(|l| l.strip_prefix("shinken_broker_notifications_total "))
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    assert_eq!(metric, sent.len(), "{sent:#?}");
    let file = t.dir.0.join("monitoring.log");
    let in_file = t.wait("the SERVICE NOTIFICATION lines in the monitoring log file", 60, |_| {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest.to_string()))
            .filter(|l| l.starts_with("SERVICE NOTIFICATION: "))
            .collect();
        (lines.len() >= sent.len()).then_some(lines)
    });
    assert_eq!(in_file, sent, "the monitoring log's notifications, in the scheduler's order");
}
