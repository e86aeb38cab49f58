//! Differential tests: `shinken check-config` against Nagios 4 (`nagios4 -v` and `-pv`) on
//! generated and hand-written configurations. They fail, never skip, without nagios4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use shinken_testkit::nagios::{self, COUNTED_TYPES, Object};
use shinken_testkit::{TempDir, r#gen};

const SHINKEN: &str = env!("CARGO_BIN_EXE_shinken");

/// Shinken's own types, printed after Nagios's by `check-config`.
const SHINKEN_TYPES: [&str; 8] = [
    "realms",
    "modules",
    "arbiters",
    "schedulers",
    "pollers",
    "reactionners",
    "brokers",
    "receivers",
];

/// Deliberate difference: Shinken defines three commands of its own (`bp_rule`,
/// `_internal_host_up`, `_echo`), so it counts three more commands than Nagios.
const BUILTIN_COMMANDS: [&str; 3] = ["bp_rule", "_internal_host_up", "_echo"];

fn check_config(args: &[&str]) -> Output {
    Command::new(SHINKEN)
        .arg("check-config")
        .args(args)
        .output()
        .expect("run shinken check-config")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `Checked N <type>.` lines, in order.
fn checked_lines(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Checked ")?.strip_suffix('.')?;
            let (n, kind) = rest.split_once(' ')?;
            Some((kind.to_owned(), n.parse().ok()?))
        })
        .collect()
}

fn assert_counts_match(main_cfg: &Path, what: &str) {
    let v = nagios::verify(main_cfg).expect("nagios4 must be installed");
    let out = check_config(&[main_cfg.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected_status = if v.errors == 0 { 0 } else { 1 };
    assert_eq!(
        out.status.code(),
        Some(expected_status),
        "{what}: nagios errors {}\n{}\n--- nagios\n{}",
        v.errors,
        text(&out),
        v.output
    );
    let lines = checked_lines(&stdout);
    // Nagios's types first, in Nagios's order; then Shinken's, in order. Shinken may print
    // more types of its own among them (`notification ways`, which Nagios has not).
    let order: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        order.len() >= COUNTED_TYPES.len() && order[..COUNTED_TYPES.len()] == COUNTED_TYPES,
        "{what}: the Checked lines of Nagios's types\n{}",
        text(&out)
    );
    let shinken_order: Vec<&str> = order[COUNTED_TYPES.len()..]
        .iter()
        .copied()
        .filter(|k| SHINKEN_TYPES.contains(k))
        .collect();
    assert_eq!(
        shinken_order,
        SHINKEN_TYPES,
        "{what}: the Checked lines of Shinken's types\n{}",
        text(&out)
    );
    let ours: BTreeMap<&str, u64> = lines.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    for kind in COUNTED_TYPES {
        let mut expected = v.count(kind);
        if kind == "commands" {
            expected += BUILTIN_COMMANDS.len() as u64;
        }
        assert_eq!(ours[kind], expected, "{what}: {kind}\n{}\n--- nagios\n{}", text(&out), v.output);
    }
}

#[test]
fn counts_match_nagios_on_varied_configs() {
    for seed in 0..6 {
        let dir = TempDir::new("diff-counts").unwrap();
        let g = r#gen::varied(dir.path(), seed).unwrap();
        assert_counts_match(&g.main_cfg, &format!("seed {seed}"));
    }
}

#[test]
fn counts_match_nagios_on_scale_config() {
    let dir = TempDir::new("diff-scale").unwrap();
    let main_cfg = r#gen::scale(dir.path(), 500).unwrap();
    assert_counts_match(&main_cfg, "scale 500");
}

// ---------------------------------------------------------------------------------------
// Resolved objects.

/// Attributes whose value is a list: compared as sets.
const LIST_KEYS: [&str; 23] = [
    "members",
    "hostgroups",
    "hostgroup_members",
    "servicegroups",
    "servicegroup_members",
    "contact_groups",
    "contactgroups",
    "contactgroup_members",
    "contacts",
    "parents",
    "use",
    "exclude",
    "notification_options",
    "host_notification_options",
    "service_notification_options",
    "flap_detection_options",
    "stalking_options",
    "host_notification_commands",
    "service_notification_commands",
    "escalation_options",
    "notification_failure_criteria",
    "execution_failure_criteria",
    "hostgroup_name",
];

/// Attributes Nagios prints with its default when nothing sets them: compared only when our
/// side expresses them too. Everything else Nagios prints was set by the configuration and
/// must be on our side.
const NAGIOS_DEFAULTED: [&str; 31] = [
    "alias",
    "initial_state",
    "importance",
    "minimum_importance",
    "check_interval",
    "retry_interval",
    "max_check_attempts",
    "active_checks_enabled",
    "passive_checks_enabled",
    "obsess",
    "event_handler_enabled",
    "low_flap_threshold",
    "high_flap_threshold",
    "flap_detection_enabled",
    "flap_detection_options",
    "freshness_threshold",
    "check_freshness",
    "notification_options",
    "notifications_enabled",
    "notification_interval",
    "first_notification_delay",
    "stalking_options",
    "process_perf_data",
    "retain_status_information",
    "retain_nonstatus_information",
    "is_volatile",
    "parallelize_check",
    "host_notifications_enabled",
    "service_notifications_enabled",
    "can_submit_commands",
    "host_notification_options",
];

/// Defaulted attributes that the generators' root templates always set, so they must be on
/// our side too.
fn always_set(kind: &str) -> &'static [&'static str] {
    match kind {
        "host" | "service" => &[
            "check_interval",
            "retry_interval",
            "max_check_attempts",
            "notification_interval",
            "notification_options",
        ],
        "contact" => &["host_notification_options", "service_notification_options"],
        _ => &[],
    }
}

