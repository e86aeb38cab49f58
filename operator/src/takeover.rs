//! Pod-health takeover, the decision part: which daemons' pods have failed, and what to do.
//!
//! The operator is a second, faster detector beside the arbiter's own probes (DESIGN.md): it
//! never chooses which spare works — the arbiter does. It only:
//! - tells the arbiter a daemon is gone (`POST /v1/daemons/{name}/down`) when its pod is deleted,
//!   evicted, crash-looping, gone, or not Ready for longer than `podFailureGraceSeconds`;
//! - fences a failed master (its Deployment scaled to 0, so that a returning pod can never run
//!   beside the spare that took its work);
//! - unfences the fenced masters of a role when a daemon of that role fails in turn (they are
//!   the role's only reserve then), or on a switchover request.
//!
//! A pod deleted by a rollout (made from another pod template than the one its Deployment wants
//! now: a new configuration, image, resources...) is a planned restart, not a failure; so is a
//! daemon without a pod while its Deployment rolls out. `kubectl rollout restart` keeps the
//! template the operator wrote, so it counts as a failure: the spare takes over, as when a node
//! goes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::crd::ShinkenCluster;
use crate::desired::instances;
use crate::layout::{ANNOTATION_TEMPLATE_HASH, LABEL_DAEMON};

/// A daemon whose pod failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub daemon: String,
    pub role: &'static str,
    pub spare: bool,
    /// The failed pod (none: the daemon's pod is gone).
    pub pod: Option<String>,
    /// Why, in words for the arbiter's log, the Event and the status.
    pub reason: String,
}

impl Failure {
    /// What identifies this failure, so it is signalled once: the daemon and its pod.
    pub fn key(&self) -> (String, String) {
        (self.daemon.clone(), self.pod.clone().unwrap_or_else(|| self.reason.clone()))
    }
}

/// What a reconcile knows of a daemon besides its pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The pod-template hash its Deployment wants now: a pod made from another template is being
    /// replaced by a rollout (new configuration, image, resources...), not failing.
    pub template: Option<String>,
    /// Its Deployment is rolling out (a new generation not observed yet, or not updated yet):
    /// having no pod for a moment is expected.
    pub rolling: bool,
    /// The pod the status showed last (a daemon that had one and has none now is gone).
    pub last_pod: Option<String>,
}

/// Why a pod counts as failed, if it does. `current_template` is the pod-template hash its
/// Deployment wants now.
pub fn pod_failure(pod: &Pod, current_template: Option<&str>, now: Timestamp, grace_seconds: i64) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let template = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_TEMPLATE_HASH))
        .map(String::as_str);
    let planned = matches!((template, current_template), (Some(t), Some(c)) if t != c);
    if pod.metadata.deletion_timestamp.is_some() {
        return (!planned).then(|| format!("pod {name} is being deleted"));
    }
    let status = pod.status.as_ref()?;
    if status.reason.as_deref() == Some("Evicted") {
        return Some(format!(
            "pod {name} was evicted: {}",
            status.message.as_deref().unwrap_or("no message")
        ));
    }
    if status.phase.as_deref() == Some("Failed") {
        return Some(format!(
            "pod {name} failed: {}",
            status.message.as_deref().or(status.reason.as_deref()).unwrap_or("no message")
        ));
    }
    for c in status.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && w.reason.as_deref() == Some("CrashLoopBackOff")
        {
            return Some(format!("pod {name} is crash-looping ({} restarts)", c.restart_count));
        }
    }
    let ready = status.conditions.iter().flatten().find(|c| c.type_ == "Ready")?;
    if ready.status == "True" {
        return None;
    }
    // Not Ready counts only for a daemon that runs: a pod still pulling its image or starting
    // is not a daemon that failed (its spare holds the work meanwhile, if it had any).
    let running = status
        .container_statuses
        .iter()
        .flatten()
        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
    if !running {
        return None;
    }
    let since = ready
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or(status.start_time.as_ref().map(|t| t.0))?;
    let for_seconds = now.as_second() - since.as_second();
    (for_seconds > grace_seconds).then(|| format!("pod {name} not Ready for {for_seconds} s (grace {grace_seconds} s)"))
}

