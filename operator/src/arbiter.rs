//! Talking to a cluster's arbiters: the operator signals (a daemon is down, a switchover) and
//! reads who works; the arbiter decides.
//!
//! Every call carries the cluster's token. Calls go to every arbiter the operator does not know
//! to be down: the one leading acts, a quiet spare keeps the fact for when it leads.

use std::time::Duration;

use shinken::messages::ArbiterStatus;
use shinken::protocol::{Client, Token};

/// Where an arbiter daemon answers. In a pod: its Service; a test gives loopback addresses.
pub trait Resolver: Send + Sync {
    /// The base URL (`http://host:port`) of the arbiter daemon `daemon` of cluster `cluster`.
    fn url(&self, namespace: &str, cluster: &str, daemon: &str) -> String;
}

/// The in-cluster resolver: `http://<cluster>-<daemon>.<namespace>.svc:7770`.
pub struct ServiceResolver;

impl Resolver for ServiceResolver {
    fn url(&self, namespace: &str, cluster: &str, daemon: &str) -> String {
        format!(
            "http://{}.{namespace}.svc:{}",
            crate::layout::object_name(cluster, daemon),
            crate::layout::default_port("arbiter")
        )
    }
}

/// The answer to a `down` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// Arbiters that took it.
    pub accepted: Vec<String>,
    /// Arbiters that did not, with why.
    pub failed: Vec<(String, String)>,
}

fn client(url: &str, token: &Token) -> Result<Client, String> {
    Client::new(url, token.clone(), Duration::from_secs(3), Duration::from_secs(5)).map_err(|e| e.to_string())
}

/// `POST /v1/daemons/{daemon}/down` on each of `arbiters` (their daemon names).
pub async fn declare_down(
    resolver: &dyn Resolver,
    token: &Token,
    namespace: &str,
    cluster: &str,
    arbiters: &[String],
    daemon: &str,
    reason: &str,
) -> Told {
    let mut told = Told {
        accepted: Vec::new(),
        failed: Vec::new(),
    };
    let body = serde_json::json!({ "reason": reason });
    let calls = arbiters.iter().map(|a| {
        let url = resolver.url(namespace, cluster, a);
        let body = &body;
        async move {
            let c = client(&url, token)?;
            c.post::<_, serde_json::Value>(&format!("daemons/{daemon}/down"), body, false)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    });
    for (a, r) in arbiters.iter().zip(futures::future::join_all(calls).await) {
        match r {
            Ok(()) => told.accepted.push(a.clone()),
            Err(e) => told.failed.push((a.clone(), e)),
        }
    }
    told
}

/// `GET /v1/status` of each arbiter; the first that leads.
pub async fn leading_status(
    resolver: &dyn Resolver,
    token: &Token,
    namespace: &str,
    cluster: &str,
    arbiters: &[String],
) -> Option<ArbiterStatus> {
    let calls = arbiters.iter().map(|a| {
        let url = resolver.url(namespace, cluster, a);
        async move {
            let c = client(&url, token).ok()?;
            c.get::<ArbiterStatus>("status", &[], false).await.ok()
        }
    });
    futures::future::join_all(calls).await.into_iter().flatten().find(|s| s.master)
}

/// `POST /v1/switchover` on the leading arbiter: the part held by `from` moves to `to`.
pub async fn switchover(
    resolver: &dyn Resolver,
    token: &Token,
    namespace: &str,
    cluster: &str,
    leader: &str,
    from: &str,
    to: &str,
) -> Result<(), String> {
    let c = client(&resolver.url(namespace, cluster, leader), token)?;
    let body = serde_json::json!({ "daemon": from, "to": to });
    c.post::<_, serde_json::Value>("switchover", &body, false)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls() {
        assert_eq!(
            ServiceResolver.url("mon", "prod", "arbiter-spare-0"),
            "http://prod-arbiter-spare-0.mon.svc:7770"
        );
    }
}