fn split_list(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned)
}

/// The canonical form of a value: lists as sorted sets, numbers as numbers
/// (Nagios prints `5.000000` for an interval written `5`), text trimmed.
fn canonical(kind: &str, key: &str, value: &Value) -> String {
    let is_range = kind == "timeperiod" && key != "timeperiod_name" && key != "alias";
    let items: Vec<String> = match value {
        Value::Array(a) => a
            .iter()
            .flat_map(|x| match x {
                Value::String(s) => split_list(s).collect::<Vec<_>>(),
                other => vec![other.to_string()],
            })
            .collect(),
        Value::String(s) => {
            if LIST_KEYS.contains(&key) || is_range {
                split_list(s).collect()
            } else {
                let t = s.trim();
                return match t.parse::<f64>() {
                    Ok(n) if !t.is_empty() => format!("{n}"),
                    _ => t.to_owned(),
                };
            }
        }
        other => return other.to_string(),
    };
    let set: BTreeSet<String> = items.into_iter().collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// Our objects of one type, from `{"objects": {"<plural>": [...]}}`.
fn ours<'a>(json: &'a Value, plural: &str) -> Vec<&'a serde_json::Map<String, Value>> {
    json["objects"][plural]
        .as_array()
        .unwrap_or_else(|| panic!("no objects.{plural} array in the JSON"))
        .iter()
        .map(|o| o.as_object().expect("each object is a JSON object"))
        .collect()
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_owned),
        _ => None,
    }
}

fn compare_object(kind: &str, id: &str, nagios: &Object, ours: &serde_json::Map<String, Value>, problems: &mut Vec<String>) {
    for (key, nval) in &nagios.attrs {
        let required = key.starts_with('_') || !NAGIOS_DEFAULTED.contains(&key.as_str()) || always_set(kind).contains(&key.as_str());
        let Some(oval) = ours.get(key) else {
            if required {
                problems.push(format!("{kind} {id}: {key} missing on our side (nagios: {nval:?})"));
            }
            continue;
        };
        let (n, o) = (canonical(kind, key, &Value::String(nval.clone())), canonical(kind, key, oval));
        if n != o {
            problems.push(format!("{kind} {id}: {key}: nagios {nval:?}, ours {oval}"));
        }
    }
    for (key, oval) in ours {
        if key.starts_with('_') && nagios.get(key).is_none() {
            problems.push(format!("{kind} {id}: custom variable {key} = {oval} unknown to nagios"));
        }
        if ["normal_check_interval", "retry_check_interval"].contains(&key.as_str()) {
            problems.push(format!("{kind} {id}: old attribute name {key} not mapped"));
        }
    }
    match ours.get("imported_from").and_then(Value::as_str) {
        Some(at) if at.rsplit_once(':').is_some_and(|(_, l)| l.parse::<u32>().is_ok()) => {}
        other => problems.push(format!("{kind} {id}: imported_from is {other:?}, not file:line")),
    }
}

