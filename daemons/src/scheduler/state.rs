//! The soft/hard state machine of hosts and services (semantics §3.5, §3.6).
//!
//! [`apply_result`] consumes one check result into an [`ItemState`] and reports, in a
//! [`Transition`], what the scheduler has to do about it: write an alert line, raise a PROBLEM or
//! RECOVERY notification, run the event handler, cancel pending notifications, register the item as
//! a problem. Everything that involves other objects (dependencies, downtimes, contacts, the global
//! event/problem counters) is the caller's: the facts it needs come in through [`CheckResult`] and
//! [`StateOptions`], the decisions go out through [`Transition`].
//!
//! Times are seconds since the epoch as `f64`; the fields Shinken stores as integers (`last_chk`,
//! `last_time_*`, `last_hard_state_change`) are truncated the same way.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Host or service: the two kinds of scheduled items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Host,
    Service,
}

impl ItemKind {
    /// The "good" state: UP for hosts, OK for services.
    pub fn ok_state(self) -> State {
        match self {
            ItemKind::Host => State::Up,
            ItemKind::Service => State::Ok,
        }
    }

    /// "host" or "service", as in Shinken's `my_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Host => "host",
            ItemKind::Service => "service",
        }
    }
}

/// The state of a host or a service. PENDING (never checked) is shared by both kinds.
/// Serialized as Shinken writes it ("OK", "DOWN", ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
    Up,
    Down,
    Unreachable,
    Pending,
}

impl State {
    /// The state string Shinken logs and stores ("OK", "DOWN", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
            State::Up => "UP",
            State::Down => "DOWN",
            State::Unreachable => "UNREACHABLE",
            State::Pending => "PENDING",
        }
    }

    /// Parses a state string (as found in retention data).
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "OK" => State::Ok,
            "WARNING" => State::Warning,
            "CRITICAL" => State::Critical,
            "UNKNOWN" => State::Unknown,
            "UP" => State::Up,
            "DOWN" => State::Down,
            "UNREACHABLE" => State::Unreachable,
            "PENDING" => State::Pending,
            _ => return None,
        })
    }

    /// Shinken's `state_id`: OK/UP/PENDING 0, WARNING/DOWN 1, CRITICAL/UNREACHABLE 2, UNKNOWN 3.
    pub fn id(self) -> u8 {
        match self {
            State::Ok | State::Up | State::Pending => 0,
            State::Warning | State::Down => 1,
            State::Critical | State::Unreachable => 2,
            State::Unknown => 3,
        }
    }

    /// OK or UP.
    pub fn is_ok_up(self) -> bool {
        matches!(self, State::Ok | State::Up)
    }

    /// The state a (possibly remapped, see [`effective_exit_status`]) exit code gives (§3.5):
    /// service 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, other CRITICAL; host 0 UP, 1 UP (DOWN with
    /// aggressive host checking), anything else DOWN. UNREACHABLE is never a plugin result: it is
    /// set afterwards when all network parents are down.
    pub fn from_exit_status(kind: ItemKind, exit_status: u8, aggressive_host_checking: bool) -> State {
        match kind {
            ItemKind::Service => match exit_status {
                0 => State::Ok,
                1 => State::Warning,
                3 => State::Unknown,
                _ => State::Critical,
            },
            ItemKind::Host => match exit_status {
                0 => State::Up,
                1 if !aggressive_host_checking => State::Up,
                _ => State::Down,
            },
        }
    }

    /// The initial state for an `initial_state` code (`o`/`w`/`c`/`u` for services, `o`/`d`/`u`
    /// for hosts); the full state name is accepted too.
    pub fn from_initial_state(kind: ItemKind, code: &str) -> Option<State> {
        let code = code.trim();
        let st = match (kind, code) {
            (ItemKind::Service, "o") => State::Ok,
            (ItemKind::Service, "w") => State::Warning,
            (ItemKind::Service, "c") => State::Critical,
            (ItemKind::Service, "u") => State::Unknown,
            (ItemKind::Host, "o") => State::Up,
            (ItemKind::Host, "d") => State::Down,
            (ItemKind::Host, "u") => State::Unreachable,
            _ => {
                let st = State::parse(&code.to_ascii_uppercase())?;
                let fits = match kind {
                    ItemKind::Service => matches!(st, State::Ok | State::Warning | State::Critical | State::Unknown),
                    ItemKind::Host => matches!(st, State::Up | State::Down | State::Unreachable),
                };
                if !fits {
                    return None;
                }
                st
            }
        };
        Some(st)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SOFT (still retrying) or HARD (confirmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StateType {
    Soft,
    Hard,
}

impl StateType {
    pub fn as_str(self) -> &'static str {
        match self {
            StateType::Soft => "SOFT",
            StateType::Hard => "HARD",
        }
    }

    /// Shinken's `state_type_id`: SOFT 0, HARD 1.
    pub fn id(self) -> u8 {
        match self {
            StateType::Soft => 0,
            StateType::Hard => 1,
        }
    }

    pub fn parse(s: &str) -> Option<StateType> {
        match s {
            "SOFT" => Some(StateType::Soft),
            "HARD" => Some(StateType::Hard),
            _ => None,
        }
    }
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the last result came from (Shinken's `check_type`: 0 active, 1 passive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    #[default]
    Active,
    Passive,
}

impl CheckType {
    pub fn id(self) -> u8 {
        match self {
            CheckType::Active => 0,
            CheckType::Passive => 1,
        }
    }
}

/// Everything the scheduler and retention keep about the state of one host or service.
///
/// Serialized as is into the retention store (semantics §4.3); a key missing from a stored record
/// (written by an older version) takes its default, as Shinken keeps the cfg value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ItemState {
    pub kind: ItemKind,
    pub state: State,
    pub state_type: StateType,
    pub attempt: u32,
    /// Configuration (default 1); attempts never exceed it.
    pub max_check_attempts: u32,
    pub last_state: State,
    pub last_state_type: StateType,
    pub last_hard_state: State,
    pub last_state_change: f64,
    pub last_hard_state_change: f64,
    /// `last_chk`: the (truncated) check time of the last consumed result.
    pub last_check: f64,
    /// `next_chk`: 0 until first scheduled (see [`super::schedule`]).
    pub next_check: f64,
    pub last_state_update: f64,
    pub output: String,
    pub long_output: String,
    pub perf_data: String,
    pub last_perf_data: String,
    pub has_been_checked: bool,
    /// Configuration (`is_volatile`, services only; ignored for hosts).
    pub is_volatile: bool,
    pub problem_has_been_acknowledged: bool,
    /// The acknowledgement is sticky (`acknowledgement_type` 2): kept across non-OK changes.
    pub acknowledgement_sticky: bool,
    pub current_event_id: u64,
    pub last_event_id: u64,
    pub current_problem_id: u64,
    pub last_problem_id: u64,
    pub last_time_ok: f64,
    pub last_time_warning: f64,
    pub last_time_critical: f64,
    pub last_time_unknown: f64,
    pub last_time_up: f64,
    pub last_time_down: f64,
    pub last_time_unreachable: f64,
    /// Seconds in the current state at the last result (`now − last_state_change`).
    pub duration_sec: f64,
    pub is_problem: bool,
    pub in_hard_unknown_reach_phase: bool,
    pub was_in_hard_unknown_reach_phase: bool,
    pub state_before_hard_unknown_reach_phase: State,
    /// Set by the downtime logic when a check ran inside a downtime; cleared by every result.
    pub in_scheduled_downtime_during_last_check: bool,
    /// The real state while the item shows an impact state (`enable_problem_impacts_states_change`);
    /// the impact logic sets it, the next result consumes it.
    pub state_before_impact: Option<State>,
    /// Owned by the notification logic (PROBLEM increments, RECOVERY resets); not touched here.
    pub current_notification_number: u32,
    pub check_type: CheckType,
    pub latency: f64,
    pub execution_time: f64,
    /// The exit status after host remapping (`return_code`).
    pub return_code: u8,
    /// The acknowledgement in force (`acknowledgement`), if any: who, why, how.
    pub acknowledgement: Option<Box<Acknowledgement>>,
    /// Scheduled downtimes attached to the item (`downtimes`).
    pub downtimes: Vec<Downtime>,
    /// Comments attached to the item (`comments`), downtime and acknowledgement ones included.
    pub comments: Vec<Comment>,
    /// Downtimes in effect (`scheduled_downtime_depth`); in a downtime when > 0.
    pub scheduled_downtime_depth: u32,
    /// Flexible downtimes waiting for a non-OK state to start (`pending_flex_downtime`).
    pub pending_flex_downtime: u32,
    /// `last_notification`: when the last notification went out (0: never).
    pub last_notification: f64,
    /// `current_notification_id`: the id of the last master notification raised.
    pub current_notification_id: u64,
    /// Contacts notified about the current problem (`notified_contacts`, by name).
    pub notified_contacts: Vec<String>,
    /// Notifications raised and not sent yet (`notifications_in_progress`), re-queued on restore.
    pub pending_notifications: Vec<PendingNotification>,
    /// Flapping: currently flapping (`is_flapping`).
    pub is_flapping: bool,
    /// The last state changes, oldest first, at most 20 (`flapping_changes`).
    pub flapping_changes: Vec<bool>,
    /// `percent_state_change` computed from `flapping_changes`.
    pub percent_state_change: f64,
    /// The comment id of the flapping comment, 0 when none (`flapping_comment_id`).
    pub flapping_comment_id: u64,
    /// A recovery notification is due when flapping stops (`check_flapping_recovery_notification`).
    pub check_flapping_recovery_notification: bool,
    /// `modified_attributes`: MODATTR bits of the attributes changed at run time (external
    /// commands), whose values are in [`ItemState::modified`].
    pub modified_attributes: u64,
    /// The values of the attributes changed at run time; restored over the configuration only
    /// where their MODATTR bit is set (Shinken 2.4).
    pub modified: Option<Box<ModifiedAttributes>>,
}

impl Default for ItemState {
    /// A PENDING service with one attempt: the base a partial retention record is read over.
    fn default() -> Self {
        ItemState::new(ItemKind::Service, 1)
    }
}

/// An acknowledgement (`ACKNOWLEDGE_SVC_PROBLEM` and friends).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Acknowledgement {
    pub author: String,
    pub comment: String,
    /// Unix seconds.
    pub entry_time: f64,
    /// Sticky (`acknowledgement_type` 2); mirrored by [`ItemState::acknowledgement_sticky`].
    pub sticky: bool,
    /// Notify contacts of the acknowledgement.
    pub notify: bool,
    /// The comment survives a restart.
    pub persistent: bool,
    /// 0: never expires.
    pub end_time: f64,
}

