//! How a receiver routes external commands (semantics reference, 1.5): pure, no I/O.
//!
//! A line is `[timestamp] COMMAND;arg;...` (the timestamp prefix is optional, the name is
//! case-insensitive). The receiver checks what it can without asking a scheduler: the line is
//! well formed, the command is one it knows, the argument count is right, and the host it names
//! is held by one of its schedulers. The numbers and the item itself (a service of that host, a
//! downtime id...) are the owning scheduler's to check; its answer is relayed.
//!
//! Where a command goes ([`Route`]): a command naming a host (its first argument) goes to the
//! scheduler part that holds the host (`direct_routing`); a command without a host (`DEL_*_DOWNTIME`,
//! `DEL_*_COMMENT`, by id) goes to every part, and is accepted when one of them accepts it.

use std::collections::HashMap;
use std::fmt;

/// Where a command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the part holding the host named by the first argument.
    Host,
    /// To every part (no host named).
    All,
}

/// A command the receiver knows: its argument count and its route. A command whose last
/// argument is free text takes the rest of the line, `;` included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub args: usize,
    pub text_last: bool,
    pub route: Route,
}

const fn host(name: &'static str, args: usize, text_last: bool) -> Spec {
    Spec {
        name,
        args,
        text_last,
        route: Route::Host,
    }
}

const fn all(name: &'static str, args: usize) -> Spec {
    Spec {
        name,
        args,
        text_last: false,
        route: Route::All,
    }
}

/// The commands routed (Nagios's arguments).
pub const SPECS: &[Spec] = &[
    // host;code;output / host;svc;code;output
    host("PROCESS_HOST_CHECK_RESULT", 3, true),
    host("PROCESS_SERVICE_CHECK_RESULT", 4, true),
    // host;sticky;notify;persistent;author;comment (+ svc)
    host("ACKNOWLEDGE_HOST_PROBLEM", 6, true),
    host("ACKNOWLEDGE_SVC_PROBLEM", 7, true),
    host("REMOVE_HOST_ACKNOWLEDGEMENT", 1, false),
    host("REMOVE_SVC_ACKNOWLEDGEMENT", 2, false),
    // host;start;end;fixed;trigger_id;duration;author;comment (+ svc)
    host("SCHEDULE_HOST_DOWNTIME", 8, true),
    host("SCHEDULE_SVC_DOWNTIME", 9, true),
    all("DEL_HOST_DOWNTIME", 1),
    all("DEL_SVC_DOWNTIME", 1),
    // host;check_time (+ svc)
    host("SCHEDULE_FORCED_HOST_CHECK", 2, false),
    host("SCHEDULE_FORCED_SVC_CHECK", 3, false),
    host("ENABLE_HOST_CHECK", 1, false),
    host("DISABLE_HOST_CHECK", 1, false),
    host("ENABLE_SVC_CHECK", 2, false),
    host("DISABLE_SVC_CHECK", 2, false),
    host("ENABLE_HOST_NOTIFICATIONS", 1, false),
    host("DISABLE_HOST_NOTIFICATIONS", 1, false),
    host("ENABLE_SVC_NOTIFICATIONS", 2, false),
    host("DISABLE_SVC_NOTIFICATIONS", 2, false),
    // host;persistent;author;comment (+ svc)
    host("ADD_HOST_COMMENT", 4, true),
    host("ADD_SVC_COMMENT", 5, true),
    all("DEL_HOST_COMMENT", 1),
    all("DEL_SVC_COMMENT", 1),
];

/// One line, checked and ready to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The line as received, trimmed (timestamp included): what the scheduler gets.
    pub line: String,
    /// The line without its timestamp prefix, as logged.
    pub text: String,
    pub spec: Spec,
    /// The host named, for [`Route::Host`].
    pub host: Option<String>,
}