/// The failed daemons of a cluster.
pub fn failures(cluster: &ShinkenCluster, pods: &[Pod], known: &BTreeMap<String, Known>, now: Timestamp) -> Vec<Failure> {
    let grace = i64::from(cluster.spec.failover.pod_failure_grace_seconds);
    let fenced = fenced(cluster);
    let nothing = Known::default();
    let mut out = Vec::new();
    for inst in instances(cluster) {
        if fenced.contains(&inst.name) {
            continue;
        }
        let k = known.get(&inst.name).unwrap_or(&nothing);
        let current = k.template.as_deref();
        let mine: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get(LABEL_DAEMON)) == Some(&inst.name))
            .collect();
        let failure = |pod: Option<String>, reason: String| Failure {
            daemon: inst.name.clone(),
            role: inst.role,
            spare: inst.spare,
            pod,
            reason,
        };
        if mine.is_empty() {
            if let (Some(last), false) = (&k.last_pod, k.rolling) {
                out.push(failure(
                    None,
                    format!("daemon {} has no pod any more (its pod {last} is gone)", inst.name),
                ));
            }
            continue;
        }
        // A pod being deleted stops the daemon's process even when its replacement already runs:
        // that is the fast signal. Otherwise only the newest pod counts (an evicted pod object
        // lingers long after its replacement is fine).
        let newest = mine
            .iter()
            .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .expect("not empty");
        let deleting = mine
            .iter()
            .find(|p| p.metadata.deletion_timestamp.is_some() && pod_failure(p, current, now, grace).is_some());
        if let Some(p) = deleting.or(Some(newest))
            && let Some(reason) = pod_failure(p, current, now, grace)
        {
            out.push(failure(p.metadata.name.clone(), reason));
        }
    }
    out
}

/// The masters fenced now.
pub fn fenced(cluster: &ShinkenCluster) -> BTreeSet<String> {
    cluster
        .status
        .as_ref()
        .map(|s| s.fenced.iter().cloned().collect())
        .unwrap_or_default()
}

/// What to do about the failures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Failures to tell the arbiter about (not signalled before).
    pub signal: Vec<Failure>,
    /// Masters to fence.
    pub fence: Vec<String>,
    /// Fenced masters to bring back.
    pub unfence: Vec<String>,
}

