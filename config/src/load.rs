//! The loading pipeline: a tree on disk to a resolved, validated [`Config`].
//!
//! Stages, in order: read (loader, reader) -> normalise (object) -> inherit -> drop duplicate
//! names -> implicit objects (built-in commands, contact groups named by contacts, contacts'
//! inner notification ways) -> host defaults -> group membership -> service expansion ->
//! implicit inheritance from hosts -> dependencies and escalations -> validation -> daemons.
//! Every stage records problems and goes on, so one run reports them all.

use crate::daemons::{self, Topology};
use crate::diag::{Diagnostics, Severity};
use crate::expand::{self, HostIndex};
use crate::fasthash::{FastMap, FastSet};
use crate::groups::{self, loc_of};
use crate::inherit;
use crate::loader::{self, EntryError, RawTree};
use crate::main_config::MainConfig;
use crate::object::{Attr, Object, split_list};
use crate::schema::{self, Kind, ValueType};
use crate::source::{Loc, SourceMap};
use crate::timeperiod::{self, TimePeriodDef, Timeperiods};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded configuration. Check [`Config::has_errors`] before acting on it.
#[derive(Debug)]
pub struct Config {
    pub main_file: PathBuf,
    pub sources: SourceMap,
    pub main: MainConfig,
    /// Resolved objects by type; templates are not here. Daemons, realms and modules are also
    /// typed in [`Config::topology`].
    pub objects: BTreeMap<Kind, Vec<Object>>,
    pub topology: Topology,
    pub timeperiods: Timeperiods,
    pub diag: Diagnostics,
    /// How long each stage took, in order (`check-config --timings`).
    pub timings: Vec<(&'static str, std::time::Duration)>,
}

/// Records stage durations.
struct Stopwatch {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Stopwatch {
    fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((stage, now - self.last));
        self.last = now;
    }
}

/// Commands Shinken adds to every configuration.
pub const BUILTIN_COMMANDS: [&str; 3] = ["bp_rule", "_internal_host_up", "_echo"];

impl Config {
    pub fn objects(&self, kind: Kind) -> &[Object] {
        self.objects.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has_errors(&self) -> bool {
        self.diag.has_errors()
    }

    /// How many objects of a type: what `check-config` prints. Daemons, realms and modules are
    /// counted from the topology (which includes the defaults Shinken creates).
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Realm => self.topology.realms.len(),
            Kind::Module => self.topology.modules.len(),
            k if k.is_daemon() => daemons::Role::from_kind(k).map(|r| self.topology.by_role(r).count()).unwrap_or(0),
            k => self.objects(k).len(),
        }
    }

    pub fn location(&self, loc: Loc) -> String {
        format!("{}:{}", self.sources.path(loc.file).display(), loc.line)
    }
}

/// Loads the tree at `entry` (a main file, or a directory holding `shinken.cfg`/`nagios.cfg`).
pub fn load(entry: &Path) -> Result<Config, EntryError> {
    let mut diag = Diagnostics::new();
    let start = std::time::Instant::now();
    let tree = loader::read_tree(entry, &mut diag)?;
    let read = start.elapsed();
    let mut cfg = from_tree(tree, diag);
    cfg.timings.insert(0, ("read and parse files", read));
    Ok(cfg)
}

/// What to check besides the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Daemons, realms and their pre-flight rules (a scheduler needs a broker, a realm with
    /// hosts needs a scheduler...). Off for a scheduler reading its part, which holds no daemon.
    pub topology: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { topology: true }
    }
}

/// Runs every stage after reading. Public so that an in-memory tree (fuzzing, the operator's
/// ConfigMaps) goes through exactly the same checks.
pub fn from_tree(tree: RawTree, diag: Diagnostics) -> Config {
    from_tree_with(tree, diag, Options::default())
}

