//! External commands (semantics §1.5, §3.4, §3.9): Nagios lines `[timestamp] COMMAND;arg;...`
//! parsed ([`parse`]) and applied to the part held ([`Engine::run_external_command`]).
//!
//! Pure like the rest of the scheduler: "now" is an argument. A command either applies entirely
//! or is refused with a [`CommandError`] and changes nothing. An applied command marks the items
//! it changed for retention and emits a `log` brok `EXTERNAL COMMAND: <line>` (Shinken's log
//! line, without the timestamp).
//!
//! Supported: `PROCESS_{SERVICE,HOST}_CHECK_RESULT`, `ACKNOWLEDGE_{SVC,HOST}_PROBLEM`,
//! `REMOVE_{SVC,HOST}_ACKNOWLEDGEMENT`, `SCHEDULE_{SVC,HOST}_DOWNTIME`, `DEL_{SVC,HOST}_DOWNTIME`,
//! `{ENABLE,DISABLE}_{SVC,HOST}_CHECK`, `SCHEDULE_FORCED_{SVC,HOST}_CHECK`.
//!
//! Simplifications, said once: a flexible or triggered downtime is treated as a fixed one over
//! `[start, end)` (its `duration` and `trigger_id` are kept, not used); downtime comments print
//! times in UTC. Acknowledgements with `notify` raise an ACKNOWLEDGEMENT notification; downtimes
//! raise DOWNTIMESTART, DOWNTIMEEND and DOWNTIMECANCELLED (Shinken 2.4 has the last one commented
//! out; the semantics reference and Nagios send it).

use super::engine::{Engine, Events};
use super::notify::NotificationType;
use super::state::{Acknowledgement, Comment, Downtime, ItemKind, modattr};
use std::fmt;

/// One parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalCommand {
    /// The `[timestamp]` prefix, if any (the command's time; "now" without it).
    pub time: Option<f64>,
    /// The line without the timestamp prefix, as logged.
    pub line: String,
    pub command: Command,
}

/// The host or service a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host(String),
    Service(String, String),
}

impl Target {
    pub fn host(&self) -> &str {
        match self {
            Target::Host(h) | Target::Service(h, _) => h,
        }
    }

    pub fn service(&self) -> Option<&str> {
        match self {
            Target::Host(_) => None,
            Target::Service(_, s) => Some(s),
        }
    }
}

/// What a command does.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `PROCESS_SERVICE_CHECK_RESULT`, `PROCESS_HOST_CHECK_RESULT`.
    CheckResult { target: Target, code: u8, output: String },
    /// `ACKNOWLEDGE_SVC_PROBLEM`, `ACKNOWLEDGE_HOST_PROBLEM` (sticky: the argument was 2).
    Acknowledge {
        target: Target,
        sticky: bool,
        notify: bool,
        persistent: bool,
        author: String,
        comment: String,
    },
    /// `REMOVE_SVC_ACKNOWLEDGEMENT`, `REMOVE_HOST_ACKNOWLEDGEMENT`.
    RemoveAcknowledgement { target: Target },
    /// `SCHEDULE_SVC_DOWNTIME`, `SCHEDULE_HOST_DOWNTIME`.
    ScheduleDowntime {
        target: Target,
        start: f64,
        end: f64,
        fixed: bool,
        trigger_id: u64,
        duration: f64,
        author: String,
        comment: String,
    },
    /// `DEL_SVC_DOWNTIME`, `DEL_HOST_DOWNTIME`: by downtime id, among services or hosts.
    DeleteDowntime { kind: ItemKind, id: u64 },
    /// `ENABLE_SVC_CHECK`, `DISABLE_SVC_CHECK`, `ENABLE_HOST_CHECK`, `DISABLE_HOST_CHECK`.
    ActiveChecks { target: Target, enabled: bool },
    /// `SCHEDULE_FORCED_SVC_CHECK`, `SCHEDULE_FORCED_HOST_CHECK`.
    ForcedCheck { target: Target, time: f64 },
    /// `ENABLE_SVC_NOTIFICATIONS`, `DISABLE_SVC_NOTIFICATIONS`, `ENABLE_HOST_NOTIFICATIONS`,
    /// `DISABLE_HOST_NOTIFICATIONS`.
    Notifications { target: Target, enabled: bool },
    /// `ADD_SVC_COMMENT`, `ADD_HOST_COMMENT`: a user comment (entry type 1).
    AddComment {
        target: Target,
        persistent: bool,
        author: String,
        comment: String,
    },
    /// `DEL_SVC_COMMENT`, `DEL_HOST_COMMENT`: by comment id, among services or hosts.
    DeleteComment { kind: ItemKind, id: u64 },
}