/// Why a command was not routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not a command line (empty, bad timestamp, no command name).
    Malformed(String),
    UnknownCommand(String),
    WrongArgumentCount {
        command: &'static str,
        expected: usize,
        got: usize,
    },
    /// No scheduler of this receiver holds the host.
    UnknownHost(String),
    /// This receiver has no scheduler to send anything to.
    NoScheduler,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Malformed(m) => write!(f, "malformed command: {m}"),
            RouteError::UnknownCommand(c) => write!(f, "unknown command '{c}'"),
            RouteError::WrongArgumentCount { command, expected, got } => {
                write!(f, "{command} takes {expected} arguments, got {got}")
            }
            RouteError::UnknownHost(h) => write!(f, "unknown host '{h}'"),
            RouteError::NoScheduler => write!(f, "no scheduler to send it to (no configuration yet)"),
        }
    }
}

impl std::error::Error for RouteError {}

/// Checks one line: form, command, argument count.
pub fn parse(line: &str) -> Result<Parsed, RouteError> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Err(RouteError::Malformed("empty line".into()));
    }
    let text = match trimmed.strip_prefix('[') {
        Some(after) => {
            let (ts, rest) = after
                .split_once(']')
                .ok_or_else(|| RouteError::Malformed(format!("no ']' after the timestamp in '{trimmed}'")))?;
            let ok = ts.trim().parse::<f64>().is_ok_and(|t| t.is_finite() && t >= 0.0);
            if !ok {
                return Err(RouteError::Malformed(format!("bad timestamp '[{ts}]'")));
            }
            rest.trim_start()
        }
        None => trimmed,
    };
    let (name, args_text) = match text.split_once(';') {
        Some((n, a)) => (n, Some(a)),
        None => (text, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(RouteError::Malformed(format!("no command name in '{text}'")));
    }
    let upper = name.to_ascii_uppercase();
    let spec = *SPECS
        .iter()
        .find(|s| s.name == upper)
        .ok_or_else(|| RouteError::UnknownCommand(name.to_string()))?;
    let values: Vec<&str> = match args_text {
        None => Vec::new(),
        Some(a) if spec.text_last => a.splitn(spec.args, ';').collect(),
        Some(a) => a.split(';').collect(),
    };
    if values.len() != spec.args {
        return Err(RouteError::WrongArgumentCount {
            command: spec.name,
            expected: spec.args,
            got: values.len(),
        });
    }
    let host = match spec.route {
        Route::Host => {
            let h = values[0].trim();
            if h.is_empty() {
                return Err(RouteError::Malformed(format!("{}: empty host name", spec.name)));
            }
            Some(h.to_string())
        }
        Route::All => None,
    };
    Ok(Parsed {
        line: trimmed.to_string(),
        text: text.to_string(),
        spec,
        host,
    })
}