/// A configuration part as a scheduler receives it: cfg text, objects resolved.
pub fn from_part_text(text: &str) -> Config {
    let mut diag = Diagnostics::new();
    let tree = RawTree::from_text(PathBuf::from("<part>"), text, &mut diag);
    from_tree_with(tree, diag, Options { topology: false })
}

/// [`from_tree`] with options.
pub fn from_tree_with(tree: RawTree, mut diag: Diagnostics, options: Options) -> Config {
    let mut clock = Stopwatch::new();
    let RawTree {
        main_file,
        sources,
        objects: raw_objects,
        params,
    } = tree;
    let main = MainConfig::from_params(&params, &mut diag);

    // Sort by type (objects arrive normalised from the reader's workers).
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for o in &raw_objects {
        *counts.entry(o.kind).or_default() += 1;
    }
    // Exact capacities: a growing vector would touch up to twice the memory.
    let mut by_kind: BTreeMap<Kind, Vec<Object>> = counts.into_iter().map(|(k, n)| (k, Vec::with_capacity(n))).collect();
    for o in raw_objects {
        by_kind.entry(o.kind).or_default().push(o);
    }

    clock.lap("sort objects by type");
    // Inherit; keep templates of hosts and services aside for expansion.
    let mut objects: BTreeMap<Kind, Vec<Object>> = BTreeMap::new();
    let mut host_templates = Vec::new();
    let mut service_templates = Vec::new();
    for (kind, objs) in by_kind {
        let mut regs = inherit::resolve(objs, &mut diag);
        // Templates are few: take them out rather than copy the objects into a new vector.
        let tpls: Vec<Object> = regs.extract_if(.., |o| !o.register).collect();
        match kind {
            Kind::Host => host_templates = tpls,
            Kind::Service => service_templates = tpls,
            _ => {}
        }
        objects.insert(kind, regs);
    }

    for (kind, objs) in objects.iter_mut() {
        if kind.name_key().is_some() && !kind.is_daemon() {
            dedup_named(objs, &sources, &mut diag);
        }
    }

    add_implicit_objects(&mut objects, &sources);
    host_defaults(objects.entry(Kind::Host).or_default());

    clock.lap("inherit templates, implicit objects");
    // Groups of hosts and contacts.
    let mut hosts = objects.remove(&Kind::Host).unwrap_or_default();
    let mut hostgroups = objects.remove(&Kind::HostGroup).unwrap_or_default();
    groups::resolve_simple(&mut hosts, &mut hostgroups, "hostgroups", "hostgroup_members", &mut diag);
    let mut contacts = objects.remove(&Kind::Contact).unwrap_or_default();
    let mut contactgroups = objects.remove(&Kind::ContactGroup).unwrap_or_default();
    groups::resolve_simple(
        &mut contacts,
        &mut contactgroups,
        "contactgroups",
        "contactgroup_members",
        &mut diag,
    );

    clock.lap("host and contact groups");
    // Services, then what names services.
    let service_defs = objects.remove(&Kind::Service).unwrap_or_default();
    let (mut services, links) = {
        let idx = HostIndex::new(&hosts, &hostgroups, &host_templates);
        let mut services = expand::services(service_defs, &service_templates, &idx, &mut diag);
        inherit_from_hosts(&mut services, &idx);
        // Only dependencies and escalations name services; index them only if there are any.
        let has_links = [
            Kind::HostDependency,
            Kind::ServiceDependency,
            Kind::HostEscalation,
            Kind::ServiceEscalation,
        ]
        .iter()
        .any(|k| objects.get(k).is_some_and(|v| !v.is_empty()));
        let svc_keys: FastSet<(String, String)> = if has_links {
            services
                .iter()
                .filter_map(|s| Some((s.get("host_name")?.to_string(), s.get("service_description")?.to_string())))
                .collect()
        } else {
            FastSet::default()
        };
        let mut links = BTreeMap::new();
        for kind in [
            Kind::HostDependency,
            Kind::ServiceDependency,
            Kind::HostEscalation,
            Kind::ServiceEscalation,
        ] {
            let objs = objects.remove(&kind).unwrap_or_default();
            links.insert(kind, expand::expand_links(objs, kind, &idx, &svc_keys, &mut diag));
        }
        (services, links)
    };
    let mut servicegroups = objects.remove(&Kind::ServiceGroup).unwrap_or_default();
    groups::resolve_servicegroups(&mut services, &mut servicegroups, &mut diag);

    objects.insert(Kind::Host, hosts);
    objects.insert(Kind::HostGroup, hostgroups);
    objects.insert(Kind::Contact, contacts);
    objects.insert(Kind::ContactGroup, contactgroups);
    objects.insert(Kind::Service, services);
    objects.insert(Kind::ServiceGroup, servicegroups);
    objects.extend(links);

    clock.lap("expand services, dependencies, escalations");
    let timeperiods = build_timeperiods(objects.get(&Kind::TimePeriod).map(Vec::as_slice).unwrap_or(&[]), &mut diag);
    validate(&objects, &main, &mut diag);

    clock.lap("timeperiods and validation");
    // Daemons, realms, modules.
    let mut daemon_objs = BTreeMap::new();
    for k in Kind::DAEMONS {
        daemon_objs.insert(k, objects.remove(&k).unwrap_or_default());
    }
    let realm_objs = objects.remove(&Kind::Realm).unwrap_or_default();
    let module_objs = objects.remove(&Kind::Module).unwrap_or_default();
    let host_realms: Vec<(String, Loc, String)> = objects
        .get(&Kind::Host)
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.name().unwrap_or_default().to_string(),
                        h.loc,
                        h.get("realm").unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let topology = if options.topology {
        let mut t = daemons::build(daemon_objs, realm_objs, module_objs, &host_realms, &sources, &mut diag);
        t.modules.iter_mut().for_each(|m| m.expand_resources(&main.resources));
        t
    } else {
        Topology::default()
    };

    clock.lap("daemons and realms");
    Config {
        main_file,
        sources,
        main,
        objects,
        topology,
        timeperiods,
        diag,
        timings: clock.laps,
    }
}

