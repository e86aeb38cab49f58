//! Building a runnable command line from a command template and a call: Nagios/Shinken macros.
//!
//! Sources: `shinken:shinken/macroresolver.py`, `shinken:shinken/commandcall.py` and the Nagios 4
//! macro documentation. The engine knows nothing of how objects are stored: values come from a
//! [`MacroContext`] (an adapter over the scheduler's objects, or the ready-made [`MapContext`]).
//!
//! Resolution scans a template once, left to right, and substitutes each `$NAME$` token:
//!
//! * `$$` is a literal `$`; a lone `$` without a closing `$` is kept as it is;
//! * `$ARGn$` is the nth argument of the call (`""` when absent);
//! * `$NAME:host$` / `$NAME:host:service$` are on-demand macros ([`MacroContext::on_demand`]);
//! * custom macros (`$_HOSTfoo$`, `$_SERVICEfoo$`, `$_CONTACTfoo$`) are asked of the context
//!   with the variable name upper-cased, as Shinken stores custom variables upper-cased;
//! * resource macros (`$USER1$`, `$PLUGINSDIR$`, ...) come from [`MacroEnv::resources`];
//! * `LONGDATETIME`, `SHORTDATETIME`, `DATE`, `TIME`, `TIMET` are computed here from [`MacroEnv::now`];
//! * everything else is asked of the context; unknown macros become `""`.
//!
//! Nested macros (an argument `$USER1$/x`, a resource `$USER2$=$USER1$/lib`, a custom variable
//! `$SNMPCOMMUNITYREAD$`) are expanded by rescanning the substituted value, at most
//! [`MAX_ROUNDS`] levels deep, which matches Shinken's 32 rounds of rescanning the whole line.
//! Output-type macros (plugin output, perfdata, acknowledgement/notification authors and
//! comments) are the exception: their value is inserted verbatim, after removing the
//! `illegal_macro_output_chars`, and is never rescanned, so a plugin output containing `$` can
//! neither be mangled nor make the expansion loop.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Local, TimeZone, Utc};

/// How many levels of nested macros are expanded (Shinken's bound on rescanning rounds).
pub const MAX_ROUNDS: usize = 32;

/// Upper bound on the number of substitutions of nested values in one resolution. It only matters
/// for pathological self-referencing definitions (e.g. `$USER1$=$USER1$$USER1$`, which would
/// otherwise double at each of the 32 levels); past it, nested values are inserted unexpanded.
const MAX_NESTED_SUBSTITUTIONS: usize = 4096;

/// Output-type macros: their values have `illegal_macro_output_chars` removed and are never
/// rescanned for nested macros.
const OUTPUT_MACROS: &[&str] = &[
    "HOSTOUTPUT",
    "LONGHOSTOUTPUT",
    "HOSTPERFDATA",
    "LASTHOSTPERFDATA",
    "HOSTACKAUTHOR",
    "HOSTACKAUTHORNAME",
    "HOSTACKAUTHORALIAS",
    "HOSTACKCOMMENT",
    "SERVICEOUTPUT",
    "LONGSERVICEOUTPUT",
    "SERVICEPERFDATA",
    "LASTSERVICEPERFDATA",
    "SERVICEACKAUTHOR",
    "SERVICEACKAUTHORNAME",
    "SERVICEACKAUTHORALIAS",
    "SERVICEACKCOMMENT",
    "NOTIFICATIONAUTHOR",
    "NOTIFICATIONAUTHORNAME",
    "NOTIFICATIONAUTHORALIAS",
    "NOTIFICATIONCOMMENT",
];

/// The time macros computed by this module (see [`time_macro`]).
pub const TIME_MACROS: &[&str] = &["LONGDATETIME", "SHORTDATETIME", "DATE", "TIME", "TIMET"];

/// Whether `name` (without `$`) is an output-type macro, whose value is cleaned of
/// `illegal_macro_output_chars` and never rescanned.
pub fn is_output_macro(name: &str) -> bool {
    OUTPUT_MACROS.contains(&name)
}

