//! Group membership from both sides, and nested groups.
//!
//! A host joins a hostgroup through the group's `members` or its own `hostgroups`; a group
//! includes other groups through `hostgroup_members` (recursively, loops reported). The same for
//! contacts (`contactgroups` / `members` / `contactgroup_members`) and for services
//! (`servicegroups` / `members` as `host,service` pairs / `servicegroup_members`). After this
//! stage both sides are written out in full: a group's `members` lists every member, a member's
//! list names every group.

use crate::diag::Diagnostics;
use crate::fasthash::{FastMap, FastSet};
use crate::object::{Object, split_list};
use crate::source::Loc;

/// Resolves membership between `members` objects (hosts, contacts) and `groups`.
/// `member_key` is the member's own list (`hostgroups`), `nested_key` the group's group list
/// (`hostgroup_members`). Unknown names are errors, located where they are written.
pub fn resolve_simple(members: &mut [Object], groups: &mut [Object], member_key: &str, nested_key: &str, diag: &mut Diagnostics) {
    let member_index: FastMap<String, usize> = members
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.name().map(|n| (n.to_string(), i)))
        .collect();
    let group_index: FastMap<String, usize> = groups
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.name().map(|n| (n.to_string(), i)))
        .collect();

    // Direct members of each group, in first-seen order.
    let mut direct: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for (gi, g) in groups.iter().enumerate() {
        for m in g.list("members") {
            if m == "*" {
                direct[gi].extend(0..members.len());
                continue;
            }
            match member_index.get(m) {
                Some(&i) => direct[gi].push(i),
                None => diag.error(
                    loc_of(g, "members"),
                    g.describe(),
                    format!("members: '{m}' is not a defined {}", members_kind(g)),
                ),
            }
        }
    }
    for (mi, m) in members.iter().enumerate() {
        for gname in m.list(member_key) {
            match group_index.get(gname) {
                Some(&gi) => direct[gi].push(mi),
                None => diag.error(
                    loc_of(m, member_key),
                    m.describe(),
                    format!("{member_key}: group '{gname}' is not defined"),
                ),
            }
        }
    }

    // Nested groups: a group's full set includes its sub-groups' full sets.
    let full = nested_sets(groups, &group_index, nested_key, &direct, diag);

    let mut groups_of: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    for (gi, set) in full.iter().enumerate() {
        let set = set.as_slice();
        let mut seen = FastSet::default();
        let names: Vec<&str> = set.iter().filter(|&&m| seen.insert(m)).filter_map(|&m| members[m].name()).collect();
        for &m in set {
            if !groups_of[m].contains(&gi) {
                groups_of[m].push(gi);
            }
        }
        let loc = groups[gi].loc;
        let joined = names.join(",");
        groups[gi].set("members", joined, loc_or(&groups[gi], "members", loc));
    }
    for (mi, gs) in groups_of.into_iter().enumerate() {
        if gs.is_empty() && members[mi].get(member_key).is_none() {
            continue;
        }
        let names: Vec<&str> = gs.iter().filter_map(|&g| groups[g].name()).collect();
        let joined = names.join(",");
        let loc = loc_or(&members[mi], member_key, members[mi].loc);
        members[mi].set(member_key, joined, loc);
    }
}

/// Every group's members with its nested groups' members, computed without recursion (a
/// user's group chain may be thousands deep). A group that includes itself, directly or not,
/// is reported once and the loop is cut there.
fn nested_sets(
    groups: &[Object],
    index: &FastMap<String, usize>,
    nested_key: &str,
    direct: &[Vec<usize>],
    diag: &mut Diagnostics,
) -> Vec<Vec<usize>> {
    const TODO: u8 = 0;
    const ACTIVE: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![TODO; groups.len()];
    let mut full: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    // The sub-groups of each group, resolved once (unknown ones reported here).
    let subs: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| {
            g.list(nested_key)
                .into_iter()
                .filter_map(|sub| {
                    let found = index.get(sub).copied();
                    if found.is_none() {
                        diag.error(
                            loc_of(g, nested_key),
                            g.describe(),
                            format!("{nested_key}: group '{sub}' is not defined"),
                        );
                    }
                    found
                })
                .collect()
        })
        .collect();
    for root in 0..groups.len() {
        if state[root] != TODO {
            continue;
        }
        // (group, next sub-group to visit)
        let mut stack = vec![(root, 0usize)];
        state[root] = ACTIVE;
        while let Some(top) = stack.last_mut() {
            let (g, next) = *top;
            if let Some(&sub) = subs[g].get(next) {
                top.1 += 1;
                match state[sub] {
                    TODO => {
                        state[sub] = ACTIVE;
                        stack.push((sub, 0));
                    }
                    ACTIVE => {
                        let grp = &groups[g];
                        diag.error(
                            loc_of(grp, nested_key),
                            grp.describe(),
                            format!(
                                "{nested_key}: the group includes itself (through '{}')",
                                groups[sub].name().unwrap_or("?")
                            ),
                        );
                    }
                    _ => {}
                }
                continue;
            }
            // All sub-groups done: this group's set is its own members and theirs.
            let mut set = direct[g].clone();
            for &sub in &subs[g] {
                if state[sub] == DONE {
                    set.extend_from_slice(&full[sub]);
                }
            }
            let mut seen = FastSet::default();
            set.retain(|m| seen.insert(*m));
            full[g] = set;
            state[g] = DONE;
            stack.pop();
        }
    }
    full
}