/// Group membership as Nagios resolves it: `members`, the members' side (`hostgroups` on
/// hosts...) and nested `*_members`, however our side spreads it.
fn our_group_members(
    groups: &[&serde_json::Map<String, Value>],
    name_key: &str,
    nested_key: &str,
    back: &[(String, BTreeSet<String>)],
) -> BTreeMap<String, BTreeSet<String>> {
    let list = |o: &serde_json::Map<String, Value>, k: &str| -> Vec<String> {
        o.get(k)
            .map(|v| canonical("", "members", v))
            .map(|s| split_list(&s).collect())
            .unwrap_or_default()
    };
    let mut direct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut nested: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in groups {
        let name = str_of(g.get(name_key)).unwrap_or_default();
        let members = direct.entry(name.clone()).or_default();
        members.extend(list(g, "members"));
        nested.insert(name, list(g, nested_key));
    }
    for (member, in_groups) in back {
        for g in in_groups {
            direct.entry(g.clone()).or_default().insert(member.clone());
        }
    }
    let mut resolved = BTreeMap::new();
    for name in direct.keys() {
        let (mut seen, mut todo, mut all) = (BTreeSet::new(), vec![name.clone()], BTreeSet::new());
        while let Some(g) = todo.pop() {
            if seen.insert(g.clone()) {
                all.extend(direct.get(&g).into_iter().flatten().cloned());
                todo.extend(nested.get(&g).into_iter().flatten().cloned());
            }
        }
        resolved.insert(name.clone(), all);
    }
    resolved
}

fn back_refs(
    objs: &[&serde_json::Map<String, Value>],
    name: impl Fn(&serde_json::Map<String, Value>) -> String,
    key: &str,
) -> Vec<(String, BTreeSet<String>)> {
    objs.iter()
        .map(|o| {
            let groups = o.get(key).map(|v| canonical("", key, v)).unwrap_or_default();
            (name(o), split_list(&groups).collect())
        })
        .collect()
}