/// Why a command was refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command line at all (empty, bad timestamp, no command name).
    Malformed(String),
    UnknownCommand(String),
    WrongArgumentCount {
        command: String,
        expected: usize,
        got: usize,
    },
    BadNumber {
        command: String,
        argument: &'static str,
        value: String,
    },
    /// Numbers that parse but make no sense together (a downtime ending before it starts).
    BadArgument {
        command: String,
        message: String,
    },
    UnknownHost(String),
    UnknownService {
        host: String,
        service: String,
    },
    UnknownDowntime(u64),
    /// Well formed and about a known item, but not applicable now (acknowledging an OK service,
    /// a passive result while passive checks are off, a result older than the last check).
    Refused(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Malformed(m) => write!(f, "malformed command: {m}"),
            CommandError::UnknownCommand(c) => write!(f, "unknown command '{c}'"),
            CommandError::WrongArgumentCount { command, expected, got } => {
                write!(f, "{command} takes {expected} arguments, got {got}")
            }
            CommandError::BadNumber { command, argument, value } => {
                write!(f, "{command}: {argument} is not a valid number: '{value}'")
            }
            CommandError::BadArgument { command, message } => write!(f, "{command}: {message}"),
            CommandError::UnknownHost(h) => write!(f, "unknown host '{h}'"),
            CommandError::UnknownService { host, service } => write!(f, "unknown service '{service}' on host '{host}'"),
            CommandError::UnknownDowntime(id) => write!(f, "unknown downtime id {id}"),
            CommandError::Refused(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for CommandError {}

/// A command's arguments, in order; the last one takes the rest of the line (`;` included) when
/// it is free text.
struct Spec {
    name: &'static str,
    args: &'static [&'static str],
    text_last: bool,
}

const SVC_ACK: &[&str] = &[
    "host_name",
    "service_description",
    "sticky",
    "notify",
    "persistent",
    "author",
    "comment",
];
const HOST_ACK: &[&str] = &["host_name", "sticky", "notify", "persistent", "author", "comment"];
const SVC_DT: &[&str] = &[
    "host_name",
    "service_description",
    "start_time",
    "end_time",
    "fixed",
    "trigger_id",
    "duration",
    "author",
    "comment",
];
const HOST_DT: &[&str] = &[
    "host_name",
    "start_time",
    "end_time",
    "fixed",
    "trigger_id",
    "duration",
    "author",
    "comment",
];
const SVC: &[&str] = &["host_name", "service_description"];
const HOST: &[&str] = &["host_name"];

const SPECS: &[Spec] = &[
    Spec {
        name: "PROCESS_SERVICE_CHECK_RESULT",
        args: &["host_name", "service_description", "return_code", "plugin_output"],
        text_last: true,
    },
    Spec {
        name: "PROCESS_HOST_CHECK_RESULT",
        args: &["host_name", "return_code", "plugin_output"],
        text_last: true,
    },
    Spec {
        name: "ACKNOWLEDGE_SVC_PROBLEM",
        args: SVC_ACK,
        text_last: true,
    },
    Spec {
        name: "ACKNOWLEDGE_HOST_PROBLEM",
        args: HOST_ACK,
        text_last: true,
    },
    Spec {
        name: "REMOVE_SVC_ACKNOWLEDGEMENT",
        args: SVC,
        text_last: false,
    },
    Spec {
        name: "REMOVE_HOST_ACKNOWLEDGEMENT",
        args: HOST,
        text_last: false,
    },
    Spec {
        name: "SCHEDULE_SVC_DOWNTIME",
        args: SVC_DT,
        text_last: true,
    },
    Spec {
        name: "SCHEDULE_HOST_DOWNTIME",
        args: HOST_DT,
        text_last: true,
    },
    Spec {
        name: "DEL_SVC_DOWNTIME",
        args: &["downtime_id"],
        text_last: false,
    },
    Spec {
        name: "DEL_HOST_DOWNTIME",
        args: &["downtime_id"],
        text_last: false,
    },
    Spec {
        name: "ENABLE_SVC_CHECK",
        args: SVC,
        text_last: false,
    },
    Spec {
        name: "DISABLE_SVC_CHECK",
        args: SVC,
        text_last: false,
    },
    Spec {
        name: "ENABLE_HOST_CHECK",
        args: HOST,
        text_last: false,
    },
    Spec {
        name: "DISABLE_HOST_CHECK",
        args: HOST,
        text_last: false,
    },
    Spec {
        name: "SCHEDULE_FORCED_SVC_CHECK",
        args: &["host_name", "service_description", "check_time"],
        text_last: false,
    },
    Spec {
        name: "SCHEDULE_FORCED_HOST_CHECK",
        args: &["host_name", "check_time"],
        text_last: false,
    },
    Spec {
        name: "ENABLE_SVC_NOTIFICATIONS",
        args: SVC,
        text_last: false,
    },
    Spec {
        name: "DISABLE_SVC_NOTIFICATIONS",
        args: SVC,
        text_last: false,
    },
    Spec {
        name: "ENABLE_HOST_NOTIFICATIONS",
        args: HOST,
        text_last: false,
    },
    Spec {
        name: "DISABLE_HOST_NOTIFICATIONS",
        args: HOST,
        text_last: false,
    },
    Spec {
        name: "ADD_SVC_COMMENT",
        args: &["host_name", "service_description", "persistent", "author", "comment"],
        text_last: true,
    },
    Spec {
        name: "ADD_HOST_COMMENT",
        args: &["host_name", "persistent", "author", "comment"],
        text_last: true,
    },
    Spec {
        name: "DEL_SVC_COMMENT",
        args: &["comment_id"],
        text_last: false,
    },
    Spec {
        name: "DEL_HOST_COMMENT",
        args: &["comment_id"],
        text_last: false,
    },
];

/// The arguments of one command, read in order with the right parser.
struct Args<'a> {
    command: &'static str,
    names: &'static [&'static str],
    values: Vec<&'a str>,
    next: usize,
}

impl<'a> Args<'a> {
    fn text(&mut self) -> String {
        let v = self.values[self.next];
        self.next += 1;
        v.to_string()
    }

    fn raw(&mut self) -> (&'static str, &'a str) {
        let r = (self.names[self.next], self.values[self.next]);
        self.next += 1;
        r
    }

    fn bad(&self, argument: &'static str, value: &str) -> CommandError {
        CommandError::BadNumber {
            command: self.command.to_string(),
            argument,
            value: value.to_string(),
        }
    }

    fn int<T: std::str::FromStr>(&mut self) -> Result<T, CommandError> {
        let (name, v) = self.raw();
        v.trim().parse::<T>().map_err(|_| self.bad(name, v))
    }

    /// A time or a duration: a finite, non-negative number of seconds.
    fn seconds(&mut self) -> Result<f64, CommandError> {
        let (name, v) = self.raw();
        match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(self.bad(name, v)),
        }
    }
}

