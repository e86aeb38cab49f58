//! The dispatcher: who is alive, which scheduler runs which part, which satellites serve which
//! parts, and what must be sent to make it so. Pure: no I/O, time is an input.
//!
//! (semantics reference, 2.5 to 2.8.) The daemon around it calls, about once a second:
//! [`Dispatcher::probe_due`] (whom to probe now), [`Dispatcher::record_probe`] with each answer,
//! [`Dispatcher::plan`] (the calls to make), then [`Dispatcher::dispatch_result`] with each
//! outcome. Every call appends its log lines (Shinken's wording) to a journal that the daemon
//! takes with [`Dispatcher::take_log`].
//!
//! Decisions, where they differ from Shinken:
//! - **Dead means dead** (DESIGN): a part moves away from its scheduler only when that scheduler
//!   is dead (`max_check_attempts` failed probes in a row, or [`Dispatcher::mark_dead`]). A
//!   scheduler that misses one probe keeps its part; "did not managed its configuration" is only
//!   judged on an answer it gave (Shinken also judges an empty list left by a failed probe and so
//!   fails over at the first failed probe, issue #1615).
//! - A part is only sent to a scheduler that answered its last probe (alive and reachable):
//!   Shinken first tries the still-"alive" unreachable master, waits for the call to fail, then
//!   takes the next candidate; the outcome is the same without the wasted timeout. A failed
//!   `put_conf` marks the daemon unreachable until its next probe, so the next pass (about a
//!   second later) takes the next candidate.
//! - **No fail-back** for satellites either, made explicit: each realm and role keeps the set of
//!   satellites serving it; a dead one leaves it and an alive spare fills the gap; a master that
//!   returns is not needed while its spare serves. Across a reload a part goes back to the
//!   scheduler that held it, so a reload does not move work back to a returning master.
//! - **Epochs** (Shinken's random push flavor): every dispatch takes `max(last + 1, now in ms)`,
//!   and `last` also follows the highest epoch any daemon reports, so epochs grow across arbiter
//!   restarts and takeovers without storage.
//! - Every alive non-spare satellite of a realm serves every part of it, brokers included
//!   (Shinken gives a part to one broker only, unless `broker_complete_links`). Realms are
//!   isolated: no spare scheduler or `manage_sub_realms` satellite of another realm is used.

use crate::arbiter::parts::Part;
use crate::messages::{DaemonStatus, Managed, SatelliteConf, SchedulerLink};
use shinken_config::daemons::{DaemonDef, Role, Topology};
use std::collections::{BTreeMap, BTreeSet};

/// How loud a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One log line of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub level: Level,
    pub text: String,
}

/// A call the daemon must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `put_conf` of part `part` (its cfg text) with `epoch` to `scheduler`.
    SendSchedulerConf { part: u32, scheduler: String, epoch: u64 },
    /// `put_conf` of a satellite configuration.
    SendSatelliteConf { satellite: String, conf: SatelliteConf },
    /// `wait_new_conf`: the daemon holds something it should not.
    WaitNewConf { daemon: String },
}

/// A part moved on purpose by [`Dispatcher::switchover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switchover {
    pub part: u32,
    pub realm: String,
    pub from: String,
    pub to: String,
    pub epoch: u64,
}

impl Switchover {
    /// The calls to make, in order: the old holder stops (it saves its retention), then the
    /// new one gets the part.
    pub fn actions(&self) -> [Action; 2] {
        [
            Action::WaitNewConf { daemon: self.from.clone() },
            Action::SendSchedulerConf {
                part: self.part,
                scheduler: self.to.clone(),
                epoch: self.epoch,
            },
        ]
    }
}

/// Why a switchover is refused, by HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchoverError {
    /// 400: the request itself is wrong.
    BadRequest(String),
    /// 404: a daemon named is unknown.
    NotFound(String),
    /// 409: the cluster's state forbids it now.
    Conflict(String),
}

impl std::fmt::Display for SwitchoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwitchoverError::BadRequest(m) | SwitchoverError::NotFound(m) | SwitchoverError::Conflict(m) => f.write_str(m),
        }
    }
}

/// What the arbiter knows of one daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonState {
    pub def: DaemonDef,
    /// False after `max_check_attempts` failed probes in a row (or an external signal); true
    /// again at the first probe answered.
    pub alive: bool,
    /// Whether its last probe was answered (false before the first one, and after a failed
    /// call until the next probe).
    pub reachable: bool,
    /// Failed probes in a row, capped at `max_check_attempts`.
    pub attempt: u32,
    /// When the last probe started (Unix seconds); none before the first.
    pub last_probe: Option<f64>,
    /// What it holds as last known: its last `what_i_managed`, or what a dispatch that
    /// succeeded since gave it.
    pub managed: Managed,
    /// Satellites: the epoch of the configuration sent and not yet answered.
    pending: Option<u64>,
}

/// What the arbiter knows of one part.
#[derive(Debug, Clone, PartialEq)]
pub struct PartState {
    pub id: u32,
    pub realm: String,
    pub hosts: usize,
    /// The scheduler that accepted it, none while unassigned.
    pub scheduler: Option<String>,
    /// The epoch of the last dispatch that succeeded.
    pub epoch: u64,
    /// The dispatch in flight: scheduler and epoch.
    pending: Option<(String, u64)>,
    /// The scheduler to try first: the one the part was cut for, or its holder before a reload.
    preferred: Option<String>,
    /// "no alive scheduler" was logged for this unassigned part (logged once, not every pass).
    warned: bool,
    /// Reports of this part with an epoch at or below this are not adopted: they belong to the
    /// configuration before the last reload.
    adopt_above: u64,
}

/// The dispatcher's state. See the module documentation.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    /// This arbiter's name, written into the configurations sent.
    arbiter: String,
    /// Every scheduler and satellite of the topology, in definition order (arbiters excluded).
    daemons: Vec<DaemonState>,
    parts: Vec<PartState>,
    /// Per realm and satellite role, the satellites serving its parts (sticky: no fail-back).
    serving: BTreeMap<(String, Role), Vec<String>>,
    /// The highest epoch given or seen.
    last_epoch: u64,
    /// "Begin to dispatch configurations to satellites" logged since the start or last reload.
    begun: bool,
    /// "OK, all schedulers configurations are dispatched :)" logged since every part was last
    /// assigned.
    all_dispatched: bool,
    log: Vec<Log>,
}

/// `http://address:port` (brackets around an IPv6 address).
pub fn url_of(def: &DaemonDef) -> String {
    if def.address.contains(':') && !def.address.starts_with('[') {
        format!("http://[{}]:{}", def.address, def.port)
    } else {
        format!("http://{}:{}", def.address, def.port)
    }
}

fn is_satellite(role: Role) -> bool {
    matches!(role, Role::Poller | Role::Reactionner | Role::Broker | Role::Receiver)
}

impl Dispatcher {
    /// A dispatcher for `topology` and the parts it was cut into: every daemon alive but not yet
    /// probed, every part unassigned.
    pub fn new(arbiter: &str, topology: &Topology, parts: &[Part]) -> Dispatcher {
        let daemons = topology
            .daemons
            .iter()
            .filter(|d| d.role != Role::Arbiter)
            .map(|d| DaemonState {
                def: d.clone(),
                alive: true,
                reachable: false,
                attempt: 0,
                last_probe: None,
                managed: Managed::new(),
                pending: None,
            })
            .collect();
        let parts = parts
            .iter()
            .map(|p| PartState {
                id: p.id as u32,
                realm: p.realm.clone(),
                hosts: p.hosts.len(),
                scheduler: None,
                epoch: 0,
                pending: None,
                preferred: Some(p.scheduler.clone()),
                warned: false,
                adopt_above: 0,
            })
            .collect();
        Dispatcher {
            arbiter: arbiter.to_string(),
            daemons,
            parts,
            serving: BTreeMap::new(),
            last_epoch: 0,
            begun: false,
            all_dispatched: false,
            log: Vec::new(),
        }
    }