/// A scheduled downtime of a host or service (`SCHEDULE_*_DOWNTIME`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Downtime {
    pub id: u64,
    pub entry_time: f64,
    pub start_time: f64,
    pub end_time: f64,
    /// Fixed (from start to end) or flexible (lasting `duration` from the first problem).
    pub fixed: bool,
    /// Seconds, for flexible downtimes.
    pub duration: f64,
    /// The downtime that triggers this one, 0 when none.
    pub trigger_id: u64,
    pub author: String,
    pub comment: String,
    /// Started and not ended yet.
    pub is_in_effect: bool,
    pub has_been_triggered: bool,
    pub can_be_deleted: bool,
    /// The id of its automatic comment.
    pub comment_id: u64,
}

/// A comment on a host or service (`ADD_*_COMMENT`, or made by a downtime, an acknowledgement,
/// flapping).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Comment {
    pub id: u64,
    pub entry_time: f64,
    pub author: String,
    pub text: String,
    pub persistent: bool,
    /// Shinken's `entry_type`: 1 user, 2 downtime, 3 flapping, 4 acknowledgement.
    pub entry_type: u8,
    /// 0 internal, 1 external.
    pub source: u8,
    pub expires: bool,
    pub expire_time: f64,
}

/// A notification raised and not sent yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingNotification {
    pub id: u64,
    /// "PROBLEM", "RECOVERY", "ACKNOWLEDGEMENT", ...
    pub kind: String,
    /// When it is due (Unix seconds).
    pub t_to_go: f64,
    /// Its `notif_nb` (the number it carries).
    pub number: u32,
    /// The contact, for a per-contact notification; empty for a master notification.
    pub contact: String,
    /// When the master was created (time-based escalations count from it).
    pub creation_time: f64,
    /// Escalations already started by this notification (names).
    pub started_escalations: Vec<String>,
}

/// Attributes changed at run time by external commands, with their MODATTR bits
/// (`shinken/misc/common.py`): only the ones whose bit is set in `modified_attributes` are
/// restored over the configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModifiedAttributes {
    /// Bit 1.
    pub notifications_enabled: Option<bool>,
    /// Bit 2.
    pub active_checks_enabled: Option<bool>,
    /// Bit 4.
    pub passive_checks_enabled: Option<bool>,
    /// Bit 8.
    pub event_handler_enabled: Option<bool>,
    /// Bit 16.
    pub flap_detection_enabled: Option<bool>,
    /// Bit 64.
    pub process_perf_data: Option<bool>,
    /// Bit 128.
    pub obsess: Option<bool>,
    /// Bit 512.
    pub check_command: Option<String>,
    /// Bit 1024, interval units.
    pub check_interval: Option<f64>,
    /// Bit 2048, interval units.
    pub retry_interval: Option<f64>,
    /// Bit 4096.
    pub max_check_attempts: Option<u32>,
}

/// MODATTR bits (`shinken/misc/common.py`).
pub mod modattr {
    pub const NOTIFICATIONS_ENABLED: u64 = 1;
    pub const ACTIVE_CHECKS_ENABLED: u64 = 2;
    pub const PASSIVE_CHECKS_ENABLED: u64 = 4;
    pub const EVENT_HANDLER_ENABLED: u64 = 8;
    pub const FLAP_DETECTION_ENABLED: u64 = 16;
    pub const PERFORMANCE_DATA_ENABLED: u64 = 64;
    pub const OBSESSIVE_HANDLER_ENABLED: u64 = 128;
    pub const CHECK_COMMAND: u64 = 512;
    pub const NORMAL_CHECK_INTERVAL: u64 = 1024;
    pub const RETRY_CHECK_INTERVAL: u64 = 2048;
    pub const MAX_CHECK_ATTEMPTS: u64 = 4096;
}

