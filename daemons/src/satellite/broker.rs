//! The broker: pulls broks from every scheduler link into a [`LiveView`] (semantics reference,
//! 1.4 and 3.10).
//!
//! One task per link: on (re)connection it asks the scheduler's running id and its full initial
//! state (`fill_initial_broks?bname=<me>`), then polls `get_broks?bname=<me>` about once a
//! second. A failed call re-initialises the connection (so a restarted scheduler's state is
//! asked again in full), logged once per change of state, with a back-off. A link removed from
//! the configuration takes its hosts and services out of the view.
//!
//! Beside the scheduler links, the broker asks the arbiters of its configuration
//! (`GET /v1/status`, every [`ARBITER_INTERVAL`], the leading one's answer kept) which daemons
//! are alive, which are spares and which hold work: the view's daemon health and takeovers.
//! What it exports:
//! - the web UI and the read-only JSON API, open ([`web`]);
//! - Prometheus metrics on `/metrics` ([`metrics`] and [`Broker::metrics`]);
//! - the monitoring log file ([`monitoring_log`]: where it is written and in which format).
//!
//! A spare broker gets its configuration from the arbiter when it takes over; it then asks
//! every scheduler for its full state (`fill_initial_broks`) as any broker does on connection,
//! so it rebuilds the whole view, and logs every item's `CURRENT ... STATE` to its log file.

pub mod metrics;
pub mod monitoring_log;
pub mod web;

use super::link::{self, ConnLog, sleep_or_stop};
use super::view::LiveView;
use crate::daemon::{Setup, now};
use crate::messages::{ArbiterStatus, Broks, RunningId, SatelliteConf, SchedulerLink};
use crate::protocol::{ApiError, Client, Token};
use monitoring_log::MonitoringLog;
use shinken_config::daemons::Role;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

/// How often a connected link asks for broks.
pub const BROKS_INTERVAL: Duration = Duration::from_secs(1);

/// How often the arbiters are asked for the daemons' health.
pub const ARBITER_INTERVAL: Duration = Duration::from_secs(2);

/// What the broker learns from the configuration it was started with: whether it is a spare,
/// the arbiters to ask for the daemons' health, and where its monitoring log goes.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub spare: bool,
    /// (name, `http://address:port`, spare, timeout in seconds) of every arbiter.
    pub arbiters: Vec<(String, String, bool, u32)>,
    pub log_path: Option<std::path::PathBuf>,
}

impl Site {
    /// From the daemon's own definition and the configuration it read.
    pub fn from_config(setup: &Setup, cfg: &shinken_config::Config) -> Site {
        let arbiters = cfg
            .topology
            .by_role(Role::Arbiter)
            .map(|d| (d.name.clone(), format!("http://{}:{}", d.address, d.port), d.spare, d.timeout))
            .collect();
        Site {
            spare: setup.def.spare,
            arbiters,
            log_path: Some(monitoring_log::path_for(&setup.def, &cfg.topology, &setup.main_file)),
        }
    }
}

/// One scheduler link.
struct Slot {
    link: SchedulerLink,
    client: Client,
    /// Identifies the task serving this slot (a replaced slot's old task stops).
    task_id: u64,
    task: JoinHandle<()>,
    /// Kept so that the task's stop receiver stays open while the slot lives.
    _stop: watch::Sender<bool>,
    connected: bool,
    /// The scheduler's running id, once known.
    running_id: Option<String>,
    last_error: Option<String>,
    /// Unix seconds of the last successful `get_broks`.
    last_poll: Option<f64>,
    broks: u64,
}

/// A broker: its links and its view.
pub struct Broker {
    me: String,
    token: Token,
    links: Mutex<BTreeMap<u32, Slot>>,
    view: Mutex<LiveView>,
    next_task_id: AtomicU64,
    broks: AtomicU64,
    call_failures: AtomicU64,
    site: Mutex<Site>,
    log: Mutex<Option<Arc<MonitoringLog>>>,
    arbiter_task: Mutex<Option<JoinHandle<()>>>,
    have_conf: std::sync::atomic::AtomicBool,
}