    /// A new configuration: daemons keep their liveness and what they hold (by name and role),
    /// every part is unassigned and will be dispatched anew with a new epoch, first to the
    /// scheduler that held the same part id before (no move back to a returning master).
    pub fn reload(&mut self, topology: &Topology, parts: &[Part]) {
        let mut next = Dispatcher::new(&self.arbiter, topology, parts);
        for d in &mut next.daemons {
            if let Some(old) = self.daemons.iter().find(|o| o.def.name == d.def.name && o.def.role == d.def.role) {
                d.alive = old.alive;
                d.reachable = old.reachable;
                d.attempt = old.attempt.min(d.def.max_check_attempts.max(1));
                d.last_probe = old.last_probe;
                d.managed = old.managed.clone();
            }
        }
        for p in &mut next.parts {
            let before = self
                .parts
                .iter()
                .find(|o| o.id == p.id && o.realm == p.realm)
                .and_then(|o| o.scheduler.clone());
            if let Some(holder) = before
                && next
                    .daemons
                    .iter()
                    .any(|d| d.def.role == Role::Scheduler && d.def.name == holder && d.def.realm == p.realm)
            {
                p.preferred = Some(holder);
            }
        }
        for ((realm, role), names) in &self.serving {
            let kept: Vec<String> = names
                .iter()
                .filter(|n| {
                    next.daemons
                        .iter()
                        .any(|d| &d.def.name == *n && d.def.role == *role && &d.def.realm == realm)
                })
                .cloned()
                .collect();
            next.serving.insert((realm.clone(), *role), kept);
        }
        next.last_epoch = self.last_epoch;
        for p in &mut next.parts {
            p.adopt_above = self.last_epoch;
        }
        next.log = std::mem::take(&mut self.log);
        *self = next;
    }

    /// The log lines appended since the last call.
    pub fn take_log(&mut self) -> Vec<Log> {
        std::mem::take(&mut self.log)
    }

    fn info(&mut self, text: String) {
        self.log.push(Log { level: Level::Info, text });
    }

    fn warn(&mut self, text: String) {
        self.log.push(Log { level: Level::Warn, text });
    }

    fn error(&mut self, text: String) {
        self.log.push(Log { level: Level::Error, text });
    }

    pub fn daemons(&self) -> &[DaemonState] {
        &self.daemons
    }

    pub fn parts(&self) -> &[PartState] {
        &self.parts
    }

    pub fn daemon(&self, name: &str) -> Option<&DaemonState> {
        self.daemons.iter().find(|d| d.def.name == name)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.daemons.iter().position(|d| d.def.name == name)
    }

    /// The highest epoch given or seen.
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    /// Whether every part is held by a scheduler.
    pub fn all_assigned(&self) -> bool {
        self.parts.iter().all(|p| p.scheduler.is_some())
    }

    /// Epochs given from now on are above `epoch` (the shared epoch counter, another arbiter's).
    pub fn follow_epoch(&mut self, epoch: u64) {
        self.last_epoch = self.last_epoch.max(epoch);
    }

    /// A new epoch: above every epoch given or seen, and at least the time in milliseconds.
    fn next_epoch(&mut self, now: f64) -> u64 {
        let clock = if now > 0.0 { (now * 1000.0) as u64 } else { 0 };
        self.last_epoch = (self.last_epoch + 1).max(clock);
        self.last_epoch
    }

    /// The daemons to probe now (every `check_interval` seconds, the first time at once);
    /// their probe counts as started at `now`.
    pub fn probe_due(&mut self, now: f64) -> Vec<String> {
        let mut due = Vec::new();
        for d in &mut self.daemons {
            let interval = f64::from(d.def.check_interval.max(1));
            if d.last_probe.is_none_or(|t| now - t >= interval || now < t) {
                d.last_probe = Some(now);
                due.push(d.def.name.clone());
            }
        }
        due
    }

    /// The answer of a probe (`ping` then `what_i_managed`): what it holds, or why it failed.
    pub fn record_probe(&mut self, name: &str, outcome: Result<Managed, String>, now: f64) {
        let Some(i) = self.index(name) else { return };
        let d = &mut self.daemons[i];
        if d.last_probe.is_none() {
            d.last_probe = Some(now);
        }
        match outcome {
            Ok(managed) => {
                let back = !d.alive;
                d.alive = true;
                d.reachable = true;
                d.attempt = 0;
                let highest = managed.values().copied().max().unwrap_or(0);
                d.managed = managed;
                self.last_epoch = self.last_epoch.max(highest);
                if back {
                    self.info(format!("{name} is alive again"));
                }
            }
            Err(reason) => {
                let max = d.def.max_check_attempts.max(1);
                d.reachable = false;
                d.attempt = (d.attempt + 1).min(max);
                let attempt = d.attempt;
                let dies = d.alive && attempt >= max;
                if dies {
                    d.alive = false;
                }
                self.warn(format!("Add failed attempt to {name} ({attempt}/{max}) {reason}"));
                if dies {
                    self.warn(format!("Setting the satellite {name} to a dead state."));
                    self.release_parts_of(name);
                }
            }
        }
    }

    /// An external signal that a daemon is gone (the operator saw its pod die): the same path
    /// as a death detected by probes. `Err` for an unknown daemon.
    pub fn mark_dead(&mut self, name: &str, reason: &str) -> Result<(), String> {
        let Some(i) = self.index(name) else {
            return Err(format!("no scheduler or satellite named '{name}'"));
        };
        let d = &mut self.daemons[i];
        d.reachable = false;
        d.attempt = d.def.max_check_attempts.max(1);
        let was_alive = std::mem::replace(&mut d.alive, false);
        self.warn(format!("{name} is declared down: {reason}"));
        if was_alive {
            self.warn(format!("Setting the satellite {name} to a dead state."));
        }
        self.release_parts_of(name);
        Ok(())
    }

    /// A scheduler died: its parts are unassigned at once, so that a probe it answers before
    /// the next plan (a daemon declared down that still answers) does not keep them with it;
    /// and it is no longer the scheduler a part prefers.
    fn release_parts_of(&mut self, name: &str) {
        for pi in 0..self.parts.len() {
            if self.parts[pi].preferred.as_deref() == Some(name) {
                self.parts[pi].preferred = None;
            }
            if self.parts[pi].scheduler.as_deref() == Some(name) {
                let id = self.parts[pi].id;
                self.warn(format!("Scheduler {name} had the configuration {id} but is dead, I am not happy."));
                self.parts[pi].scheduler = None;
                self.all_dispatched = false;
            }
        }
    }

