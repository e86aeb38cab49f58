//! What `check-config` prints: counts in `nagios4 -v`'s words, problems, and the JSON form.

use crate::diag::{Report, Severity};
use crate::load::Config;
use crate::object::{Object, split_list};
use crate::schema::{self, Kind};
use serde_json::{Map, Value, json};

/// Types in the order printed, with the words `nagios4 -v` uses, then Shinken's.
pub const COUNTED: [(Kind, &str); 21] = [
    (Kind::Host, "hosts"),
    (Kind::Service, "services"),
    (Kind::HostGroup, "host groups"),
    (Kind::ServiceGroup, "service groups"),
    (Kind::Contact, "contacts"),
    (Kind::ContactGroup, "contact groups"),
    (Kind::Command, "commands"),
    (Kind::TimePeriod, "time periods"),
    (Kind::HostEscalation, "host escalations"),
    (Kind::ServiceEscalation, "service escalations"),
    (Kind::HostDependency, "host dependencies"),
    (Kind::ServiceDependency, "service dependencies"),
    (Kind::NotificationWay, "notification ways"),
    (Kind::Realm, "realms"),
    (Kind::Module, "modules"),
    (Kind::Arbiter, "arbiters"),
    (Kind::Scheduler, "schedulers"),
    (Kind::Poller, "pollers"),
    (Kind::Reactionner, "reactionners"),
    (Kind::Broker, "brokers"),
    (Kind::Receiver, "receivers"),
];

/// The text report: `Checked N <type>.` lines, then warnings, then errors.
pub fn text(cfg: &Config) -> String {
    let mut out = String::new();
    for (kind, words) in COUNTED {
        out.push_str(&format!("Checked {} {words}.\n", cfg.count(kind)));
    }
    let warnings = cfg.diag.reports(Severity::Warning, &cfg.sources);
    let errors = cfg.diag.reports(Severity::Error, &cfg.sources);
    // Each list follows its total, one problem a line: `file:line: object: message`.
    out.push_str(&format!("\nTotal Warnings: {}\n", warnings.len()));
    for w in &warnings {
        out.push_str(&format!("{w}\n"));
    }
    out.push_str(&format!("Total Errors:   {}\n", errors.len()));
    for e in &errors {
        out.push_str(&format!("{e}\n"));
    }
    if errors.is_empty() {
        out.push_str("\nThings look okay - No serious problems were detected during the pre-flight check\n");
    } else {
        out.push_str("\nConfiguration is incorrect, sorry, I bail out\n");
    }
    out
}

/// One object's resolved attributes: lists as arrays, everything else as written.
pub fn object_json(cfg: &Config, o: &Object) -> Value {
    let mut m = Map::new();
    for a in o.iter() {
        if o.kind == Kind::TimePeriod && is_date_range(&a.key) {
            // A date range is keyed by its whole date (`day 1 - 15`), as Nagios prints it: its
            // first word alone is not unique.
            let (date, times) = split_date_range(&a.key, &a.value);
            m.insert(date, Value::String(times));
            continue;
        }
        let v = if schema::is_list(o.kind, &a.key) {
            Value::Array(split_list(&a.value).into_iter().map(|s| Value::String(s.to_string())).collect())
        } else {
            Value::String(a.value.to_string())
        };
        m.insert(a.key.to_string(), v);
    }
    if !o.uses.is_empty() {
        m.insert(
            "use".into(),
            Value::Array(o.uses.iter().map(|u| Value::String(u.to_string())).collect()),
        );
    }
    if o.loc.file < cfg.sources.len() as u32 && o.loc.line > 0 {
        m.insert("imported_from".into(), Value::String(cfg.location(o.loc)));
    }
    Value::Object(m)
}

fn is_date_range(key: &str) -> bool {
    !matches!(key, "timeperiod_name" | "alias" | "exclude" | "imported_from") && !key.starts_with('_')
}