impl ItemState {
    /// A never-checked item: PENDING, HARD, attempt 0, empty output.
    pub fn new(kind: ItemKind, max_check_attempts: u32) -> ItemState {
        let ok = kind.ok_state();
        ItemState {
            kind,
            state: State::Pending,
            state_type: StateType::Hard,
            attempt: 0,
            max_check_attempts,
            last_state: State::Pending,
            last_state_type: StateType::Hard,
            last_hard_state: State::Pending,
            last_state_change: 0.0,
            last_hard_state_change: 0.0,
            last_check: 0.0,
            next_check: 0.0,
            last_state_update: 0.0,
            output: String::new(),
            long_output: String::new(),
            perf_data: String::new(),
            last_perf_data: String::new(),
            has_been_checked: false,
            is_volatile: false,
            problem_has_been_acknowledged: false,
            acknowledgement_sticky: false,
            current_event_id: 0,
            last_event_id: 0,
            current_problem_id: 0,
            last_problem_id: 0,
            last_time_ok: 0.0,
            last_time_warning: 0.0,
            last_time_critical: 0.0,
            last_time_unknown: 0.0,
            last_time_up: 0.0,
            last_time_down: 0.0,
            last_time_unreachable: 0.0,
            duration_sec: 0.0,
            is_problem: false,
            in_hard_unknown_reach_phase: false,
            was_in_hard_unknown_reach_phase: false,
            state_before_hard_unknown_reach_phase: ok,
            in_scheduled_downtime_during_last_check: false,
            state_before_impact: None,
            current_notification_number: 0,
            check_type: CheckType::Active,
            latency: 0.0,
            execution_time: 0.0,
            return_code: 0,
            acknowledgement: None,
            downtimes: Vec::new(),
            comments: Vec::new(),
            scheduled_downtime_depth: 0,
            pending_flex_downtime: 0,
            last_notification: 0.0,
            current_notification_id: 0,
            notified_contacts: Vec::new(),
            pending_notifications: Vec::new(),
            is_flapping: false,
            flapping_changes: Vec::new(),
            percent_state_change: 0.0,
            flapping_comment_id: 0,
            check_flapping_recovery_notification: false,
            modified_attributes: 0,
            modified: None,
        }
    }

    /// Applies the configuration's `initial_state` / `initial_output` overrides (§3.5). Only the
    /// state (and output) change: the item stays HARD, attempt 0, not checked.
    pub fn with_initial(mut self, initial_state: Option<&str>, initial_output: Option<&str>) -> Result<ItemState, String> {
        if let Some(code) = initial_state.filter(|c| !c.trim().is_empty()) {
            let st = State::from_initial_state(self.kind, code).ok_or_else(|| {
                let allowed = match self.kind {
                    ItemKind::Service => "o, w, c, u",
                    ItemKind::Host => "o, d, u",
                };
                format!("invalid initial_state: {code}, should be one of {allowed}")
            })?;
            self.state = st;
        }
        if let Some(out) = initial_output.filter(|o| !o.is_empty()) {
            self.output = out.to_string();
            self.long_output = out.to_string();
        }
        Ok(self)
    }

    /// The attempt counter reached `max_check_attempts`.
    pub fn is_max_attempts(&self) -> bool {
        self.attempt >= self.max_check_attempts
    }

    /// One more attempt, never beyond `max_check_attempts`.
    fn add_attempt(&mut self) {
        self.attempt = (self.attempt + 1).min(self.max_check_attempts);
    }

    /// The last time the item was seen non-OK after its last OK, or 0 (used for
    /// `first_notification_delay`). Services: the earliest of the WARNING/CRITICAL/UNKNOWN times
    /// later than the last OK; hosts: the last DOWN time if later than the last UP.
    pub fn last_time_non_ok_or_up(&self) -> f64 {
        match self.kind {
            ItemKind::Service => [self.last_time_warning, self.last_time_critical, self.last_time_unknown]
                .into_iter()
                .filter(|&t| t > self.last_time_ok)
                .fold(None, |acc: Option<f64>, t| Some(acc.map_or(t, |a| a.min(t))))
                .unwrap_or(0.0),
            ItemKind::Host => {
                if self.last_time_down > self.last_time_up {
                    self.last_time_down
                } else {
                    0.0
                }
            }
        }
    }

    fn remember_state_time(&mut self, t: f64) {
        match self.state {
            State::Ok => self.last_time_ok = t,
            State::Warning => self.last_time_warning = t,
            State::Critical => self.last_time_critical = t,
            State::Unknown => self.last_time_unknown = t,
            State::Up => self.last_time_up = t,
            State::Down => self.last_time_down = t,
            State::Unreachable => self.last_time_unreachable = t,
            State::Pending => {}
        }
    }

    fn alert_line(&self) -> AlertLine {
        AlertLine {
            kind: self.kind,
            state: self.state,
            state_type: self.state_type,
            attempt: self.attempt,
            output: self.output.clone(),
        }
    }

    /// `update_hard_unknown_phase_state`: UNKNOWN (services) / UNREACHABLE (hosts) while HARD opens
    /// a phase during which state changes raise no new PROBLEM; leaving it for the state it was
    /// entered from keeps `was_in_…` set (so still no notification), leaving it for another state
    /// clears it.
    fn update_hard_unknown_phase(&mut self) {
        self.was_in_hard_unknown_reach_phase = self.in_hard_unknown_reach_phase;
        if self.state_type != StateType::Hard || self.last_state_type != StateType::Hard {
            self.in_hard_unknown_reach_phase = false;
        }
        if !self.in_hard_unknown_reach_phase {
            let enters = (self.state == State::Unknown && self.last_state != State::Unknown)
                || (self.state == State::Unreachable && self.last_state != State::Unreachable);
            if enters {
                self.in_hard_unknown_reach_phase = true;
                self.state_before_hard_unknown_reach_phase = self.last_state;
                return;
            }
        } else if self.state != State::Unknown && self.state != State::Unreachable {
            self.in_hard_unknown_reach_phase = false;
        }
        if !self.in_hard_unknown_reach_phase
            && self.was_in_hard_unknown_reach_phase
            && self.state != self.state_before_hard_unknown_reach_phase
        {
            self.was_in_hard_unknown_reach_phase = false;
        }
    }
}

/// Global switches that shape how a result is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateOptions {
    /// `use_aggressive_host_checking`: a host exit code 1 means DOWN instead of UP.
    pub aggressive_host_checking: bool,
    /// Global `process_performance_data` AND the item's `process_perf_data`: keep perf data.
    pub process_perf_data: bool,
    /// `enable_problem_impacts_states_change`: `last_state` is the pre-impact state.
    pub enable_problem_impacts_states_change: bool,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            aggressive_host_checking: false,
            process_perf_data: true,
            enable_problem_impacts_states_change: false,
        }
    }
}

/// One check result, active or passive, as the scheduler consumes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckResult {
    /// Plugin exit code (after result modulations and the timeout substitution).
    pub exit_status: u8,
    pub output: String,
    pub long_output: String,
    pub perf_data: String,
    /// When the check ran (for passive results: the external command's timestamp).
    pub check_time: f64,
    pub execution_time: f64,
    pub latency: f64,
    /// A passive result (`check_type` 1).
    pub passive: bool,
    /// A dependency ("predictive") check result: it does not count an attempt.
    pub dependent: bool,
    /// The dependency logic says a dependency explains this failure (`no_action`, computed by the
    /// caller after the dependency checks): no notification, not a root problem. Only honoured
    /// for non-OK results, as in Shinken.
    pub no_action: bool,
    /// Hosts: all network parents are down/unreachable, so a DOWN result becomes UNREACHABLE.
    pub unreachable: bool,
}

