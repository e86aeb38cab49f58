//! The arbiter daemon: the [`Dispatcher`] behind a loop and an HTTP API, and the arbiters'
//! high availability.
//!
//! `shinken arbiter --config PATH --name NAME`: loads the configuration (refusing to start when
//! it has errors), finds its own `define arbiter`, cuts the hosts into parts, then about every
//! second probes the daemons that are due (`ping`, then `what_i_managed`, each bounded by the
//! daemon's `timeout`), asks the dispatcher for a plan, makes the calls concurrently
//! (`put_conf`, `wait_new_conf`) and feeds the outcomes back (semantics reference, 2.4 to 2.8).
//! An arbiter that starts or takes the lead adopts the assignments in force (the parts stay on
//! the schedulers that run them, with their epochs): nothing is dispatched again from scratch.
//!
//! High availability (semantics reference, 2.9):
//! - the master arbiter (`spare 0`), about every second and on its own task (a slow or dead
//!   spare never delays dispatching), calls every other arbiter: `have_conf?magic_hash=H`,
//!   `put_conf` of its whole configuration when the answer is false, then `do_not_run`, each
//!   bounded by that arbiter's `timeout` (`data_timeout` for `put_conf`);
//! - a spare arbiter waits ("Waiting for master death") for `check_interval x
//!   max_check_attempts` of the master's definition without `do_not_run`, then logs "Arbiter
//!   Master is dead. The arbiter NAME take the lead", marks the master dead and runs the same
//!   loop as a master, on the configuration the master sent it if any; when the master speaks
//!   again (`do_not_run` or `put_conf`) it stops dispatching and probing and waits again.
//! - a master with spare arbiters speaks to the daemons (probes, dispatch, switchover) only while
//!   a spare arbiter took one of its heartbeats, or the epoch store answered, within the spare's
//!   wait ([`Witness`]; it reads the store every loop on the heartbeat task). Cut from both by a
//!   partition it cannot tell whether a spare leads now, so it falls silent: its schedulers then
//!   stop acting on their parts after their fencing window (see `scheduler::fencing`); it speaks
//!   again once it reaches either.
//!
//! API (behind the cluster token, beside the common routes): `GET /v1/status` (`master`: whether
//! this arbiter leads now; every daemon, the other arbiters included, with its liveness as this
//! arbiter sees it and the parts it holds), `POST /v1/reload` (also on SIGHUP: a configuration
//! with errors is refused, 400, and the old one kept; else every part is dispatched anew with a
//! new epoch), `POST /v1/daemons/{name}/down` with `{"reason": "..."}` (a daemon is gone: it is
//! dead at once, its part goes to a spare; the operator's fast failure signal), `POST
//! /v1/switchover` with `{"daemon": "<scheduler holding a part>", "to": "<scheduler>"}` (the part
//! moves on purpose, with a new epoch; 400, 404 or 409 with the reason when it cannot), and the
//! arbiter-to-arbiter calls `GET /v1/have_conf?magic_hash=H`, `POST /v1/put_conf`,
//! `GET /v1/do_not_run`.

use super::dispatch::{Action, Dispatcher, Level, Log, SwitchoverError, url_of};
use super::epoch::{EpochStore, MemoryEpochStore, RetentionEpochStore};
use super::ha::{self, Change, MasterWatch, PeerState, Vouch, Witness};
use super::parts::Part;
use super::whole_cfg::{magic_hash, read_whole_cfg, whole_cfg};
use super::wire::{ArbiterConf, DoNotRunQuery, HaveConfQuery, SwitchoverReply, SwitchoverRequest};
use crate::daemon::{self, Args, Common, now};
use crate::messages::{ArbiterStatus, DaemonStatus, Managed, PutConf, SchedulerConf};
use crate::protocol::server::{self, ApiError};
use crate::protocol::{Client, Token, default_token_path, load_token};
use shinken_config::Config;
use shinken_config::daemons::{Role, Topology};
use shinken_config::diag::Severity;
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use warp::Filter;

/// How often the main loop and the master's heartbeat run (Shinken: about every second).
const LOOP_PERIOD: Duration = Duration::from_secs(1);

/// Largest whole configuration an arbiter accepts from another (`put_conf`).
const ARBITER_CONF_LIMIT: u64 = 512 * 1024 * 1024;

/// A configuration ready to dispatch: what the dispatcher needs and the text of every part.
struct Prepared {
    topology: Topology,
    parts: Vec<Part>,
    /// Part id -> its cfg text, made once per load and shared by every dispatch of the part.
    texts: BTreeMap<u32, Arc<str>>,
    main_file: PathBuf,
    /// The whole configuration as cfg text: what the master sends to the other arbiters.
    whole: Arc<str>,
    /// Its identity, as `have_conf` compares it.
    magic_hash: String,
    /// How long a spare waits for the master of this configuration (seconds).
    master_wait: f64,
}

/// Loads the configuration at `path` and cuts it; the errors, one per line, when it cannot be
/// used. Blocking (reads files): run it off the runtime's workers.
fn prepare(path: &std::path::Path, own_name: &str) -> Result<Prepared, Vec<String>> {
    let cfg = shinken_config::load(path).map_err(|e| vec![format!("cannot read the configuration: {e}")])?;
    prepare_config(&cfg, own_name)
}