    /// The calls to make now. Parts sent are pending until [`Dispatcher::dispatch_result`].
    pub fn plan(&mut self, now: f64) -> Vec<Action> {
        let mut actions = Vec::new();
        self.adopt();

        // Parts whose scheduler died, or that a reachable scheduler no longer reports.
        let mut resend: Vec<(usize, String)> = Vec::new();
        for pi in 0..self.parts.len() {
            let p = &self.parts[pi];
            let (Some(holder), None) = (p.scheduler.clone(), &p.pending) else {
                continue;
            };
            let (id, epoch) = (p.id, p.epoch);
            let state = self
                .daemon(&holder)
                .map(|d| (d.alive, d.reachable, d.managed.get(&id) == Some(&epoch)));
            match state {
                Some((true, true, false)) => {
                    self.warn(format!(
                        "Scheduler {holder} did not managed its configuration {id}, I am not happy."
                    ));
                    self.parts[pi].scheduler = None;
                    self.all_dispatched = false;
                    resend.push((pi, holder));
                }
                Some((false, _, _)) | None => {
                    self.warn(format!(
                        "Scheduler {holder} had the configuration {id} but is dead, I am not happy."
                    ));
                    self.parts[pi].scheduler = None;
                    self.all_dispatched = false;
                }
                _ => {}
            }
        }

        // Schedulers: one part at most each.
        let mut busy: BTreeSet<String> = self.parts.iter().filter_map(|p| p.scheduler.clone()).collect();
        busy.extend(self.parts.iter().filter_map(|p| p.pending.as_ref().map(|(s, _)| s.clone())));
        let mut sending_realms: BTreeSet<String> = BTreeSet::new();
        if !self.begun && self.parts.iter().any(|p| p.scheduler.is_none() && p.pending.is_none()) {
            self.begun = true;
            self.info("Begin to dispatch configurations to satellites".to_string());
        }
        for (pi, holder) in resend {
            // The same scheduler gets its part again (not a new choice: no move to a master).
            let id = self.parts[pi].id;
            let realm = self.parts[pi].realm.clone();
            let epoch = self.next_epoch(now);
            self.info(format!("[{realm}] Trying to send conf {id} to scheduler {holder}"));
            self.parts[pi].pending = Some((holder.clone(), epoch));
            busy.insert(holder.clone());
            sending_realms.insert(realm);
            actions.push(Action::SendSchedulerConf {
                part: id,
                scheduler: holder,
                epoch,
            });
        }
        for pi in 0..self.parts.len() {
            if self.parts[pi].scheduler.is_some() || self.parts[pi].pending.is_some() {
                continue;
            }
            let id = self.parts[pi].id;
            let realm = self.parts[pi].realm.clone();
            let preferred = self.parts[pi].preferred.clone();
            let mut candidates: Vec<(bool, bool, usize, String)> = self
                .daemons
                .iter()
                .enumerate()
                .filter(|(_, d)| d.def.role == Role::Scheduler && d.def.realm == realm && d.alive && d.reachable)
                .filter(|(_, d)| !busy.contains(&d.def.name))
                .map(|(i, d)| {
                    (
                        preferred.as_deref() != Some(d.def.name.as_str()),
                        d.def.spare,
                        i,
                        d.def.name.clone(),
                    )
                })
                .collect();
            candidates.sort();
            let Some((_, _, _, chosen)) = candidates.first().cloned() else {
                if !self.parts[pi].warned {
                    self.parts[pi].warned = true;
                    self.warn(format!(
                        "[{realm}] Dispatching configuration {id} but there a no alive schedulers in this realm!"
                    ));
                }
                continue;
            };
            let order: Vec<&str> = candidates.iter().map(|c| c.3.as_str()).collect();
            let order = order.join(",");
            self.info(format!("[{realm}] Schedulers order: {order}"));
            let epoch = self.next_epoch(now);
            self.info(format!("[{realm}] Trying to send conf {id} to scheduler {chosen}"));
            let p = &mut self.parts[pi];
            p.warned = false;
            p.pending = Some((chosen.clone(), epoch));
            busy.insert(chosen.clone());
            sending_realms.insert(realm);
            actions.push(Action::SendSchedulerConf {
                part: id,
                scheduler: chosen,
                epoch,
            });
        }

        // Schedulers holding what they should not (a returning master, a stale holder).
        for i in 0..self.daemons.len() {
            let d = &self.daemons[i];
            if d.def.role != Role::Scheduler || !d.alive || !d.reachable || d.managed.is_empty() || busy.contains(&d.def.name) {
                continue;
            }
            let name = d.def.name.clone();
            self.warn(format!(
                "The element {name} have a conf and should not have one! I ask it to idle now"
            ));
            actions.push(Action::WaitNewConf { daemon: name });
        }

        // Satellites: who serves each realm and role, then what each must hold.
        let mut keys: BTreeSet<(String, Role)> = BTreeSet::new();
        for d in &self.daemons {
            if is_satellite(d.def.role) {
                keys.insert((d.def.realm.clone(), d.def.role));
            }
        }
        for key in keys {
            let (realm, role) = key.clone();
            if sending_realms.contains(&realm) {
                continue; // the links change at the next pass, once the schedulers answered
            }
            let members: Vec<usize> = (0..self.daemons.len())
                .filter(|&i| self.daemons[i].def.role == role && self.daemons[i].def.realm == realm)
                .collect();
            let must_have = members.iter().filter(|&&i| !self.daemons[i].def.spare).count();
            // The first time (a new arbiter, or one that just took the lead): the satellites in
            // force are those that answered holding links; they keep serving (no reshuffle).
            let mut serving: Vec<String> = self.serving.get(&key).cloned().unwrap_or_else(|| {
                members
                    .iter()
                    .map(|&i| &self.daemons[i])
                    .filter(|d| d.alive && d.reachable && !d.managed.is_empty())
                    .map(|d| d.def.name.clone())
                    .collect()
            });
            serving.retain(|n| self.daemon(n).is_some_and(|d| d.alive));
            // As Shinken, parts are served by satellites that are alive AND reachable: while a
            // serving one does not answer (not yet dead), a reachable spare steps in at once
            // rather than after max_check_attempts probes. The unreachable one keeps its links;
            // if it comes back, both serve (a check still goes to one poller only).
            let answering = serving.iter().filter(|n| self.daemon(n).is_some_and(|d| d.reachable)).count();
            let mut spare_candidates: Vec<(bool, usize)> = members
                .iter()
                .filter(|&&i| self.daemons[i].alive && self.daemons[i].reachable && !serving.contains(&self.daemons[i].def.name))
                .map(|&i| (self.daemons[i].def.spare, i))
                .collect();
            spare_candidates.sort();
            for (_, i) in spare_candidates.into_iter().take(must_have.saturating_sub(answering)) {
                serving.push(self.daemons[i].def.name.clone());
            }
            let links: Vec<SchedulerLink> = self
                .parts
                .iter()
                .filter(|p| p.realm == realm)
                .filter_map(|p| {
                    let s = self.daemon(p.scheduler.as_deref()?)?;
                    Some(SchedulerLink {
                        part_id: p.id,
                        epoch: p.epoch,
                        name: s.def.name.clone(),
                        url: url_of(&s.def),
                        timeout: s.def.timeout,
                        data_timeout: s.def.data_timeout,
                    })
                })
                .collect();
            let wanted: Managed = links.iter().map(|l| (l.part_id, l.epoch)).collect();
            for &i in &members {
                let d = &self.daemons[i];
                if !d.alive || !d.reachable || d.pending.is_some() {
                    continue;
                }
                let name = d.def.name.clone();
                let serves = serving.contains(&name);
                if serves && d.managed != wanted && !links.is_empty() {
                    let epoch = self.next_epoch(now);
                    let d = &self.daemons[i];
                    let conf = SatelliteConf {
                        name: name.clone(),
                        epoch,
                        schedulers: links.clone(),
                        tags: d.def.tags.clone(),
                        polling_interval: d.def.polling_interval,
                        max_workers: d.def.max_workers,
                        processes_by_worker: d.def.processes_by_worker,
                        results_batch: d.def.results_batch,
                        max_plugins_output_length: d.def.max_plugins_output_length.unwrap_or(8192),
                        arbiter: self.arbiter.clone(),
                    };
                    self.daemons[i].pending = Some(epoch);
                    self.info(format!("[{realm}] Trying to send configuration to {} {name}", role.name()));
                    actions.push(Action::SendSatelliteConf { satellite: name, conf });
                } else if (!serves || links.is_empty()) && !d.managed.is_empty() {
                    self.warn(format!("I ask {name} to wait a new conf"));
                    actions.push(Action::WaitNewConf { daemon: name });
                }
            }
            self.serving.insert(key, serving);
        }
        actions
    }

