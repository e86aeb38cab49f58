//! The lexical layer: one file's text to `define` blocks and `key=value` parameters.
//!
//! Pure and total: any byte string gives a result (never a panic or a hang), which is what the
//! fuzz target checks. Rules follow Shinken's reader (semantics reference, section 6.1):
//! - everything after an unescaped `;` is a comment (`\;` is a literal `;`);
//! - a line whose first non-blank character is `#` is a comment (`#` later in a line is not);
//! - a trailing `\` joins the next line;
//! - `define <type> {` opens a block (the `{` may stand alone on the next line); `}` closes it;
//! - inside a block, `key value` splits at the first run of whitespace; outside, `key=value`.

use crate::diag::Diagnostics;
use crate::fasthash::FastMap;
use crate::source::{FileId, Loc};
use std::sync::Arc;

/// Shared immutable text: keys and values are cloned by pointer from here on.
pub type Text = Arc<str>;

/// Longest line we accept. Longer lines are reported and skipped: nothing legitimate is that
/// long, and it bounds what one line can cost later stages.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One `key value` line of a block (and, after normalising, an object's attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub key: Text,
    pub value: Text,
    pub loc: Loc,
}

/// One `define <kind> { ... }` block, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    /// The word after `define`, lower-cased; shared between the blocks of a file.
    pub kind: Text,
    pub loc: Loc,
    pub attrs: Vec<Attr>,
}

/// One `key=value` line outside any block (main-file parameters, resource macros `$USER1$=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: Box<str>,
    pub value: Box<str>,
    pub loc: Loc,
}

/// Everything one file holds, in order of appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub objects: Vec<RawObject>,
    pub params: Vec<Param>,
}

/// Decodes bytes as UTF-8, replacing invalid sequences (as Shinken does), and refuses binary
/// files: a NUL byte in a configuration file means it is not one.
pub fn decode(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(format!("binary file (NUL byte at offset {pos}), not a configuration file"));
    }
    // Valid UTF-8 (nearly always) borrows; the lossy path copies.
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(std::borrow::Cow::Borrowed(text)),
        Err(_) => Ok(String::from_utf8_lossy(bytes)),
    }
}

/// Parses one file's text. Problems go to `diag`, located in `file`.
pub fn parse(text: &str, file: FileId, diag: &mut Diagnostics) -> Parsed {
    let mut out = Parsed::default();
    // A tree has a few dozen distinct keys and hundreds of thousands of attributes: share them.
    let mut keys: FastMap<Box<str>, Text> = FastMap::default();
    let mut current: Option<RawObject> = None;
    // `define host` seen, `{` not yet.
    let mut awaiting_brace: Option<RawObject> = None;

    for (line_no, line) in LogicalLines::new(text) {
        let loc = Loc::new(file, line_no);
        if line.len() > MAX_LINE_BYTES {
            diag.error(
                loc,
                "",
                format!(
                    "line of {} bytes is longer than the {} allowed; skipped",
                    line.len(),
                    MAX_LINE_BYTES
                ),
            );
            continue;
        }
        let stripped = strip_comment(&line);
        let mut text = stripped.trim();
        if text.is_empty() {
            continue;
        }

        if let Some(pending) = awaiting_brace.take() {
            if let Some(rest) = text.strip_prefix('{') {
                current = Some(pending);
                text = rest.trim();
                if text.is_empty() {
                    continue;
                }
            } else {
                diag.error(
                    pending.loc,
                    format!("{} definition", pending.kind),
                    "`define` without an opening `{`",
                );
                // Treat the block as opened anyway: the lines that follow are most likely its body.
                current = Some(pending);
            }
        }

        if let Some(rest) = strip_keyword(text, "define") {
            if let Some(open) = current.take() {
                diag.error(open.loc, describe(&open), "block is not closed before the next `define`");
                out.objects.push(open);
            }
            let (kind, after) = split_kind(rest);
            if kind.is_empty() {
                diag.error(loc, "", "`define` without an object type");
                continue;
            }
            let kind = if kind.bytes().any(|b| b.is_ascii_uppercase()) {
                intern(&mut keys, &kind.to_ascii_lowercase())
            } else {
                intern(&mut keys, kind)
            };
            let obj = RawObject {
                kind,
                loc,
                attrs: Vec::new(),
            };
            match after.strip_prefix('{') {
                Some(body) => {
                    current = Some(obj);
                    let body = body.trim();
                    if !body.is_empty() {
                        handle_block_line(body, loc, &mut current, &mut out, &mut keys, diag);
                    }
                }
                None if after.is_empty() => awaiting_brace = Some(obj),
                None => {
                    diag.error(loc, "", format!("unexpected `{after}` after `define {}`", obj.kind));
                    current = Some(obj);
                }
            }
            continue;
        }

        if current.is_some() {
            handle_block_line(text, loc, &mut current, &mut out, &mut keys, diag);
        } else if text == "}" {
            diag.error(loc, "", "`}` without a matching `define`");
        } else {
            match text.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => out.params.push(Param {
                    key: key.trim().into(),
                    value: value.trim().into(),
                    loc,
                }),
                _ => diag.error(
                    loc,
                    "",
                    format!("the parameter {} is malformed! (expected key=value)", first_word(text)),
                ),
            }
        }
    }

    if let Some(pending) = awaiting_brace {
        diag.error(pending.loc, describe(&pending), "`define` without a body at end of file");
    }
    if let Some(open) = current {
        diag.error(open.loc, describe(&open), "block is never closed (missing `}` before end of file)");
        out.objects.push(open);
    }
    out
}