/// `day` + `1 - 15   00:00-12:00` -> (`day 1 - 15`, `00:00-12:00`): the times start at the
/// first `H:MM`.
pub fn split_date_range(key: &str, value: &str) -> (String, String) {
    let b = value.as_bytes();
    let times_at = (0..b.len())
        .find(|&i| {
            (i == 0 || !b[i - 1].is_ascii_digit())
                && b[i].is_ascii_digit()
                && (b.get(i + 1) == Some(&b':') || (b.get(i + 1).is_some_and(u8::is_ascii_digit) && b.get(i + 2) == Some(&b':')))
        })
        .unwrap_or(b.len());
    let date: Vec<&str> = std::iter::once(key).chain(value[..times_at].split_whitespace()).collect();
    (date.join(" "), value[times_at..].trim().to_string())
}

/// Objects written back as cfg text, resolved (no templates needed to read them back): how the
/// arbiter sends a scheduler its part. A `;` in a value is escaped, as the reader expects.
pub fn write_cfg<'a>(out: &mut String, objects: impl IntoIterator<Item = &'a Object>) {
    for o in objects {
        out.push_str("define ");
        out.push_str(o.kind.keyword());
        out.push_str(" {\n");
        for a in o.iter() {
            out.push_str("    ");
            out.push_str(&a.key);
            if !a.value.is_empty() {
                out.push(' ');
                out.push_str(&a.value.replace(';', "\\;"));
            }
            out.push('\n');
        }
        out.push_str("}\n");
    }
}

/// Main-file parameters and resource macros as cfg text (`key=value`, `$USER1$=...`).
pub fn write_params(out: &mut String, cfg: &Config) {
    for (k, v) in &cfg.main.params {
        if !matches!(k.as_str(), "cfg_file" | "cfg_dir" | "resource_file") {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    let mut resources: Vec<_> = cfg.main.resources.iter().collect();
    resources.sort();
    for (k, v) in resources {
        out.push_str(&format!("${k}$={v}\n"));
    }
}

/// The `--format json` document.
pub fn json(cfg: &Config) -> Value {
    let mut objects = Map::new();
    for kind in Kind::ALL {
        if kind.is_daemon() || matches!(kind, Kind::Realm | Kind::Module) {
            continue;
        }
        objects.insert(
            kind.plural().into(),
            Value::Array(cfg.objects(kind).iter().map(|o| object_json(cfg, o)).collect()),
        );
    }
    for role in crate::daemons::Role::ALL {
        objects.insert(
            role.kind().plural().into(),
            serde_json::to_value(cfg.topology.by_role(role).collect::<Vec<_>>()).unwrap_or(Value::Null),
        );
    }
    objects.insert("realms".into(), serde_json::to_value(&cfg.topology.realms).unwrap_or(Value::Null));
    objects.insert("modules".into(), serde_json::to_value(&cfg.topology.modules).unwrap_or(Value::Null));
    let reports = |s: Severity| -> Vec<Report> { cfg.diag.reports(s, &cfg.sources) };
    json!({
        "objects": objects,
        "main": cfg.main.params,
        "warnings": reports(Severity::Warning),
        "errors": reports(Severity::Error),
    })
}

#[cfg(test)]
mod tests {
    use super::split_date_range;

    #[test]
    fn date_ranges_split_at_their_times() {
        assert_eq!(
            split_date_range("day", "1 - 15      00:00-12:00"),
            ("day 1 - 15".into(), "00:00-12:00".into())
        );
        assert_eq!(
            split_date_range("monday", "09:00-17:00,18:00-20:00"),
            ("monday".into(), "09:00-17:00,18:00-20:00".into())
        );
        assert_eq!(
            split_date_range("2014-01-01", "- 2014-02-01 / 3\t0:00-24:00"),
            ("2014-01-01 - 2014-02-01 / 3".into(), "0:00-24:00".into())
        );
        assert_eq!(
            split_date_range("monday", "1 january - tuesday 2 february 08:00-09:00").0,
            "monday 1 january - tuesday 2 february"
        );
    }
}
