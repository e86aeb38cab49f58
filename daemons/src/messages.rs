//! The request and response bodies of the inter-daemon API, defined once for every caller.
//!
//! Endpoint names, directions and arguments are Shinken's (semantics reference, 1.3 and 1.4),
//! under `/v1/`; bodies are JSON (DESIGN.md, "Wire"). A configuration part travels as cfg text
//! in the same language the daemons read, produced by the arbiter from resolved objects and read
//! back by the scheduler with the same parser.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every part a daemon holds: part id -> epoch (Shinken's `what_i_managed`, where the epoch is
/// the push flavor).
pub type Managed = BTreeMap<u32, u64>;

/// `GET /v1/get_running_id`: fixed for the life of a process, so a caller notices a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningId {
    pub running_id: String,
}

/// `POST /v1/put_conf` to a scheduler: one configuration part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerConf {
    /// The scheduler's own name, as the arbiter knows it.
    pub scheduler_name: String,
    pub part_id: u32,
    /// Grows with every dispatch of any part; a holder with an older epoch is stale.
    pub epoch: u64,
    pub realm: String,
    /// The part's objects and the global parameters, as cfg text.
    pub cfg: String,
    /// The arbiter that sent it, for logs.
    pub arbiter: String,
}

/// Where a satellite finds one scheduler part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerLink {
    pub part_id: u32,
    pub epoch: u64,
    pub name: String,
    /// `http://address:port`
    pub url: String,
    /// Seconds for short calls (ping).
    pub timeout: u32,
    /// Seconds for long calls (checks, results, broks).
    pub data_timeout: u32,
}

/// `POST /v1/put_conf` to a poller, reactionner, broker or receiver: who it is and which
/// schedulers to talk to (Shinken's satellite configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SatelliteConf {
    pub name: String,
    pub epoch: u64,
    pub schedulers: Vec<SchedulerLink>,
    /// Tags this satellite takes (empty: untagged work only).
    pub tags: Vec<String>,
    pub polling_interval: u32,
    pub max_workers: u32,
    pub processes_by_worker: u32,
    pub results_batch: u32,
    pub max_plugins_output_length: u32,
    pub arbiter: String,
}

/// `POST /v1/put_conf`: either kind, tagged so a daemon refuses the wrong one clearly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PutConf {
    Scheduler(SchedulerConf),
    Satellite(SatelliteConf),
}

/// `GET /v1/get_checks` query, as Shinken's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetChecks {
    /// A poller asks for checks.
    #[serde(default)]
    pub do_checks: bool,
    /// A reactionner asks for notifications and event handlers.
    #[serde(default)]
    pub do_actions: bool,
    /// Tags taken (exact match; empty means untagged work only).
    #[serde(default)]
    pub tags: Vec<String>,
    pub worker_name: String,
    /// At most this many (free slots of the asker); 0: no limit.
    #[serde(default)]
    pub max_actions: u32,
}

/// One check or action handed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub command_line: String,
    /// Seconds.
    pub timeout: u32,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// When it was due (Unix seconds), for latency.
    pub t_to_go: f64,
}

/// `GET /v1/get_checks` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Jobs {
    pub epoch: u64,
    pub jobs: Vec<Job>,
}

/// How a job ended, as the runner saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Done,
    Timeout,
}

/// One finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub id: u64,
    pub status: JobStatus,
    pub exit_status: u8,
    pub output: String,
    #[serde(default)]
    pub long_output: String,
    #[serde(default)]
    pub perf_data: String,
    pub start_time: f64,
    pub execution_time: f64,
}

/// `POST /v1/put_results` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutResults {
    pub worker_name: String,
    pub results: Vec<JobResult>,
}

/// `POST /v1/run_external_commands` to a scheduler: Nagios external command lines
/// (`[1700000000] ACKNOWLEDGE_SVC_PROBLEM;host;svc;1;1;0;admin;looking at it`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalCommands {
    pub commands: Vec<String>,
}

/// What became of one external command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub command: String,
    pub ok: bool,
    /// Why it was refused (malformed, unknown command, unknown host, wrong argument count...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An event for brokers (Shinken's brok): a type and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Brok {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: serde_json::Value,
}

/// `GET /v1/get_broks` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Broks {
    pub broks: Vec<Brok>,
}

/// A host or service as status reports show it (`shinken status`, the scheduler's and the
/// broker's `/v1/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemStatus {
    pub host_name: String,
    /// Absent for a host.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_description: Option<String>,
    pub state: String,
    pub state_type: String,
    pub attempt: u32,
    pub max_check_attempts: u32,
    /// Unix seconds, or null when never checked.
    pub last_check: Option<f64>,
    pub output: String,
    #[serde(default)]
    pub long_output: String,
    #[serde(default)]
    pub perf_data: String,
    pub acknowledged: bool,
    pub in_downtime: bool,
    pub scheduler: String,
}

/// `GET /v1/status` of a scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SchedulerStatus {
    pub name: String,
    pub part_id: Option<u32>,
    pub epoch: u64,
    pub hosts: Vec<ItemStatus>,
    pub services: Vec<ItemStatus>,
}

/// One daemon in the arbiter's `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub name: String,
    pub role: String,
    pub spare: bool,
    pub alive: bool,
    pub address: String,
    pub port: u16,
    pub realm: String,
    /// Part held and its epoch (schedulers), or parts served (satellites).
    pub parts: Managed,
}

/// `GET /v1/status` of an arbiter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ArbiterStatus {
    pub name: String,
    pub master: bool,
    pub epoch: u64,
    pub daemons: Vec<DaemonStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_conf_is_tagged() {
        let c = PutConf::Scheduler(SchedulerConf {
            scheduler_name: "s".into(),
            part_id: 0,
            epoch: 7,
            realm: "All".into(),
            cfg: "define host {\n host_name h\n}\n".into(),
            arbiter: "a".into(),
        });
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"kind\":\"scheduler\""), "{text}");
        assert_eq!(serde_json::from_str::<PutConf>(&text).unwrap(), c);
    }

    #[test]
    fn get_checks_defaults() {
        let q: GetChecks = serde_json::from_str(r#"{"worker_name":"p"}"#).unwrap();
        assert!(!q.do_checks && q.tags.is_empty() && q.max_actions == 0);
    }

    #[test]
    fn a_host_status_has_no_description() {
        let s = ItemStatus {
            host_name: "h".into(),
            service_description: None,
            state: "UP".into(),
            state_type: "HARD".into(),
            attempt: 1,
            max_check_attempts: 3,
            last_check: None,
            output: String::new(),
            long_output: String::new(),
            perf_data: String::new(),
            acknowledged: false,
            in_downtime: false,
            scheduler: "s".into(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("service_description").is_none());
        assert!(v["last_check"].is_null());
    }
}

/// What a receiver did with one external command (`POST /v1/run_external_commands` to a
/// receiver): accepted by which scheduler(s), or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedCommand {
    pub command: String,
    pub ok: bool,
    /// The schedulers that accepted it (one for a host's command; a command without host goes
    /// to every scheduler and is accepted by those that know what it names).
    #[serde(default)]
    pub schedulers: Vec<String>,
    /// Why it was refused: by the receiver (malformed, unknown command, wrong argument count,
    /// unknown host) or by the scheduler (its answer, relayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