/// Two objects with one name: the lower `definition_order` wins, else the last defined, with a
/// warning (Shinken 2.4).
fn dedup_named(objs: &mut Vec<Object>, sources: &SourceMap, diag: &mut Diagnostics) {
    let mut drop = vec![false; objs.len()];
    {
        let mut keep: FastMap<&str, usize> = crate::fasthash::map_with_capacity(objs.len());
        for (i, o) in objs.iter().enumerate() {
            let Some(name) = o.name() else { continue };
            let Some(&j) = keep.get(name) else {
                keep.insert(name, i);
                continue;
            };
            let order = |o: &Object| o.get("definition_order").and_then(schema::parse_int).unwrap_or(100);
            let (winner, loser) = if order(&objs[j]) < order(o) { (j, i) } else { (i, j) };
            diag.warn(
                objs[winner].loc,
                objs[winner].describe(),
                format!(
                    "duplicate {} name '{}' (also defined at {}:{}); using the definition at line {}",
                    o.kind.keyword(),
                    name,
                    sources.path(objs[loser].loc.file).display(),
                    objs[loser].loc.line,
                    objs[winner].loc.line
                ),
            );
            drop[loser] = true;
            keep.insert(name, winner);
        }
    }
    if drop.iter().any(|d| *d) {
        let mut i = 0;
        objs.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
    }
}

fn synthetic(kind: Kind, loc: Loc, attrs: &[(&str, &str)]) -> Object {
    let mut o = Object::new(kind, loc);
    for (k, v) in attrs {
        o.set(k, *v, loc);
    }
    o
}