/// Checks and cuts a loaded configuration (from files, or sent by the master arbiter).
fn prepare_config(cfg: &Config, own_name: &str) -> Result<Prepared, Vec<String>> {
    if cfg.has_errors() {
        let mut errors: Vec<String> = cfg
            .diag
            .reports(Severity::Error, &cfg.sources)
            .iter()
            .map(ToString::to_string)
            .collect();
        errors.push("Configuration is incorrect, sorry, I bail out".to_string());
        return Err(errors);
    }
    if !cfg.topology.by_role(Role::Arbiter).any(|a| a.name == own_name) {
        return Err(vec![format!(
            "I cannot find my own Arbiter object '{own_name}' in {}",
            cfg.main_file.display()
        )]);
    }
    let warnings = cfg.diag.count(Severity::Warning);
    if warnings > 0 {
        warn!("The configuration has {warnings} warnings (shinken check-config lists them)");
    }
    info!("Cutting the hosts and services into parts");
    let parts = super::cut_config(cfg).map_err(|e| vec![e.to_string(), "Configuration is incorrect, sorry, I bail out".to_string()])?;
    let mut by_realm: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for p in &parts {
        let e = by_realm.entry(p.realm.as_str()).or_default();
        e.0 += p.hosts.len();
        e.1 += 1;
    }
    for (realm, (hosts, n)) in &by_realm {
        info!("Number of hosts in the realm {realm}: {hosts} (distributed in {n} parts)");
    }
    info!("Total number of hosts : {}", parts.iter().map(|p| p.hosts.len()).sum::<usize>());
    let texts = parts
        .iter()
        .map(|p| (p.id as u32, Arc::from(super::part_cfg::part_cfg(cfg, p))))
        .collect();
    let whole = whole_cfg(cfg);
    info!("Things look okay - No serious problems were detected during the pre-flight check");
    Ok(Prepared {
        topology: cfg.topology.clone(),
        parts,
        texts,
        main_file: cfg.main_file.clone(),
        magic_hash: magic_hash(&whole),
        whole: Arc::from(whole),
        master_wait: ha::master_wait(&cfg.topology),
    })
}

fn client_of(d: &shinken_config::daemons::DaemonDef, token: &Token) -> Option<Client> {
    let timeout = Duration::from_secs(u64::from(d.timeout.max(1)));
    let data_timeout = Duration::from_secs(u64::from(d.data_timeout.max(1)));
    match Client::new(&url_of(d), token.clone(), timeout, data_timeout) {
        Ok(c) => Some(c),
        Err(e) => {
            error!("Cannot talk to {} {}: {e}", d.role.name(), d.name);
            None
        }
    }
}

/// One client per scheduler and satellite, with its definition's timeouts.
fn clients(topology: &Topology, token: &Token) -> HashMap<String, Client> {
    topology
        .daemons
        .iter()
        .filter(|d| d.role != Role::Arbiter)
        .filter_map(|d| client_of(d, token).map(|c| (d.name.clone(), c)))
        .collect()
}

/// Another arbiter: what this one knows of it, and how to call it.
struct Peer {
    state: PeerState,
    client: Option<Client>,
}

/// The other arbiters of `topology`, keeping what was known of those already there.
fn peers(topology: &Topology, own: &str, token: &Token, before: &[Peer]) -> Vec<Peer> {
    topology
        .by_role(Role::Arbiter)
        .filter(|a| a.name != own)
        .map(|a| {
            let mut state = PeerState::new(a.clone());
            if let Some(old) = before.iter().find(|p| p.state.def.name == a.name) {
                state.alive = old.state.alive;
                state.attempt = old.state.attempt.min(a.max_check_attempts.max(1));
                state.busy = old.state.busy;
            }
            Peer {
                state,
                client: client_of(a, token),
            }
        })
        .collect()
}

/// What the loops and the handlers share, under one lock (never held across a call).
struct State {
    dispatcher: Dispatcher,
    prepared: Prepared,
    clients: HashMap<String, Client>,
    /// The other arbiters.
    peers: Vec<Peer>,
    /// A spare's wait for the master's death (none for the master, which always leads).
    watch: Option<MasterWatch>,
    /// The highest epoch the master arbiter told this spare (`do_not_run`, `put_conf`): its
    /// epochs start above it when it takes the lead.
    heard_epoch: u64,
    /// A master's proof that no spare arbiter leads in its place (none for a spare, or a master
    /// without spare arbiters): without it, it does not speak to the daemons.
    witness: Option<Witness>,
    /// A read of the epoch store for the witness is in flight.
    store_check_busy: bool,
}

/// The witness a master arbiter with spare arbiters among `peers` needs (see [`Witness`]),
/// keeping what it had; none for a spare, or a master alone.
fn witness_for(spare: bool, peers: &[Peer], wait: f64, now: f64, before: Option<Witness>) -> Option<Witness> {
    if spare || !peers.iter().any(|p| p.state.def.spare) {
        return None;
    }
    let mut w = before.unwrap_or_else(|| Witness::new(wait, now));
    w.set_wait(wait);
    Some(w)
}