fn compare_resolved(main_cfg: &Path, what: &str) {
    let (v, nagios_objects) = nagios::precache(main_cfg).expect("nagios4 must be installed");
    assert_eq!(v.errors, 0, "{what}: nagios rejects the config\n{}", v.output);
    let out = check_config(&["--format", "json", main_cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{what}\n{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: the output is not JSON: {e}\n{}", text(&out)));
    assert_eq!(json["errors"].as_array().map(Vec::len), Some(0), "{what}: {}", json["errors"]);
    assert!(json["warnings"].is_array(), "{what}: no warnings array");

    let mut problems = Vec::new();
    let by_kind = |kind: &str| -> Vec<&Object> { nagios_objects.iter().filter(|o| o.kind == kind).collect() };

    // (nagios type, our plural, how an object is named on both sides)
    type Key = fn(&dyn Fn(&str) -> Option<String>) -> String;
    let single: [(&str, &str, Key); 5] = [
        ("host", "hosts", |g| g("host_name").unwrap_or_default()),
        ("service", "services", |g| {
            format!(
                "{}/{}",
                g("host_name").unwrap_or_default(),
                g("service_description").unwrap_or_default()
            )
        }),
        ("contact", "contacts", |g| g("contact_name").unwrap_or_default()),
        ("command", "commands", |g| g("command_name").unwrap_or_default()),
        ("timeperiod", "timeperiods", |g| g("timeperiod_name").unwrap_or_default()),
    ];
    for (kind, plural, key) in single {
        let mut our_by_id: BTreeMap<String, &serde_json::Map<String, Value>> = BTreeMap::new();
        for o in ours(&json, plural) {
            let id = key(&|k| str_of(o.get(k)));
            if our_by_id.insert(id.clone(), o).is_some() {
                problems.push(format!("{kind} {id}: listed twice on our side"));
            }
        }
        let mut nagios_ids = BTreeSet::new();
        for n in by_kind(kind) {
            let id = key(&|k| n.get(k).map(str::to_owned));
            nagios_ids.insert(id.clone());
            match our_by_id.get(&id) {
                Some(o) => compare_object(kind, &id, n, o, &mut problems),
                None => problems.push(format!("{kind} {id}: missing on our side")),
            }
        }
        for id in our_by_id.keys() {
            // Deliberate difference: Shinken's built-in commands.
            let builtin = kind == "command" && BUILTIN_COMMANDS.contains(&id.as_str());
            if !nagios_ids.contains(id) && !builtin {
                problems.push(format!("{kind} {id}: ours only (a template listed, or a wrong expansion?)"));
            }
        }
    }

    // Group membership, compared as resolved sets.
    let nagios_groups = |kind: &str, name_key: &str, pairs: bool| -> BTreeMap<String, BTreeSet<String>> {
        by_kind(kind)
            .iter()
            .map(|g| {
                let items: Vec<String> = split_list(g.get("members").unwrap_or("")).collect();
                let members = if pairs {
                    items.chunks(2).map(|c| c.join("/")).collect()
                } else {
                    items.into_iter().collect()
                };
                (g.get(name_key).unwrap_or("").to_owned(), members)
            })
            .collect()
    };
    let hosts = ours(&json, "hosts");
    let contacts = ours(&json, "contacts");
    let services = ours(&json, "services");
    let hg = our_group_members(
        &ours(&json, "hostgroups"),
        "hostgroup_name",
        "hostgroup_members",
        &back_refs(&hosts, |o| str_of(o.get("host_name")).unwrap_or_default(), "hostgroups"),
    );
    let cg = our_group_members(
        &ours(&json, "contactgroups"),
        "contactgroup_name",
        "contactgroup_members",
        &back_refs(&contacts, |o| str_of(o.get("contact_name")).unwrap_or_default(), "contactgroups"),
    );
    // Service group members come as host,service pairs: turn them into host/service first.
    let sgs_raw = ours(&json, "servicegroups");
    let sgs: Vec<serde_json::Map<String, Value>> = sgs_raw
        .iter()
        .map(|g| {
            let mut g = (*g).clone();
            if let Some(m) = g.get("members") {
                let flat: Vec<String> = match m {
                    Value::Array(a) => a.iter().filter_map(Value::as_str).flat_map(split_list).collect(),
                    Value::String(s) => split_list(s).collect(),
                    _ => Vec::new(),
                };
                let pairs: Vec<Value> = flat.chunks(2).map(|c| Value::String(c.join("/"))).collect();
                g.insert("members".into(), Value::Array(pairs));
            }
            g
        })
        .collect();
    let sg = our_group_members(
        &sgs.iter().collect::<Vec<_>>(),
        "servicegroup_name",
        "servicegroup_members",
        &back_refs(
            &services,
            |o| {
                format!(
                    "{}/{}",
                    str_of(o.get("host_name")).unwrap_or_default(),
                    str_of(o.get("service_description")).unwrap_or_default()
                )
            },
            "servicegroups",
        ),
    );
    for (kind, nagios_side, ours_side) in [
        ("hostgroup", nagios_groups("hostgroup", "hostgroup_name", false), hg),
        ("contactgroup", nagios_groups("contactgroup", "contactgroup_name", false), cg),
        ("servicegroup", nagios_groups("servicegroup", "servicegroup_name", true), sg),
    ] {
        if nagios_side.keys().collect::<Vec<_>>() != ours_side.keys().collect::<Vec<_>>() {
            problems.push(format!(
                "{kind}s: nagios {:?}, ours {:?}",
                nagios_side.keys().collect::<Vec<_>>(),
                ours_side.keys().collect::<Vec<_>>()
            ));
        }
        for (name, members) in &nagios_side {
            if let Some(o) = ours_side.get(name).filter(|o| *o != members) {
                problems.push(format!("{kind} {name}: members: nagios {members:?}, ours {o:?}"));
            }
        }
    }

    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(60);
        panic!("{what}: {n} differences with nagios4 -pv:\n{}", problems.join("\n"));
    }
}

#[test]
fn resolved_objects_match_nagios_on_varied_configs() {
    for seed in 0..4 {
        let dir = TempDir::new("diff-objects").unwrap();
        let g = r#gen::varied(dir.path(), seed).unwrap();
        compare_resolved(&g.main_cfg, &format!("seed {seed}"));
    }
}

// ---------------------------------------------------------------------------------------
// Hand-written edge cases.

const EDGE_OBJECTS: &str = "\
define command {
    command_name    check_dummy
    command_line    $USER1$/check_dummy $ARG1$
}
define timeperiod {
    timeperiod_name 24x7
    alias           Always
    sunday          00:00-24:00
    monday          00:00-24:00
}
define contact {
    contact_name                  admin
    email                         admin@example.com
    host_notification_period      24x7
    service_notification_period   24x7
    host_notification_options     d,u,r
    service_notification_options  w,u,c,r
    host_notification_commands    check_dummy
    service_notification_commands check_dummy
}
define host {
    name                 base
    register             0
    check_command        check_dummy!0
    max_check_attempts   2
    check_interval       5
    retry_interval       1
    check_period         24x7
    notification_interval 30
    notification_options d,u,r
    notification_period  24x7
    contacts             admin
    notes                inherited note
    _SITE                paris
}
define host {
    use      base
    host_name alpha
    address  192.0.2.10
    notes    null
}
define host {
    use      base
    host_name beta   ; a trailing comment
    address  192.0.2.11
    hostgroups web
}
define hostgroup {
    hostgroup_name web
    alias          Web
    members        alpha
}
# A service on the group and a more specific one on a host of it.
define service {
    name                  base-svc
    register              0
    max_check_attempts    2
    check_interval        5
    retry_interval        1
    check_period          24x7
    notification_interval 30
    notification_options  w,c,r
    notification_period   24x7
    contacts              admin
}
define service {
    use                 base-svc
    hostgroup_name      web
    service_description HTTP
    check_command       check_dummy!0
}
define service {
    use                 base-svc
    host_name           beta
    service_description HTTP
    check_command       check_dummy!2
}
";

fn edge_config(dir: &Path, objects: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("objects")).unwrap();
    std::fs::write(dir.join("resource.cfg"), "$USER1$=/usr/lib/nagios/plugins\n").unwrap();
    std::fs::write(dir.join("objects").join("edge.cfg"), objects).unwrap();
    nagios::write_main_cfg(dir, "objects").unwrap()
}

