//! Daemon, realm and module definitions: typed, checked, every daemon name unique.
//!
//! (semantics reference, sections 1.1 and 6.10.) Decisions:
//! - Two daemons of one role with one name (the HA course's spare poller, reactionner and broker
//!   keep their master's name): both are kept, as Shinken 2.0 did, and the spare is renamed
//!   `<name>-spare` with a warning naming both files. Shinken 2.4 silently drops one, which one
//!   depending on the directory order; losing a spare silently is worse than a rename.
//! - No realm: realm `Default` is created; a single realm is the default; more than one default
//!   is an error. A daemon without a realm belongs to the default realm.
//! - No daemon of a role (but the receiver): Shinken's `Default-<Role>` on localhost is created.

use crate::diag::Diagnostics;
use crate::fasthash::{FastMap, FastSet};
use crate::object::{Object, split_list};
use crate::schema::{self, Kind};
use crate::source::{Loc, SourceMap};
use serde::Serialize;
use std::collections::BTreeMap;

/// One daemon as the arbiter and the daemon itself need it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonDef {
    pub role: Role,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub spare: bool,
    pub realm: String,
    pub modules: Vec<String>,
    /// Seconds a ping or short call may take.
    pub timeout: u32,
    /// Seconds a long call (configuration push, checks, broks) may take.
    pub data_timeout: u32,
    /// Seconds between liveness probes.
    pub check_interval: u32,
    /// Failed probes before the daemon is dead.
    pub max_check_attempts: u32,
    pub polling_interval: u32,
    pub manage_sub_realms: bool,
    pub manage_arbiters: bool,
    /// Scheduler: share of hosts.
    pub weight: u32,
    pub min_workers: u32,
    pub max_workers: u32,
    pub processes_by_worker: u32,
    /// Poller/reactionner tags; empty means untagged (`None` in Shinken).
    pub tags: Vec<String>,
    pub passive: bool,
    pub direct_routing: bool,
    pub skip_initial_broks: bool,
    pub use_ssl: bool,
    /// Arbiter: the machine it runs on.
    pub host_name: Option<String>,
    pub satellitemap: BTreeMap<String, String>,
    pub max_plugins_output_length: Option<u32>,
    pub broks_batch: u32,
    pub results_batch: u32,
    pub accept_passive_unknown_check_results: bool,
    #[serde(skip)]
    pub loc: Loc,
    pub imported_from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Arbiter,
    Scheduler,
    Poller,
    Reactionner,
    Broker,
    Receiver,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Arbiter,
        Role::Scheduler,
        Role::Poller,
        Role::Reactionner,
        Role::Broker,
        Role::Receiver,
    ];

    pub fn kind(self) -> Kind {
        match self {
            Role::Arbiter => Kind::Arbiter,
            Role::Scheduler => Kind::Scheduler,
            Role::Poller => Kind::Poller,
            Role::Reactionner => Kind::Reactionner,
            Role::Broker => Kind::Broker,
            Role::Receiver => Kind::Receiver,
        }
    }

    pub fn from_kind(kind: Kind) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.kind() == kind)
    }

    pub fn name(self) -> &'static str {
        self.kind().keyword()
    }

    pub fn default_port(self) -> u16 {
        match self {
            Role::Arbiter => 7770,
            Role::Scheduler => 7768,
            Role::Poller => 7771,
            Role::Reactionner => 7769,
            Role::Broker => 7772,
            Role::Receiver => 7773,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealmDef {
    pub name: String,
    pub members: Vec<String>,
    pub default: bool,
    pub imported_from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleDef {
    pub name: String,
    /// As written; compare with [`ModuleDef::is_type`], which treats `_` and `-` alike.
    pub module_type: String,
    /// Every other key (`uri`, `database`...).
    pub params: BTreeMap<String, String>,
    pub imported_from: String,
}

impl ModuleDef {
    /// Replaces `$NAME$` resource macros in the parameters' values (as Nagios does in commands):
    /// the place for a secret such as a MongoDB URI with a password, kept in a resource file that
    /// only the daemons read. Unknown names stay as written.
    pub fn expand_resources(&mut self, resources: &std::collections::HashMap<String, String>) {
        for value in self.params.values_mut() {
            if !value.contains('$') {
                continue;
            }
            let mut out = String::with_capacity(value.len());
            let mut rest = value.as_str();
            while let Some(start) = rest.find('$') {
                out.push_str(&rest[..start]);
                let after = &rest[start + 1..];
                match after.find('$').map(|end| (end, resources.get(&after[..end]))) {
                    Some((end, Some(v))) => {
                        out.push_str(v);
                        rest = &after[end + 1..];
                    }
                    _ => {
                        out.push('$');
                        rest = after;
                    }
                }
            }
            out.push_str(rest);
            *value = out;
        }
    }

    pub fn is_type(&self, t: &str) -> bool {
        self.module_type.replace('_', "-").eq_ignore_ascii_case(&t.replace('_', "-"))
    }
}

/// The daemons of a configuration and the realms and modules they refer to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Topology {
    pub daemons: Vec<DaemonDef>,
    pub realms: Vec<RealmDef>,
    pub modules: Vec<ModuleDef>,
}

impl Topology {
    pub fn by_role(&self, role: Role) -> impl Iterator<Item = &DaemonDef> {
        self.daemons.iter().filter(move |d| d.role == role)
    }

    pub fn find(&self, name: &str) -> Option<&DaemonDef> {
        self.daemons.iter().find(|d| d.name == name)
    }

    pub fn default_realm(&self) -> Option<&str> {
        self.realms.iter().find(|r| r.default).map(|r| r.name.as_str())
    }

    pub fn module(&self, name: &str) -> Option<&ModuleDef> {
        self.modules.iter().find(|m| m.name == name)
    }
}

/// Builds the topology from the resolved daemon, realm and module objects.
/// `host_realms` lists the realm of every host (empty: the default realm), for the
/// "realm with hosts but no scheduler" check.
pub fn build(
    daemon_objs: BTreeMap<Kind, Vec<Object>>,
    realm_objs: Vec<Object>,
    module_objs: Vec<Object>,
    host_realms: &[(String, Loc, String)],
    sources: &SourceMap,
    diag: &mut Diagnostics,
) -> Topology {
    let mut topo = Topology::default();

    // Modules.
    let mut module_names = FastSet::default();
    for m in module_objs {
        let Some(name) = m.name().map(str::to_string) else {
            diag.error(m.loc, m.describe(), "module_name property is missing");
            continue;
        };
        let Some(module_type) = m.get("module_type").map(str::to_string) else {
            diag.error(m.loc, m.describe(), "module_type property is missing");
            continue;
        };
        if !module_names.insert(name.clone()) {
            diag.warn(m.loc, m.describe(), "module defined twice; using the last definition");
            topo.modules.retain(|x| x.name != name);
        }
        let params = m
            .iter()
            .filter(|a| !matches!(&*a.key, "module_name" | "module_type"))
            .map(|a| (a.key.to_string(), a.value.to_string()))
            .collect();
        topo.modules.push(ModuleDef {
            name,
            module_type,
            params,
            imported_from: at(sources, m.loc),
        });
    }

    // Realms.
    for r in &realm_objs {
        let Some(name) = r.name() else {
            diag.error(r.loc, r.describe(), "realm_name property is missing");
            continue;
        };
        let default = r.get("default").and_then(schema::parse_bool).unwrap_or(false);
        topo.realms.push(RealmDef {
            name: name.to_string(),
            members: r.list("realm_members").into_iter().map(str::to_string).collect(),
            default,
            imported_from: at(sources, r.loc),
        });
    }
    if topo.realms.is_empty() {
        topo.realms.push(RealmDef {
            name: "Default".into(),
            members: Vec::new(),
            default: true,
            imported_from: String::new(),
        });
    } else if topo.realms.len() == 1 {
        topo.realms[0].default = true;
    }
    let defaults: Vec<&Object> = realm_objs
        .iter()
        .filter(|r| r.get("default").and_then(schema::parse_bool) == Some(true))
        .collect();
    if defaults.len() > 1 {
        for r in &defaults[1..] {
            diag.error(
                r.loc,
                r.describe(),
                format!(
                    "more than one default realm ({})",
                    defaults.iter().filter_map(|r| r.name()).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    if !topo.realms.iter().any(|r| r.default) {
        diag.error(
            realm_objs.first().map(|r| r.loc),
            "realms",
            "no realm is the default one (set `default 1` on one realm)",
        );
    }
    let realm_names: FastSet<String> = topo.realms.iter().map(|r| r.name.clone()).collect();
    for r in &realm_objs {
        for m in r.list("realm_members") {
            if !realm_names.contains(m) {
                diag.error(r.loc, r.describe(), format!("realm_members: realm '{m}' is not defined"));
            }
        }
    }
    let default_realm = topo.default_realm().unwrap_or("Default").to_string();

    // Daemons, role by role.
    for role in Role::ALL {
        let objs = daemon_objs.get(&role.kind()).cloned().unwrap_or_default();
        let mut defs: Vec<DaemonDef> = Vec::new();
        let mut first_seen: FastMap<String, usize> = FastMap::default();
        for o in &objs {
            let Some(mut d) = daemon(role, o, &default_realm, sources, diag) else {
                continue;
            };
            if let Some(&prev) = first_seen.get(&d.name) {
                // Rename the spare of the two; if both or neither are spares, the later one.
                let rename_prev = defs[prev].spare && !d.spare;
                let renamed_spare = if rename_prev { defs[prev].spare } else { d.spare };
                let base = format!("{}-{}", d.name, if renamed_spare { "spare" } else { "2" });
                let new_name = unique_name(&base, &defs, &d);
                let (kept_file, renamed_file) = if rename_prev {
                    (d.imported_from.clone(), defs[prev].imported_from.clone())
                } else {
                    (defs[prev].imported_from.clone(), d.imported_from.clone())
                };
                let renamed_loc = if rename_prev { defs[prev].loc } else { d.loc };
                diag.warn(
                    renamed_loc,
                    format!("{} '{}'", role.name(), d.name),
                    format!("{} name '{}' is defined at {kept_file} and at {renamed_file}; both are kept and the one at {renamed_file} is renamed '{new_name}' (Shinken 2.4 would silently drop one)", role.name(), d.name),
                );
                if rename_prev {
                    defs[prev].name = new_name;
                    first_seen.insert(defs[prev].name.clone(), prev);
                } else {
                    d.name = new_name;
                }
            }
            first_seen.insert(d.name.clone(), defs.len());
            defs.push(d);
        }
        if defs.is_empty() && role != Role::Receiver {
            let name = format!("Default-{}{}", role.name()[..1].to_uppercase(), &role.name()[1..]);
            let mut o = Object::new(role.kind(), Loc::default());
            o.set(role.kind().name_key().unwrap_or("name"), name.as_str(), Loc::default());
            if let Some(mut d) = daemon(role, &o, &default_realm, sources, diag) {
                d.imported_from = String::new();
                if role == Role::Broker {
                    d.manage_arbiters = true;
                }
                defs.push(d);
            }
        }
        for d in &defs {
            if role != Role::Arbiter && !realm_names.contains(&d.realm) {
                diag.error(
                    d.loc,
                    format!("{} '{}'", role.name(), d.name),
                    format!("realm '{}' is not defined", d.realm),
                );
            }
            for m in &d.modules {
                if topo.module(m).is_none() {
                    diag.error(
                        d.loc,
                        format!("{} '{}'", role.name(), d.name),
                        format!("modules: module '{m}' is not defined"),
                    );
                }
            }
        }
        topo.daemons.extend(defs);
    }

    check_realms(&topo, host_realms, diag);
    topo
}

fn unique_name(base: &str, defs: &[DaemonDef], d: &DaemonDef) -> String {
    let mut name = base.to_string();
    let mut i = 2;
    while defs.iter().any(|x| x.name == name) || d.name == name {
        name = format!("{base}-{i}");
        i += 1;
    }
    name
}

/// Every realm's upper realms, then the pre-flight checks on realms.
fn check_realms(topo: &Topology, host_realms: &[(String, Loc, String)], diag: &mut Diagnostics) {
    let mut upper: FastMap<&str, Vec<&str>> = FastMap::default();
    for r in &topo.realms {
        for m in &r.members {
            upper.entry(m.as_str()).or_default().push(r.name.as_str());
        }
    }
    let ancestors = |realm: &str| -> FastSet<String> {
        let mut seen = FastSet::default();
        let mut todo = vec![realm.to_string()];
        while let Some(r) = todo.pop() {
            if seen.insert(r.clone())
                && let Some(ups) = upper.get(r.as_str())
            {
                todo.extend(ups.iter().map(|s| s.to_string()));
            }
        }
        seen
    };
    for s in topo.by_role(Role::Scheduler) {
        let realms = ancestors(&s.realm);
        if !topo.by_role(Role::Broker).any(|b| realms.contains(&b.realm)) {
            diag.error(
                s.loc,
                format!("scheduler '{}'", s.name),
                format!("the scheduler {} got no broker in its realm or upper", s.name),
            );
        }
    }
    let default_realm = topo.default_realm().unwrap_or("Default");
    let mut reported = FastSet::default();
    for (host, loc, realm) in host_realms {
        let realm = if realm.is_empty() { default_realm } else { realm.as_str() };
        if !topo.realms.iter().any(|r| r.name == realm) {
            diag.error(*loc, format!("host '{host}'"), format!("realm '{realm}' is not defined"));
            continue;
        }
        if !topo.by_role(Role::Scheduler).any(|s| s.realm == realm) && reported.insert(realm.to_string()) {
            diag.error(
                *loc,
                format!("realm '{realm}'"),
                format!("the realm {realm} has hosts (e.g. '{host}') but no scheduler"),
            );
        }
    }
}

fn at(sources: &SourceMap, loc: Loc) -> String {
    format!("{}:{}", sources.path(loc.file).display(), loc.line)
}

/// A typed daemon from its object, with Shinken's defaults (semantics reference, 6.10).
fn daemon(role: Role, o: &Object, default_realm: &str, sources: &SourceMap, diag: &mut Diagnostics) -> Option<DaemonDef> {
    let name_key = role.kind().name_key().unwrap_or("name");
    let Some(name) = o.get(name_key).map(str::to_string) else {
        diag.error(o.loc, o.describe(), format!("{name_key} property is missing"));
        return None;
    };
    let what = format!("{} '{name}'", role.name());
    let mut num = |key: &str, default: u32| -> u32 {
        schema::u32_or(key, o.get(key), default, &mut |m| {
            diag.error(o.attr(key).map(|a| a.loc), what.clone(), m)
        })
    };
    let port_num = num("port", role.default_port() as u32);
    let timeout = num("timeout", 3);
    let data_timeout = num("data_timeout", 120);
    let check_interval = num("check_interval", 60);
    let max_check_attempts = num("max_check_attempts", 3);
    let polling_interval = num("polling_interval", 1);
    let weight = num("weight", 1);
    let min_workers = num("min_workers", if role == Role::Reactionner { 1 } else { 0 });
    let max_workers = num("max_workers", 30);
    let processes_by_worker = num("processes_by_worker", 256);
    let broks_batch = num("broks_batch", 0);
    let results_batch = num("results_batch", 0);
    let max_plugins_output_length = o.get("max_plugins_output_length").map(|_| num("max_plugins_output_length", 8192));
    let port = u16::try_from(port_num).unwrap_or_else(|_| {
        diag.error(
            o.attr("port").map(|a| a.loc),
            what.clone(),
            format!("port: {port_num} is not a TCP port"),
        );
        role.default_port()
    });
    let mut flag = |key: &str, default: bool| -> bool {
        schema::bool_or(key, o.get(key), default, &mut |m| {
            diag.error(o.attr(key).map(|a| a.loc), what.clone(), m)
        })
    };
    let spare = flag("spare", false);
    let manage_sub_realms = flag("manage_sub_realms", true);
    let manage_arbiters = flag("manage_arbiters", false);
    let passive = flag("passive", false);
    let direct_routing = flag("direct_routing", false);
    let skip_initial_broks = flag("skip_initial_broks", false);
    let use_ssl = flag("use_ssl", false);
    let accept_passive_unknown_check_results = flag("accept_passive_unknown_check_results", false);
    let tags_key = if role == Role::Reactionner {
        "reactionner_tags"
    } else {
        "poller_tags"
    };
    let tags = o
        .list(tags_key)
        .into_iter()
        .filter(|t| !t.eq_ignore_ascii_case("none"))
        .map(str::to_string)
        .collect();
    let satellitemap = o
        .get("satellitemap")
        .map(|m| {
            split_list(m)
                .into_iter()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect()
        })
        .unwrap_or_default();
    let realm = if role == Role::Arbiter {
        String::new()
    } else {
        o.get("realm").filter(|r| !r.is_empty()).unwrap_or(default_realm).to_string()
    };
    Some(DaemonDef {
        role,
        address: o.get("address").filter(|a| !a.is_empty()).unwrap_or("localhost").to_string(),
        port,
        spare,
        realm,
        modules: o.list("modules").into_iter().map(str::to_string).collect(),
        timeout,
        data_timeout,
        check_interval,
        max_check_attempts,
        polling_interval,
        manage_sub_realms,
        manage_arbiters,
        weight,
        min_workers,
        max_workers,
        processes_by_worker,
        tags,
        passive,
        direct_routing,
        skip_initial_broks,
        use_ssl,
        host_name: if role == Role::Arbiter {
            o.get("host_name").map(str::to_string)
        } else {
            None
        },
        satellitemap,
        max_plugins_output_length,
        broks_batch,
        results_batch,
        accept_passive_unknown_check_results,
        loc: o.loc,
        imported_from: if o.loc == Loc::default() && sources.is_empty() {
            String::new()
        } else {
            at(sources, o.loc)
        },
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_macros_in_module_values_are_replaced() {
        let mut m = ModuleDef {
            name: "MongodbRetention".into(),
            module_type: "mongodb_retention".into(),
            params: [
                ("uri".to_string(), "$MONGODB_URI$".to_string()),
                ("note".to_string(), "costs $5 or $UNKNOWN$ $".to_string()),
            ]
            .into_iter()
            .collect(),
            imported_from: String::new(),
        };
        let resources = [("MONGODB_URI".to_string(), "mongodb://u:p@db:27017/".to_string())]
            .into_iter()
            .collect();
        m.expand_resources(&resources);
        assert_eq!(m.params["uri"], "mongodb://u:p@db:27017/");
        assert_eq!(m.params["note"], "costs $5 or $UNKNOWN$ $");
    }
}
