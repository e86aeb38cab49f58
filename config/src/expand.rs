//! Services to one object per host, dependencies and escalations to the objects they name.
//!
//! (semantics reference, section 6.7.) A service definition applies to the hosts of its
//! `hostgroup_name` expression, then its `host_name` list (in order, `*` and `!h`); a service
//! *template* whose `host_name` names host templates applies to every host that uses one of them
//! (directly or through its chain); `duplicate_foreach` clones a service per key of a host's
//! custom variable. Hosts then drop services by `service_excludes`/`service_includes` and change
//! them by `service_overrides`. A host and description defined twice keep the last definition,
//! with a warning (Shinken 2.4).

use crate::diag::Diagnostics;
use crate::expr::{self, HostSet};
use crate::fasthash::{FastMap, FastSet};
use crate::groups::loc_of;
use crate::object::{Object, Text, split_list};
use crate::schema::Kind;
use std::sync::Arc;

/// Everything expansion needs to know about hosts.
pub struct HostIndex<'a> {
    pub hosts: &'a [Object],
    pub by_name: FastMap<&'a str, usize>,
    pub groups: FastMap<&'a str, HostSet>,
    /// For each host template name, the hosts that use it directly or through their chain.
    pub by_template: FastMap<&'a str, HostSet>,
}

