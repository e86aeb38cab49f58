//! The scheduler daemon: the [`Engine`] behind the HTTP API.
//!
//! Waits for a part (`put_conf` from the arbiter), then serves pollers and reactionners
//! (`get_checks` with `do_checks` / `do_actions`, `put_results`) and brokers (`get_broks`,
//! `fill_initial_broks`), and ticks once a second (downtimes, notifications scattered to
//! contacts, orphans, freshness). A new part replaces the old one and keeps the states of the hosts and
//! services found in both (a reload loses nothing that did not change). A part with an older
//! epoch than the one held is refused: it comes from a stale arbiter.
//!
//! Retention (semantics §4, [`crate::retention`]): before the first check of every part, the
//! states of its hosts and services are loaded from the store (bounded wait: a store that does
//! not answer delays nothing more than a few seconds); every state change is handed to the
//! write-behind as it happens, and everything is saved when a part is loaded, dropped or
//! replaced, and when the daemon stops. Writes carry the part's epoch: the store refuses them
//! once a newer epoch holds the records.
//!
//! External commands (`POST /v1/run_external_commands`, [`super::commands`]) are applied in
//! order, one outcome each.
//!
//! Fencing ([`super::fencing`]): the calls only an arbiter makes (`put_conf`, `what_i_managed`,
//! `have_conf`, `ping`, `wait_new_conf`; not `get_running_id`, which pollers and brokers call
//! too) reset a timer. Past the window (`check_interval x max_check_attempts + check_interval` of
//! this scheduler's definition) with a part held, or at once when the store refuses a write of
//! the part's epoch, the scheduler stops acting on the part: no checks handed out, results and
//! commands refused (409), no tick, nothing handed to retention. An arbiter's call lifts a
//! silence fence; only a new part lifts a stale-epoch one.

use super::engine::Engine;
use super::fencing::{Fencing, FencingStatus, StaleSignal, WatchedStore};
use crate::daemon::{self, Args, Common, Setup, now};
use crate::messages::{
    Broks, CommandOutcome, ExternalCommands, GetChecks, Jobs, Managed, PutConf, PutResults, SchedulerConf, SchedulerStatus,
};
use crate::protocol::server::{self, ApiError};
use crate::retention::{self, RetentionStore, Store, Writer, WriterStatus};
use shinken_config::daemons::Role;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};
use warp::Filter;

/// The longest a new part waits for its retained states before its first check.
const RETENTION_LOAD_WAIT: Duration = Duration::from_secs(5);
/// The longest a stopping daemon waits for its last states to be written.
const RETENTION_STOP_WAIT: Duration = Duration::from_secs(5);

/// The scheduler's state, shared by its handlers and its tick.
pub struct Scheduler {
    setup: Setup,
    /// The part held, or none while waiting for one.
    engine: Mutex<Option<Engine>>,
    /// Where retained states are loaded from (none: no retention, as in unit tests).
    store: Option<Arc<Store>>,
    /// The write-behind into `store`.
    writer: Option<Writer>,
    /// Whether it may act on its part. Lock order: `engine`, then `fencing`.
    fencing: Mutex<Fencing>,
    /// Writes the store refused as stale (raised by the writer's store).
    stale: Arc<StaleSignal>,
}

/// `GET /v1/status`: the part's hosts and services, and how retention is doing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReply {
    #[serde(flatten)]
    pub status: SchedulerStatus,
    pub retention: Option<WriterStatus>,
    /// Not acting on the part (see `fencing` for why).
    pub fenced: bool,
    pub fencing: FencingStatus,
}

impl Common for Scheduler {
    /// `what_i_managed` and `have_conf`: an arbiter speaking.
    fn managed(&self) -> Managed {
        self.heard();
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        engine.as_ref().map(|e| Managed::from([(e.part_id, e.epoch)])).unwrap_or_default()
    }

    fn wait_new_conf(&self) {
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        let mut fencing = self.fencing.lock().unwrap_or_else(|e| e.into_inner());
        let fenced = fencing.is_fenced();
        fencing.heard(now());
        fencing.part_dropped();
        drop(fencing);
        if let Some(mut e) = engine.take() {
            info!(
                "Dropping configuration part {} (epoch {}) as asked: waiting for a new one",
                e.part_id, e.epoch
            );
            // A full save of the part dropped (not by a fenced holder: its states are stale);
            // the writer writes it within its batch window.
            if let Some(w) = self.writer.as_ref().filter(|_| !fenced) {
                w.submit(e.all_records(now()));
            }
        }
    }

