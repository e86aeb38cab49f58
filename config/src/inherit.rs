//! Template inheritance: `use`, several parents, `+` additions, `null`.
//!
//! Rules (semantics reference, section 6.3 and 6.4, and Nagios's object inheritance):
//! - an object's own value always wins; otherwise the first parent listed in `use` that has the
//!   key (after its own inheritance: depth first) gives it;
//! - a value starting with `+` is appended to the inherited value; a template keeps the marker
//!   while no ancestor has given a base value, so additions accumulate down a chain;
//! - a value that is exactly `null` is removed once inheritance is done, so the default applies;
//! - an unknown template is a warning (Shinken 2.4), a loop or a chain deeper than
//!   [`MAX_DEPTH`] an error.
//!
//! Any object with a `name` can be used as a template, as in Nagios (Shinken 2.4 only looks
//! among `register 0` objects; the difference can only make more trees load).

use crate::diag::Diagnostics;
use crate::object::{Attr, Object};
use std::collections::HashMap;

pub const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Todo,
    InProgress,
    Done,
}

/// Resolves inheritance for every object of one type. Returns every object, templates included
/// (callers tell them apart by `register`), with resolved attributes, in definition order.
/// Services need the resolved templates: a service template on host templates is instantiated
/// per host.
pub fn resolve(objects: Vec<Object>, diag: &mut Diagnostics) -> Vec<Object> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        if let Some(n) = &o.template_name {
            if let Some(prev) = by_name.insert(n, i) {
                let p = &objects[prev];
                diag.warn(
                    o.loc,
                    o.describe(),
                    format!(
                        "template '{n}' is defined twice (also at line {} of file #{}); using this one",
                        p.loc.line, p.loc.file
                    ),
                );
            }
        }
    }
    let by_name: HashMap<String, usize> = by_name.into_iter().map(|(k, v)| (k.to_string(), v)).collect();

    let mut resolver = Resolver {
        objects: &objects,
        by_name: &by_name,
        state: vec![State::Todo; objects.len()],
        memo: vec![None; objects.len()],
        diag,
    };
    let mut resolved_attrs: Vec<Option<Vec<Attr>>> = Vec::with_capacity(objects.len());
    for i in 0..objects.len() {
        let mut chain = Vec::new();
        resolved_attrs.push(Some(resolver.resolve(i, &mut chain)));
    }
    drop(resolver);

    objects
        .into_iter()
        .zip(resolved_attrs)
        .filter_map(|(mut o, attrs)| {
            let attrs = attrs?;
            o.attrs = attrs
                .into_iter()
                .filter(|a| &*a.value != "null")
                .map(|mut a| {
                    if let Some(rest) = a.value.strip_prefix('+') {
                        a.value = rest.into();
                    }
                    a
                })
                .collect();
            Some(o)
        })
        .collect()
}

struct Resolver<'a, 'd> {
    objects: &'a [Object],
    by_name: &'a HashMap<String, usize>,
    state: Vec<State>,
    /// Resolved attributes of templates, computed once however many objects use them.
    memo: Vec<Option<Vec<Attr>>>,
    diag: &'d mut Diagnostics,
}

impl Resolver<'_, '_> {
    /// The attributes of object `i` after inheritance, `+` markers kept. `chain` holds the
    /// objects being resolved above this one, for loop messages.
    fn resolve(&mut self, i: usize, chain: &mut Vec<usize>) -> Vec<Attr> {
        if let Some(done) = &self.memo[i] {
            return done.clone();
        }
        let obj = &self.objects[i];
        let mut attrs = obj.attrs.clone();
        if obj.uses.is_empty() {
            return attrs;
        }
        self.state[i] = State::InProgress;
        chain.push(i);
        for parent in &obj.uses {
            let Some(&p) = self.by_name.get(&**parent) else {
                self.diag
                    .warn(obj.loc, obj.describe(), format!("uses an unknown template '{parent}'"));
                continue;
            };
            if self.state[p] == State::InProgress {
                let names: Vec<String> = chain
                    .iter()
                    .chain(std::iter::once(&p))
                    .map(|&c| self.objects[c].describe())
                    .collect();
                self.diag
                    .error(obj.loc, obj.describe(), format!("template loop: {}", names.join(" -> ")));
                continue;
            }
            if chain.len() >= MAX_DEPTH {
                self.diag.error(
                    obj.loc,
                    obj.describe(),
                    format!("template chain deeper than {MAX_DEPTH} levels; '{parent}' not inherited"),
                );
                continue;
            }
            let inherited = self.resolve(p, chain);
            merge(&mut attrs, &inherited);
        }
        chain.pop();
        self.state[i] = State::Done;
        if !obj.register || self.is_used(i) {
            self.memo[i] = Some(attrs.clone());
        }
        attrs
    }