/// Objects Shinken creates without a definition (counted in EXPECTED.md).
fn add_implicit_objects(objects: &mut BTreeMap<Kind, Vec<Object>>, _sources: &SourceMap) {
    let commands = objects.entry(Kind::Command).or_default();
    for name in BUILTIN_COMMANDS {
        if !commands.iter().any(|c| c.name() == Some(name)) {
            commands.push(synthetic(
                Kind::Command,
                Loc::default(),
                &[("command_name", name), ("command_line", name)],
            ));
        }
    }

    // A contact's own notification lines become `<contact>_inner_notificationway`.
    let way_keys = schema::NOTIFICATIONWAY
        .iter()
        .filter(|k| !matches!(**k, "notificationway_name" | "minimum_value"));
    let mut new_ways = Vec::new();
    if let Some(contacts) = objects.get_mut(&Kind::Contact) {
        for c in contacts.iter_mut() {
            if c.get("host_notification_commands").is_none() && c.get("service_notification_commands").is_none() {
                continue;
            }
            let Some(cname) = c.name().map(str::to_string) else { continue };
            let way_name = format!("{cname}_inner_notificationway");
            let mut way = synthetic(Kind::NotificationWay, c.loc, &[("notificationway_name", &way_name)]);
            for k in way_keys.clone() {
                if let Some(a) = c.attr(k) {
                    way.set(k, a.value.clone(), a.loc);
                }
            }
            let ways = c.get("notificationways").map(|w| format!("{w},{way_name}")).unwrap_or(way_name);
            let loc = c.loc;
            c.set("notificationways", ways, loc);
            new_ways.push(way);
        }
    }
    objects.entry(Kind::NotificationWay).or_default().extend(new_ways);

    // Contact groups named by contacts but never defined.
    let defined: FastSet<String> = objects
        .get(&Kind::ContactGroup)
        .into_iter()
        .flatten()
        .filter_map(|g| g.name().map(str::to_string))
        .collect();
    let mut created: Vec<Object> = Vec::new();
    let mut seen = FastSet::default();
    for c in objects.get(&Kind::Contact).into_iter().flatten() {
        for g in c.list("contactgroups") {
            if !defined.contains(g) && seen.insert(g.to_string()) {
                created.push(synthetic(
                    Kind::ContactGroup,
                    loc_of(c, "contactgroups"),
                    &[("contactgroup_name", g), ("alias", g)],
                ));
            }
        }
    }
    objects.entry(Kind::ContactGroup).or_default().extend(created);
}

/// A host without `address` or `alias` takes its name.
fn host_defaults(hosts: &mut [Object]) {
    for h in hosts {
        let Some(name) = h.name().map(str::to_string) else { continue };
        let loc = h.loc;
        if h.get("alias").is_none() {
            h.set("alias", name.as_str(), loc);
        }
        if h.get("address").is_none() {
            h.set("address", name.as_str(), loc);
        }
    }
}

/// What a service takes from its host when it has no value of its own (semantics reference
/// 6.4; Nagios does the same for contacts, contact groups, notification interval and period).
const FROM_HOST: [&str; 12] = [
    "notification_interval",
    "notification_period",
    "resultmodulations",
    "business_impact_modulations",
    "escalations",
    "poller_tag",
    "reactionner_tag",
    "check_period",
    "business_impact",
    "maintenance_period",
    "priority",
    "realm",
];

