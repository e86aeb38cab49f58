//! `shinken`: the Shinken daemons and the tools around them, one binary.
//!
//! Subcommands today: `check-config` (validate a configuration tree). The daemons themselves
//! (`arbiter`, `scheduler`, ...) and `run` come with the monitoring-engine work.

mod check_config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

const USAGE: &str = "usage: shinken <command> [args]

commands:
  check-config PATH [--format text|json] [--timings]
      Load the configuration at PATH (a main cfg file, or a directory holding shinken.cfg or
      nagios.cfg), print object counts as `nagios4 -v` does, then warnings and errors.
      Exit status: 0 without errors, 1 with errors, 2 when PATH cannot be read.
      --timings prints how long each loading stage took, on stderr.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check-config") => check_config::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("shinken: unknown command '{other}'\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