/// `check_command name!arg1!arg2` split on unescaped '!' ("\!" is a literal '!'): (command name, args).
///
/// As Shinken does, the command name is trimmed and the arguments are kept as written
/// (a backslash not followed by `!` is kept).
pub fn split_command_call(call: &str) -> (String, Vec<String>) {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::with_capacity(call.len());
    let mut rest = call;
    while let Some(i) = rest.find(['!', '\\']) {
        current.push_str(&rest[..i]);
        if rest.as_bytes()[i] == b'\\' {
            if rest.as_bytes().get(i + 1) == Some(&b'!') {
                current.push('!');
                rest = &rest[i + 2..];
            } else {
                current.push('\\');
                rest = &rest[i + 1..];
            }
        } else {
            parts.push(std::mem::take(&mut current));
            rest = &rest[i + 1..];
        }
    }
    current.push_str(rest);
    parts.push(current);
    let mut parts = parts.into_iter();
    let name = parts.next().unwrap_or_default().trim().to_owned();
    (name, parts.collect())
}

/// Where macro values come from. Names are given without the surrounding '$'.
pub trait MacroContext {
    /// A standard or custom macro of the objects in context: "HOSTNAME", "HOSTADDRESS", "SERVICEDESC",
    /// "HOSTSTATE", "_HOSTMAC_ADDRESS" (custom: prefix _HOST/_SERVICE/_CONTACT + variable name without its
    /// leading underscore, upper-cased), "CONTACTEMAIL", "NOTIFICATIONTYPE", ... None when unknown.
    fn value(&self, name: &str) -> Option<String>;

    /// On-demand macros: `$HOSTSTATE:web1$` -> ("HOSTSTATE", "web1", None); `$SERVICESTATE:web1:HTTP$` ->
    /// ("SERVICESTATE", "web1", Some("HTTP")); an empty host means the current host. Default: None.
    fn on_demand(&self, name: &str, host: &str, service: Option<&str>) -> Option<String> {
        let _ = (name, host, service);
        None
    }
}

/// What a resolution needs besides the objects.
#[derive(Debug, Clone, Copy)]
pub struct MacroEnv<'a> {
    /// $USERn$ and any other `$NAME$=value` from resource files (keys WITHOUT the '$').
    pub resources: &'a HashMap<String, String>,
    /// Characters removed from output-type macros (HOSTOUTPUT, SERVICEOUTPUT, LONG*OUTPUT, *PERFDATA,
    /// *ACKAUTHOR*, *ACKCOMMENT, NOTIFICATIONCOMMENT...) — main cfg `illegal_macro_output_chars`.
    pub illegal_output_chars: &'a str,
    /// "Now", for the time macros (Unix seconds); formatted in local time.
    pub now: i64,
}

/// Resolves every macro of `command_line` (a command's `command_line` template) with `args` as $ARG1$..$ARGn$.
///
/// Rules: `$ARGn$` = nth arg or "" ; `$USERn$`/resource macros; nested macros (an $ARG$ whose value
/// holds `$USER1$`) expanded by rescanning the substituted value, at most [`MAX_ROUNDS`] levels;
/// unknown macros become ""; `$$` is a literal '$'; a lone '$' with no closing '$' is kept
/// literally; time macros LONGDATETIME, SHORTDATETIME, DATE, TIME, TIMET (Nagios formats) computed
/// here; everything else asked of `ctx` (standard, custom, then on-demand when the name contains
/// ':'). Output-type macros are cleaned of `env.illegal_output_chars` and not rescanned. The result
/// is trimmed, as Shinken does.
pub fn resolve(command_line: &str, args: &[String], env: &MacroEnv, ctx: &dyn MacroContext) -> String {
    if !command_line.contains('$') {
        return command_line.trim().to_owned();
    }
    let mut resolver = Resolver {
        args,
        env,
        ctx,
        nested_budget: MAX_NESTED_SUBSTITUTIONS,
    };
    let mut out = String::with_capacity(command_line.len() + 64);
    resolver.expand(command_line, 0, &mut out);
    let trimmed = out.trim();
    if trimmed.len() == out.len() { out } else { trimmed.to_owned() }
}

/// The environment variables Nagios exports with enable_environment_macros: ("NAGIOS_HOSTNAME", value), and for
/// custom ones "NAGIOS__HOSTMAC_ADDRESS". Given the macro names to export, asks ctx for each.
///
/// Names may be given with or without the surrounding `$`. Each value is what `$NAME$` would give
/// in a command line (nested macros expanded, output characters cleaned); unknown macros are
/// exported empty, as Nagios does.
pub fn environment(names: &[&str], env: &MacroEnv, ctx: &dyn MacroContext) -> Vec<(String, String)> {
    environment_with_args(names, &[], env, ctx)
}

