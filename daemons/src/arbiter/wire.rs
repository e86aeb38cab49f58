//! The bodies of the arbiter-to-arbiter calls and of the switchover command.
//!
//! Endpoint names and directions are Shinken's (semantics reference, 1.3 and 2.9): the master
//! arbiter calls every other arbiter about once a second with `GET /v1/have_conf?magic_hash=H`,
//! `POST /v1/put_conf` (the whole configuration, when `have_conf` said false) and
//! `GET /v1/do_not_run`. Shinken pickles its whole `Config` object; here the configuration
//! travels as resolved cfg text that the receiving arbiter reads with the same parser.

use serde::{Deserialize, Serialize};

/// `GET /v1/have_conf` arguments. Without `magic_hash` the answer is false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaveConfQuery {
    #[serde(default)]
    pub magic_hash: Option<String>,
}

/// `POST /v1/put_conf` from the master arbiter to another arbiter: the configuration it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArbiterConf {
    /// The sending arbiter, for logs.
    pub from: String,
    /// The identity of this configuration, as `have_conf` compares it.
    pub magic_hash: String,
    /// The sender's highest epoch: the receiver's epochs start above it.
    pub epoch: u64,
    /// The whole resolved configuration (daemons, realms, modules, objects, main parameters) as
    /// cfg text; see `arbiter::whole_cfg`.
    pub cfg: String,
}

/// `GET /v1/do_not_run` arguments: who speaks, and its highest epoch (both optional, for logs
/// and for the receiver's epoch counter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoNotRunQuery {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub epoch: Option<u64>,
}

/// `POST /v1/switchover`: move the part that scheduler `daemon` holds to scheduler `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRequest {
    pub daemon: String,
    pub to: String,
}

/// The answer to a switchover that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverReply {
    pub part: u32,
    pub realm: String,
    pub from: String,
    pub to: String,
    /// The epoch the part now runs with on `to`.
    pub epoch: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_optional() {
        let q: HaveConfQuery = serde_json::from_str("{}").unwrap();
        assert!(q.magic_hash.is_none());
        let q: DoNotRunQuery = serde_json::from_str(r#"{"from":"a","epoch":7}"#).unwrap();
        assert_eq!((q.from.as_deref(), q.epoch), (Some("a"), Some(7)));
    }
}
