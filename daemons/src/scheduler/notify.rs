//! Notifications and event handlers (semantics §3.7, §3.8, §3.9): the decisions, pure.
//!
//! Time is an argument, timeperiods are asked through [`Periods`], contacts and escalations come
//! in resolved ([`Contact`], [`Escalation`]); the engine does the bookkeeping (master
//! notifications kept in [`ItemState::pending_notifications`], children handed to reactionners,
//! log lines and broks).
//!
//! Shinken's flow, kept: an event creates one *master* notification ([`master_time`],
//! [`master_number`]); each tick a due master is *scattered* ([`scatter`]) unless the item blocks
//! it ([`blocked_by_item`]) into one child per contact and notification command the contact's
//! notification ways want ([`way_wants`]); a PROBLEM master is then re-armed every
//! `notification_interval` ([`after_scatter`], [`next_notification_time`]), any other type is
//! dropped after one scatter. Escalations ([`escalation_eligible`]) replace the contacts and may
//! shorten the interval. Event handlers: [`event_handler`]; flapping: [`update_flapping`].
//!
//! Shinken's quirks kept: the contact's periods are asked at the item's last check time; a
//! service's downtime notifications look at the way's *host* options (`s`); CUSTOM is wanted by
//! no way; hosts' flap thresholds default to 25/50. Differences, on purpose: a notification way
//! (or a contact's own lines) without `*_notification_options` takes every option (Shinken's
//! default is an empty list, which silently sends nothing); DOWNTIMECANCELLED is raised, as the
//! semantics reference and Nagios say (Shinken 2.4 has that line commented out); contacts have
//! no downtimes (no command schedules them) and there are no business rules, so neither blocks.

use super::state::{ItemKind, ItemState, PendingNotification, State, StateType};

/// A notification's type (`NOTIFICATIONTYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationType {
    Problem,
    Recovery,
    Acknowledgement,
    FlappingStart,
    FlappingStop,
    FlappingDisabled,
    DowntimeStart,
    DowntimeEnd,
    DowntimeCancelled,
    Custom,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::Problem => "PROBLEM",
            NotificationType::Recovery => "RECOVERY",
            NotificationType::Acknowledgement => "ACKNOWLEDGEMENT",
            NotificationType::FlappingStart => "FLAPPINGSTART",
            NotificationType::FlappingStop => "FLAPPINGSTOP",
            NotificationType::FlappingDisabled => "FLAPPINGDISABLED",
            NotificationType::DowntimeStart => "DOWNTIMESTART",
            NotificationType::DowntimeEnd => "DOWNTIMEEND",
            NotificationType::DowntimeCancelled => "DOWNTIMECANCELLED",
            NotificationType::Custom => "CUSTOM",
        }
    }

    pub fn parse(s: &str) -> Option<NotificationType> {
        Some(match s {
            "PROBLEM" => NotificationType::Problem,
            "RECOVERY" => NotificationType::Recovery,
            "ACKNOWLEDGEMENT" => NotificationType::Acknowledgement,
            "FLAPPINGSTART" => NotificationType::FlappingStart,
            "FLAPPINGSTOP" => NotificationType::FlappingStop,
            "FLAPPINGDISABLED" => NotificationType::FlappingDisabled,
            "DOWNTIMESTART" => NotificationType::DowntimeStart,
            "DOWNTIMEEND" => NotificationType::DowntimeEnd,
            "DOWNTIMECANCELLED" => NotificationType::DowntimeCancelled,
            "CUSTOM" => NotificationType::Custom,
            _ => return None,
        })
    }

    pub fn is_flapping(self) -> bool {
        matches!(
            self,
            NotificationType::FlappingStart | NotificationType::FlappingStop | NotificationType::FlappingDisabled
        )
    }

    pub fn is_downtime(self) -> bool {
        matches!(
            self,
            NotificationType::DowntimeStart | NotificationType::DowntimeEnd | NotificationType::DowntimeCancelled
        )
    }
}

/// Timeperiods as the rules ask them (a name not defined is always valid).
pub trait Periods {
    fn valid(&self, name: &str, t: f64) -> bool;
    /// The first valid time at or after `t`; none when the period never is.
    fn next_valid(&self, name: &str, t: f64) -> Option<f64>;
}

impl Periods for shinken_config::timeperiod::Timeperiods {
    fn valid(&self, name: &str, t: f64) -> bool {
        self.is_valid(name, t as i64)
    }

    fn next_valid(&self, name: &str, t: f64) -> Option<f64> {
        // Sub-second precision is kept when `t` itself is valid.
        if self.is_valid(name, t as i64) {
            return Some(t);
        }
        shinken_config::timeperiod::Timeperiods::next_valid(self, name, t as i64).map(|v| v as f64)
    }
}

/// Every time is valid (tests, items without periods).
pub struct Always;

impl Periods for Always {
    fn valid(&self, _: &str, _: f64) -> bool {
        true
    }
    fn next_valid(&self, _: &str, t: f64) -> Option<f64> {
        Some(t)
    }
}

/// One option letter list (`w,u,c,r,f,s`), as a set of letters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Options(pub String);

impl Options {
    /// From the configuration's comma list (`w,u,c`; `all` or `a` is everything of `kind`).
    pub fn parse(text: &str, all: &str) -> Options {
        let mut out = String::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "a" || part == "all" {
                out.push_str(all);
            } else if let Some(c) = part.chars().next() {
                out.push(c);
            }
        }
        Options(out)
    }

    pub fn has(&self, c: char) -> bool {
        self.0.contains(c)
    }
}

/// Defaults (semantics §3.7).
pub const SERVICE_OPTIONS_DEFAULT: &str = "w,u,c,r,f,s";
pub const HOST_OPTIONS_DEFAULT: &str = "d,u,r,f";

/// An item's notification settings, from its definition.
#[derive(Clone, Debug)]
pub struct NotifSettings {
    pub notifications_enabled: bool,
    /// Interval units; 0: notify once.
    pub notification_interval: f64,
    /// Interval units.
    pub first_notification_delay: f64,
    pub notification_options: Options,
    pub notification_period: Option<String>,
    /// Indexes into the engine's contacts: `contacts` and the members of `contact_groups`.
    pub contacts: Vec<u32>,
    /// Indexes into the engine's escalations that apply to the item.
    pub escalations: Vec<u32>,
    /// `business_impact` (default 2), for `min_business_impact`.
    pub business_impact: u32,
}