/// Like [`environment`], with the call's arguments available for `ARGn` names.
pub fn environment_with_args(names: &[&str], args: &[String], env: &MacroEnv, ctx: &dyn MacroContext) -> Vec<(String, String)> {
    let mut resolver = Resolver {
        args,
        env,
        ctx,
        nested_budget: MAX_NESTED_SUBSTITUTIONS,
    };
    names
        .iter()
        .map(|raw| {
            let name = raw.trim_matches('$');
            let mut value = String::new();
            if !name.is_empty() {
                resolver.substitute(name, 0, &mut value);
            }
            (format!("NAGIOS_{name}"), value)
        })
        .collect()
}

/// Names of the macros a template references (without '$'), for validation: e.g. ["USER1","HOSTADDRESS","ARG1"].
///
/// In order of first appearance, without duplicates; `$$` and a trailing lone `$` are not macros.
pub fn referenced_macros(template: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('$') else { break };
        let name = &after[..j];
        rest = &after[j + 1..];
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The value of a time macro (`LONGDATETIME`, `SHORTDATETIME`, `DATE`, `TIME`, `TIMET`) at `now`
/// (Unix seconds), in local time, Nagios formats with `date_format=us`:
/// `Fri Oct 13 00:30:28 CDT 2000`, `10-13-2000 00:30:28`, `10-13-2000`, `00:30:28`, `971415028`.
///
/// The time-zone name is not available portably: `UTC` when local time is UTC, otherwise the
/// numeric offset (`+0200`).
pub fn time_macro(name: &str, now: i64) -> Option<String> {
    let fmt = match name {
        "TIMET" => return Some(now.to_string()),
        "LONGDATETIME" => "%a %b %-d %H:%M:%S",
        "SHORTDATETIME" => "%m-%d-%Y %H:%M:%S",
        "DATE" => "%m-%d-%Y",
        "TIME" => "%H:%M:%S",
        _ => return None,
    };
    let local: DateTime<Local> = match Local.timestamp_opt(now, 0).single() {
        Some(t) => t,
        None => Utc.timestamp_opt(now, 0).single().unwrap_or_default().with_timezone(&Local),
    };
    let mut text = local.format(fmt).to_string();
    if name == "LONGDATETIME" {
        let offset = local.offset().local_minus_utc();
        if offset == 0 {
            text.push_str(" UTC ");
        } else {
            let sign = if offset < 0 { '-' } else { '+' };
            let minutes = offset.unsigned_abs() / 60;
            text.push_str(&format!(" {sign}{:02}{:02} ", minutes / 60, minutes % 60));
        }
        text.push_str(&local.format("%Y").to_string());
    }
    Some(text)
}

/// A simple ready-made context over a map, useful to callers and tests.
///
/// `value(name)` is the map entry `name`. On-demand macros are looked up as `NAME:host` or
/// `NAME:host:service` entries; an empty host (or the map's own `HOSTNAME`) designates the
/// current host, for which a plain `NAME` entry is used when no explicit on-demand entry exists
/// (for services, when the service is the map's own `SERVICEDESC`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapContext(pub HashMap<String, String>);

impl MapContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a macro value; builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

impl From<HashMap<String, String>> for MapContext {
    fn from(map: HashMap<String, String>) -> Self {
        Self(map)
    }
}

impl MacroContext for MapContext {
    fn value(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn on_demand(&self, name: &str, host: &str, service: Option<&str>) -> Option<String> {
        let current_host = self.0.get("HOSTNAME").map(String::as_str);
        let host = if host.is_empty() { current_host.unwrap_or("") } else { host };
        let key = match service {
            Some(svc) => format!("{name}:{host}:{svc}"),
            None => format!("{name}:{host}"),
        };
        if let Some(v) = self.0.get(&key) {
            return Some(v.clone());
        }
        let is_current_host = current_host.is_none_or(|h| h == host);
        let is_current_service = match service {
            None => true,
            Some(svc) => self.0.get("SERVICEDESC").is_some_and(|s| s == svc),
        };
        if is_current_host && is_current_service {
            self.value(name)
        } else {
            None
        }
    }
}

/// One resolution: the call's arguments, the environment, the objects.
struct Resolver<'r> {
    args: &'r [String],
    env: &'r MacroEnv<'r>,
    ctx: &'r dyn MacroContext,
    nested_budget: usize,
}

/// A looked-up value and whether it may hold nested macros to expand.
struct Value<'r> {
    text: Cow<'r, str>,
    rescan: bool,
}