    fn running_id(&self) -> &str {
        &self.setup.running_id
    }
}

impl Scheduler {
    /// A scheduler without retention.
    pub fn new(setup: Setup) -> Scheduler {
        let fencing = Mutex::new(Fencing::new(window(&setup)));
        Scheduler {
            setup,
            engine: Mutex::new(None),
            store: None,
            writer: None,
            fencing,
            stale: Arc::default(),
        }
    }

    /// A scheduler keeping retention in `store` (starts the write-behind: call it inside the
    /// runtime).
    pub fn with_retention(setup: Setup, store: Arc<Store>) -> Scheduler {
        let stale: Arc<StaleSignal> = Arc::default();
        let watched = WatchedStore {
            inner: store.clone(),
            signal: stale.clone(),
        };
        let writer = Writer::spawn(Arc::new(watched));
        let fencing = Mutex::new(Fencing::new(window(&setup)));
        Scheduler {
            setup,
            engine: Mutex::new(None),
            store: Some(store),
            writer: Some(writer),
            fencing,
            stale,
        }
    }

    fn fencing(&self) -> std::sync::MutexGuard<'_, Fencing> {
        self.fencing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An arbiter called: resets the fencing timer, lifts a silence fence.
    pub fn heard(&self) {
        if let Some(line) = self.fencing().heard(now()) {
            info!("{line}");
        }
    }

    /// Whether it may act on `engine`'s part now (called with the engine locked): fences it
    /// when no arbiter spoke for too long or the store refused a write of its epoch.
    fn acting(&self, engine: &Engine) -> Result<(), String> {
        let t = now();
        let part = (engine.part_id, engine.epoch);
        let mut f = self.fencing();
        if let Some((epoch, key)) = self.stale.get()
            && epoch >= engine.epoch
            && let Some(line) = f.stale(t, part, &key)
        {
            warn!("{line}");
        }
        if let Some(line) = f.check(t, Some(part)) {
            warn!("{line}");
        }
        match f.reason() {
            Some(r) => Err(format!("fenced: {r}")),
            None => Ok(()),
        }
    }

    /// The fencing state (evaluated now).
    pub fn fencing_status(&self) -> FencingStatus {
        let guard = self.lock();
        if let Some(e) = guard.as_ref() {
            let _ = self.acting(e);
        }
        drop(guard);
        self.fencing().status()
    }

    /// `run_external_commands`: each command applied in order (409 without a part or fenced).
    pub fn run_external_commands(&self, req: &ExternalCommands) -> Result<Vec<CommandOutcome>, ApiError> {
        let mut guard = self.lock();
        let Some(engine) = guard.as_mut() else {
            return Err(ApiError::conflict("no configuration part: external commands refused"));
        };
        self.acting(engine).map_err(ApiError::conflict)?;
        let mut lines = Vec::new();
        let mut outcomes = Vec::with_capacity(req.commands.len());
        for c in &req.commands {
            match engine.run_external_line(c, now()) {
                Ok(ev) => {
                    lines.extend(ev.log);
                    outcomes.push(CommandOutcome {
                        command: c.clone(),
                        ok: true,
                        error: None,
                    });
                }
                Err(e) => outcomes.push(CommandOutcome {
                    command: c.clone(),
                    ok: false,
                    error: Some(e.to_string()),
                }),
            }
        }
        self.hand_over(engine);
        drop(guard);
        log(&lines);
        for o in outcomes.iter().filter(|o| !o.ok) {
            warn!(
                "External command refused: {} ({})",
                o.command,
                o.error.as_deref().unwrap_or_default()
            );
        }
        Ok(outcomes)
    }

    /// One tick of the part (orphans, freshness, downtimes), unless fenced.
    pub fn tick(&self) {
        let mut guard = self.lock();
        let Some(engine) = guard.as_mut() else { return };
        if self.acting(engine).is_err() {
            return;
        }
        let events = engine.tick(now());
        self.hand_over(engine);
        drop(guard);
        log(&events.log);
    }

