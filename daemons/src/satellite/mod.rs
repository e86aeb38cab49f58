//! The satellites: poller, reactionner, broker and receiver (semantics reference, 1.3, 1.4, 2.5, 5).
//!
//! Every satellite waits for an arbiter to give it a [`SatelliteConf`] (`POST /v1/put_conf`): its
//! name, the scheduler parts it serves ([`SchedulerLink`]s) and its tuning. This module is the
//! frame they share: the HTTP API (the common endpoints, `put_conf`, `status`, `logs`, `/health`,
//! `/metrics`), the configuration held, and the graceful stop. What differs by role lives in one
//! module per role:
//!
//! - [`poller`]: pulls checks from every scheduler link, runs them with the
//!   [`Runner`](crate::runner::Runner), returns the results to the scheduler that handed them out;
//!   [`reactionner`] is the same loop asking for notifications and event handlers;
//! - [`broker`]: pulls broks from every scheduler link into a [`view::LiveView`] of the latest
//!   host and service states and the monitoring log, and exports it: an open web UI and JSON
//!   API beside `/v1/` ([`broker::web`]), metrics, the monitoring log file;
//! - [`receiver`]: takes external commands (HTTP and the [`command_pipe`]) and routes each to
//!   the scheduler holding its host ([`routing`]);
//! - [`link`]: what every loop towards a scheduler shares: the client of a link, the
//!   connection-state logging (once per change, not every loop) and the back-off.
//!
//! A new configuration is applied as a difference: a link whose URL did not change keeps its
//! connection and its work in flight; removed or moved links drop theirs. A configuration with an
//! older epoch than the one held comes from a stale arbiter and is refused (409).

pub mod broker;
pub mod command_pipe;
pub mod link;
pub mod poller;
pub mod reactionner;
pub mod receiver;
pub mod routing;
pub mod view;

use crate::daemon::{self, Args, Common, Setup};
use crate::messages::{ExternalCommands, Managed, PutConf, SatelliteConf, SchedulerLink};
use crate::protocol::server::{self, ApiError};
use shinken_config::daemons::Role;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};
use warp::Filter;

/// What the satellite does, by role.
enum Engine {
    /// Poller or reactionner: runs what schedulers hand out.
    Worker(Arc<poller::Worker>),
    Broker(Arc<broker::Broker>),
    Receiver(Arc<receiver::Receiver>),
}

impl Engine {
    fn apply(&self, conf: Option<&SatelliteConf>) {
        match self {
            Engine::Worker(w) => w.apply(conf),
            Engine::Broker(b) => b.apply(conf),
            Engine::Receiver(r) => r.apply(conf),
        }
    }

    fn status(&self, conf: Option<&SatelliteConf>) -> serde_json::Value {
        match self {
            Engine::Worker(w) => w.status(),
            Engine::Broker(b) => b.status(conf.map(|c| c.epoch).unwrap_or(0)),
            Engine::Receiver(r) => r.status(conf),
        }
    }

    fn metrics(&self) -> String {
        match self {
            Engine::Worker(w) => w.metrics(),
            Engine::Broker(b) => b.metrics(),
            Engine::Receiver(r) => r.metrics(),
        }
    }

    async fn stop(&self) {
        match self {
            Engine::Worker(w) => w.stop().await,
            Engine::Broker(b) => b.stop(),
            Engine::Receiver(r) => r.stop().await,
        }
    }
}

/// A satellite's state, shared by its handlers.
pub struct Satellite {
    setup: Setup,
    /// The configuration held, or none while waiting for one.
    conf: Mutex<Option<SatelliteConf>>,
    engine: Engine,
}

impl Common for Satellite {
    fn managed(&self) -> Managed {
        self.lock().as_ref().map(managed_parts).unwrap_or_default()
    }

    fn wait_new_conf(&self) {
        let mut conf = self.lock();
        if conf.take().is_some() {
            info!("[{}] Dropping my configuration as asked: waiting for a new one", self.name());
        }
        self.engine.apply(None);
    }

    fn running_id(&self) -> &str {
        &self.setup.running_id
    }
}

/// The parts of a configuration's scheduler links, with their epochs.
pub fn managed_parts(conf: &SatelliteConf) -> Managed {
    conf.schedulers.iter().map(|s| (s.part_id, s.epoch)).collect()
}

impl Satellite {
    fn new(setup: Setup) -> Satellite {
        let name = setup.def.name.clone();
        let engine = match setup.role {
            Role::Poller => Engine::Worker(poller::Worker::new(name, setup.role, poller::Mode::Checks, setup.token.clone())),
            Role::Reactionner => Engine::Worker(reactionner::new(name, setup.token.clone())),
            Role::Broker => Engine::Broker(broker::Broker::new(name, setup.token.clone())),
            _ => Engine::Receiver(receiver::Receiver::new(name, setup.token.clone())),
        };
        Satellite {
            setup,
            conf: Mutex::new(None),
            engine,
        }
    }