impl<'r> Resolver<'r> {
    /// Appends `text` to `out` with its macros substituted; `depth` is the nesting level of `text`.
    fn expand(&mut self, text: &str, depth: usize, out: &mut String) {
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let Some(j) = after.find('$') else {
                // A lone '$': kept literally.
                out.push_str(&rest[i..]);
                return;
            };
            let name = &after[..j];
            rest = &after[j + 1..];
            if name.is_empty() {
                out.push('$');
            } else {
                self.substitute(name, depth, out);
            }
        }
        out.push_str(rest);
    }

    /// Appends the value of macro `name` (found at nesting level `depth`), expanding nested macros.
    fn substitute(&mut self, name: &str, depth: usize, out: &mut String) {
        let Some(value) = self.lookup(name) else {
            return; // unknown macro: ""
        };
        if value.rescan && depth < MAX_ROUNDS && self.nested_budget > 0 && value.text.contains('$') {
            self.nested_budget -= 1;
            self.expand(&value.text, depth + 1, out);
        } else {
            out.push_str(&value.text);
        }
    }

    fn lookup(&self, name: &str) -> Option<Value<'r>> {
        if let Some(n) = argn(name) {
            let text = n
                .checked_sub(1)
                .and_then(|i| self.args.get(i))
                .map_or(Cow::Borrowed(""), |a| Cow::Borrowed(a.as_str()));
            return Some(Value { text, rescan: true });
        }
        if let Some((macro_name, rest)) = name.split_once(':') {
            let (host, service) = match rest.split_once(':') {
                Some((h, s)) => (h, Some(s)),
                None => (rest, None),
            };
            let text = self.ctx.on_demand(macro_name, host, service)?;
            return Some(self.object_value(macro_name, text));
        }
        if name.starts_with('_') {
            let text = if name.bytes().any(|b| b.is_ascii_lowercase()) || !name.is_ascii() {
                self.ctx.value(&name.to_uppercase())
            } else {
                self.ctx.value(name)
            }?;
            return Some(Value {
                text: Cow::Owned(text),
                rescan: true,
            });
        }
        if let Some(v) = self.env.resources.get(name) {
            return Some(Value {
                text: Cow::Borrowed(v.as_str()),
                rescan: true,
            });
        }
        if let Some(t) = time_macro(name, self.env.now) {
            return Some(Value {
                text: Cow::Owned(t),
                rescan: false,
            });
        }
        let text = self.ctx.value(name)?;
        Some(self.object_value(name, text))
    }

    /// A value from the objects: output-type macros are cleaned and not rescanned.
    fn object_value(&self, macro_name: &str, text: String) -> Value<'r> {
        if is_output_macro(macro_name) {
            Value {
                text: Cow::Owned(strip_chars(text, self.env.illegal_output_chars)),
                rescan: false,
            }
        } else {
            Value {
                text: Cow::Owned(text),
                rescan: true,
            }
        }
    }
}

/// `Some(n)` when `name` is `ARGn` (n all digits; an overflowing n is an absent argument).
fn argn(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("ARG")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(usize::MAX))
}

