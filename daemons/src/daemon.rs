//! What every daemon does the same way: its arguments, finding its own definition, the token,
//! the address it listens on, logging, the endpoints every daemon answers, and a graceful stop.
//!
//! `shinken <role> --config PATH --name NAME [--listen ADDR:PORT] [--token-file PATH]`: the
//! daemon reads the configuration only to find its own definition (address, port, timeouts),
//! listens on `address:port` unless told otherwise, and waits for an arbiter to give it work,
//! as Shinken's daemons do.

use crate::messages::{Managed, RunningId};
use crate::protocol::server;
use crate::protocol::{Token, default_token_path, load_token};
use shinken_config::daemons::{DaemonDef, Role};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use warp::Filter;

/// The command-line arguments every daemon takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: PathBuf,
    pub name: String,
    pub listen: Option<String>,
    pub token_file: Option<PathBuf>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut config = None;
        let mut name = None;
        let mut listen = None;
        let mut token_file = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |flag: &str| it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
            match a.as_str() {
                "--config" | "-c" => config = Some(PathBuf::from(value(a)?)),
                "--name" | "-n" => name = Some(value(a)?),
                "--listen" => listen = Some(value(a)?),
                "--token-file" => token_file = Some(PathBuf::from(value(a)?)),
                other => return Err(format!("unexpected argument '{other}'")),
            }
        }
        Ok(Args {
            config: config.ok_or("--config PATH is required")?,
            name: name.ok_or("--name NAME is required")?,
            listen,
            token_file,
        })
    }
}

/// A daemon ready to serve: its definition, token and address.
#[derive(Debug, Clone)]
pub struct Setup {
    pub role: Role,
    pub def: DaemonDef,
    pub token: Token,
    pub listen: SocketAddr,
    pub main_file: PathBuf,
    pub running_id: String,
}

/// Reads the configuration to find this daemon's definition, loads the token (a daemon without
/// one refuses to start) and resolves the listen address.
pub fn setup(role: Role, args: &Args) -> Result<(Setup, shinken_config::Config), String> {
    let cfg = shinken_config::load(&args.config).map_err(|e| format!("cannot read the configuration: {e}"))?;
    let def = cfg.topology.by_role(role).find(|d| d.name == args.name).cloned().ok_or_else(|| {
        let known: Vec<&str> = cfg.topology.by_role(role).map(|d| d.name.as_str()).collect();
        format!(
            "no {} named '{}' in {} (known: {})",
            role.name(),
            args.name,
            cfg.main_file.display(),
            known.join(", ")
        )
    })?;
    let token = token_for(args, &cfg.main_file)?;
    let listen_text = args.listen.clone().unwrap_or_else(|| format!("{}:{}", def.address, def.port));
    let listen = listen_text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve the listen address {listen_text}: {e}"))?
        .next()
        .ok_or_else(|| format!("the listen address {listen_text} resolves to nothing"))?;
    let main_file = cfg.main_file.clone();
    Ok((
        Setup {
            role,
            def,
            token,
            listen,
            main_file,
            running_id: running_id(),
        },
        cfg,
    ))
}

/// The environment variable that may carry the token instead of a file. In a Kubernetes pod the
/// token comes from a Secret as an environment variable: a Secret volume mounted with an `fsGroup`
/// gets group-readable files, which the token file check refuses.
pub const TOKEN_ENV: &str = "SHINKEN_TOKEN";

/// The token: `--token-file` first, then `$SHINKEN_TOKEN`, then the file beside the main file.
fn token_for(args: &Args, main_file: &std::path::Path) -> Result<Token, String> {
    let refuse = |e: &dyn std::fmt::Display| format!("refusing to start without the cluster token: {e}");
    if args.token_file.is_none()
        && let Ok(text) = std::env::var(TOKEN_ENV)
    {
        return Token::new(text.trim()).map_err(|e| refuse(&format!("${TOKEN_ENV}: {e}")));
    }
    let token_path = args.token_file.clone().unwrap_or_else(|| default_token_path(main_file));
    load_token(&token_path).map_err(|e| refuse(&e))
}

/// `<start time>.<random>`: fixed for the life of the process, so callers notice a restart.
pub fn running_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut buf = [0u8; 4];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .map(|_| u32::from_le_bytes(buf) % 100_000_000)
        .unwrap_or(now.subsec_nanos() % 100_000_000);
    format!("{}.{random}", now.as_secs())
}

/// Unix seconds, as the engine and the messages count time.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A daemon's API being served, and the stop signal its loops share with the server.
pub struct Served {
    /// The address actually bound (`--listen 127.0.0.1:0` picks a free port).
    pub bound: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Served {
    /// A receiver that changes when [`Served::stop`] is called: a daemon's loops select on it.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Tells the server and every loop to stop.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the server (if not yet told) and waits until requests in flight are answered.
    pub async fn finish(self) {
        self.stop();
        let _ = self.server.await;
    }
}

/// Binds `listen` and serves `filter` until [`Served::stop`].
pub async fn serve_until_stopped<F, R>(listen: std::net::SocketAddr, filter: F) -> Result<Served, String>
where
    F: Filter<Extract = (R,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    R: warp::Reply,
{
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let (bound, server) = server::serve(listen, filter, async move {
        let _ = rx.changed().await;
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(Served { bound, server, stop })
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Human-readable logs on stderr, one line per event; `SHINKEN_LOG` (error, warn, info, debug,
/// trace) sets the level, info by default.
pub fn init_logging() {
    let level = match std::env::var("SHINKEN_LOG").unwrap_or_default().to_ascii_lowercase().as_str() {
        "error" => tracing::Level::ERROR,
        "warn" | "warning" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// What every daemon answers, whatever its role.
pub trait Common: Send + Sync + 'static {
    /// The parts held, by id, with their epoch.
    fn managed(&self) -> Managed;
    /// Drops the configuration and goes back to waiting for one (Shinken's `wait_new_conf`).
    fn wait_new_conf(&self);
    fn running_id(&self) -> &str;
}

/// `ping`, `get_running_id`, `have_conf`, `what_i_managed`, `wait_new_conf`.
pub fn common_routes<C: Common>(
    daemon: Arc<C>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let ping = server::get("ping").map(|| server::json(&"pong"));
    let d = daemon.clone();
    let running = server::get("get_running_id").map(move || {
        server::json(&RunningId {
            running_id: d.running_id().to_string(),
        })
    });
    let d = daemon.clone();
    let have_conf = server::get("have_conf").map(move || server::json(&!d.managed().is_empty()));
    let d = daemon.clone();
    let managed = server::get("what_i_managed").map(move || server::json(&d.managed()));
    let d = daemon;
    let wait = server::get("wait_new_conf").map(move || {
        d.wait_new_conf();
        server::json(&true)
    });
    ping.or(running).unify().or(have_conf).unify().or(managed).unify().or(wait).unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let a = Args::parse(&s(&[
            "--config",
            "/etc/shinken",
            "--name",
            "scheduler-master",
            "--listen",
            "0.0.0.0:7768",
        ]))
        .unwrap();
        assert_eq!(a.name, "scheduler-master");
        assert_eq!(a.listen.as_deref(), Some("0.0.0.0:7768"));
        assert!(Args::parse(&s(&["--config", "/x"])).unwrap_err().contains("--name"));
        assert!(Args::parse(&s(&["--name"])).unwrap_err().contains("needs a value"));
        assert!(Args::parse(&s(&["--bogus"])).is_err());
    }

    #[test]
    fn running_ids_differ() {
        assert_ne!(running_id(), running_id());
    }
}