/// Notification a result raises (the master notification; see §3.7 for what becomes of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    Problem,
    Recovery,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Problem => "PROBLEM",
            NotificationKind::Recovery => "RECOVERY",
        }
    }
}

/// The state snapshot an alert line (and the accompanying event handler) reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertLine {
    pub kind: ItemKind,
    pub state: State,
    pub state_type: StateType,
    pub attempt: u32,
    pub output: String,
}

impl AlertLine {
    /// `SERVICE ALERT: host;svc;STATE;TYPE;attempt;output` or `HOST ALERT: host;STATE;TYPE;attempt;output`
    /// (the service name is ignored for hosts).
    pub fn format(&self, host_name: &str, service_description: &str) -> String {
        match self.kind {
            ItemKind::Service => format!(
                "SERVICE ALERT: {host_name};{service_description};{};{};{};{}",
                self.state, self.state_type, self.attempt, self.output
            ),
            ItemKind::Host => format!(
                "HOST ALERT: {host_name};{};{};{};{}",
                self.state, self.state_type, self.attempt, self.output
            ),
        }
    }
}

/// What happens to the item's problem id with a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProblemIdChange {
    #[default]
    Unchanged,
    /// A new problem starts: take the next global problem id.
    New,
    /// Back to OK: `last_problem_id = current_problem_id`, `current_problem_id = 0`.
    Reset,
}

/// Event/problem id bookkeeping a result calls for (`update_event_and_problem_id`); apply it with
/// [`EventCounters::assign`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IdUpdate {
    pub new_event: bool,
    pub problem: ProblemIdChange,
}

/// Shinken's global (hosts and services together) event and problem counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EventCounters {
    pub event_id: u64,
    pub problem_id: u64,
}

impl EventCounters {
    /// Applies a transition's id update to the item.
    pub fn assign(&mut self, item: &mut ItemState, ids: IdUpdate) {
        if !ids.new_event {
            return;
        }
        self.event_id += 1;
        item.last_event_id = item.current_event_id;
        item.current_event_id = self.event_id;
        match ids.problem {
            ProblemIdChange::Unchanged => {}
            ProblemIdChange::New => {
                self.problem_id += 1;
                item.last_problem_id = item.current_problem_id;
                item.current_problem_id = self.problem_id;
            }
            ProblemIdChange::Reset => {
                item.last_problem_id = item.current_problem_id;
                item.current_problem_id = 0;
            }
        }
    }
}

/// What consuming one result did and what the caller has to do next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transition {
    /// A passive result older than `last_check`: dropped, nothing else changed.
    pub ignored: bool,
    /// The state string differs from `last_state`.
    pub state_changed: bool,
    /// SOFT → HARD with this result.
    pub became_hard: bool,
    /// `last_hard_state_change` was set (SOFT → HARD, or a state change while HARD).
    pub hard_state_changed: bool,
    /// The alert line to log (also the state the event handler's macros should see).
    pub alert: Option<AlertLine>,
    /// A master notification to create (unless blocked, §3.7).
    pub notify: Option<NotificationKind>,
    /// Run the event handler (if enabled for the item and globally).
    pub run_event_handler: bool,
    /// Zombify the notifications in progress.
    pub cancel_pending_notifications: bool,
    /// The acknowledgement was removed (delete its non-persistent comments, send a status brok).
    pub acknowledgement_removed: bool,
    /// A non-OK HARD state was reached: activate waiting flexible downtimes.
    pub check_flexible_downtime: bool,
    /// Register the item as a root problem on what depends on it (`set_myself_as_problem`).
    pub register_problem: bool,
    /// The item stopped being a problem (`no_more_a_problem`): deregister its impacts.
    pub no_more_problem: bool,
    pub ids: IdUpdate,
}

/// The exit status the state is derived from: a host's 1 becomes 0 (UP) or, with aggressive host
/// checking, 2 (DOWN).
pub fn effective_exit_status(kind: ItemKind, exit_status: u8, aggressive_host_checking: bool) -> u8 {
    match (kind, exit_status) {
        (ItemKind::Host, 1) if aggressive_host_checking => 2,
        (ItemKind::Host, 1) => 0,
        _ => exit_status,
    }
}

/// Consumes one check result (`consume_result`, §3.6), at consumption time `now`.
pub fn apply_result(item: &mut ItemState, result: &CheckResult, now: f64, opts: &StateOptions) -> Transition {
    let mut t = Transition::default();
    if result.passive && result.check_time < item.last_check {
        t.ignored = true;
        return t;
    }
    let ok = item.kind.ok_state();

    item.latency = result.latency.max(0.0);
    item.has_been_checked = true;
    item.execution_time = result.execution_time;
    item.last_check = result.check_time.trunc();
    item.output.clone_from(&result.output);
    item.long_output.clone_from(&result.long_output);
    item.check_type = if result.passive { CheckType::Passive } else { CheckType::Active };
    if opts.process_perf_data {
        item.last_perf_data = std::mem::take(&mut item.perf_data);
        item.perf_data.clone_from(&result.perf_data);
    }

    let exit = effective_exit_status(item.kind, result.exit_status, opts.aggressive_host_checking);
    item.last_state_type = item.state_type;

    // set_state_from_exit_status
    item.last_state_update = now;
    let before_impact = item.state_before_impact.take();
    let last_state = match before_impact {
        Some(real) if opts.enable_problem_impacts_states_change => real,
        _ => item.state,
    };
    item.last_state = last_state;
    item.state = State::from_exit_status(item.kind, exit, opts.aggressive_host_checking);
    item.remember_state_time(now.trunc());
    // Compared before the unreachability override: DOWN <-> UNREACHABLE is not a state change here.
    let raw_changed = item.state != last_state && !(item.state == State::Down && last_state == State::Unreachable);
    if raw_changed {
        item.last_state_change = now;
    }
    item.duration_sec = now - item.last_state_change;
    item.return_code = exit;

    let non_ok = exit != 0;
    let no_action = non_ok && result.no_action;
    if non_ok && item.kind == ItemKind::Host && result.unreachable {
        item.state = State::Unreachable;
        item.last_time_unreachable = now.trunc();
    }

    let last_ok_or_pending = last_state == ok || last_state == State::Pending;
    if !non_ok && last_ok_or_pending {
        // 1. OK after OK or PENDING.
        unacknowledge(item, &mut t);
        if item.state_type == StateType::Soft && last_state != State::Pending {
            if item.is_max_attempts() {
                item.state_type = StateType::Hard;
            }
        } else {
            item.attempt = 1;
            item.state_type = StateType::Hard;
        }
    } else if !non_ok {
        // 2. OK after non-OK.
        unacknowledge(item, &mut t);
        if item.state_type == StateType::Soft {
            if !result.dependent {
                item.add_attempt();
            }
            t.alert = Some(item.alert_line());
            t.run_event_handler = true;
        } else {
            t.alert = Some(item.alert_line());
            t.cancel_pending_notifications = true;
            t.notify = Some(NotificationKind::Recovery);
            t.run_event_handler = true;
            if item.is_problem {
                t.no_more_problem = true;
            }
            item.is_problem = false;
        }
        item.state_type = StateType::Hard;
        item.attempt = 1;
    } else if item.kind == ItemKind::Service && item.is_volatile {
        // 3. Non-OK on a volatile service: HARD and a PROBLEM every time.
        item.attempt = 1;
        item.state_type = StateType::Hard;
        go_hard_problem(item, &mut t, no_action);
    } else if last_ok_or_pending {
        // 4. Non-OK after OK or PENDING.
        if item.is_max_attempts() {
            item.state_type = StateType::Hard;
            go_hard_problem(item, &mut t, no_action);
        } else {
            item.attempt = 1;
            item.state_type = StateType::Soft;
            t.alert = Some(item.alert_line());
            t.run_event_handler = true;
        }
    } else if item.state_type == StateType::Soft {
        // 5a. Non-OK after non-OK, still SOFT.
        if !result.dependent {
            item.add_attempt();
        }
        if item.is_max_attempts() {
            item.state_type = StateType::Hard;
            go_hard_problem(item, &mut t, no_action);
        } else {
            t.alert = Some(item.alert_line());
            t.run_event_handler = true;
        }
    } else {
        // 5b. Non-OK after non-OK, HARD.
        if item.state != last_state {
            item.update_hard_unknown_phase();
            if !item.in_hard_unknown_reach_phase && !item.was_in_hard_unknown_reach_phase {
                unacknowledge_if_not_sticky(item, &mut t);
                t.alert = Some(item.alert_line());
                t.cancel_pending_notifications = true;
                if !no_action {
                    t.notify = Some(NotificationKind::Problem);
                }
            }
        } else if item.in_scheduled_downtime_during_last_check {
            t.cancel_pending_notifications = true;
            if !no_action {
                t.notify = Some(NotificationKind::Problem);
            }
        }
        if !no_action {
            item.is_problem = true;
            t.register_problem = true;
        }
    }

    item.update_hard_unknown_phase();
    item.in_scheduled_downtime_during_last_check = false;

    if item.state_type == StateType::Hard {
        item.last_hard_state = item.state;
        if item.last_state_type == StateType::Soft || item.state != last_state {
            item.last_hard_state_change = now.trunc();
            t.hard_state_changed = true;
        }
    }
    t.became_hard = item.last_state_type == StateType::Soft && item.state_type == StateType::Hard;
    t.state_changed = item.state != last_state;
    t.ids = id_update(item.state, last_state, ok);
    t
}