    fn name(&self) -> &str {
        &self.setup.def.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SatelliteConf>> {
        self.conf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a new configuration (refused when older than the one held).
    pub fn put_conf(&self, conf: SatelliteConf) -> Result<bool, ApiError> {
        let mut held = self.lock();
        if let Some(h) = held.as_ref()
            && h.epoch > conf.epoch
        {
            warn!(
                "[{}] Refusing a configuration with epoch {}: I hold epoch {}",
                self.name(),
                conf.epoch,
                h.epoch
            );
            return Err(ApiError::conflict(format!(
                "stale configuration: epoch {} is older than {}",
                conf.epoch, h.epoch
            )));
        }
        info!(
            "[{}] New configuration received: {} schedulers (epoch {}, from arbiter {})",
            self.name(),
            conf.schedulers.len(),
            conf.epoch,
            conf.arbiter
        );
        if conf.name != self.name() {
            warn!(
                "[{}] The configuration received is addressed to '{}'; I keep my own name",
                self.name(),
                conf.name
            );
        }
        self.engine.apply(Some(&conf));
        *held = Some(conf);
        Ok(true)
    }

    /// `GET /v1/status`: who I am, my configuration, and what my role shows.
    pub fn status(&self) -> serde_json::Value {
        let held = self.lock();
        let mut v = self.engine.status(held.as_ref());
        if let Some(map) = v.as_object_mut() {
            map.insert("name".into(), self.name().into());
            map.insert("role".into(), self.setup.role.name().into());
            map.insert("have_conf".into(), held.is_some().into());
            map.insert("epoch".into(), held.as_ref().map(|c| c.epoch).unwrap_or(0).into());
            if !map.contains_key("schedulers") {
                let links: Vec<&SchedulerLink> = held.iter().flat_map(|c| c.schedulers.iter()).collect();
                map.insert("schedulers".into(), serde_json::to_value(links).unwrap_or_default());
            }
        }
        v
    }

    fn metrics(&self) -> String {
        let (have_conf, links) = self.lock().as_ref().map(|c| (1, c.schedulers.len())).unwrap_or((0, 0));
        let role = self.setup.role.name();
        format!(
            "# TYPE shinken_{role}_have_conf gauge\nshinken_{role}_have_conf {have_conf}\n\
             # TYPE shinken_{role}_schedulers gauge\nshinken_{role}_schedulers {links}\n{}",
            self.engine.metrics()
        )
    }
}

/// A satellite's own endpoints, beside the common ones.
fn routes(s: Arc<Satellite>) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let d = s.clone();
    let put_conf = server::post::<PutConf>("put_conf").map(move |conf: PutConf| match conf {
        PutConf::Satellite(c) => server::reply(d.put_conf(c)),
        PutConf::Scheduler(_) => server::reply::<bool>(Err(ApiError::bad_request(
            "a satellite takes a satellite configuration, not a scheduler part",
        ))),
    });
    let d = s.clone();
    let status = server::get("status").map(move || server::json(&d.status()));
    let d = s.clone();
    let logs = server::get("logs").map(move || match &d.engine {
        Engine::Broker(b) => server::json(&serde_json::json!({ "name": d.name(), "logs": b.logs() })),
        _ => server::reply::<bool>(Err(ApiError::not_found("only a broker keeps the monitoring log"))),
    });
    let d = s.clone();
    let commands = server::post::<ExternalCommands>("run_external_commands").then(move |req: ExternalCommands| {
        let d = d.clone();
        async move {
            match &d.engine {
                Engine::Receiver(r) => server::json(&r.run_lines(&req.commands).await),
                _ => server::reply::<bool>(Err(ApiError::not_found("only a receiver takes external commands"))),
            }
        }
    });
    daemon::common_routes(s)
        .or(put_conf)
        .unify()
        .or(status)
        .unify()
        .or(logs)
        .unify()
        .or(commands)
        .unify()
}

/// `shinken poller|reactionner|broker|receiver ...`: serves until SIGTERM or SIGINT.
pub async fn run(role: Role, args: &Args) -> Result<(), String> {
    run_until(role, args, daemon::shutdown_signal()).await
}

/// As [`run`], stopping when `shutdown` completes.
pub async fn run_until(role: Role, args: &Args, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    if !matches!(role, Role::Poller | Role::Reactionner | Role::Broker | Role::Receiver) {
        return Err(format!("a {} is not a satellite", role.name()));
    }
    // The configuration was read to find this daemon's definition (and, for a broker, the
    // arbiters and its monitoring log): not kept.
    let (setup, cfg) = daemon::setup(role, args)?;
    if matches!(role, Role::Poller | Role::Reactionner) {
        poller::raise_open_files_limit();
    }
    let listen = setup.listen;
    let token = setup.token.clone();
    let name = setup.def.name.clone();
    let s = Arc::new(Satellite::new(setup));
    let broker = match &s.engine {
        Engine::Broker(b) => Some(b.clone()),
        _ => None,
    };
    if let Some(b) = &broker {
        b.start_site(broker::Site::from_config(&s.setup, &cfg));
    }
    if let Engine::Receiver(r) = &s.engine {
        if !s.setup.def.direct_routing {
            info!("[{name}] direct_routing is off, but the arbiter takes no external commands: I route them to the schedulers myself");
        }
        let main = &s.setup.main_file;
        let base = if main.is_dir() {
            main.clone()
        } else {
            main.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        for path in command_pipe::command_files(&s.setup.def, &cfg.topology, &base) {
            command_pipe::start(r, path);
        }
    }
    drop(cfg);
    let m = s.clone();
    // A broker's web UI and JSON API are open, beside the token-protected API.
    let filter = broker::web::routes(broker)
        .or(server::api(token, move || m.metrics(), routes(s.clone())))
        .unify();
    let served = daemon::serve_until_stopped(listen, filter).await?;
    info!("[{name}] {} listening on {}", role.name(), served.bound);
    if role == Role::Broker {
        info!("[{name}] Web UI on http://{}/ (JSON API under /api/v1/)", served.bound);
    }
    info!("[{name}] Waiting for initial configuration");

    shutdown.await;
    info!("[{name}] Stopping");
    s.engine.stop().await;
    served.finish().await;
    info!("[{name}] Stopped");
    Ok(())
}