/// Parses one line. The timestamp prefix is optional; the command name is case-insensitive.
pub fn parse(line: &str) -> Result<ExternalCommand, CommandError> {
    let text = line.trim();
    if text.is_empty() {
        return Err(CommandError::Malformed("empty line".into()));
    }
    let (time, rest) = match text.strip_prefix('[') {
        Some(after) => {
            let (ts, rest) = after
                .split_once(']')
                .ok_or_else(|| CommandError::Malformed(format!("no ']' after the timestamp in '{text}'")))?;
            let t = ts
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| CommandError::Malformed(format!("bad timestamp '[{ts}]'")))?;
            (Some(t), rest.trim_start())
        }
        None => (None, text),
    };
    let (name, args_text) = match rest.split_once(';') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(CommandError::Malformed(format!("no command name in '{rest}'")));
    }
    let upper = name.to_ascii_uppercase();
    let spec = SPECS
        .iter()
        .find(|s| s.name == upper)
        .ok_or_else(|| CommandError::UnknownCommand(name.to_string()))?;
    let n = spec.args.len();
    let values: Vec<&str> = match args_text {
        None => Vec::new(),
        Some(a) if spec.text_last => a.splitn(n, ';').collect(),
        Some(a) => a.split(';').collect(),
    };
    if values.len() != n {
        return Err(CommandError::WrongArgumentCount {
            command: spec.name.to_string(),
            expected: n,
            got: values.len(),
        });
    }
    let mut a = Args {
        command: spec.name,
        names: spec.args,
        values,
        next: 0,
    };
    let svc = spec.name.contains("_SVC_") || spec.name.contains("_SERVICE_");
    let target = |a: &mut Args| {
        let host = a.text();
        if svc { Target::Service(host, a.text()) } else { Target::Host(host) }
    };
    let command = match spec.name {
        "PROCESS_SERVICE_CHECK_RESULT" | "PROCESS_HOST_CHECK_RESULT" => {
            let target = target(&mut a);
            let code = a.int::<u8>()?;
            Command::CheckResult {
                target,
                code,
                output: a.text(),
            }
        }
        "ACKNOWLEDGE_SVC_PROBLEM" | "ACKNOWLEDGE_HOST_PROBLEM" => {
            let target = target(&mut a);
            let sticky = a.int::<u32>()? == 2;
            let notify = a.int::<u32>()? != 0;
            let persistent = a.int::<u32>()? != 0;
            Command::Acknowledge {
                target,
                sticky,
                notify,
                persistent,
                author: a.text(),
                comment: a.text(),
            }
        }
        "REMOVE_SVC_ACKNOWLEDGEMENT" | "REMOVE_HOST_ACKNOWLEDGEMENT" => Command::RemoveAcknowledgement { target: target(&mut a) },
        "SCHEDULE_SVC_DOWNTIME" | "SCHEDULE_HOST_DOWNTIME" => {
            let target = target(&mut a);
            let start = a.seconds()?;
            let end = a.seconds()?;
            let fixed = a.int::<u32>()? != 0;
            let trigger_id = a.int::<u64>()?;
            let duration = a.seconds()?;
            if end <= start {
                return Err(CommandError::BadArgument {
                    command: spec.name.to_string(),
                    message: format!("the downtime ends ({end}) before it starts ({start})"),
                });
            }
            Command::ScheduleDowntime {
                target,
                start,
                end,
                fixed,
                trigger_id,
                duration,
                author: a.text(),
                comment: a.text(),
            }
        }
        "DEL_SVC_DOWNTIME" | "DEL_HOST_DOWNTIME" => Command::DeleteDowntime {
            kind: if svc { ItemKind::Service } else { ItemKind::Host },
            id: a.int::<u64>()?,
        },
        "ENABLE_SVC_CHECK" | "ENABLE_HOST_CHECK" | "DISABLE_SVC_CHECK" | "DISABLE_HOST_CHECK" => Command::ActiveChecks {
            target: target(&mut a),
            enabled: spec.name.starts_with("ENABLE"),
        },
        "ENABLE_SVC_NOTIFICATIONS" | "ENABLE_HOST_NOTIFICATIONS" | "DISABLE_SVC_NOTIFICATIONS" | "DISABLE_HOST_NOTIFICATIONS" => {
            Command::Notifications {
                target: target(&mut a),
                enabled: spec.name.starts_with("ENABLE"),
            }
        }
        "ADD_SVC_COMMENT" | "ADD_HOST_COMMENT" => {
            let target = target(&mut a);
            let persistent = a.int::<u32>()? != 0;
            Command::AddComment {
                target,
                persistent,
                author: a.text(),
                comment: a.text(),
            }
        }
        "DEL_SVC_COMMENT" | "DEL_HOST_COMMENT" => Command::DeleteComment {
            kind: if svc { ItemKind::Service } else { ItemKind::Host },
            id: a.int::<u64>()?,
        },
        _ => {
            // SCHEDULE_FORCED_SVC_CHECK, SCHEDULE_FORCED_HOST_CHECK
            let target = target(&mut a);
            Command::ForcedCheck {
                target,
                time: a.seconds()?,
            }
        }
    };
    Ok(ExternalCommand {
        time,
        line: rest.to_string(),
        command,
    })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix seconds.
