//! `shinken-operator`: the Kubernetes operator for `ShinkenCluster` resources.
//!
//! Not built yet: it is the subject of its own issue, which builds on the configuration crate
//! (`shinken-config`) and on the daemons' high-availability API.

fn main() {
    eprintln!("shinken-operator is not built yet: see the project's operator issue");
    std::process::exit(2);
}
