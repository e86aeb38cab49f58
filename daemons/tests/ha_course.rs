//! The HA course ("Online course 4: High Availability", `shared/corpus/course4-etc`), end to end
//! with real processes: box courses-a (every master, 127.0.0.2) and box courses-b (every spare,
//! 127.0.0.3), each from its own copy of the course's files, and the course's MongoDB retention
//! (`secantusd-py` on 127.0.0.4). See `support/mod.rs` for what the copies change (ports, probe
//! timings, deterministic plugins).
//!
//! - `box_a_dies_and_box_b_takes_over_with_the_states`: the course's test. States are varied
//!   (CRITICAL HARD, WARNING SOFT 2, an acknowledged problem, a downtime), box A is SIGKILLed at
//!   once; the spare arbiter leads, scheduler-spare holds the part with a higher epoch and
//!   starts from the master's states (none PENDING, nothing older than 1 s lost), checks flow.
//! - `only_scheduler_master_dies`: the part moves, states kept, nothing PENDING.
//! - `the_master_scheduler_returns_and_stays_idle`: after the part moved, scheduler-master comes
//!   back: it stays idle, the spare keeps the part, the retention records keep the spare's epoch.
//! - `mongodb_dies_and_returns_then_the_master_dies`: checks go on while MongoDB is down;
//!   retention catches up after its restart (a takeover after that sees recent states).
//!
//! The server binary: `$SECANTUSD`, else `secantusd-py` on PATH, else
//! `/opt/shinken-venv/bin/secantusd-py`. Without it these tests fail.

mod support;

use shinken::retention::{MongoStore, RetentionStore};
use std::process::Command;
use std::time::{Duration, SystemTime};
use support::{BIN, Course, Snapshot, Timings, compare, wait_for};

/// Generous bound on a takeover with 1 s x 2 probes (seconds expected).
const RECOVERY_BOUND: Duration = Duration::from_secs(60);
/// States at least this old at the kill must all be on the spare.
const GRACE: Duration = Duration::from_secs(1);

fn assert_kept(c: &Course, history: &[Snapshot], killed: SystemTime, first: &Snapshot) {
    let problems = compare(history, killed, GRACE, first);
    assert!(
        problems.is_empty(),
        "states lost in the takeover:\n{}\nmaster's last snapshot:\n{}spare's first:\n{}\n{}",
        problems.join("\n"),
        history.last().map(Snapshot::table).unwrap_or_default(),
        first.table(),
        c.all_logs()
    );
    assert_eq!(first.items.len(), 9, "2 hosts and 7 services: {}", first.table());
}

