//! The arbiter: what parts a configuration is cut into, who runs them, and the daemon that
//! makes it so.
//!
//! - [`part_cfg`]: the cfg text of one part, as sent to its scheduler;
//! - [`parts`]: linked hosts kept together, packs spread over a realm's schedulers by weight;
//! - [`dispatch`]: the dispatcher's decisions, pure (time is an input): liveness from probes,
//!   which scheduler runs which part with which epoch, which satellites serve it, who must idle;
//! - [`ha`]: arbiter high availability, pure: the spare's wait for the master's death, the
//!   master's proof that no spare leads in its place, what an arbiter knows of the others;
//! - [`epoch`]: where the epoch counter lives ([`epoch::EpochStore`], in memory for now);
//! - [`whole_cfg`]: the whole configuration as cfg text, what the master sends the spares;
//! - [`wire`]: the bodies of the arbiter-to-arbiter calls and of the switchover command;
//! - [`daemon`]: `shinken arbiter`: loads and cuts the configuration, probes every daemon, runs
//!   the dispatcher's plan, heartbeats the other arbiters or waits for the master's death, and
//!   serves the arbiter's API (status, reload, daemon down, switchover).

pub mod daemon;
pub mod dispatch;
pub mod epoch;
pub mod ha;
pub mod part_cfg;
pub mod parts;
pub mod whole_cfg;
pub mod wire;

use shinken_config::Config;
use shinken_config::daemons::Role;
use shinken_config::schema::Kind;

/// Cuts a loaded configuration into one part per master scheduler of each realm, keeping hosts
/// linked by `parents`, host dependencies and service dependencies together.
pub fn cut_config(cfg: &Config) -> Result<Vec<parts::Part>, parts::CutError> {
    let hosts: Vec<parts::HostRef> = cfg
        .objects(Kind::Host)
        .iter()
        .map(|h| parts::HostRef {
            name: h.name().unwrap_or_default().to_string(),
            realm: h.get("realm").unwrap_or_default().to_string(),
        })
        .collect();
    let mut links = Vec::new();
    for h in cfg.objects(Kind::Host) {
        let name = h.name().unwrap_or_default();
        for p in h.list("parents") {
            links.push((name.to_string(), p.to_string()));
        }
    }
    for kind in [Kind::HostDependency, Kind::ServiceDependency] {
        for d in cfg.objects(kind) {
            if let (Some(a), Some(b)) = (d.get("host_name"), d.get("dependent_host_name")) {
                links.push((a.to_string(), b.to_string()));
            }
        }
    }
    let schedulers: Vec<parts::SchedulerRef> = cfg
        .topology
        .by_role(Role::Scheduler)
        .filter(|s| !s.spare)
        .map(|s| parts::SchedulerRef {
            name: s.name.clone(),
            realm: s.realm.clone(),
            weight: s.weight,
        })
        .collect();
    parts::cut(&hosts, &links, &schedulers, cfg.topology.default_realm().unwrap_or("Default"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn the_course_is_one_part_for_the_master_scheduler() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/course4-etc");
        let cfg = shinken_config::load(&path).unwrap();
        let parts = super::cut_config(&cfg).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].scheduler, "scheduler-master");
        assert_eq!(parts[0].realm, "All");
        assert_eq!(parts[0].hosts.len(), 2);
    }
}