/// Decides. `signalled` holds the failures already told (see [`Failure::key`]).
pub fn plan(cluster: &ShinkenCluster, failures: &[Failure], signalled: &BTreeSet<(String, String)>) -> Plan {
    let fenced = fenced(cluster);
    let mut plan = Plan::default();
    for f in failures {
        if signalled.contains(&f.key()) {
            continue;
        }
        plan.signal.push(f.clone());
        if !f.spare {
            plan.fence.push(f.daemon.clone());
        }
        // The role's fenced masters are its reserve now that another of its daemons failed.
        for inst in instances(cluster) {
            if inst.role == f.role && inst.name != f.daemon && fenced.contains(&inst.name) && !plan.unfence.contains(&inst.name) {
                plan.unfence.push(inst.name.clone());
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerStateRunning;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cluster(fenced: &[&str]) -> ShinkenCluster {
        let mut c = ShinkenCluster::new("prod", serde_json::from_value(serde_json::json!({ "image": "i" })).unwrap());
        c.status = Some(crate::crd::ShinkenClusterStatus {
            fenced: fenced.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        c
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn pod(name: &str, daemon: &str, hash: &str, ready: bool, since: i64) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.labels = Some(BTreeMap::from([(LABEL_DAEMON.to_string(), daemon.to_string())]));
        p.metadata.annotations = Some(BTreeMap::from([(ANNOTATION_TEMPLATE_HASH.to_string(), hash.to_string())]));
        p.metadata.creation_timestamp = Some(Time(t(since)));
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            start_time: Some(Time(t(since))),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(t(since))),
                ..Default::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "shinken".into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn known(entries: &[(&str, Option<&str>, bool)]) -> BTreeMap<String, Known> {
        entries
            .iter()
            .map(|(d, last, rolling)| {
                (
                    d.to_string(),
                    Known {
                        template: Some("h".into()),
                        rolling: *rolling,
                        last_pod: last.map(str::to_string),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_ready_pod_is_fine_and_a_not_ready_one_fails_after_the_grace() {
        let p = pod("p", "scheduler-0", "h", true, 0);
        assert_eq!(pod_failure(&p, Some("h"), t(100), 10), None);
        let p = pod("p", "scheduler-0", "h", false, 0);
        assert_eq!(pod_failure(&p, Some("h"), t(10), 10), None);
        assert_eq!(
            pod_failure(&p, Some("h"), t(11), 10).unwrap(),
            "pod p not Ready for 11 s (grace 10 s)"
        );
    }

    #[test]
    fn deleted_evicted_and_crash_looping_pods_fail_at_once() {
        let mut p = pod("p", "scheduler-0", "h", true, 0);
        p.metadata.deletion_timestamp = Some(Time(t(1)));
        assert_eq!(pod_failure(&p, Some("h"), t(1), 10).unwrap(), "pod p is being deleted");
        // The same deletion by a rollout of a new configuration is planned.
        assert_eq!(pod_failure(&p, Some("new"), t(1), 10), None);

        let mut p = pod("p", "scheduler-0", "h", false, 0);
        let s = p.status.as_mut().unwrap();
        s.phase = Some("Failed".into());
        s.reason = Some("Evicted".into());
        s.message = Some("The node was low on resource: memory.".into());
        assert_eq!(
            pod_failure(&p, Some("h"), t(1), 10).unwrap(),
            "pod p was evicted: The node was low on resource: memory."
        );

        let mut p = pod("p", "scheduler-0", "h", false, 0);
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "shinken".into(),
            restart_count: 4,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        assert_eq!(pod_failure(&p, Some("h"), t(1), 10).unwrap(), "pod p is crash-looping (4 restarts)");
    }

    #[test]
    fn a_master_failure_is_signalled_once_and_fenced() {
        let c = cluster(&[]);
        let mut p = pod("prod-scheduler-0-abc", "scheduler-0", "h", true, 0);
        p.metadata.deletion_timestamp = Some(Time(t(5)));
        let f = failures(&c, &[p], &known(&[]), t(5));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].daemon.as_str(), f[0].spare), ("scheduler-0", false));
        let p1 = plan(&c, &f, &BTreeSet::new());
        assert_eq!(p1.fence, vec!["scheduler-0".to_string()]);
        assert_eq!(p1.signal.len(), 1);
        let done = BTreeSet::from([f[0].key()]);
        assert_eq!(plan(&c, &f, &done), Plan::default());
    }

    #[test]
    fn a_vanished_pod_counts_only_if_the_daemon_had_one() {
        let c = cluster(&[]);
        assert!(failures(&c, &[], &known(&[]), t(0)).is_empty());
        // Mid-rollout, having no pod for a moment is expected.
        assert!(failures(&c, &[], &known(&[("broker-spare-0", Some("old-pod"), true)]), t(0)).is_empty());
        let f = failures(&c, &[], &known(&[("broker-spare-0", Some("old-pod"), false)]), t(0));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].reason, "daemon broker-spare-0 has no pod any more (its pod old-pod is gone)");
        // A spare is signalled but never fenced.
        assert!(plan(&c, &f, &BTreeSet::new()).fence.is_empty());
    }

    #[test]
    fn fenced_masters_return_when_the_spare_fails_in_turn() {
        let c = cluster(&["scheduler-0"]);
        let mut p = pod("prod-scheduler-spare-0-x", "scheduler-spare-0", "h", true, 0);
        p.metadata.deletion_timestamp = Some(Time(t(1)));
        // The fenced master has no pod (replicas 0): not a failure.
        let f = failures(&c, &[p], &known(&[("scheduler-0", Some("gone"), false)]), t(1));
        assert_eq!(f.len(), 1);
        let pl = plan(&c, &f, &BTreeSet::new());
        assert_eq!(pl.unfence, vec!["scheduler-0".to_string()]);
        assert!(pl.fence.is_empty());
    }

    #[test]
    fn a_lingering_evicted_pod_does_not_count_once_replaced_but_a_deletion_does() {
        let c = cluster(&[]);
        let mut old = pod("old", "poller-0", "h", false, 0);
        old.status.as_mut().unwrap().reason = Some("Evicted".into());
        let new = pod("new", "poller-0", "h", true, 20);
        assert!(failures(&c, &[old.clone(), new.clone()], &known(&[]), t(30)).is_empty());
        let mut deleting = pod("old", "poller-0", "h", true, 0);
        deleting.metadata.deletion_timestamp = Some(Time(t(30)));
        let f = failures(&c, &[deleting, new], &known(&[]), t(30));
        assert_eq!(f[0].pod.as_deref(), Some("old"));
    }

    #[test]
    fn a_pod_still_starting_is_not_a_failure() {
        let mut p = pod("p", "scheduler-0", "h", false, 0);
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "shinken".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        assert_eq!(pod_failure(&p, Some("h"), t(600), 10), None);
    }
}