impl Default for NotifSettings {
    fn default() -> Self {
        NotifSettings {
            notifications_enabled: true,
            notification_interval: 60.0,
            first_notification_delay: 0.0,
            notification_options: Options::parse(SERVICE_OPTIONS_DEFAULT, ""),
            notification_period: None,
            contacts: Vec::new(),
            escalations: Vec::new(),
            business_impact: 2,
        }
    }
}

/// What item-level blocking looks at.
#[derive(Clone, Copy, Debug)]
pub struct ItemView<'a> {
    pub state: &'a ItemState,
    /// A service's host (none for a host).
    pub host: Option<&'a ItemState>,
    pub settings: &'a NotifSettings,
    /// The global `enable_notifications`.
    pub enable_notifications: bool,
}

/// `notification_is_blocked_by_item` (semantics §3.7), for type `ty` at time `t`.
pub fn blocked_by_item(v: &ItemView, ty: NotificationType, t: f64, periods: &dyn Periods) -> bool {
    let s = v.state;
    let o = &v.settings.notification_options;
    if !v.enable_notifications {
        return true;
    }
    if let Some(p) = &v.settings.notification_period
        && !periods.valid(p, t)
    {
        return true;
    }
    if !v.settings.notifications_enabled || o.has('n') {
        return true;
    }
    if matches!(ty, NotificationType::Problem | NotificationType::Recovery) {
        let letter = match s.state {
            State::Unknown | State::Unreachable => Some('u'),
            State::Warning => Some('w'),
            State::Critical => Some('c'),
            State::Down => Some('d'),
            State::Ok | State::Up => Some('r'),
            State::Pending => None,
        };
        if letter.is_some_and(|l| !o.has(l)) {
            return true;
        }
    }
    if ty.is_flapping() && !o.has('f') {
        return true;
    }
    if ty.is_downtime() && !o.has('s') {
        return true;
    }
    if ty == NotificationType::Acknowledgement && s.state.is_ok_up() {
        return true;
    }
    if s.scheduled_downtime_depth > 1 && !matches!(ty, NotificationType::DowntimeEnd | NotificationType::DowntimeCancelled) {
        return true;
    }
    if let Some(h) = v.host
        && h.scheduled_downtime_depth > 0
    {
        return true;
    }
    if s.scheduled_downtime_depth > 0 && (matches!(ty, NotificationType::Problem | NotificationType::Recovery) || ty.is_flapping()) {
        return true;
    }
    if s.state_type == StateType::Soft && ty == NotificationType::Problem {
        return true;
    }
    if s.problem_has_been_acknowledged && ty != NotificationType::Acknowledgement {
        return true;
    }
    if s.is_flapping && !ty.is_flapping() {
        return true;
    }
    // A service whose host is not UP (DOWN, UNREACHABLE, or not checked yet) is silent.
    if let Some(h) = v.host
        && h.state != State::Up
    {
        return true;
    }
    false
}

/// When a new master notification of type `ty` is due (`create_notifications`), or none when
/// it is not created at all: blocked now while neither `first_notification_delay` nor
/// `notification_interval` could make it go out later, or no valid time left in the
/// notification period.
pub fn master_time(v: &ItemView, ty: NotificationType, now: f64, interval_length: f64, periods: &dyn Periods) -> Option<f64> {
    let s = v.state;
    let mut wished = now;
    if s.current_notification_number == 0 && ty == NotificationType::Problem {
        let since = s.last_time_non_ok_or_up();
        let delay = v.settings.first_notification_delay * interval_length;
        wished = if since == 0.0 { now + delay } else { since + delay };
    }
    if blocked_by_item(v, ty, wished, periods) && v.settings.first_notification_delay == 0.0 && v.settings.notification_interval == 0.0 {
        return None;
    }
    match &v.settings.notification_period {
        Some(p) => periods.next_valid(p, wished),
        None => Some(wished),
    }
}

/// The number a new master carries: PROBLEM the next one, RECOVERY 0 (and the item's counter is
/// reset by the caller), the others the current one.
pub fn master_number(state: &ItemState, ty: NotificationType) -> u32 {
    match ty {
        NotificationType::Problem => state.current_notification_number + 1,
        NotificationType::Recovery => 0,
        _ => state.current_notification_number,
    }
}

/// One notification way of a contact (or the contact's own lines).
#[derive(Clone, Debug)]
pub struct Way {
    pub host_notifications_enabled: bool,
    pub service_notifications_enabled: bool,
    pub host_notification_period: Option<String>,
    pub service_notification_period: Option<String>,
    pub host_notification_options: Options,
    pub service_notification_options: Options,
    /// Command calls (`notify-by-email!x`).
    pub host_notification_commands: Vec<String>,
    pub service_notification_commands: Vec<String>,
    pub min_business_impact: u32,
}

impl Way {
    pub fn commands(&self, kind: ItemKind) -> &[String] {
        match kind {
            ItemKind::Host => &self.host_notification_commands,
            ItemKind::Service => &self.service_notification_commands,
        }
    }
}

/// A contact: its name and notification ways.
#[derive(Clone, Debug)]
pub struct Contact {
    pub name: String,
    /// Index of its definition among the configuration's contacts (for macros).
    pub obj: u32,
    /// The contact's own switches, checked before its ways.
    pub host_notifications_enabled: bool,
    pub service_notifications_enabled: bool,
    pub ways: Vec<Way>,
}

/// `want_service_notification` / `want_host_notification` of one way, at time `t` (Shinken
/// passes the item's last check time).
pub fn way_wants(
    way: &Way,
    kind: ItemKind,
    state: State,
    ty: NotificationType,
    business_impact: u32,
    t: f64,
    periods: &dyn Periods,
) -> bool {
    let (enabled, period, o) = match kind {
        ItemKind::Host => (
            way.host_notifications_enabled,
            &way.host_notification_period,
            &way.host_notification_options,
        ),
        ItemKind::Service => (
            way.service_notifications_enabled,
            &way.service_notification_period,
            &way.service_notification_options,
        ),
    };
    if !enabled || business_impact < way.min_business_impact || o.has('n') {
        return false;
    }
    let in_period = period.as_deref().is_none_or(|p| periods.valid(p, t));
    match ty {
        NotificationType::Problem => {
            let letter = match state {
                State::Warning => 'w',
                State::Critical => 'c',
                State::Unknown | State::Unreachable => 'u',
                State::Down => 'd',
                _ => return false,
            };
            in_period && o.has(letter)
        }
        NotificationType::Recovery => in_period && o.has('r'),
        NotificationType::Acknowledgement => in_period,
        t if t.is_flapping() => in_period && o.has('f'),
        // Shinken's quirk, kept: downtime notifications look at the way's *host* options, for
        // services too ("According to the documentation we need to look at _host_ options").
        t if t.is_downtime() => in_period && way.host_notification_options.has('s'),
        // CUSTOM is not wanted by any way (Shinken returns False).
        _ => false,
    }
}