impl Broker {
    pub fn new(me: String, token: Token) -> Arc<Broker> {
        Arc::new(Broker {
            me,
            token,
            links: Mutex::new(BTreeMap::new()),
            view: Mutex::new(LiveView::new()),
            next_task_id: AtomicU64::new(1),
            broks: AtomicU64::new(0),
            call_failures: AtomicU64::new(0),
            site: Mutex::new(Site::default()),
            log: Mutex::new(None),
            arbiter_task: Mutex::new(None),
            have_conf: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Opens the monitoring log and starts asking the arbiters (must run inside the runtime).
    pub fn start_site(self: &Arc<Self>, site: Site) {
        if let Some(path) = &site.log_path {
            *lock(&self.log) = Some(Arc::new(MonitoringLog::open(path.clone())));
        }
        let clients: Vec<(String, bool, Client)> = site
            .arbiters
            .iter()
            .filter_map(|(name, url, spare, timeout)| {
                let t = Duration::from_secs((*timeout).clamp(1, 3) as u64);
                match Client::new(url, self.token.clone(), t, t) {
                    Ok(c) => Some((name.clone(), *spare, c)),
                    Err(e) => {
                        error!("[{}] Cannot ask arbiter {name}: {e}", self.me);
                        None
                    }
                }
            })
            .collect();
        *lock(&self.site) = site;
        if !clients.is_empty() {
            let task = tokio::spawn(self.clone().arbiter_loop(clients));
            if let Some(old) = lock(&self.arbiter_task).replace(task) {
                old.abort();
            }
        }
    }

    /// Asks every arbiter for its status; keeps the leading one's answer (else any).
    async fn arbiter_loop(self: Arc<Self>, arbiters: Vec<(String, bool, Client)>) {
        let spares: BTreeMap<String, bool> = arbiters.iter().map(|(n, s, _)| (n.clone(), *s)).collect();
        let mut reachable = true;
        loop {
            // Asked at once, each call bounded by its client's timeout; answers in order.
            let calls: Vec<JoinHandle<Result<ArbiterStatus, crate::protocol::CallError>>> = arbiters
                .iter()
                .map(|(_, _, c)| {
                    let c = c.clone();
                    tokio::spawn(async move { c.get::<ArbiterStatus>("status", &[], false).await })
                })
                .collect();
            let mut answers = Vec::new();
            for call in calls {
                if let Ok(Ok(a)) = call.await {
                    answers.push(a);
                }
            }
            let chosen = answers.iter().find(|a| a.master).or(answers.first());
            match chosen {
                Some(st) => {
                    if !reachable {
                        info!("[{}] Arbiter {} answers again", self.me, st.name);
                    }
                    reachable = true;
                    self.view().set_arbiter_status(st, &spares, now());
                }
                None => {
                    if reachable {
                        info!("[{}] No arbiter answers: daemon health is the last known", self.me);
                    }
                    reachable = false;
                    self.view().arbiter_unreachable();
                }
            }
            tokio::time::sleep(ARBITER_INTERVAL).await;
        }
    }

    fn links(&self) -> MutexGuard<'_, BTreeMap<u32, Slot>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn view(&self) -> MutexGuard<'_, LiveView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a new configuration (none: drop every link). Must run inside the runtime.
    pub fn apply(self: &Arc<Self>, conf: Option<&SatelliteConf>) {
        self.have_conf.store(conf.is_some(), Ordering::Relaxed);
        let wanted: BTreeMap<u32, &SchedulerLink> = conf.iter().flat_map(|c| c.schedulers.iter()).map(|l| (l.part_id, l)).collect();
        let mut links = self.links();
        let parts: Vec<u32> = links.keys().copied().collect();
        for part in parts {
            if wanted
                .get(&part)
                .is_some_and(|l| l.url == links[&part].link.url && l.name == links[&part].link.name)
            {
                continue;
            }
            if let Some(slot) = links.remove(&part) {
                slot.task.abort();
                self.view().forget_scheduler(&slot.link.name);
                info!("[{}] Scheduler {} (part {part}) is no longer mine", self.me, slot.link.name);
            }
        }
        for (part, link) in wanted {
            if let Some(slot) = links.get_mut(&part) {
                if !link::same_client(&slot.link, link)
                    && let Ok(c) = link::client(link, &self.token)
                {
                    slot.client = c;
                }
                slot.link = link.clone();
                continue;
            }
            let client = match link::client(link, &self.token) {
                Ok(c) => c,
                Err(e) => {
                    error!("[{}] Cannot reach scheduler {}: {e}", self.me, link.name);
                    continue;
                }
            };
            let task_id = self.next_task_id.fetch_add(1, Ordering::Relaxed);
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(self.clone().link_loop(part, task_id, stop_rx));
            links.insert(
                part,
                Slot {
                    link: link.clone(),
                    client,
                    task_id,
                    task,
                    _stop: stop,
                    connected: false,
                    running_id: None,
                    last_error: None,
                    last_poll: None,
                    broks: 0,
                },
            );
        }
    }

    pub fn stop(&self) {
        for (_, slot) in std::mem::take(&mut *self.links()) {
            slot.task.abort();
        }
        if let Some(t) = lock(&self.arbiter_task).take() {
            t.abort();
        }
    }

    /// The link, its client, whether connected and the running id known; none once replaced.
    fn round(&self, part: u32, task_id: u64) -> Option<(SchedulerLink, Client, bool, Option<String>)> {
        let links = self.links();
        let s = links.get(&part).filter(|s| s.task_id == task_id)?;
        Some((s.link.clone(), s.client.clone(), s.connected, s.running_id.clone()))
    }

    fn update(&self, part: u32, task_id: u64, f: impl FnOnce(&mut Slot)) {
        if let Some(s) = self.links().get_mut(&part).filter(|s| s.task_id == task_id) {
            f(s);
        }
    }

    async fn link_loop(self: Arc<Self>, part: u32, task_id: u64, mut stop: watch::Receiver<bool>) {
        let mut conn = ConnLog::new(&self.me);
        let bname = [("bname", self.me.clone())];
        loop {
            let Some((link, client, connected, known)) = self.round(part, task_id) else {
                return;
            };
            if !connected {
                conn.connecting(&link);
                let step = async {
                    let r: RunningId = client.get("get_running_id", &[], false).await?;
                    if let Some(old) = known.as_ref().filter(|old| **old != r.running_id) {
                        info!(
                            "[{}] The running id of the scheduler {} changed ({old} -> {}): asking its full state",
                            self.me, link.name, r.running_id
                        );
                    }
                    let _: bool = client.get("fill_initial_broks", &bname, true).await?;
                    Ok::<String, crate::protocol::CallError>(r.running_id)
                };
                match step.await {
                    Ok(rid) => {
                        self.update(part, task_id, |s| {
                            s.connected = true;
                            s.running_id = Some(rid);
                            s.last_error = None;
                        });
                        conn.connected(&link);
                    }
                    Err(e) => {
                        self.failed(part, task_id, &e);
                        let wait = conn.failed(&format!("Connection error with scheduler {}: {e}", link.name));
                        if sleep_or_stop(wait, &mut stop).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            match client.get::<Broks>("get_broks", &bname, true).await {
                Ok(b) => {
                    let n = b.broks.len() as u64;
                    let mut lines = Vec::new();
                    {
                        let t = now();
                        let mut view = self.view();
                        for brok in &b.broks {
                            lines.extend(view.apply(&link.name, brok, t));
                        }
                    }
                    let log = lock(&self.log).clone();
                    if let Some(log) = log {
                        // A few lines appended to a file: short enough to write here, in order.
                        log.append(&lines);
                    }
                    self.broks.fetch_add(n, Ordering::Relaxed);
                    self.update(part, task_id, |s| {
                        s.broks += n;
                        s.last_poll = Some(now());
                    });
                    conn.succeeded(&link);
                }
                Err(e) => {
                    self.failed(part, task_id, &e);
                    let wait = conn.failed(&format!("Cannot get broks from scheduler {}: {e}", link.name));
                    if sleep_or_stop(wait, &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
            if sleep_or_stop(BROKS_INTERVAL, &mut stop).await {
                return;
            }
        }
    }

    /// Any failure re-initialises the link (running id, then the full state again).
    fn failed(&self, part: u32, task_id: u64, e: &crate::protocol::CallError) {
        self.call_failures.fetch_add(1, Ordering::Relaxed);
        self.update(part, task_id, |s| {
            s.connected = false;
            s.last_error = Some(e.to_string());
        });
    }

    /// The monitoring log lines kept, oldest first.
    pub fn logs(&self) -> Vec<String> {
        self.view().logs()
    }

    /// `GET /v1/status`: a scheduler-like status of every host and service seen, plus the links.
    pub fn status(&self, epoch: u64) -> serde_json::Value {
        let schedulers: Vec<serde_json::Value> = self
            .links()
            .values()
            .map(|s| {
                serde_json::json!({
                    "name": s.link.name,
                    "part_id": s.link.part_id,
                    "epoch": s.link.epoch,
                    "url": s.link.url,
                    "connected": s.connected,
                    "running_id": s.running_id,
                    "last_error": s.last_error,
                    "last_poll": s.last_poll,
                    "broks": s.broks,
                })
            })
            .collect();
        let mut v = serde_json::to_value(self.view().status(&self.me, epoch)).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("schedulers".into(), schedulers.into());
        }
        v
    }

    /// What the broker says about itself in the JSON API.
    fn me(&self) -> web::Me {
        let schedulers = self
            .links()
            .values()
            .map(|s| {
                serde_json::json!({
                    "name": s.link.name, "part_id": s.link.part_id, "url": s.link.url,
                    "connected": s.connected, "last_poll": s.last_poll, "broks": s.broks,
                })
            })
            .collect();
        web::Me {
            name: self.me.clone(),
            spare: lock(&self.site).spare,
            have_conf: self.have_conf.load(Ordering::Relaxed),
            schedulers,
        }
    }

    /// `GET /api/v1/<path>` (see [`web`]).
    pub fn api(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        let me = self.me();
        web::answer(&self.view(), &me, path)
    }

    /// The monitoring log file, if any.
    pub fn log_path(&self) -> Option<std::path::PathBuf> {
        lock(&self.log).as_ref().map(|l| l.path().to_path_buf())
    }

    pub fn metrics(&self) -> String {
        let connected = self.links().values().filter(|s| s.connected).count();
        let mut view_metrics = String::new();
        let (hosts, services) = {
            let v = self.view();
            metrics::render(&v, now(), &mut view_metrics);
            (v.host_count(), v.service_count())
        };
        let log_lines = lock(&self.log).as_ref().map(|l| l.lines()).unwrap_or(0);
        format!(
            "# TYPE shinken_broker_schedulers_connected gauge\nshinken_broker_schedulers_connected {connected}\n\
             # TYPE shinken_broker_hosts gauge\nshinken_broker_hosts {hosts}\n\
             # TYPE shinken_broker_services gauge\nshinken_broker_services {services}\n\
             # TYPE shinken_broker_broks_total counter\nshinken_broker_broks_total {}\n\
             # TYPE shinken_broker_call_failures_total counter\nshinken_broker_call_failures_total {}\n\
             # TYPE shinken_broker_monitoring_log_lines_total counter\nshinken_broker_monitoring_log_lines_total {log_lines}\n{view_metrics}",
            self.broks.load(Ordering::Relaxed),
            self.call_failures.load(Ordering::Relaxed)
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
