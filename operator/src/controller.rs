//! `shinken-operator run`: the controller process. Health and metrics served from the start,
//! leader election when asked, the reconcile loop while leading, graceful shutdown on SIGTERM.
//!
//! Watched: ShinkenClusters; the Deployments, Services and ConfigMaps they own (a change by
//! someone else is undone); the daemons' pods (a failing pod is what triggers a takeover).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;
use tracing::{error, info, warn};
use warp::{Filter, Reply};

use crate::arbiter::ServiceResolver;
use crate::crd::ShinkenCluster;
use crate::layout::{FIELD_MANAGER, LABEL_INSTANCE, LABEL_MANAGED_BY};
use crate::leader::{LeaderElector, Timings};
use crate::metrics::Metrics;
use crate::reconcile::{self, Context};

/// Options of `run`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
    /// Run only while holding the Lease (several replicas).
    pub leader_elect: bool,
    /// Watch one namespace (none: all).
    pub namespace: Option<String>,
}

/// The lease's name, in the operator's own namespace.
const LEASE_NAME: &str = "shinken-operator-leader";

/// Parses `run`'s flags.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        metrics_addr: "0.0.0.0:8080".parse().expect("valid"),
        leader_elect: false,
        namespace: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--metrics-addr" => {
                let v = it.next().ok_or("--metrics-addr needs ADDR:PORT")?;
                o.metrics_addr = v.parse().map_err(|e| format!("--metrics-addr {v}: {e}"))?;
            }
            "--leader-elect" => o.leader_elect = true,
            "--namespace" => o.namespace = Some(it.next().ok_or("--namespace needs a name")?.clone()),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    Ok(o)
}

/// Resolves on SIGTERM or Ctrl-C, and tells every waiter through the channel.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => info!("Interrupted: shutting down"),
        }
        let _ = tx.send(true);
    });
    rx
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Serves `/healthz` (the process runs), `/readyz` (it leads or stands by, after start) and
/// `/metrics`.
async fn serve_health(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, String> {
    let healthz = warp::path("healthz").map(|| "ok".to_string().into_response());
    let readyz = warp::path("readyz").map(move || {
        let (text, code) = if ready.load(Ordering::Relaxed) {
            ("ready", warp::http::StatusCode::OK)
        } else {
            ("starting", warp::http::StatusCode::SERVICE_UNAVAILABLE)
        };
        warp::reply::with_status(text.to_string(), code).into_response()
    });
    let m = warp::path("metrics").map(move || metrics.render().into_response());
    let routes = warp::get().and(healthz.or(readyz).unify().or(m).unify()).recover(|_| async {
        Ok::<_, std::convert::Infallible>(
            warp::reply::with_status("not found".to_string(), warp::http::StatusCode::NOT_FOUND).into_response(),
        )
    });
    shinken::protocol::server::serve(addr, routes, wait_true(shutdown))
        .await
        .map(|(bound, _)| bound)
        .map_err(|e| e.to_string())
}

/// Runs the operator until SIGTERM (or until leadership is lost: the process exits so that it
/// never acts beside a new leader).
pub async fn run(options: Options) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = shutdown_signal();
    serve_health(options.metrics_addr, metrics.clone(), ready.clone(), shutdown.clone()).await?;
    info!(addr = %options.metrics_addr, "Serving /healthz, /readyz and /metrics");

    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("shinken-operator-{}", std::process::id()));
    let mut election = None;
    if options.leader_elect {
        let lease_ns = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| client.default_namespace().to_string());
        let leases: Api<Lease> = Api::namespaced(client.clone(), &lease_ns);
        let elector = LeaderElector::new(leases, LEASE_NAME, identity.clone(), Timings::default()).map_err(|e| e.to_string())?;
        let (mut leading, handle) = elector.spawn(wait_true(shutdown.clone()));
        ready.store(true, Ordering::Relaxed);
        info!(identity = %identity, "Waiting for the lease {LEASE_NAME}");
        tokio::select! {
            _ = leading.wait_for(|l| *l) => {}
            _ = wait_true(shutdown.clone()) => { let _ = handle.await; return Ok(()); }
        }
        metrics.set_leading(true);
        election = Some((leading, handle));
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some((mut leading, _)) = election.as_ref().map(|(l, h)| (l.clone(), h)) {
        let stop_tx = stop_tx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = leading.wait_for(|l| !*l).await;
            metrics.set_leading(false);
            warn!("Lost the lease: stopping the controller");
            let _ = stop_tx.send(true);
        });
    }
    {
        let stop_tx = stop_tx.clone();
        let s = shutdown.clone();
        tokio::spawn(async move {
            wait_true(s).await;
            let _ = stop_tx.send(true);
        });
    }

    let scoped = |ns: &Option<String>| ns.clone();
    let clusters: Api<ShinkenCluster> = match scoped(&options.namespace) {
        Some(ns) => Api::namespaced(client.clone(), &ns),
        None => Api::all(client.clone()),
    };
    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(client: &kube::Client, ns: &Option<String>) -> Api<K>
    where
        K::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ours = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}"));
    let ctx = Arc::new(Context {
        client: client.clone(),
        resolver: Arc::new(ServiceResolver),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance: Some(identity.clone()),
            },
        ),
        signalled: Default::default(),
        metrics: metrics.clone(),
    });
    ready.store(true, Ordering::Relaxed);
    info!(namespace = ?options.namespace, "Controller started");
    Controller::new(clusters, watcher::Config::default())
        .owns(api::<Deployment>(&client, &options.namespace), ours.clone())
        .owns(api::<Service>(&client, &options.namespace), ours.clone())
        .owns(api::<ConfigMap>(&client, &options.namespace), ours.clone())
        .owns(api::<StatefulSet>(&client, &options.namespace), ours.clone())
        .watches(api::<Pod>(&client, &options.namespace), ours, |pod: Pod| {
            let ns = pod.namespace();
            pod.labels().get(LABEL_INSTANCE).map(|c| {
                let r = ObjectRef::<ShinkenCluster>::new(c);
                match ns {
                    Some(ns) => r.within(&ns),
                    None => r,
                }
            })
        })
        .graceful_shutdown_on(wait_true(stop_rx))
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(err, obj) => {
                        warn!(cluster = %obj.name, error = %err, "Reconcile failed")
                    }
                    other => error!(error = %other, "Controller error"),
                }
            }
        })
        .await;
    if let Some((_, handle)) = election {
        if *shutdown.borrow() {
            // On SIGTERM the elector releases the lease, so that a successor leads at once.
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        } else {
            handle.abort();
        }
    }
    info!("Stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_flags() {
        let o = parse(&[
            "--metrics-addr".into(),
            "127.0.0.1:9000".into(),
            "--leader-elect".into(),
            "--namespace".into(),
            "mon".into(),
        ])
        .unwrap();
        assert_eq!(o.metrics_addr, "127.0.0.1:9000".parse().unwrap());
        assert!(o.leader_elect);
        assert_eq!(o.namespace.as_deref(), Some("mon"));
        assert!(parse(&["--bogus".into()]).unwrap_err().contains("--bogus"));
        assert!(parse(&["--metrics-addr".into(), "nope".into()]).is_err());
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, out)
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_are_served_until_shutdown() {
        let metrics = Arc::new(Metrics::default());
        let ready = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(false);
        let addr = serve_health("127.0.0.1:0".parse().unwrap(), metrics.clone(), ready.clone(), rx)
            .await
            .unwrap();
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        metrics.takeover();
        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("shinken_operator_takeovers_total 1"));
        assert_eq!(get(addr, "/nope").await.0, 404);
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "closed after shutdown");
    }
}