    /// Hands the states changed since the last call to the write-behind (never waits on the store).
    fn hand_over(&self, engine: &mut Engine) {
        if let Some(w) = &self.writer {
            w.submit(engine.changed_records(now()));
        }
    }

    /// How retention is doing (none without retention).
    pub fn retention_status(&self) -> Option<WriterStatus> {
        self.writer.as_ref().map(Writer::status)
    }

    /// The last full save on a graceful stop, bounded.
    pub async fn save_all(&self, wait: Duration) -> bool {
        let Some(w) = &self.writer else { return true };
        let fenced = self.fencing_status().fenced;
        let records = self
            .lock()
            .as_mut()
            .filter(|_| !fenced)
            .map(|e| e.all_records(now()))
            .unwrap_or_default();
        let n = records.len();
        w.submit(records);
        let drained = w.flush(wait).await;
        if drained {
            info!("Retention: {n} hosts and services saved to {}", w.status().backend);
        } else {
            warn!(
                "Retention: {} changes could not be written to {} within {wait:?}: {}",
                w.queued(),
                w.status().backend,
                w.status().last_error.unwrap_or_default()
            );
        }
        drained
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Engine>> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads a part: parsed and given its retained states outside the lock (a large part takes
    /// a while, the store may be slow), swapped in under it.
    pub async fn put_conf(&self, conf: SchedulerConf) -> Result<bool, ApiError> {
        info!(
            "New configuration received: part {} (epoch {}) from arbiter {}",
            conf.part_id, conf.epoch, conf.arbiter
        );
        self.heard();
        self.refuse_stale(&conf)?;
        info!("Loading configuration.");
        let cfg = shinken_config::load::from_part_text(&conf.cfg);
        if cfg.has_errors() {
            let errors = cfg.diag.reports(shinken_config::diag::Severity::Error, &cfg.sources);
            let first: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
            warn!("Refusing part {}: {} errors ({})", conf.part_id, errors.len(), first.join("; "));
            return Err(ApiError::bad_request(format!(
                "the part has {} errors: {}",
                errors.len(),
                first.join("; ")
            )));
        }
        let seed = daemon::running_id()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        let mut engine = Engine::new(&self.setup.def.name, conf.part_id, conf.epoch, cfg, now(), seed, None);
        if let Some(store) = &self.store {
            let keys = engine.retention_keys();
            match tokio::time::timeout(RETENTION_LOAD_WAIT, store.load(&keys)).await {
                Ok(Ok(records)) => {
                    let n = engine.restore(&records, now());
                    info!(
                        "Retention loaded from {}: {n} of {} hosts and services restored",
                        store.describe(),
                        keys.len()
                    );
                }
                Ok(Err(e)) => warn!("Retention load failed ({e}): part {} starts without retained states", conf.part_id),
                Err(_) => warn!(
                    "Retention load: {} did not answer within {RETENTION_LOAD_WAIT:?}: part {} starts without retained states",
                    store.describe(),
                    conf.part_id
                ),
            }
        }
        // Checked again: another part may have come in while this one was loading.
        self.refuse_stale(&conf)?;
        let mut guard = self.lock();
        let t = now();
        let mut dropped = Vec::new();
        let was_fenced = self.fencing().is_fenced();
        if let Some(prev) = guard.as_mut() {
            engine.adopt(prev, t);
            // Not saved by a fenced holder; and a record the new part saves too is superseded.
            if !was_fenced {
                dropped = prev.all_records(t);
            }
        }
        let loaded = engine.all_records(t);
        let keys: std::collections::HashSet<&str> = loaded.iter().map(|r| r.key.as_str()).collect();
        dropped.retain(|r| !keys.contains(r.key.as_str()));
        if let Some(line) = self.fencing().part_loaded(t) {
            info!("{line}");
        }
        info!(
            "New configuration loaded: part {} with {} hosts and {} services",
            conf.part_id,
            engine.host_count(),
            engine.service_count()
        );
        *guard = Some(engine);
        drop(guard);
        // Full saves: the part replaced (with its epoch) and the part loaded (claims the records
        // for the new epoch, so that a stale holder's writes are refused from now on).
        if let Some(w) = &self.writer {
            w.submit(dropped);
            w.submit(loaded);
        }
        Ok(true)
    }

    fn refuse_stale(&self, conf: &SchedulerConf) -> Result<(), ApiError> {
        let held = self.lock().as_ref().map(|e| e.epoch);
        if let Some(held) = held
            && held > conf.epoch
        {
            warn!("Refusing part {} with epoch {}: I hold epoch {held}", conf.part_id, conf.epoch);
            return Err(ApiError::conflict(format!(
                "stale configuration: epoch {} is older than {held}",
                conf.epoch
            )));
        }
        Ok(())
    }

    pub fn status(&self) -> SchedulerStatus {
        match self.lock().as_ref() {
            Some(e) => e.status(),
            None => SchedulerStatus {
                name: self.setup.def.name.clone(),
                ..Default::default()
            },
        }
    }

    fn metrics(&self) -> String {
        let guard = self.lock();
        let (hosts, services, in_flight, epoch, results, actions) = guard
            .as_ref()
            .map(|e| {
                (
                    e.host_count(),
                    e.service_count(),
                    e.in_flight(),
                    e.epoch,
                    e.results_total(),
                    e.actions_pending(),
                )
            })
            .unwrap_or_default();
        drop(guard);
        let retention = match self.retention_status() {
            Some(r) => format!(
                "# TYPE shinken_scheduler_retention_queued gauge\nshinken_scheduler_retention_queued {}\n\
                 # TYPE shinken_scheduler_retention_healthy gauge\nshinken_scheduler_retention_healthy {}\n\
                 # TYPE shinken_scheduler_retention_written_total counter\nshinken_scheduler_retention_written_total {}\n\
                 # TYPE shinken_scheduler_retention_failures_total counter\nshinken_scheduler_retention_failures_total {}\n\
                 # TYPE shinken_scheduler_retention_refused_total counter\nshinken_scheduler_retention_refused_total {}\n",
                r.queued,
                u8::from(r.healthy),
                r.written_total,
                r.failures_total,
                r.refused_total
            ),
            None => String::new(),
        };
        retention
            + &format!(
                "# TYPE shinken_scheduler_hosts gauge\nshinken_scheduler_hosts {hosts}\n\
             # TYPE shinken_scheduler_services gauge\nshinken_scheduler_services {services}\n\
             # TYPE shinken_scheduler_checks_in_flight gauge\nshinken_scheduler_checks_in_flight {in_flight}\n\
             # TYPE shinken_scheduler_epoch gauge\nshinken_scheduler_epoch {epoch}\n\
             # TYPE shinken_scheduler_results_total counter\nshinken_scheduler_results_total {results}\n\
             # TYPE shinken_scheduler_actions_pending gauge\nshinken_scheduler_actions_pending {actions}\n"
            )
    }
}

/// The scheduler's own endpoints.
fn routes(s: Arc<Scheduler>) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let d = s.clone();
    // A part is the cfg text of its hosts and services: about 350 bytes a service, so 100k
    // services are a 35 MB body. 1 GiB bounds what one request may cost.
    let put_conf = server::post_with_limit::<PutConf>("put_conf", PART_BODY_LIMIT).then(move |conf: PutConf| {
        let d = d.clone();
        async move {
            match conf {
                PutConf::Scheduler(c) => server::reply(d.put_conf(c).await),
                PutConf::Satellite(_) => server::reply::<bool>(Err(ApiError::bad_request(
                    "a scheduler takes a scheduler part, not a satellite configuration",
                ))),
            }
        }
    });
    let d = s.clone();
    let get_checks = server::post::<GetChecks>("get_checks").map(move |req: GetChecks| {
        let mut guard = d.lock();
        let Some(engine) = guard.as_mut() else {
            return server::json(&Jobs::default());
        };
        if d.acting(engine).is_err() {
            // Fenced: no work handed out.
            return server::json(&Jobs {
                epoch: engine.epoch,
                jobs: Vec::new(),
            });
        }
        let (jobs, events) = engine.get_checks(&req, now());
        d.hand_over(engine);
        let epoch = engine.epoch;
        drop(guard);
        log(&events.log);
        server::json(&Jobs { epoch, jobs })
    });
    let d = s.clone();
    let put_results = server::post::<PutResults>("put_results").map(move |req: PutResults| {
        let mut guard = d.lock();
        let Some(engine) = guard.as_mut() else {
            return server::reply::<usize>(Err(ApiError::conflict("no configuration part: results refused")));
        };
        if let Err(why) = d.acting(engine) {
            return server::reply::<usize>(Err(ApiError::conflict(format!("results refused: {why}"))));
        };
        let (rejected, events) = engine.put_results(&req.results, now());
        d.hand_over(engine);
        drop(guard);
        log(&events.log);
        if !rejected.is_empty() {
            warn!(
                "{} results from {} were for checks I do not know (requeued or from an older part)",
                rejected.len(),
                req.worker_name
            );
        }
        server::reply(Ok(req.results.len() - rejected.len()))
    });
    let d = s.clone();
    let get_broks = server::get_query::<BrokerQuery>("get_broks").map(move |q: BrokerQuery| {
        let broks = d.lock().as_mut().map(|e| e.get_broks(&q.bname)).unwrap_or_default();
        server::json(&Broks { broks })
    });
    let d = s.clone();
    let fill = server::get_query::<BrokerQuery>("fill_initial_broks").map(move |q: BrokerQuery| {
        if let Some(e) = d.lock().as_mut() {
            e.fill_initial_broks(&q.bname);
        }
        server::json(&true)
    });
    let d = s.clone();
    let status = server::get("status").map(move || {
        let fencing = d.fencing_status();
        server::json(&StatusReply {
            status: d.status(),
            retention: d.retention_status(),
            fenced: fencing.fenced,
            fencing,
        })
    });
    let d = s.clone();
    let fencing = server::get("fencing").map(move || server::json(&d.fencing_status()));
    let d = s.clone();
    let commands = server::post::<ExternalCommands>("run_external_commands")
        .map(move |req: ExternalCommands| server::reply(d.run_external_commands(&req)));
    // Served before the common routes' own `ping`: an arbiter probing resets the fencing timer.
    let d = s.clone();
    let ping = server::get("ping").map(move || {
        d.heard();
        server::json(&"pong")
    });
    ping.or(daemon::common_routes(s))
        .unify()
        .or(put_conf)
        .unify()
        .or(get_checks)
        .unify()
        .or(put_results)
        .unify()
        .or(get_broks)
        .unify()
        .or(fill)
        .unify()
        .or(status)
        .unify()
        .or(fencing)
        .unify()
        .or(commands)
        .unify()
}

/// This scheduler's fencing window, from its own definition.
fn window(setup: &Setup) -> f64 {
    Fencing::window_for(setup.def.check_interval, setup.def.max_check_attempts)
}

#[derive(Debug, serde::Deserialize)]
struct BrokerQuery {
    bname: String,
}

fn log(lines: &[String]) {
    for l in lines {
        info!("{l}");
    }
}

/// Largest configuration part accepted.
const PART_BODY_LIMIT: u64 = 1 << 30;

/// `shinken scheduler ...`: serves until SIGTERM or SIGINT.
pub async fn run(args: &Args) -> Result<(), String> {
    let (setup, cfg) = daemon::setup(Role::Scheduler, args)?;
    let listen = setup.listen;
    let token = setup.token.clone();
    let name = setup.def.name.clone();
    let module = retention::scheduler_module(&cfg.topology, &setup.def);
    let store = retention::open(module, &retention::default_path(&setup.main_file))
        .await
        .map_err(|e| format!("retention: {e}"))?;
    info!("Retention in {}", store.describe());
    drop(cfg);
    let s = Arc::new(Scheduler::with_retention(setup, Arc::new(store)));
    let m = s.clone();
    let filter = server::api(token, move || m.metrics(), routes(s.clone()));
    let served = daemon::serve_until_stopped(listen, filter).await?;
    info!("Scheduler {name} listening on {}; waiting for initial configuration", served.bound);
    info!(
        "Fencing window {:.0} s: without an arbiter call for longer, I stop acting on my part",
        s.fencing().window()
    );

    let ticker = s.clone();
    let mut rx = served.stop_signal();
    let tick_task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = rx.changed() => break,
            }
            ticker.tick();
        }
    });

    daemon::shutdown_signal().await;
    info!("Scheduler {name} stopping");
    served.stop();
    let _ = tick_task.await;
    served.finish().await;
    s.save_all(RETENTION_STOP_WAIT).await;
    Ok(())
}