/// A line inside a block: an attribute, possibly followed by the closing `}`.
fn handle_block_line(
    text: &str,
    loc: Loc,
    current: &mut Option<RawObject>,
    out: &mut Parsed,
    keys: &mut FastMap<Box<str>, Text>,
    diag: &mut Diagnostics,
) {
    let (body, closes) = match text.strip_suffix('}') {
        Some(body) => (body.trim_end(), true),
        None => (text, false),
    };
    if !body.is_empty() {
        let (key, value) = split_attr(body);
        if let Some(obj) = current.as_mut() {
            if key.contains('=') && value.is_empty() {
                diag.warn(
                    loc,
                    describe(obj),
                    format!("`{key}` looks like a main-file parameter inside a block; read as a key without value"),
                );
            }
            let key = intern(keys, key);
            obj.attrs.push(Attr {
                key,
                value: value.into(),
                loc,
            });
        }
    }
    if closes && let Some(obj) = current.take() {
        out.objects.push(obj);
    }
}

/// The shared copy of a key (or type word), made on first sight.
fn intern(keys: &mut FastMap<Box<str>, Text>, key: &str) -> Text {
    match keys.get(key) {
        Some(k) => k.clone(),
        None => {
            let k: Text = key.into();
            keys.insert(key.into(), k.clone());
            k
        }
    }
}

/// How a block is named in messages before its name is known.
fn describe(obj: &RawObject) -> String {
    let name = obj
        .attrs
        .iter()
        .find(|a| &*a.key == "name" || a.key.ends_with("_name") || &*a.key == "service_description")
        .map(|a| a.value.to_string());
    match name {
        Some(n) => format!("{} '{}'", obj.kind, n),
        None => format!("{} definition", obj.kind),
    }
}

fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or(text)
}

/// `define` followed by whitespace or `{`-less type name; returns what follows the keyword.
fn strip_keyword<'a>(text: &'a str, kw: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(kw)?;
    match rest.chars().next() {
        Some(c) if c.is_whitespace() => Some(rest.trim_start()),
        _ => None,
    }
}

/// Splits `host {` / `host{` / `host` into the type and what follows it.
fn split_kind(rest: &str) -> (&str, &str) {
    let end = rest.find(|c: char| c.is_whitespace() || c == '{').unwrap_or(rest.len());
    (&rest[..end], rest[end..].trim_start())
}

/// `key value with spaces` -> (`key`, `value with spaces`). Keys are ASCII; the split is on
/// ASCII whitespace (the value is trimmed of any whitespace).
fn split_attr(text: &str) -> (&str, &str) {
    match text.bytes().position(|b| b.is_ascii_whitespace()) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    }
}

/// Removes a comment: a line starting with `#`, or anything after an unescaped `;`.
/// `\;` becomes a literal `;`.
fn strip_comment(line: &str) -> std::borrow::Cow<'_, str> {
    if line.trim_start().starts_with('#') {
        return "".into();
    }
    let bytes = line.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == b';') else {
        return line.into();
    };
    if first == 0 || bytes[first - 1] != b'\\' {
        return line[..first].into();
    }
    // Slow path: escaped semicolons present.
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&';') => {
                out.push(';');
                chars.next();
            }
            ';' => break,
            _ => out.push(c),
        }
    }
    out.into()
}

/// Iterates over logical lines: physical lines joined where one ends with `\`, numbered by the
/// physical line where the logical one starts. Accepts `\n`, `\r\n` and `\r` endings.
struct LogicalLines<'a> {
    rest: &'a str,
    line: u32,
}