/// An escalation (`serviceescalation`, `hostescalation`, or a named `escalation`).
#[derive(Clone, Debug)]
pub struct Escalation {
    pub name: String,
    pub first_notification: u32,
    /// 0: no end.
    pub last_notification: u32,
    /// Time-based (`first_notification_time`/`last_notification_time`, interval units).
    pub time_based: bool,
    pub first_notification_time: f64,
    pub last_notification_time: f64,
    /// Interval units; -1: not set.
    pub notification_interval: f64,
    pub escalation_period: Option<String>,
    /// Letters among d,u,r,w,c (default all).
    pub escalation_options: Options,
    /// Indexes into the engine's contacts.
    pub contacts: Vec<u32>,
}

/// `Escalation.is_eligible`: by notification number (or time since the problem's first
/// notification), item state among `escalation_options`, inside `escalation_period`.
pub fn escalation_eligible(
    es: &Escalation,
    t: f64,
    state: State,
    number: u32,
    in_notif_time: f64,
    interval_length: f64,
    periods: &dyn Periods,
) -> bool {
    if es.time_based {
        if in_notif_time < es.first_notification_time * interval_length {
            return false;
        }
        if es.last_notification_time != 0.0 && in_notif_time > es.last_notification_time * interval_length {
            return false;
        }
    } else {
        if number < es.first_notification {
            return false;
        }
        if es.last_notification != 0 && number > es.last_notification {
            return false;
        }
    }
    let letter = match state {
        State::Warning => Some('w'),
        State::Unknown | State::Unreachable => Some('u'),
        State::Critical => Some('c'),
        State::Down => Some('d'),
        // `o` is never in the options: an escalation never applies to an OK item.
        State::Ok | State::Up => Some('o'),
        State::Pending => None,
    };
    if letter.is_some_and(|l| !es.escalation_options.has(l)) {
        return false;
    }
    es.escalation_period.as_deref().is_none_or(|p| periods.valid(p, t))
}

/// One per-contact notification to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// Index into the engine's contacts.
    pub contact: u32,
    /// The notification command call.
    pub command: String,
    pub escalated: bool,
}

/// What scattering one master produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scattered {
    pub children: Vec<Child>,
    /// The item's `notified_contacts` after the scatter.
    pub notified_contacts: Vec<String>,
    /// Escalations started by this scatter (names), to remember on the master.
    pub started_escalations: Vec<String>,
}

/// The inputs of one scatter.
pub struct ScatterInput<'a> {
    pub view: ItemView<'a>,
    pub master: &'a PendingNotification,
    pub contacts: &'a [Contact],
    pub escalations: &'a [Escalation],
    pub interval_length: f64,
}

/// `scatter_notification`: the children of a due master at `now` (the caller checked
/// [`blocked_by_item`] first). RECOVERY goes to the contacts that had the PROBLEM only (and
/// clears that list); otherwise the escalation contacts if an escalation applies, else the
/// item's. A contact already notified of the problem is skipped when `notification_interval` is
/// 0. Each contact gets one child per notification command of a way that wants it.
pub fn scatter(inp: &ScatterInput, now: f64, periods: &dyn Periods) -> Scattered {
    let v = &inp.view;
    let s = v.state;
    let m = inp.master;
    let ty = NotificationType::parse(&m.kind).unwrap_or(NotificationType::Custom);
    let kind = s.kind;
    let mut out = Scattered {
        notified_contacts: s.notified_contacts.clone(),
        ..Scattered::default()
    };
    let mut escalated = false;
    let targets: Vec<u32> = if ty == NotificationType::Recovery {
        let names = std::mem::take(&mut out.notified_contacts);
        if v.settings.first_notification_delay != 0.0 && names.is_empty() {
            Vec::new()
        } else {
            inp.contacts
                .iter()
                .enumerate()
                .filter(|(_, c)| names.contains(&c.name))
                .map(|(i, _)| i as u32)
                .collect()
        }
    } else {
        let in_notif_time = now - m.creation_time;
        let eligible: Vec<&Escalation> = v
            .settings
            .escalations
            .iter()
            .filter_map(|&e| inp.escalations.get(e as usize))
            .filter(|es| escalation_eligible(es, m.t_to_go, s.state, m.number, in_notif_time, inp.interval_length, periods))
            .collect();
        if eligible.is_empty() {
            v.settings.contacts.clone()
        } else {
            escalated = true;
            let mut set: Vec<u32> = Vec::new();
            for es in eligible {
                out.started_escalations.push(es.name.clone());
                for &c in &es.contacts {
                    if !set.contains(&c) {
                        set.push(c);
                    }
                }
            }
            set
        }
    };
    for ci in targets {
        let Some(c) = inp.contacts.get(ci as usize) else { continue };
        if ty == NotificationType::Problem && v.settings.notification_interval == 0.0 && s.notified_contacts.contains(&c.name) {
            continue;
        }
        let mut commands: Vec<&String> = Vec::new();
        let contact_enabled = match kind {
            ItemKind::Host => c.host_notifications_enabled,
            ItemKind::Service => c.service_notifications_enabled,
        };
        // Shinken asks the contact's periods at the item's last check time, not now.
        let t = if s.last_check > 0.0 { s.last_check } else { now };
        for w in c.ways.iter().filter(|_| contact_enabled) {
            if !way_wants(w, kind, s.state, ty, v.settings.business_impact, t, periods) {
                continue;
            }
            for cmd in w.commands(kind) {
                if !commands.contains(&cmd) {
                    commands.push(cmd);
                }
            }
        }
        for cmd in commands {
            out.children.push(Child {
                contact: ci,
                command: cmd.clone(),
                escalated,
            });
        }
        if ty == NotificationType::Problem && out.children.iter().any(|ch| ch.contact == ci) && !out.notified_contacts.contains(&c.name) {
            out.notified_contacts.push(c.name.clone());
        }
    }
    out
}

/// What becomes of a master after a scatter.
#[derive(Clone, Debug, PartialEq)]
pub enum MasterFate {
    /// Dropped (every type but PROBLEM, or PROBLEM with `notification_interval` 0).
    Drop,
    /// PROBLEM re-armed: due again at `t_to_go`, carrying `number`.
    Rearm { t_to_go: f64, number: u32 },
}

