//! The broker's live view, pure: the latest state of every host and service and the last lines
//! of the monitoring log, built from broks (semantics reference, 3.10).
//!
//! - `initial_host_status`, `initial_service_status`, `host_check_result`,
//!   `service_check_result`: their `data` is an [`ItemStatus`]; the latest one per host and per
//!   (host, service) is kept;
//! - `log`: `data.log` is a monitoring-log line; the last [`LOG_LINES`] are kept;
//! - `program_status` starts a scheduler's full set of initial broks: what the view held from
//!   that scheduler is dropped first, so hosts it no longer owns disappear;
//! - other types are counted and ignored.
//!
//! The web UI, metrics and the monitoring log file will read the same view.

use crate::messages::{Brok, ItemStatus, SchedulerStatus};
use std::collections::{BTreeMap, VecDeque};

/// Monitoring-log lines kept.
pub const LOG_LINES: usize = 1000;

#[derive(Debug, Default, Clone)]
pub struct LiveView {
    hosts: BTreeMap<String, ItemStatus>,
    services: BTreeMap<(String, String), ItemStatus>,
    logs: VecDeque<String>,
    /// Broks applied, by type (for metrics and debugging).
    counts: BTreeMap<String, u64>,
}

impl LiveView {
    pub fn new() -> LiveView {
        LiveView::default()
    }

    /// Applies one brok received from scheduler `scheduler`.
    pub fn apply(&mut self, scheduler: &str, brok: &Brok) {
        *self.counts.entry(brok.kind.clone()).or_default() += 1;
        match brok.kind.as_str() {
            "program_status" => {
                let name = brok.data.get("scheduler").and_then(|s| s.as_str()).unwrap_or(scheduler);
                self.forget_scheduler(name);
            }
            "initial_host_status" | "initial_service_status" | "host_check_result" | "service_check_result" => {
                if let Ok(status) = serde_json::from_value::<ItemStatus>(brok.data.clone()) {
                    self.set(status);
                }
            }
            "log" => {
                if let Some(line) = brok.data.get("log").and_then(|l| l.as_str()) {
                    if self.logs.len() >= LOG_LINES {
                        self.logs.pop_front();
                    }
                    self.logs.push_back(line.to_string());
                }
            }
            _ => {}
        }
    }

    /// Keeps `status` as the latest state of its host or service.
    pub fn set(&mut self, status: ItemStatus) {
        match &status.service_description {
            Some(d) => {
                self.services.insert((status.host_name.clone(), d.clone()), status);
            }
            None => {
                self.hosts.insert(status.host_name.clone(), status);
            }
        }
    }

    /// Drops every host and service that came from `scheduler`.
    pub fn forget_scheduler(&mut self, scheduler: &str) {
        self.hosts.retain(|_, s| s.scheduler != scheduler);
        self.services.retain(|_, s| s.scheduler != scheduler);
    }

    pub fn host(&self, name: &str) -> Option<&ItemStatus> {
        self.hosts.get(name)
    }

    pub fn service(&self, host: &str, description: &str) -> Option<&ItemStatus> {
        self.services.get(&(host.to_string(), description.to_string()))
    }

    /// The monitoring log, oldest first.
    pub fn logs(&self) -> Vec<String> {
        self.logs.iter().cloned().collect()
    }

    /// Broks applied, by type.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Every host and service, as a scheduler's status shows them (sorted by name).
    pub fn status(&self, name: &str, epoch: u64) -> SchedulerStatus {
        SchedulerStatus {
            name: name.to_string(),
            part_id: None,
            epoch,
            hosts: self.hosts.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item status as a scheduler's brok carries it (JSON, so new optional fields do not
    /// break the test).
    fn item(host: &str, svc: Option<&str>, state: &str, sched: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "host_name": host, "state": state, "state_type": "HARD", "attempt": 1,
            "max_check_attempts": 2, "last_check": 1.0, "output": "", "acknowledged": false,
            "in_downtime": false, "scheduler": sched,
        });
        if let Some(d) = svc {
            v["service_description"] = d.into();
        }
        assert!(serde_json::from_value::<ItemStatus>(v.clone()).is_ok());
        v
    }

    fn brok(kind: &str, data: serde_json::Value) -> Brok {
        Brok {
            id: 0,
            kind: kind.into(),
            data,
        }
    }

    #[test]
    fn keeps_the_latest_state_and_the_last_log_lines() {
        let mut v = LiveView::new();
        v.apply("s1", &brok("initial_host_status", item("h", None, "UP", "s1")));
        v.apply("s1", &brok("initial_service_status", item("h", Some("a"), "OK", "s1")));
        v.apply("s1", &brok("service_check_result", item("h", Some("a"), "CRITICAL", "s1")));
        v.apply("s1", &brok("unknown_kind", serde_json::json!({})));
        assert_eq!(v.service("h", "a").unwrap().state, "CRITICAL");
        assert_eq!(v.host("h").unwrap().state, "UP");
        for i in 0..LOG_LINES + 5 {
            v.apply("s1", &brok("log", serde_json::json!({ "log": format!("line {i}") })));
        }
        let logs = v.logs();
        assert_eq!(logs.len(), LOG_LINES);
        assert_eq!(logs.last().unwrap(), &format!("line {}", LOG_LINES + 4));
        assert_eq!(v.counts()["log"], (LOG_LINES + 5) as u64);
    }

    #[test]
    fn initial_broks_replace_what_a_scheduler_showed() {
        let mut v = LiveView::new();
        v.apply("s1", &brok("initial_host_status", item("gone", None, "UP", "s1")));
        v.apply("s2", &brok("initial_host_status", item("other", None, "UP", "s2")));
        v.apply("s1", &brok("program_status", serde_json::json!({ "scheduler": "s1" })));
        v.apply("s1", &brok("initial_host_status", item("kept", None, "DOWN", "s1")));
        let st = v.status("b", 3);
        let names: Vec<&str> = st.hosts.iter().map(|h| h.host_name.as_str()).collect();
        assert_eq!(names, ["kept", "other"]);
        assert_eq!(st.epoch, 3);
    }
}