fn inherit_from_hosts(services: &mut [Object], idx: &HostIndex) {
    // Which of the keys concerned a set of attributes holds, as bits: 0 and 1 are `contacts` and
    // `contact_groups`, then FROM_HOST. Shared bases are looked at once, not per service.
    fn mask<'a>(attrs: impl Iterator<Item = &'a Attr>) -> u32 {
        let mut m = 0;
        for a in attrs {
            if &*a.value == crate::object::NULL {
                continue;
            }
            match &*a.key {
                "contacts" => m |= 1,
                "contact_groups" => m |= 2,
                k => {
                    if let Some(i) = FROM_HOST.iter().position(|f| *f == k) {
                        m |= 4 << i;
                    }
                }
            }
        }
        m
    }
    let mut base_masks: FastMap<usize, u32> = FastMap::default();
    let mut base_mask = |o: &Object| -> u32 {
        match &o.base {
            None => 0,
            Some(b) => *base_masks
                .entry(Arc::as_ptr(b) as *const () as usize)
                .or_insert_with(|| mask(b.iter())),
        }
    };
    let host_masks: Vec<u32> = idx.hosts.iter().map(|h| mask(h.attrs.iter()) | base_mask(h)).collect();
    for s in services.iter_mut() {
        let Some(&h) = s.get("host_name").and_then(|n| idx.by_name.get(n)) else {
            continue;
        };
        let own = mask(s.attrs.iter()) | base_mask(s);
        // Contacts come as a pair: a service with either keeps its own.
        let mut wanted = !own & host_masks[h];
        if own & 3 != 0 {
            wanted &= !3;
        }
        if wanted == 0 {
            continue;
        }
        let host = &idx.hosts[h];
        for (bit, key) in ["contacts", "contact_groups"].iter().chain(FROM_HOST.iter()).enumerate() {
            if wanted & (1 << bit) != 0
                && let Some(a) = host.attr(key)
            {
                s.push(a.clone());
            }
        }
    }
}

fn build_timeperiods(objs: &[Object], diag: &mut Diagnostics) -> Timeperiods {
    let mut defs = Vec::with_capacity(objs.len());
    for tp in objs {
        let Some(name) = tp.name() else { continue };
        let mut ranges = Vec::new();
        for a in tp.iter() {
            if matches!(&*a.key, "timeperiod_name" | "alias" | "exclude") || a.key.starts_with('_') {
                continue;
            }
            match timeperiod::parse_daterange(&a.key, &a.value) {
                Ok(r) => ranges.push(r),
                // Shinken only warns about an entry it cannot read.
                Err(e) => diag.warn(a.loc, tp.describe(), format!("invalid entry '{} {}': {e}", a.key, a.value)),
            }
        }
        defs.push(TimePeriodDef {
            name: name.to_string(),
            ranges,
            exclude: tp.list("exclude").into_iter().map(str::to_string).collect(),
        });
    }
    Timeperiods::new(defs)
}

/// Required keys after inheritance, per type.
fn required(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Host => &["host_name"],
        Kind::Service => &["service_description", "check_command", "check_interval", "retry_interval"],
        Kind::Command => &["command_name", "command_line"],
        Kind::TimePeriod => &["timeperiod_name"],
        Kind::Contact => &["contact_name"],
        Kind::ContactGroup => &["contactgroup_name"],
        Kind::HostGroup => &["hostgroup_name"],
        Kind::ServiceGroup => &["servicegroup_name"],
        Kind::NotificationWay => &["notificationway_name"],
        _ => &[],
    }
}

/// References checked: (key, what it names).
fn references(kind: Kind) -> &'static [(&'static str, Ref)] {
    use Ref::*;
    match kind {
        Kind::Host => &[
            ("check_command", Command),
            ("event_handler", Command),
            ("check_period", Period),
            ("notification_period", Period),
            ("maintenance_period", Period),
            ("contacts", Contacts),
            ("contact_groups", ContactGroups),
            ("parents", Hosts),
            ("escalations", Escalations),
        ],
        Kind::Service => &[
            ("check_command", Command),
            ("event_handler", Command),
            ("check_period", Period),
            ("notification_period", Period),
            ("maintenance_period", Period),
            ("contacts", Contacts),
            ("contact_groups", ContactGroups),
            ("escalations", Escalations),
        ],
        Kind::Contact | Kind::NotificationWay => &[
            ("host_notification_period", Period),
            ("service_notification_period", Period),
            ("host_notification_commands", Commands),
            ("service_notification_commands", Commands),
            ("notificationways", NotificationWays),
        ],
        Kind::HostEscalation | Kind::ServiceEscalation | Kind::Escalation => &[
            ("contacts", Contacts),
            ("contact_groups", ContactGroups),
            ("escalation_period", Period),
        ],
        Kind::HostDependency | Kind::ServiceDependency => &[("dependency_period", Period)],
        Kind::TimePeriod => &[("exclude", Periods)],
        _ => &[],
    }
}

