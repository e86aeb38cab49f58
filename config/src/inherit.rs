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
use crate::fasthash::FastMap;
use crate::object::{Attr, NULL, Object, Text};
use std::sync::Arc;

pub const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Todo,
    InProgress,
    Done,
}

/// Resolves inheritance for every object of one type. Returns every object, templates included
/// (callers tell them apart by `register`), in definition order: own attributes in `attrs` (with
/// `+` additions completed), inherited ones in the shared `base`. Services need the resolved
/// templates: a service template on host templates is instantiated per host.
pub fn resolve(mut objects: Vec<Object>, diag: &mut Diagnostics) -> Vec<Object> {
    let mut by_name: FastMap<Text, usize> = FastMap::default();
    for (i, o) in objects.iter().enumerate() {
        if let Some(n) = &o.template_name
            && let Some(prev) = by_name.insert(n.clone(), i)
        {
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

    let mut resolver = Resolver {
        objects: &objects,
        by_name: &by_name,
        state: vec![State::Todo; objects.len()],
        full: vec![None; objects.len()],
        bases: FastMap::default(),
        by_uses: FastMap::default(),
        diag,
    };
    let mut bases = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        if o.uses.is_empty() {
            bases.push(None);
            continue;
        }
        let mut chain = vec![i];
        resolver.state[i] = State::InProgress;
        bases.push(resolver.base(i, &mut chain));
        resolver.state[i] = State::Done;
    }
    drop(resolver);

    for (o, base) in objects.iter_mut().zip(bases) {
        if let Some((merged, base)) = base {
            // A `+` value of the object's own adds to what the parents give.
            for a in o.attrs.iter_mut() {
                if let Some(addition) = a.value.strip_prefix('+')
                    && let Some(p) = merged.iter().find(|p| p.key == a.key)
                {
                    a.value = add(&p.value, addition);
                }
            }
            o.base = base;
        }
        for a in o.attrs.iter_mut() {
            if let Some(rest) = a.value.strip_prefix('+') {
                a.value = rest.into();
            }
        }
    }
    objects
}

/// `+` completion: the inherited value, then the addition.
fn add(inherited: &str, addition: &str) -> Text {
    let inherited = inherited.strip_prefix('+').unwrap_or(inherited);
    if inherited.is_empty() || inherited == NULL {
        format!("+{addition}").into()
    } else if addition.is_empty() {
        inherited.into()
    } else {
        format!("{inherited},{addition}").into()
    }
}

/// Parents' merged attributes (markers kept) and the object's shared base.
type Base = (Arc<Vec<Attr>>, Option<Arc<Vec<Attr>>>);

struct Resolver<'a, 'd> {
    objects: &'a [Object],
    by_name: &'a FastMap<Text, usize>,
    state: Vec<State>,
    /// Every attribute of an object used as a template, after its own inheritance, with `+`
    /// markers and `null` kept so that its children complete or hide them. Computed once.
    full: Vec<Option<Arc<Vec<Attr>>>>,
    /// The base of each distinct list of parent templates: most objects share a handful.
    bases: FastMap<Vec<Text>, Base>,
    /// The same by an object's `use` list as written, with the unknown names in it (warned
    /// about for every object that uses the list).
    by_uses: FastMap<Vec<Text>, (Option<Base>, Vec<Text>)>,
    diag: &'d mut Diagnostics,
}

impl Resolver<'_, '_> {
    /// The base of object `i`: its parents merged, first listed first.
    fn base(&mut self, i: usize, chain: &mut Vec<usize>) -> Option<Base> {
        let obj = &self.objects[i];
        // Objects (not templates in a chain) share a few `use` lists: resolve each list once,
        // unless it names the object itself.
        let top_level = chain.len() == 1 && obj.template_name.as_ref().is_none_or(|n| !obj.uses.contains(n));
        if top_level && let Some((base, unknown)) = self.by_uses.get(obj.uses.as_slice()) {
            for name in unknown {
                self.diag
                    .warn(obj.loc, obj.describe(), format!("uses an unknown template '{name}'"));
            }
            return base.clone();
        }
        let errors_before = self.diag.count(crate::diag::Severity::Error);
        let base = self.base_uncached(i, chain);
        if top_level && self.diag.count(crate::diag::Severity::Error) == errors_before {
            let unknown = obj.uses.iter().filter(|u| !self.by_name.contains_key(*u)).cloned().collect();
            self.by_uses.insert(obj.uses.clone(), (base.clone(), unknown));
        }
        base
    }

    fn base_uncached(&mut self, i: usize, chain: &mut Vec<usize>) -> Option<Base> {
        let obj = &self.objects[i];
        let mut parents = Vec::with_capacity(obj.uses.len());
        for name in &obj.uses {
            match self.by_name.get(name) {
                Some(&p) if p == i || self.state[p] == State::InProgress => {
                    let names: Vec<String> = chain
                        .iter()
                        .chain(std::iter::once(&p))
                        .map(|&c| self.objects[c].describe())
                        .collect();
                    self.diag
                        .error(obj.loc, obj.describe(), format!("template loop: {}", names.join(" -> ")));
                }
                Some(&p) => parents.push(p),
                None => self
                    .diag
                    .warn(obj.loc, obj.describe(), format!("uses an unknown template '{name}'")),
            }
        }
        if parents.is_empty() {
            return None;
        }
        if chain.len() > MAX_DEPTH {
            self.diag.error(
                obj.loc,
                obj.describe(),
                format!("template chain deeper than {MAX_DEPTH} levels; its templates are not inherited"),
            );
            return None;
        }
        let key: Vec<Text> = parents.iter().filter_map(|&p| self.objects[p].template_name.clone()).collect();
        // Only a chain free of in-progress members can be shared (the rest is a loop, reported).
        if let Some(b) = self.bases.get(&key) {
            return Some(b.clone());
        }
        let mut merged: Vec<Attr> = Vec::new();
        for p in parents {
            let full = self.full(p, chain);
            merge(&mut merged, &full);
        }
        let base: Vec<Attr> = merged
            .iter()
            .filter(|a| &*a.value != NULL)
            .map(|a| match a.value.strip_prefix('+') {
                Some(rest) => Attr {
                    key: a.key.clone(),
                    value: rest.into(),
                    loc: a.loc,
                },
                None => a.clone(),
            })
            .collect();
        let result = (Arc::new(merged), (!base.is_empty()).then(|| Arc::new(base)));
        self.bases.insert(key, result.clone());
        Some(result)
    }

    /// Every attribute of template `i` after inheritance, markers kept.
    fn full(&mut self, i: usize, chain: &mut Vec<usize>) -> Arc<Vec<Attr>> {
        if let Some(done) = &self.full[i] {
            return done.clone();
        }
        let own = self.objects[i].attrs.clone();
        if self.objects[i].uses.is_empty() {
            let own = Arc::new(own);
            self.full[i] = Some(own.clone());
            return own;
        }
        self.state[i] = State::InProgress;
        chain.push(i);
        let mut attrs = own;
        if let Some((merged, _)) = self.base(i, chain) {
            for a in attrs.iter_mut() {
                if let Some(addition) = a.value.strip_prefix('+')
                    && let Some(p) = merged.iter().find(|p| p.key == a.key)
                {
                    a.value = add(&p.value, addition);
                }
            }
            for p in merged.iter() {
                if !attrs.iter().any(|a| a.key == p.key) {
                    attrs.push(p.clone());
                }
            }
        }
        chain.pop();
        self.state[i] = State::Done;
        let attrs = Arc::new(attrs);
        self.full[i] = Some(attrs.clone());
        attrs
    }
}

/// Adds to `merged` the attributes of a later parent that earlier ones do not have.
fn merge(merged: &mut Vec<Attr>, parent: &[Attr]) {
    for pa in parent {
        if !merged.iter().any(|a| a.key == pa.key) {
            merged.push(pa.clone());
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
        // Each template of the loop is reported once, at its own definition.
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|p| p.message.contains("template loop")));
        assert_eq!(e.iter().map(|p| p.loc.unwrap().line).collect::<Vec<_>>(), [6, 1]);
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
