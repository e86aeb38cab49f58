//! Cutting a configuration into parts, one per active scheduler of each realm.
//!
//! (semantics reference, section 2.3.) Hosts that depend on each other must be scheduled by the
//! same scheduler: a host and its `parents`, the two ends of a host dependency, the hosts of a
//! service dependency. Such hosts form a *pack* (connected components, found with a union-find).
//! Packs are then spread over the realm's schedulers in proportion to their `weight`: largest
//! pack first, each to the scheduler whose load per unit of weight is lowest. Shinken uses a
//! round robin over a weight-expanded list; the greedy rule gives the same shares on uniform
//! packs and better balance on uneven ones, and is as deterministic.
//!
//! Pure: the input is names and links, the output is which hosts go to which part.

use std::collections::BTreeMap;
use std::collections::HashMap;

/// A host as the cutting needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRef {
    pub name: String,
    /// Empty: the default realm.
    pub realm: String,
}

/// A scheduler that will receive a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerRef {
    pub name: String,
    pub realm: String,
    /// Share of hosts; 0 is treated as 1.
    pub weight: u32,
}

/// One part: the hosts (by index into the input) one scheduler will own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Stable within one cutting: realm order, then scheduler order.
    pub id: usize,
    pub realm: String,
    /// The scheduler the part is first meant for (a master of the realm).
    pub scheduler: String,
    pub hosts: Vec<usize>,
}

/// Why a configuration cannot be cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutError {
    /// A realm has hosts but no scheduler to give them to.
    NoScheduler { realm: String, hosts: usize },
}

impl std::fmt::Display for CutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CutError::NoScheduler { realm, hosts } => write!(f, "the realm {realm} has {hosts} hosts but no scheduler"),
        }
    }
}