/// The arbiter: its identity and its shared state.
pub struct Arbiter {
    name: String,
    /// `spare 1` in its definition: it waits for the master's death before it leads.
    spare: bool,
    /// Where the configuration is read again on reload.
    config_path: PathBuf,
    token: Token,
    running_id: String,
    state: Mutex<State>,
    /// One configuration change at a time (HTTP reload, SIGHUP, `put_conf` from the master).
    reloading: tokio::sync::Mutex<()>,
    /// The epoch counter that outlives this process (see [`super::epoch`]).
    epochs: Arc<dyn EpochStore>,
    /// The monotonic clock of the spare's wait.
    started: Instant,
}

impl Common for Arbiter {
    fn managed(&self) -> Managed {
        Managed::new()
    }

    fn wait_new_conf(&self) {}

    fn running_id(&self) -> &str {
        &self.running_id
    }
}

fn emit(lines: Vec<Log>) {
    for l in lines {
        match l.level {
            Level::Info => info!("{}", l.text),
            Level::Warn => warn!("{}", l.text),
            Level::Error => error!("{}", l.text),
        }
    }
}

/// One call of a plan, with what it needs to run outside the lock.
enum Call {
    PutConf(Client, PutConf),
    WaitNewConf(Client),
}

async fn probe(client: Client) -> Result<Managed, String> {
    let pong: String = client.get("ping", &[], false).await.map_err(|e| e.to_string())?;
    if pong != "pong" {
        return Err(format!("unexpected answer to ping from {}: {pong:?}", client.base()));
    }
    client.get("what_i_managed", &[], false).await.map_err(|e| e.to_string())
}

async fn call(c: Call) -> Result<(), String> {
    match c {
        Call::PutConf(client, conf) => client.post::<_, serde_json::Value>("put_conf", &conf, true).await.map(drop),
        Call::WaitNewConf(client) => client.get::<serde_json::Value>("wait_new_conf", &[], false).await.map(drop),
    }
    .map_err(|e| e.to_string())
}

/// What the master says to another arbiter every loop.
struct Heartbeat {
    client: Client,
    from: String,
    magic_hash: String,
    whole: Arc<str>,
    epoch: u64,
}

/// `have_conf`, `put_conf` when needed, `do_not_run`. `Ok(true)` when the configuration was sent.
async fn heartbeat(h: Heartbeat) -> Result<bool, String> {
    let have: bool = h
        .client
        .get("have_conf", &[("magic_hash", h.magic_hash.clone())], false)
        .await
        .map_err(|e| e.to_string())?;
    if !have {
        let conf = ArbiterConf {
            from: h.from.clone(),
            magic_hash: h.magic_hash.clone(),
            epoch: h.epoch,
            cfg: h.whole.to_string(),
        };
        h.client
            .post::<_, serde_json::Value>("put_conf", &conf, true)
            .await
            .map_err(|e| e.to_string())?;
    }
    h.client
        .get::<serde_json::Value>("do_not_run", &[("from", h.from.clone()), ("epoch", h.epoch.to_string())], false)
        .await
        .map_err(|e| e.to_string())?;
    Ok(!have)
}