/// Service groups: members are `host,service` pairs; services name groups in `servicegroups`.
pub fn resolve_servicegroups(services: &mut [Object], groups: &mut [Object], diag: &mut Diagnostics) {
    if groups.is_empty() && !services.iter().any(|s| s.get("servicegroups").is_some()) {
        return;
    }
    let svc_index: FastMap<(String, String), usize> = services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some(((s.get("host_name")?.to_string(), s.get("service_description")?.to_string()), i)))
        .collect();
    let group_index: FastMap<String, usize> = groups
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.name().map(|n| (n.to_string(), i)))
        .collect();
    let mut direct: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for (gi, g) in groups.iter().enumerate() {
        let items = g.list("members");
        if items.len() % 2 != 0 {
            diag.error(
                loc_of(g, "members"),
                g.describe(),
                "members: expected host,service pairs (an odd number of items was given)",
            );
        }
        for pair in items.chunks(2) {
            if let [h, s] = pair {
                match svc_index.get(&(h.to_string(), s.to_string())) {
                    Some(&i) => direct[gi].push(i),
                    None => diag.error(
                        loc_of(g, "members"),
                        g.describe(),
                        format!("members: service '{h}/{s}' is not defined"),
                    ),
                }
            }
        }
    }
    for (si, s) in services.iter().enumerate() {
        for gname in s.list("servicegroups") {
            match group_index.get(gname) {
                Some(&gi) => direct[gi].push(si),
                None => diag.error(
                    loc_of(s, "servicegroups"),
                    s.describe(),
                    format!("servicegroups: group '{gname}' is not defined"),
                ),
            }
        }
    }
    let full = nested_sets(groups, &group_index, "servicegroup_members", &direct, diag);
    let mut groups_of: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    for (gi, set) in full.iter().enumerate() {
        let set = set.as_slice();
        let mut parts = Vec::with_capacity(set.len() * 2);
        for &m in set {
            parts.push(services[m].get("host_name").unwrap_or_default().to_string());
            parts.push(services[m].get("service_description").unwrap_or_default().to_string());
            if !groups_of[m].contains(&gi) {
                groups_of[m].push(gi);
            }
        }
        let loc = loc_or(&groups[gi], "members", groups[gi].loc);
        groups[gi].set("members", parts.join(","), loc);
    }
    for (si, gs) in groups_of.into_iter().enumerate() {
        if gs.is_empty() {
            continue;
        }
        let names: Vec<&str> = gs.iter().filter_map(|&g| groups[g].name()).collect();
        let joined = names.join(",");
        let loc = loc_or(&services[si], "servicegroups", services[si].loc);
        services[si].set("servicegroups", joined, loc);
    }
}

fn members_kind(group: &Object) -> &'static str {
    match group.kind {
        crate::schema::Kind::HostGroup => "host",
        crate::schema::Kind::ContactGroup => "contact",
        _ => "member",
    }
}

/// Where a key of `o` was written, or the object's own line.
pub fn loc_of(o: &Object, key: &str) -> Loc {
    o.attr(key).map(|a| a.loc).unwrap_or(o.loc)
}

fn loc_or(o: &Object, key: &str, default: Loc) -> Loc {
    o.attr(key).map(|a| a.loc).unwrap_or(default)
}

/// Names in a list attribute that are not in `known`.
pub fn unknown_names<'a>(o: &'a Object, key: &str, known: &FastSet<&str>) -> Vec<&'a str> {
    o.get(key)
        .map(split_list)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !known.contains(n))
        .collect()
}