/// Union-find over host indices.
struct Packs {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl Packs {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

/// Cuts `hosts` into parts. `links` are pairs of host names that must stay together (parents,
/// host and service dependencies); a link naming an unknown host is ignored (validation reports
/// it). `schedulers` are the non-spare schedulers, in the order parts should be numbered.
/// `default_realm` is the realm of hosts that name none.
pub fn cut(hosts: &[HostRef], links: &[(String, String)], schedulers: &[SchedulerRef], default_realm: &str) -> Result<Vec<Part>, CutError> {
    let index: HashMap<&str, usize> = hosts.iter().enumerate().map(|(i, h)| (h.name.as_str(), i)).collect();
    let mut packs = Packs::new(hosts.len());
    for (a, b) in links {
        if let (Some(&a), Some(&b)) = (index.get(a.as_str()), index.get(b.as_str())) {
            packs.union(a, b);
        }
    }
    let realm_of = |h: &HostRef| {
        if h.realm.is_empty() {
            default_realm.to_string()
        } else {
            h.realm.clone()
        }
    };

    // Packs per realm. A pack spanning realms (a link across realms) goes to the realm of its
    // first host: linked hosts must share a scheduler.
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..hosts.len() {
        let root = packs.find(i);
        members.entry(root).or_default().push(i);
    }
    let mut by_realm: BTreeMap<String, Vec<Vec<usize>>> = BTreeMap::new();
    for pack in members.into_values() {
        by_realm.entry(realm_of(&hosts[pack[0]])).or_default().push(pack);
    }

    let mut parts: Vec<Part> = Vec::new();
    let mut realm_order: Vec<String> = Vec::new();
    for s in schedulers {
        if !realm_order.contains(&s.realm) {
            realm_order.push(s.realm.clone());
        }
    }
    for realm in by_realm.keys() {
        if !realm_order.contains(realm) {
            realm_order.push(realm.clone());
        }
    }

    for realm in realm_order {
        let scheds: Vec<&SchedulerRef> = schedulers.iter().filter(|s| s.realm == realm).collect();
        let mut realm_packs = by_realm.remove(&realm).unwrap_or_default();
        if scheds.is_empty() {
            let n: usize = realm_packs.iter().map(Vec::len).sum();
            if n > 0 {
                return Err(CutError::NoScheduler { realm, hosts: n });
            }
            continue;
        }
        let first = parts.len();
        for s in &scheds {
            parts.push(Part {
                id: parts.len(),
                realm: realm.clone(),
                scheduler: s.name.clone(),
                hosts: Vec::new(),
            });
        }
        // Largest packs first; ties by first host, for determinism.
        realm_packs.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
        for pack in realm_packs {
            let target = (0..scheds.len())
                .min_by(|&x, &y| {
                    let load = |k: usize| parts[first + k].hosts.len() as f64 / scheds[k].weight.max(1) as f64;
                    load(x).total_cmp(&load(y)).then(x.cmp(&y))
                })
                .unwrap_or(0);
            parts[first + target].hosts.extend(pack);
        }
        for p in &mut parts[first..] {
            p.hosts.sort_unstable();
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[(&str, &str)]) -> Vec<HostRef> {
        names
            .iter()
            .map(|(n, r)| HostRef {
                name: n.to_string(),
                realm: r.to_string(),
            })
            .collect()
    }

    fn sched(name: &str, realm: &str, weight: u32) -> SchedulerRef {
        SchedulerRef {
            name: name.into(),
            realm: realm.into(),
            weight,
        }
    }

    fn names(hs: &[HostRef], p: &Part) -> Vec<String> {
        p.hosts.iter().map(|&i| hs[i].name.clone()).collect()
    }

    #[test]
    fn one_scheduler_gets_everything() {
        let hs = hosts(&[("a", ""), ("b", ""), ("c", "")]);
        let parts = cut(&hs, &[], &[sched("s1", "All", 1)], "All").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(names(&hs, &parts[0]), ["a", "b", "c"]);
    }

    #[test]
    fn linked_hosts_stay_together() {
        let hs = hosts(&[("router", ""), ("web1", ""), ("web2", ""), ("db", ""), ("lonely", "")]);
        let links = vec![
            ("web1".to_string(), "router".to_string()),
            ("web2".to_string(), "router".to_string()),
        ];
        let parts = cut(&hs, &links, &[sched("s1", "All", 1), sched("s2", "All", 1)], "All").unwrap();
        let with_router = parts.iter().find(|p| p.hosts.contains(&0)).unwrap();
        assert_eq!(names(&hs, with_router), ["router", "web1", "web2"]);
        let total: usize = parts.iter().map(|p| p.hosts.len()).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn weights_share_hosts() {
        let hs: Vec<HostRef> = (0..300)
            .map(|i| HostRef {
                name: format!("h{i}"),
                realm: String::new(),
            })
            .collect();
        let parts = cut(&hs, &[], &[sched("big", "All", 2), sched("small", "All", 1)], "All").unwrap();
        assert_eq!(parts[0].hosts.len(), 200);
        assert_eq!(parts[1].hosts.len(), 100);
    }

    #[test]
    fn realms_are_cut_apart() {
        let hs = hosts(&[("a", "Europe"), ("b", "Asia"), ("c", "")]);
        let scheds = [sched("eu", "Europe", 1), sched("as", "Asia", 1), sched("all", "All", 1)];
        let parts = cut(&hs, &[], &scheds, "All").unwrap();
        let by: HashMap<&str, Vec<String>> = parts.iter().map(|p| (p.scheduler.as_str(), names(&hs, p))).collect();
        assert_eq!(by["eu"], ["a"]);
        assert_eq!(by["as"], ["b"]);
        assert_eq!(by["all"], ["c"]);
        assert_eq!(parts.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn a_realm_without_scheduler_is_an_error() {
        let hs = hosts(&[("a", "Nowhere")]);
        assert_eq!(
            cut(&hs, &[], &[sched("s", "All", 1)], "All"),
            Err(CutError::NoScheduler {
                realm: "Nowhere".into(),
                hosts: 1
            })
        );
    }

    #[test]
    fn unknown_link_ends_are_ignored_and_cutting_is_deterministic() {
        let hs: Vec<HostRef> = (0..50)
            .map(|i| HostRef {
                name: format!("h{i}"),
                realm: String::new(),
            })
            .collect();
        let links = vec![("h1".to_string(), "ghost".to_string()), ("h3".to_string(), "h4".to_string())];
        let s = [sched("a", "All", 1), sched("b", "All", 1), sched("c", "All", 1)];
        let one = cut(&hs, &links, &s, "All").unwrap();
        let two = cut(&hs, &links, &s, "All").unwrap();
        assert_eq!(one, two);
        let loads: Vec<usize> = one.iter().map(|p| p.hosts.len()).collect();
        assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1, "{loads:?}");
    }
}
