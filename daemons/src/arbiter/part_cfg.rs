//! The cfg text of one configuration part, as the arbiter sends it to a scheduler.
//!
//! (semantics reference, 2.3.) A part holds its hosts, their services, the dependencies and
//! escalations between them, and everything global (commands, timeperiods, contacts and their
//! groups, notification ways, escalations by name, the main parameters and resource macros).
//! Groups keep only the part's members. Objects are written resolved, so the scheduler reads
//! them back with the same parser and no templates.

use super::parts::Part;
use shinken_config::Config;
use shinken_config::object::Object;
use shinken_config::output::{write_cfg, write_params};
use shinken_config::schema::Kind;
use std::collections::HashSet;

/// Types copied whole into every part (contacts and notification ways too, see below).
const GLOBAL: [Kind; 4] = [Kind::Command, Kind::TimePeriod, Kind::ContactGroup, Kind::Escalation];

/// The cfg text of `part` (whose host indices refer to `cfg`'s hosts).
pub fn part_cfg(cfg: &Config, part: &Part) -> String {
    let all_hosts = cfg.objects(Kind::Host);
    let hosts: Vec<&Object> = part.hosts.iter().filter_map(|&i| all_hosts.get(i)).collect();
    let names: HashSet<&str> = hosts.iter().filter_map(|h| h.name()).collect();
    let in_part = |o: &Object| o.get("host_name").is_some_and(|h| names.contains(h));

    let mut out = String::with_capacity(1024 + hosts.len() * 512);
    out.push_str(&format!("# part {} of realm {}\n", part.id, part.realm));
    write_params(&mut out, cfg);
    // Built-in commands are added again by the reader; writing them would duplicate them.
    let globals = GLOBAL
        .iter()
        .flat_map(|k| cfg.objects(*k))
        .filter(|o| !(o.kind == Kind::Command && o.name().is_some_and(|n| shinken_config::load::BUILTIN_COMMANDS.contains(&n))));
    write_cfg(&mut out, globals);
    // Without the contacts' inner notification ways, which the reader makes again.
    write_cfg(&mut out, super::whole_cfg::contacts(cfg).iter());
    write_cfg(&mut out, super::whole_cfg::notification_ways(cfg));
    write_cfg(&mut out, hosts.iter().copied());
    write_cfg(&mut out, cfg.objects(Kind::Service).iter().filter(|s| in_part(s)));
    for kind in [
        Kind::HostDependency,
        Kind::ServiceDependency,
        Kind::HostEscalation,
        Kind::ServiceEscalation,
    ] {
        write_cfg(
            &mut out,
            cfg.objects(kind)
                .iter()
                .filter(|d| in_part(d) && d.get("dependent_host_name").is_none_or(|h| names.contains(h))),
        );
    }
    // Groups with only this part's members.
    for g in cfg.objects(Kind::HostGroup) {
        let mut g = g.clone();
        let members: Vec<&str> = g.list("members").into_iter().filter(|m| names.contains(m)).collect();
        let loc = g.loc;
        g.set("members", members.join(","), loc);
        g.remove("hostgroup_members");
        write_cfg(&mut out, [&g]);
    }
    for g in cfg.objects(Kind::ServiceGroup) {
        let mut g = g.clone();
        let items = g.list("members");
        let kept: Vec<&str> = items
            .chunks(2)
            .filter(|p| p.len() == 2 && names.contains(p[0]))
            .flatten()
            .copied()
            .collect();
        let loc = g.loc;
        g.set("members", kept.join(","), loc);
        g.remove("servicegroup_members");
        write_cfg(&mut out, [&g]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shinken_config::diag::Severity;
    use std::path::PathBuf;

    #[test]
    fn the_course_part_reads_back_identical() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/course4-etc");
        let cfg = shinken_config::load(&path).unwrap();
        let parts = super::super::cut_config(&cfg).unwrap();
        let text = part_cfg(&cfg, &parts[0]);
        let back = shinken_config::load::from_part_text(&text);
        let errors = back.diag.reports(Severity::Error, &back.sources);
        assert!(errors.is_empty(), "{errors:#?}\n{text}");
        for kind in [
            Kind::Host,
            Kind::Service,
            Kind::Command,
            Kind::TimePeriod,
            Kind::Contact,
            Kind::ContactGroup,
            Kind::HostGroup,
            Kind::NotificationWay,
        ] {
            assert_eq!(back.count(kind), cfg.count(kind), "{}", kind.plural());
        }
        // Every resolved attribute of every service survives the trip.
        for (a, b) in cfg.objects(Kind::Service).iter().zip(back.objects(Kind::Service)) {
            let mut x: Vec<(String, String)> = a.iter().map(|at| (at.key.to_string(), at.value.to_string())).collect();
            let mut y: Vec<(String, String)> = b.iter().map(|at| (at.key.to_string(), at.value.to_string())).collect();
            x.sort();
            y.sort();
            assert_eq!(x, y);
        }
        assert_eq!(back.main.resources["USER1"], "/usr/lib/nagios/plugins");
        assert_eq!(back.main.max_service_check_spread, 5);
    }

    #[test]
    fn a_part_holds_only_its_hosts() {
        let dir = std::env::temp_dir().join(format!("shinken-partcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::from(
            "define scheduler {\n scheduler_name s1\n}\ndefine scheduler {\n scheduler_name s2\n}\ndefine broker {\n broker_name b\n}\n\
             define command {\n command_name c\n command_line /bin/true\n}\n\
             define hostgroup {\n hostgroup_name all\n members *\n}\n",
        );
        for i in 0..6 {
            text.push_str(&format!(
                "define host {{\n host_name h{i}\n check_command c\n}}\ndefine service {{\n host_name h{i}\n service_description s\n check_command c; a comment\n check_interval 1\n retry_interval 1\n notes a\\;b\n}}\n"
            ));
        }
        std::fs::write(dir.join("shinken.cfg"), text).unwrap();
        let cfg = shinken_config::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!cfg.has_errors(), "{:?}", cfg.diag.problems());
        let parts = super::super::cut_config(&cfg).unwrap();
        assert_eq!(parts.len(), 2);
        for p in &parts {
            let back = shinken_config::load::from_part_text(&part_cfg(&cfg, p));
            assert!(!back.has_errors(), "{:?}", back.diag.problems());
            assert_eq!(back.count(Kind::Host), 3);
            assert_eq!(back.count(Kind::Service), 3);
            assert_eq!(back.objects(Kind::HostGroup)[0].list("members").len(), 3);
            assert_eq!(back.objects(Kind::Service)[0].get("notes"), Some("a;b"), "an escaped ; survives");
        }
    }
}