impl Arbiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds on the monotonic clock of the spare's wait.
    fn mono(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Whether this arbiter dispatches now: the master always, a spare once it took the lead.
    pub fn leading(&self) -> bool {
        self.lock().watch.as_ref().is_none_or(MasterWatch::leading)
    }

    pub fn status(&self) -> ArbiterStatus {
        let s = self.lock();
        let mut daemons = s.dispatcher.status();
        daemons.extend(s.peers.iter().map(|p| DaemonStatus {
            name: p.state.def.name.clone(),
            role: Role::Arbiter.name().to_string(),
            spare: p.state.def.spare,
            alive: p.state.alive,
            address: p.state.def.address.clone(),
            port: p.state.def.port,
            realm: p.state.def.realm.clone(),
            parts: Managed::new(),
        }));
        ArbiterStatus {
            name: self.name.clone(),
            master: s.watch.as_ref().is_none_or(MasterWatch::leading),
            epoch: s.dispatcher.last_epoch(),
            daemons,
        }
    }

    /// Raises the shared epoch counter to `epoch` before anything carrying it is sent.
    ///
    /// The store is a second line of fencing, not a gate: epochs already grow without it
    /// (`max(last + 1, now in ms)`, following what the daemons report), and an arbiter that
    /// stopped dispatching whenever the store is down (MongoDB restarting) would block the very
    /// takeover fencing exists for. So a failure is logged (once per outage) and dispatch goes on.
    async fn reserve_epoch(&self, epoch: u64) -> Result<(), String> {
        static FAILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let store = self.epochs.clone();
        let result = tokio::task::spawn_blocking(move || store.bump(epoch))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match result {
            Ok(_) => {
                if FAILING.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    info!("The epoch store is back; epoch counter at least {epoch}");
                }
            }
            Err(e) => {
                if !FAILING.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    warn!("Cannot raise the stored epoch counter ({e}); dispatching with epochs from the clock until it is back");
                }
            }
        }
        Ok(())
    }

    /// The highest epoch of the shared counter (0 when it cannot be read: epochs still grow
    /// with the clock and follow what the daemons report).
    async fn stored_epoch(&self) -> u64 {
        let store = self.epochs.clone();
        match tokio::task::spawn_blocking(move || store.current())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
        {
            Ok(e) => e,
            Err(e) => {
                error!("Cannot read the epoch store: {e}");
                0
            }
        }
    }

    /// The call that carries out `a`; `None` (and the failure recorded) when it cannot be made.
    fn call_for(&self, s: &mut State, a: &Action) -> Option<Call> {
        let c = match a {
            Action::SendSchedulerConf { part, scheduler, epoch } => {
                let realm = s
                    .dispatcher
                    .parts()
                    .iter()
                    .find(|p| p.id == *part)
                    .map(|p| p.realm.clone())
                    .unwrap_or_default();
                let (Some(client), Some(text)) = (s.clients.get(scheduler), s.prepared.texts.get(part)) else {
                    s.dispatcher.dispatch_result(a, Err("no client for this daemon".into()));
                    return None;
                };
                let conf = SchedulerConf {
                    scheduler_name: scheduler.clone(),
                    part_id: *part,
                    epoch: *epoch,
                    realm,
                    cfg: text.to_string(),
                    arbiter: self.name.clone(),
                };
                Call::PutConf(client.clone(), PutConf::Scheduler(conf))
            }
            Action::SendSatelliteConf { satellite, conf } => {
                let Some(client) = s.clients.get(satellite) else {
                    s.dispatcher.dispatch_result(a, Err("no client for this daemon".into()));
                    return None;
                };
                Call::PutConf(client.clone(), PutConf::Satellite(conf.clone()))
            }
            Action::WaitNewConf { daemon } => {
                let Some(client) = s.clients.get(daemon) else {
                    s.dispatcher.dispatch_result(a, Err("no client for this daemon".into()));
                    return None;
                };
                Call::WaitNewConf(client.clone())
            }
        };
        Some(c)
    }

    /// One pass: probe who is due, plan, make the calls, record their outcomes.
    /// One pass of the loop. Returns whether a scheduler accepted a part: its satellites are
    /// then told at once, in an immediate next pass, rather than a loop period later (a
    /// takeover's recovery time counts every second).
    async fn pass(&self) -> bool {
        let started = now();
        let due: Vec<(String, Client)> = {
            let mut s = self.lock();
            let names = s.dispatcher.probe_due(started);
            names
                .into_iter()
                .filter_map(|n| s.clients.get(&n).cloned().map(|c| (n, c)))
                .collect()
        };
        let mut probes = JoinSet::new();
        for (name, client) in due {
            probes.spawn(async move { (name, probe(client).await) });
        }
        let answers = probes.join_all().await;

        let (calls, epoch): (Vec<(Action, Call)>, u64) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let t = now();
            for (name, outcome) in answers {
                s.dispatcher.record_probe(&name, outcome, t);
            }
            let actions = s.dispatcher.plan(t);
            let mut calls = Vec::new();
            for a in actions {
                if let Some(c) = self.call_for(s, &a) {
                    calls.push((a, c));
                }
            }
            emit(s.dispatcher.take_log());
            (calls, s.dispatcher.last_epoch())
        };
        if calls.is_empty() {
            return false;
        }
        let outcomes = match self.reserve_epoch(epoch).await {
            Ok(()) => {
                let mut running = JoinSet::new();
                for (a, c) in calls {
                    running.spawn(async move { (a, call(c).await) });
                }
                running.join_all().await
            }
            Err(e) => calls.into_iter().map(|(a, _)| (a, Err(e.clone()))).collect(),
        };
        let part_placed = outcomes
            .iter()
            .any(|(a, o)| matches!(a, Action::SendSchedulerConf { .. }) && o.is_ok());
        let mut s = self.lock();
        for (a, outcome) in outcomes {
            s.dispatcher.dispatch_result(&a, outcome);
        }
        emit(s.dispatcher.take_log());
        part_placed
    }

    /// A spare, every loop: takes the lead once the master was silent too long.
    async fn watch_master(&self) {
        let (silence, wait) = {
            let mut s = self.lock();
            let t = self.mono();
            let Some(w) = s.watch.as_mut() else { return };
            let silence = w.silence(t);
            if w.tick(t) != Some(Change::TookLead) {
                return;
            }
            (silence, w.wait())
        };
        let stored = self.stored_epoch().await;
        let mut guard = self.lock();
        let s = &mut *guard;
        info!("Arbiter Master is dead. The arbiter {} take the lead", self.name);
        match s.watch.as_mut().and_then(MasterWatch::take_declared_reason) {
            Some(reason) => info!("The master arbiter was declared down: {reason}"),
            None => info!("The master arbiter was silent for {silence:.1} seconds (the wait is {wait} seconds)"),
        }
        for p in s.peers.iter_mut().filter(|p| !p.state.def.spare) {
            if std::mem::replace(&mut p.state.alive, false) {
                warn!("Setting the arbiter {} to a dead state.", p.state.def.name);
            }
        }
        // A new dispatcher: it adopts what runs where at its first probes.
        let mut d = Dispatcher::new(&self.name, &s.prepared.topology, &s.prepared.parts);
        d.follow_epoch(stored.max(s.heard_epoch).max(s.dispatcher.last_epoch()));
        s.dispatcher = d;
    }

    /// Logs a spare's step-down.
    fn stepped_down(&self, why: &str, wait: f64) {
        info!("{why}: I stop dispatching and leave the lead to the master arbiter");
        info!("Waiting for master death");
        info!("I'll wait master for {wait} seconds");
    }

    /// `GET /v1/do_not_run` from the master: a spare restarts its wait (and stops leading).
    pub fn do_not_run(&self, q: &DoNotRunQuery) -> bool {
        let mut s = self.lock();
        let t = self.mono();
        if let Some(e) = q.epoch {
            s.heard_epoch = s.heard_epoch.max(e);
        }
        let from = q.from.clone().unwrap_or_else(|| "master".to_string());
        for p in s
            .peers
            .iter_mut()
            .filter(|p| q.from.as_deref().is_none_or(|f| f == p.state.def.name))
        {
            if !p.state.def.spare && !std::mem::replace(&mut p.state.alive, true) {
                info!("Arbiter {} is alive again", p.state.def.name);
            }
        }
        let Some(w) = s.watch.as_mut() else { return false };
        let wait = w.wait();
        if w.master_spoke(t) == Some(Change::SteppedDown) {
            drop(s);
            self.stepped_down(&format!("Arbiter Master {from} is back (do_not_run)"), wait);
        }
        true
    }

    /// `GET /v1/have_conf`: whether this arbiter holds the configuration `magic_hash` names.
    pub fn have_conf(&self, q: &HaveConfQuery) -> bool {
        q.magic_hash.as_deref() == Some(self.lock().prepared.magic_hash.as_str())
    }

    /// `POST /v1/put_conf` from the master: its whole configuration becomes this spare's (it is
    /// what the spare dispatches if the master dies); a leading spare steps down.
    pub async fn receive_conf(&self, conf: ArbiterConf) -> Result<usize, ApiError> {
        if !self.spare {
            return Err(ApiError::conflict(format!(
                "{} is a master arbiter: it runs its own configuration",
                self.name
            )));
        }
        let _one = self.reloading.lock().await;
        let name = self.name.clone();
        let (from, text) = (conf.from.clone(), conf.cfg);
        let origin = format!("<configuration of arbiter {from}>");
        let prepared = tokio::task::spawn_blocking(move || prepare_config(&read_whole_cfg(&text, &origin), &name))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|errors| {
                for e in &errors {
                    error!("{e}");
                }
                error!("The configuration of arbiter {from} is refused: I keep mine");
                ApiError::bad_request(errors.join("\n"))
            })?;
        if prepared.magic_hash != conf.magic_hash {
            warn!("The configuration of arbiter {from} reads back with another hash: it will be sent again");
        }
        if let Err(e) = self.reserve_epoch(conf.epoch).await {
            error!("{e}");
        }
        let clients = clients(&prepared.topology, &self.token);
        let n = prepared.parts.len();
        let mut guard = self.lock();
        let s = &mut *guard;
        s.heard_epoch = s.heard_epoch.max(conf.epoch);
        let mut d = Dispatcher::new(&self.name, &prepared.topology, &prepared.parts);
        d.follow_epoch(s.dispatcher.last_epoch().max(s.heard_epoch));
        s.dispatcher = d;
        s.peers = peers(&prepared.topology, &self.name, &self.token, &s.peers);
        s.clients = clients;
        let wait = prepared.master_wait;
        s.prepared = prepared;
        info!("Configuration received from arbiter {from} ({n} parts): I will dispatch it if the master dies");
        let t = self.mono();
        if let Some(w) = s.watch.as_mut() {
            w.set_wait(wait);
            if w.conf_received(t) == Some(Change::SteppedDown) {
                drop(guard);
                self.stepped_down(&format!("Arbiter Master {from} is back (put_conf)"), wait);
            }
        }
        Ok(n)
    }

    /// The master, every loop: a heartbeat to every other arbiter that has none in flight.
    fn heartbeats(self: &Arc<Self>, running: &mut JoinSet<()>) {
        let mut s = self.lock();
        let (hash, whole, epoch) = (s.prepared.magic_hash.clone(), s.prepared.whole.clone(), s.dispatcher.last_epoch());
        for p in s.peers.iter_mut() {
            let Some(client) = p.client.clone() else { continue };
            if p.state.busy {
                continue;
            }
            p.state.busy = true;
            let h = Heartbeat {
                client,
                from: self.name.clone(),
                magic_hash: hash.clone(),
                whole: whole.clone(),
                epoch,
            };
            let (me, peer, started) = (self.clone(), p.state.def.name.clone(), self.mono());
            running.spawn(async move {
                let outcome = heartbeat(h).await;
                let mut guard = me.lock();
                let s = &mut *guard;
                let Some(p) = s.peers.iter_mut().find(|p| p.state.def.name == peer) else {
                    return;
                };
                if let (true, Some(w)) = (outcome.is_ok() && p.state.def.spare, s.witness.as_mut()) {
                    w.seen(started);
                }
                if let Ok(true) = outcome {
                    info!("Configuration sent to arbiter {peer}");
                }
                if let Some(line) = p.state.heartbeat(outcome.map(drop)) {
                    warn!("{line}");
                }
            });
        }
    }

    /// The master, every loop: reads the epoch store unless a read is in flight; an answer is a
    /// witness that no spare leads unseen (see [`Witness`]).
    fn check_store(self: &Arc<Self>, running: &mut JoinSet<()>) {
        {
            let mut s = self.lock();
            if s.witness.is_none() || s.store_check_busy {
                return;
            }
            s.store_check_busy = true;
        }
        let (me, store, started) = (self.clone(), self.epochs.clone(), self.mono());
        running.spawn(async move {
            let answered = tokio::task::spawn_blocking(move || store.current()).await.is_ok_and(|r| r.is_ok());
            let mut s = me.lock();
            s.store_check_busy = false;
            if let (true, Some(w)) = (answered, s.witness.as_mut()) {
                w.seen(started);
            }
        });
    }

    /// Whether this arbiter may speak to the daemons now: not a master that reached neither a
    /// spare arbiter nor the epoch store for longer than the spare's wait (see [`Witness`]).
    fn vouching(&self) -> bool {
        let mut s = self.lock();
        let t = self.mono();
        let Some(w) = s.witness.as_mut() else { return true };
        match w.tick(t) {
            Some(Vouch::Stopped { silence }) => warn!(
                "I reached neither a spare arbiter nor the epoch store for {silence:.1} s (a spare takes the lead after {} s \
                 without me): one may lead now. I stop speaking to the daemons until I reach one; my schedulers stop acting \
                 on their parts after their fencing window",
                w.wait()
            ),
            Some(Vouch::Resumed) => info!("I reach a spare arbiter or the epoch store again: I speak to the daemons again"),
            None => {}
        }
        !w.stopped()
    }

    /// `POST /v1/switchover`: the old holder stops, then the target gets the part.
    pub async fn switchover(&self, req: &SwitchoverRequest) -> Result<SwitchoverReply, ApiError> {
        if !self.leading() {
            return Err(ApiError::conflict(format!(
                "{} does not lead (it is a spare waiting for the master's death): ask the master arbiter",
                self.name
            )));
        }
        if !self.vouching() {
            return Err(ApiError::conflict(format!(
                "{} reaches neither a spare arbiter nor the epoch store: a spare may lead now",
                self.name
            )));
        }
        let (sw, calls) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let sw = s.dispatcher.switchover(&req.daemon, &req.to, now());
            emit(s.dispatcher.take_log());
            let sw = sw.map_err(|e| match e {
                SwitchoverError::BadRequest(m) => ApiError::bad_request(m),
                SwitchoverError::NotFound(m) => ApiError::not_found(m),
                SwitchoverError::Conflict(m) => ApiError::conflict(m),
            })?;
            let calls: Vec<(Action, Option<Call>)> = sw
                .actions()
                .into_iter()
                .map(|a| {
                    let c = self.call_for(s, &a);
                    (a, c)
                })
                .collect();
            (sw, calls)
        };
        let reserved = self.reserve_epoch(sw.epoch).await;
        let mut sent = Err("no client for this daemon".to_string());
        for (a, c) in calls {
            let Some(c) = c else { continue };
            let outcome = match &reserved {
                Ok(()) => call(c).await,
                Err(e) => Err(e.clone()),
            };
            if let (Action::WaitNewConf { daemon }, Err(e)) = (&a, &outcome) {
                warn!("Switchover: {daemon} did not acknowledge wait_new_conf ({e}); its epoch is older, it will be told again");
            }
            if matches!(a, Action::SendSchedulerConf { .. }) {
                sent = outcome.clone();
            }
            let mut s = self.lock();
            s.dispatcher.dispatch_result(&a, outcome);
            emit(s.dispatcher.take_log());
        }
        match sent {
            Ok(()) => {
                info!(
                    "Switchover of part {} from {} to {} done (epoch {})",
                    sw.part, sw.from, sw.to, sw.epoch
                );
                Ok(SwitchoverReply {
                    part: sw.part,
                    realm: sw.realm,
                    from: sw.from,
                    to: sw.to,
                    epoch: sw.epoch,
                })
            }
            Err(e) => Err(ApiError::new(
                warp::http::StatusCode::BAD_GATEWAY,
                format!(
                    "the part {} could not be sent to {}: {e}; it is dispatched again to {} by the next pass",
                    sw.part, sw.to, sw.from
                ),
            )),
        }
    }

    /// Reads the configuration again. With errors: logged, returned, the old one kept. Else
    /// every part is dispatched anew with a new epoch (schedulers keep the states of the hosts
    /// that did not change).
    pub async fn reload(self: &Arc<Self>) -> Result<usize, Vec<String>> {
        let _one = self.reloading.lock().await;
        info!("Reloading the configuration from {}", self.config_path.display());
        let (path, name) = (self.config_path.clone(), self.name.clone());
        let prepared = tokio::task::spawn_blocking(move || prepare(&path, &name))
            .await
            .map_err(|e| vec![format!("the reload failed: {e}")])?;
        let prepared = match prepared {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors {
                    error!("{e}");
                }
                error!("Configuration reload refused: I keep running the previous configuration");
                return Err(errors);
            }
        };
        let clients = clients(&prepared.topology, &self.token);
        let n = prepared.parts.len();
        let mut guard = self.lock();
        let s = &mut *guard;
        s.dispatcher.reload(&prepared.topology, &prepared.parts);
        s.peers = peers(&prepared.topology, &self.name, &self.token, &s.peers);
        s.witness = witness_for(self.spare, &s.peers, prepared.master_wait, self.mono(), s.witness.take());
        s.clients = clients;
        if let Some(w) = s.watch.as_mut() {
            w.set_wait(prepared.master_wait);
        }
        s.prepared = prepared;
        info!("Configuration reloaded: {n} parts to dispatch anew");
        Ok(n)
    }

    /// An external signal that a daemon is gone.
    pub fn daemon_down(&self, name: &str, reason: &str) -> Result<(), ApiError> {
        let mut s = self.lock();
        // A spare told that its master arbiter is gone takes the lead now, not after its wait.
        let master_arbiter = s.peers.iter().any(|p| p.state.def.name == name && !p.state.def.spare);
        if master_arbiter && let Some(w) = s.watch.as_mut() {
            if !w.leading() {
                info!("The master arbiter {name} is declared down ({reason}): I take the lead now");
                w.master_declared_dead(reason);
            }
            return Ok(());
        }
        let r = s.dispatcher.mark_dead(name, reason).map_err(ApiError::not_found);
        emit(s.dispatcher.take_log());
        r
    }

    fn metrics(&self) -> String {
        let s = self.lock();
        let d = &s.dispatcher;
        let alive = d.daemons().iter().filter(|x| x.alive).count();
        let dead = d.daemons().len() - alive;
        let assigned = d.parts().iter().filter(|p| p.scheduler.is_some()).count();
        let unassigned = d.parts().len() - assigned;
        let leading = u8::from(s.watch.as_ref().is_none_or(MasterWatch::leading));
        format!(
            "# TYPE shinken_arbiter_daemons gauge\nshinken_arbiter_daemons{{state=\"alive\"}} {alive}\nshinken_arbiter_daemons{{state=\"dead\"}} {dead}\n\
             # TYPE shinken_arbiter_parts gauge\nshinken_arbiter_parts{{state=\"assigned\"}} {assigned}\nshinken_arbiter_parts{{state=\"unassigned\"}} {unassigned}\n\
             # TYPE shinken_arbiter_epoch gauge\nshinken_arbiter_epoch {}\n\
             # TYPE shinken_arbiter_leading gauge\nshinken_arbiter_leading {leading}\n",
            d.last_epoch()
        )
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct DownRequest {
    #[serde(default)]
    reason: String,
}

/// The arbiter's own endpoints (before the common ones: its `have_conf` compares a hash).
fn routes(a: Arc<Arbiter>) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let d = a.clone();
    let status = server::get("status").map(move || server::json(&d.status()));
    let d = a.clone();
    let reload = warp::path("reload").and(warp::path::end()).and(warp::post()).then(move || {
        let d = d.clone();
        async move {
            server::reply(
                d.reload()
                    .await
                    .map(|parts| serde_json::json!({ "reloaded": true, "parts": parts }))
                    .map_err(|errors| ApiError::bad_request(errors.join("\n"))),
            )
        }
    });
    let d = a.clone();
    let down = warp::path("daemons")
        .and(warp::path::param::<String>())
        .and(warp::path("down"))
        .and(warp::path::end())
        .and(warp::post())
        .and(server::json_body::<DownRequest>(server::DEFAULT_BODY_LIMIT))
        .map(move |name: String, req: DownRequest| {
            let reason = if req.reason.is_empty() {
                "no reason given".to_string()
            } else {
                req.reason
            };
            server::reply(d.daemon_down(&name, &reason).map(|()| true))
        });
    let d = a.clone();
    let have_conf = server::get_query::<HaveConfQuery>("have_conf").map(move |q: HaveConfQuery| server::json(&d.have_conf(&q)));
    let d = a.clone();
    let do_not_run = server::get_query::<DoNotRunQuery>("do_not_run").map(move |q: DoNotRunQuery| server::json(&d.do_not_run(&q)));
    let d = a.clone();
    let put_conf = server::post_with_limit::<ArbiterConf>("put_conf", ARBITER_CONF_LIMIT).then(move |conf: ArbiterConf| {
        let d = d.clone();
        async move { server::reply(d.receive_conf(conf).await.map(|parts| serde_json::json!({ "parts": parts }))) }
    });
    let d = a.clone();
    let switchover = server::post::<SwitchoverRequest>("switchover").then(move |req: SwitchoverRequest| {
        let d = d.clone();
        async move { server::reply(d.switchover(&req).await) }
    });
    have_conf
        .or(do_not_run)
        .unify()
        .or(put_conf)
        .unify()
        .or(daemon::common_routes(a))
        .unify()
        .or(status)
        .unify()
        .or(reload)
        .unify()
        .or(down)
        .unify()
        .or(switchover)
        .unify()
}

