//! Objects as the language sees them: a type, a location, and attributes as text.
//!
//! Values stay text (as written, after inheritance) because that is what every later stage and
//! the JSON output need, and typed reads are cheap (`schema::parse_int`...). Keys and values are
//! `Arc<str>` so that inheriting an attribute or cloning a service per host copies a pointer,
//! not a string: a 100k-service tree is mostly inherited attributes.

use crate::diag::Diagnostics;
use crate::reader::RawObject;
use crate::schema::{self, Kind};
use crate::source::Loc;
use std::sync::Arc;

pub type Text = Arc<str>;

/// One attribute: the key, its value as text (lists comma-joined), and where it was written
/// (for an inherited attribute, the template line it comes from). The reader produces the
/// same type, so normalising a block reuses its memory.
pub use crate::reader::Attr;

/// A `define` block after the reader, with its keys normalised.
///
/// After inheritance an object holds its own attributes in `attrs` and what it inherits in
/// `base`: the resolved attributes of its parents, shared by every object with the same `use`
/// list. Reads go through [`Object::get`] and [`Object::iter`], which see both, own first. A
/// value `null` (written, or left by [`Object::remove`]) hides the inherited one.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: Kind,
    pub loc: Loc,
    /// `register 0` makes a template, never an object in its own right.
    pub register: bool,
    /// The template name (`name`), by which others `use` it.
    pub template_name: Option<Text>,
    /// Parents in priority order (`use a,b`: a first).
    pub uses: Vec<Text>,
    /// Own attributes. Keys are unique, except the date ranges of a timeperiod, which may
    /// repeat a first word (`day 1 ...`, `day 15 ...`).
    pub attrs: Vec<Attr>,
    /// Inherited attributes (no `null`, no `+` markers), shared between objects.
    pub base: Option<Arc<Vec<Attr>>>,
}

/// The value that removes an attribute.
pub const NULL: &str = "null";

impl Object {
    /// A new object with no attributes.
    pub fn new(kind: Kind, loc: Loc) -> Self {
        Object {
            kind,
            loc,
            register: true,
            template_name: None,
            uses: Vec::new(),
            attrs: Vec::new(),
            base: None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.attr(key).map(|a| &*a.value)
    }

    /// The attribute in force for `key`: own, else inherited; `None` if absent or `null`.
    pub fn attr(&self, key: &str) -> Option<&Attr> {
        let found = match self.attrs.iter().find(|a| &*a.key == key) {
            Some(a) => a,
            None => self.base.as_ref()?.iter().find(|a| &*a.key == key)?,
        };
        (&*found.value != NULL).then_some(found)
    }

    /// Every attribute in force: own ones in order, then inherited ones not overridden.
    pub fn iter(&self) -> impl Iterator<Item = &Attr> {
        let own = self.attrs.iter().filter(|a| &*a.value != NULL);
        let inherited = self
            .base
            .iter()
            .flat_map(|b| b.iter())
            .filter(move |b| !self.attrs.iter().any(|a| a.key == b.key));
        own.chain(inherited)
    }

    /// A list attribute split on commas, trimmed, empty items dropped.
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.get(key).map(split_list).unwrap_or_default()
    }

    /// Sets an own attribute (overriding an inherited one).
    pub fn set(&mut self, key: &str, value: impl Into<Text>, loc: Loc) {
        let value = value.into();
        match self.attrs.iter_mut().find(|a| &*a.key == key) {
            Some(a) => {
                a.value = value;
                a.loc = loc;
            }
            None => self.attrs.push(Attr {
                key: key.into(),
                value,
                loc,
            }),
        }
    }

    /// Adds an own attribute already built (its key shared), when the key is not set.
    pub fn push(&mut self, attr: Attr) {
        if !self.attrs.iter().any(|a| a.key == attr.key) {
            self.attrs.push(attr);
        }
    }

