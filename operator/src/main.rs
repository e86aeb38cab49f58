//! `shinken-operator`: the command line. `crd` prints the CRD; `run` runs the controller;
//! `import` turns a Shinken tree into a ShinkenCluster.

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: shinken-operator crd\n       shinken-operator run [--metrics-addr ADDR] [--leader-elect] [--namespace NS]\n       shinken-operator import PATH --name NAME [--namespace NS] [--image IMAGE]"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("crd") => {
            print!("{}", shinken_operator::yaml::crd_yaml());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{}", usage());
            ExitCode::from(2)
        }
    }
}
