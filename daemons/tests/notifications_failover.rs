//! Notifications are not duplicated when a scheduler fails over (issue 6), on the HA course's two
//! boxes (`support/mod.rs`): the course's `notify-by-log` command is replaced, in both boxes'
//! trees, by a real script appending `time|type|host/service|state|number` to one file, and the
//! templates' `notification_interval` is shortened to [`INTERVAL`] seconds (interval_length=1).
//!
//! courses-b/Always critical goes CRITICAL HARD and PROBLEM #1 runs once; once scheduler-master
//! has written its state to MongoDB since that notification, it is SIGKILLed alone and
//! scheduler-spare takes the part over from the retained state. The spare must not send the
//! PROBLEM again before `notification_interval` has passed since #1, and the next one it sends
//! is #2 (the counter continued).

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};
use support::{Course, Timings, wait_for};

/// `notification_interval` of the course's templates for this run (seconds).
const INTERVAL: f64 = 40.0;
/// As Shinken, the next PROBLEM is due at the master's `t_to_go` + interval, `t_to_go` being the
/// (whole second) time the service went non-OK, while the script of #1 runs after the scheduler's
/// tick and the reactionner's poll: under load the scripts' gap can be a few seconds shorter than
/// the interval. A duplicate by the takeover comes when the spare takes over, some 10 s after #1.
const SLACK: f64 = 10.0;
const SERVICE: &str = "courses-b/Always critical";

/// One notification the script wrote.
#[derive(Debug, Clone)]
struct Sent {
    at: f64,
    kind: String,
    what: String,
    state: String,
    number: u32,
}

fn sent(path: &Path) -> Vec<Sent> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 5).then(|| Sent {
                at: f[0].parse().unwrap_or(0.0),
                kind: f[1].to_string(),
                what: f[2].to_string(),
                state: f[3].to_string(),
                number: f[4].trim().parse().unwrap_or(0),
            })
        })
        .collect()
}

fn problems(path: &Path) -> Vec<Sent> {
    sent(path)
        .into_iter()
        .filter(|s| s.kind == "PROBLEM" && s.what == SERVICE)
        .collect()
}

