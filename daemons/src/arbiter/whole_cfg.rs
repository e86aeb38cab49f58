//! The whole configuration as cfg text: what the master arbiter sends to the other arbiters
//! (`put_conf`), so that a spare that takes the lead dispatches the master's configuration, not
//! its own files (semantics reference, 2.9). Shinken pickles its `Config` object; here the
//! resolved objects, the daemons, realms and modules, and the main parameters are written in the
//! cfg language and read back with the same loader (and the same checks).
//!
//! The text also identifies a configuration: [`magic_hash`] of it is what `have_conf` compares
//! (Shinken draws a random number per load; a hash of the content lets two arbiters that read
//! the same tree agree without sending it).

use shinken_config::Config;
use shinken_config::daemons::{DaemonDef, Role, Topology};
use shinken_config::object::Object;
use shinken_config::output::{write_cfg, write_params};
use shinken_config::schema::Kind;
use std::fmt::Write;
use std::path::PathBuf;

/// The whole resolved configuration of `cfg` as cfg text.
pub fn whole_cfg(cfg: &Config) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("# the whole configuration, as the master arbiter runs it\n");
    write_params(&mut out, cfg);
    write_topology(&mut out, &cfg.topology);
    for kind in Kind::ALL {
        if kind.is_daemon() || matches!(kind, Kind::Realm | Kind::Module) {
            continue;
        }
        match kind {
            Kind::Contact => write_cfg(&mut out, contacts(cfg).iter()),
            Kind::NotificationWay => write_cfg(&mut out, notification_ways(cfg)),
            // Built-in commands are added again by the reader; writing them would duplicate them.
            _ => write_cfg(
                &mut out,
                cfg.objects(kind).iter().filter(|o| {
                    !(o.kind == Kind::Command && o.name().is_some_and(|n| shinken_config::load::BUILTIN_COMMANDS.contains(&n)))
                }),
            ),
        }
    }
    out
}

/// Whether a contact's own notification lines make the reader create its
/// `<contact>_inner_notificationway`.
fn has_inner_way(c: &Object) -> bool {
    c.get("host_notification_commands").is_some() || c.get("service_notification_commands").is_some()
}

/// Contacts as written: without the inner notification way the reader adds again.
pub fn contacts(cfg: &Config) -> Vec<Object> {
    cfg.objects(Kind::Contact)
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if has_inner_way(&c)
                && let Some(name) = c.name().map(str::to_string)
            {
                let inner = format!("{name}_inner_notificationway");
                let ways: Vec<String> = c
                    .list("notificationways")
                    .into_iter()
                    .filter(|w| *w != inner)
                    .map(str::to_string)
                    .collect();
                let loc = c.loc;
                if ways.is_empty() {
                    c.remove("notificationways");
                } else {
                    c.set("notificationways", ways.join(","), loc);
                }
            }
            c
        })
        .collect()
}

/// Notification ways as written: without the contacts' inner ones (the reader makes them again
/// from the contacts' own lines).
pub fn notification_ways(cfg: &Config) -> impl Iterator<Item = &Object> {
    let inner: std::collections::HashSet<String> = cfg
        .objects(Kind::Contact)
        .iter()
        .filter(|c| has_inner_way(c))
        .filter_map(|c| c.name().map(|n| format!("{n}_inner_notificationway")))
        .collect();
    cfg.objects(Kind::NotificationWay)
        .iter()
        .filter(move |w| w.name().is_none_or(|n| !inner.contains(n)))
}

/// Reads a text made by [`whole_cfg`] (with every check of a load from files).
pub fn read_whole_cfg(text: &str, origin: &str) -> Config {
    let mut diag = shinken_config::diag::Diagnostics::new();
    let tree = shinken_config::loader::RawTree::from_text(PathBuf::from(origin), text, &mut diag);
    shinken_config::load::from_tree(tree, diag)
}

/// A stable identity of a configuration text (64-bit FNV-1a, hexadecimal).
pub fn magic_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let value = value.to_string();
    if !value.is_empty() {
        let _ = writeln!(out, "    {key}  {}", value.replace(';', "\\;"));
    }
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// Realms, modules and daemons, every property written (defaults included), so that they read
/// back identical.
fn write_topology(out: &mut String, t: &Topology) {
    for r in &t.realms {
        out.push_str("define realm {\n");
        line(out, "realm_name", &r.name);
        line(out, "realm_members", r.members.join(","));
        line(out, "default", flag(r.default));
        out.push_str("}\n");
    }
    for m in &t.modules {
        out.push_str("define module {\n");
        line(out, "module_name", &m.name);
        line(out, "module_type", &m.module_type);
        for (k, v) in &m.params {
            line(out, k, v);
        }
        out.push_str("}\n");
    }
    for d in &t.daemons {
        write_daemon(out, d);
    }
}

