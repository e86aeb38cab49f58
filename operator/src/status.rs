//! The status a reconcile writes, as a pure function of what it saw.
//!
//! Conditions follow the Kubernetes conventions (`kubectl wait --for=condition=Ready` works): each
//! has its own `observedGeneration`, a CamelCase reason and a message a person can act on, and
//! keeps its `lastTransitionTime` while its status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{DaemonStatus, ShinkenClusterStatus, Takeover};

/// What became of the configuration this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// Valid and applied.
    Valid {
        hash: String,
        hosts: usize,
        services: usize,
        warnings: usize,
        /// The user's daemon definitions the operator replaced (ConfigMap, key, line).
        replaced: Vec<String>,
    },
    /// Refused: the last good objects stay. Messages are file:line: object: message.
    Invalid { reason: &'static str, messages: Vec<String> },
}

/// Whether retention can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionOutcome {
    Ready(String),
    NotReady { reason: &'static str, message: String },
}

/// Everything the status is made of.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub generation: Option<i64>,
    pub config: ConfigOutcome,
    pub retention: RetentionOutcome,
    pub daemons: Vec<DaemonStatus>,
    pub fenced: Vec<String>,
    /// Reasons of the daemons failing now.
    pub failing: Vec<String>,
    pub active_arbiter: Option<String>,
    pub last_takeover: Option<Takeover>,
    pub previous: Option<&'a ShinkenClusterStatus>,
    pub now: Timestamp,
}

/// Kubernetes caps a condition's message at 32768 bytes; keep a margin.
const MESSAGE_LIMIT: usize = 30_000;

fn condition(f: &Facts, type_: &str, ok: bool, reason: &str, message: String) -> Condition {
    let status = if ok { "True" } else { "False" }.to_string();
    let previous = f.previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == type_));
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(f.now),
    };
    let mut message = message;
    if message.len() > MESSAGE_LIMIT {
        let mut cut = MESSAGE_LIMIT;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" ...");
    }
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: f.generation,
        last_transition_time,
    }
}