    /// The outcome of an action from [`Dispatcher::plan`]. A result that no longer matches
    /// what is in flight (a reload came in between) is ignored.
    pub fn dispatch_result(&mut self, action: &Action, outcome: Result<(), String>) {
        match action {
            Action::SendSchedulerConf { part, scheduler, epoch } => {
                let Some(pi) = self.parts.iter().position(|p| p.id == *part) else {
                    return;
                };
                if self.parts[pi].pending.as_ref() != Some(&(scheduler.clone(), *epoch)) {
                    return;
                }
                self.parts[pi].pending = None;
                let realm = self.parts[pi].realm.clone();
                match outcome {
                    Ok(()) => {
                        self.parts[pi].scheduler = Some(scheduler.clone());
                        self.parts[pi].epoch = *epoch;
                        if let Some(i) = self.index(scheduler) {
                            self.daemons[i].managed = Managed::from([(*part, *epoch)]);
                        }
                        self.info(format!("[{realm}] Dispatch OK of conf in scheduler {scheduler}"));
                        if self.all_assigned() && !self.all_dispatched {
                            self.all_dispatched = true;
                            self.info("OK, all schedulers configurations are dispatched :)".to_string());
                        }
                    }
                    Err(reason) => {
                        if let Some(i) = self.index(scheduler) {
                            self.daemons[i].reachable = false;
                        }
                        self.error(format!(
                            "[{realm}] configuration dispatching error for scheduler {scheduler}: {reason}"
                        ));
                        let missing = self.parts.iter().filter(|p| p.scheduler.is_none()).count();
                        self.warn(format!("All schedulers configurations are not dispatched, {missing} are missing"));
                    }
                }
            }
            Action::SendSatelliteConf { satellite, conf } => {
                let Some(i) = self.index(satellite) else { return };
                if self.daemons[i].pending != Some(conf.epoch) {
                    return;
                }
                let d = &mut self.daemons[i];
                d.pending = None;
                let (realm, role) = (d.def.realm.clone(), d.def.role.name());
                match outcome {
                    Ok(()) => {
                        d.managed = conf.schedulers.iter().map(|l| (l.part_id, l.epoch)).collect();
                        for l in &conf.schedulers {
                            self.info(format!(
                                "[{realm}] Dispatch OK of configuration {} to {role} {satellite}",
                                l.part_id
                            ));
                        }
                    }
                    Err(reason) => {
                        d.reachable = false;
                        self.error(format!(
                            "[{realm}] configuration dispatching error for {role} {satellite}: {reason}"
                        ));
                    }
                }
            }
            Action::WaitNewConf { daemon } => {
                let Some(i) = self.index(daemon) else { return };
                match outcome {
                    Ok(()) => self.daemons[i].managed.clear(),
                    Err(reason) => {
                        self.daemons[i].reachable = false;
                        self.error(format!("Cannot ask {daemon} to wait a new conf: {reason}"));
                    }
                }
            }
        }
    }

    /// The assignments in force: a part that an alive, reachable scheduler of its realm reports
    /// with an epoch above the one this dispatcher knows (and above the last reload) is
    /// assigned to it, with that epoch, without sending anything. This is how an arbiter that
    /// starts or takes the lead keeps the parts where they run (no re-dispatch from scratch),
    /// and how two arbiters that lead at once stop fighting: the highest epoch wins, and both
    /// tell any other holder to idle.
    fn adopt(&mut self) {
        for pi in 0..self.parts.len() {
            let p = &self.parts[pi];
            if p.pending.is_some() {
                continue;
            }
            let floor = p.epoch.max(p.adopt_above);
            let best = self
                .daemons
                .iter()
                .filter(|d| d.def.role == Role::Scheduler && d.def.realm == p.realm && d.alive && d.reachable)
                .filter_map(|d| d.managed.get(&p.id).map(|&e| (e, d.def.name.clone())))
                .filter(|(e, _)| *e > floor)
                .max();
            let Some((epoch, name)) = best else { continue };
            let (id, realm) = (p.id, p.realm.clone());
            let before = p.scheduler.clone();
            let p = &mut self.parts[pi];
            p.scheduler = Some(name.clone());
            p.epoch = epoch;
            p.warned = false;
            self.last_epoch = self.last_epoch.max(epoch);
            match before {
                None => self.info(format!(
                    "[{realm}] Configuration {id} runs on scheduler {name} (epoch {epoch}): adopted, not dispatched again"
                )),
                Some(b) if b == name => self.info(format!(
                    "[{realm}] Scheduler {name} runs configuration {id} with the newer epoch {epoch}: followed"
                )),
                Some(b) => self.info(format!(
                    "[{realm}] Configuration {id} was moved from scheduler {b} to scheduler {name} (epoch {epoch}) by another arbiter: adopted"
                )),
            }
            if self.all_assigned() && !self.all_dispatched {
                self.all_dispatched = true;
                self.info("OK, all schedulers configurations are dispatched :)".to_string());
            }
        }
    }

    /// `POST /v1/switchover`: the part that scheduler `daemon` holds goes to scheduler `to` (same
    /// realm, alive, reachable, holding nothing) with a new epoch. The part is in flight to `to`
    /// when this returns: the caller tells `daemon` to wait a new conf, then sends the part
    /// ([`Switchover::actions`], in that order) and reports both outcomes with
    /// [`Dispatcher::dispatch_result`]. If the send fails, the part stays assigned to `daemon`,
    /// which no longer runs it: the next pass sends it there again with a new epoch.
    pub fn switchover(&mut self, daemon: &str, to: &str, now: f64) -> Result<Switchover, SwitchoverError> {
        use SwitchoverError::*;
        if daemon.is_empty() || to.is_empty() {
            return Err(BadRequest(
                "both \"daemon\" (the scheduler holding the part) and \"to\" are required".into(),
            ));
        }
        if daemon == to {
            return Err(BadRequest(format!("{daemon} already holds its part: nothing to move")));
        }
        let scheduler = |who: &str| -> Result<&DaemonState, SwitchoverError> {
            let d = self
                .daemon(who)
                .ok_or_else(|| NotFound(format!("no scheduler or satellite named '{who}'")))?;
            if d.def.role != Role::Scheduler {
                return Err(BadRequest(format!(
                    "{who} is a {}: a switchover moves a scheduler's part (satellites follow the parts)",
                    d.def.role.name()
                )));
            }
            Ok(d)
        };
        scheduler(daemon)?;
        let target = scheduler(to)?;
        let (t_realm, t_alive, t_reachable) = (target.def.realm.clone(), target.alive, target.reachable);
        let Some(pi) = self
            .parts
            .iter()
            .position(|p| p.scheduler.as_deref() == Some(daemon) && p.pending.is_none())
        else {
            if let Some(p) = self.parts.iter().find(|p| p.pending.as_ref().is_some_and(|(s, _)| s == daemon)) {
                return Err(Conflict(format!("a dispatch of part {} to {daemon} is in flight; try again", p.id)));
            }
            return Err(Conflict(format!("{daemon} holds no part")));
        };
        let (id, realm) = (self.parts[pi].id, self.parts[pi].realm.clone());
        if t_realm != realm {
            return Err(Conflict(format!("{to} is in realm {t_realm}, part {id} belongs to realm {realm}")));
        }
        if !t_alive || !t_reachable {
            let state = if t_alive { "not reachable (its last probe failed)" } else { "dead" };
            return Err(Conflict(format!("{to} is {state}")));
        }
        if let Some(p) = self
            .parts
            .iter()
            .find(|p| p.scheduler.as_deref() == Some(to) || p.pending.as_ref().is_some_and(|(s, _)| s == to))
        {
            return Err(Conflict(format!("{to} already holds part {}", p.id)));
        }
        self.info(format!("Switchover of part {id} from {daemon} to {to} requested"));
        let epoch = self.next_epoch(now);
        let p = &mut self.parts[pi];
        p.pending = Some((to.to_string(), epoch));
        p.preferred = Some(to.to_string());
        self.info(format!("[{realm}] Trying to send conf {id} to scheduler {to}"));
        Ok(Switchover {
            part: id,
            realm,
            from: daemon.to_string(),
            to: to.to_string(),
            epoch,
        })
    }

