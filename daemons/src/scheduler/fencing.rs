//! Self-fencing (DESIGN.md, "Fencing"): a scheduler that holds a part but hears from no arbiter
//! for longer than the arbiter's takeover window for it stops acting on the part, because a spare
//! may hold it by now. So does one whose retention write is refused as stale: a newer epoch, so a
//! newer scheduler, holds the part.
//!
//! [`Fencing`] is the pure timer (time is an argument); the daemon calls [`Fencing::heard`] when
//! an arbiter calls it, [`Fencing::check`] before acting on the part, [`Fencing::stale`] when the
//! store refused a write of the part's epoch. [`WatchedStore`] is the retention store as the
//! write-behind sees it, reporting such refusals.

use crate::retention::{self, Record, RetentionStore, SaveOutcome};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why the scheduler stopped acting on its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// No arbiter call for longer than the window: lifted when an arbiter speaks again.
    Silence,
    /// A retention write of the part's epoch was refused: a newer scheduler holds the part;
    /// lifted only by a new part (`put_conf`) or dropping it (`wait_new_conf`).
    StaleEpoch,
}

#[derive(Debug, Clone, PartialEq)]
struct Fence {
    since: f64,
    cause: Cause,
    reason: String,
    part_id: u32,
    epoch: u64,
}

/// `GET /v1/fencing`, and the `fencing` field of the scheduler's `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FencingStatus {
    pub fenced: bool,
    /// Unix seconds.
    pub since: Option<f64>,
    pub reason: Option<String>,
    pub cause: Option<Cause>,
    /// Seconds of arbiter silence tolerated.
    pub window: f64,
    /// Unix seconds of the last arbiter call.
    pub last_arbiter_contact: Option<f64>,
}

/// The fencing timer of one scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct Fencing {
    window: f64,
    last_heard: Option<f64>,
    fence: Option<Fence>,
}

impl Fencing {
    /// The window of a scheduler defined with `check_interval` and `max_check_attempts`: the
    /// arbiter's takeover window for it (`check_interval x max_check_attempts`) plus one
    /// `check_interval` of margin (each at least 1).
    pub fn window_for(check_interval: u32, max_check_attempts: u32) -> f64 {
        let ci = f64::from(check_interval.max(1));
        ci * f64::from(max_check_attempts.max(1)) + ci
    }

    pub fn new(window: f64) -> Fencing {
        Fencing {
            window,
            last_heard: None,
            fence: None,
        }
    }

    pub fn window(&self) -> f64 {
        self.window
    }

    pub fn is_fenced(&self) -> bool {
        self.fence.is_some()
    }

    /// Why it is fenced (none when acting).
    pub fn reason(&self) -> Option<&str> {
        self.fence.as_ref().map(|f| f.reason.as_str())
    }

    /// An arbiter called. Lifts a silence fence (returns the line to log); a stale-epoch fence
    /// stays.
    pub fn heard(&mut self, now: f64) -> Option<String> {
        self.last_heard = Some(now);
        match &self.fence {
            Some(f) if f.cause == Cause::Silence => {
                let line = format!(
                    "An arbiter spoke to me again: I act on part {} (epoch {}) again, after {:.0} s fenced",
                    f.part_id,
                    f.epoch,
                    now - f.since
                );
                self.fence = None;
                Some(line)
            }
            _ => None,
        }
    }

    /// A new part was loaded (an arbiter gave it): acting on it, whatever fenced the old one.
    pub fn part_loaded(&mut self, now: f64) -> Option<String> {
        self.last_heard = Some(now);
        self.fence
            .take()
            .map(|f| format!("New part received: the fence on part {} (epoch {}) is lifted", f.part_id, f.epoch))
    }

    /// The part was dropped: nothing left to fence.
    pub fn part_dropped(&mut self) {
        self.fence = None;
    }

    /// Before acting on `part` (id, epoch; none when holding nothing): fences it when no arbiter
    /// spoke for longer than the window. Returns the line to log when it fences now.
    pub fn check(&mut self, now: f64, part: Option<(u32, u64)>) -> Option<String> {
        let (part_id, epoch) = part?;
        if self.fence.is_some() {
            return None;
        }
        let Some(last) = self.last_heard else {
            // Holding a part without having heard anyone (not through put_conf): start counting.
            self.last_heard = Some(now);
            return None;
        };
        let silent = now - last;
        if silent <= self.window {
            return None;
        }
        let line = format!(
            "No arbiter has spoken to me for {silent:.0} s (window {:.0} s): I stop acting on part {part_id} (epoch {epoch}) until one does",
            self.window
        );
        self.fence = Some(Fence {
            since: now,
            cause: Cause::Silence,
            reason: format!(
                "no arbiter has spoken to me for {silent:.0} s (window {:.0} s): not acting on part {part_id} (epoch {epoch})",
                self.window
            ),
            part_id,
            epoch,
        });
        Some(line)
    }