/// The new status.
pub fn status(f: &Facts) -> ShinkenClusterStatus {
    let wanted: Vec<&DaemonStatus> = f.daemons.iter().filter(|d| !f.fenced.contains(&d.name)).collect();
    let ready = wanted.iter().filter(|d| d.ready).count();
    let config_ok = matches!(f.config, ConfigOutcome::Valid { .. });
    let keeps_running = if f.previous.and_then(|p| p.config_hash.as_ref()).is_some() {
        "the last valid configuration keeps running"
    } else {
        "nothing runs until a valid configuration is given"
    };
    let config = match &f.config {
        ConfigOutcome::Valid {
            hosts,
            services,
            warnings,
            replaced,
            ..
        } => {
            let mut m = format!("{hosts} hosts, {services} services, {warnings} warnings");
            if !replaced.is_empty() {
                m.push_str(&format!("; daemon definitions replaced by spec.roles:\n{}", replaced.join("\n")));
            }
            condition(f, "ConfigValid", true, "Valid", m)
        }
        ConfigOutcome::Invalid { reason, messages } => condition(
            f,
            "ConfigValid",
            false,
            reason,
            format!("{} problem(s); {keeps_running}:\n{}", messages.len(), messages.join("\n")),
        ),
    };
    let retention = match &f.retention {
        RetentionOutcome::Ready(m) => condition(f, "RetentionReady", true, "Ready", m.clone()),
        RetentionOutcome::NotReady { reason, message } => condition(f, "RetentionReady", false, reason, message.clone()),
    };
    let retention_ok = matches!(f.retention, RetentionOutcome::Ready(_));
    let all_ready = ready == wanted.len() && !wanted.is_empty();
    let ready_condition = if !config_ok && f.previous.and_then(|p| p.config_hash.as_ref()).is_none() {
        condition(
            f,
            "Ready",
            false,
            "ConfigInvalid",
            "no valid configuration has been applied yet".to_string(),
        )
    } else if !retention_ok {
        condition(
            f,
            "Ready",
            false,
            "RetentionNotReady",
            "retention is not ready: see RetentionReady".to_string(),
        )
    } else if !all_ready {
        let missing: Vec<&str> = wanted.iter().filter(|d| !d.ready).map(|d| d.name.as_str()).collect();
        condition(f, "Ready", false, "DaemonsNotReady", format!("not ready: {}", missing.join(", ")))
    } else {
        condition(f, "Ready", true, "AllDaemonsReady", format!("{ready} daemons ready"))
    };
    let mut degraded = Vec::new();
    if !f.failing.is_empty() {
        degraded.push(format!("failing: {}", f.failing.join("; ")));
    }
    if !f.fenced.is_empty() {
        degraded.push(format!(
            "fenced after a takeover (their spares work; annotate shinken.io/switchover=<daemon> to bring one back): {}",
            f.fenced.join(", ")
        ));
    }
    if !config_ok {
        degraded.push("the configuration was refused".to_string());
    }
    let degraded_condition = if degraded.is_empty() {
        condition(
            f,
            "Degraded",
            false,
            "Healthy",
            "every master works, every spare stands by".to_string(),
        )
    } else {
        let reason = if !f.failing.is_empty() {
            "DaemonsFailing"
        } else if !f.fenced.is_empty() {
            "MastersFenced"
        } else {
            "ConfigRefused"
        };
        condition(f, "Degraded", true, reason, degraded.join("\n"))
    };
    let config_hash = match &f.config {
        ConfigOutcome::Valid { hash, .. } => Some(hash.clone()),
        ConfigOutcome::Invalid { .. } => f.previous.and_then(|p| p.config_hash.clone()),
    };
    ShinkenClusterStatus {
        observed_generation: f.generation,
        conditions: vec![ready_condition, config, retention, degraded_condition],
        ready_daemons: Some(format!("{ready}/{}", wanted.len())),
        active_arbiter: f.active_arbiter.clone(),
        daemons: f.daemons.clone(),
        fenced: f.fenced.clone(),
        last_takeover: f.last_takeover.clone().or_else(|| f.previous.and_then(|p| p.last_takeover.clone())),
        config_hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(name: &str, ready: bool) -> DaemonStatus {
        DaemonStatus {
            name: name.into(),
            role: "scheduler".into(),
            spare: name.contains("spare"),
            pod: Some(format!("p-{name}")),
            ready,
            active: !name.contains("spare"),
        }
    }

    fn facts(prev: Option<&ShinkenClusterStatus>, now: i64) -> Facts<'_> {
        Facts {
            generation: Some(3),
            config: ConfigOutcome::Valid {
                hash: "h1".into(),
                hosts: 2,
                services: 5,
                warnings: 0,
                replaced: vec![],
            },
            retention: RetentionOutcome::Ready("MongoDB StatefulSet ready".into()),
            daemons: vec![daemon("scheduler-0", true), daemon("scheduler-spare-0", true)],
            fenced: vec![],
            failing: vec![],
            active_arbiter: Some("arbiter-0".into()),
            last_takeover: None,
            previous: prev,
            now: Timestamp::from_second(now).unwrap(),
        }
    }

    fn cond<'a>(s: &'a ShinkenClusterStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_ready_is_ready_and_not_degraded() {
        let s = status(&facts(None, 100));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(cond(&s, "ConfigValid").observed_generation, Some(3));
        assert_eq!(s.ready_daemons.as_deref(), Some("2/2"));
        assert_eq!(s.config_hash.as_deref(), Some("h1"));
    }

    #[test]
    fn transition_times_move_only_when_the_status_changes() {
        let first = status(&facts(None, 100));
        let same = status(&facts(Some(&first), 200));
        assert_eq!(
            cond(&same, "Ready").last_transition_time,
            cond(&first, "Ready").last_transition_time
        );
        let mut f = facts(Some(&first), 300);
        f.daemons[0].ready = false;
        let changed = status(&f);
        assert_eq!(cond(&changed, "Ready").reason, "DaemonsNotReady");
        assert_eq!(cond(&changed, "Ready").last_transition_time.0.as_second(), 300);
    }

    #[test]
    fn an_invalid_config_keeps_the_last_hash_and_says_why() {
        let first = status(&facts(None, 100));
        let mut f = facts(Some(&first), 200);
        f.config = ConfigOutcome::Invalid {
            reason: "InvalidConfiguration",
            messages: vec!["ConfigMap objs key web.cfg:7: service 'web1/http': unknown command 'nope'".into()],
        };
        let s = status(&f);
        let c = cond(&s, "ConfigValid");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidConfiguration"));
        assert!(c.message.contains("web.cfg:7"));
        assert_eq!(s.config_hash.as_deref(), Some("h1"));
        assert_eq!(cond(&s, "Ready").status, "True", "the last good configuration runs");
        assert_eq!(cond(&s, "Degraded").reason, "ConfigRefused");
    }

    #[test]
    fn fenced_masters_are_not_wanted_and_make_it_degraded() {
        let mut f = facts(None, 100);
        f.fenced = vec!["scheduler-0".into()];
        f.daemons[0].ready = false;
        let s = status(&f);
        assert_eq!(s.ready_daemons.as_deref(), Some("1/1"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Degraded").reason, "MastersFenced");
    }

    #[test]
    fn long_messages_are_cut() {
        let mut f = facts(None, 100);
        f.config = ConfigOutcome::Invalid {
            reason: "InvalidConfiguration",
            messages: vec!["é".repeat(40_000)],
        };
        let c = cond(&status(&f), "ConfigValid").clone();
        assert!(c.message.len() < 32_768);
        assert!(c.message.contains("nothing runs until a valid configuration is given"));
    }
}
