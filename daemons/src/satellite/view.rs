//! The broker's live view, pure: the latest state of every host and service, what changed
//! recently, the monitoring log, and the health of the cluster's daemons, built from broks
//! (semantics reference, 3.10) and from the arbiter's `GET /v1/status`.
//!
//! Broks:
//! - `initial_host_status`, `initial_service_status`, `host_check_result`,
//!   `service_check_result`, `update_host_status`, `update_service_status`: their `data` is an
//!   [`ItemStatus`]; the latest one per host and per (host, service) is kept. A check result may
//!   also carry `latency` and `execution_time` (seconds), observed into histograms;
//! - two consecutive statuses of one item with another state or state type make a
//!   [`StateChange`] (the last [`STATE_CHANGES`] are kept); initial statuses only set the
//!   baseline and log `CURRENT HOST STATE` / `CURRENT SERVICE STATE`, as Nagios does at start;
//! - `log`: `data.log` is a monitoring-log line, stamped `[unix seconds]` on arrival; the last
//!   [`LOG_LINES`] are kept; a line with `NOTIFICATION:` is also kept as a [`Notification`];
//! - `program_status` starts a scheduler's full set of initial broks: what the view held from
//!   that scheduler is dropped first, so hosts it no longer owns disappear; its `part_id` tells
//!   which scheduler holds which part (a part moving to another scheduler is a takeover);
//! - every brok is counted by type, and over the last [`RATE_WINDOW`] seconds for rates.
//!
//! [`LiveView::apply`] returns the monitoring-log lines a brok produced, for the log file.
//! Daemon health comes from [`LiveView::set_arbiter_status`]: who is alive, who is a spare,
//! who is active (holds parts; for arbiters, leads), and takeovers: a spare that becomes active,
//! a part held by another scheduler, another arbiter leading.

use crate::messages::{ArbiterStatus, Brok, ItemStatus, SchedulerStatus};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Monitoring-log lines kept.
pub const LOG_LINES: usize = 1000;
/// State changes kept.
pub const STATE_CHANGES: usize = 500;
/// Notifications kept.
pub const NOTIFICATIONS: usize = 500;
/// Takeovers kept.
pub const TAKEOVERS: usize = 200;
/// Seconds over which broks and checks per second are measured.
pub const RATE_WINDOW: u64 = 10;

/// Bucket bounds (seconds) of the latency and execution time histograms.
pub const BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// One host or service and what the view derives from its statuses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub status: ItemStatus,
    /// Unix seconds of the last change of state (as seen by this broker), if seen.
    pub last_state_change: Option<f64>,
    /// Seconds, from the last check result that carried them.
    pub latency: Option<f64>,
    pub execution_time: Option<f64>,
}

/// A change of state or state type between two consecutive statuses of one item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    pub time: f64,
    pub host_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_description: Option<String>,
    pub from_state: String,
    pub from_state_type: String,
    pub state: String,
    pub state_type: String,
    pub attempt: u32,
    pub output: String,
}

/// A notification seen in the monitoring log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub time: f64,
    pub contact: String,
    pub host_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_description: Option<String>,
    /// `CRITICAL`, `RECOVERY (OK)`, `ACKNOWLEDGEMENT (CRITICAL)`...
    pub notification_type: String,
    pub command: String,
    pub output: String,
}

/// A daemon taking over the work of another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Takeover {
    pub time: f64,
    pub role: String,
    /// Who took over.
    pub daemon: String,
    /// Whose work it took, when known.
    pub from: Option<String>,
    pub parts: Vec<u32>,
    pub text: String,
}

/// One daemon's health as the view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonHealth {
    pub name: String,
    pub role: String,
    pub spare: bool,
    pub alive: bool,
    /// Holds parts (schedulers, satellites) or leads (arbiters).
    pub active: bool,
    pub address: String,
    pub port: u16,
    pub realm: String,
    pub parts: Vec<u32>,
}

/// Where the daemons' health comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    /// The arbiter whose status is shown (none: never reached one).
    pub arbiter: Option<String>,
    /// Unix seconds of that status.
    pub updated: Option<f64>,
    /// Whether the last attempt to reach an arbiter succeeded.
    pub arbiter_reachable: bool,
    pub daemons: Vec<DaemonHealth>,
}