/// `text` without any of the characters of `illegal`; no allocation when there is none.
fn strip_chars(text: String, illegal: &str) -> String {
    if illegal.is_empty() || !text.contains(|c| illegal.contains(c)) {
        return text;
    }
    text.chars().filter(|c| !illegal.contains(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn host_ctx() -> MapContext {
        MapContext::new()
            .with("HOSTNAME", "web1")
            .with("HOSTADDRESS", "10.0.0.1")
            .with("SERVICEDESC", "HTTP")
            .with("_HOSTMAC_ADDRESS", "00:11:22:33:44:55")
            .with("_SERVICESNMP_COMMUNITY", "$SNMPCOMMUNITYREAD$")
            .with("_CONTACTPHONE", "+33 1 23")
    }

    const NOW: i64 = 971_415_028; // 2000-10-13 05:30:28 UTC

    fn run(template: &str, a: &[&str], resources: &HashMap<String, String>, ctx: &MapContext) -> String {
        let env = MacroEnv {
            resources,
            illegal_output_chars: "`~$&|'\"<>",
            now: NOW,
        };
        resolve(template, &args(a), &env, ctx)
    }

    #[test]
    fn split_plain_and_escaped() {
        assert_eq!(
            split_command_call("check_tcp!7768!-w 5"),
            ("check_tcp".to_owned(), args(&["7768", "-w 5"]))
        );
        assert_eq!(
            split_command_call(r"check_http!hello\!world!x\y"),
            ("check_http".to_owned(), args(&["hello!world", r"x\y"]))
        );
        assert_eq!(split_command_call(" check_ping "), ("check_ping".to_owned(), vec![]));
        assert_eq!(split_command_call("c!!b"), ("c".to_owned(), args(&["", "b"])));
        assert_eq!(split_command_call(""), (String::new(), vec![]));
        assert_eq!(split_command_call(r"c!a\"), ("c".to_owned(), args(&[r"a\"])));
    }

    #[test]
    fn course_check_tcp() {
        let r = res(&[("USER1", "/usr/lib/nagios/plugins")]);
        assert_eq!(
            run("$USER1$/check_tcp -H $HOSTADDRESS$ -p $ARG1$ -t 3", &["7768"], &r, &host_ctx()),
            "/usr/lib/nagios/plugins/check_tcp -H 10.0.0.1 -p 7768 -t 3"
        );
    }

    #[test]
    fn missing_args_are_empty() {
        let r = res(&[]);
        assert_eq!(run("x $ARG1$|$ARG2$|$ARG3$|$ARG0$ y", &["a"], &r, &host_ctx()), "x a||| y");
        assert_eq!(run("$ARG99999999999999999999999$z", &["a"], &r, &host_ctx()), "z");
    }

    #[test]
    fn user_macro_inside_argument() {
        let r = res(&[("USER1", "/plugins"), ("USER2", "$USER1$/lib")]);
        assert_eq!(
            run("$ARG1$ -x $ARG2$", &["$USER1$/check_x", "$USER2$"], &r, &host_ctx()),
            "/plugins/check_x -x /plugins/lib"
        );
    }

    #[test]
    fn double_dollar_and_lone_dollar() {
        let r = res(&[]);
        assert_eq!(run("echo $$HOME and $$$$", &[], &r, &host_ctx()), "echo $HOME and $$");
        assert_eq!(run("cost 5$", &[], &r, &host_ctx()), "cost 5$");
        assert_eq!(run("$HOSTNAME$ costs $5", &[], &r, &host_ctx()), "web1 costs $5");
        // `$$` produced by an argument is a literal '$' too, and not rescanned.
        assert_eq!(run("$ARG1$", &["a$$HOSTNAME$$b"], &r, &host_ctx()), "a$HOSTNAME$b");
    }

    #[test]
    fn unknown_macro_is_empty() {
        let r = res(&[]);
        assert_eq!(run("a $NOPE$ b $_HOSTNOPE$c", &[], &r, &host_ctx()), "a  b c");
    }

    #[test]
    fn no_dollar_is_trimmed_copy() {
        let r = res(&[]);
        assert_eq!(run("  /bin/true  ", &[], &r, &host_ctx()), "/bin/true");
        assert_eq!(run("$ARG1$", &["  x  "], &r, &host_ctx()), "x");
    }

    #[test]
    fn custom_variable_macros() {
        let r = res(&[("SNMPCOMMUNITYREAD", "public")]);
        let ctx = host_ctx();
        assert_eq!(run("$_HOSTMAC_ADDRESS$", &[], &r, &ctx), "00:11:22:33:44:55");
        // Lower-case variable names are looked up upper-cased, as Shinken stores them.
        assert_eq!(run("$_HOSTmac_address$", &[], &r, &ctx), "00:11:22:33:44:55");
        // Custom values holding macros are expanded (Shinken packs rely on it).
        assert_eq!(run("-C $_SERVICESNMP_COMMUNITY$", &[], &r, &ctx), "-C public");
        assert_eq!(run("$_CONTACTPHONE$", &[], &r, &ctx), "+33 1 23");
    }

    #[test]
    fn on_demand_macros() {
        struct Ctx;
        impl MacroContext for Ctx {
            fn value(&self, name: &str) -> Option<String> {
                (name == "HOSTNAME").then(|| "cur".to_owned())
            }
            fn on_demand(&self, name: &str, host: &str, service: Option<&str>) -> Option<String> {
                Some(format!("{name}({host},{})", service.unwrap_or("-")))
            }
        }
        let r = res(&[]);
        let env = MacroEnv {
            resources: &r,
            illegal_output_chars: "",
            now: NOW,
        };
        assert_eq!(
            resolve("$HOSTSTATE:web1$ $SERVICESTATE:web1:HTTP Check$ $HOSTSTATE:$", &[], &env, &Ctx),
            "HOSTSTATE(web1,-) SERVICESTATE(web1,HTTP Check) HOSTSTATE(,-)"
        );
        assert_eq!(resolve("[$SERVICESTATE::HTTP$]", &[], &env, &Ctx), "[SERVICESTATE(,HTTP)]");

        let ctx = host_ctx()
            .with("HOSTSTATE:db1", "DOWN")
            .with("SERVICESTATE:db1:MySQL", "CRITICAL")
            .with("HOSTSTATE", "UP");
        assert_eq!(
            run(
                "$HOSTSTATE:db1$ $SERVICESTATE:db1:MySQL$ $HOSTSTATE:$ $HOSTSTATE:other$",
                &[],
                &r,
                &ctx
            ),
            "DOWN CRITICAL UP"
        );
        // The default trait method knows nothing.
        struct Bare;
        impl MacroContext for Bare {
            fn value(&self, _: &str) -> Option<String> {
                None
            }
        }
        assert_eq!(resolve("x$HOSTSTATE:web1$y", &[], &env, &Bare), "xy");
    }

    #[test]
    fn output_chars_stripped_only_from_output_macros() {
        let r = res(&[("USER1", "/a|b")]);
        let ctx = host_ctx()
            .with("SERVICEOUTPUT", "OK - `rm` $HOSTNAME$ <b> & 'q' | \"x\"")
            .with("LONGSERVICEOUTPUT", "l1|l2")
            .with("SERVICEPERFDATA", "time=1s;<2>")
            .with("NOTIFICATIONCOMMENT", "it's ok")
            .with("SERVICEACKAUTHOR", "a&b")
            .with("HOSTALIAS", "web & <co>")
            .with("SERVICEOUTPUT:db1:MySQL", "a|b");
        assert_eq!(
            run(
                "$SERVICEOUTPUT$#$LONGSERVICEOUTPUT$#$SERVICEPERFDATA$#$NOTIFICATIONCOMMENT$#$SERVICEACKAUTHOR$",
                &[],
                &r,
                &ctx
            ),
            "OK - rm HOSTNAME b  q  x#l1l2#time=1s;2#its ok#ab"
        );
        assert_eq!(run("$HOSTALIAS$ $USER1$ $ARG1$", &["x|y"], &r, &ctx), "web & <co> /a|b x|y");
        assert_eq!(run("$SERVICEOUTPUT:db1:MySQL$", &[], &r, &ctx), "ab");
    }

    #[test]
    fn output_macro_is_not_rescanned() {
        let r = res(&[("USER1", "secret")]);
        let ctx = host_ctx().with("HOSTOUTPUT", "price $USER1$ $$ $5");
        let env = MacroEnv {
            resources: &r,
            illegal_output_chars: "",
            now: NOW,
        };
        assert_eq!(resolve("[$HOSTOUTPUT$]", &[], &env, &ctx), "[price $USER1$ $$ $5]");
    }

    #[test]
    fn self_reference_is_bounded() {
        let r = res(&[("USER1", "$USER1$x")]);
        let out = run("$USER1$", &[], &r, &host_ctx());
        assert_eq!(out, format!("$USER1$x{}", "x".repeat(MAX_ROUNDS)));

        // Mutual recursion terminates too.
        let r = res(&[("USER1", "$USER2$a"), ("USER2", "$USER1$b")]);
        let out = run("$USER1$", &[], &r, &host_ctx());
        assert!(out.ends_with("ba"));
        assert!(out.len() < 100);

        // Exponential self-reference stays bounded.
        let r = res(&[("USER1", "$USER1$$USER1$")]);
        let out = run("$USER1$", &[], &r, &host_ctx());
        assert!(out.len() < 1_000_000, "{}", out.len());

        // An argument referring to itself.
        let r = res(&[]);
        assert_eq!(run("$ARG1$", &["$ARG1$"], &r, &host_ctx()), "$ARG1$");
    }

    #[test]
    fn time_macros_shape() {
        let r = res(&[]);
        let ctx = MapContext::new();
        let timet = run("$TIMET$", &[], &r, &ctx);
        assert_eq!(timet, NOW.to_string());

        let date = run("$DATE$", &[], &r, &ctx);
        let b = date.as_bytes();
        assert_eq!(date.len(), 10, "{date}");
        assert!(b[2] == b'-' && b[5] == b'-', "{date}");
        assert!(date.ends_with("2000"), "{date}");
        assert!(date.starts_with("10-"), "{date}");

        let time = run("$TIME$", &[], &r, &ctx);
        assert_eq!(time.len(), 8, "{time}");
        assert!(time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':', "{time}");
        assert!(time.ends_with(":28"), "{time}");

        let short = run("$SHORTDATETIME$", &[], &r, &ctx);
        assert_eq!(short, format!("{date} {time}"));

        let long = run("$LONGDATETIME$", &[], &r, &ctx);
        let fields: Vec<&str> = long.split(' ').collect();
        assert_eq!(fields.len(), 6, "{long}");
        assert!(["Thu", "Fri"].contains(&fields[0]), "{long}");
        assert_eq!(fields[1], "Oct", "{long}");
        assert!(fields[2].parse::<u32>().is_ok_and(|d| (12..=13).contains(&d)), "{long}");
        assert_eq!(fields[3], time, "{long}");
        assert!(fields[4] == "UTC" || fields[4].len() == 5, "{long}");
        assert_eq!(fields[5], "2000", "{long}");

        assert_eq!(time_macro("HOSTNAME", NOW), None);
    }

    #[test]
    fn resources_and_context_precedence() {
        let r = res(&[("PLUGINSDIR", "/opt/p"), ("USER1", "/u")]);
        let ctx = host_ctx().with("USER1", "from-ctx");
        assert_eq!(run("$PLUGINSDIR$/a $USER1$", &[], &r, &ctx), "/opt/p/a /u");
    }

    #[test]
    fn environment_variables() {
        let r = res(&[("USER1", "/u")]);
        let env = MacroEnv {
            resources: &r,
            illegal_output_chars: "|",
            now: NOW,
        };
        let ctx = host_ctx().with("HOSTOUTPUT", "a|b");
        let vars = environment(&["HOSTNAME", "$_HOSTMAC_ADDRESS$", "HOSTOUTPUT", "TIMET", "NOPE"], &env, &ctx);
        assert_eq!(
            vars,
            vec![
                ("NAGIOS_HOSTNAME".to_owned(), "web1".to_owned()),
                ("NAGIOS__HOSTMAC_ADDRESS".to_owned(), "00:11:22:33:44:55".to_owned()),
                ("NAGIOS_HOSTOUTPUT".to_owned(), "ab".to_owned()),
                ("NAGIOS_TIMET".to_owned(), NOW.to_string()),
                ("NAGIOS_NOPE".to_owned(), String::new()),
            ]
        );
        let vars = environment_with_args(&["ARG1"], &args(&["$USER1$/x"]), &env, &ctx);
        assert_eq!(vars, vec![("NAGIOS_ARG1".to_owned(), "/u/x".to_owned())]);
    }

    #[test]
    fn referenced_macro_names() {
        assert_eq!(
            referenced_macros("$USER1$/check_tcp -H $HOSTADDRESS$ -p $ARG1$ -t 3 $$ $ARG1$ $USER1$"),
            args(&["USER1", "HOSTADDRESS", "ARG1"])
        );
        assert_eq!(referenced_macros("$SERVICESTATE:h:s$ 5$"), args(&["SERVICESTATE:h:s"]));
        assert!(referenced_macros("no macros").is_empty());
    }

    #[test]
    fn long_line_is_linear() {
        // Many macros and a big argument: no quadratic behaviour, no loss.
        let r = res(&[("USER1", "/u")]);
        let template = "$USER1$ $HOSTNAME$ $ARG1$ ".repeat(2000);
        let out = run(&template, &["a"], &r, &host_ctx());
        assert_eq!(out, "/u web1 a ".repeat(2000).trim_end());
    }
}
