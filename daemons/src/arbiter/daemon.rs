//! The arbiter daemon: the [`Dispatcher`] behind a loop and an HTTP API.
//!
//! `shinken arbiter --config PATH --name NAME`: loads the configuration (refusing to start when
//! it has errors), finds its own `define arbiter`, cuts the hosts into parts, then about every
//! second probes the daemons that are due (`ping`, then `what_i_managed`, each bounded by the
//! daemon's `timeout`), asks the dispatcher for a plan, makes the calls concurrently
//! (`put_conf`, `wait_new_conf`) and feeds the outcomes back (semantics reference, 2.4 to 2.8).
//!
//! API (behind the cluster token, beside the common routes): `GET /v1/status` (every daemon, its
//! liveness and the parts it holds), `POST /v1/reload` (also on SIGHUP: a configuration with
//! errors is refused, 400, and the old one kept; else every part is dispatched anew with a new
//! epoch), `POST /v1/daemons/{name}/down` with `{"reason": "..."}` (a daemon is gone: it is dead
//! at once, its part goes to a spare; the operator's fast failure signal).
//!
//! A spare arbiter loads the same configuration, answers its API and waits; its takeover when
//! the master stops answering is not built yet.

use super::dispatch::{Action, Dispatcher, Level, Log, url_of};
use super::parts::Part;
use crate::daemon::{self, Args, Common, now};
use crate::messages::{ArbiterStatus, Managed, PutConf, SchedulerConf};
use crate::protocol::server::{self, ApiError};
use crate::protocol::{Client, Token, default_token_path, load_token};
use shinken_config::daemons::{Role, Topology};
use shinken_config::diag::Severity;
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use warp::Filter;

/// How often the main loop runs (Shinken: about every second).
const LOOP_PERIOD: Duration = Duration::from_secs(1);

/// A configuration ready to dispatch: what the dispatcher needs and the text of every part.
struct Prepared {
    topology: Topology,
    parts: Vec<Part>,
    /// Part id -> its cfg text, made once per load and shared by every dispatch of the part.
    texts: BTreeMap<u32, Arc<str>>,
    main_file: PathBuf,
}

/// Loads the configuration at `path` and cuts it; the errors, one per line, when it cannot be
/// used. Blocking (reads files): run it off the runtime's workers.
fn prepare(path: &std::path::Path, own_name: &str) -> Result<Prepared, Vec<String>> {
    let cfg = shinken_config::load(path).map_err(|e| vec![format!("cannot read the configuration: {e}")])?;
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
    let parts = super::cut_config(&cfg).map_err(|e| vec![e.to_string(), "Configuration is incorrect, sorry, I bail out".to_string()])?;
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
        .map(|p| (p.id as u32, Arc::from(super::part_cfg::part_cfg(&cfg, p))))
        .collect();
    info!("Things look okay - No serious problems were detected during the pre-flight check");
    Ok(Prepared {
        topology: cfg.topology.clone(),
        parts,
        texts,
        main_file: cfg.main_file.clone(),
    })
}

/// One client per scheduler and satellite, with its definition's timeouts.
fn clients(topology: &Topology, token: &Token) -> HashMap<String, Client> {
    topology
        .daemons
        .iter()
        .filter(|d| d.role != Role::Arbiter)
        .filter_map(|d| {
            let timeout = Duration::from_secs(u64::from(d.timeout.max(1)));
            let data_timeout = Duration::from_secs(u64::from(d.data_timeout.max(1)));
            match Client::new(&url_of(d), token.clone(), timeout, data_timeout) {
                Ok(c) => Some((d.name.clone(), c)),
                Err(e) => {
                    error!("Cannot talk to {} {}: {e}", d.role.name(), d.name);
                    None
                }
            }
        })
        .collect()
}

/// What the loop and the handlers share, under one lock (never held across a call).
struct State {
    dispatcher: Dispatcher,
    prepared: Prepared,
    clients: HashMap<String, Client>,
}

/// The arbiter: its identity and its shared state.
pub struct Arbiter {
    name: String,
    /// `spare 0`: it dispatches; a spare only waits for now.
    master: bool,
    /// Where the configuration is read again on reload.
    config_path: PathBuf,
    token: Token,
    running_id: String,
    state: Mutex<State>,
    /// One reload at a time (HTTP and SIGHUP may ask together).
    reloading: tokio::sync::Mutex<()>,
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

impl Arbiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> ArbiterStatus {
        let s = self.lock();
        ArbiterStatus {
            name: self.name.clone(),
            master: self.master,
            epoch: s.dispatcher.last_epoch(),
            daemons: s.dispatcher.status(),
        }
    }

