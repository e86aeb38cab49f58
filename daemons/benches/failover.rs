//! `cargo bench -p shinken --bench failover`: the HA course's box A (every master: arbiter,
//! scheduler, poller, reactionner, broker, receiver) SIGKILLed at once, box B (every spare)
//! taking over with the states kept in MongoDB (`secantusd-py` on 127.0.0.4). The setup is the
//! one of `tests/ha_course.rs` (`tests/support/mod.rs`): a fresh cluster for every run.
//!
//! Per run, from the kill: when the spare arbiter leads (its log line), when scheduler-spare
//! holds the part (its first `/v1/status` with the part), and the recovery time: its first
//! check result (`shinken_scheduler_results_total` > 0 on its open `/metrics`), starting from
//! the old states. Then, in scheduler-spare's first view, "PENDING after takeover" (hosts and
//! services without a state) and "lost" (hosts and services whose state recorded by
//! scheduler-master at least 1 s before the kill is not there, nor a later state the master
//! showed, nor the next check's result: `support::compare`).
//!
//! Configurations: the tight timings (daemons `check_interval 1`, `max_check_attempts 3`,
//! `timeout 1`) repeated `BENCH_FAILOVER_RUNS` times (10), then once Shinken's defaults (60 s x
//! 3, timeout 3: several minutes; `BENCH_FAILOVER_DEFAULTS=0` skips it). Figures only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;
use support::{Course, Timings, compare, wait_for};

struct Run {
    lead: Duration,
    part: Duration,
    recovery: Duration,
    pending: usize,
    lost: usize,
}

fn one(timings: Timings, i: usize) -> Run {
    let (mut c, _) = Course::start(&format!("shinken-bench-failover-{i}"), timings);
    c.wait_varied(false, false);
    let mut history = Vec::new();
    c.record("scheduler-master", Duration::from_millis(1500), &mut history);
    let killed = c.box_a.kill_all();
    // Spare arbiter: silence of check_interval x max_check_attempts; then the scheduler's death
    // (already probed by the spare), with margin.
    let within =
        Duration::from_secs(u64::from(2 * timings.daemon_check_interval * timings.daemon_max_attempts + 3 * timings.daemon_timeout) + 60);
    wait_for(
        within,
        "the spare arbiter to take the lead",
        || {
            c.log("arbiter-spare")
                .contains("Arbiter Master is dead. The arbiter arbiter-spare take the lead")
                .then_some(())
        },
        || c.all_logs(),
    );
    let lead = killed.elapsed().unwrap_or_default();
    let (first, part, recovery) = c.watch_takeover("scheduler-spare", killed, within);
    let problems = compare(&history, killed, Duration::from_secs(1), &first);
    for p in &problems {
        eprintln!("  run {i}: {p}");
    }
    Run {
        lead,
        part,
        recovery,
        pending: first.pending().len(),
        lost: problems.iter().filter(|p| !p.contains("PENDING")).count(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(label: &str, runs: &[Run]) -> String {
    let col = |f: fn(&Run) -> Duration| {
        let v: Vec<Duration> = runs.iter().map(f).collect();
        let max = *v.iter().max().unwrap();
        format!("{:>8.2} {:>8.2}", median(v).as_secs_f64(), max.as_secs_f64())
    };
    format!(
        "{label:<34} {:>4} | {} | {} | {} | {:>7} {:>7}",
        runs.len(),
        col(|r| r.lead),
        col(|r| r.part),
        col(|r| r.recovery),
        runs.iter().map(|r| r.pending).sum::<usize>(),
        runs.iter().map(|r| r.lost).sum::<usize>(),
    )
}

fn main() {
    let n: usize = std::env::var("BENCH_FAILOVER_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let defaults = std::env::var("BENCH_FAILOVER_DEFAULTS").map(|v| v != "0").unwrap_or(true);
    let tight = Timings {
        daemon_check_interval: 1,
        daemon_max_attempts: 3,
        daemon_timeout: 1,
        warning_retry: 25,
    };
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for i in 0..n {
        let r = one(tight, i);
        eprintln!(
            "tight run {i}: lead {:.2?}, part {:.2?}, recovery {:.2?}, pending {}, lost {}",
            r.lead, r.part, r.recovery, r.pending, r.lost
        );
        runs.push(r);
    }
    if !runs.is_empty() {
        rows.push(report("tight (1 s x 3 probes, timeout 1)", &runs));
    }
    if defaults {
        let course = Timings {
            daemon_check_interval: 60,
            daemon_max_attempts: 3,
            daemon_timeout: 3,
            warning_retry: 25,
        };
        let r = one(course, n);
        eprintln!(
            "defaults run: lead {:.2?}, part {:.2?}, recovery {:.2?}, pending {}, lost {}",
            r.lead, r.part, r.recovery, r.pending, r.lost
        );
        rows.push(report("Shinken defaults (60 s x 3, 3)", &[r]));
    }
    println!("\nfailover of box A (all masters SIGKILLed at once), seconds from the kill");
    println!(
        "{:<34} {:>4} | {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>7} {:>7}",
        "configuration", "runs", "lead med", "max", "part med", "max", "recov med", "max", "PENDING", "lost"
    );
    for r in rows {
        println!("{r}");
    }
}