    /// Every scheduler and satellite as `GET /v1/status` shows it.
    pub fn status(&self) -> Vec<DaemonStatus> {
        self.daemons
            .iter()
            .map(|d| DaemonStatus {
                name: d.def.name.clone(),
                role: d.def.role.name().to_string(),
                spare: d.def.spare,
                alive: d.alive,
                address: d.def.address.clone(),
                port: d.def.port,
                realm: d.def.realm.clone(),
                parts: d.managed.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shinken_config::Config;
    use std::path::PathBuf;

    fn course4() -> Config {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/course4-etc");
        shinken_config::load(&path).unwrap()
    }

    fn from_text(text: &str) -> Config {
        let mut diag = shinken_config::diag::Diagnostics::new();
        let tree = shinken_config::loader::RawTree::from_text(PathBuf::from("/t/shinken.cfg"), text, &mut diag);
        shinken_config::load::from_tree(tree, diag)
    }

    fn dispatcher(cfg: &Config) -> Dispatcher {
        let parts = crate::arbiter::cut_config(cfg).unwrap();
        Dispatcher::new("arbiter-master", &cfg.topology, &parts)
    }

    /// The daemons as the tests simulate them: what each holds, and which are down.
    #[derive(Default)]
    struct World {
        holds: BTreeMap<String, Managed>,
        down: BTreeSet<String>,
    }

    /// One arbiter pass against the simulated world: probes, plan, calls, results.
    fn step(d: &mut Dispatcher, w: &mut World, now: f64) -> Vec<Action> {
        for name in d.probe_due(now) {
            let outcome = if w.down.contains(&name) {
                Err("Connection error to http://x/v1/ping: connection refused".to_string())
            } else {
                Ok(w.holds.get(&name).cloned().unwrap_or_default())
            };
            d.record_probe(&name, outcome, now);
        }
        let actions = d.plan(now);
        for a in &actions {
            let target = match a {
                Action::SendSchedulerConf { scheduler, .. } => scheduler,
                Action::SendSatelliteConf { satellite, .. } => satellite,
                Action::WaitNewConf { daemon } => daemon,
            };
            if w.down.contains(target) {
                d.dispatch_result(a, Err("connection refused".into()));
                continue;
            }
            match a {
                Action::SendSchedulerConf { part, scheduler, epoch } => {
                    w.holds.insert(scheduler.clone(), Managed::from([(*part, *epoch)]));
                }
                Action::SendSatelliteConf { satellite, conf } => {
                    w.holds
                        .insert(satellite.clone(), conf.schedulers.iter().map(|l| (l.part_id, l.epoch)).collect());
                }
                Action::WaitNewConf { daemon } => {
                    w.holds.remove(daemon);
                }
            }
            d.dispatch_result(a, Ok(()));
        }
        actions
    }

    fn log_text(d: &mut Dispatcher) -> String {
        d.take_log().into_iter().map(|l| l.text).collect::<Vec<_>>().join("\n")
    }

    fn holder(d: &Dispatcher, part: u32) -> Option<(String, u64)> {
        let p = d.parts().iter().find(|p| p.id == part)?;
        Some((p.scheduler.clone()?, p.epoch))
    }

    fn sat_confs(actions: &[Action]) -> BTreeMap<String, SatelliteConf> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SendSatelliteConf { satellite, conf } => Some((satellite.clone(), conf.clone())),
                _ => None,
            })
            .collect()
    }

