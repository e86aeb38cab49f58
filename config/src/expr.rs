//! Host selections: `host_name` lists with `*` and `!` and `hostgroup_name` expressions.
//!
//! (semantics reference, section 6.7.) A `host_name` list is processed in order: `*` adds every
//! host, `!h` removes h from what is already selected, anything else adds a host. A
//! `hostgroup_name` is a plain comma list of groups, or, when it holds any of `( ) & | ! *`, a
//! boolean expression: `,` and `|` union, `&` and `+` intersection, `!g` complement within all
//! hosts, parentheses, `*` every host. Hosts are indices into the caller's host list, and results
//! keep the caller's host order so that expansion is deterministic.

use crate::fasthash::FastMap;

/// A set of hosts as a bitmap over host indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSet {
    bits: Vec<u64>,
}

impl HostSet {
    pub fn empty(n: usize) -> Self {
        Self {
            bits: vec![0; n.div_ceil(64)],
        }
    }

    pub fn all(n: usize) -> Self {
        let mut s = Self::empty(n);
        for i in 0..n {
            s.insert(i);
        }
        s
    }

    pub fn insert(&mut self, i: usize) {
        self.bits[i / 64] |= 1 << (i % 64);
    }

    pub fn remove(&mut self, i: usize) {
        self.bits[i / 64] &= !(1 << (i % 64));
    }

    pub fn contains(&self, i: usize) -> bool {
        self.bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn union_with(&mut self, o: &HostSet) {
        for (a, b) in self.bits.iter_mut().zip(&o.bits) {
            *a |= b;
        }
    }

    pub fn intersect_with(&mut self, o: &HostSet) {
        for (a, b) in self.bits.iter_mut().zip(&o.bits) {
            *a &= b;
        }
    }

    pub fn subtract(&mut self, o: &HostSet) {
        for (a, b) in self.bits.iter_mut().zip(&o.bits) {
            *a &= !b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }

    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Evaluates a `host_name` list. Unknown names are returned in `unknown`.
pub fn host_list(list: &[&str], hosts: &FastMap<&str, usize>, n: usize, base: HostSet, unknown: &mut Vec<String>) -> HostSet {
    let mut set = base;
    for item in list {
        if *item == "*" {
            set.union_with(&HostSet::all(n));
        } else if let Some(name) = item.strip_prefix('!') {
            match hosts.get(name.trim()) {
                Some(&i) => set.remove(i),
                None => unknown.push(name.trim().to_string()),
            }
        } else {
            match hosts.get(item) {
                Some(&i) => set.insert(i),
                None => unknown.push(item.to_string()),
            }
        }
    }
    set
}

/// Evaluates a `hostgroup_name` value against the groups' member sets.
pub fn hostgroup_expr(text: &str, groups: &FastMap<&str, HostSet>, n: usize, unknown: &mut Vec<String>) -> Result<HostSet, String> {
    if !text.contains(['(', ')', '&', '|', '!', '*']) {
        let mut set = HostSet::empty(n);
        for g in crate::object::split_list(text) {
            match groups.get(g) {
                Some(s) => set.union_with(s),
                None => unknown.push(g.to_string()),
            }
        }
        return Ok(set);
    }
    let tokens = tokenize(text);
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        groups,
        n,
        unknown,
    };
    let set = p.union()?;
    if p.pos != tokens.len() {
        return Err(format!("unexpected '{}' in hostgroup expression '{text}'", tokens[p.pos].text()));
    }
    Ok(set)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Or,
    And,
    Not,
    Open,
    Close,
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Name(n) => n.clone(),
            Tok::Or => "|".into(),
            Tok::And => "&".into(),
            Tok::Not => "!".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
        }
    }
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut name = String::new();
    let flush = |name: &mut String, out: &mut Vec<Tok>| {
        let t = name.trim();
        if !t.is_empty() {
            out.push(Tok::Name(t.to_string()));
        }
        name.clear();
    };
    for c in text.chars() {
        let tok = match c {
            ',' | '|' => Some(Tok::Or),
            '&' | '+' => Some(Tok::And),
            '!' => Some(Tok::Not),
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            _ => None,
        };
        match tok {
            Some(t) => {
                flush(&mut name, &mut out);
                out.push(t);
            }
            None => name.push(c),
        }
    }
    flush(&mut name, &mut out);
    out
}