    /// Removes an attribute, inherited or own.
    pub fn remove(&mut self, key: &str) {
        let inherited = self.base.as_ref().is_some_and(|b| b.iter().any(|a| &*a.key == key));
        match self.attrs.iter_mut().find(|a| &*a.key == key) {
            Some(a) if inherited => a.value = NULL.into(),
            Some(_) => self.attrs.retain(|a| &*a.key != key),
            None if inherited => self.attrs.push(Attr {
                key: key.into(),
                value: NULL.into(),
                loc: self.loc,
            }),
            None => {}
        }
    }

    /// Copies the inherited attributes into the object's own, so that they can be changed in
    /// place (used by the rare expansions that rewrite values, such as `duplicate_foreach`).
    pub fn materialize(&mut self) {
        if let Some(base) = self.base.take() {
            for b in base.iter() {
                if !self.attrs.iter().any(|a| a.key == b.key) {
                    self.attrs.push(b.clone());
                }
            }
        }
    }

    /// The object's name as its type defines it (`host_name` for a host...).
    pub fn name(&self) -> Option<&str> {
        self.kind.name_key().and_then(|k| self.get(k))
    }

    /// How messages name this object: `host 'web1'`, `service 'web1/HTTP'`, `host template 'generic'`.
    pub fn describe(&self) -> String {
        let kw = self.kind.keyword();
        if !self.register
            && let Some(n) = &self.template_name
        {
            return format!("{kw} template '{n}'");
        }
        let name = match self.kind {
            Kind::Service => match (
                self.get("host_name").or(self.get("hostgroup_name")),
                self.get("service_description"),
            ) {
                (Some(h), Some(s)) => Some(format!("{h}/{s}")),
                (None, Some(s)) => Some(s.to_string()),
                _ => None,
            },
            _ => self.name().map(str::to_string),
        };
        match (name, &self.template_name) {
            (Some(n), _) => format!("{kw} '{n}'"),
            (None, Some(t)) => format!("{kw} '{t}'"),
            (None, None) => format!("{kw} definition"),
        }
    }

    /// Builds an object from a raw block: old key names mapped, custom variables upper-cased,
    /// repeated keys merged the way Shinken merges them (a list concatenates, a scalar keeps the
    /// last value, a custom variable keeps the first). `kind` is the block's known type.
    pub fn from_raw(kind: Kind, raw: RawObject, diag: &mut Diagnostics) -> Object {
        let mut obj = Object::new(kind, raw.loc);
        let mut register_loc = None;
        let mut attrs = raw.attrs;
        // In place: the block's own vector becomes the object's.
        attrs.retain_mut(|a| {
            let canonical = schema::canonical_key(&a.key);
            if canonical.starts_with('_') && canonical.bytes().any(|b| b.is_ascii_lowercase()) {
                a.key = canonical.to_ascii_uppercase().into();
            } else if canonical.len() != a.key.len() {
                a.key = canonical.into();
            }
            match &*a.key {
                "name" => obj.template_name = Some(a.value.clone()),
                "use" => obj.uses.extend(split_list(&a.value).into_iter().map(Text::from)),
                "register" => {
                    register_loc = Some(a.loc);
                    match schema::parse_bool(&a.value) {
                        Some(r) => obj.register = r,
                        None => diag.error(
                            a.loc,
                            format!("{} definition", kind.keyword()),
                            format!("register: '{}' is not a boolean", a.value),
                        ),
                    }
                }
                _ => return true,
            }
            false
        });
        if has_repeated_keys(&attrs) {
            attrs = merge_repeated(kind, attrs);
        }
        obj.attrs = attrs;
        if !obj.register && obj.template_name.is_none() {
            diag.error(
                register_loc.unwrap_or(obj.loc),
                obj.describe(),
                "a template (register 0) without a `name` cannot be used by anything",
            );
        }
        obj
    }
}

/// Whether a key appears twice (rare; keys of one file share their allocation, so most
/// comparisons are a pointer test).
fn has_repeated_keys(attrs: &[Attr]) -> bool {
    attrs
        .iter()
        .enumerate()
        .any(|(i, a)| attrs[..i].iter().any(|b| Arc::ptr_eq(&a.key, &b.key) || a.key == b.key))
}