/// A Prometheus histogram over [`BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Per bucket (not cumulative), one more for +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        let i = BUCKETS.iter().position(|b| v <= *b).unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exposition lines of metric `name` (with its `# HELP` and `# TYPE`).
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (b, n) in BUCKETS.iter().zip(self.counts.iter()) {
            acc += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {acc}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Events counted per whole second over the last [`RATE_WINDOW`] seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rate {
    seconds: VecDeque<(u64, u64)>,
}

impl Rate {
    pub fn add(&mut self, now: f64, n: u64) {
        let s = now.max(0.0) as u64;
        match self.seconds.back_mut() {
            Some((t, c)) if *t == s => *c += n,
            _ => self.seconds.push_back((s, n)),
        }
        self.trim(s);
    }

    fn trim(&mut self, s: u64) {
        while self.seconds.front().is_some_and(|(t, _)| *t + RATE_WINDOW <= s) {
            self.seconds.pop_front();
        }
    }

    /// Events per second over the last [`RATE_WINDOW`] seconds before `now`.
    pub fn per_second(&self, now: f64) -> f64 {
        let s = now.max(0.0) as u64;
        let n: u64 = self.seconds.iter().filter(|(t, _)| *t + RATE_WINDOW > s).map(|(_, c)| c).sum();
        n as f64 / RATE_WINDOW as f64
    }
}

#[derive(Debug, Default, Clone)]
pub struct LiveView {
    hosts: BTreeMap<String, Entry>,
    services: BTreeMap<(String, String), Entry>,
    logs: VecDeque<String>,
    changes: VecDeque<StateChange>,
    notifications: VecDeque<Notification>,
    takeovers: VecDeque<Takeover>,
    takeovers_total: u64,
    state_changes_total: u64,
    notifications_total: u64,
    /// Broks applied, by type (for metrics and debugging).
    counts: BTreeMap<String, u64>,
    broks_rate: Rate,
    checks_rate: Rate,
    latency: Histogram,
    execution_time: Histogram,
    /// Part id -> the scheduler holding it, as last seen (broks or the arbiter).
    part_holders: BTreeMap<u32, String>,
    /// Spare daemons seen active, by name (a spare becoming active is a takeover).
    active_spares: BTreeSet<String>,
    /// The arbiter that leads, as last seen.
    leading_arbiter: Option<String>,
    health: Health,
}

/// A status's state and state type changed from `before`'s.
fn changed(before: &ItemStatus, after: &ItemStatus) -> bool {
    before.state != after.state || before.state_type != after.state_type
}

/// `[ts] line`, unless the line is already stamped.
fn stamp(now: f64, line: &str) -> String {
    if line.starts_with('[') {
        line.to_string()
    } else {
        format!("[{}] {line}", now as i64)
    }
}

/// Nagios' `CURRENT HOST STATE` / `CURRENT SERVICE STATE` line of a status.
pub fn current_state_line(s: &ItemStatus) -> String {
    match &s.service_description {
        Some(d) => format!(
            "CURRENT SERVICE STATE: {};{d};{};{};{};{}",
            s.host_name, s.state, s.state_type, s.attempt, s.output
        ),
        None => format!(
            "CURRENT HOST STATE: {};{};{};{};{}",
            s.host_name, s.state, s.state_type, s.attempt, s.output
        ),
    }
}

/// Parses `SERVICE NOTIFICATION: contact;host;svc;type;command;output` or
/// `HOST NOTIFICATION: contact;host;type;command;output` anywhere in `line`.
pub fn parse_notification(line: &str, time: f64) -> Option<Notification> {
    let (service, rest) = if let Some(i) = line.find("SERVICE NOTIFICATION:") {
        (true, &line[i + "SERVICE NOTIFICATION:".len()..])
    } else if let Some(i) = line.find("HOST NOTIFICATION:") {
        (false, &line[i + "HOST NOTIFICATION:".len()..])
    } else {
        return None;
    };
    let n = if service { 6 } else { 5 };
    let f: Vec<&str> = rest.trim_start().splitn(n, ';').collect();
    if f.len() < n - 1 {
        return None;
    }
    let get = |i: usize| f.get(i).map(|s| s.to_string()).unwrap_or_default();
    Some(if service {
        Notification {
            time,
            contact: get(0),
            host_name: get(1),
            service_description: Some(get(2)),
            notification_type: get(3),
            command: get(4),
            output: get(5),
        }
    } else {
        Notification {
            time,
            contact: get(0),
            host_name: get(1),
            service_description: None,
            notification_type: get(2),
            command: get(3),
            output: get(4),
        }
    })
}

/// How bad a problem is (higher is worse); none for an OK, UP or PENDING item.
pub fn severity(s: &ItemStatus) -> Option<u32> {
    let base = match (s.service_description.is_some(), s.state.as_str()) {
        (false, "DOWN") => 50,
        (false, "UNREACHABLE") => 40,
        (true, "CRITICAL") => 30,
        (true, "UNKNOWN") => 20,
        (true, "WARNING") => 10,
        _ => return None,
    };
    let hard = if s.state_type == "HARD" { 4 } else { 0 };
    let handled = if s.acknowledged || s.in_downtime { 0 } else { 2 };
    Some(base + hard + handled)
}

fn push_bounded<T>(q: &mut VecDeque<T>, cap: usize, v: T) {
    if q.len() >= cap {
        q.pop_front();
    }
    q.push_back(v);
}

impl LiveView {
    pub fn new() -> LiveView {
        LiveView::default()
    }

    /// Applies one brok received from scheduler `scheduler` at `now` (Unix seconds); returns the
    /// monitoring-log lines it produced, stamped.
    pub fn apply(&mut self, scheduler: &str, brok: &Brok, now: f64) -> Vec<String> {
        *self.counts.entry(brok.kind.clone()).or_default() += 1;
        self.broks_rate.add(now, 1);
        let mut lines = Vec::new();
        match brok.kind.as_str() {
            "program_status" => {
                let name = brok.data.get("scheduler").and_then(|s| s.as_str()).unwrap_or(scheduler).to_string();
                self.forget_scheduler(&name);
                if let Some(part) = brok.data.get("part_id").and_then(|p| p.as_u64()) {
                    self.part_held(part as u32, &name, now);
                }
            }
            "initial_host_status" | "initial_service_status" => {
                if let Ok(status) = serde_json::from_value::<ItemStatus>(brok.data.clone()) {
                    lines.push(self.log_line(now, &current_state_line(&status)));
                    self.set(status, now, false);
                }
            }
            "host_check_result" | "service_check_result" | "update_host_status" | "update_service_status" => {
                if let Ok(status) = serde_json::from_value::<ItemStatus>(brok.data.clone()) {
                    let result = brok.kind.ends_with("check_result");
                    if result {
                        self.checks_rate.add(now, 1);
                    }
                    let f = |k: &str| brok.data.get(k).and_then(|v| v.as_f64()).filter(|_| result);
                    let (latency, exec) = (f("latency"), f("execution_time"));
                    if let Some(l) = latency {
                        self.latency.observe(l);
                    }
                    if let Some(e) = exec {
                        self.execution_time.observe(e);
                    }
                    let key = (status.host_name.clone(), status.service_description.clone());
                    self.set(status, now, true);
                    if result && let Some(e) = self.entry_mut(&key.0, key.1.as_deref()) {
                        e.latency = latency.or(e.latency);
                        e.execution_time = exec.or(e.execution_time);
                    }
                }
            }
            "log" => {
                if let Some(line) = brok.data.get("log").and_then(|l| l.as_str()) {
                    if let Some(n) = parse_notification(line, now) {
                        self.notifications_total += 1;
                        push_bounded(&mut self.notifications, NOTIFICATIONS, n);
                    }
                    lines.push(self.log_line(now, line));
                }
            }
            _ => {}
        }
        lines
    }

    /// Keeps `line` (stamped) in the log; returns it.
    fn log_line(&mut self, now: f64, line: &str) -> String {
        let line = stamp(now, line);
        push_bounded(&mut self.logs, LOG_LINES, line.clone());
        line
    }

    fn entry_mut(&mut self, host: &str, service: Option<&str>) -> Option<&mut Entry> {
        match service {
            Some(d) => self.services.get_mut(&(host.to_string(), d.to_string())),
            None => self.hosts.get_mut(host),
        }
    }

    /// Keeps `status` as the latest state of its host or service; with `track`, a change of
    /// state from the previous status is recorded.
    pub fn set(&mut self, status: ItemStatus, now: f64, track: bool) {
        let previous = match &status.service_description {
            Some(d) => self.services.get(&(status.host_name.clone(), d.clone())),
            None => self.hosts.get(&status.host_name),
        };
        let mut entry = Entry {
            status: status.clone(),
            last_state_change: previous.and_then(|p| p.last_state_change),
            latency: previous.and_then(|p| p.latency),
            execution_time: previous.and_then(|p| p.execution_time),
        };
        if let Some(p) = previous
            && track
            && changed(&p.status, &status)
        {
            let time = status.last_check.filter(|t| *t > 0.0).unwrap_or(now);
            entry.last_state_change = Some(time);
            let change = StateChange {
                time,
                host_name: status.host_name.clone(),
                service_description: status.service_description.clone(),
                from_state: p.status.state.clone(),
                from_state_type: p.status.state_type.clone(),
                state: status.state.clone(),
                state_type: status.state_type.clone(),
                attempt: status.attempt,
                output: status.output.clone(),
            };
            self.state_changes_total += 1;
            push_bounded(&mut self.changes, STATE_CHANGES, change);
        }
        match &status.service_description {
            Some(d) => {
                self.services.insert((status.host_name.clone(), d.clone()), entry);
            }
            None => {
                self.hosts.insert(status.host_name.clone(), entry);
            }
        }
    }

    /// Drops every host and service that came from `scheduler`.
    pub fn forget_scheduler(&mut self, scheduler: &str) {
        self.hosts.retain(|_, s| s.status.scheduler != scheduler);
        self.services.retain(|_, s| s.status.scheduler != scheduler);
    }

    /// Scheduler `name` holds `part`: a takeover when another held it.
    fn part_held(&mut self, part: u32, name: &str, now: f64) {
        match self.part_holders.insert(part, name.to_string()) {
            Some(old) if old != name => self.takeover(
                now,
                "scheduler",
                name,
                Some(old.clone()),
                vec![part],
                format!("Scheduler {name} took over part {part} from {old}"),
            ),
            _ => {}
        }
    }

    fn takeover(&mut self, time: f64, role: &str, daemon: &str, from: Option<String>, parts: Vec<u32>, text: String) {
        self.takeovers_total += 1;
        push_bounded(
            &mut self.takeovers,
            TAKEOVERS,
            Takeover {
                time,
                role: role.to_string(),
                daemon: daemon.to_string(),
                from,
                parts,
                text,
            },
        );
    }

    /// The arbiter `status` answered at `now`; `arbiter_spares` tells which arbiters are
    /// spares (the arbiter does not list itself).
    pub fn set_arbiter_status(&mut self, status: &ArbiterStatus, arbiter_spares: &BTreeMap<String, bool>, now: f64) {
        let mut daemons: Vec<DaemonHealth> = status
            .daemons
            .iter()
            .map(|d| {
                let parts: Vec<u32> = d.parts.keys().copied().collect();
                let active = if d.role == "arbiter" {
                    status.master && d.name == status.name
                } else {
                    d.alive && !parts.is_empty()
                };
                DaemonHealth {
                    name: d.name.clone(),
                    role: d.role.clone(),
                    spare: d.spare,
                    alive: d.alive,
                    active,
                    address: d.address.clone(),
                    port: d.port,
                    realm: d.realm.clone(),
                    parts,
                }
            })
            .collect();
        if !daemons.iter().any(|d| d.role == "arbiter" && d.name == status.name) {
            daemons.push(DaemonHealth {
                name: status.name.clone(),
                role: "arbiter".into(),
                spare: arbiter_spares.get(&status.name).copied().unwrap_or(false),
                alive: true,
                active: status.master,
                address: String::new(),
                port: 0,
                realm: String::new(),
                parts: Vec::new(),
            });
        }
        daemons.sort_by(|a, b| (role_rank(&a.role), a.spare, &a.name).cmp(&(role_rank(&b.role), b.spare, &b.name)));
        // Takeovers: another arbiter leads, a part moves, a spare becomes active. The first
        // status seen is the baseline: a spare already active then took over before we knew.
        let first = self.health.arbiter.is_none();
        if status.master {
            if let Some(old) = self.leading_arbiter.clone().filter(|old| *old != status.name) {
                self.takeover(
                    now,
                    "arbiter",
                    &status.name,
                    Some(old.clone()),
                    Vec::new(),
                    format!("Arbiter {} leads instead of {old}", status.name),
                );
            }
            self.leading_arbiter = Some(status.name.clone());
        }
        // A part claimed by two alive schedulers (a stale holder beside the new one): the one
        // with the newest epoch holds it.
        let mut holders: BTreeMap<u32, (u64, &str)> = BTreeMap::new();
        for d in status.daemons.iter().filter(|d| d.role == "scheduler" && d.alive) {
            for (&p, &epoch) in &d.parts {
                if holders.get(&p).is_none_or(|(e, _)| epoch > *e) {
                    holders.insert(p, (epoch, d.name.as_str()));
                }
            }
        }
        for (p, (_, name)) in holders {
            self.part_held(p, name, now);
        }
        for d in daemons.iter().filter(|d| d.spare && d.role != "arbiter" && d.role != "scheduler") {
            if d.active && self.active_spares.insert(d.name.clone()) && !first {
                let from = daemons
                    .iter()
                    .find(|m| m.role == d.role && !m.spare && !m.alive && m.realm == d.realm)
                    .map(|m| m.name.clone());
                let text = match &from {
                    Some(f) => format!("Spare {} {} took over from {f}", d.role, d.name),
                    None => format!("Spare {} {} took over", d.role, d.name),
                };
                self.takeover(now, &d.role, &d.name, from, d.parts.clone(), text);
            } else if !d.active {
                self.active_spares.remove(&d.name);
            }
        }
        self.health = Health {
            arbiter: Some(status.name.clone()),
            updated: Some(now),
            arbiter_reachable: true,
            daemons,
        };
    }

    /// No arbiter answered: the last health stays, marked as such.
    pub fn arbiter_unreachable(&mut self) {
        self.health.arbiter_reachable = false;
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn host(&self, name: &str) -> Option<&Entry> {
        self.hosts.get(name)
    }

    pub fn service(&self, host: &str, description: &str) -> Option<&Entry> {
        self.services.get(&(host.to_string(), description.to_string()))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &Entry> {
        self.hosts.values()
    }

    pub fn services(&self) -> impl Iterator<Item = &Entry> {
        self.services.values()
    }

    /// The services of `host`, by description.
    pub fn services_of<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.services
            .range((host.to_string(), String::new())..)
            .take_while(move |((h, _), _)| h == host)
            .map(|(_, e)| e)
    }

    /// Non-OK services and non-UP hosts, worst first (host problems before service problems,
    /// HARD before SOFT, unhandled before acknowledged or in downtime, then the most recent
    /// change, then by name).
    pub fn problems(&self) -> Vec<&Entry> {
        let mut p: Vec<(u32, &Entry)> = self
            .hosts
            .values()
            .chain(self.services.values())
            .filter_map(|e| severity(&e.status).map(|s| (s, e)))
            .collect();
        p.sort_by(|(sa, a), (sb, b)| {
            sb.cmp(sa)
                .then_with(|| b.last_state_change.unwrap_or(0.0).total_cmp(&a.last_state_change.unwrap_or(0.0)))
                .then_with(|| {
                    (&a.status.host_name, &a.status.service_description).cmp(&(&b.status.host_name, &b.status.service_description))
                })
        });
        p.into_iter().map(|(_, e)| e).collect()
    }

    /// The monitoring log, oldest first.
    pub fn logs(&self) -> Vec<String> {
        self.logs.iter().cloned().collect()
    }

    /// Recent state changes, newest first.
    pub fn state_changes(&self) -> Vec<&StateChange> {
        self.changes.iter().rev().collect()
    }

    /// Recent notifications, newest first.
    pub fn notifications(&self) -> Vec<&Notification> {
        self.notifications.iter().rev().collect()
    }

    /// Recent takeovers, newest first.
    pub fn takeovers(&self) -> Vec<&Takeover> {
        self.takeovers.iter().rev().collect()
    }

    pub fn takeovers_total(&self) -> u64 {
        self.takeovers_total
    }

    pub fn state_changes_total(&self) -> u64 {
        self.state_changes_total
    }

    pub fn notifications_total(&self) -> u64 {
        self.notifications_total
    }

    /// Broks applied, by type.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    pub fn broks_per_second(&self, now: f64) -> f64 {
        self.broks_rate.per_second(now)
    }

    pub fn checks_per_second(&self, now: f64) -> f64 {
        self.checks_rate.per_second(now)
    }

    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    pub fn execution_time(&self) -> &Histogram {
        &self.execution_time
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Every host and service, as a scheduler's status shows them (sorted by name).
    pub fn status(&self, name: &str, epoch: u64) -> SchedulerStatus {
        SchedulerStatus {
            name: name.to_string(),
            part_id: None,
            epoch,
            hosts: self.hosts.values().map(|e| e.status.clone()).collect(),
            services: self.services.values().map(|e| e.status.clone()).collect(),
        }
    }
}

/// Arbiters first, then schedulers, then the satellites in Shinken's order.
fn role_rank(role: &str) -> u8 {
    match role {
        "arbiter" => 0,
        "scheduler" => 1,
        "poller" => 2,
        "reactionner" => 3,
        "broker" => 4,
        "receiver" => 5,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::DaemonStatus;

    /// An item status as a scheduler's brok carries it (JSON, so new optional fields do not
    /// break the test).
    fn item(host: &str, svc: Option<&str>, state: &str, sched: &str) -> serde_json::Value {
        typed(host, svc, state, "HARD", sched)
    }

    fn typed(host: &str, svc: Option<&str>, state: &str, state_type: &str, sched: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "host_name": host, "state": state, "state_type": state_type, "attempt": 1,
            "max_check_attempts": 2, "last_check": 1.0, "output": "", "acknowledged": false,
            "in_downtime": false, "scheduler": sched,
        });
        if let Some(d) = svc {
            v["service_description"] = d.into();
        }
        assert!(serde_json::from_value::<ItemStatus>(v.clone()).is_ok());
        v
    }

    fn brok(kind: &str, data: serde_json::Value) -> Brok {
        Brok {
            id: 0,
            kind: kind.into(),
            data,
        }
    }

    #[test]
    fn keeps_the_latest_state_and_the_last_log_lines() {
        let mut v = LiveView::new();
        v.apply("s1", &brok("initial_host_status", item("h", None, "UP", "s1")), 10.0);
        v.apply("s1", &brok("initial_service_status", item("h", Some("a"), "OK", "s1")), 10.0);
        v.apply("s1", &brok("service_check_result", item("h", Some("a"), "CRITICAL", "s1")), 10.0);
        v.apply("s1", &brok("unknown_kind", serde_json::json!({})), 10.0);
        assert_eq!(v.service("h", "a").unwrap().status.state, "CRITICAL");
        assert_eq!(v.host("h").unwrap().status.state, "UP");
        for i in 0..LOG_LINES + 5 {
            v.apply("s1", &brok("log", serde_json::json!({ "log": format!("line {i}") })), 12.0);
        }
        let logs = v.logs();
        assert_eq!(logs.len(), LOG_LINES);
        assert_eq!(logs.last().unwrap(), &format!("[12] line {}", LOG_LINES + 4));
        assert_eq!(v.counts()["log"], (LOG_LINES + 5) as u64);
    }

    #[test]
    fn initial_broks_replace_what_a_scheduler_showed() {
        let mut v = LiveView::new();
        v.apply("s1", &brok("initial_host_status", item("gone", None, "UP", "s1")), 1.0);
        v.apply("s2", &brok("initial_host_status", item("other", None, "UP", "s2")), 1.0);
        v.apply("s1", &brok("program_status", serde_json::json!({ "scheduler": "s1" })), 1.0);
        v.apply("s1", &brok("initial_host_status", item("kept", None, "DOWN", "s1")), 1.0);
        let st = v.status("b", 3);
        let names: Vec<&str> = st.hosts.iter().map(|h| h.host_name.as_str()).collect();
        assert_eq!(names, ["kept", "other"]);
        assert_eq!(st.epoch, 3);
    }

    #[test]
    fn initial_statuses_log_current_states_and_set_no_change() {
        let mut v = LiveView::new();
        let mut s = item("web-1", Some("disk"), "CRITICAL", "s1");
        s["output"] = "DISK CRITICAL".into();
        s["attempt"] = 2.into();
        let lines = v.apply("s1", &brok("initial_service_status", s), 100.0);
        assert_eq!(lines, ["[100] CURRENT SERVICE STATE: web-1;disk;CRITICAL;HARD;2;DISK CRITICAL"]);
        let lines = v.apply("s1", &brok("initial_host_status", item("web-1", None, "UP", "s1")), 100.0);
        assert_eq!(lines, ["[100] CURRENT HOST STATE: web-1;UP;HARD;1;"]);
        assert!(v.state_changes().is_empty());
        // A log line already stamped keeps its stamp.
        let lines = v.apply(
            "s1",
            &brok("log", serde_json::json!({"log": "[5] HOST ALERT: x;DOWN;SOFT;1;"})),
            100.0,
        );
        assert_eq!(lines, ["[5] HOST ALERT: x;DOWN;SOFT;1;"]);
    }

    #[test]
    fn consecutive_statuses_make_state_changes() {
        let mut v = LiveView::new();
        v.apply(
            "s1",
            &brok("initial_service_status", typed("h", Some("a"), "OK", "HARD", "s1")),
            1.0,
        );
        let mut soft = typed("h", Some("a"), "CRITICAL", "SOFT", "s1");
        soft["last_check"] = 20.0.into();
        v.apply("s1", &brok("service_check_result", soft.clone()), 21.0);
        // Same state and type again: no change.
        v.apply("s1", &brok("service_check_result", soft), 22.0);
        let mut hard = typed("h", Some("a"), "CRITICAL", "HARD", "s1");
        hard["last_check"] = 30.0.into();
        hard["attempt"] = 2.into();
        v.apply("s1", &brok("service_check_result", hard), 31.0);
        let ch = v.state_changes();
        assert_eq!(ch.len(), 2);
        assert_eq!((ch[0].from_state.as_str(), ch[0].from_state_type.as_str()), ("CRITICAL", "SOFT"));
        assert_eq!(
            (ch[0].state.as_str(), ch[0].state_type.as_str(), ch[0].attempt),
            ("CRITICAL", "HARD", 2)
        );
        assert_eq!(ch[0].time, 30.0);
        assert_eq!(
            (ch[1].from_state.as_str(), ch[1].state.as_str(), ch[1].time),
            ("OK", "CRITICAL", 20.0)
        );
        assert_eq!(v.service("h", "a").unwrap().last_state_change, Some(30.0));
        // Results at 21 (out of the window), 22 and 31.
        assert_eq!(v.checks_per_second(31.0), 0.2);
    }

    #[test]
    fn notifications_are_parsed_from_log_lines() {
        let mut v = LiveView::new();
        v.apply(
            "s1",
            &brok(
                "log",
                serde_json::json!({"log": "SERVICE NOTIFICATION: admin;web-1;disk;CRITICAL;notify-by-file;DISK CRITICAL; 5% free"}),
            ),
            7.0,
        );
        v.apply(
            "s1",
            &brok(
                "log",
                serde_json::json!({"log": "HOST NOTIFICATION: admin;web-1;DOWN;notify-host;down"}),
            ),
            8.0,
        );
        let n = v.notifications();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].service_description, None);
        assert_eq!(n[0].notification_type, "DOWN");
        assert_eq!(n[1].service_description.as_deref(), Some("disk"));
        assert_eq!(n[1].output, "DISK CRITICAL; 5% free");
        assert_eq!(n[1].command, "notify-by-file");
        assert!(parse_notification("SERVICE ALERT: a;b;OK;HARD;1;x", 0.0).is_none());
    }

    #[test]
    fn problems_are_worst_first() {
        let mut v = LiveView::new();
        let mut add = |host: &str, svc: Option<&str>, state: &str, st: &str| {
            v.apply("s1", &brok("initial_service_status", typed(host, svc, state, st, "s1")), 1.0);
        };
        add("h1", Some("w"), "WARNING", "HARD");
        add("h1", Some("c-soft"), "CRITICAL", "SOFT");
        add("h1", Some("c-hard"), "CRITICAL", "HARD");
        add("h1", Some("ok"), "OK", "HARD");
        add("h2", None, "DOWN", "HARD");
        add("h3", None, "UP", "HARD");
        add("h1", Some("u"), "UNKNOWN", "HARD");
        add("h1", Some("p"), "PENDING", "HARD");
        let mut acked = typed("h1", Some("c-ack"), "CRITICAL", "HARD", "s1");
        acked["acknowledged"] = true.into();
        v.apply("s1", &brok("initial_service_status", acked), 1.0);
        let p: Vec<String> = v
            .problems()
            .iter()
            .map(|e| format!("{}/{}", e.status.host_name, e.status.service_description.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(p, ["h2/", "h1/c-hard", "h1/c-ack", "h1/c-soft", "h1/u", "h1/w"]);
        assert_eq!(v.services_of("h1").count(), 7);
        assert_eq!(v.services_of("h2").count(), 0);
    }

    fn daemon(name: &str, role: &str, spare: bool, alive: bool, parts: &[u32]) -> DaemonStatus {
        DaemonStatus {
            name: name.into(),
            role: role.into(),
            spare,
            alive,
            address: "127.0.0.1".into(),
            port: 1,
            realm: "All".into(),
            parts: parts.iter().map(|p| (*p, 1)).collect(),
        }
    }

    #[test]
    fn arbiter_status_gives_health_and_takeovers() {
        let mut v = LiveView::new();
        let spares: BTreeMap<String, bool> = [("arb".to_string(), false)].into();
        let mut st = ArbiterStatus {
            name: "arb".into(),
            master: true,
            epoch: 1,
            daemons: vec![
                daemon("s-master", "scheduler", false, true, &[0]),
                daemon("s-spare", "scheduler", true, true, &[]),
                daemon("b-master", "broker", false, true, &[0]),
                daemon("b-spare", "broker", true, true, &[]),
            ],
        };
        v.set_arbiter_status(&st, &spares, 10.0);
        assert_eq!(v.takeovers_total(), 0);
        let h = v.health();
        assert_eq!(h.daemons[0].name, "arb");
        assert!(h.daemons[0].active);
        let active: Vec<&str> = h.daemons.iter().filter(|d| d.active).map(|d| d.name.as_str()).collect();
        assert_eq!(active, ["arb", "s-master", "b-master"]);
        // The masters die; the spares take over.
        st.daemons = vec![
            daemon("s-master", "scheduler", false, false, &[]),
            daemon("s-spare", "scheduler", true, true, &[0]),
            daemon("b-master", "broker", false, false, &[]),
            daemon("b-spare", "broker", true, true, &[0]),
        ];
        v.set_arbiter_status(&st, &spares, 20.0);
        v.set_arbiter_status(&st, &spares, 21.0);
        assert_eq!(v.takeovers_total(), 2);
        let t = v.takeovers();
        assert_eq!(t[0].text, "Spare broker b-spare took over from b-master");
        assert_eq!(t[1].text, "Scheduler s-spare took over part 0 from s-master");
        // The same move seen in broks is not counted twice.
        v.apply(
            "s-spare",
            &brok("program_status", serde_json::json!({"scheduler": "s-spare", "part_id": 0})),
            22.0,
        );
        assert_eq!(v.takeovers_total(), 2);
        // Another arbiter leading.
        st.name = "arb-spare".into();
        v.set_arbiter_status(&st, &spares, 30.0);
        assert_eq!(v.takeovers_total(), 3);
        assert_eq!(v.takeovers()[0].role, "arbiter");
        v.arbiter_unreachable();
        assert!(!v.health().arbiter_reachable);
        // A broker that first sees a spare already active counts no takeover.
        let mut fresh = LiveView::new();
        fresh.set_arbiter_status(&st, &spares, 40.0);
        assert_eq!(fresh.takeovers_total(), 0);
        assert!(fresh.health().daemons.iter().any(|d| d.name == "b-spare" && d.active && d.spare));
    }

    #[test]
    fn a_stale_scheduler_beside_the_new_holder_is_no_takeover_back_and_forth() {
        let mut v = LiveView::new();
        let mut old = daemon("s-master", "scheduler", false, true, &[0]);
        let mut new = daemon("s-spare", "scheduler", true, true, &[0]);
        old.parts.insert(0, 5);
        new.parts.insert(0, 9);
        let st = ArbiterStatus {
            name: "arb".into(),
            master: true,
            epoch: 9,
            daemons: vec![old, new],
        };
        for t in 0..4 {
            v.set_arbiter_status(&st, &BTreeMap::new(), t as f64);
        }
        assert_eq!(v.takeovers_total(), 0);
        v.apply(
            "s-master",
            &brok("program_status", serde_json::json!({"scheduler": "s-master", "part_id": 0})),
            5.0,
        );
        assert_eq!(v.takeovers_total(), 1);
    }

    #[test]
    fn histograms_and_rates() {
        let mut v = LiveView::new();
        let mut r = item("h", Some("a"), "OK", "s1");
        r["latency"] = 0.2.into();
        r["execution_time"] = 3.0.into();
        v.apply("s1", &brok("service_check_result", r), 100.0);
        assert_eq!(v.latency().count(), 1);
        assert_eq!(v.service("h", "a").unwrap().execution_time, Some(3.0));
        let mut text = String::new();
        v.execution_time().render("x_seconds", "help", &mut text);
        assert!(text.contains("x_seconds_bucket{le=\"2.5\"} 0\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"5\"} 1\n"), "{text}");
        assert!(
            text.contains("x_seconds_bucket{le=\"+Inf\"} 1\nx_seconds_sum 3\nx_seconds_count 1\n"),
            "{text}"
        );
        assert_eq!(v.broks_per_second(100.0), 0.1);
        assert_eq!(v.broks_per_second(100.0 + RATE_WINDOW as f64), 0.0);
    }
}