/// A scheduler's open `/metrics` value.
fn metric(c: &Course, scheduler: &str, name: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let (_, addr, port, _) = &c.daemons[scheduler];
    let mut s = std::net::TcpStream::connect_timeout(&(*addr, *port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The course, its processes stopped before its directory is removed (panics included).
struct Run(Course);

impl Drop for Run {
    fn drop(&mut self) {
        self.0.box_a.kill_all();
        self.0.box_b.kill_all();
        self.0.mongo.kill();
    }
}

impl std::ops::Deref for Run {
    type Target = Course;
    fn deref(&self) -> &Course {
        &self.0
    }
}

impl std::ops::DerefMut for Run {
    fn deref_mut(&mut self) -> &mut Course {
        &mut self.0
    }
}

/// Both boxes' trees: the notification command -> the script, the interval -> [`INTERVAL`].
fn adapt(etc: &Path, script: &Path) {
    let cmds = etc.join("commands/commands.cfg");
    let text = fs::read_to_string(&cmds).unwrap();
    let mut out = String::new();
    let mut replaced = false;
    for line in text.lines() {
        if line.contains("notifications.log") {
            out.push_str(&format!(
                "    command_line    {} \"$NOTIFICATIONTYPE$\" \"$HOSTNAME$/$SERVICEDESC$\" \"$SERVICESTATE$\" \"$SERVICENOTIFICATIONNUMBER$\"\n",
                script.display()
            ));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(replaced, "no notification command in {}:\n{text}", cmds.display());
    fs::write(&cmds, out).unwrap();
    let tpl = etc.join("templates/templates.cfg");
    let text = fs::read_to_string(&tpl).unwrap();
    assert!(text.contains("notification_interval   60"), "{text}");
    fs::write(
        &tpl,
        text.replace("notification_interval   60", &format!("notification_interval   {INTERVAL}")),
    )
    .unwrap();
}

#[test]
fn notifications_are_not_duplicated_when_the_scheduler_fails_over() {
    let mut c = Run(Course::prepare("shinken-notif-failover", Timings::TEST));
    let file = c.tmp.path().join("notified");
    let script = c.tmp.path().join("notify.sh");
    fs::write(
        &script,
        format!("#!/bin/sh\necho \"$(date +%s.%N)|$1|$2|$3|$4\" >> {}\n", file.display()),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    adapt(&c.etc_a, &script);
    adapt(&c.etc_b, &script);

    // Course::start's sequence, on the adapted trees.
    let names: Vec<String> = c.daemons.iter().filter(|(_, d)| d.0 != "arbiter").map(|(n, _)| n.clone()).collect();
    for n in &names {
        c.start_daemon(n);
    }
    for n in &names {
        c.wait_health(n);
    }
    c.start_daemon("arbiter-master");
    c.start_daemon("arbiter-spare");
    wait_for(
        Duration::from_secs(60),
        "scheduler-master to hold part 0",
        || c.managed("scheduler-master").and_then(|m| m.get(&0).copied()),
        || c.all_logs(),
    );
    let info = |c: &Course| format!("notified: {:#?}\n{}", sent(&file), c.all_logs());

    // PROBLEM #1, sent once, raised by scheduler-master.
    let first = wait_for(
        Duration::from_secs(90),
        "PROBLEM #1 of courses-b/Always critical",
        || problems(&file).into_iter().next(),
        || info(&c),
    );
    assert_eq!((first.state.as_str(), first.number), ("CRITICAL", 1), "{first:?}");
    assert!(
        c.log("scheduler-master")
            .contains("SERVICE NOTIFICATION: admin;courses-b;Always critical;CRITICAL;notify-by-log;"),
        "{}",
        info(&c)
    );
    // The master's state after the notification in MongoDB: its writer drained, then written
    // again three times (records written since; every item is checked every second).
    let w0 = metric(&c, "scheduler-master", "shinken_scheduler_retention_written_total").unwrap();
    let mut last = w0;
    let mut rounds = 0;
    wait_for(
        Duration::from_secs(60),
        "scheduler-master's retention writes after PROBLEM #1",
        || {
            let w = metric(&c, "scheduler-master", "shinken_scheduler_retention_written_total")?;
            if w > last {
                last = w;
                rounds += 1;
            }
            (rounds >= 3 && metric(&c, "scheduler-master", "shinken_scheduler_retention_queued") == Some(0)).then_some(())
        },
        || info(&c),
    );
    assert_eq!(problems(&file).len(), 1, "PROBLEM #1 sent once\n{}", info(&c));

    // scheduler-master dies; the spare takes the part over with the retained state.
    let killed = c.box_a.kill_one("scheduler-master");
    let (snap, _, _) = c.watch_takeover("scheduler-spare", killed, Duration::from_secs(60));
    let item = snap.item(SERVICE).cloned();
    assert!(
        item.as_ref().is_some_and(|i| i.state == "CRITICAL" && i.state_type == "HARD"),
        "{item:?}\n{}",
        snap.table()
    );

    // Nothing until notification_interval after #1; then #2 (the counter went on).
    let second = wait_for(
        Duration::from_secs_f64(INTERVAL * 3.0),
        "the next PROBLEM from scheduler-spare",
        || problems(&file).into_iter().nth(1),
        || info(&c),
    );
    let gap = second.at - first.at;
    assert!(
        gap >= INTERVAL - SLACK,
        "PROBLEM sent again {gap:.1} s after #1 (notification_interval {INTERVAL} s): duplicated by the takeover\n{}",
        info(&c)
    );
    assert_eq!((second.state.as_str(), second.number), ("CRITICAL", 2), "{second:?}\n{}", info(&c));
    assert!(
        c.log("scheduler-spare")
            .contains("SERVICE NOTIFICATION: admin;courses-b;Always critical;CRITICAL;notify-by-log;"),
        "the spare sent #2\n{}",
        info(&c)
    );
    let killed_at = killed.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(second.at > killed_at, "{second:?}");
    assert_eq!(problems(&file).len(), 2, "{}", info(&c));
}
