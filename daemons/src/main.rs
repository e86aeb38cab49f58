//! `shinken`: the Shinken daemons and the tools around them, one binary.

mod check_config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use shinken::daemon::{self, Args};
use shinken_config::daemons::Role;
use std::process::ExitCode;

const USAGE: &str = "usage: shinken <command> [args]

daemons (each waits for an arbiter to give it work, except the arbiter):
  arbiter|scheduler|poller|reactionner|broker|receiver --config PATH --name NAME
          [--listen ADDR:PORT] [--token-file PATH]
      Run one daemon. It finds its own definition by NAME in the configuration at PATH and
      listens on its address:port unless --listen says otherwise. The token file (default:
      shinken.token beside the main cfg file) holds the cluster's shared bearer token; a daemon
      without one refuses to start. Stops gracefully on SIGTERM or SIGINT. SHINKEN_LOG sets the
      log level (error, warn, info, debug).

tools:
  run PATH [--token-file F]
      Start every daemon of the configuration at PATH as a child process (token file created
      when absent); SIGINT or SIGTERM stops them all. Exit 1 on configuration errors or a busy
      port (nothing started), or when every daemon has exited.
  status PATH [--format text|json] [--token-file F]
      Daemons (from an arbiter), hosts and services (from every scheduler). Exit 0 when an
      arbiter answered, 1 when none did, 2 on bad arguments or an unreadable configuration.
  check-config PATH [--format text|json] [--timings]
      Load the configuration at PATH (a main cfg file, or a directory holding shinken.cfg or
      nagios.cfg), print object counts as `nagios4 -v` does, then warnings and errors.
      Exit status: 0 without errors, 1 with errors, 2 when PATH cannot be read.
      --timings prints how long each loading stage took, on stderr.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first().map(String::as_str) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match command {
        "check-config" => check_config::run(&args[1..]),
        "run" => shinken::cluster::run(&args[1..]),
        "status" => shinken::status::run(&args[1..]),
        "scheduler" => run_daemon(&args[1..], |a| Box::pin(async move { shinken::scheduler::daemon::run(&a).await })),
        "arbiter" => run_daemon(&args[1..], |a| Box::pin(async move { shinken::arbiter::daemon::run(&a).await })),
        "poller" => run_daemon(&args[1..], |a| {
            Box::pin(async move { shinken::satellite::run(Role::Poller, &a).await })
        }),
        "reactionner" => run_daemon(&args[1..], |a| {
            Box::pin(async move { shinken::satellite::run(Role::Reactionner, &a).await })
        }),
        "broker" => run_daemon(&args[1..], |a| {
            Box::pin(async move { shinken::satellite::run(Role::Broker, &a).await })
        }),
        "receiver" => run_daemon(&args[1..], |a| {
            Box::pin(async move { shinken::satellite::run(Role::Receiver, &a).await })
        }),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("shinken: unknown command '{other}'\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

type DaemonFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

/// Parses the daemon arguments, starts logging and the runtime, runs the daemon to its end.
fn run_daemon(args: &[String], run: impl FnOnce(Args) -> DaemonFuture) -> ExitCode {
    let args = match Args::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shinken: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    daemon::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shinken: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