#[derive(Clone, Copy)]
enum Ref {
    Command,
    Commands,
    Period,
    Periods,
    Contacts,
    ContactGroups,
    Hosts,
    NotificationWays,
    Escalations,
}

fn names_of(objects: &BTreeMap<Kind, Vec<Object>>, kind: Kind) -> FastSet<&str> {
    objects.get(&kind).into_iter().flatten().filter_map(Object::name).collect()
}

/// What validation needs to know of one key of one object type; looked up once per distinct key.
#[derive(Clone, Copy)]
struct KeyInfo {
    known: bool,
    value_type: ValueType,
    reference: Option<Ref>,
}

fn validate(objects: &BTreeMap<Kind, Vec<Object>>, main: &MainConfig, diag: &mut Diagnostics) {
    let names = Names {
        commands: names_of(objects, Kind::Command),
        periods: names_of(objects, Kind::TimePeriod),
        contacts: names_of(objects, Kind::Contact),
        contactgroups: names_of(objects, Kind::ContactGroup),
        hosts: names_of(objects, Kind::Host),
        ways: names_of(objects, Kind::NotificationWay),
        escalations: names_of(objects, Kind::Escalation),
    };
    // Keys are shared `Arc<str>`s (interned per file), so their address identifies them.
    let mut key_info: FastMap<(usize, Kind), KeyInfo> = FastMap::default();
    // Inherited attributes are shared between objects: each shared set is checked once.
    let mut bases_seen: FastSet<usize> = FastSet::default();

    for (&kind, objs) in objects {
        if kind.is_daemon() || matches!(kind, Kind::Realm | Kind::Module) {
            continue;
        }
        let req = required(kind);
        let refs = references(kind);
        for o in objs {
            for key in req {
                if o.get(key).is_none_or(str::is_empty) {
                    diag.error(o.loc, o.describe(), format!("{key} property is missing"));
                }
            }
            let base = o.base.as_ref().filter(|b| bases_seen.insert(Arc::as_ptr(b) as *const () as usize));
            for a in o.attrs.iter().chain(base.into_iter().flat_map(|b| b.iter())) {
                if &*a.value == crate::object::NULL {
                    continue;
                }
                let info = *key_info.entry((a.key.as_ptr() as usize, kind)).or_insert_with(|| KeyInfo {
                    known: kind == Kind::TimePeriod || schema::is_known(kind, &a.key),
                    value_type: schema::value_type(&a.key),
                    reference: refs.iter().find(|(k, _)| *k == &*a.key).map(|(_, r)| *r),
                });
                check_attr(o, a, info, &names, diag);
            }
        }
    }

    for (key, value) in [
        ("global_host_event_handler", &main.global_host_event_handler),
        ("global_service_event_handler", &main.global_service_event_handler),
    ] {
        if let Some(v) = value {
            let (name, _) = crate::macros::split_command_call(v);
            if !names.commands.contains(name.as_str()) {
                diag.error(None, "", format!("{key}: the command '{name}' is not defined"));
            }
        }
    }
    check_parent_loops(objects.get(&Kind::Host).map(Vec::as_slice).unwrap_or(&[]), diag);
}

/// The names every reference is checked against.
struct Names<'a> {
    commands: FastSet<&'a str>,
    periods: FastSet<&'a str>,
    contacts: FastSet<&'a str>,
    contactgroups: FastSet<&'a str>,
    hosts: FastSet<&'a str>,
    ways: FastSet<&'a str>,
    escalations: FastSet<&'a str>,
}