struct Parser<'a> {
    tokens: &'a [Tok],
    pos: usize,
    groups: &'a FastMap<&'a str, HostSet>,
    n: usize,
    unknown: &'a mut Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn union(&mut self) -> Result<HostSet, String> {
        let mut set = self.intersection()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let rhs = self.intersection()?;
            set.union_with(&rhs);
        }
        Ok(set)
    }

    fn intersection(&mut self) -> Result<HostSet, String> {
        let mut set = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let rhs = self.unary()?;
            set.intersect_with(&rhs);
        }
        Ok(set)
    }

    fn unary(&mut self) -> Result<HostSet, String> {
        match self.peek().cloned() {
            Some(Tok::Not) => {
                self.pos += 1;
                let inner = self.unary()?;
                let mut all = HostSet::all(self.n);
                all.subtract(&inner);
                Ok(all)
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let inner = self.union()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("missing ')' in hostgroup expression".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Tok::Name(n)) => {
                self.pos += 1;
                if n == "*" {
                    return Ok(HostSet::all(self.n));
                }
                Ok(match self.groups.get(n.as_str()) {
                    Some(s) => s.clone(),
                    None => {
                        self.unknown.push(n);
                        HostSet::empty(self.n)
                    }
                })
            }
            Some(t) => Err(format!("unexpected '{}' in hostgroup expression", t.text())),
            None => Err("hostgroup expression ends too early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (FastMap<&'static str, usize>, FastMap<&'static str, HostSet>) {
        let hosts: FastMap<_, _> = [("a", 0), ("b", 1), ("c", 2), ("d", 3)].into_iter().collect();
        let mut web = HostSet::empty(4);
        web.insert(0);
        web.insert(1);
        let mut linux = HostSet::empty(4);
        linux.insert(1);
        linux.insert(2);
        (hosts, [("web", web), ("linux", linux)].into_iter().collect())
    }

    fn v(s: &HostSet) -> Vec<usize> {
        s.iter().collect()
    }

    #[test]
    fn host_lists_in_order() {
        let (hosts, _) = setup();
        let mut unk = vec![];
        assert_eq!(v(&host_list(&["*", "!b"], &hosts, 4, HostSet::empty(4), &mut unk)), [0, 2, 3]);
        assert_eq!(
            v(&host_list(&["!b", "*"], &hosts, 4, HostSet::empty(4), &mut unk)),
            [0, 1, 2, 3],
            "!b before * excludes nothing"
        );
        host_list(&["zz"], &hosts, 4, HostSet::empty(4), &mut unk);
        assert_eq!(unk, ["zz"]);
    }

    #[test]
    fn group_expressions() {
        let (_, groups) = setup();
        let mut unk = vec![];
        assert_eq!(v(&hostgroup_expr("web,linux", &groups, 4, &mut unk).unwrap()), [0, 1, 2]);
        assert_eq!(v(&hostgroup_expr("web&linux", &groups, 4, &mut unk).unwrap()), [1]);
        assert_eq!(v(&hostgroup_expr("web|linux&!web", &groups, 4, &mut unk).unwrap()), [0, 1, 2]);
        assert_eq!(v(&hostgroup_expr("(web|linux)&!web", &groups, 4, &mut unk).unwrap()), [2]);
        assert_eq!(v(&hostgroup_expr("*&!linux", &groups, 4, &mut unk).unwrap()), [0, 3]);
        assert_eq!(v(&hostgroup_expr("!web", &groups, 4, &mut unk).unwrap()), [2, 3]);
        assert!(unk.is_empty());
        assert!(hostgroup_expr("(web", &groups, 4, &mut unk).is_err());
        assert!(hostgroup_expr("web&", &groups, 4, &mut unk).is_err());
        hostgroup_expr("nope|web", &groups, 4, &mut unk).unwrap();
        assert_eq!(unk, ["nope"]);
    }
}
