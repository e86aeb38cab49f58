//! The scheduler daemon: the [`Engine`] behind the HTTP API.
//!
//! Waits for a part (`put_conf` from the arbiter), then serves pollers (`get_checks`,
//! `put_results`) and brokers (`get_broks`, `fill_initial_broks`), and ticks once a second
//! (orphans, freshness). A new part replaces the old one and keeps the states of the hosts and
//! services found in both (a reload loses nothing that did not change). A part with an older
//! epoch than the one held is refused: it comes from a stale arbiter.

use super::engine::Engine;
use crate::daemon::{self, Args, Common, Setup, now};
use crate::messages::{Broks, GetChecks, Jobs, Managed, PutConf, PutResults, SchedulerConf, SchedulerStatus};
use crate::protocol::server::{self, ApiError};
use shinken_config::daemons::Role;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};
use warp::Filter;

/// The scheduler's state, shared by its handlers and its tick.
pub struct Scheduler {
    setup: Setup,
    /// The part held, or none while waiting for one.
    engine: Mutex<Option<Engine>>,
}

impl Common for Scheduler {
    fn managed(&self) -> Managed {
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        engine.as_ref().map(|e| Managed::from([(e.part_id, e.epoch)])).unwrap_or_default()
    }

    fn wait_new_conf(&self) {
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = engine.take() {
            info!(
                "Dropping configuration part {} (epoch {}) as asked: waiting for a new one",
                e.part_id, e.epoch
            );
        }
    }

    fn running_id(&self) -> &str {
        &self.setup.running_id
    }
}

impl Scheduler {
    pub fn new(setup: Setup) -> Scheduler {
        Scheduler {
            setup,
            engine: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Engine>> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads a part: parsed outside the lock (a large part takes a while), swapped in under it.
    pub fn put_conf(&self, conf: SchedulerConf) -> Result<bool, ApiError> {
        info!(
            "New configuration received: part {} (epoch {}) from arbiter {}",
            conf.part_id, conf.epoch, conf.arbiter
        );
        if let Some(held) = self.lock().as_ref()
            && held.epoch > conf.epoch
        {
            warn!(
                "Refusing part {} with epoch {}: I hold epoch {}",
                conf.part_id, conf.epoch, held.epoch
            );
            return Err(ApiError::conflict(format!(
                "stale configuration: epoch {} is older than {}",
                conf.epoch, held.epoch
            )));
        }
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
        let mut guard = self.lock();
        let engine = Engine::new(&self.setup.def.name, conf.part_id, conf.epoch, cfg, now(), seed, guard.as_ref());
        info!(
            "New configuration loaded: part {} with {} hosts and {} services",
            conf.part_id,
            engine.host_count(),
            engine.service_count()
        );
        *guard = Some(engine);
        Ok(true)
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
        format!(
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
    let put_conf = server::post::<PutConf>("put_conf").map(move |conf: PutConf| match conf {
        PutConf::Scheduler(c) => server::reply(d.put_conf(c)),
        PutConf::Satellite(_) => server::reply::<bool>(Err(ApiError::bad_request(
            "a scheduler takes a scheduler part, not a satellite configuration",
        ))),
    });
    let d = s.clone();
    let get_checks = server::post::<GetChecks>("get_checks").map(move |req: GetChecks| {
        let mut guard = d.lock();
        let Some(engine) = guard.as_mut() else {
            return server::json(&Jobs::default());
        };
        let (jobs, events) = engine.get_checks(&req, now());
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
    let status = server::get("status").map(move || server::json(&d.status()));
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

/// `shinken scheduler ...`: serves until SIGTERM or SIGINT.
pub async fn run(args: &Args) -> Result<(), String> {
    let (setup, _cfg) = daemon::setup(Role::Scheduler, args)?;
    let listen = setup.listen;
    let token = setup.token.clone();
    let name = setup.def.name.clone();
    let s = Arc::new(Scheduler::new(setup));
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
            let events = ticker.lock().as_mut().map(|e| e.tick(now())).unwrap_or_default();
            log(&events.log);
        }
    });

    daemon::shutdown_signal().await;
    info!("Scheduler {name} stopping");
    let _ = stop_tx.send(true);
    let _ = tick_task.await;
    let _ = server_task.await;
    Ok(())
}