/// One attribute: a known key, a value of the right type, names that exist.
fn check_attr(o: &Object, a: &Attr, info: KeyInfo, names: &Names, diag: &mut Diagnostics) {
    if !info.known {
        diag.warn(
            a.loc,
            o.describe(),
            format!("unknown property '{}' for a {} (kept, unused)", a.key, o.kind.keyword()),
        );
        return;
    }
    match info.value_type {
        ValueType::Number if !a.value.is_empty() && schema::parse_int(&a.value).is_none() => {
            diag.error(a.loc, o.describe(), format!("{}: '{}' is not a number", a.key, a.value));
        }
        ValueType::Bool if !a.value.is_empty() && schema::parse_bool(&a.value).is_none() => {
            diag.error(a.loc, o.describe(), format!("{}: '{}' is not a boolean (0/1)", a.key, a.value));
        }
        _ => {}
    }
    let Some(what) = info.reference else { return };
    let bad: Vec<String> = match what {
        Ref::Command => {
            let (name, _) = crate::macros::split_command_call(&a.value);
            if name.is_empty() || names.commands.contains(name.as_str()) {
                vec![]
            } else {
                vec![name]
            }
        }
        Ref::Commands => split_list(&a.value)
            .into_iter()
            .map(|c| crate::macros::split_command_call(c).0)
            .filter(|c| !names.commands.contains(c.as_str()))
            .collect(),
        Ref::Period => (!a.value.is_empty() && !names.periods.contains(&*a.value))
            .then(|| a.value.to_string())
            .into_iter()
            .collect(),
        Ref::Periods => missing(&a.value, &names.periods),
        Ref::Contacts => missing(&a.value, &names.contacts),
        Ref::ContactGroups => missing(&a.value, &names.contactgroups),
        Ref::Hosts => missing(&a.value, &names.hosts),
        Ref::NotificationWays => missing(&a.value, &names.ways),
        Ref::Escalations => missing(&a.value, &names.escalations),
    };
    for name in bad {
        let what_name = match what {
            Ref::Command | Ref::Commands => "command",
            Ref::Period | Ref::Periods => "timeperiod",
            Ref::Contacts => "contact",
            Ref::ContactGroups => "contact group",
            Ref::Hosts => "host",
            Ref::NotificationWays => "notification way",
            Ref::Escalations => "escalation",
        };
        diag.error(a.loc, o.describe(), format!("{}: the {what_name} '{name}' is not defined", a.key));
    }
}

fn missing(list: &str, known: &FastSet<&str>) -> Vec<String> {
    split_list(list)
        .into_iter()
        .filter(|n| !known.contains(n))
        .map(str::to_string)
        .collect()
}

/// A host may not be its own ancestor through `parents`.
fn check_parent_loops(hosts: &[Object], diag: &mut Diagnostics) {
    let idx: FastMap<&str, usize> = hosts.iter().enumerate().filter_map(|(i, h)| h.name().map(|n| (n, i))).collect();
    // 0 unvisited, 1 in progress, 2 done.
    let mut state = vec![0u8; hosts.len()];
    for start in 0..hosts.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (h, ref mut next)) = stack.last_mut() {
            let parents = hosts[h].list("parents");
            if *next < parents.len() {
                let p = parents[*next];
                *next += 1;
                if let Some(&pi) = idx.get(p) {
                    match state[pi] {
                        0 => {
                            state[pi] = 1;
                            stack.push((pi, 0));
                        }
                        1 => diag.error(
                            loc_of(&hosts[h], "parents"),
                            hosts[h].describe(),
                            format!("parents: a loop goes through '{p}'"),
                        ),
                        _ => {}
                    }
                }
            } else {
                state[h] = 2;
                stack.pop();
            }
        }
    }
}

/// A problem severity count, for summaries.
pub fn count(diag: &Diagnostics, severity: Severity) -> usize {
    diag.count(severity)
}