fn utc(t: f64) -> String {
    let secs = t.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

impl Engine {
    /// Parses and applies one line.
    pub fn run_external_line(&mut self, line: &str, now: f64) -> Result<Events, CommandError> {
        let cmd = parse(line)?;
        self.run_external_command(&cmd, now)
    }

    /// The item a command targets.
    fn target_item(&self, target: &Target) -> Result<u32, CommandError> {
        let host = target.host();
        let h = self.hosts_by_name.get(host).copied();
        match target.service() {
            None => h.ok_or_else(|| CommandError::UnknownHost(host.to_string())),
            Some(s) => {
                h.ok_or_else(|| CommandError::UnknownHost(host.to_string()))?;
                self.services_by_name
                    .get(&(host.to_string(), s.to_string()))
                    .copied()
                    .ok_or_else(|| CommandError::UnknownService {
                        host: host.to_string(),
                        service: s.to_string(),
                    })
            }
        }
    }

    /// A new downtime or comment id: the microsecond timestamp, strictly increasing.
    fn next_ext_id(&mut self, now: f64) -> u64 {
        let us = (now.max(0.0) * 1e6) as u64;
        self.last_ext_id = us.max(self.last_ext_id + 1);
        self.last_ext_id
    }

    /// A status brok for item `i`, and the item marked for retention.
    fn changed(&mut self, i: u32) {
        self.mark_dirty(i);
        let kind = if self.items[i as usize].kind == ItemKind::Host {
            "update_host_status"
        } else {
            "update_service_status"
        };
        let data = self.status_json(i);
        self.push_brok(kind, data);
    }

    /// Applies a parsed command. On error nothing changed.
    pub fn run_external_command(&mut self, cmd: &ExternalCommand, now: f64) -> Result<Events, CommandError> {
        let mut events = Events::default();
        let time = cmd.time.unwrap_or(now);
        match &cmd.command {
            Command::CheckResult { target, code, output } => {
                let i = self.target_item(target)?;
                let it = &self.items[i as usize];
                let global = if it.kind == ItemKind::Host {
                    self.settings.accept_passive_host_checks
                } else {
                    self.settings.accept_passive_service_checks
                };
                if !global || !it.passive_checks_enabled {
                    return Err(CommandError::Refused("passive checks are disabled".into()));
                }
                if time < it.state.last_check {
                    return Err(CommandError::Refused(format!(
                        "ignored: the result ({time}) is older than the last check ({})",
                        it.state.last_check
                    )));
                }
                self.log_command(cmd, &mut events);
                let ev = self
                    .passive_result(target.host(), target.service(), *code, output, time, now)
                    .map_err(CommandError::Refused)?;
                events.log.extend(ev.log);
            }
            Command::Acknowledge {
                target,
                sticky,
                notify,
                persistent,
                author,
                comment,
            } => {
                let i = self.target_item(target)?;
                let st = &self.items[i as usize].state;
                if st.state.is_ok_up() || st.state == super::state::State::Pending {
                    return Err(CommandError::Refused(format!(
                        "{} is {}: there is no problem to acknowledge",
                        self.item_key(i),
                        st.state.as_str()
                    )));
                }
                self.log_command(cmd, &mut events);
                if *notify {
                    // Created before the acknowledgement is set, as Shinken does.
                    self.raise_notification(i, NotificationType::Acknowledgement, now, &mut events);
                }
                let id = self.next_ext_id(now);
                let st = &mut self.items[i as usize].state;
                st.problem_has_been_acknowledged = true;
                st.acknowledgement_sticky = *sticky;
                st.acknowledgement = Some(Box::new(Acknowledgement {
                    author: author.clone(),
                    comment: comment.clone(),
                    entry_time: now,
                    sticky: *sticky,
                    notify: *notify,
                    persistent: *persistent,
                    end_time: 0.0,
                }));
                // A new acknowledgement replaces the previous one and its comment.
                st.comments.retain(|c| c.entry_type != 4);
                st.comments.push(Comment {
                    id,
                    entry_time: now,
                    author: author.clone(),
                    text: comment.clone(),
                    persistent: *persistent,
                    entry_type: 4,
                    source: 1,
                    expires: false,
                    expire_time: 0.0,
                });
                self.changed(i);
            }
            Command::RemoveAcknowledgement { target } => {
                let i = self.target_item(target)?;
                self.log_command(cmd, &mut events);
                let st = &mut self.items[i as usize].state;
                if st.problem_has_been_acknowledged || st.acknowledgement.is_some() {
                    st.problem_has_been_acknowledged = false;
                    st.acknowledgement_sticky = false;
                    st.acknowledgement = None;
                    st.comments.retain(|c| c.entry_type != 4 || c.persistent);
                    self.changed(i);
                }
            }
            Command::ScheduleDowntime {
                target,
                start,
                end,
                fixed,
                trigger_id,
                duration,
                author,
                comment,
            } => {
                let i = self.target_item(target)?;
                self.log_command(cmd, &mut events);
                let id = self.next_ext_id(now);
                let comment_id = self.next_ext_id(now);
                let what = if target.service().is_some() { "service" } else { "host" };
                let auto = format!(
                    "This {what} has been scheduled for fixed downtime from {} to {}. Notifications for the {what} will \
                     not be sent out during that time period.",
                    utc(*start),
                    utc(*end)
                );
                let st = &mut self.items[i as usize].state;
                st.downtimes.push(Downtime {
                    id,
                    entry_time: now,
                    start_time: *start,
                    end_time: *end,
                    fixed: *fixed,
                    duration: *duration,
                    trigger_id: *trigger_id,
                    author: author.clone(),
                    comment: comment.clone(),
                    is_in_effect: false,
                    has_been_triggered: false,
                    can_be_deleted: false,
                    comment_id,
                });
                st.comments.push(Comment {
                    id: comment_id,
                    entry_time: now,
                    author: "(Nagios Process)".into(),
                    text: auto,
                    persistent: false,
                    entry_type: 2,
                    source: 0,
                    expires: false,
                    expire_time: 0.0,
                });
                self.changed(i);
                self.update_item_downtimes(i, now, &mut events);
            }
            Command::DeleteDowntime { kind, id } => {
                let i = (0..self.items.len() as u32)
                    .find(|&i| {
                        let it = &self.items[i as usize];
                        it.kind == *kind && it.state.downtimes.iter().any(|d| d.id == *id)
                    })
                    .ok_or(CommandError::UnknownDowntime(*id))?;
                self.log_command(cmd, &mut events);
                let st = &mut self.items[i as usize].state;
                let before = st.scheduled_downtime_depth;
                if let Some(pos) = st.downtimes.iter().position(|d| d.id == *id) {
                    let d = st.downtimes.remove(pos);
                    st.comments.retain(|c| c.id != d.comment_id);
                }
                st.scheduled_downtime_depth = st.downtimes.iter().filter(|d| d.is_in_effect).count() as u32;
                if before > 0 {
                    // The next result re-notifies a problem that is still there.
                    st.in_scheduled_downtime_during_last_check = true;
                }
                if before > 0 && st.scheduled_downtime_depth == 0 {
                    let line = self.downtime_line(i, "CANCELLED");
                    self.push_brok("log", serde_json::json!({ "log": line }));
                    events.log.push(line);
                    self.raise_notification(i, NotificationType::DowntimeCancelled, now, &mut events);
                }
                self.changed(i);
            }
            Command::ActiveChecks { target, enabled } => {
                let i = self.target_item(target)?;
                self.log_command(cmd, &mut events);
                let it = &mut self.items[i as usize];
                it.active_checks_enabled = *enabled;
                it.state.modified_attributes |= modattr::ACTIVE_CHECKS_ENABLED;
                it.state.modified.get_or_insert_with(Default::default).active_checks_enabled = Some(*enabled);
                // The planned check is dropped (its queue entry becomes stale); enabling plans one.
                it.queued = false;
                if *enabled {
                    self.schedule(i, now, false);
                }
                self.changed(i);
            }
            Command::ForcedCheck { target, time } => {
                let i = self.target_item(target)?;
                self.log_command(cmd, &mut events);
                // Forced: ignores disabled active checks; a time in the past is due now.
                self.schedule(i, *time, true);
                self.changed(i);
            }
            Command::Notifications { target, enabled } => {
                let i = self.target_item(target)?;
                self.log_command(cmd, &mut events);
                let it = &mut self.items[i as usize];
                it.notif.notifications_enabled = *enabled;
                it.state.modified_attributes |= modattr::NOTIFICATIONS_ENABLED;
                it.state.modified.get_or_insert_with(Default::default).notifications_enabled = Some(*enabled);
                self.changed(i);
            }
            Command::AddComment {
                target,
                persistent,
                author,
                comment,
            } => {
                let i = self.target_item(target)?;
                self.log_command(cmd, &mut events);
                let id = self.next_ext_id(now);
                self.items[i as usize].state.comments.push(Comment {
                    id,
                    entry_time: now,
                    author: author.clone(),
                    text: comment.clone(),
                    persistent: *persistent,
                    entry_type: 1,
                    source: 1,
                    expires: false,
                    expire_time: 0.0,
                });
                self.changed(i);
            }
            Command::DeleteComment { kind, id } => {
                let i = (0..self.items.len() as u32)
                    .find(|&i| {
                        let it = &self.items[i as usize];
                        it.kind == *kind && it.state.comments.iter().any(|c| c.id == *id)
                    })
                    .ok_or_else(|| CommandError::Refused(format!("no comment with id {id}")))?;
                self.log_command(cmd, &mut events);
                self.items[i as usize].state.comments.retain(|c| c.id != *id);
                self.changed(i);
            }
        }
        Ok(events)
    }

    fn log_command(&mut self, cmd: &ExternalCommand, events: &mut Events) {
        let line = format!("EXTERNAL COMMAND: {}", cmd.line);
        self.push_brok("log", serde_json::json!({ "log": line }));
        events.log.push(line);
    }

    fn downtime_line(&self, i: u32, what: &str) -> String {
        let (h, s) = self.names(i);
        let text = match (what, &s) {
            ("STARTED", Some(_)) => "Service has entered a period of scheduled downtime",
            ("STARTED", None) => "Host has entered a period of scheduled downtime",
            ("STOPPED", Some(_)) => "Service has exited from a period of scheduled downtime",
            ("STOPPED", None) => "Host has exited from a period of scheduled downtime",
            (_, Some(_)) => "Scheduled downtime for service has been cancelled.",
            (_, None) => "Scheduled downtime for host has been cancelled.",
        };
        match s {
            Some(s) => format!("SERVICE DOWNTIME ALERT: {h};{s};{what}; {text}"),
            None => format!("HOST DOWNTIME ALERT: {h};{what}; {text}"),
        }
    }

    /// Starts the downtimes of item `i` whose window opened, ends (and removes, with their
    /// comments) those whose window closed; logs STARTED / STOPPED when the item enters or leaves
    /// its downtime.
    fn update_item_downtimes(&mut self, i: u32, now: f64, events: &mut Events) {
        let st = &mut self.items[i as usize].state;
        let before = st.scheduled_downtime_depth;
        let mut changed = false;
        let mut gone = Vec::new();
        st.downtimes.retain_mut(|d| {
            if now >= d.end_time {
                gone.push(d.comment_id);
                changed = true;
                return false;
            }
            if !d.is_in_effect && d.start_time <= now {
                d.is_in_effect = true;
                d.has_been_triggered = true;
                changed = true;
            }
            true
        });
        if !gone.is_empty() {
            st.comments.retain(|c| !gone.contains(&c.id));
        }
        st.scheduled_downtime_depth = st.downtimes.iter().filter(|d| d.is_in_effect).count() as u32;
        let after = st.scheduled_downtime_depth;
        if after < before {
            // A downtime ended: the next result re-notifies a problem that is still there.
            st.in_scheduled_downtime_during_last_check = true;
        }
        if !changed && before == after {
            return;
        }
        let edge = match (before, after) {
            (0, a) if a > 0 => Some("STARTED"),
            (b, 0) if b > 0 => Some("STOPPED"),
            _ => None,
        };
        if let Some(what) = edge {
            let line = self.downtime_line(i, what);
            self.push_brok("log", serde_json::json!({ "log": line }));
            events.log.push(line);
            let ty = if what == "STARTED" {
                NotificationType::DowntimeStart
            } else {
                NotificationType::DowntimeEnd
            };
            self.raise_notification(i, ty, now, events);
        }
        self.changed(i);
    }

    /// Every item's downtimes (from [`Engine::tick`]).
    pub(super) fn update_downtimes(&mut self, now: f64, events: &mut Events) {
        for i in 0..self.items.len() as u32 {
            if !self.items[i as usize].state.downtimes.is_empty() || self.items[i as usize].state.scheduled_downtime_depth > 0 {
                self.update_item_downtimes(i, now, events);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::GetChecks;
    use crate::scheduler::state::State;

    const T: f64 = 1_700_000_000.0;

    const CFG: &str = "
interval_length=1
max_service_check_spread=1
max_host_check_spread=1
define command {
    command_name check_dummy
    command_line /usr/lib/nagios/plugins/check_dummy $ARG1$
}
define host {
    host_name web
    check_command check_dummy!0
    check_interval 60
    max_check_attempts 1
}
define service {
    host_name web
    service_description HTTP
    check_command check_dummy!0
    check_interval 60
    retry_interval 10
    max_check_attempts 3
}
define service {
    host_name web
    service_description Passive
    check_command check_dummy!0
    check_interval 60
    retry_interval 10
    passive_checks_enabled 0
}
";

    fn engine() -> Engine {
        let cfg = shinken_config::load::from_part_text(CFG);
        assert!(!cfg.has_errors(), "{:?}", cfg.diag.problems());
        let mut e = Engine::new("sched", 0, 1, cfg, T, 42, None);
        e.get_broks("broker");
        e
    }

    fn ok(e: &mut Engine, line: &str, now: f64) -> Events {
        e.run_external_line(line, now).unwrap_or_else(|err| panic!("{line}: {err}"))
    }

    fn err(e: &mut Engine, line: &str) -> CommandError {
        e.run_external_line(line, T + 10.0).expect_err(line)
    }

    fn svc(e: &Engine) -> &crate::scheduler::ItemState {
        e.find("web", Some("HTTP")).unwrap()
    }

    fn critical(e: &mut Engine, t: f64) {
        ok(e, &format!("[{t}] PROCESS_SERVICE_CHECK_RESULT;web;HTTP;2;CRITICAL: down"), t);
    }

    #[test]
    fn parses_every_command() {
        let p = |l: &str| parse(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        let c = p("[1700000000] PROCESS_SERVICE_CHECK_RESULT;web;HTTP;2;CRITICAL; really | t=1");
        assert_eq!(c.time, Some(T));
        assert_eq!(c.line, "PROCESS_SERVICE_CHECK_RESULT;web;HTTP;2;CRITICAL; really | t=1");
        assert_eq!(
            c.command,
            Command::CheckResult {
                target: Target::Service("web".into(), "HTTP".into()),
                code: 2,
                output: "CRITICAL; really | t=1".into()
            }
        );
        let c = p("process_host_check_result;web;1;DOWN");
        assert_eq!(c.time, None);
        assert!(matches!(
            c.command,
            Command::CheckResult {
                target: Target::Host(_),
                code: 1,
                ..
            }
        ));
        let c = p("ACKNOWLEDGE_SVC_PROBLEM;web;HTTP;2;1;0;admin;on it; really");
        assert_eq!(
            c.command,
            Command::Acknowledge {
                target: Target::Service("web".into(), "HTTP".into()),
                sticky: true,
                notify: true,
                persistent: false,
                author: "admin".into(),
                comment: "on it; really".into()
            }
        );
        let c = p("ACKNOWLEDGE_HOST_PROBLEM;web;1;0;1;admin;x");
        assert!(matches!(
            c.command,
            Command::Acknowledge {
                sticky: false,
                notify: false,
                persistent: true,
                ..
            }
        ));
        assert!(matches!(
            p("REMOVE_SVC_ACKNOWLEDGEMENT;web;HTTP").command,
            Command::RemoveAcknowledgement {
                target: Target::Service(..)
            }
        ));
        assert!(matches!(
            p("REMOVE_HOST_ACKNOWLEDGEMENT;web").command,
            Command::RemoveAcknowledgement { target: Target::Host(_) }
        ));
        let c = p("SCHEDULE_SVC_DOWNTIME;web;HTTP;100;200;1;0;0;admin;maintenance");
        assert!(matches!(
            c.command,
            Command::ScheduleDowntime {
                start: 100.0,
                end: 200.0,
                fixed: true,
                trigger_id: 0,
                ..
            }
        ));
        let c = p("SCHEDULE_HOST_DOWNTIME;web;100;200;0;3;50;admin;flex");
        assert!(matches!(
            c.command,
            Command::ScheduleDowntime {
                fixed: false,
                trigger_id: 3,
                duration: 50.0,
                target: Target::Host(_),
                ..
            }
        ));
        assert_eq!(
            p("DEL_SVC_DOWNTIME;12").command,
            Command::DeleteDowntime {
                kind: ItemKind::Service,
                id: 12
            }
        );
        assert_eq!(
            p("DEL_HOST_DOWNTIME;13").command,
            Command::DeleteDowntime {
                kind: ItemKind::Host,
                id: 13
            }
        );
        assert!(matches!(
            p("ENABLE_SVC_CHECK;web;HTTP").command,
            Command::ActiveChecks { enabled: true, .. }
        ));
        assert!(matches!(
            p("DISABLE_SVC_CHECK;web;HTTP").command,
            Command::ActiveChecks { enabled: false, .. }
        ));
        assert!(matches!(
            p("ENABLE_HOST_CHECK;web").command,
            Command::ActiveChecks {
                enabled: true,
                target: Target::Host(_)
            }
        ));
        assert!(matches!(
            p("DISABLE_HOST_CHECK;web").command,
            Command::ActiveChecks {
                enabled: false,
                target: Target::Host(_)
            }
        ));
        assert!(matches!(
            p("SCHEDULE_FORCED_SVC_CHECK;web;HTTP;5").command,
            Command::ForcedCheck { time: 5.0, .. }
        ));
        assert!(matches!(
            p("SCHEDULE_FORCED_HOST_CHECK;web;5").command,
            Command::ForcedCheck {
                target: Target::Host(_),
                ..
            }
        ));
        assert_eq!(p("  [ 1700000000 ]   DEL_HOST_DOWNTIME;1\n").line, "DEL_HOST_DOWNTIME;1");
    }

    #[test]
    fn parse_errors() {
        let e = |l: &str| parse(l).expect_err(l);
        assert!(matches!(e(""), CommandError::Malformed(_)));
        assert!(matches!(
            e("[1700000000 PROCESS_HOST_CHECK_RESULT;web;0;UP"),
            CommandError::Malformed(_)
        ));
        assert!(matches!(
            e("[yesterday] PROCESS_HOST_CHECK_RESULT;web;0;UP"),
            CommandError::Malformed(_)
        ));
        assert!(matches!(e("[1700000000]"), CommandError::Malformed(_)));
        assert!(matches!(e("this is not a command"), CommandError::Malformed(_)));
        assert!(matches!(e(";web;0"), CommandError::Malformed(_)));
        assert_eq!(e("RESTART_PROGRAM"), CommandError::UnknownCommand("RESTART_PROGRAM".into()));
        assert_eq!(
            e("PROCESS_SERVICE_CHECK_RESULT;web;HTTP;2"),
            CommandError::WrongArgumentCount {
                command: "PROCESS_SERVICE_CHECK_RESULT".into(),
                expected: 4,
                got: 3
            }
        );
        assert!(matches!(
            e("REMOVE_HOST_ACKNOWLEDGEMENT"),
            CommandError::WrongArgumentCount { got: 0, .. }
        ));
        assert!(matches!(e("DEL_SVC_DOWNTIME;1;2"), CommandError::WrongArgumentCount { got: 2, .. }));
        assert!(matches!(
            e("ENABLE_SVC_CHECK;web"),
            CommandError::WrongArgumentCount { expected: 2, got: 1, .. }
        ));
        assert!(matches!(
            e("PROCESS_HOST_CHECK_RESULT;web;x;UP"),
            CommandError::BadNumber {
                argument: "return_code",
                ..
            }
        ));
        assert!(matches!(e("PROCESS_HOST_CHECK_RESULT;web;-1;UP"), CommandError::BadNumber { .. }));
        assert!(matches!(
            e("ACKNOWLEDGE_HOST_PROBLEM;web;yes;1;1;a;c"),
            CommandError::BadNumber { argument: "sticky", .. }
        ));
        assert!(matches!(
            e("SCHEDULE_HOST_DOWNTIME;web;soon;200;1;0;0;a;c"),
            CommandError::BadNumber {
                argument: "start_time",
                ..
            }
        ));
        assert!(matches!(
            e("SCHEDULE_HOST_DOWNTIME;web;100;nan;1;0;0;a;c"),
            CommandError::BadNumber { argument: "end_time", .. }
        ));
        assert!(matches!(
            e("SCHEDULE_HOST_DOWNTIME;web;200;100;1;0;0;a;c"),
            CommandError::BadArgument { .. }
        ));
        assert!(matches!(
            e("DEL_HOST_DOWNTIME;abc"),
            CommandError::BadNumber {
                argument: "downtime_id",
                ..
            }
        ));
        assert!(matches!(
            e("SCHEDULE_FORCED_HOST_CHECK;web;now"),
            CommandError::BadNumber {
                argument: "check_time",
                ..
            }
        ));
        assert_eq!(e("FOO_BAR;1").to_string(), "unknown command 'FOO_BAR'");
    }

    #[test]
    fn unknown_items_are_refused_and_change_nothing() {
        let mut e = engine();
        let before = svc(&e).clone();
        assert_eq!(
            err(&mut e, "PROCESS_HOST_CHECK_RESULT;nope;1;DOWN"),
            CommandError::UnknownHost("nope".into())
        );
        assert_eq!(
            err(&mut e, "ACKNOWLEDGE_SVC_PROBLEM;nope;HTTP;1;1;1;a;c"),
            CommandError::UnknownHost("nope".into())
        );
        assert_eq!(
            err(&mut e, "SCHEDULE_SVC_DOWNTIME;web;SMTP;1;2;1;0;0;a;c"),
            CommandError::UnknownService {
                host: "web".into(),
                service: "SMTP".into()
            }
        );
        assert_eq!(err(&mut e, "DEL_SVC_DOWNTIME;99"), CommandError::UnknownDowntime(99));
        assert_eq!(svc(&e), &before);
        assert!(e.changed_records(T).is_empty());
        assert!(e.get_broks("broker").is_empty(), "no log brok for a refused command");
    }

    #[test]
    fn passive_results_go_through_the_passive_path() {
        let mut e = engine();
        let ev = ok(
            &mut e,
            "[1700000005] PROCESS_SERVICE_CHECK_RESULT;web;HTTP;2;CRITICAL: down | rt=3s",
            T + 6.0,
        );
        assert_eq!(
            ev.log[0],
            "EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;web;HTTP;2;CRITICAL: down | rt=3s"
        );
        let st = svc(&e);
        assert_eq!(
            (st.state, st.attempt, st.last_check, st.output.as_str()),
            (State::Critical, 1, T + 5.0, "CRITICAL: down")
        );
        assert_eq!(st.check_type, crate::scheduler::CheckType::Passive);
        assert_eq!(e.changed_records(T + 6.0).len(), 1);
        let broks = e.get_broks("broker");
        assert!(broks.iter().any(|b| b.kind == "log" && b.data["log"] == ev.log[0]));
        // Older than the last check: ignored.
        let old = err(&mut e, "[1700000004] PROCESS_SERVICE_CHECK_RESULT;web;HTTP;0;OK");
        assert!(matches!(old, CommandError::Refused(m) if m.contains("older")));
        assert_eq!(svc(&e).state, State::Critical);
        // Passive checks off for the item.
        assert!(matches!(
            err(&mut e, "PROCESS_SERVICE_CHECK_RESULT;web;Passive;0;OK"),
            CommandError::Refused(_)
        ));
        // A host result, no timestamp: now.
        ok(&mut e, "PROCESS_HOST_CHECK_RESULT;web;2;DOWN", T + 7.0);
        assert_eq!(e.find("web", None).unwrap().state, State::Down);
    }

    #[test]
    fn passive_results_honour_the_global_switch() {
        let cfg = shinken_config::load::from_part_text(&format!("accept_passive_service_checks=0\n{CFG}"));
        let mut e = Engine::new("sched", 0, 1, cfg, T, 42, None);
        assert!(matches!(
            e.run_external_line("PROCESS_SERVICE_CHECK_RESULT;web;HTTP;2;x", T),
            Err(CommandError::Refused(_))
        ));
        assert!(e.run_external_line("PROCESS_HOST_CHECK_RESULT;web;0;x", T).is_ok());
    }

    #[test]
    fn acknowledgements_only_on_problems_sticky_and_removed() {
        let mut e = engine();
        let ack = "ACKNOWLEDGE_SVC_PROBLEM;web;HTTP;2;1;1;admin;looking at it";
        assert!(matches!(err(&mut e, ack), CommandError::Refused(m) if m.contains("PENDING")));
        ok(
            &mut e,
            &format!("[{}] PROCESS_SERVICE_CHECK_RESULT;web;HTTP;0;OK", T + 1.0),
            T + 1.0,
        );
        assert!(matches!(err(&mut e, ack), CommandError::Refused(m) if m.contains("OK")));
        critical(&mut e, T + 2.0);
        e.changed_records(T);
        ok(&mut e, ack, T + 3.0);
        let st = svc(&e);
        assert!(st.problem_has_been_acknowledged && st.acknowledgement_sticky);
        let a = st.acknowledgement.as_deref().unwrap();
        assert_eq!(
            (a.author.as_str(), a.comment.as_str(), a.sticky, a.notify, a.persistent),
            ("admin", "looking at it", true, true, true)
        );
        assert_eq!(st.comments.iter().filter(|c| c.entry_type == 4).count(), 1);
        assert_eq!(e.changed_records(T).len(), 1, "marked for retention");
        assert!(e.status().services.iter().any(|s| s.acknowledged));
        // Sticky: kept across a non-OK state change (CRITICAL -> WARNING).
        ok(
            &mut e,
            &format!("[{}] PROCESS_SERVICE_CHECK_RESULT;web;HTTP;1;WARNING", T + 4.0),
            T + 4.0,
        );
        assert!(svc(&e).problem_has_been_acknowledged);
        // Removed by command: the persistent comment stays.
        ok(&mut e, "REMOVE_SVC_ACKNOWLEDGEMENT;web;HTTP", T + 5.0);
        let st = svc(&e);
        assert!(!st.problem_has_been_acknowledged && st.acknowledgement.is_none());
        assert_eq!(st.comments.len(), 1);
        // Normal (1): removed by the recovery, with its non-persistent comment.
        ok(&mut e, "ACKNOWLEDGE_SVC_PROBLEM;web;HTTP;1;0;0;admin;again", T + 6.0);
        assert!(!svc(&e).acknowledgement_sticky);
        assert_eq!(svc(&e).comments.len(), 1, "a new ack replaces the old one's comment");
        ok(
            &mut e,
            &format!("[{}] PROCESS_SERVICE_CHECK_RESULT;web;HTTP;0;OK", T + 7.0),
            T + 7.0,
        );
        assert!(!svc(&e).problem_has_been_acknowledged);
        assert!(svc(&e).comments.is_empty());
        // Host acknowledgement.
        ok(&mut e, "PROCESS_HOST_CHECK_RESULT;web;2;DOWN", T + 8.0);
        ok(&mut e, "ACKNOWLEDGE_HOST_PROBLEM;web;1;1;0;admin;net", T + 9.0);
        assert!(e.find("web", None).unwrap().problem_has_been_acknowledged);
        ok(&mut e, "REMOVE_HOST_ACKNOWLEDGEMENT;web", T + 9.0);
        assert!(!e.find("web", None).unwrap().problem_has_been_acknowledged);
    }

    #[test]
    fn downtimes_in_and_out_of_their_window_expire_in_tick_and_are_deleted() {
        let mut e = engine();
        let (s, end) = (T + 100.0, T + 200.0);
        let ev = ok(
            &mut e,
            &format!("SCHEDULE_SVC_DOWNTIME;web;HTTP;{s};{end};1;0;0;admin;upgrade"),
            T + 10.0,
        );
        assert_eq!(ev.log.len(), 1, "not started yet: {:?}", ev.log);
        let st = svc(&e);
        assert_eq!((st.downtimes.len(), st.scheduled_downtime_depth), (1, 0));
        assert!(
            st.comments[0]
                .text
                .contains("fixed downtime from 2023-11-14 22:15:00 to 2023-11-14 22:16:40"),
            "{}",
            st.comments[0].text
        );
        assert!(!e.status().services.iter().any(|s| s.in_downtime));
        assert_eq!(e.tick(T + 99.0).log, Vec::<String>::new());
        assert_eq!(
            e.tick(s).log,
            ["SERVICE DOWNTIME ALERT: web;HTTP;STARTED; Service has entered a period of scheduled downtime"]
        );
        assert!(
            e.status()
                .services
                .iter()
                .any(|x| x.service_description.as_deref() == Some("HTTP") && x.in_downtime)
        );
        e.changed_records(T);
        assert!(e.tick(end - 1.0).log.is_empty());
        assert_eq!(
            e.tick(end).log,
            ["SERVICE DOWNTIME ALERT: web;HTTP;STOPPED; Service has exited from a period of scheduled downtime"]
        );
        let st = svc(&e);
        assert!(st.downtimes.is_empty() && st.comments.is_empty() && st.scheduled_downtime_depth == 0);
        assert_eq!(e.changed_records(T).len(), 1);
        // A host downtime in force at once (flexible, treated as fixed), cancelled by id.
        let ev = ok(
            &mut e,
            &format!("SCHEDULE_HOST_DOWNTIME;web;{};{};0;0;60;admin;now", T + 300.0, T + 400.0),
            T + 310.0,
        );
        assert_eq!(
            ev.log[1],
            "HOST DOWNTIME ALERT: web;STARTED; Host has entered a period of scheduled downtime"
        );
        let id = e.find("web", None).unwrap().downtimes[0].id;
        assert_eq!(id, ((T + 310.0) * 1e6) as u64);
        assert_eq!(
            err(&mut e, &format!("DEL_SVC_DOWNTIME;{id}")),
            CommandError::UnknownDowntime(id),
            "a host's downtime"
        );
        let ev = ok(&mut e, &format!("DEL_HOST_DOWNTIME;{id}"), T + 320.0);
        assert_eq!(
            ev.log[1],
            "HOST DOWNTIME ALERT: web;CANCELLED; Scheduled downtime for host has been cancelled."
        );
        let h = e.find("web", None).unwrap();
        assert!(h.downtimes.is_empty() && h.comments.is_empty() && h.scheduled_downtime_depth == 0);
        // A window already over: gone at the next tick, never started.
        ok(
            &mut e,
            &format!("SCHEDULE_SVC_DOWNTIME;web;HTTP;{};{};1;0;0;a;c", T, T + 1.0),
            T + 500.0,
        );
        assert!(svc(&e).downtimes.is_empty(), "expired as it was scheduled");
    }

    #[test]
    fn active_checks_switch_and_forced_checks() {
        let mut e = engine();
        let ask = GetChecks {
            do_checks: true,
            worker_name: "p".into(),
            ..Default::default()
        };
        ok(&mut e, "DISABLE_SVC_CHECK;web;HTTP", T);
        let st = svc(&e);
        assert_eq!(
            st.modified_attributes & modattr::ACTIVE_CHECKS_ENABLED,
            modattr::ACTIVE_CHECKS_ENABLED
        );
        assert_eq!(st.modified.as_ref().unwrap().active_checks_enabled, Some(false));
        let (jobs, _) = e.get_checks(&ask, T + 1000.0);
        assert_eq!(jobs.len(), 2, "the host and Passive, not HTTP: {jobs:?}");
        // Forced: runs although disabled, due now.
        ok(&mut e, &format!("SCHEDULE_FORCED_SVC_CHECK;web;HTTP;{}", T + 500.0), T + 1000.0);
        assert_eq!(svc(&e).next_check, T + 500.0);
        let (jobs, _) = e.get_checks(&ask, T + 1000.0);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].t_to_go, T + 500.0);
        // Enabled again: scheduled.
        ok(&mut e, "ENABLE_SVC_CHECK;web;HTTP", T + 1001.0);
        assert!(e.items()[1].active_checks_enabled);
        ok(&mut e, "DISABLE_HOST_CHECK;web", T + 1001.0);
        assert!(!e.items()[0].active_checks_enabled);
        // The host's check is out (handed out above): not doubled.
        ok(&mut e, &format!("SCHEDULE_FORCED_HOST_CHECK;web;{}", T + 1002.0), T + 1001.0);
        assert_eq!(e.find("web", None).unwrap().next_check, T);
        let mut e = engine();
        ok(&mut e, "DISABLE_HOST_CHECK;web", T + 1001.0);
        ok(&mut e, &format!("SCHEDULE_FORCED_HOST_CHECK;web;{}", T + 1002.0), T + 1001.0);
        assert_eq!(e.find("web", None).unwrap().next_check, T + 1002.0);
        ok(&mut e, "ENABLE_HOST_CHECK;web", T + 1001.0);
        assert!(e.items()[0].active_checks_enabled);
    }

    #[test]
    fn notifications_switch_and_comments() {
        let mut e = engine();
        ok(&mut e, "DISABLE_SVC_NOTIFICATIONS;web;HTTP", T);
        assert!(!e.items()[1].notif.notifications_enabled);
        let st = svc(&e);
        assert_eq!(
            st.modified_attributes & modattr::NOTIFICATIONS_ENABLED,
            modattr::NOTIFICATIONS_ENABLED
        );
        assert_eq!(st.modified.as_ref().unwrap().notifications_enabled, Some(false));
        ok(&mut e, "ENABLE_SVC_NOTIFICATIONS;web;HTTP", T);
        assert!(e.items()[1].notif.notifications_enabled);
        ok(&mut e, "DISABLE_HOST_NOTIFICATIONS;web", T);
        assert!(!e.items()[0].notif.notifications_enabled);

        let ev = ok(&mut e, "ADD_SVC_COMMENT;web;HTTP;1;admin;looking; at it", T + 1.0);
        assert_eq!(ev.log, ["EXTERNAL COMMAND: ADD_SVC_COMMENT;web;HTTP;1;admin;looking; at it"]);
        let c = svc(&e).comments.last().unwrap().clone();
        assert_eq!(
            (c.author.as_str(), c.text.as_str(), c.persistent, c.entry_type),
            ("admin", "looking; at it", true, 1)
        );
        ok(&mut e, "ADD_HOST_COMMENT;web;0;admin;host note", T + 1.0);
        let host_comment = e.find("web", None).unwrap().comments.last().unwrap().id;
        // A service comment id is not a host comment.
        assert!(matches!(
            err(&mut e, &format!("DEL_HOST_COMMENT;{}", c.id)),
            CommandError::Refused(_)
        ));
        ok(&mut e, &format!("DEL_SVC_COMMENT;{}", c.id), T + 2.0);
        assert!(svc(&e).comments.iter().all(|x| x.id != c.id));
        ok(&mut e, &format!("DEL_HOST_COMMENT;{host_comment}"), T + 2.0);
        assert!(e.find("web", None).unwrap().comments.is_empty());
        assert!(matches!(
            err(&mut e, "ADD_SVC_COMMENT;web;HTTP;x;a;b"),
            CommandError::BadNumber { .. }
        ));
        assert!(matches!(err(&mut e, "DEL_SVC_COMMENT;99999"), CommandError::Refused(_)));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
        assert_eq!(utc(T), "2023-11-14 22:13:20");
    }
}