fn write_daemon(out: &mut String, d: &DaemonDef) {
    let kind = d.role.kind();
    let _ = writeln!(out, "define {} {{", kind.keyword());
    line(out, kind.name_key().unwrap_or("name"), &d.name);
    line(out, "address", &d.address);
    line(out, "port", d.port);
    line(out, "spare", flag(d.spare));
    if d.role != Role::Arbiter {
        line(out, "realm", &d.realm);
    }
    line(out, "modules", d.modules.join(","));
    for (k, v) in [
        ("timeout", d.timeout),
        ("data_timeout", d.data_timeout),
        ("check_interval", d.check_interval),
        ("max_check_attempts", d.max_check_attempts),
        ("polling_interval", d.polling_interval),
        ("weight", d.weight),
        ("min_workers", d.min_workers),
        ("max_workers", d.max_workers),
        ("processes_by_worker", d.processes_by_worker),
        ("broks_batch", d.broks_batch),
        ("results_batch", d.results_batch),
    ] {
        line(out, k, v);
    }
    if let Some(n) = d.max_plugins_output_length {
        line(out, "max_plugins_output_length", n);
    }
    for (k, v) in [
        ("manage_sub_realms", d.manage_sub_realms),
        ("manage_arbiters", d.manage_arbiters),
        ("passive", d.passive),
        ("direct_routing", d.direct_routing),
        ("skip_initial_broks", d.skip_initial_broks),
        ("use_ssl", d.use_ssl),
        ("accept_passive_unknown_check_results", d.accept_passive_unknown_check_results),
    ] {
        line(out, k, flag(v));
    }
    let tags_key = if d.role == Role::Reactionner {
        "reactionner_tags"
    } else {
        "poller_tags"
    };
    line(out, tags_key, d.tags.join(","));
    if let Some(h) = &d.host_name {
        line(out, "host_name", h);
    }
    let map: Vec<String> = d.satellitemap.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line(out, "satellitemap", map.join(","));
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use shinken_config::diag::Severity;

    fn normalised(t: &Topology) -> Topology {
        let mut t = t.clone();
        for d in &mut t.daemons {
            d.loc = Default::default();
            d.imported_from.clear();
        }
        for r in &mut t.realms {
            r.imported_from.clear();
        }
        for m in &mut t.modules {
            m.imported_from.clear();
        }
        t
    }

    #[test]
    fn the_corpus_reads_back_identical() {
        for tree in ["course4-etc", "shinken-etc"] {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus").join(tree);
            let cfg = shinken_config::load(&path).unwrap();
            let text = whole_cfg(&cfg);
            let back = read_whole_cfg(&text, "<from arbiter-master>");
            let errors = back.diag.reports(Severity::Error, &back.sources);
            assert!(errors.is_empty(), "{tree}: {errors:#?}");
            let (a, b) = (normalised(&back.topology), normalised(&cfg.topology));
            assert_eq!(a.daemons, b.daemons, "{tree}");
            assert_eq!(a.realms, b.realms, "{tree}");
            assert_eq!(a.modules, b.modules, "{tree}");
            for kind in Kind::ALL {
                assert_eq!(back.count(kind), cfg.count(kind), "{tree}: {}", kind.plural());
            }
            assert_eq!(back.main.resources, cfg.main.resources, "{tree}");
            // The same parts come out of it, and the same text: a second trip is a fixed point.
            let parts = crate::arbiter::cut_config(&cfg).unwrap();
            assert_eq!(crate::arbiter::cut_config(&back).unwrap(), parts, "{tree}");
            assert_eq!(magic_hash(&whole_cfg(&back)), magic_hash(&text), "{tree}");
        }
    }

    #[test]
    fn the_hash_tells_texts_apart() {
        assert_eq!(magic_hash("a"), magic_hash("a"));
        assert_ne!(magic_hash("a"), magic_hash("b"));
        assert_eq!(magic_hash("").len(), 16);
    }
}
