//! The receiver: holds its configuration and answers the common endpoints. Its external-command
//! features (passive results, `push_host_names`, direct routing) come later; its status shows the
//! schedulers it would route to.

use crate::messages::SatelliteConf;
use tracing::info;

/// A receiver's own state (none yet beyond the configuration the frame holds).
#[derive(Debug)]
pub struct Receiver {
    me: String,
}

impl Receiver {
    pub fn new(me: String) -> Receiver {
        Receiver { me }
    }

    pub fn apply(&self, conf: Option<&SatelliteConf>) {
        for link in conf.iter().flat_map(|c| c.schedulers.iter()) {
            info!("[{}] Scheduler {} (part {}) at {}", self.me, link.name, link.part_id, link.url);
        }
    }

    /// `GET /v1/status`: the scheduler links of the configuration held.
    pub fn status(&self, conf: Option<&SatelliteConf>) -> serde_json::Value {
        let schedulers: Vec<serde_json::Value> = conf
            .iter()
            .flat_map(|c| c.schedulers.iter())
            .map(|l| serde_json::json!({ "name": l.name, "part_id": l.part_id, "epoch": l.epoch, "url": l.url }))
            .collect();
        serde_json::json!({ "schedulers": schedulers })
    }
}