    fn sched_sends(actions: &[Action]) -> Vec<(u32, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SendSchedulerConf { part, scheduler, .. } => Some((*part, scheduler.clone())),
                _ => None,
            })
            .collect()
    }

    const T0: f64 = 1_700_000_000.0;

    #[test]
    fn course4_initial_dispatch_masters_first() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        let first = step(&mut d, &mut w, T0);
        assert_eq!(sched_sends(&first), vec![(0, "scheduler-master".to_string())]);
        let (s, epoch) = holder(&d, 0).unwrap();
        assert_eq!(s, "scheduler-master");
        assert!(epoch >= (T0 * 1000.0) as u64, "epoch {epoch} counts milliseconds");
        let log = log_text(&mut d);
        assert!(log.contains("Begin to dispatch configurations to satellites"), "{log}");
        assert!(log.contains("[All] Schedulers order: scheduler-master,scheduler-spare"), "{log}");
        assert!(log.contains("[All] Dispatch OK of conf in scheduler scheduler-master"), "{log}");
        assert!(log.contains("OK, all schedulers configurations are dispatched :)"), "{log}");
        // No satellite in the pass that sends a part: its link is known once the scheduler said OK.
        assert!(sat_confs(&first).is_empty());

        let second = step(&mut d, &mut w, T0 + 1.0);
        let confs = sat_confs(&second);
        let names: Vec<&str> = confs.keys().map(String::as_str).collect();
        assert_eq!(names, ["broker-master", "poller-master", "reactionner-master", "receiver-master"]);
        let link = &confs["poller-master"].schedulers[0];
        assert_eq!((link.part_id, link.epoch, link.name.as_str()), (0, epoch, "scheduler-master"));
        assert_eq!(link.url, "http://127.0.0.2:7768");
        assert_eq!((link.timeout, link.data_timeout), (3, 120));
        assert!(confs["poller-master"].epoch > epoch);
        assert!(log_text(&mut d).contains("[All] Dispatch OK of configuration 0 to poller poller-master"));
        // Stable: nothing more to send.
        assert!(step(&mut d, &mut w, T0 + 2.0).is_empty());
        assert!(step(&mut d, &mut w, T0 + 61.0).is_empty());
        let status = d.status();
        let master = status.iter().find(|s| s.name == "scheduler-master").unwrap();
        assert_eq!(master.parts, Managed::from([(0, epoch)]));
        assert!(master.alive && !master.spare && master.role == "scheduler");
    }

    #[test]
    fn a_dead_scheduler_after_max_check_attempts_hands_its_part_to_the_spare() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        step(&mut d, &mut w, T0 + 1.0);
        let (_, first_epoch) = holder(&d, 0).unwrap();
        d.take_log();

        w.down.insert("scheduler-master".into());
        // check_interval 60, max_check_attempts 3: attempts 1 and 2 keep the part where it is.
        for (t, n) in [(60.0, 1), (120.0, 2)] {
            let actions = step(&mut d, &mut w, T0 + t);
            assert!(actions.is_empty(), "{actions:?}");
            let log = log_text(&mut d);
            assert!(log.contains(&format!("Add failed attempt to scheduler-master ({n}/3)")), "{log}");
            assert!(!log.contains("not happy"), "{log}");
            assert_eq!(holder(&d, 0).unwrap().0, "scheduler-master");
            assert!(d.daemon("scheduler-master").unwrap().alive);
        }
        for t in [121.0, 150.0] {
            assert!(step(&mut d, &mut w, T0 + t).is_empty(), "no probe due, nothing moves");
        }
        let actions = step(&mut d, &mut w, T0 + 180.0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-spare".to_string())]);
        let log = log_text(&mut d);
        assert!(log.contains("Add failed attempt to scheduler-master (3/3)"), "{log}");
        assert!(log.contains("Setting the satellite scheduler-master to a dead state."), "{log}");
        assert!(
            log.contains("Scheduler scheduler-master had the configuration 0 but is dead, I am not happy."),
            "{log}"
        );
        assert!(log.contains("[All] Dispatch OK of conf in scheduler scheduler-spare"), "{log}");
        let (s, epoch) = holder(&d, 0).unwrap();
        assert_eq!(s, "scheduler-spare");
        assert!(epoch > first_epoch);

        // The satellites follow at the next pass.
        let confs = sat_confs(&step(&mut d, &mut w, T0 + 181.0));
        assert_eq!(confs.len(), 4);
        for c in confs.values() {
            assert_eq!(c.schedulers.len(), 1);
            assert_eq!((c.schedulers[0].name.as_str(), c.schedulers[0].epoch), ("scheduler-spare", epoch));
            assert_eq!(c.schedulers[0].url, "http://127.0.0.3:7768");
        }

        // The master comes back still running its old part: told to idle, the spare keeps it.
        w.down.clear();
        let actions = step(&mut d, &mut w, T0 + 240.0);
        assert_eq!(
            actions,
            vec![Action::WaitNewConf {
                daemon: "scheduler-master".into()
            }]
        );
        let log = log_text(&mut d);
        assert!(log.contains("scheduler-master is alive again"), "{log}");
        assert!(
            log.contains("The element scheduler-master have a conf and should not have one! I ask it to idle now"),
            "{log}"
        );
        assert_eq!(holder(&d, 0).unwrap(), ("scheduler-spare".to_string(), epoch));
        // Then it stays idle: no fail-back.
        for t in [241.0, 300.0, 360.0] {
            assert!(step(&mut d, &mut w, T0 + t).is_empty());
        }
        assert_eq!(holder(&d, 0).unwrap(), ("scheduler-spare".to_string(), epoch));
        assert!(d.daemon("scheduler-master").unwrap().managed.is_empty());
    }

    #[test]
    fn an_unreachable_scheduler_keeps_its_part_and_a_forgetful_one_gets_it_again() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        step(&mut d, &mut w, T0 + 1.0);
        let (_, e1) = holder(&d, 0).unwrap();
        // One failed probe (Shinken #1615 would fail over here): nothing moves.
        w.down.insert("scheduler-master".into());
        assert!(step(&mut d, &mut w, T0 + 60.0).is_empty());
        assert_eq!(holder(&d, 0).unwrap(), ("scheduler-master".to_string(), e1));
        // It restarted meanwhile and answers with nothing: it gets its part again, new epoch.
        w.down.clear();
        w.holds.remove("scheduler-master");
        d.take_log();
        let actions = step(&mut d, &mut w, T0 + 120.0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-master".to_string())]);
        assert!(log_text(&mut d).contains("Scheduler scheduler-master did not managed its configuration 0, I am not happy."));
        let (s, e2) = holder(&d, 0).unwrap();
        assert_eq!(s, "scheduler-master");
        assert!(e2 > e1);
        assert_eq!(
            sat_confs(&step(&mut d, &mut w, T0 + 121.0)).len(),
            4,
            "satellites get the new epoch"
        );
    }

    #[test]
    fn mark_dead_moves_the_part_at_once() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        step(&mut d, &mut w, T0 + 1.0);
        assert!(d.mark_dead("nobody", "pod deleted").is_err());
        d.mark_dead("scheduler-master", "pod scheduler-master-0 deleted").unwrap();
        w.down.insert("scheduler-master".into());
        let actions = step(&mut d, &mut w, T0 + 2.0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-spare".to_string())]);
        let log = log_text(&mut d);
        assert!(
            log.contains("scheduler-master is declared down: pod scheduler-master-0 deleted"),
            "{log}"
        );
        assert!(log.contains("Setting the satellite scheduler-master to a dead state."), "{log}");
    }

    #[test]
    fn a_dead_poller_is_replaced_by_its_spare_without_fail_back() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        step(&mut d, &mut w, T0 + 1.0);
        assert!(!w.holds.contains_key("poller-master-spare"));
        w.down.insert("poller-master".into());
        // Its first failed probe: not dead yet, but not answering: as in Shinken (alive AND
        // reachable satellites serve), the spare steps in at once.
        let confs = sat_confs(&step(&mut d, &mut w, T0 + 60.0));
        assert_eq!(confs.keys().collect::<Vec<_>>(), ["poller-master-spare"]);
        for t in [120.0, 180.0] {
            assert!(
                sat_confs(&step(&mut d, &mut w, T0 + t)).is_empty(),
                "nothing more to send while it dies"
            );
        }
        // The master poller comes back empty (declared dead meanwhile): not needed, the spare
        // keeps serving (no fail-back).
        w.down.clear();
        w.holds.remove("poller-master");
        assert!(step(&mut d, &mut w, T0 + 240.0).is_empty());
        assert!(w.holds.contains_key("poller-master-spare"));
        // The spare stops answering: the master serves again at once.
        w.down.insert("poller-master-spare".into());
        let confs = sat_confs(&step(&mut d, &mut w, T0 + 300.0));
        assert_eq!(confs.keys().collect::<Vec<_>>(), ["poller-master"]);
    }

    const TWO_REALMS: &str = "
define realm {
    realm_name  All
    default     1
}
define realm {
    realm_name  Europe
}
define command {
    command_name  check_dummy
    command_line  /usr/lib/nagios/plugins/check_dummy 0
}
define timeperiod {
    timeperiod_name  24x7
    monday  00:00-24:00
}
define scheduler {
    scheduler_name  s-all
    address  127.0.0.1
    port  7001
    realm  All
}
define scheduler {
    scheduler_name  s-all-spare
    address  127.0.0.1
    port  7002
    spare  1
    realm  All
}
define scheduler {
    scheduler_name  s-eu
    address  127.0.0.1
    port  7003
    realm  Europe
}
define scheduler {
    scheduler_name  s-eu-spare
    address  127.0.0.1
    port  7004
    spare  1
    realm  Europe
}
define poller {
    poller_name  p-all
    address  127.0.0.1
    port  7005
    realm  All
}
define poller {
    poller_name  p-eu
    address  127.0.0.1
    port  7006
    realm  Europe
}
define host {
    host_name  h1
    address  127.0.0.1
    check_command  check_dummy
    max_check_attempts  1
    check_period  24x7
    realm  All
}
define host {
    host_name  h2
    address  127.0.0.1
    check_command  check_dummy
    max_check_attempts  1
    check_period  24x7
    realm  Europe
}
";

    #[test]
    fn realms_are_isolated() {
        let cfg = from_text(TWO_REALMS);
        let mut d = dispatcher(&cfg);
        assert_eq!(d.parts().len(), 2);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        let confs = sat_confs(&step(&mut d, &mut w, T0 + 1.0));
        let p_all: Vec<&str> = confs["p-all"].schedulers.iter().map(|l| l.name.as_str()).collect();
        let p_eu: Vec<&str> = confs["p-eu"].schedulers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!((p_all, p_eu), (vec!["s-all"], vec!["s-eu"]));

        // Europe loses both schedulers: its part waits; the idle spare of All is not used.
        w.down.extend(["s-eu".to_string(), "s-eu-spare".to_string()]);
        let mut t = T0 + 60.0;
        for _ in 0..3 {
            for a in step(&mut d, &mut w, t) {
                assert!(!matches!(a, Action::SendSchedulerConf { .. }), "{a:?}");
            }
            t += 60.0;
        }
        let eu = d.parts().iter().find(|p| p.realm == "Europe").unwrap();
        assert!(eu.scheduler.is_none());
        assert!(d.daemon("s-all-spare").unwrap().managed.is_empty());
        let log = log_text(&mut d);
        assert_eq!(
            log.matches("there a no alive schedulers in this realm").count(),
            1,
            "logged once: {log}"
        );
        assert!(log.contains("[Europe]"), "{log}");
        // The Europe poller drops its dead link; the All poller is untouched.
        assert!(w.holds.get("p-eu").is_none_or(|m| m.is_empty()), "{:?}", w.holds);
        assert_eq!(w.holds["p-all"].len(), 1);
    }

    const TWO_PARTS: &str = "
