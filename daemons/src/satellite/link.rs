//! What every satellite loop towards a scheduler shares: the link's client, the connection-state
//! logging (once per change of state, never every loop) and the back-off between failed attempts.

use crate::messages::SchedulerLink;
use crate::protocol::{CallError, Client, Token};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// First wait after a failure; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two attempts to reach a scheduler (Shinken re-tries about every 5 s).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The client of a link: `timeout` bounds short calls, `data_timeout` long ones (0 read as 1 s).
pub fn client(link: &SchedulerLink, token: &Token) -> Result<Client, CallError> {
    Client::new(
        &link.url,
        token.clone(),
        Duration::from_secs(link.timeout.max(1) as u64),
        Duration::from_secs(link.data_timeout.max(1) as u64),
    )
}

/// Whether two links need another client (the address or a timeout changed).
pub fn same_client(a: &SchedulerLink, b: &SchedulerLink) -> bool {
    a.url == b.url && a.timeout == b.timeout && a.data_timeout == b.data_timeout
}

/// Whether an error means the scheduler could not be reached (the connection must be
/// re-initialised), rather than an answer refusing the call.
pub fn unreachable(e: &CallError) -> bool {
    !matches!(e, CallError::Status { .. } | CallError::Decode { .. } | CallError::Request { .. })
}

/// The connection state of one loop, for its logs and its back-off.
#[derive(Debug)]
pub struct ConnLog {
    /// This satellite's name, prefixed to every line.
    me: String,
    /// Whether a failure was reported and no success since: later failures stay quiet.
    failing: bool,
    /// Whether "Init connection" was logged for the current attempt series.
    announced: bool,
    /// The next wait after a failure.
    backoff: Duration,
}

impl ConnLog {
    pub fn new(me: &str) -> ConnLog {
        ConnLog {
            me: me.to_string(),
            failing: false,
            announced: false,
            backoff: MIN_BACKOFF,
        }
    }

    /// Before asking a scheduler its running id.
    pub fn connecting(&mut self, link: &SchedulerLink) {
        if !self.announced {
            info!("[{}] Init connection with {} at {}", self.me, link.name, link.url);
            self.announced = true;
        } else {
            debug!("[{}] Init connection with {} at {}", self.me, link.name, link.url);
        }
    }

    /// The connection is (re)established.
    pub fn connected(&mut self, link: &SchedulerLink) {
        info!("[{}] Connection OK with scheduler {}", self.me, link.name);
        self.failing = false;
        self.backoff = MIN_BACKOFF;
    }

    /// A call succeeded: the next failure is reported again.
    pub fn succeeded(&mut self, link: &SchedulerLink) {
        if self.failing {
            info!("[{}] Calls to scheduler {} succeed again", self.me, link.name);
        }
        self.failing = false;
        self.backoff = MIN_BACKOFF;
    }

    /// A call failed: logs `message` once per change of state; returns how long to wait.
    pub fn failed(&mut self, message: &str) -> Duration {
        if !self.failing {
            warn!("[{}] {message}", self.me);
            self.failing = true;
        } else {
            debug!("[{}] {message}", self.me);
        }
        self.announced = false;
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        wait
    }

    /// Re-announce the next connection attempt (after a deliberate reset).
    pub fn reset(&mut self) {
        self.announced = false;
    }
}

/// Sleeps `d`; true when `stop` fired (or its sender is gone) meanwhile.
pub async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_and_resets() {
        let link = SchedulerLink {
            part_id: 0,
            epoch: 1,
            name: "s".into(),
            url: "http://127.0.0.1:1".into(),
            timeout: 3,
            data_timeout: 120,
        };
        let mut c = ConnLog::new("p");
        let waits: Vec<Duration> = (0..6).map(|_| c.failed("x")).collect();
        assert_eq!(waits[0], MIN_BACKOFF);
        assert_eq!(waits[1], MIN_BACKOFF * 2);
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        c.connected(&link);
        assert_eq!(c.failed("x"), MIN_BACKOFF);
    }

    #[test]
    fn refusals_are_not_unreachability() {
        let refused = CallError::Status {
            url: "u".into(),
            code: 409,
            body: "no".into(),
        };
        let down = CallError::Connect {
            url: "u".into(),
            reason: "connection refused".into(),
        };
        assert!(!unreachable(&refused));
        assert!(unreachable(&down));
    }
}