/// The parts a parsed command goes to, given which part holds which host and the parts known.
pub fn destinations(p: &Parsed, hosts: &HashMap<String, u32>, parts: &[u32]) -> Result<Vec<u32>, RouteError> {
    if parts.is_empty() {
        return Err(RouteError::NoScheduler);
    }
    match (&p.spec.route, &p.host) {
        (Route::Host, Some(h)) => match hosts.get(h) {
            Some(part) if parts.contains(part) => Ok(vec![*part]),
            _ => Err(RouteError::UnknownHost(h.clone())),
        },
        _ => Ok(parts.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> HashMap<String, u32> {
        HashMap::from([("web-1".to_string(), 0), ("db-1".to_string(), 1)])
    }

    #[test]
    fn a_timestamp_prefix_is_optional() {
        let a = parse("[1700000000] PROCESS_SERVICE_CHECK_RESULT;web-1;http;2;down; really").unwrap();
        assert_eq!(a.line, "[1700000000] PROCESS_SERVICE_CHECK_RESULT;web-1;http;2;down; really");
        assert_eq!(a.text, "PROCESS_SERVICE_CHECK_RESULT;web-1;http;2;down; really");
        assert_eq!(a.host.as_deref(), Some("web-1"));
        let b = parse("  process_host_check_result;db-1;0;fine\n").unwrap();
        assert_eq!(b.spec.name, "PROCESS_HOST_CHECK_RESULT");
        assert_eq!(b.line, "process_host_check_result;db-1;0;fine");
        assert_eq!(b.host.as_deref(), Some("db-1"));
    }

    #[test]
    fn malformed_lines_are_refused() {
        for l in [
            "",
            "   ",
            "[12 PROCESS_HOST_CHECK_RESULT;h;0;x",
            "[abc] PROCESS_HOST_CHECK_RESULT;h;0;x",
            "[-1] X;y",
            ";h;0",
        ] {
            assert!(matches!(parse(l), Err(RouteError::Malformed(_))), "{l:?}: {:?}", parse(l));
        }
        assert!(matches!(parse("NOT A COMMAND"), Err(RouteError::Malformed(_))));
        assert!(matches!(
            parse("PROCESS_HOST_CHECK_RESULT;;0;x"),
            Err(RouteError::Malformed(m)) if m.contains("empty host")
        ));
    }

    #[test]
    fn unknown_commands_and_wrong_counts_are_refused() {
        assert_eq!(parse("FROBNICATE;web-1"), Err(RouteError::UnknownCommand("FROBNICATE".into())));
        assert_eq!(
            parse("PROCESS_SERVICE_CHECK_RESULT;web-1;http;2"),
            Err(RouteError::WrongArgumentCount {
                command: "PROCESS_SERVICE_CHECK_RESULT",
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            parse("ENABLE_SVC_CHECK;web-1;http;extra"),
            Err(RouteError::WrongArgumentCount {
                command: "ENABLE_SVC_CHECK",
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            parse("REMOVE_HOST_ACKNOWLEDGEMENT").unwrap_err().to_string(),
            "REMOVE_HOST_ACKNOWLEDGEMENT takes 1 arguments, got 0"
        );
        // Free text keeps its semicolons.
        assert!(parse("ACKNOWLEDGE_HOST_PROBLEM;web-1;1;1;0;admin;on it; really").is_ok());
    }

    #[test]
    fn every_issue_command_is_known() {
        for name in [
            "PROCESS_HOST_CHECK_RESULT",
            "PROCESS_SERVICE_CHECK_RESULT",
            "ACKNOWLEDGE_HOST_PROBLEM",
            "ACKNOWLEDGE_SVC_PROBLEM",
            "REMOVE_HOST_ACKNOWLEDGEMENT",
            "REMOVE_SVC_ACKNOWLEDGEMENT",
            "SCHEDULE_HOST_DOWNTIME",
            "SCHEDULE_SVC_DOWNTIME",
            "DEL_HOST_DOWNTIME",
            "DEL_SVC_DOWNTIME",
            "SCHEDULE_FORCED_HOST_CHECK",
            "SCHEDULE_FORCED_SVC_CHECK",
            "ENABLE_HOST_CHECK",
            "DISABLE_SVC_CHECK",
            "ENABLE_SVC_NOTIFICATIONS",
            "DISABLE_HOST_NOTIFICATIONS",
            "ADD_HOST_COMMENT",
            "ADD_SVC_COMMENT",
            "DEL_HOST_COMMENT",
            "DEL_SVC_COMMENT",
        ] {
            assert!(SPECS.iter().any(|s| s.name == name), "{name}");
        }
    }

    #[test]
    fn a_host_command_goes_to_the_part_holding_the_host() {
        let m = map();
        let p = parse("PROCESS_HOST_CHECK_RESULT;db-1;1;slow").unwrap();
        assert_eq!(destinations(&p, &m, &[0, 1]), Ok(vec![1]));
        let p = parse("PROCESS_HOST_CHECK_RESULT;nowhere;1;slow").unwrap();
        assert_eq!(destinations(&p, &m, &[0, 1]), Err(RouteError::UnknownHost("nowhere".into())));
        // A host of a part this receiver no longer serves is unknown here.
        let p = parse("PROCESS_HOST_CHECK_RESULT;db-1;1;slow").unwrap();
        assert_eq!(destinations(&p, &m, &[0]), Err(RouteError::UnknownHost("db-1".into())));
    }

    #[test]
    fn a_command_without_host_goes_everywhere() {
        let p = parse("DEL_SVC_DOWNTIME;1700000000123456").unwrap();
        assert_eq!(p.host, None);
        assert_eq!(destinations(&p, &map(), &[0, 1]), Ok(vec![0, 1]));
        assert_eq!(destinations(&p, &map(), &[]), Err(RouteError::NoScheduler));
    }
}