    /// One pass: probe who is due, plan, make the calls, record their outcomes.
    async fn pass(&self) {
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

        let calls: Vec<(Action, Call)> = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let t = now();
            for (name, outcome) in answers {
                s.dispatcher.record_probe(&name, outcome, t);
            }
            let actions = s.dispatcher.plan(t);
            let mut calls = Vec::new();
            for a in actions {
                let c = match &a {
                    Action::SendSchedulerConf { part, scheduler, epoch } => {
                        let realm = s
                            .dispatcher
                            .parts()
                            .iter()
                            .find(|p| p.id == *part)
                            .map(|p| p.realm.clone())
                            .unwrap_or_default();
                        let (Some(client), Some(text)) = (s.clients.get(scheduler), s.prepared.texts.get(part)) else {
                            s.dispatcher.dispatch_result(&a, Err("no client for this daemon".into()));
                            continue;
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
                            s.dispatcher.dispatch_result(&a, Err("no client for this daemon".into()));
                            continue;
                        };
                        Call::PutConf(client.clone(), PutConf::Satellite(conf.clone()))
                    }
                    Action::WaitNewConf { daemon } => {
                        let Some(client) = s.clients.get(daemon) else {
                            s.dispatcher.dispatch_result(&a, Err("no client for this daemon".into()));
                            continue;
                        };
                        Call::WaitNewConf(client.clone())
                    }
                };
                calls.push((a, c));
            }
            emit(s.dispatcher.take_log());
            calls
        };
        if calls.is_empty() {
            return;
        }
        let mut running = JoinSet::new();
        for (a, c) in calls {
            running.spawn(async move { (a, call(c).await) });
        }
        let outcomes = running.join_all().await;
        let mut s = self.lock();
        for (a, outcome) in outcomes {
            s.dispatcher.dispatch_result(&a, outcome);
        }
        emit(s.dispatcher.take_log());
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
        let mut s = self.lock();
        s.dispatcher.reload(&prepared.topology, &prepared.parts);
        s.clients = clients;
        s.prepared = prepared;
        info!("Configuration reloaded: {n} parts to dispatch anew");
        Ok(n)
    }

    /// An external signal that a daemon is gone.
    pub fn daemon_down(&self, name: &str, reason: &str) -> Result<(), ApiError> {
        let mut s = self.lock();
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
        format!(
            "# TYPE shinken_arbiter_daemons gauge\nshinken_arbiter_daemons{{state=\"alive\"}} {alive}\nshinken_arbiter_daemons{{state=\"dead\"}} {dead}\n\
             # TYPE shinken_arbiter_parts gauge\nshinken_arbiter_parts{{state=\"assigned\"}} {assigned}\nshinken_arbiter_parts{{state=\"unassigned\"}} {unassigned}\n\
             # TYPE shinken_arbiter_epoch gauge\nshinken_arbiter_epoch {}\n",
            d.last_epoch()
        )
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct DownRequest {
    #[serde(default)]
    reason: String,
}

/// The arbiter's own endpoints.
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
    daemon::common_routes(a).or(status).unify().or(reload).unify().or(down).unify()
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
    let master = !def.spare;
    if master {
        info!("I am the master Arbiter: {}", def.name);
    } else {
        info!("I am a spare Arbiter: {}", def.name);
    }
    info!("Configuration Loaded");

    let arbiter = Arc::new(Arbiter {
        name: def.name.clone(),
        master,
        config_path: args.config.clone(),
        token: token.clone(),
        running_id: daemon::running_id(),
        state: Mutex::new(State {
            dispatcher: Dispatcher::new(&def.name, &prepared.topology, &prepared.parts),
            clients: clients(&prepared.topology, &token),
            prepared,
        }),
        reloading: tokio::sync::Mutex::new(()),
    });

    let m = arbiter.clone();
    let filter = server::api(token, move || m.metrics(), routes(arbiter.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = stop_rx.clone();
    let (bound, server_task) = server::serve(listen, filter, async move {
        let _ = rx.changed().await;
    })
    .await
    .map_err(|e| e.to_string())?;
    info!("Arbiter {} listening on {bound}", def.name);

    let mut rx = stop_rx.clone();
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

    let mut rx = stop_rx;
    let loop_arbiter = arbiter.clone();
    let loop_task = tokio::spawn(async move {
        if !loop_arbiter.master {
            info!("Waiting for master death");
            info!("The spare arbiter's takeover is not built yet: I only answer my API");
            let _ = rx.changed().await;
            return;
        }
        loop {
            tokio::select! {
                _ = loop_arbiter.pass() => {}
                _ = rx.changed() => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOP_PERIOD) => {}
                _ = rx.changed() => break,
            }
        }
    });

    daemon::shutdown_signal().await;
    info!("Arbiter {} stopping", def.name);
    let _ = stop_tx.send(true);
    let _ = loop_task.await;
    let _ = hup_task.await;
    let _ = server_task.await;
    Ok(())
}