define command {
    command_name  check_dummy
    command_line  /usr/lib/nagios/plugins/check_dummy 0
}
define scheduler {
    scheduler_name  s1
    address  127.0.0.1
    port  7001
}
define scheduler {
    scheduler_name  s2
    address  127.0.0.1
    port  7002
}
define poller {
    poller_name  p
    address  127.0.0.1
    port  7005
}
define host {
    host_name  h1
    check_command  check_dummy
}
define host {
    host_name  h2
    check_command  check_dummy
}
";

    #[test]
    fn two_parts_over_two_schedulers_one_part_each() {
        let cfg = from_text(TWO_PARTS);
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        let actions = step(&mut d, &mut w, T0);
        assert_eq!(sched_sends(&actions), vec![(0, "s1".to_string()), (1, "s2".to_string())]);
        let epochs: Vec<u64> = d.parts().iter().map(|p| p.epoch).collect();
        assert!(epochs[1] > epochs[0], "every dispatch a new epoch: {epochs:?}");
        let confs = sat_confs(&step(&mut d, &mut w, T0 + 1.0));
        let links: Vec<(u32, &str)> = confs["p"].schedulers.iter().map(|l| (l.part_id, l.name.as_str())).collect();
        assert_eq!(links, [(0, "s1"), (1, "s2")]);

        // s1 dies with no spare: s2 does not take a second part.
        w.down.insert("s1".into());
        let mut t = T0 + 60.0;
        for _ in 0..4 {
            assert!(sched_sends(&step(&mut d, &mut w, t)).is_empty());
            t += 60.0;
        }
        assert!(holder(&d, 0).is_none());
        assert_eq!(holder(&d, 1).unwrap().0, "s2");
        assert_eq!(
            w.holds["p"].keys().copied().collect::<Vec<_>>(),
            [1],
            "the poller keeps s2's link only"
        );
    }

    #[test]
    fn a_reload_redispatches_every_part_to_its_holder_with_new_epochs() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        step(&mut d, &mut w, T0 + 1.0);
        d.mark_dead("scheduler-master", "test").unwrap();
        w.down.insert("scheduler-master".into());
        step(&mut d, &mut w, T0 + 2.0);
        let (_, e1) = holder(&d, 0).unwrap();
        w.down.clear();
        w.holds.remove("scheduler-master");
        step(&mut d, &mut w, T0 + 62.0); // the master is alive again, idle

        let parts = crate::arbiter::cut_config(&cfg).unwrap();
        d.reload(&cfg.topology, &parts);
        // Time went backwards: the epoch still grows.
        let actions = step(&mut d, &mut w, T0 - 1000.0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-spare".to_string())]);
        let (_, e2) = holder(&d, 0).unwrap();
        assert!(e2 > e1);
        assert!(d.daemon("scheduler-master").unwrap().alive);
        assert_eq!(sat_confs(&step(&mut d, &mut w, T0 - 999.0)).len(), 4);
    }

    #[test]
    fn a_failed_put_conf_tries_the_next_candidate_at_the_next_pass() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        for name in d.probe_due(T0) {
            d.record_probe(&name, Ok(Managed::new()), T0);
        }
        let actions = d.plan(T0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-master".to_string())]);
        d.dispatch_result(&actions[0], Err("HTTP error 400: the part has 1 errors".into()));
        assert!(holder(&d, 0).is_none());
        assert!(log_text(&mut d).contains("[All] configuration dispatching error for scheduler scheduler-master"));
        let actions = step(&mut d, &mut w, T0 + 1.0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-spare".to_string())]);
        // A late result of an older dispatch is ignored.
        let stale = Action::SendSchedulerConf {
            part: 0,
            scheduler: "scheduler-master".into(),
            epoch: 1,
        };
        d.dispatch_result(&stale, Ok(()));
        assert_eq!(holder(&d, 0).unwrap().0, "scheduler-spare");
    }

    #[test]
    fn probes_follow_check_interval_and_epochs_follow_what_daemons_report() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let all = d.probe_due(T0);
        assert_eq!(all.len(), d.daemons().len(), "everybody at once the first time");
        assert!(d.probe_due(T0 + 59.0).is_empty());
        assert_eq!(d.probe_due(T0 + 60.0).len(), all.len());
        let huge = 9_000_000_000_000u64;
        d.record_probe("scheduler-spare", Ok(Managed::from([(0, huge)])), T0 + 60.0);
        assert_eq!(d.last_epoch(), huge);
        assert!(d.next_epoch(T0) > huge);
    }

    /// A cluster as another arbiter left it: part 0 on `holder` with `epoch`, the satellites
    /// linked to it.
    fn running_world(d: &Dispatcher, holder: &str, epoch: u64) -> World {
        let mut w = World::default();
        w.holds.insert(holder.to_string(), Managed::from([(0, epoch)]));
        for s in d.daemons() {
            if is_satellite(s.def.role) && !s.def.spare {
                w.holds.insert(s.def.name.clone(), Managed::from([(0, epoch)]));
            }
        }
        w
    }

    #[test]
    fn an_arbiter_taking_over_a_running_cluster_dispatches_nothing() {
        let cfg = course4();
        // The master arbiter had moved part 0 to the spare scheduler; the master scheduler is
        // back, idle. A new arbiter (a spare taking the lead, or the master restarting) adopts.
        let mut d = Dispatcher::new("arbiter-spare", &cfg.topology, &crate::arbiter::cut_config(&cfg).unwrap());
        let e0 = (T0 * 1000.0) as u64 - 5000;
        let mut w = running_world(&d, "scheduler-spare", e0);
        for t in [0.0, 1.0, 2.0, 61.0] {
            let actions = step(&mut d, &mut w, T0 + t);
            assert!(actions.is_empty(), "at +{t}: {actions:?}");
        }
        assert_eq!(
            holder(&d, 0).unwrap(),
            ("scheduler-spare".to_string(), e0),
            "same holder, same epoch"
        );
        let log = log_text(&mut d);
        assert!(
            log.contains("[All] Configuration 0 runs on scheduler scheduler-spare (epoch"),
            "{log}"
        );
        assert!(!log.contains("Begin to dispatch"), "{log}");
        // New epochs start above the adopted one.
        assert!(d.next_epoch(T0 - 10_000.0) > e0);
    }

    #[test]
    fn adoption_keeps_the_highest_epoch_and_idles_the_stale_holder() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = running_world(&d, "scheduler-spare", 200);
        // A stale holder (it missed its wait_new_conf): lower epoch.
        w.holds.insert("scheduler-master".into(), Managed::from([(0, 100)]));
        let actions = step(&mut d, &mut w, T0);
        assert_eq!(
            actions,
            vec![Action::WaitNewConf {
                daemon: "scheduler-master".into()
            }]
        );
        assert_eq!(holder(&d, 0).unwrap(), ("scheduler-spare".to_string(), 200));
        assert!(step(&mut d, &mut w, T0 + 1.0).is_empty());
    }

    #[test]
    fn a_part_held_by_an_unreachable_scheduler_is_dispatched_at_takeover() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = running_world(&d, "scheduler-master", 100);
        w.down.insert("scheduler-master".into());
        // Its holder does not answer: the part goes to an alive scheduler, with a new epoch.
        let actions = step(&mut d, &mut w, T0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-spare".to_string())]);
        let (_, e) = holder(&d, 0).unwrap();
        assert!(e > 100);
        // The old holder answers again with its stale part: told to idle, no fail-back (the
        // satellites follow the new holder in the same pass).
        w.down.clear();
        let actions = step(&mut d, &mut w, T0 + 60.0);
        assert!(sched_sends(&actions).is_empty(), "{actions:?}");
        assert!(actions.contains(&Action::WaitNewConf {
            daemon: "scheduler-master".into()
        }));
        assert_eq!(holder(&d, 0).unwrap(), ("scheduler-spare".to_string(), e));
    }

    #[test]
    fn two_leading_arbiters_converge_on_the_highest_epoch() {
        let cfg = course4();
        let mut a = dispatcher(&cfg);
        let mut b = Dispatcher::new("arbiter-spare", &cfg.topology, &crate::arbiter::cut_config(&cfg).unwrap());
        let mut w = World::default();
        step(&mut a, &mut w, T0);
        step(&mut a, &mut w, T0 + 1.0);
        step(&mut b, &mut w, T0 + 1.5);
        let (_, e1) = holder(&a, 0).unwrap();
        assert_eq!(holder(&b, 0).unwrap(), ("scheduler-master".to_string(), e1));
        // A moves the part (the operator said scheduler-master is gone, for A only).
        a.mark_dead("scheduler-master", "pod deleted").unwrap();
        w.down.insert("scheduler-master".into());
        step(&mut a, &mut w, T0 + 2.0);
        w.down.clear();
        let (_, e2) = holder(&a, 0).unwrap();
        assert!(e2 > e1);
        // B sees the move at its next probes: it adopts it, sends no part and idles the old
        // holder if it still runs the part; then neither arbiter sends anything.
        w.holds.insert("scheduler-master".into(), Managed::from([(0, e1)]));
        let actions = step(&mut b, &mut w, T0 + 61.5);
        assert!(sched_sends(&actions).is_empty(), "{actions:?}");
        assert!(actions.contains(&Action::WaitNewConf {
            daemon: "scheduler-master".into()
        }));
        assert_eq!(holder(&b, 0).unwrap(), ("scheduler-spare".to_string(), e2));
        assert!(log_text(&mut b).contains("was moved from scheduler scheduler-master to scheduler scheduler-spare"));
        step(&mut a, &mut w, T0 + 62.0);
        for t in [63.0, 122.0] {
            assert!(sched_sends(&step(&mut a, &mut w, T0 + t)).is_empty());
            assert!(sched_sends(&step(&mut b, &mut w, T0 + t)).is_empty());
        }
        assert_eq!(holder(&a, 0), holder(&b, 0));
    }

    #[test]
    fn a_reload_does_not_adopt_the_old_epochs() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = running_world(&d, "scheduler-master", 100);
        assert!(sched_sends(&step(&mut d, &mut w, T0)).is_empty());
        d.reload(&cfg.topology, &crate::arbiter::cut_config(&cfg).unwrap());
        let actions = step(&mut d, &mut w, T0 + 1.0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-master".to_string())]);
    }

    #[test]
    fn switchover_moves_a_part_on_purpose() {
        let cfg = from_text(TWO_REALMS);
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        step(&mut d, &mut w, T0 + 1.0);
        let (_, e1) = holder(&d, 0).unwrap();
        use SwitchoverError::*;
        let err = |d: &mut Dispatcher, a: &str, b: &str| d.switchover(a, b, T0 + 2.0).unwrap_err();
        assert!(matches!(err(&mut d, "", "s-all-spare"), BadRequest(_)));
        assert!(matches!(err(&mut d, "s-all", "s-all"), BadRequest(_)));
        assert!(matches!(err(&mut d, "nobody", "s-all-spare"), NotFound(_)));
        assert!(matches!(err(&mut d, "s-all", "nobody"), NotFound(_)));
        let e = err(&mut d, "p-all", "s-all-spare");
        assert!(matches!(&e, BadRequest(m) if m.contains("p-all is a poller")), "{e}");
        assert!(matches!(err(&mut d, "s-all", "p-all"), BadRequest(_)));
        let e = err(&mut d, "s-all-spare", "s-all");
        assert!(matches!(&e, Conflict(m) if m == "s-all-spare holds no part"), "{e}");
        let e = err(&mut d, "s-all", "s-eu-spare");
        assert!(matches!(&e, Conflict(m) if m.contains("realm Europe")), "{e}");
        let e = err(&mut d, "s-all", "s-eu");
        assert!(matches!(&e, Conflict(_)), "{e}");
        // A dead target is refused.
        d.mark_dead("s-all-spare", "test").unwrap();
        let e = err(&mut d, "s-all", "s-all-spare");
        assert!(matches!(&e, Conflict(m) if m.contains("dead")), "{e}");
        w.down.clear();
        step(&mut d, &mut w, T0 + 61.0); // probed again: alive
        d.take_log();

        let sw = d.switchover("s-all", "s-all-spare", T0 + 62.0).unwrap();
        assert_eq!((sw.part, sw.from.as_str(), sw.to.as_str()), (0, "s-all", "s-all-spare"));
        assert!(sw.epoch > e1);
        assert!(log_text(&mut d).contains("Switchover of part 0 from s-all to s-all-spare requested"));
        // In flight: a second request is refused, the pass leaves it alone.
        assert!(matches!(err(&mut d, "s-all", "s-all-spare"), Conflict(_)));
        assert!(sched_sends(&d.plan(T0 + 62.1)).is_empty());
        let [stop, send] = sw.actions();
        assert_eq!(stop, Action::WaitNewConf { daemon: "s-all".into() });
        w.holds.remove("s-all");
        d.dispatch_result(&stop, Ok(()));
        w.holds.insert("s-all-spare".into(), Managed::from([(0, sw.epoch)]));
        d.dispatch_result(&send, Ok(()));
        assert_eq!(holder(&d, 0).unwrap(), ("s-all-spare".to_string(), sw.epoch));
        // The satellites of the realm follow; the old holder stays idle.
        let confs = sat_confs(&step(&mut d, &mut w, T0 + 63.0));
        assert_eq!(confs["p-all"].schedulers[0].name, "s-all-spare");
        assert!(!confs.contains_key("p-eu"));
        for t in [64.0, 121.0] {
            assert!(step(&mut d, &mut w, T0 + t).is_empty());
        }
        assert_eq!(holder(&d, 0).unwrap(), ("s-all-spare".to_string(), sw.epoch));
    }

    #[test]
    fn a_failed_switchover_send_leaves_the_part_with_its_holder() {
        let cfg = course4();
        let mut d = dispatcher(&cfg);
        let mut w = World::default();
        step(&mut d, &mut w, T0);
        let sw = d.switchover("scheduler-master", "scheduler-spare", T0 + 1.0).unwrap();
        let [stop, send] = sw.actions();
        w.holds.remove("scheduler-master");
        d.dispatch_result(&stop, Ok(()));
        d.dispatch_result(&send, Err("connection refused".into()));
        assert_eq!(holder(&d, 0).unwrap().0, "scheduler-master");
        // The next pass sees it does not run it: sent again, with a new epoch.
        let actions = step(&mut d, &mut w, T0 + 60.0);
        assert_eq!(sched_sends(&actions), vec![(0, "scheduler-master".to_string())]);
        assert!(holder(&d, 0).unwrap().1 > sw.epoch);
    }
}