impl<'a> LogicalLines<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text, line: 0 }
    }

    fn next_physical(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        self.line += 1;
        let end = self.rest.find(['\n', '\r']).unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        let mut next = end;
        if self.rest[end..].starts_with("\r\n") {
            next += 2;
        } else if end < self.rest.len() {
            next += 1;
        }
        self.rest = &self.rest[next..];
        Some(line)
    }
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = (u32, std::borrow::Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let first = self.next_physical()?;
        let start = self.line;
        if !first.ends_with('\\') || first.trim_start().starts_with('#') {
            return Some((start, first.into()));
        }
        let mut joined = first[..first.len() - 1].to_string();
        while let Some(next) = self.next_physical() {
            let next = next.trim_start();
            if let Some(cont) = next.strip_suffix('\\') {
                joined.push_str(cont);
                if joined.len() > MAX_LINE_BYTES {
                    break;
                }
            } else {
                joined.push_str(next);
                break;
            }
        }
        Some((start, joined.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;

    fn parse_ok(text: &str) -> Parsed {
        let mut d = Diagnostics::new();
        let p = parse(text, 0, &mut d);
        assert!(!d.has_errors(), "{:?}", d.problems());
        p
    }

    #[test]
    fn block_attributes_and_comments() {
        let p = parse_ok("# comment\ndefine host {\n  host_name  web1 ; trailing\n  alias  Web server one\n  notes a\\;b\n  # inner\n}\n");
        assert_eq!(p.objects.len(), 1);
        let o = &p.objects[0];
        assert_eq!(&*o.kind, "host");
        assert_eq!(o.loc.line, 2);
        let kv: Vec<_> = o.attrs.iter().map(|a| (&*a.key, &*a.value, a.loc.line)).collect();
        assert_eq!(
            kv,
            vec![("host_name", "web1", 3), ("alias", "Web server one", 4), ("notes", "a;b", 5)]
        );
    }

    #[test]
    fn brace_on_next_line_and_no_space() {
        let p = parse_ok("define service\n{\nservice_description x\n}\ndefine host{\nhost_name h\n}\n");
        assert_eq!(p.objects.len(), 2);
        assert_eq!(&*p.objects[1].attrs[0].value, "h");
    }

    #[test]
    fn closing_brace_on_attribute_line() {
        let p = parse_ok("define command {\ncommand_name c\ncommand_line /bin/true }\n");
        assert_eq!(p.objects[0].attrs.len(), 2);
        assert_eq!(&*p.objects[0].attrs[1].value, "/bin/true");
    }

    #[test]
    fn params_and_resources() {
        let p = parse_ok("cfg_dir=hosts\n$USER1$=/usr/lib/nagios/plugins\nlog_file = /var/log/x\n");
        let kv: Vec<_> = p.params.iter().map(|a| (&*a.key, &*a.value)).collect();
        assert_eq!(
            kv,
            vec![
                ("cfg_dir", "hosts"),
                ("$USER1$", "/usr/lib/nagios/plugins"),
                ("log_file", "/var/log/x")
            ]
        );
    }

    #[test]
    fn hash_inside_a_value_is_kept() {
        let p = parse_ok("define command {\ncommand_name c\ncommand_line echo '#1'\n}\n");
        assert_eq!(&*p.objects[0].attrs[1].value, "echo '#1'");
    }

    #[test]
    fn continuation_lines() {
        let p = parse_ok("define command {\ncommand_name c\ncommand_line /bin/echo a \\\n     b\n}\n");
        assert_eq!(&*p.objects[0].attrs[1].value, "/bin/echo a b");
        assert_eq!(p.objects[0].attrs[1].loc.line, 3);
    }

    #[test]
    fn crlf_and_cr_endings() {
        let p = parse_ok("define host {\r\nhost_name a\r\n}\rdefine host {\rhost_name b\r}");
        assert_eq!(p.objects.len(), 2);
    }

    #[test]
    fn key_without_value() {
        let p = parse_ok("define scheduler {\nscheduler_name s\nmodules\n}\n");
        assert_eq!(&*p.objects[0].attrs[1].key, "modules");
        assert_eq!(&*p.objects[0].attrs[1].value, "");
    }

    #[test]
    fn unterminated_block_is_an_error_and_kept() {
        let mut d = Diagnostics::new();
        let p = parse("define host {\nhost_name a\n", 3, &mut d);
        assert_eq!(p.objects.len(), 1);
        let e = &d.problems()[0];
        assert_eq!(e.severity, Severity::Error);
        assert_eq!(e.loc, Some(Loc::new(3, 1)));
        assert!(e.object.contains("host 'a'"), "{e:?}");
        assert!(e.message.contains("never closed"));
    }

    #[test]
    fn define_inside_define_closes_the_first() {
        let mut d = Diagnostics::new();
        let p = parse("define host {\nhost_name a\ndefine host {\nhost_name b\n}\n", 0, &mut d);
        assert_eq!(p.objects.len(), 2);
        assert_eq!(d.count(Severity::Error), 1);
    }

    #[test]
    fn stray_brace_and_malformed_param() {
        let mut d = Diagnostics::new();
        parse("}\njust some words\n", 0, &mut d);
        assert_eq!(d.count(Severity::Error), 2);
        assert!(d.problems()[1].message.contains("malformed"));
    }

    #[test]
    fn binary_is_refused() {
        assert!(decode(b"define host {\0}").is_err());
        assert!(decode("define host {}".as_bytes()).is_ok());
    }

    #[test]
    fn huge_line_is_reported_not_parsed() {
        let mut d = Diagnostics::new();
        let text = format!("define host {{\nnotes {}\n}}\n", "x".repeat(MAX_LINE_BYTES + 10));
        let p = parse(&text, 0, &mut d);
        assert_eq!(d.count(Severity::Error), 1);
        assert_eq!(p.objects[0].attrs.len(), 0);
    }

    #[test]
    fn continuation_at_end_of_file() {
        let mut d = Diagnostics::new();
        parse("a=b\\", 0, &mut d);
        parse("\\", 0, &mut d);
    }
}