#[test]
fn edge_cases_match_nagios() {
    let dir = TempDir::new("diff-edge").unwrap();
    let main_cfg = edge_config(dir.path(), EDGE_OBJECTS);
    assert_counts_match(&main_cfg, "edge");
    compare_resolved(&main_cfg, "edge");
}

#[test]
fn errors_exit_1_like_nagios_rejects() {
    let dir = TempDir::new("diff-error").unwrap();
    let broken = format!(
        "{EDGE_OBJECTS}\ndefine service {{\n    use base-svc\n    host_name alpha\n    \
         service_description BROKEN\n    check_command no_such_command\n}}\n"
    );
    let main_cfg = edge_config(dir.path(), &broken);
    let v = nagios::verify(&main_cfg).expect("nagios4 must be installed");
    assert!(v.errors >= 1, "nagios should reject it:\n{}", v.output);
    let out = check_config(&[main_cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Errors are located: `file:line: object: message`, the file being edge.cfg.
    let all = text(&out);
    assert!(
        all.lines().any(|l| l.contains("edge.cfg:") && l.contains("no_such_command")),
        "no located error naming no_such_command:\n{all}"
    );
    let json_out = check_config(&["--format", "json", main_cfg.to_str().unwrap()]);
    assert_eq!(json_out.status.code(), Some(1), "{}", text(&json_out));
    let json: Value = serde_json::from_slice(&json_out.stdout).expect("JSON even with errors");
    assert!(json["errors"].as_array().is_some_and(|e| !e.is_empty()), "{json}");
}

#[test]
fn missing_entry_point_exits_2() {
    let dir = TempDir::new("diff-missing").unwrap();
    let missing = dir.path().join("nope.cfg");
    let v = nagios::verify(&missing).expect("nagios4 must be installed");
    assert!(!v.success, "nagios reads a missing file?\n{}", v.output);
    let out = check_config(&[missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
