//! The scheduler daemon: the [`Engine`] behind the HTTP API.
//!
//! Waits for a part (`put_conf` from the arbiter), then serves pollers (`get_checks`,
//! `put_results`) and brokers (`get_broks`, `fill_initial_broks`), and ticks once a second
//! (orphans, freshness). A new part replaces the old one and keeps the states of the hosts and
//! services found in both (a reload loses nothing that did not change). A part with an older
//! epoch than the one held is refused: it comes from a stale arbiter.
//!
//! Retention (semantics §4, [`crate::retention`]): before the first check of every part, the
//! states of its hosts and services are loaded from the store (bounded wait: a store that does
//! not answer delays nothing more than a few seconds); every state change is handed to the
//! write-behind as it happens, and everything is saved when a part is loaded, dropped or
//! replaced, and when the daemon stops. Writes carry the part's epoch: the store refuses them
//! once a newer epoch holds the records.

use super::engine::Engine;
use crate::daemon::{self, Args, Common, Setup, now};
use crate::messages::{Broks, GetChecks, Jobs, Managed, PutConf, PutResults, SchedulerConf, SchedulerStatus};
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
}

/// `GET /v1/status`: the part's hosts and services, and how retention is doing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReply {
    #[serde(flatten)]
    pub status: SchedulerStatus,
    pub retention: Option<WriterStatus>,
}

impl Common for Scheduler {
    fn managed(&self) -> Managed {
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        engine.as_ref().map(|e| Managed::from([(e.part_id, e.epoch)])).unwrap_or_default()
    }

    fn wait_new_conf(&self) {
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut e) = engine.take() {
            info!(
                "Dropping configuration part {} (epoch {}) as asked: waiting for a new one",
                e.part_id, e.epoch
            );
            // A full save of the part dropped; the writer writes it within its batch window.
            if let Some(w) = &self.writer {
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
        Scheduler {
            setup,
            engine: Mutex::new(None),
            store: None,
            writer: None,
        }
    }

    /// A scheduler keeping retention in `store` (starts the write-behind: call it inside the
    /// runtime).
    pub fn with_retention(setup: Setup, store: Arc<Store>) -> Scheduler {
        let writer = Writer::spawn(store.clone());
        Scheduler {
            setup,
            engine: Mutex::new(None),
            store: Some(store),
            writer: Some(writer),
        }
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
        let records = self.lock().as_mut().map(|e| e.all_records(now())).unwrap_or_default();
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
        if let Some(prev) = guard.as_mut() {
            engine.adopt(prev, t);
            dropped = prev.all_records(t);
        }
        let loaded = engine.all_records(t);
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
        let (hosts, services, in_flight, epoch, results) = guard
            .as_ref()
            .map(|e| (e.host_count(), e.service_count(), e.in_flight(), e.epoch, e.results_total()))
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
             # TYPE shinken_scheduler_results_total counter\nshinken_scheduler_results_total {results}\n"
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
        server::json(&StatusReply {
            status: d.status(),
            retention: d.retention_status(),
        })
    });
    daemon::common_routes(s)
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = stop_rx.clone();
    let (bound, server_task) = server::serve(listen, filter, async move {
        let _ = rx.changed().await;
    })
    .await
    .map_err(|e| e.to_string())?;
    info!("Scheduler {name} listening on {bound}; waiting for initial configuration");

    let ticker = s.clone();
    let mut rx = stop_rx;
    let tick_task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = rx.changed() => break,
            }
            let events = ticker
                .lock()
                .as_mut()
                .map(|e| {
                    let ev = e.tick(now());
                    ticker.hand_over(e);
                    ev
                })
                .unwrap_or_default();
            log(&events.log);
        }
    });

    daemon::shutdown_signal().await;
    info!("Scheduler {name} stopping");
    let _ = stop_tx.send(true);
    let _ = tick_task.await;
    let _ = server_task.await;
    s.save_all(RETENTION_STOP_WAIT).await;
    Ok(())
}