/// After scattering a master (`scatter_master_notifications`): a PROBLEM that produced children
/// moves the item's `current_notification_number` to its number (returned as the new counter);
/// with `notification_interval` ≠ 0 it is re-armed. Returns the new counter and the fate.
pub fn after_scatter(
    v: &ItemView,
    master: &PendingNotification,
    produced: bool,
    escalations: &[Escalation],
    now: f64,
    interval_length: f64,
    periods: &dyn Periods,
) -> (u32, MasterFate) {
    let mut counter = v.state.current_notification_number;
    if master.kind != NotificationType::Problem.as_str() {
        return (counter, MasterFate::Drop);
    }
    if produced {
        counter = master.number;
    }
    if v.settings.notification_interval == 0.0 {
        return (counter, MasterFate::Drop);
    }
    let t = next_notification_time(v, master, escalations, now, interval_length, periods);
    (
        counter,
        MasterFate::Rearm {
            t_to_go: t,
            number: counter + 1,
        },
    )
}

/// `get_next_notification_time`: `t_to_go + interval` (now + interval when that is past), the
/// interval being the smallest of the item's and its eligible escalations'; a time-based
/// escalation not started yet may make it earlier.
pub fn next_notification_time(
    v: &ItemView,
    master: &PendingNotification,
    escalations: &[Escalation],
    now: f64,
    interval_length: f64,
    periods: &dyn Periods,
) -> f64 {
    let s = v.state;
    let in_notif_time = now - master.creation_time;
    let mine: Vec<&Escalation> = v.settings.escalations.iter().filter_map(|&e| escalations.get(e as usize)).collect();
    let mut interval = v.settings.notification_interval;
    for es in &mine {
        if escalation_eligible(es, master.t_to_go, s.state, master.number, in_notif_time, interval_length, periods)
            && es.notification_interval >= 0.0
            && es.notification_interval < interval
        {
            interval = es.notification_interval;
        }
    }
    let mut t = master.t_to_go + interval * interval_length;
    if t < now {
        t = now + interval * interval_length;
    }
    let mut res = t;
    for es in mine {
        if !es.time_based || master.started_escalations.contains(&es.name) {
            continue;
        }
        // get_next_notif_time: a time-based escalation starts at creation + first time.
        let letter_ok = escalation_eligible(
            es,
            now,
            s.state,
            master.number,
            es.first_notification_time * interval_length,
            interval_length,
            periods,
        );
        let start = master.creation_time + es.first_notification_time * interval_length;
        if letter_ok && now < start && start < res {
            res = start;
        }
    }
    res
}

/// `get_event_handlers`: the event handler command call to run, if any. The item's own handler,
/// else the global one; needs the item's `event_handler_enabled` and the global
/// `enable_event_handlers`; none in a downtime with `no_event_handlers_during_downtimes`.
pub fn event_handler<'a>(
    own: Option<&'a str>,
    global: Option<&'a str>,
    event_handler_enabled: bool,
    enable_event_handlers: bool,
    no_event_handlers_during_downtimes: bool,
    in_downtime: bool,
) -> Option<&'a str> {
    if !event_handler_enabled || !enable_event_handlers {
        return None;
    }
    if no_event_handlers_during_downtimes && in_downtime {
        return None;
    }
    own.or(global).filter(|c| !c.is_empty())
}

/// Flap detection of one item (semantics §3.8), with the global values already applied.
#[derive(Clone, Debug, PartialEq)]
pub struct FlapSettings {
    /// The item's `flap_detection_enabled` and the global `enable_flap_detection`.
    pub enabled: bool,
    /// `flap_detection_options`: state codes that count (o,w,c,u / o,d,u).
    pub options: Options,
    /// Percent thresholds (the item's, or the global ones when the item has -1).
    pub low: f64,
    pub high: f64,
    /// `flap_history` (global, 20).
    pub history: usize,
}

impl Default for FlapSettings {
    fn default() -> Self {
        FlapSettings {
            enabled: true,
            options: Options::parse("o,w,c,u", ""),
            low: 20.0,
            high: 30.0,
            history: 20,
        }
    }
}

/// A flapping edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlapEdge {
    /// Started: percent change and the high threshold.
    Start(f64, f64),
    /// Stopped: percent change and the low threshold.
    Stop(f64, f64),
}

/// `add_flapping_change` and `update_flapping`: a result in state `state` (changed or not from
/// the last one) pushed into the window; the percent change recomputed (changed positions
/// weighted from 0.8, oldest, to 1.2, newest); with a full window, flapping starts at or above
/// the high threshold and stops below the low one.
pub fn update_flapping(item: &mut ItemState, f: &FlapSettings, changed: bool) -> Option<FlapEdge> {
    if !f.enabled || f.history == 0 {
        return None;
    }
    let code = match item.state {
        State::Ok | State::Up => 'o',
        State::Warning => 'w',
        State::Critical => 'c',
        State::Unknown | State::Unreachable => 'u',
        State::Down => 'd',
        State::Pending => return None,
    };
    if !f.options.has(code) {
        return None;
    }
    item.flapping_changes.push(changed);
    if item.flapping_changes.len() > f.history {
        let extra = item.flapping_changes.len() - f.history;
        item.flapping_changes.drain(..extra);
    }
    let n = f.history as f64;
    let mut r = 0.0;
    for (i, &b) in item.flapping_changes.iter().enumerate() {
        if b {
            r += (i + 1) as f64 * (1.2 - 0.8) / n + 0.8;
        }
    }
    let r = r / n * 100.0;
    item.percent_state_change = r;
    let full = item.flapping_changes.len() >= f.history;
    if item.is_flapping && r < f.low && full {
        item.is_flapping = false;
        return Some(FlapEdge::Stop(r, f.low));
    }
    if !item.is_flapping && r >= f.high && full {
        item.is_flapping = true;
        return Some(FlapEdge::Start(r, f.high));
    }
    None
}

/// `SERVICE FLAPPING ALERT: h;s;STARTED; Service appears to have started flapping (x% change >=
/// y% threshold)` and the host and STOPPED variants.
pub fn flapping_log_line(host: &str, service: Option<&str>, edge: FlapEdge) -> String {
    let (what, who) = match service {
        Some(_) => ("SERVICE", "Service"),
        None => ("HOST", "Host"),
    };
    let target = match service {
        Some(s) => format!("{host};{s}"),
        None => host.to_string(),
    };
    match edge {
        FlapEdge::Start(r, t) => {
            format!("{what} FLAPPING ALERT: {target};STARTED; {who} appears to have started flapping ({r:.1}% change >= {t:.1}% threshold)")
        }
        FlapEdge::Stop(r, t) => {
            format!("{what} FLAPPING ALERT: {target};STOPPED; {who} appears to have stopped flapping ({r:.1}% change < {t:.1}% threshold)")
        }
    }
}