/// `shinken arbiter ...`: serves until SIGTERM or SIGINT.
pub async fn run(args: &Args) -> Result<(), String> {
    let (path, name) = (args.config.clone(), args.name.clone());
    let prepared = match tokio::task::spawn_blocking(move || prepare(&path, &name))
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                error!("{e}");
            }
            return Err(errors.last().cloned().unwrap_or_default());
        }
    };
    let Some(def) = prepared.topology.by_role(Role::Arbiter).find(|d| d.name == args.name).cloned() else {
        return Err("I cannot find my own Arbiter object".to_string());
    };
    let token_path = args.token_file.clone().unwrap_or_else(|| default_token_path(&prepared.main_file));
    let token = load_token(&token_path).map_err(|e| format!("refusing to start without the cluster token: {e}"))?;
    let listen_text = args.listen.clone().unwrap_or_else(|| format!("{}:{}", def.address, def.port));
    let listen: SocketAddr = listen_text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve the listen address {listen_text}: {e}"))?
        .next()
        .ok_or_else(|| format!("the listen address {listen_text} resolves to nothing"))?;
    if def.spare {
        info!("I am a spare Arbiter: {}", def.name);
    } else {
        info!("I am the master Arbiter: {}", def.name);
    }
    info!("Configuration Loaded");

    // The epoch counter lives in the retention store both arbiters read from the configuration.
    let retention_module = crate::retention::arbiter_module(&prepared.topology);
    let epochs: Arc<dyn EpochStore> =
        match crate::retention::open(retention_module, &crate::retention::default_path(&prepared.main_file)).await {
            Ok(store) => {
                use crate::retention::RetentionStore;
                info!("Epoch counter kept in {}", store.describe());
                Arc::new(RetentionEpochStore::new(store, tokio::runtime::Handle::current()))
            }
            Err(e) => {
                warn!("Cannot open the retention store for the epoch counter ({e}); keeping it in memory");
                Arc::new(MemoryEpochStore::default())
            }
        };
    let started = Instant::now();
    let mut dispatcher = Dispatcher::new(&def.name, &prepared.topology, &prepared.parts);
    let reader = epochs.clone();
    let stored = tokio::task::spawn_blocking(move || reader.current())
        .await
        .map_err(|e| e.to_string())?;
    match stored {
        Ok(epoch) => dispatcher.follow_epoch(epoch),
        Err(e) => warn!("Cannot read the stored epoch counter: {e}"),
    }
    let other_arbiters = peers(&prepared.topology, &def.name, &token, &[]);
    let arbiter = Arc::new(Arbiter {
        name: def.name.clone(),
        spare: def.spare,
        config_path: args.config.clone(),
        token: token.clone(),
        running_id: daemon::running_id(),
        state: Mutex::new(State {
            dispatcher,
            clients: clients(&prepared.topology, &token),
            witness: witness_for(def.spare, &other_arbiters, prepared.master_wait, 0.0, None),
            store_check_busy: false,
            peers: other_arbiters,
            watch: def.spare.then(|| MasterWatch::new(prepared.master_wait, 0.0)),
            heard_epoch: 0,
            prepared,
        }),
        reloading: tokio::sync::Mutex::new(()),
        epochs,
        started,
    });

    let m = arbiter.clone();
    let filter = server::api(token, move || m.metrics(), routes(arbiter.clone()));
    let served = daemon::serve_until_stopped(listen, filter).await?;
    info!("Arbiter {} listening on {}", def.name, served.bound);

    let mut rx = served.stop_signal();
    let hup_arbiter = arbiter.clone();
    let hup_task = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() { break }
                    info!("SIGHUP received: reloading the configuration");
                    let _ = hup_arbiter.reload().await;
                }
                _ = rx.changed() => break,
            }
        }
    });

    // The master's heartbeat to the other arbiters, on its own ticker.
    let mut rx = served.stop_signal();
    let hb_arbiter = arbiter.clone();
    let heartbeat_task = tokio::spawn(async move {
        if hb_arbiter.spare {
            return;
        }
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            hb_arbiter.heartbeats(&mut running);
            hb_arbiter.check_store(&mut running);
            tokio::select! {
                _ = tokio::time::sleep(LOOP_PERIOD) => {}
                _ = rx.changed() => break,
            }
        }
    });

    let mut rx = served.stop_signal();
    let loop_arbiter = arbiter.clone();
    let loop_task = tokio::spawn(async move {
        if loop_arbiter.spare {
            let wait = loop_arbiter
                .lock()
                .watch
                .as_ref()
                .map(MasterWatch::wait)
                .unwrap_or(ha::DEFAULT_MASTER_WAIT);
            info!("Waiting for master death");
            info!("I'll wait master for {wait} seconds");
        }
        loop {
            loop_arbiter.watch_master().await;
            if loop_arbiter.leading() && loop_arbiter.vouching() {
                let again = tokio::select! {
                    placed = loop_arbiter.pass() => placed,
                    _ = rx.changed() => break,
                };
                if again {
                    continue;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOP_PERIOD) => {}
                _ = rx.changed() => break,
            }
        }
    });

    daemon::shutdown_signal().await;
    info!("Arbiter {} stopping", def.name);
    served.stop();
    let _ = loop_task.await;
    let _ = heartbeat_task.await;
    let _ = hup_task.await;
    served.finish().await;
    Ok(())
}