#[test]
fn the_course_tree_loads_with_the_spares_renamed() {
    let c = Course::prepare("shinken-ha-course-cfg", Timings::TEST);
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(c.etc_a.join("shinken.cfg"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for renamed in ["poller-master-spare", "reactionner-master-spare", "broker-master-spare"] {
        assert!(text.contains(&format!("is renamed '{renamed}'")), "{text}");
    }
    assert!(text.contains("Checked 2 schedulers."), "{text}");
}

#[test]
fn box_a_dies_and_box_b_takes_over_with_the_states() {
    let (mut c, e1) = Course::start("shinken-ha-course", Timings::TEST);
    // Every daemon of the course, by its name once loaded, alive in the master arbiter's view.
    let s = wait_for(
        Duration::from_secs(30),
        "the master arbiter to see the 11 other daemons alive",
        || {
            c.arbiter_status("arbiter-master")
                .filter(|s| s.daemons.iter().filter(|d| d.alive).count() == 11)
        },
        || format!("{:?}\n{}", c.arbiter_status("arbiter-master"), c.all_logs()),
    );
    assert!(s.master, "{s:?}");
    for name in c.daemons.keys().filter(|n| *n != "arbiter-master") {
        assert!(s.daemons.iter().any(|d| &d.name == name), "{name} unknown to the arbiter: {s:?}");
    }
    assert!(!c.arbiter_status("arbiter-spare").unwrap().master);

    // Varied states, then the master's view recorded for 2 s (every 100 ms).
    let varied = c.wait_varied(true, true);
    eprintln!("states before the kill (scheduler-master):\n{}", varied.table());
    let mut history = vec![varied];
    c.record("scheduler-master", Duration::from_secs(2), &mut history);

    // Box A dies at once.
    let killed = c.box_a.kill_all();

    // The spare arbiter leads.
    wait_for(
        RECOVERY_BOUND,
        "the spare arbiter to take the lead",
        || {
            c.log("arbiter-spare")
                .contains("Arbiter Master is dead. The arbiter arbiter-spare take the lead")
                .then_some(())
        },
        || c.all_logs(),
    );
    let lead = killed.elapsed().unwrap();
    let (first, t_first, t_result) = c.watch_takeover("scheduler-spare", killed, RECOVERY_BOUND);
    eprintln!(
        "box A killed: spare arbiter leads after {lead:.2?}, scheduler-spare holds the part after {t_first:.2?}, \
         first new check result after {t_result:.2?} (recovery time)"
    );
    eprintln!("scheduler-spare's first view:\n{}", first.table());
    let s = wait_for(
        Duration::from_secs(10),
        "the spare arbiter's status to say master=true",
        || c.arbiter_status("arbiter-spare").filter(|s| s.master),
        || c.all_logs(),
    );
    let e2 = *c.managed("scheduler-spare").unwrap().get(&0).expect("scheduler-spare holds part 0");
    assert!(e2 > e1, "a higher epoch: {e2} > {e1}");
    assert_eq!(first.epoch, e2);
    let held = s.daemons.iter().find(|d| d.name == "scheduler-spare").unwrap();
    assert_eq!(held.parts.get(&0), Some(&e2), "{s:?}");
    let old = s.daemons.iter().find(|d| d.name == "scheduler-master").unwrap();
    assert!(old.parts.is_empty(), "the killed master holds nothing: {s:?}");
    // The part moved as soon as its holder stopped answering; the holder is declared dead
    // once its max_check_attempts probes have failed.
    wait_for(
        Duration::from_secs(15),
        "scheduler-master declared dead by the spare arbiter",
        || {
            c.arbiter_status("arbiter-spare").filter(|s| {
                s.daemons
                    .iter()
                    .any(|d| d.name == "scheduler-master" && !d.alive && d.parts.is_empty())
            })
        },
        || c.all_logs(),
    );

    // The states: as before the kill (see `support::compare` for what may have moved on).
    assert_kept(&c, &history, killed, &first);
    let now = c.snapshot("scheduler-spare").unwrap();
    assert!(now.pending().is_empty(), "{}", now.table());
    for (key, f) in [("courses-a/Root disk", true), ("courses-a/Scheduler port", false)] {
        let i = now.item(key).unwrap();
        assert_eq!((i.acknowledged, i.in_downtime), (f, !f), "{key}: {}", i.brief());
    }
    let crit = now.item("courses-b/Always critical").unwrap();
    assert_eq!((crit.state.as_str(), crit.state_type.as_str()), ("CRITICAL", "HARD"));
    // Checks go on: every item gets a new result on the spare.
    let k = killed.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    wait_for(
        Duration::from_secs(30),
        "every 1 s item checked again on scheduler-spare",
        || {
            c.snapshot("scheduler-spare").filter(|s| {
                s.items
                    .iter()
                    .filter(|(key, _)| key.as_str() != "courses-a/Load")
                    .all(|(_, i)| i.last_check.unwrap_or(0.0) > k)
            })
        },
        || c.snapshot("scheduler-spare").map(|s| s.table()).unwrap_or_default(),
    );
    assert!(t_result < RECOVERY_BOUND);
}

#[test]
fn only_scheduler_master_dies() {
    let (mut c, e1) = Course::start("shinken-ha-course-sched", Timings::TEST);
    let varied = c.wait_varied(false, true);
    let mut history = vec![varied];
    c.record("scheduler-master", Duration::from_millis(1500), &mut history);
    let killed = c.box_a.kill_one("scheduler-master");
    let (first, t_first, t_result) = c.watch_takeover("scheduler-spare", killed, RECOVERY_BOUND);
    eprintln!("scheduler-master killed: part on scheduler-spare after {t_first:.2?}, first new result after {t_result:.2?}");
    assert!(first.epoch > e1, "{} > {e1}", first.epoch);
    assert_kept(&c, &history, killed, &first);
    // The master arbiter still leads; the spare arbiter did not take over.
    let s = c.arbiter_status("arbiter-master").unwrap();
    assert!(s.master);
    assert!(!c.log("arbiter-spare").contains("take the lead"));
    wait_for(
        Duration::from_secs(30),
        "the master arbiter to show scheduler-spare holding part 0",
        || {
            c.arbiter_status("arbiter-master")
                .filter(|s| {
                    s.daemons
                        .iter()
                        .any(|d| d.name == "scheduler-spare" && d.parts.get(&0) == Some(&first.epoch))
                })
                .map(|_| ())
        },
        || c.all_logs(),
    );
}

#[test]
fn the_master_scheduler_returns_and_stays_idle() {
    let (mut c, _e1) = Course::start("shinken-ha-course-back", Timings::TEST);
    c.wait_varied(false, false);
    let killed = c.box_a.kill_one("scheduler-master");
    let (first, _, _) = c.watch_takeover("scheduler-spare", killed, RECOVERY_BOUND);
    let e2 = first.epoch;
    // scheduler-master comes back (same box, same files).
    c.start_daemon("scheduler-master");
    c.wait_health("scheduler-master");
    wait_for(
        Duration::from_secs(30),
        "the arbiter to see scheduler-master alive (and idle)",
        || {
            c.arbiter_status("arbiter-master").and_then(|s| {
                s.daemons
                    .iter()
                    .find(|d| d.name == "scheduler-master" && d.alive && d.parts.is_empty())
                    .map(|_| ())
            })
        },
        || c.all_logs(),
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(c.managed("scheduler-master").unwrap().is_empty(), "the returning master stays idle");
    assert_eq!(c.managed("scheduler-spare").unwrap().get(&0), Some(&e2), "no fail-back");
    // The retention records belong to the spare's epoch: nothing stale overwrote them.
    let spare_now = c.snapshot("scheduler-spare").unwrap();
    let keys: Vec<String> = spare_now.items.keys().cloned().collect();
    let records = c.rt.block_on(async {
        let store = MongoStore::connect(&c.mongo.uri(), "shinken", None, Duration::from_secs(5))
            .await
            .unwrap();
        store.load(&keys).await.unwrap()
    });
    assert_eq!(records.len(), keys.len(), "{:?}", records.keys());
    for (k, r) in &records {
        assert_eq!(r.epoch, e2, "{k}: record epoch {} (the spare holds {e2})", r.epoch);
    }
    let log = c.log("scheduler-master");
    let restart = log.rfind("waiting for initial configuration").unwrap_or(0);
    assert!(
        !log[restart..].contains("New configuration received"),
        "the returning master got a part:\n{}",
        &log[restart..]
    );
}

#[test]
fn mongodb_dies_and_returns_then_the_master_dies() {
    let (mut c, _e1) = Course::start("shinken-ha-course-mongo", Timings::TEST);
    c.wait_varied(false, false);
    // MongoDB dies: checks go on on scheduler-master.
    c.mongo.kill();
    let down_at = support::unix_now();
    wait_for(
        Duration::from_secs(20),
        "checks to go on while MongoDB is down",
        || {
            c.snapshot("scheduler-master")
                .filter(|s| s.max_last_check() > down_at + 2.0)
                .map(|_| ())
        },
        || c.all_logs(),
    );
    let st = wait_for(
        Duration::from_secs(30),
        "the write-behind to report MongoDB down",
        || {
            c.scheduler_json("scheduler-master")
                .filter(|s| s["retention"]["healthy"] == false && s["retention"]["failures_total"].as_u64() > Some(0))
        },
        || c.all_logs(),
    );
    eprintln!("retention while MongoDB is down: {}", st["retention"]);
    // An external change while it is down, to be caught up later.
    let ts = support::unix_now() as u64;
    let passive = c.external(
        "scheduler-master",
        vec![format!(
            "[{ts}] ACKNOWLEDGE_SVC_PROBLEM;courses-a;Root disk;1;1;1;admin;while mongodb was down"
        )],
    );
    let acked = passive.as_ref().is_ok_and(|o| o.iter().all(|o| o.ok));
    c.mongo.restart();
    wait_for(
        Duration::from_secs(30),
        "the write-behind to catch up after MongoDB's restart",
        || {
            let st = c.scheduler_json("scheduler-master")?;
            let r = &st["retention"];
            (r["healthy"] == true && r["queued"] == 0 && r["last_success"].as_f64()? > down_at).then_some(())
        },
        || {
            format!(
                "{:?}\n{}",
                c.scheduler_json("scheduler-master").map(|s| s["retention"].clone()),
                c.all_logs()
            )
        },
    );
    let mut history = Vec::new();
    c.record("scheduler-master", Duration::from_millis(1500), &mut history);
    let killed = c.box_a.kill_one("scheduler-master");
    let (first, _, t_result) = c.watch_takeover("scheduler-spare", killed, RECOVERY_BOUND);
    eprintln!("after MongoDB's restart, scheduler-master killed: first new result on the spare after {t_result:.2?}");
    assert_kept(&c, &history, killed, &first);
    // The states are recent ones, written after the restart.
    let before = history.iter().rev().find(|s| s.at + GRACE <= killed).unwrap();
    for (k, i) in before.items.iter().filter(|(k, _)| k.as_str() != "courses-a/Load") {
        let f = first.item(k).unwrap();
        assert!(
            f.last_check.unwrap_or(0.0) >= i.last_check.unwrap_or(0.0) && i.last_check.unwrap_or(0.0) > down_at,
            "{k}: spare {} master {}",
            f.brief(),
            i.brief()
        );
    }
    if acked {
        assert!(first.item("courses-a/Root disk").unwrap().acknowledged);
    } else {
        eprintln!("run_external_commands not available: {passive:?}");
    }
}