/// Entering a non-OK HARD state (cases 3, 4 and 5a at max attempts): alert, cancel pending
/// notifications, flexible downtimes, PROBLEM, event handler, root problem.
fn go_hard_problem(item: &mut ItemState, t: &mut Transition, no_action: bool) {
    t.alert = Some(item.alert_line());
    t.cancel_pending_notifications = true;
    t.check_flexible_downtime = true;
    if !no_action {
        t.notify = Some(NotificationKind::Problem);
    }
    t.run_event_handler = true;
    if !no_action {
        item.is_problem = true;
        t.register_problem = true;
    }
}

fn unacknowledge(item: &mut ItemState, t: &mut Transition) {
    if item.problem_has_been_acknowledged {
        item.problem_has_been_acknowledged = false;
        item.acknowledgement_sticky = false;
        item.acknowledgement = None;
        t.acknowledgement_removed = true;
    }
}

fn unacknowledge_if_not_sticky(item: &mut ItemState, t: &mut Transition) {
    if !item.acknowledgement_sticky {
        unacknowledge(item, t);
    }
}

fn id_update(state: State, last_state: State, ok: State) -> IdUpdate {
    let from_pending = last_state == State::Pending;
    let new_event = (state != last_state && !from_pending) || (state != ok && from_pending);
    if !new_event {
        return IdUpdate::default();
    }
    let problem = if state != ok && from_pending {
        ProblemIdChange::New
    } else if state != ok && last_state != ok {
        ProblemIdChange::Unchanged
    } else if state == ok {
        ProblemIdChange::Reset
    } else {
        ProblemIdChange::New
    };
    IdUpdate { new_event, problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_700_000_000.0;

    fn svc(max: u32) -> ItemState {
        ItemState::new(ItemKind::Service, max)
    }

    fn host(max: u32) -> ItemState {
        ItemState::new(ItemKind::Host, max)
    }

    fn res(code: u8, at: f64) -> CheckResult {
        CheckResult {
            exit_status: code,
            output: format!("out {code}"),
            check_time: at,
            ..Default::default()
        }
    }

    /// Feeds results at one-minute steps starting at T0; returns the transitions.
    fn feed(item: &mut ItemState, codes: &[u8]) -> Vec<Transition> {
        let opts = StateOptions::default();
        codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let at = T0 + 60.0 * i as f64;
                apply_result(item, &res(c, at), at + 1.0, &opts)
            })
            .collect()
    }

    fn at(i: usize) -> f64 {
        T0 + 60.0 * i as f64 + 1.0
    }

    #[test]
    fn initial_state_is_pending_hard_attempt_zero() {
        let s = svc(3);
        assert_eq!(
            (s.state, s.state_type, s.attempt, s.has_been_checked),
            (State::Pending, StateType::Hard, 0, false)
        );
        assert_eq!(s.output, "");
        let s = svc(3).with_initial(Some("w"), Some("assumed")).unwrap();
        assert_eq!((s.state, s.output.as_str()), (State::Warning, "assumed"));
        let h = host(2).with_initial(Some("d"), None).unwrap();
        assert_eq!(h.state, State::Down);
        assert!(host(2).with_initial(Some("w"), None).is_err());
        assert_eq!(host(2).with_initial(Some(""), None).unwrap().state, State::Pending);
    }

    #[test]
    fn exit_code_mapping() {
        use State::*;
        let svc: Vec<State> = [0, 1, 2, 3, 4, 255]
            .iter()
            .map(|&c| State::from_exit_status(ItemKind::Service, c, false))
            .collect();
        assert_eq!(svc, [Ok, Warning, Critical, Unknown, Critical, Critical]);
        let h: Vec<State> = [0, 1, 2, 3, 4]
            .iter()
            .map(|&c| State::from_exit_status(ItemKind::Host, c, false))
            .collect();
        assert_eq!(h, [Up, Up, Down, Down, Down]);
        assert_eq!(State::from_exit_status(ItemKind::Host, 1, true), Down);
        assert_eq!(effective_exit_status(ItemKind::Host, 1, false), 0);
        assert_eq!(effective_exit_status(ItemKind::Host, 1, true), 2);
        assert_eq!(effective_exit_status(ItemKind::Service, 1, true), 1);
        for s in [Ok, Warning, Critical, Unknown, Up, Down, Unreachable, Pending] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!((Down.id(), Unreachable.id(), Unknown.id()), (1, 2, 3));
    }

    #[test]
    fn aggressive_host_checking_makes_warning_down() {
        let mut h = host(1);
        let opts = StateOptions {
            aggressive_host_checking: true,
            ..Default::default()
        };
        apply_result(&mut h, &res(1, T0), T0, &opts);
        assert_eq!(h.state, State::Down);
        let mut h = host(1);
        let t = apply_result(&mut h, &res(1, T0), T0, &StateOptions::default());
        assert_eq!((h.state, h.return_code), (State::Up, 0));
        assert_eq!(t.alert, None);
    }

    #[test]
    fn case1_ok_after_pending_and_ok() {
        let mut s = svc(3);
        let tr = feed(&mut s, &[0, 0]);
        assert_eq!((s.state, s.state_type, s.attempt), (State::Ok, StateType::Hard, 1));
        assert!(s.has_been_checked);
        for t in &tr {
            assert_eq!((t.alert.as_ref(), t.notify, t.run_event_handler), (None, None, false));
        }
        assert!(tr[0].state_changed && !tr[1].state_changed);
        // PENDING -> OK changes last_state_change, OK -> OK does not.
        assert_eq!(s.last_state_change, at(0));
        assert_eq!(s.last_time_ok, at(1).trunc());
        assert_eq!(s.last_check, T0 + 60.0);
        // No event for PENDING -> OK.
        assert!(!tr[0].ids.new_event);
    }

    #[test]
    fn case2_ok_after_soft_non_ok() {
        let mut s = svc(3);
        let tr = feed(&mut s, &[0, 2, 0]);
        assert_eq!(
            (tr[1].alert.as_ref().unwrap().state_type, tr[1].alert.as_ref().unwrap().attempt),
            (StateType::Soft, 1)
        );
        let t = &tr[2];
        let a = t.alert.as_ref().unwrap();
        // The alert reports OK;SOFT;attempt+1, then the item is OK HARD attempt 1.
        assert_eq!((a.state, a.state_type, a.attempt), (State::Ok, StateType::Soft, 2));
        assert_eq!(a.format("web", "http"), "SERVICE ALERT: web;http;OK;SOFT;2;out 0");
        assert!(t.run_event_handler);
        assert_eq!(t.notify, None);
        assert!(!t.cancel_pending_notifications);
        assert_eq!((s.state, s.state_type, s.attempt), (State::Ok, StateType::Hard, 1));
        assert!(t.became_hard && t.hard_state_changed);
        assert_eq!(s.last_hard_state_change, at(2).trunc());
        assert_eq!(s.last_hard_state, State::Ok);
    }

    #[test]
    fn case2_ok_after_hard_non_ok_is_a_recovery() {
        let mut s = svc(1);
        let tr = feed(&mut s, &[0, 2, 0]);
        assert_eq!(tr[1].notify, Some(NotificationKind::Problem));
        assert!(tr[1].register_problem);
        let t = &tr[2];
        assert_eq!(t.notify, Some(NotificationKind::Recovery));
        assert!(t.cancel_pending_notifications && t.run_event_handler && t.no_more_problem);
        let a = t.alert.as_ref().unwrap();
        assert_eq!((a.state, a.state_type, a.attempt), (State::Ok, StateType::Hard, 1));
        assert_eq!(
            (s.state, s.state_type, s.attempt, s.is_problem),
            (State::Ok, StateType::Hard, 1, false)
        );
        assert!(t.hard_state_changed && !t.became_hard);
        assert_eq!(
            t.ids,
            IdUpdate {
                new_event: true,
                problem: ProblemIdChange::Reset
            }
        );
    }

    #[test]
    fn case3_volatile_service_notifies_every_non_ok() {
        let mut s = svc(3);
        s.is_volatile = true;
        let tr = feed(&mut s, &[0, 2, 2, 2, 0]);
        for t in &tr[1..4] {
            assert_eq!(t.notify, Some(NotificationKind::Problem));
            assert!(t.run_event_handler && t.cancel_pending_notifications && t.check_flexible_downtime && t.register_problem);
            let a = t.alert.as_ref().unwrap();
            assert_eq!((a.state_type, a.attempt), (StateType::Hard, 1));
        }
        assert_eq!(tr[4].notify, Some(NotificationKind::Recovery));
        // Volatility is a service property: a host ignores it.
        let mut h = host(3);
        h.is_volatile = true;
        let tr = feed(&mut h, &[0, 2]);
        assert_eq!((h.state_type, tr[1].notify), (StateType::Soft, None));
    }

    #[test]
    fn case4_non_ok_after_ok_max_one_is_hard_at_once() {
        let mut s = svc(1);
        let tr = feed(&mut s, &[0, 2]);
        let t = &tr[1];
        assert_eq!((s.state, s.state_type, s.attempt), (State::Critical, StateType::Hard, 1));
        assert_eq!(t.notify, Some(NotificationKind::Problem));
        assert!(t.cancel_pending_notifications && t.check_flexible_downtime && t.run_event_handler && t.register_problem);
        assert!(s.is_problem);
        assert_eq!(
            t.alert.as_ref().unwrap().format("h", "s"),
            "SERVICE ALERT: h;s;CRITICAL;HARD;1;out 2"
        );
        assert!(t.hard_state_changed && !t.became_hard);
        assert_eq!(
            t.ids,
            IdUpdate {
                new_event: true,
                problem: ProblemIdChange::New
            }
        );
    }

    #[test]
    fn case4_non_ok_after_ok_max_three_starts_soft() {
        let mut s = svc(3);
        let tr = feed(&mut s, &[0, 2]);
        let t = &tr[1];
        assert_eq!((s.state, s.state_type, s.attempt), (State::Critical, StateType::Soft, 1));
        assert_eq!(t.notify, None);
        assert!(t.run_event_handler && !t.cancel_pending_notifications && !t.register_problem);
        assert_eq!(
            t.alert.as_ref().unwrap().format("h", "s"),
            "SERVICE ALERT: h;s;CRITICAL;SOFT;1;out 2"
        );
        assert!(!t.hard_state_changed);
        assert_eq!(s.last_hard_state, State::Ok);
    }

    #[test]
    fn case4_from_pending_counts_from_attempt_zero() {
        // Shinken quirk kept: PENDING has attempt 0, so with max_check_attempts 1 the first
        // failure is SOFT 1/1 and the next one goes HARD.
        let mut s = svc(1);
        let tr = feed(&mut s, &[2, 2]);
        assert_eq!(tr[0].alert.as_ref().unwrap().state_type, StateType::Soft);
        assert_eq!(tr[0].notify, None);
        assert_eq!(tr[1].notify, Some(NotificationKind::Problem));
        assert_eq!((s.state_type, s.attempt), (StateType::Hard, 1));
        assert_eq!(
            tr[0].ids,
            IdUpdate {
                new_event: true,
                problem: ProblemIdChange::New
            }
        );
    }

    #[test]
    fn case5_soft_progression_to_hard() {
        let mut s = svc(3);
        let tr = feed(&mut s, &[0, 1, 1, 1, 1]);
        let seen: Vec<(StateType, u32)> = tr[1..4]
            .iter()
            .map(|t| t.alert.as_ref().map(|a| (a.state_type, a.attempt)).unwrap())
            .collect();
        assert_eq!(seen, [(StateType::Soft, 1), (StateType::Soft, 2), (StateType::Hard, 3)]);
        assert!(tr[1..4].iter().all(|t| t.run_event_handler));
        assert_eq!(tr[1].notify, None);
        assert_eq!(tr[2].notify, None);
        assert_eq!(tr[3].notify, Some(NotificationKind::Problem));
        assert!(tr[3].became_hard && tr[3].hard_state_changed && tr[3].register_problem && tr[3].check_flexible_downtime);
        // Same HARD state again: nothing to say, attempts stay at max, still registered as a problem.
        let t = &tr[4];
        assert_eq!((t.alert.as_ref(), t.notify, t.run_event_handler), (None, None, false));
        assert!(t.register_problem);
        assert_eq!((s.state_type, s.attempt), (StateType::Hard, 3));
        assert_eq!(s.last_hard_state_change, at(3).trunc());
        // WARNING since the first failure.
        assert_eq!(s.last_state_change, at(1));
        assert_eq!(s.duration_sec, at(4) - at(1));
    }

    #[test]
    fn attempts_never_exceed_max() {
        let mut s = svc(2);
        feed(&mut s, &[0, 2, 2, 2, 2, 2]);
        assert_eq!(s.attempt, 2);
        // A lowered max (reload) with a higher attempt: the next SOFT result clamps and goes HARD.
        let mut s = svc(5);
        feed(&mut s, &[0, 2, 2, 2]);
        assert_eq!((s.state_type, s.attempt), (StateType::Soft, 3));
        s.max_check_attempts = 2;
        let t = apply_result(&mut s, &res(2, T0 + 1000.0), T0 + 1000.0, &StateOptions::default());
        assert_eq!(
            (s.state_type, s.attempt, t.notify),
            (StateType::Hard, 2, Some(NotificationKind::Problem))
        );
    }

    #[test]
    fn hard_warning_to_critical_renotifies() {
        let mut s = svc(1);
        let tr = feed(&mut s, &[0, 1, 2]);
        let t = &tr[2];
        assert_eq!(t.notify, Some(NotificationKind::Problem));
        assert!(t.cancel_pending_notifications && t.hard_state_changed);
        assert!(!t.run_event_handler);
        assert_eq!(
            t.alert.as_ref().unwrap().format("h", "s"),
            "SERVICE ALERT: h;s;CRITICAL;HARD;1;out 2"
        );
        // WARNING -> CRITICAL is a new event within the same problem.
        assert_eq!(
            t.ids,
            IdUpdate {
                new_event: true,
                problem: ProblemIdChange::Unchanged
            }
        );
    }

    #[test]
    fn hard_unknown_phase_does_not_renotify() {
        let mut s = svc(1);
        let tr = feed(&mut s, &[0, 2, 3, 2]);
        assert_eq!(tr[1].notify, Some(NotificationKind::Problem));
        // CRITICAL -> UNKNOWN: phase entered, no alert nor notification.
        assert_eq!((tr[2].alert.as_ref(), tr[2].notify), (None, None));
        assert!(s.state == State::Critical);
        // UNKNOWN -> back to CRITICAL: no notification either.
        assert_eq!((tr[3].alert.as_ref(), tr[3].notify), (None, None));
        assert!(!s.in_hard_unknown_reach_phase && !s.was_in_hard_unknown_reach_phase);
        // But the state changes are recorded.
        assert!(tr[2].hard_state_changed && tr[3].hard_state_changed);
        // Leaving the phase for another state does notify.
        let mut s = svc(1);
        let tr = feed(&mut s, &[0, 2, 3, 1]);
        assert_eq!(tr[3].notify, Some(NotificationKind::Problem));
        assert_eq!(tr[3].alert.as_ref().unwrap().state, State::Warning);
        // Next CRITICAL after that is a plain HARD change: notifies.
        let t = apply_result(&mut s, &res(2, T0 + 500.0), T0 + 500.0, &StateOptions::default());
        assert_eq!(t.notify, Some(NotificationKind::Problem));
    }

    #[test]
    fn acknowledgement_cleared_on_recovery() {
        let mut s = svc(1);
        feed(&mut s, &[0, 2]);
        s.problem_has_been_acknowledged = true;
        let t = apply_result(&mut s, &res(0, T0 + 500.0), T0 + 500.0, &StateOptions::default());
        assert!(t.acknowledgement_removed && !s.problem_has_been_acknowledged);
        // Sticky makes no difference on recovery.
        let mut s = svc(1);
        feed(&mut s, &[0, 2]);
        s.problem_has_been_acknowledged = true;
        s.acknowledgement_sticky = true;
        let t = apply_result(&mut s, &res(0, T0 + 500.0), T0 + 500.0, &StateOptions::default());
        assert!(t.acknowledgement_removed && !s.problem_has_been_acknowledged && !s.acknowledgement_sticky);
    }

    #[test]
    fn acknowledgement_sticky_kept_across_non_ok_changes() {
        let mut s = svc(1);
        feed(&mut s, &[0, 1]);
        s.problem_has_been_acknowledged = true;
        s.acknowledgement_sticky = true;
        let t = apply_result(&mut s, &res(2, T0 + 500.0), T0 + 500.0, &StateOptions::default());
        assert!(s.problem_has_been_acknowledged && !t.acknowledgement_removed);
        assert_eq!(t.notify, Some(NotificationKind::Problem)); // raised; the notification logic blocks it (acked)
        // Non-sticky: removed on the state change.
        let mut s = svc(1);
        feed(&mut s, &[0, 1]);
        s.problem_has_been_acknowledged = true;
        let t = apply_result(&mut s, &res(2, T0 + 500.0), T0 + 500.0, &StateOptions::default());
        assert!(!s.problem_has_been_acknowledged && t.acknowledgement_removed);
        // Same non-OK state again: a non-sticky ack stays.
        s.problem_has_been_acknowledged = true;
        let t = apply_result(&mut s, &res(2, T0 + 600.0), T0 + 600.0, &StateOptions::default());
        assert!(s.problem_has_been_acknowledged && !t.acknowledgement_removed);
    }

    #[test]
    fn host_unreachable_and_down_keep_last_state_change() {
        let opts = StateOptions::default();
        let mut h = host(1);
        apply_result(&mut h, &res(0, T0), T0, &opts);
        let unreachable = CheckResult {
            unreachable: true,
            ..res(2, T0 + 60.0)
        };
        let t = apply_result(&mut h, &unreachable, T0 + 60.0, &opts);
        assert_eq!((h.state, h.state_type), (State::Unreachable, StateType::Hard));
        assert_eq!(
            t.alert.as_ref().unwrap().format("gw", ""),
            "HOST ALERT: gw;UNREACHABLE;HARD;1;out 2"
        );
        assert_eq!(h.last_state_change, T0 + 60.0);
        assert_eq!(h.last_time_unreachable, T0 + 60.0);
        // UNREACHABLE -> DOWN: state changes, last_state_change does not; the hard phase started
        // from UP, so leaving it for DOWN notifies.
        let t = apply_result(&mut h, &res(2, T0 + 120.0), T0 + 120.0, &opts);
        assert_eq!((h.last_state, h.state), (State::Unreachable, State::Down));
        assert_eq!(h.last_state_change, T0 + 60.0);
        assert!(t.state_changed);
        assert_eq!(t.notify, Some(NotificationKind::Problem));
        // DOWN -> UNREACHABLE (parents went down): phase entered, silent.
        let t = apply_result(&mut h, &unreachable, T0 + 180.0, &opts);
        assert_eq!((h.state, t.notify, t.alert.as_ref()), (State::Unreachable, None, None));
        // Back to DOWN: the state it entered from, silent too.
        let t = apply_result(&mut h, &res(2, T0 + 240.0), T0 + 240.0, &opts);
        assert_eq!((h.state, t.notify), (State::Down, None));
        assert_eq!(h.last_state_change, T0 + 60.0);
    }

    #[test]
    fn unreachable_flag_ignored_for_services_and_up_hosts() {
        let opts = StateOptions::default();
        let mut h = host(1);
        apply_result(
            &mut h,
            &CheckResult {
                unreachable: true,
                ..res(0, T0)
            },
            T0,
            &opts,
        );
        assert_eq!(h.state, State::Up);
        let mut s = svc(1);
        apply_result(
            &mut s,
            &CheckResult {
                unreachable: true,
                ..res(2, T0)
            },
            T0,
            &opts,
        );
        assert_eq!(s.state, State::Critical);
    }

    #[test]
    fn dependent_result_does_not_count_an_attempt() {
        let opts = StateOptions::default();
        let mut s = svc(3);
        feed(&mut s, &[0, 2]);
        assert_eq!(s.attempt, 1);
        let dep = CheckResult {
            dependent: true,
            ..res(2, T0 + 500.0)
        };
        let t = apply_result(&mut s, &dep, T0 + 500.0, &opts);
        assert_eq!((s.attempt, s.state_type), (1, StateType::Soft));
        assert!(t.run_event_handler);
        // Nor on the OK-after-SOFT path.
        let dep_ok = CheckResult {
            dependent: true,
            ..res(0, T0 + 600.0)
        };
        let t = apply_result(&mut s, &dep_ok, T0 + 600.0, &opts);
        assert_eq!(t.alert.unwrap().attempt, 1);
    }

    #[test]
    fn no_action_suppresses_problem_and_root_registration() {
        let opts = StateOptions::default();
        let mut s = svc(1);
        feed(&mut s, &[0]);
        let t = apply_result(
            &mut s,
            &CheckResult {
                no_action: true,
                ..res(2, T0 + 60.0)
            },
            T0 + 60.0,
            &opts,
        );
        assert_eq!(t.notify, None);
        assert!(t.alert.is_some() && t.run_event_handler && !t.register_problem && !s.is_problem);
        // On an OK result it is not consulted (Shinken only computes it for failures).
        let t = apply_result(
            &mut s,
            &CheckResult {
                no_action: true,
                ..res(0, T0 + 120.0)
            },
            T0 + 120.0,
            &opts,
        );
        assert_eq!(t.notify, Some(NotificationKind::Recovery));
    }

    #[test]
    fn downtime_ended_renotifies_same_hard_state() {
        let mut s = svc(1);
        feed(&mut s, &[0, 2]);
        s.in_scheduled_downtime_during_last_check = true;
        let t = apply_result(&mut s, &res(2, T0 + 500.0), T0 + 500.0, &StateOptions::default());
        assert_eq!(t.notify, Some(NotificationKind::Problem));
        assert!(t.cancel_pending_notifications && t.alert.is_none());
        assert!(!s.in_scheduled_downtime_during_last_check);
    }

    #[test]
    fn old_passive_result_is_ignored() {
        let opts = StateOptions::default();
        let mut s = svc(1);
        apply_result(&mut s, &res(0, T0 + 100.0), T0 + 100.0, &opts);
        let before = s.clone();
        let old = CheckResult {
            passive: true,
            ..res(2, T0 + 50.0)
        };
        let t = apply_result(&mut s, &old, T0 + 200.0, &opts);
        assert!(t.ignored);
        assert_eq!(s, before);
        // Same second is accepted, and marks the check type.
        let same = CheckResult {
            passive: true,
            ..res(2, T0 + 100.0)
        };
        let t = apply_result(&mut s, &same, T0 + 200.0, &opts);
        assert!(!t.ignored);
        assert_eq!((s.state, s.check_type), (State::Critical, CheckType::Passive));
        // Old active results are consumed (only passive ones are filtered).
        let t = apply_result(&mut s, &res(0, T0), T0 + 300.0, &opts);
        assert!(!t.ignored);
    }

    #[test]
    fn result_fields_are_copied() {
        let mut s = svc(1);
        s.perf_data = "old=1".into();
        let r = CheckResult {
            exit_status: 0,
            output: "fine".into(),
            long_output: "more".into(),
            perf_data: "new=2".into(),
            check_time: T0 + 0.7,
            execution_time: 0.25,
            latency: -3.0,
            ..Default::default()
        };
        apply_result(&mut s, &r, T0 + 2.5, &StateOptions::default());
        assert_eq!((s.output.as_str(), s.long_output.as_str()), ("fine", "more"));
        assert_eq!((s.perf_data.as_str(), s.last_perf_data.as_str()), ("new=2", "old=1"));
        assert_eq!(
            (s.last_check, s.last_state_update, s.execution_time, s.latency),
            (T0, T0 + 2.5, 0.25, 0.0)
        );
        let mut s = svc(1);
        s.perf_data = "old=1".into();
        apply_result(
            &mut s,
            &r,
            T0,
            &StateOptions {
                process_perf_data: false,
                ..Default::default()
            },
        );
        assert_eq!(s.perf_data, "old=1");
    }

    #[test]
    fn impact_state_uses_real_last_state() {
        let opts = StateOptions {
            enable_problem_impacts_states_change: true,
            ..Default::default()
        };
        let mut h = host(1);
        apply_result(&mut h, &res(0, T0), T0, &opts);
        // The impact logic shows UNREACHABLE while the real state is UP.
        h.state_before_impact = Some(h.state);
        h.state = State::Unreachable;
        let t = apply_result(&mut h, &res(0, T0 + 60.0), T0 + 60.0, &opts);
        assert_eq!((h.last_state, t.alert.as_ref(), t.notify), (State::Up, None, None));
        assert_eq!(h.state_before_impact, None);
    }

    #[test]
    fn event_and_problem_ids() {
        let mut counters = EventCounters::default();
        let opts = StateOptions::default();
        let mut a = svc(1);
        let mut b = host(1);
        let mut step = |item: &mut ItemState, code: u8, t: f64| {
            let tr = apply_result(item, &res(code, t), t, &opts);
            counters.assign(item, tr.ids);
        };
        step(&mut a, 2, T0); // PENDING -> CRITICAL: event 1, problem 1
        assert_eq!((a.current_event_id, a.current_problem_id), (1, 1));
        step(&mut b, 0, T0); // PENDING -> UP: nothing
        assert_eq!((b.current_event_id, b.current_problem_id), (0, 0));
        step(&mut b, 2, T0 + 1.0); // UP -> DOWN: event 2, problem 2
        assert_eq!((b.current_event_id, b.current_problem_id), (2, 2));
        step(&mut a, 1, T0 + 2.0); // CRITICAL -> WARNING: event 3, same problem
        assert_eq!((a.current_event_id, a.last_event_id, a.current_problem_id), (3, 1, 1));
        step(&mut a, 0, T0 + 3.0); // -> OK: event 4, problem reset
        assert_eq!((a.current_event_id, a.current_problem_id, a.last_problem_id), (4, 0, 1));
        step(&mut a, 0, T0 + 4.0); // OK -> OK: nothing
        assert_eq!(a.current_event_id, 4);
    }

    #[test]
    fn last_time_non_ok() {
        let mut s = svc(3);
        assert_eq!(s.last_time_non_ok_or_up(), 0.0);
        feed(&mut s, &[0, 1, 2]);
        assert_eq!(s.last_time_non_ok_or_up(), at(1).trunc());
        let mut h = host(3);
        feed(&mut h, &[0, 2]);
        assert_eq!(h.last_time_non_ok_or_up(), at(1).trunc());
    }

    #[test]
    fn host_alert_format() {
        let mut h = host(2);
        let tr = feed(&mut h, &[0, 2, 2]);
        assert_eq!(
            tr[1].alert.as_ref().unwrap().format("srv", "ignored"),
            "HOST ALERT: srv;DOWN;SOFT;1;out 2"
        );
        assert_eq!(tr[2].alert.as_ref().unwrap().format("srv", ""), "HOST ALERT: srv;DOWN;HARD;2;out 2");
    }
}
