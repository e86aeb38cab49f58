//! `cargo bench -p shinken --bench check_config`: `shinken check-config` against
//! `nagios4 -v` on generated configurations of 1k, 10k and 100k services.
//!
//! For each size: one warm-up run of each, then five timed runs each, interleaved; reports the
//! median wall time, the peak RSS of the child (`wait4`'s `ru_maxrss`), the ratio
//! nagios/shinken and services per second. No assertion on time. `BENCH_SIZES=1000,5000`
//! picks other sizes; `BENCH_RUNS=N` another number of timed runs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shinken_testkit::measure::{self, Measured};
use shinken_testkit::{TempDir, r#gen, nagios};

/// Cargo builds the binary with the bench profile (optimised) and names it here.
const SHINKEN: &str = env!("CARGO_BIN_EXE_shinken");

struct Row {
    services: usize,
    shinken: Vec<Measured>,
    nagios: Vec<Measured>,
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn shinken(main_cfg: &Path) -> Command {
    let mut c = Command::new(SHINKEN);
    c.arg("check-config").arg(main_cfg);
    c
}

fn nagios(main_cfg: &Path) -> Command {
    let mut c = Command::new(nagios::binary());
    c.arg("-v").arg(main_cfg);
    c
}

fn once(cmd: &mut Command, who: &str) -> Measured {
    let m = measure::run(cmd).unwrap_or_else(|e| panic!("cannot run {who}: {e}"));
    if m.code != Some(0) {
        eprintln!("warning: {who} exited with {:?}", m.code);
    }
    m
}

fn med(runs: &[Measured]) -> (Duration, u64) {
    let wall = measure::median(runs.iter().map(|m| m.wall).collect());
    let rss = runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0);
    (wall, rss)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter-less plain main ignores its arguments.
    let sizes = env_list("BENCH_SIZES", &[1_000, 10_000, 100_000]);
    let runs = env_list("BENCH_RUNS", &[5])[0].max(1);
    println!("shinken: {SHINKEN}");
    println!("nagios:  {}", nagios::binary().display());
    let mut rows = Vec::new();
    for &services in &sizes {
        let dir = TempDir::new("bench-check-config").expect("temp dir");
        let main_cfg = r#gen::scale(dir.path(), services).expect("generate");
        eprintln!("{services} services: warming up");
        once(&mut shinken(&main_cfg), "shinken");
        once(&mut nagios(&main_cfg), "nagios4");
        let mut row = Row {
            services,
            shinken: Vec::new(),
            nagios: Vec::new(),
        };
        for i in 0..runs {
            eprintln!("{services} services: run {}/{runs}", i + 1);
            row.shinken.push(once(&mut shinken(&main_cfg), "shinken"));
            row.nagios.push(once(&mut nagios(&main_cfg), "nagios4"));
        }
        rows.push(row);
    }

    println!();
    println!(
        "{:>9} | {:>12} {:>11} {:>12} | {:>12} {:>11} {:>12} | {:>8}",
        "services", "shinken", "peak RSS", "services/s", "nagios4 -v", "peak RSS", "services/s", "nag/shk"
    );
    println!("{}", "-".repeat(104));
    for row in &rows {
        let (sw, srss) = med(&row.shinken);
        let (nw, nrss) = med(&row.nagios);
        let rate = |d: Duration| row.services as f64 / d.as_secs_f64().max(1e-9);
        println!(
            "{:>9} | {:>10.1}ms {:>8}KiB {:>12.0} | {:>10.1}ms {:>8}KiB {:>12.0} | {:>8.2}",
            row.services,
            sw.as_secs_f64() * 1e3,
            srss,
            rate(sw),
            nw.as_secs_f64() * 1e3,
            nrss,
            rate(nw),
            nw.as_secs_f64() / sw.as_secs_f64().max(1e-9),
        );
    }
    println!("\nmedian of {runs} runs after one warm-up; peak RSS is the largest of the runs.");
}
