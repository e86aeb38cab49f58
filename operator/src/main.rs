//! `shinken-operator`: the command line. `crd` prints the CRD; `run` runs the controller;
//! `import` turns a Shinken tree into a ShinkenCluster and its ConfigMaps.

use std::process::ExitCode;

const USAGE: &str = "usage: shinken-operator crd
       shinken-operator run [--metrics-addr ADDR:PORT] [--leader-elect] [--namespace NS]
       shinken-operator import PATH --name NAME [--namespace NS] [--image IMAGE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("crd") => {
            print!("{}", shinken_operator::yaml::crd_yaml());
            ExitCode::SUCCESS
        }
        Some("run") => run(&args[1..]),
        Some("import") => import(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> ExitCode {
    let options = match shinken_operator::controller::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shinken-operator run: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(shinken_operator::controller::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn import(args: &[String]) -> ExitCode {
    use shinken_operator::import::{import_tree, parse_args};
    let (path, options) = match parse_args(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("shinken-operator import: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match import_tree(&path, &options).and_then(|i| i.to_yaml()) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shinken-operator import: {e}");
            ExitCode::FAILURE
        }
    }
}