/// Repeated keys merged the way Shinken merges them: a list concatenates, a scalar keeps the
/// last value, a custom variable keeps the first. A timeperiod's date ranges are not keys and
/// all stay.
fn merge_repeated(kind: Kind, attrs: Vec<Attr>) -> Vec<Attr> {
    let mut out: Vec<Attr> = Vec::with_capacity(attrs.len());
    for a in attrs {
        if kind == Kind::TimePeriod && !matches!(&*a.key, "timeperiod_name" | "alias" | "exclude") && !a.key.starts_with('_') {
            out.push(a);
            continue;
        }
        match out.iter_mut().find(|x| x.key == a.key) {
            None => out.push(a),
            Some(_) if a.key.starts_with('_') => {}
            Some(x) if schema::is_list(kind, &a.key) && !a.value.is_empty() => {
                x.value = if x.value.is_empty() {
                    a.value
                } else {
                    format!("{},{}", x.value, a.value).into()
                };
                x.loc = a.loc;
            }
            Some(x) => {
                x.value = a.value;
                x.loc = a.loc;
            }
        }
    }
    out
}

/// Raw blocks to objects; a block of an unknown type is an error (and dropped).
pub fn normalise(raw_objects: Vec<RawObject>, diag: &mut Diagnostics) -> Vec<Object> {
    let mut out = Vec::with_capacity(raw_objects.len());
    // Blocks of one type come in runs: remember the last keyword looked up.
    let mut last: Option<(Text, Option<Kind>)> = None;
    for raw in raw_objects {
        let kind = match &last {
            Some((kw, k)) if Arc::ptr_eq(kw, &raw.kind) || **kw == *raw.kind => *k,
            _ => {
                let k = Kind::from_keyword(&raw.kind);
                last = Some((raw.kind.clone(), k));
                k
            }
        };
        match kind {
            Some(kind) => out.push(Object::from_raw(kind, raw, diag)),
            None => diag.error(
                raw.loc,
                format!("{} definition", raw.kind),
                format!("unknown object type '{}'", raw.kind),
            ),
        }
    }
    out
}

/// Splits a comma list: items trimmed, empty ones dropped.
pub fn split_list(text: &str) -> Vec<&str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader;

    fn one(text: &str) -> (Object, Diagnostics) {
        let mut d = Diagnostics::new();
        let mut p = reader::parse(text, 0, &mut d);
        let raw = p.objects.remove(0);
        let kind = Kind::from_keyword(&raw.kind).unwrap();
        (Object::from_raw(kind, raw, &mut d), d)
    }

    #[test]
    fn repeated_keys_merge_as_shinken() {
        let (o, d) = one(
            "define host {\nhost_name a\nalias x\nalias y\nhostgroups g1\nhostgroups g2,g3\n_mac 1\n_MAC 2\nnormal_check_interval 5\n}\n",
        );
        assert!(!d.has_errors());
        assert_eq!(o.get("alias"), Some("y"));
        assert_eq!(o.list("hostgroups"), ["g1", "g2", "g3"]);
        assert_eq!(o.get("_MAC"), Some("1"));
        assert_eq!(o.get("check_interval"), Some("5"));
        assert_eq!(o.describe(), "host 'a'");
    }

    #[test]
    fn template_bookkeeping() {
        let (o, d) = one("define service {\nname generic\nuse a, b\nregister 0\n}\n");
        assert!(!d.has_errors());
        assert!(!o.register);
        assert_eq!(o.uses, vec![Text::from("a"), Text::from("b")]);
        assert_eq!(o.describe(), "service template 'generic'");
    }

    #[test]
    fn nameless_template_and_bad_register() {
        let (_, d) = one("define host {\nregister 0\n}\n");
        assert!(d.has_errors());
        let (_, d) = one("define host {\nhost_name a\nregister maybe\n}\n");
        assert!(d.problems()[0].message.contains("not a boolean"));
    }

    #[test]
    fn timeperiod_ranges_may_repeat_their_first_word() {
        let (o, _) = one("define timeperiod {\ntimeperiod_name t\nday 1 00:00-01:00\nday 15 00:00-01:00\n}\n");
        assert_eq!(o.attrs.len(), 3);
    }
}