impl<'a> HostIndex<'a> {
    pub fn new(hosts: &'a [Object], hostgroups: &'a [Object], host_templates: &'a [Object]) -> Self {
        let n = hosts.len();
        let by_name: FastMap<&str, usize> = hosts.iter().enumerate().filter_map(|(i, h)| h.name().map(|nm| (nm, i))).collect();
        let mut groups = FastMap::default();
        for g in hostgroups {
            if let Some(name) = g.name() {
                let mut set = HostSet::empty(n);
                for m in g.list("members") {
                    if let Some(&i) = by_name.get(m) {
                        set.insert(i);
                    }
                }
                groups.insert(name, set);
            }
        }
        // Template ancestry: template name -> its parents.
        let parents: FastMap<&str, &[Text]> = host_templates
            .iter()
            .filter_map(|t| Some((&**t.template_name.as_ref()?, t.uses.as_slice())))
            .collect();
        let mut by_template: FastMap<&str, HostSet> = FastMap::default();
        // Hosts share a few `use` lists: walk each list's ancestry once.
        let mut ancestry: FastMap<&[Text], Vec<&str>> = FastMap::default();
        for (i, h) in hosts.iter().enumerate() {
            let names = ancestry.entry(h.uses.as_slice()).or_insert_with(|| {
                let mut seen: FastSet<&str> = FastSet::default();
                let mut order = Vec::new();
                let mut todo: Vec<&str> = h.uses.iter().map(|u| &**u).collect();
                while let Some(t) = todo.pop() {
                    if seen.len() > 256 || !seen.insert(t) {
                        continue;
                    }
                    order.push(t);
                    if let Some(ps) = parents.get(t) {
                        todo.extend(ps.iter().map(|u| &**u));
                    }
                }
                order
            });
            for t in names.iter() {
                by_template.entry(t).or_insert_with(|| HostSet::empty(n)).insert(i);
            }
        }
        Self {
            hosts,
            by_name,
            groups,
            by_template,
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// Expands registered service definitions and service templates on host templates into one
/// service per host.
pub fn services(defs: Vec<Object>, service_templates: &[Object], idx: &HostIndex, diag: &mut Diagnostics) -> Vec<Object> {
    let n = idx.len();
    let mut out: Vec<Object> = Vec::with_capacity(defs.len());
    // Per host, the positions in `out` of its services, for duplicates. A host has a handful of
    // services, so a short scan beats a hash map of every service (which misses the cache).
    let mut seen: Vec<Vec<u32>> = vec![Vec::new(); n];

    let mut emit = |svc: Object, host: usize, out: &mut Vec<Object>, diag: &mut Diagnostics| {
        let svc = match svc.get("duplicate_foreach") {
            Some(var) if !var.trim().is_empty() => {
                for clone in duplicate_foreach(&svc, var.trim(), &idx.hosts[host], diag) {
                    push_unique(clone, host, out, &mut seen, diag);
                }
                return;
            }
            _ => svc,
        };
        push_unique(svc, host, out, &mut seen, diag);
    };

    for def in defs {
        // The common case, one plain host name: no set to build, no copy to make.
        if let Some(h) = single_host(&def, idx) {
            emit(def, h, &mut out, diag);
            continue;
        }
        let hosts = select_hosts(&def, idx, diag);
        if hosts.is_empty() {
            if def.get("host_name").is_none() && def.get("hostgroup_name").is_none() {
                diag.error(def.loc, def.describe(), "a service needs a host_name or a hostgroup_name");
            } else {
                diag.warn(def.loc, def.describe(), "applies to no host; ignored");
            }
            continue;
        }
        for h in hosts.iter() {
            let svc = instantiate(&def, &idx.hosts[h]);
            emit(svc, h, &mut out, diag);
        }
    }

    // Service templates on host templates (Shinken's packs): one service per host using them.
    for tpl in service_templates {
        let Some(host_list) = tpl.get("host_name") else { continue };
        let mut hosts = HostSet::empty(n);
        for t in split_list(host_list) {
            if let Some(set) = idx.by_template.get(t) {
                hosts.union_with(set);
            }
        }
        if hosts.is_empty() {
            continue;
        }
        for h in hosts.iter() {
            let mut svc = instantiate(tpl, &idx.hosts[h]);
            svc.register = true;
            svc.template_name = None;
            svc.uses = tpl.template_name.iter().cloned().collect();
            emit(svc, h, &mut out, diag);
        }
    }

    apply_host_rules(out, idx, diag)
}

/// The host of a definition whose `host_name` is one known host and which has no
/// `hostgroup_name`.
fn single_host(def: &Object, idx: &HostIndex) -> Option<usize> {
    if def.get("hostgroup_name").is_some() {
        return None;
    }
    let name = def.get("host_name")?;
    if name.contains([',', '*', '!']) {
        return None;
    }
    idx.by_name.get(name.trim()).copied()
}

/// The hosts a registered service definition applies to.
fn select_hosts(def: &Object, idx: &HostIndex, diag: &mut Diagnostics) -> HostSet {
    let n = idx.len();
    let mut unknown = Vec::new();
    let mut set = HostSet::empty(n);
    if let Some(expr) = def.get("hostgroup_name") {
        match expr::hostgroup_expr(expr, &idx.groups, n, &mut unknown) {
            Ok(s) => set = s,
            Err(e) => diag.error(loc_of(def, "hostgroup_name"), def.describe(), format!("hostgroup_name: {e}")),
        }
        for g in unknown.drain(..) {
            diag.error(
                loc_of(def, "hostgroup_name"),
                def.describe(),
                format!("hostgroup_name: the hostgroup '{g}' is unknown"),
            );
        }
    }
    if let Some(list) = def.get("host_name") {
        let items = split_list(list);
        set = expr::host_list(&items, &idx.by_name, n, set, &mut unknown);
        for h in unknown {
            if idx.by_template.contains_key(h.as_str()) {
                diag.error(
                    loc_of(def, "host_name"),
                    def.describe(),
                    format!("host_name: '{h}' is a host template; only a service template (register 0) applies to host templates"),
                );
            } else {
                diag.error(
                    loc_of(def, "host_name"),
                    def.describe(),
                    format!("host_name: the host '{h}' is unknown"),
                );
            }
        }
    }
    set
}

/// A copy of a service definition for one host.
fn instantiate(def: &Object, host: &Object) -> Object {
    let mut svc = def.clone();
    if def.attrs.iter().any(|a| &*a.key == "hostgroup_name")
        || def.base.as_ref().is_some_and(|b| b.iter().any(|a| &*a.key == "hostgroup_name"))
    {
        svc.remove("hostgroup_name");
    }
    // Share the host's name rather than copying it.
    let hname: Text = host.attr("host_name").map(|a| a.value.clone()).unwrap_or_else(|| "".into());
    let loc = loc_of(def, "host_name");
    svc.set("host_name", hname, loc);
    svc
}

fn push_unique(svc: Object, host: usize, out: &mut Vec<Object>, seen: &mut [Vec<u32>], diag: &mut Diagnostics) {
    let Some(desc) = svc.attr("service_description").map(|a| a.value.clone()) else {
        diag.error(svc.loc, svc.describe(), "service_description property is missing");
        return;
    };
    let same = |o: &Object| {
        o.attr("service_description")
            .is_some_and(|a| Arc::ptr_eq(&a.value, &desc) || a.value == desc)
    };
    match seen[host].iter().map(|&p| p as usize).find(|&p| same(&out[p])) {
        Some(pos) => {
            let prev = &out[pos];
            diag.warn(
                svc.loc,
                svc.describe(),
                format!(
                    "duplicate service (also defined at line {} of file #{}); using the last definition",
                    prev.loc.line, prev.loc.file
                ),
            );
            out[pos] = svc;
        }
        None => {
            seen[host].push(out.len() as u32);
            out.push(svc);
        }
    }
}

/// `duplicate_foreach _VAR`: one service per key of the host's custom variable.
fn duplicate_foreach(svc: &Object, var: &str, host: &Object, diag: &mut Diagnostics) -> Vec<Object> {
    let var = var.to_ascii_uppercase();
    let Some(value) = host.get(&var) else { return Vec::new() };
    let skip: FastSet<String> = host
        .get(&format!("_!{}", var.trim_start_matches('_')))
        .map(|s| split_list(s).into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    let default = svc.get("default_value");
    let mut out = Vec::new();
    for entry in parse_foreach(value) {
        if skip.contains(&entry.key) {
            continue;
        }
        let values: Vec<String> = if entry.values.is_empty() {
            match default {
                Some(d) => vec![d.to_string()],
                None if uses_value(svc) => {
                    diag.error(
                        loc_of(svc, "duplicate_foreach"),
                        svc.describe(),
                        format!(
                            "key '{}' of {var} on host '{}' has no value and the service has no default_value",
                            entry.key,
                            host.name().unwrap_or("?")
                        ),
                    );
                    continue;
                }
                None => Vec::new(),
            }
        } else {
            entry.values
        };
        let mut clone = svc.clone();
        clone.materialize();
        clone.remove("duplicate_foreach");
        clone.remove("default_value");
        let safe_key = sanitize_key(&entry.key);
        for a in clone.attrs.iter_mut() {
            match &*a.key {
                "service_description" => a.value = a.value.replace("$KEY$", &safe_key).into(),
                "check_command" | "display_name" | "aggregation" | "event_handler" | "service_dependencies" => {
                    a.value = substitute(&a.value, &entry.key, &values).into();
                }
                _ => {}
            }
        }
        out.push(clone);
    }
    out
}

fn uses_value(svc: &Object) -> bool {
    ["check_command", "display_name", "event_handler"]
        .iter()
        .any(|k| svc.get(k).is_some_and(|v| v.contains("$VALUE")))
}

fn substitute(text: &str, key: &str, values: &[String]) -> String {
    let mut s = text.replace("$KEY$", key);
    for (i, v) in values.iter().enumerate().rev() {
        s = s.replace(&format!("$VALUE{}$", i + 1), v);
    }
    s.replace("$VALUE$", values.first().map(String::as_str).unwrap_or(""))
}

/// Characters Shinken replaces in a `$KEY$` used in a service description.
fn sanitize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut last_sub = false;
    for c in key.chars() {
        if "`~!$%^&*\"|'<>?,()=".contains(c) {
            if !last_sub {
                out.push('_');
            }
            last_sub = true;
        } else {
            out.push(c);
            last_sub = false;
        }
    }
    out
}

struct ForeachEntry {
    key: String,
    values: Vec<String>,
}

/// `key1$(v1)$$(v2)$, key2, web[1-3]$(x)$` -> entries, with `[a-b]` ranges expanded.
fn parse_foreach(text: &str) -> Vec<ForeachEntry> {
    let mut out = Vec::new();
    for item in split_outside_values(text) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (key, mut rest) = match item.find("$(") {
            Some(i) => (item[..i].trim(), &item[i..]),
            None => (item, ""),
        };
        let mut values = Vec::new();
        while let Some(start) = rest.find("$(") {
            let after = &rest[start + 2..];
            match after.find(")$") {
                Some(end) => {
                    values.push(after[..end].to_string());
                    rest = &after[end + 2..];
                }
                None => break,
            }
        }
        for k in expand_range(key) {
            out.push(ForeachEntry {
                key: k,
                values: values.clone(),
            });
        }
    }
    out
}

/// Splits on commas that are not inside `$( ... )$`.
fn split_outside_values(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'(') {
            depth += 1;
            i += 2;
            continue;
        }
        if b[i] == b')' && b.get(i + 1) == Some(&b'$') && depth > 0 {
            depth -= 1;
            i += 2;
            continue;
        }
        if b[i] == b',' && depth == 0 {
            parts.push(&text[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

/// `web[1-3]` -> web1, web2, web3; `disk[01-03]` keeps the padding. At most 10000 keys.
fn expand_range(key: &str) -> Vec<String> {
    if let (Some(open), Some(close)) = (key.find('['), key.rfind(']'))
        && open < close
        && let Some((a, b)) = key[open + 1..close].split_once('-')
        && let (Ok(lo), Ok(hi)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>())
        && lo <= hi
        && hi - lo < 10_000
    {
        let width = a.trim().len();
        return (lo..=hi)
            .map(|i| format!("{}{:0width$}{}", &key[..open], i, &key[close + 1..]))
            .collect();
    }
    vec![key.to_string()]
}

/// `service_excludes`, `service_includes` and `service_overrides` of each host.
fn apply_host_rules(services: Vec<Object>, idx: &HostIndex, diag: &mut Diagnostics) -> Vec<Object> {
    let has_rules = idx
        .hosts
        .iter()
        .any(|h| h.get("service_excludes").is_some() || h.get("service_includes").is_some() || h.get("service_overrides").is_some());
    if !has_rules {
        return services;
    }
    let mut services = services;
    services.retain(|s| {
        let Some(&h) = s.get("host_name").and_then(|n| idx.by_name.get(n)) else {
            return true;
        };
        let host = &idx.hosts[h];
        let desc = s.get("service_description").unwrap_or_default();
        let excluded = host.list("service_excludes").iter().any(|p| pattern_match(p, desc));
        let includes = host.list("service_includes");
        let included = includes.is_empty() || includes.iter().any(|p| pattern_match(p, desc));
        !excluded && included
    });
    for host in idx.hosts {
        let Some(rules) = host.attr("service_overrides") else { continue };
        for rule in rules.value.split('\n').flat_map(|r| r.split("|||")) {
            let rule = rule.trim();
            if rule.is_empty() {
                continue;
            }
            let Some((target, rest)) = rule.split_once(',') else {
                diag.error(
                    rules.loc,
                    host.describe(),
                    format!("service_overrides: '{rule}' is not 'service,property value'"),
                );
                continue;
            };
            let (prop, value) = match rest.trim().split_once(char::is_whitespace) {
                Some((p, v)) => (p.trim(), v.trim()),
                None => (rest.trim(), ""),
            };
            if matches!(
                prop,
                "host_name" | "service_description" | "use" | "servicegroups" | "trigger" | "trigger_name"
            ) {
                diag.error(
                    rules.loc,
                    host.describe(),
                    format!("service_overrides: the property '{prop}' cannot be overridden"),
                );
                continue;
            }
            let hname = host.name().unwrap_or_default();
            let mut found = false;
            for s in services.iter_mut() {
                if s.get("host_name") == Some(hname) && (target.trim() == "*" || s.get("service_description") == Some(target.trim())) {
                    s.set(prop, value, rules.loc);
                    found = true;
                }
            }
            if !found {
                diag.error(
                    rules.loc,
                    host.describe(),
                    format!("service_overrides: the host has no service '{}'", target.trim()),
                );
            }
        }
    }
    services
}

/// A `*`-glob or a plain name.
fn pattern_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((pre, post)) => text.len() >= pre.len() + post.len() && text.starts_with(pre) && text.ends_with(post),
    }
}

/// Host dependencies and host escalations name hosts by `host_name` and `hostgroup_name`;
/// service ones also by `service_description`. Each object is expanded to one per resolved
/// target, as Nagios counts them. `kind` is the object type, `targets` resolves a host set and an
/// optional description list into (host, service) names.
pub fn expand_links(
    objs: Vec<Object>,
    kind: Kind,
    idx: &HostIndex,
    services: &FastSet<(String, String)>,
    diag: &mut Diagnostics,
) -> Vec<Object> {
    let mut out = Vec::with_capacity(objs.len());
    for o in objs {
        let masters = hosts_of(&o, "host_name", "hostgroup_name", idx, diag);
        match kind {
            Kind::HostDependency => {
                let dependents = hosts_of(&o, "dependent_host_name", "dependent_hostgroup_name", idx, diag);
                if dependents.is_empty() && masters.is_empty() {
                    diag.error(
                        o.loc,
                        o.describe(),
                        "a host dependency needs host_name and dependent_host_name (or their hostgroups)",
                    );
                }
                for m in masters.iter() {
                    for d in dependents.iter() {
                        let mut c = o.clone();
                        c.remove("hostgroup_name");
                        c.remove("dependent_hostgroup_name");
                        c.set("host_name", idx.hosts[m].name().unwrap_or_default(), o.loc);
                        c.set("dependent_host_name", idx.hosts[d].name().unwrap_or_default(), o.loc);
                        out.push(c);
                    }
                }
            }
            Kind::ServiceDependency => {
                let descs = o.list("service_description").into_iter().map(str::to_string).collect::<Vec<_>>();
                let dep_descs = o
                    .list("dependent_service_description")
                    .into_iter()
                    .map(str::to_string)
                    .collect::<Vec<_>>();
                let mut dependents = hosts_of(&o, "dependent_host_name", "dependent_hostgroup_name", idx, diag);
                let same_host = dependents.is_empty();
                if descs.is_empty() || dep_descs.is_empty() {
                    diag.error(
                        o.loc,
                        o.describe(),
                        "a service dependency needs service_description and dependent_service_description",
                    );
                    continue;
                }
                for m in masters.iter() {
                    if same_host {
                        dependents = HostSet::empty(idx.len());
                        dependents.insert(m);
                    }
                    let mh = idx.hosts[m].name().unwrap_or_default();
                    for md in &descs {
                        check_service(&o, mh, md, services, diag);
                        for d in dependents.iter() {
                            let dh = idx.hosts[d].name().unwrap_or_default();
                            for dd in &dep_descs {
                                check_service(&o, dh, dd, services, diag);
                                let mut c = o.clone();
                                c.remove("hostgroup_name");
                                c.remove("dependent_hostgroup_name");
                                c.set("host_name", mh, o.loc);
                                c.set("service_description", md.as_str(), o.loc);
                                c.set("dependent_host_name", dh, o.loc);
                                c.set("dependent_service_description", dd.as_str(), o.loc);
                                out.push(c);
                            }
                        }
                    }
                }
            }
            Kind::HostEscalation => {
                for m in masters.iter() {
                    let mut c = o.clone();
                    c.remove("hostgroup_name");
                    c.set("host_name", idx.hosts[m].name().unwrap_or_default(), o.loc);
                    out.push(c);
                }
            }
            Kind::ServiceEscalation => {
                let descs = o.list("service_description").into_iter().map(str::to_string).collect::<Vec<_>>();
                for m in masters.iter() {
                    let mh = idx.hosts[m].name().unwrap_or_default();
                    for d in &descs {
                        check_service(&o, mh, d, services, diag);
                        let mut c = o.clone();
                        c.remove("hostgroup_name");
                        c.set("host_name", mh, o.loc);
                        c.set("service_description", d.as_str(), o.loc);
                        out.push(c);
                    }
                }
            }
            _ => out.push(o),
        }
    }
    out
}

fn check_service(o: &Object, host: &str, desc: &str, services: &FastSet<(String, String)>, diag: &mut Diagnostics) {
    if !services.contains(&(host.to_string(), desc.to_string())) {
        diag.error(o.loc, o.describe(), format!("the service '{host}/{desc}' is unknown"));
    }
}

fn hosts_of(o: &Object, host_key: &str, group_key: &str, idx: &HostIndex, diag: &mut Diagnostics) -> HostSet {
    let n = idx.len();
    let mut unknown = Vec::new();
    let mut set = HostSet::empty(n);
    if let Some(g) = o.get(group_key) {
        match expr::hostgroup_expr(g, &idx.groups, n, &mut unknown) {
            Ok(s) => set.union_with(&s),
            Err(e) => diag.error(loc_of(o, group_key), o.describe(), format!("{group_key}: {e}")),
        }
        for u in unknown.drain(..) {
            diag.error(
                loc_of(o, group_key),
                o.describe(),
                format!("{group_key}: the hostgroup '{u}' is unknown"),
            );
        }
    }
    if let Some(h) = o.get(host_key) {
        set = expr::host_list(&split_list(h), &idx.by_name, n, set, &mut unknown);
        for u in unknown {
            diag.error(loc_of(o, host_key), o.describe(), format!("{host_key}: the host '{u}' is unknown"));
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreach_syntax() {
        let e = parse_foreach("C$(80%!90%)$$(95%)$,D$(80%)$, web[1-3]$(x)$, plain");
        let keys: Vec<_> = e.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["C", "D", "web1", "web2", "web3", "plain"]);
        assert_eq!(e[0].values, ["80%!90%", "95%"]);
        assert!(e[5].values.is_empty());
        assert_eq!(expand_range("disk[01-03]"), ["disk01", "disk02", "disk03"]);
        assert_eq!(sanitize_key("a/b (c)"), "a/b _c_");
        assert_eq!(
            substitute("check!$KEY$!$VALUE1$!$VALUE2$", "C", &["1".into(), "2".into()]),
            "check!C!1!2"
        );
    }

    #[test]
    fn patterns() {
        assert!(pattern_match("Disk*", "Disk /"));
        assert!(pattern_match("*", "x"));
        assert!(!pattern_match("Disk", "Disk /"));
    }
}