    /// The store refused a write of `part`'s epoch (`key` is a refused record): a newer
    /// scheduler holds the part. Fences at once; returns the line to log when it fences now.
    pub fn stale(&mut self, now: f64, part: (u32, u64), key: &str) -> Option<String> {
        if self.fence.as_ref().is_some_and(|f| f.cause == Cause::StaleEpoch) {
            return None;
        }
        let (part_id, epoch) = part;
        let reason = format!(
            "a newer epoch holds the retention of '{key}': a newer scheduler holds part {part_id}; not acting on it (epoch {epoch})"
        );
        self.fence = Some(Fence {
            since: now,
            cause: Cause::StaleEpoch,
            reason: reason.clone(),
            part_id,
            epoch,
        });
        Some(format!(
            "Retention refused my write of '{key}' (a newer epoch holds it): I stop acting on part {part_id} (epoch {epoch}) \
             until an arbiter gives me a part"
        ))
    }

    pub fn status(&self) -> FencingStatus {
        FencingStatus {
            fenced: self.fence.is_some(),
            since: self.fence.as_ref().map(|f| f.since),
            reason: self.fence.as_ref().map(|f| f.reason.clone()),
            cause: self.fence.as_ref().map(|f| f.cause),
            window: self.window,
            last_arbiter_contact: self.last_heard,
        }
    }
}

/// The highest epoch whose write the store refused as stale, with one refused key.
#[derive(Debug, Default)]
pub struct StaleSignal(Mutex<Option<(u64, String)>>);

impl StaleSignal {
    pub fn get(&self) -> Option<(u64, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn raise(&self, epoch: u64, key: &str) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_none_or(|(e, _)| *e < epoch) {
            *g = Some((epoch, key.to_string()));
        }
    }
}

/// A retention store that reports the epochs of refused writes to a [`StaleSignal`].
pub struct WatchedStore<S> {
    pub inner: Arc<S>,
    pub signal: Arc<StaleSignal>,
}

impl<S: RetentionStore> RetentionStore for WatchedStore<S> {
    async fn load(&self, keys: &[String]) -> retention::Result<HashMap<String, Record>> {
        self.inner.load(keys).await
    }

    async fn save(&self, records: Vec<Record>, epoch: u64) -> retention::Result<SaveOutcome> {
        let outcome = self.inner.save(records, epoch).await?;
        if let Some(key) = outcome.refused_stale.first() {
            self.signal.raise(epoch, key);
        }
        Ok(outcome)
    }

    async fn bump_epoch(&self, at_least: u64) -> retention::Result<u64> {
        self.inner.bump_epoch(at_least).await
    }

    async fn current_epoch(&self) -> retention::Result<u64> {
        self.inner.current_epoch().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 1_700_000_000.0;

    #[test]
    fn the_window_is_the_takeover_window_plus_one_interval() {
        assert_eq!(Fencing::window_for(1, 2), 3.0);
        assert_eq!(Fencing::window_for(60, 3), 240.0);
        assert_eq!(Fencing::window_for(0, 0), 2.0, "never a zero window");
    }

    #[test]
    fn silence_fences_once_and_an_arbiter_lifts_it() {
        let mut f = Fencing::new(3.0);
        assert_eq!(f.check(T, None), None, "nothing held, nothing to fence");
        assert!(f.part_loaded(T).is_none());
        assert_eq!(f.check(T + 3.0, Some((0, 7))), None, "at the window: still acting");
        let line = f.check(T + 3.5, Some((0, 7))).expect("fenced past the window");
        assert!(
            line.starts_with("No arbiter has spoken to me for 4 s (window 3 s): I stop acting on part 0 (epoch 7)"),
            "{line}"
        );
        assert!(f.is_fenced());
        assert_eq!(f.check(T + 10.0, Some((0, 7))), None, "logged once");
        let st = f.status();
        assert!(st.fenced && st.since == Some(T + 3.5) && st.cause == Some(Cause::Silence));
        assert!(st.reason.unwrap().contains("part 0"));
        let back = f.heard(T + 11.0).expect("resume line");
        assert!(back.contains("act on part 0 (epoch 7) again"), "{back}");
        assert!(!f.is_fenced());
        assert_eq!(f.check(T + 13.0, Some((0, 7))), None);
        assert!(f.check(T + 14.5, Some((0, 7))).is_some(), "the timer restarts at the last call");
    }

    #[test]
    fn calls_within_the_window_keep_it_acting() {
        let mut f = Fencing::new(3.0);
        f.part_loaded(T);
        for k in 1..20 {
            let t = T + k as f64 * 2.0;
            f.heard(t);
            assert_eq!(f.check(t + 2.9, Some((1, 1))), None);
        }
        assert!(!f.status().fenced);
    }

    #[test]
    fn a_stale_refusal_fences_at_once_and_only_a_new_part_lifts_it() {
        let mut f = Fencing::new(100.0);
        f.part_loaded(T);
        let line = f.stale(T + 1.0, (2, 5), "web/HTTP").unwrap();
        assert!(line.contains("I stop acting on part 2 (epoch 5)"), "{line}");
        assert!(f.stale(T + 2.0, (2, 5), "web/HTTP").is_none(), "logged once");
        assert_eq!(f.status().cause, Some(Cause::StaleEpoch));
        assert!(f.heard(T + 3.0).is_none());
        assert!(f.is_fenced(), "an arbiter's probe does not give the part back");
        assert!(f.part_loaded(T + 4.0).is_some());
        assert!(!f.is_fenced());
        f.stale(T + 5.0, (2, 6), "web").unwrap();
        f.part_dropped();
        assert!(!f.is_fenced());
    }
}