/// The state column of a notification log line: the state for PROBLEM and RECOVERY, else
/// `TYPE (STATE)`.
fn log_state(ty: &str, state: State) -> String {
    if ty == "PROBLEM" || ty == "RECOVERY" {
        state.as_str().to_string()
    } else {
        format!("{ty} ({state})")
    }
}

/// `SERVICE NOTIFICATION: contact;host;svc;STATE;command;output` or
/// `HOST NOTIFICATION: contact;host;STATE;command;output`.
pub fn notification_log_line(
    contact: &str,
    host: &str,
    service: Option<&str>,
    ty: &str,
    state: State,
    command: &str,
    output: &str,
) -> String {
    let st = log_state(ty, state);
    match service {
        Some(s) => format!("SERVICE NOTIFICATION: {contact};{host};{s};{st};{command};{output}"),
        None => format!("HOST NOTIFICATION: {contact};{host};{st};{command};{output}"),
    }
}

/// `SERVICE EVENT HANDLER: host;svc;STATE;TYPE;attempt;command` or
/// `HOST EVENT HANDLER: host;STATE;TYPE;attempt;command`.
pub fn event_handler_log_line(
    host: &str,
    service: Option<&str>,
    state: State,
    state_type: StateType,
    attempt: u32,
    command: &str,
) -> String {
    match service {
        Some(s) => format!("SERVICE EVENT HANDLER: {host};{s};{state};{state_type};{attempt};{command}"),
        None => format!("HOST EVENT HANDLER: {host};{state};{state_type};{attempt};{command}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 1_700_000_000.0;

    fn svc(state: State, st: StateType) -> ItemState {
        let mut s = ItemState::new(ItemKind::Service, 3);
        s.state = state;
        s.state_type = st;
        s
    }

    fn up_host() -> ItemState {
        let mut h = ItemState::new(ItemKind::Host, 1);
        h.state = State::Up;
        h
    }

    fn settings() -> NotifSettings {
        NotifSettings {
            contacts: vec![0, 1],
            notification_interval: 5.0,
            ..NotifSettings::default()
        }
    }

    fn view<'a>(s: &'a ItemState, h: &'a ItemState, set: &'a NotifSettings) -> ItemView<'a> {
        ItemView {
            state: s,
            host: Some(h),
            settings: set,
            enable_notifications: true,
        }
    }

    fn way(opts: &str, cmd: &str) -> Way {
        Way {
            host_notifications_enabled: true,
            service_notifications_enabled: true,
            host_notification_period: None,
            service_notification_period: None,
            host_notification_options: Options::parse("d,u,r,f,s", ""),
            service_notification_options: Options::parse(opts, ""),
            host_notification_commands: vec![format!("host-{cmd}")],
            service_notification_commands: vec![cmd.to_string()],
            min_business_impact: 0,
        }
    }

    fn contacts() -> Vec<Contact> {
        vec![
            Contact {
                name: "admin".into(),
                obj: 0,
                host_notifications_enabled: true,
                service_notifications_enabled: true,
                ways: vec![way("w,u,c,r,f,s", "notify-mail"), way("c", "notify-sms")],
            },
            Contact {
                name: "ops".into(),
                obj: 1,
                host_notifications_enabled: true,
                service_notifications_enabled: true,
                ways: vec![way("w,r", "notify-mail")],
            },
        ]
    }

    fn master(kind: &str, number: u32, t: f64) -> PendingNotification {
        PendingNotification {
            id: 1,
            kind: kind.into(),
            t_to_go: t,
            number,
            contact: String::new(),
            creation_time: t,
            started_escalations: Vec::new(),
        }
    }

    /// A test period: valid only on even-numbered 100-second blocks.
    struct Even;
    impl Periods for Even {
        fn valid(&self, _: &str, t: f64) -> bool {
            (t as i64 / 100) % 2 == 0
        }
        fn next_valid(&self, n: &str, t: f64) -> Option<f64> {
            if self.valid(n, t) {
                Some(t)
            } else {
                Some(((t as i64 / 100 + 1) * 100) as f64)
            }
        }
    }

    #[test]
    fn item_blocking_rules() {
        let h = up_host();
        let set = settings();
        let crit = svc(State::Critical, StateType::Hard);
        let p = NotificationType::Problem;
        assert!(!blocked_by_item(&view(&crit, &h, &set), p, T, &Always));
        // Global and item switches, 'n'.
        let mut v = view(&crit, &h, &set);
        v.enable_notifications = false;
        assert!(blocked_by_item(&v, p, T, &Always));
        let mut off = settings();
        off.notifications_enabled = false;
        assert!(blocked_by_item(&view(&crit, &h, &off), p, T, &Always));
        let mut n = settings();
        n.notification_options = Options::parse("n", "");
        assert!(blocked_by_item(&view(&crit, &h, &n), p, T, &Always));
        // Options: state letters for PROBLEM/RECOVERY, f for flapping, s for downtimes.
        let mut wo = settings();
        wo.notification_options = Options::parse("w,r", "");
        assert!(blocked_by_item(&view(&crit, &h, &wo), p, T, &Always));
        assert!(blocked_by_item(&view(&crit, &h, &wo), NotificationType::FlappingStart, T, &Always));
        assert!(blocked_by_item(&view(&crit, &h, &wo), NotificationType::DowntimeStart, T, &Always));
        let ok = svc(State::Ok, StateType::Hard);
        assert!(!blocked_by_item(&view(&ok, &h, &wo), NotificationType::Recovery, T, &Always));
        let mut no_r = settings();
        no_r.notification_options = Options::parse("c", "");
        assert!(blocked_by_item(&view(&ok, &h, &no_r), NotificationType::Recovery, T, &Always));
        // Notification period.
        let mut per = settings();
        per.notification_period = Some("even".into());
        assert!(!blocked_by_item(&view(&crit, &h, &per), p, 1000.0, &Even));
        assert!(blocked_by_item(&view(&crit, &h, &per), p, 1100.0, &Even));
        // Acknowledgement while OK; acknowledged problem; SOFT.
        assert!(blocked_by_item(&view(&ok, &h, &set), NotificationType::Acknowledgement, T, &Always));
        let mut acked = crit.clone();
        acked.problem_has_been_acknowledged = true;
        assert!(blocked_by_item(&view(&acked, &h, &set), p, T, &Always));
        assert!(!blocked_by_item(
            &view(&acked, &h, &set),
            NotificationType::Acknowledgement,
            T,
            &Always
        ));
        let soft = svc(State::Critical, StateType::Soft);
        assert!(blocked_by_item(&view(&soft, &h, &set), p, T, &Always));
        // Downtimes: the item's blocks problems and recoveries, not its own start/end; depth > 1
        // lets only the end through; the host's blocks everything.
        let mut dt = crit.clone();
        dt.scheduled_downtime_depth = 1;
        assert!(blocked_by_item(&view(&dt, &h, &set), p, T, &Always));
        assert!(blocked_by_item(&view(&dt, &h, &set), NotificationType::Recovery, T, &Always));
        assert!(!blocked_by_item(&view(&dt, &h, &set), NotificationType::DowntimeStart, T, &Always));
        dt.scheduled_downtime_depth = 2;
        assert!(blocked_by_item(&view(&dt, &h, &set), NotificationType::DowntimeStart, T, &Always));
        assert!(!blocked_by_item(&view(&dt, &h, &set), NotificationType::DowntimeEnd, T, &Always));
        let mut hdt = up_host();
        hdt.scheduled_downtime_depth = 1;
        assert!(blocked_by_item(
            &view(&crit, &hdt, &set),
            NotificationType::DowntimeStart,
            T,
            &Always
        ));
        // Flapping.
        let mut fl = crit.clone();
        fl.is_flapping = true;
        assert!(blocked_by_item(&view(&fl, &h, &set), p, T, &Always));
        assert!(!blocked_by_item(&view(&fl, &h, &set), NotificationType::FlappingStart, T, &Always));
    }

    #[test]
    fn a_down_host_silences_its_services() {
        let set = settings();
        let crit = svc(State::Critical, StateType::Hard);
        let mut h = up_host();
        h.state = State::Down;
        assert!(blocked_by_item(&view(&crit, &h, &set), NotificationType::Problem, T, &Always));
        h.state = State::Pending;
        assert!(blocked_by_item(&view(&crit, &h, &set), NotificationType::Problem, T, &Always));
        // A host's own notifications: options d,u,r,f by default.
        let mut host = up_host();
        host.state = State::Down;
        let mut hs = settings();
        hs.notification_options = Options::parse(HOST_OPTIONS_DEFAULT, "");
        let v = ItemView {
            state: &host,
            host: None,
            settings: &hs,
            enable_notifications: true,
        };
        assert!(!blocked_by_item(&v, NotificationType::Problem, T, &Always));
        assert!(
            blocked_by_item(&v, NotificationType::DowntimeStart, T, &Always),
            "no s by default for hosts"
        );
    }

    #[test]
    fn first_notification_delay_and_period_place_the_master() {
        let h = up_host();
        let mut set = settings();
        set.first_notification_delay = 2.0;
        let mut crit = svc(State::Critical, StateType::Hard);
        crit.last_time_ok = T - 100.0;
        crit.last_time_critical = T;
        crit.last_time_warning = T - 30.0;
        // First problem: from the first non-OK time after the last OK, plus the delay.
        assert_eq!(
            master_time(&view(&crit, &h, &set), NotificationType::Problem, T + 5.0, 60.0, &Always),
            Some(T - 30.0 + 120.0)
        );
        // Not the first: now.
        crit.current_notification_number = 1;
        assert_eq!(
            master_time(&view(&crit, &h, &set), NotificationType::Problem, T + 5.0, 60.0, &Always),
            Some(T + 5.0)
        );
        // Moved into the notification period.
        set.notification_period = Some("even".into());
        assert_eq!(
            master_time(&view(&crit, &h, &set), NotificationType::Problem, 1150.0, 1.0, &Even),
            Some(1200.0)
        );
        // Blocked, no delay, no interval: not created at all.
        let mut once = settings();
        once.notification_interval = 0.0;
        let mut acked = svc(State::Critical, StateType::Hard);
        acked.problem_has_been_acknowledged = true;
        assert_eq!(
            master_time(&view(&acked, &h, &once), NotificationType::Problem, T, 1.0, &Always),
            None
        );
        // Blocked but repeating: created (it may go out later).
        assert!(master_time(&view(&acked, &h, &set), NotificationType::Problem, T, 1.0, &Always).is_some());
        // Numbers.
        assert_eq!(master_number(&crit, NotificationType::Problem), 2);
        assert_eq!(master_number(&crit, NotificationType::Recovery), 0);
        assert_eq!(master_number(&crit, NotificationType::Acknowledgement), 1);
    }

    #[test]
    fn scatter_to_contacts_ways_and_options() {
        let h = up_host();
        let set = settings();
        let crit = svc(State::Critical, StateType::Hard);
        let cs = contacts();
        let m = master("PROBLEM", 1, T);
        let inp = ScatterInput {
            view: view(&crit, &h, &set),
            master: &m,
            contacts: &cs,
            escalations: &[],
            interval_length: 1.0,
        };
        let out = scatter(&inp, T, &Always);
        // admin: both ways want CRITICAL; ops's way only w,r.
        let got: Vec<(u32, &str)> = out.children.iter().map(|c| (c.contact, c.command.as_str())).collect();
        assert_eq!(got, [(0, "notify-mail"), (0, "notify-sms")]);
        assert_eq!(out.notified_contacts, ["admin"]);
        // WARNING: admin's mail way and ops.
        let warn = svc(State::Warning, StateType::Hard);
        let inp = ScatterInput {
            view: view(&warn, &h, &set),
            ..inp
        };
        let got: Vec<(u32, String)> = scatter(&inp, T, &Always)
            .children
            .into_iter()
            .map(|c| (c.contact, c.command))
            .collect();
        assert_eq!(got, [(0, "notify-mail".to_string()), (1, "notify-mail".to_string())]);
        // A contact's own switch comes before its ways.
        let mut off = contacts();
        off[1].service_notifications_enabled = false;
        let inp = ScatterInput { contacts: &off, ..inp };
        let got: Vec<u32> = scatter(&inp, T, &Always).children.into_iter().map(|c| c.contact).collect();
        assert_eq!(got, [0]);
    }

    #[test]
    fn way_periods_enabled_and_types() {
        let mut w = way("w,u,c,r,f,s", "m");
        assert!(way_wants(
            &w,
            ItemKind::Service,
            State::Critical,
            NotificationType::Problem,
            2,
            T,
            &Always
        ));
        assert!(way_wants(
            &w,
            ItemKind::Service,
            State::Critical,
            NotificationType::Acknowledgement,
            2,
            T,
            &Always
        ));
        assert!(way_wants(
            &w,
            ItemKind::Service,
            State::Ok,
            NotificationType::Recovery,
            2,
            T,
            &Always
        ));
        assert!(way_wants(
            &w,
            ItemKind::Service,
            State::Ok,
            NotificationType::DowntimeEnd,
            2,
            T,
            &Always
        ));
        // Downtimes: the host options decide, for services too (Shinken's quirk).
        let mut no_host_s = way("w,u,c,r,f,s", "m");
        no_host_s.host_notification_options = Options::parse("d,u,r", "");
        assert!(!way_wants(
            &no_host_s,
            ItemKind::Service,
            State::Ok,
            NotificationType::DowntimeStart,
            2,
            T,
            &Always
        ));
        assert!(!way_wants(
            &w,
            ItemKind::Service,
            State::Critical,
            NotificationType::Custom,
            2,
            T,
            &Always
        ));
        w.min_business_impact = 3;
        assert!(!way_wants(
            &w,
            ItemKind::Service,
            State::Critical,
            NotificationType::Problem,
            2,
            T,
            &Always
        ));
        w.min_business_impact = 0;
        w.service_notification_period = Some("even".into());
        assert!(way_wants(
            &w,
            ItemKind::Service,
            State::Critical,
            NotificationType::Problem,
            2,
            1000.0,
            &Even
        ));
        assert!(!way_wants(
            &w,
            ItemKind::Service,
            State::Critical,
            NotificationType::Problem,
            2,
            1100.0,
            &Even
        ));
        w.service_notifications_enabled = false;
        assert!(!way_wants(
            &w,
            ItemKind::Service,
            State::Critical,
            NotificationType::Problem,
            2,
            1000.0,
            &Even
        ));
        // Host side uses the host options.
        assert!(way_wants(&w, ItemKind::Host, State::Down, NotificationType::Problem, 2, T, &Always));
        let mut hw = way("c", "m");
        hw.host_notification_options = Options::parse("r", "");
        assert!(!way_wants(
            &hw,
            ItemKind::Host,
            State::Down,
            NotificationType::Problem,
            2,
            T,
            &Always
        ));
        assert!(way_wants(&hw, ItemKind::Host, State::Up, NotificationType::Recovery, 2, T, &Always));
    }

    #[test]
    fn recovery_goes_to_the_notified_and_interval_zero_notifies_once() {
        let h = up_host();
        let cs = contacts();
        let mut ok = svc(State::Ok, StateType::Hard);
        ok.notified_contacts = vec!["admin".into()];
        let set = settings();
        let m = master("RECOVERY", 0, T);
        let inp = ScatterInput {
            view: view(&ok, &h, &set),
            master: &m,
            contacts: &cs,
            escalations: &[],
            interval_length: 1.0,
        };
        let out = scatter(&inp, T, &Always);
        // admin's mail way wants r; the sms one (c only) does not; ops was not notified.
        assert_eq!(
            out.children,
            [Child {
                contact: 0,
                command: "notify-mail".into(),
                escalated: false
            }]
        );
        assert!(out.notified_contacts.is_empty(), "cleared by the recovery");
        // Nobody notified: nobody gets the recovery.
        let ok2 = svc(State::Ok, StateType::Hard);
        let inp2 = ScatterInput {
            view: view(&ok2, &h, &set),
            ..inp
        };
        assert!(scatter(&inp2, T, &Always).children.is_empty());
        // notification_interval 0: a contact already notified is skipped.
        let mut once = settings();
        once.notification_interval = 0.0;
        let mut crit = svc(State::Critical, StateType::Hard);
        crit.notified_contacts = vec!["admin".into()];
        let pm = master("PROBLEM", 2, T);
        let inp3 = ScatterInput {
            view: view(&crit, &h, &once),
            master: &pm,
            contacts: &cs,
            escalations: &[],
            interval_length: 1.0,
        };
        assert!(scatter(&inp3, T, &Always).children.is_empty());
        // And the master is dropped after one scatter.
        let (n, fate) = after_scatter(&view(&crit, &h, &once), &pm, true, &[], T, 1.0, &Always);
        assert_eq!((n, fate), (2, MasterFate::Drop));
    }

    #[test]
    fn problems_are_rearmed_and_numbered() {
        let h = up_host();
        let set = settings(); // interval 5
        let crit = svc(State::Critical, StateType::Hard);
        let m = master("PROBLEM", 1, T);
        let (n, fate) = after_scatter(&view(&crit, &h, &set), &m, true, &[], T + 0.5, 60.0, &Always);
        assert_eq!(n, 1);
        assert_eq!(
            fate,
            MasterFate::Rearm {
                t_to_go: T + 300.0,
                number: 2
            }
        );
        // Nothing sent (blocked): the counter stays, the next carries the same number.
        let mut c1 = crit.clone();
        c1.current_notification_number = 1;
        let m2 = master("PROBLEM", 2, T);
        let (n, fate) = after_scatter(&view(&c1, &h, &set), &m2, false, &[], T, 60.0, &Always);
        assert_eq!(
            (n, fate),
            (
                1,
                MasterFate::Rearm {
                    t_to_go: T + 300.0,
                    number: 2
                }
            )
        );
        // A master whose next time is already past (from retention): from now.
        let (_, fate) = after_scatter(&view(&c1, &h, &set), &m2, false, &[], T + 1000.0, 60.0, &Always);
        assert_eq!(
            fate,
            MasterFate::Rearm {
                t_to_go: T + 1300.0,
                number: 2
            }
        );
        // Other types are dropped.
        let ack = master("ACKNOWLEDGEMENT", 1, T);
        assert_eq!(
            after_scatter(&view(&c1, &h, &set), &ack, true, &[], T, 60.0, &Always).1,
            MasterFate::Drop
        );
    }

    fn esc(first: u32, last: u32, contacts: Vec<u32>) -> Escalation {
        Escalation {
            name: format!("e{first}"),
            first_notification: first,
            last_notification: last,
            time_based: false,
            first_notification_time: 0.0,
            last_notification_time: 0.0,
            notification_interval: -1.0,
            escalation_period: None,
            escalation_options: Options::parse("d,u,r,w,c", ""),
            contacts,
        }
    }

    #[test]
    fn escalations_replace_contacts_by_number_state_period_and_shorten_the_interval() {
        let h = up_host();
        let cs = contacts();
        let mut set = settings();
        set.escalations = vec![0];
        // ops gets numbers 2 and 3 (ops's way has w: use WARNING).
        let mut e = esc(2, 3, vec![1]);
        e.notification_interval = 1.0;
        let escs = vec![e];
        let warn = svc(State::Warning, StateType::Hard);
        let run = |number: u32, escs: &[Escalation]| -> Vec<(u32, bool)> {
            let m = master("PROBLEM", number, T);
            let inp = ScatterInput {
                view: view(&warn, &h, &set),
                master: &m,
                contacts: &cs,
                escalations: escs,
                interval_length: 1.0,
            };
            scatter(&inp, T, &Always)
                .children
                .iter()
                .map(|c| (c.contact, c.escalated))
                .collect()
        };
        assert_eq!(run(1, &escs), [(0, false), (1, false)]);
        assert_eq!(run(2, &escs), [(1, true)]);
        assert_eq!(run(3, &escs), [(1, true)]);
        assert_eq!(run(4, &escs), [(0, false), (1, false)]);
        // Options: an escalation without w does not apply to WARNING.
        let mut no_w = escs.clone();
        no_w[0].escalation_options = Options::parse("c", "");
        assert_eq!(run(2, &no_w), [(0, false), (1, false)]);
        // Period.
        let mut per = escs.clone();
        per[0].escalation_period = Some("never".into());
        struct Never;
        impl Periods for Never {
            fn valid(&self, _: &str, _: f64) -> bool {
                false
            }
            fn next_valid(&self, _: &str, _: f64) -> Option<f64> {
                None
            }
        }
        assert!(!escalation_eligible(&per[0], T, State::Warning, 2, 0.0, 1.0, &Never));
        // The escalation's shorter interval applies while it is eligible.
        let m = master("PROBLEM", 2, T);
        assert_eq!(
            next_notification_time(&view(&warn, &h, &set), &m, &escs, T, 60.0, &Always),
            T + 60.0
        );
        let m5 = master("PROBLEM", 5, T);
        assert_eq!(
            next_notification_time(&view(&warn, &h, &set), &m5, &escs, T, 60.0, &Always),
            T + 300.0
        );
        // Time-based.
        let mut tb = esc(0, 0, vec![1]);
        tb.time_based = true;
        tb.first_notification_time = 10.0;
        assert!(!escalation_eligible(&tb, T, State::Warning, 1, 500.0, 60.0, &Always));
        assert!(escalation_eligible(&tb, T, State::Warning, 1, 600.0, 60.0, &Always));
    }

    #[test]
    fn event_handler_rules() {
        assert_eq!(event_handler(Some("eh"), Some("g"), true, true, false, false), Some("eh"));
        assert_eq!(event_handler(None, Some("g"), true, true, false, false), Some("g"));
        assert_eq!(event_handler(Some("eh"), Some("g"), false, true, false, false), None);
        assert_eq!(event_handler(Some("eh"), None, true, false, false, false), None);
        assert_eq!(event_handler(Some("eh"), None, true, true, true, true), None);
        assert_eq!(event_handler(Some("eh"), None, true, true, false, true), Some("eh"));
        assert_eq!(event_handler(None, None, true, true, false, false), None);
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            notification_log_line(
                "admin",
                "web",
                Some("HTTP"),
                "PROBLEM",
                State::Critical,
                "notify-mail",
                "CRITICAL: down"
            ),
            "SERVICE NOTIFICATION: admin;web;HTTP;CRITICAL;notify-mail;CRITICAL: down"
        );
        assert_eq!(
            notification_log_line("admin", "web", None, "ACKNOWLEDGEMENT", State::Down, "host-mail", "down"),
            "HOST NOTIFICATION: admin;web;ACKNOWLEDGEMENT (DOWN);host-mail;down"
        );
        assert_eq!(
            event_handler_log_line("web", Some("HTTP"), State::Critical, StateType::Soft, 1, "restart"),
            "SERVICE EVENT HANDLER: web;HTTP;CRITICAL;SOFT;1;restart"
        );
        assert_eq!(
            event_handler_log_line("web", None, State::Down, StateType::Hard, 2, "reboot"),
            "HOST EVENT HANDLER: web;DOWN;HARD;2;reboot"
        );
    }

    #[test]
    fn flapping_starts_with_a_full_window_and_stops_below_low() {
        let mut s = svc(State::Ok, StateType::Hard);
        let f = FlapSettings::default();
        // Alternating results: every one a change, but nothing before the window is full.
        for i in 0..19 {
            s.state = if i % 2 == 0 { State::Critical } else { State::Ok };
            assert_eq!(update_flapping(&mut s, &f, true), None);
        }
        s.state = State::Critical;
        let edge = update_flapping(&mut s, &f, true);
        // All 20 changed: sum of (0.8 + 0.4 i/20) for i=1..20 = 16 + 4.2 = 20.2; /20 *100 = 101.
        assert!(
            matches!(edge, Some(FlapEdge::Start(r, 30.0)) if (r - 101.0).abs() < 1e-9),
            "{edge:?}"
        );
        assert!(s.is_flapping);
        // Stable results push the changes out: stops once below 20%.
        let mut stopped = None;
        for k in 0..20 {
            if let Some(e) = update_flapping(&mut s, &f, false) {
                stopped = Some((k, e));
                break;
            }
        }
        let (k, e) = stopped.expect("stops");
        assert!(matches!(e, FlapEdge::Stop(r, 20.0) if r < 20.0));
        assert!(k > 10, "{k}");
        assert!(!s.is_flapping);
        // A state code outside the options is not counted; disabled: nothing.
        let mut w = svc(State::Warning, StateType::Hard);
        let only_c = FlapSettings {
            options: Options::parse("c", ""),
            ..FlapSettings::default()
        };
        update_flapping(&mut w, &only_c, true);
        assert!(w.flapping_changes.is_empty());
        let off = FlapSettings {
            enabled: false,
            ..FlapSettings::default()
        };
        update_flapping(&mut w, &off, true);
        assert!(w.flapping_changes.is_empty());
        assert_eq!(
            flapping_log_line("web", Some("HTTP"), FlapEdge::Start(101.0, 30.0)),
            "SERVICE FLAPPING ALERT: web;HTTP;STARTED; Service appears to have started flapping (101.0% change >= 30.0% threshold)"
        );
        assert_eq!(
            flapping_log_line("web", None, FlapEdge::Stop(12.5, 25.0)),
            "HOST FLAPPING ALERT: web;STOPPED; Host appears to have stopped flapping (12.5% change < 25.0% threshold)"
        );
    }
}