    fn is_used(&self, i: usize) -> bool {
        self.objects[i]
            .template_name
            .as_ref()
            .is_some_and(|n| self.by_name.get(&**n) == Some(&i))
    }
}

/// Adds to `own` what `parent` has that `own` does not, and completes `own`'s `+` values.
fn merge(own: &mut Vec<Attr>, parent: &[Attr]) {
    for pa in parent {
        match own.iter_mut().find(|a| a.key == pa.key) {
            Some(a) => {
                if let Some(addition) = a.value.strip_prefix('+') {
                    // The parent's value is the base; it keeps its own marker if it has no base yet.
                    a.value = if pa.value.is_empty() || &*pa.value == "+" {
                        a.value.clone()
                    } else if addition.is_empty() {
                        pa.value.clone()
                    } else {
                        format!("{},{}", pa.value, addition).into()
                    };
                }
            }
            None => own.push(pa.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;
    use crate::reader;
    use crate::schema::Kind;

    fn load(text: &str) -> (Vec<Object>, Diagnostics) {
        let mut d = Diagnostics::new();
        let p = reader::parse(text, 0, &mut d);
        let objs = p
            .objects
            .into_iter()
            .map(|r| Object::from_raw(Kind::from_keyword(&r.kind).unwrap(), r, &mut d))
            .collect();
        let out = resolve(objs, &mut d).into_iter().filter(|o| o.register).collect();
        (out, d)
    }

    #[test]
    fn own_wins_then_first_parent_depth_first() {
        let (o, d) = load(
            "define host {\nname a\nregister 0\ncheck_interval 1\nnotes from-a\n}\n\
             define host {\nname aa\nregister 0\nuse a\nalias from-aa\n}\n\
             define host {\nname b\nregister 0\ncheck_interval 2\nalias from-b\nnotes from-b\nicon_image b\n}\n\
             define host {\nhost_name h\nuse aa,b\nnotes own\n}\n",
        );
        assert!(d.problems().is_empty(), "{:?}", d.problems());
        assert_eq!(o.len(), 1);
        let h = &o[0];
        assert_eq!(h.get("notes"), Some("own"));
        assert_eq!(h.get("alias"), Some("from-aa"));
        assert_eq!(h.get("check_interval"), Some("1"), "a (through aa) comes before b");
        assert_eq!(h.get("icon_image"), Some("b"));
    }

    #[test]
    fn additive_values_accumulate() {
        let (o, _) = load(
            "define host {\nname base\nregister 0\ncontact_groups g1\n}\n\
             define host {\nname mid\nregister 0\nuse base\ncontact_groups +g2\n}\n\
             define host {\nhost_name h\nuse mid\ncontact_groups +g3\n}\n\
             define host {\nname nobase\nregister 0\nhostgroups +x\n}\n\
             define host {\nhost_name k\nuse nobase\nhostgroups +y\n}\n",
        );
        assert_eq!(o[0].list("contact_groups"), ["g1", "g2", "g3"]);
        assert_eq!(o[1].list("hostgroups"), ["x", "y"]);
    }

    #[test]
    fn null_removes_an_inherited_value() {
        let (o, _) = load("define host {\nname t\nregister 0\nnotes n\n}\ndefine host {\nhost_name h\nuse t\nnotes null\n}\n");
        assert_eq!(o[0].get("notes"), None);
    }

    #[test]
    fn unknown_template_warns_loop_errors() {
        let (o, d) = load("define host {\nhost_name h\nuse nope\n}\n");
        assert_eq!(o.len(), 1);
        assert_eq!(d.problems()[0].severity, Severity::Warning);
        assert!(d.problems()[0].message.contains("unknown template 'nope'"));

        let (_, d) = load(
            "define host {\nname a\nuse b\nregister 0\n}\ndefine host {\nname b\nuse a\nregister 0\n}\ndefine host {\nhost_name h\nuse a\n}\n",
        );
        let e: Vec<_> = d.problems().iter().filter(|p| p.severity == Severity::Error).collect();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].message.contains("template loop"));
    }

    #[test]
    fn deep_chains_stop_at_the_limit() {
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("define host {{\nname t{i}\nregister 0\nuse t{}\n}}\n", i + 1));
        }
        text.push_str("define host {\nname t100\nregister 0\nnotes deep\n}\ndefine host {\nhost_name h\nuse t0\n}\n");
        let (o, d) = load(&text);
        assert_eq!(o.len(), 1);
        assert!(d.problems().iter().any(|p| p.message.contains("deeper than")));
    }

    #[test]
    fn custom_variables_inherit() {
        let (o, _) = load("define host {\nname t\nregister 0\n_port 80\n_os linux\n}\ndefine host {\nhost_name h\nuse t\n_PORT 8080\n}\n");
        assert_eq!(o[0].get("_PORT"), Some("8080"));
        assert_eq!(o[0].get("_OS"), Some("linux"));
    }
}
