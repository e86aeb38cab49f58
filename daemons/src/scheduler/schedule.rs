//! When the next active check runs (semantics §3.3), and whether a passive result is stale (§3.4).
//!
//! Pure: the current time, the random draw and the check period come in as arguments. The check
//! period is a closure "next valid time at or after `t`" (`None`: never again); for an item
//! without `check_period` pass `|t| Some(t)`. With `shinken_config::timeperiod::Timeperiods` that
//! is `|t| periods.next_valid(name, t)`.

use super::state::{ItemKind, StateType};

/// A host whose `check_interval` is 0 is still checked every 300 seconds.
pub const HOST_ZERO_INTERVAL_SECS: f64 = 300.0;

/// What scheduling needs to know about one item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleInput {
    pub kind: ItemKind,
    pub state_type: StateType,
    /// `check_interval`, in `interval_length` units.
    pub check_interval: f64,
    /// `retry_interval`, in `interval_length` units (0: use `check_interval`).
    pub retry_interval: f64,
    /// Seconds per interval unit (default 60).
    pub interval_length: f64,
    /// `max_host_check_spread` / `max_service_check_spread`, in units (default 30).
    pub max_check_spread: f64,
    /// The planned time of the next check (`next_chk`); 0 = never scheduled.
    pub next_check: f64,
    pub active_checks_enabled: bool,
    /// Global `execute_host_checks` / `execute_service_checks`.
    pub execute_checks: bool,
    /// A check of this item is in progress.
    pub in_checking: bool,
    /// Forced check (external command, freshness): ignores the enable switches.
    pub force: bool,
    /// Forced time: the check goes exactly then (truncated to the second), period not consulted.
    pub force_time: Option<f64>,
}

impl ScheduleInput {
    /// Defaults of Shinken's configuration: interval_length 60, spread 30, checks enabled, never
    /// scheduled; the intervals are the caller's.
    pub fn new(kind: ItemKind, state_type: StateType, check_interval: f64, retry_interval: f64) -> ScheduleInput {
        ScheduleInput {
            kind,
            state_type,
            check_interval,
            retry_interval,
            interval_length: 60.0,
            max_check_spread: 30.0,
            next_check: 0.0,
            active_checks_enabled: true,
            execute_checks: true,
            in_checking: false,
            force: false,
            force_time: None,
        }
    }

    /// The effective check interval in seconds for the current state type: `retry_interval` while
    /// SOFT (unless 0), `check_interval` otherwise; `None` for a service with `check_interval` 0
    /// (never actively scheduled unless forced).
    pub fn interval_secs(&self) -> Option<f64> {
        let mut check_interval = self.check_interval;
        if check_interval == 0.0 && !self.force {
            match self.kind {
                ItemKind::Service => return None,
                ItemKind::Host => {
                    check_interval = if self.interval_length > 0.0 {
                        HOST_ZERO_INTERVAL_SECS / self.interval_length
                    } else {
                        HOST_ZERO_INTERVAL_SECS
                    }
                }
            }
        }
        let units = if self.state_type == StateType::Hard || self.retry_interval == 0.0 {
            check_interval
        } else {
            self.retry_interval
        };
        Some(units * self.interval_length)
    }
}

/// The time of the next active check (`schedule`), or `None` when no check is to be scheduled:
/// a check in progress (unless forced), active checks disabled for the item or globally (unless
/// forced), a service with `check_interval` 0, or no valid time left in the check period.
///
/// * first scheduling (`next_check == 0`): `now + rand01 × min(interval, spread)`, snapped;
/// * a planned time not in the future: `planned + interval`, snapped; if that is still in the
///   past (retention, long outage): `now + rand01 × min(interval, spread)`, snapped;
/// * a planned time in the future is kept as is.
///
/// `rand01` is a uniform draw in [0, 1] (clamped).
pub fn next_check_time(item: &ScheduleInput, now: f64, rand01: f64, period_next_valid: impl Fn(i64) -> Option<i64>) -> Option<f64> {
    if item.in_checking && !(item.force || item.force_time.is_some()) {
        return None;
    }
    if (!item.active_checks_enabled || !item.execute_checks) && !item.force {
        return None;
    }
    let interval = item.interval_secs()?;
    if let Some(t) = item.force_time {
        return Some(t.trunc());
    }
    let spread_add = interval.min(item.max_check_spread * item.interval_length) * rand01.clamp(0.0, 1.0);
    let snap = |t: f64| period_next_valid(t.trunc() as i64).map(|v| v as f64);

    let (planned, time_add) = if item.next_check == 0.0 {
        (now, spread_add)
    } else {
        (item.next_check, interval)
    };
    let mut next = Some(planned);
    if planned <= now {
        next = snap(planned + time_add);
    }
    // Still in the past (or no valid time from there): restart from now.
    if next.is_none_or(|n| n < now) {
        next = snap(now + spread_add);
    }
    next
}

/// Inputs of the freshness check for one passive item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FreshnessInput {
    /// The item's `check_freshness`.
    pub check_freshness: bool,
    /// The item's `freshness_threshold`, seconds (0 disables).
    pub freshness_threshold: f64,
    /// Global `check_host_freshness` / `check_service_freshness`.
    pub global_check_freshness: bool,
    pub passive_checks_enabled: bool,
    pub active_checks_enabled: bool,
    pub in_checking: bool,
    /// `now` is inside the item's check period (true when it has none).
    pub in_check_period: bool,
    pub last_state_update: f64,
    /// Global `additional_freshness_latency` (default 15 s).
    pub additional_freshness_latency: f64,
}

/// The passive results of the item are stale: force an immediate active check (`do_check_freshness`).
/// Only for passive-only items (passive enabled, active disabled) with freshness checking on, a
/// non-zero threshold, no check in progress and inside the check period; stale when
/// `last_state_update < now − (threshold + additional_freshness_latency)`.
pub fn is_stale(f: &FreshnessInput, now: f64) -> bool {
    f.global_check_freshness
        && f.check_freshness
        && f.freshness_threshold != 0.0
        && f.passive_checks_enabled
        && !f.active_checks_enabled
        && !f.in_checking
        && f.in_check_period
        && f.last_state_update < now - (f.freshness_threshold + f.additional_freshness_latency)
}

/// Seconds as Shinken's `Xd Xh Xm Xs`.
pub fn format_dhms(secs: i64) -> String {
    let (m, s) = (secs.div_euclid(60), secs.rem_euclid(60));
    let (h, m) = (m.div_euclid(60), m.rem_euclid(60));
    let (d, h) = (h.div_euclid(24), h.rem_euclid(24));
    format!("{d}d {h}h {m}m {s}s")
}

/// The warning logged when forcing a check of a stale item. `service` is `None` for a host.
pub fn stale_log_line(host: &str, service: Option<&str>, last_state_update: f64, freshness_threshold: f64, now: f64) -> String {
    let stale_by = format_dhms((now - last_state_update) as i64);
    let threshold = format_dhms(freshness_threshold as i64);
    match service {
        Some(svc) => format!(
            "The results of service '{svc}' on host '{host}' are stale by {stale_by} (threshold={threshold}).  \
             I'm forcing an immediate check of the service."
        ),
        None => format!(
            "The results of host '{host}' are stale by {stale_by} (threshold={threshold}).  I'm forcing an immediate check of the host."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000.0;

    fn always(t: i64) -> Option<i64> {
        Some(t)
    }

    fn svc(state_type: StateType) -> ScheduleInput {
        ScheduleInput::new(ItemKind::Service, state_type, 5.0, 1.0)
    }

    #[test]
    fn hard_uses_check_interval_soft_uses_retry_interval() {
        let mut hard = svc(StateType::Hard);
        hard.next_check = NOW;
        assert_eq!(next_check_time(&hard, NOW, 0.5, always), Some(NOW + 300.0));
        let mut soft = svc(StateType::Soft);
        soft.next_check = NOW;
        assert_eq!(next_check_time(&soft, NOW, 0.5, always), Some(NOW + 60.0));
        // retry_interval 0: check_interval even while SOFT.
        soft.retry_interval = 0.0;
        assert_eq!(next_check_time(&soft, NOW, 0.5, always), Some(NOW + 300.0));
    }

    #[test]
    fn soft_retries_are_spaced_by_retry_interval() {
        // The result came back 2 s after the planned time: the next retry is planned + 60.
        let mut soft = svc(StateType::Soft);
        soft.next_check = NOW - 2.0;
        assert_eq!(next_check_time(&soft, NOW, 0.9, always), Some(NOW + 58.0));
    }

    #[test]
    fn first_scheduling_spread_is_bounded() {
        // interval 300 s, spread 30 units = 1800 s: bounded by the interval.
        let first = svc(StateType::Hard);
        assert_eq!(next_check_time(&first, NOW, 0.0, always), Some(NOW));
        assert_eq!(next_check_time(&first, NOW, 1.0, always), Some(NOW + 300.0));
        assert_eq!(next_check_time(&first, NOW, 0.5, always), Some(NOW + 150.0));
        // spread 2 units = 120 s < interval: bounded by the spread.
        let mut small = first;
        small.max_check_spread = 2.0;
        assert_eq!(next_check_time(&small, NOW, 1.0, always), Some(NOW + 120.0));
        assert_eq!(next_check_time(&small, NOW, 7.0, always), Some(NOW + 120.0)); // clamped draw
    }

    #[test]
    fn future_planned_time_is_kept() {
        let mut item = svc(StateType::Hard);
        item.next_check = NOW + 42.5;
        assert_eq!(next_check_time(&item, NOW, 0.3, |_| None), Some(NOW + 42.5));
    }

    #[test]
    fn far_past_planned_time_restarts_from_now() {
        let mut item = svc(StateType::Hard);
        item.next_check = NOW - 10_000.0;
        assert_eq!(next_check_time(&item, NOW, 0.5, always), Some(NOW + 150.0));
        item.max_check_spread = 1.0;
        assert_eq!(next_check_time(&item, NOW, 0.5, always), Some(NOW + 30.0));
    }

    #[test]
    fn snapped_to_check_period() {
        // Period: working hours; "now" is 18:00, the next valid time is tomorrow 09:00.
        let day = 86_400_i64;
        let today = (NOW as i64).div_euclid(day) * day;
        let (nine, eighteen) = (9 * 3600, 18 * 3600);
        let period = |t: i64| {
            let d = t.div_euclid(day) * day;
            let sec = t - d;
            Some(if sec < nine {
                d + nine
            } else if sec >= eighteen {
                d + day + nine
            } else {
                t
            })
        };
        let now = (today + eighteen) as f64;
        let tomorrow_nine = (today + day + nine) as f64;
        let mut item = svc(StateType::Hard);
        item.next_check = now - 1.0;
        assert_eq!(next_check_time(&item, now, 0.5, period), Some(tomorrow_nine));
        let first = svc(StateType::Hard);
        assert_eq!(next_check_time(&first, now, 0.5, period), Some(tomorrow_nine));
        // Inside the period nothing moves.
        let noon = (today + 12 * 3600) as f64;
        item.next_check = noon;
        assert_eq!(next_check_time(&item, noon, 0.5, period), Some(noon + 300.0));
    }

    #[test]
    fn no_valid_time_means_no_check() {
        let mut item = svc(StateType::Hard);
        assert_eq!(next_check_time(&item, NOW, 0.5, |_| None), None);
        item.next_check = NOW - 5.0;
        assert_eq!(next_check_time(&item, NOW, 0.5, |_| None), None);
        // A period that only has a valid time before the computed one: falls back to now + spread.
        item.next_check = NOW;
        let limit = (NOW + 100.0) as i64;
        let period = move |t: i64| if t <= limit { Some(t) } else { None };
        assert_eq!(next_check_time(&item, NOW, 0.1, period), Some(NOW + 30.0));
    }

    #[test]
    fn service_with_zero_interval_is_never_scheduled() {
        let item = ScheduleInput::new(ItemKind::Service, StateType::Hard, 0.0, 1.0);
        assert_eq!(next_check_time(&item, NOW, 0.5, always), None);
        assert_eq!(item.interval_secs(), None);
    }

    #[test]
    fn host_with_zero_interval_runs_now_then_every_300s() {
        let mut item = ScheduleInput::new(ItemKind::Host, StateType::Hard, 0.0, 0.0);
        let first = next_check_time(&item, NOW, 0.0, always).unwrap();
        assert_eq!(first, NOW);
        item.next_check = first;
        assert_eq!(next_check_time(&item, NOW + 1.0, 0.7, always), Some(NOW + 300.0));
        item.interval_length = 10.0;
        assert_eq!(item.interval_secs(), Some(300.0));
    }

    #[test]
    fn disabled_checks_are_not_scheduled_unless_forced() {
        let mut item = svc(StateType::Hard);
        item.active_checks_enabled = false;
        assert_eq!(next_check_time(&item, NOW, 0.0, always), None);
        item.active_checks_enabled = true;
        item.execute_checks = false;
        assert_eq!(next_check_time(&item, NOW, 0.0, always), None);
        item.force = true;
        assert_eq!(next_check_time(&item, NOW, 0.0, always), Some(NOW));
    }

    #[test]
    fn in_checking_blocks_unless_forced() {
        let mut item = svc(StateType::Hard);
        item.in_checking = true;
        assert_eq!(next_check_time(&item, NOW, 0.0, always), None);
        item.force_time = Some(NOW + 12.9);
        assert_eq!(next_check_time(&item, NOW, 0.0, |_| None), Some(NOW + 12.0));
    }

    fn passive_only() -> FreshnessInput {
        FreshnessInput {
            check_freshness: true,
            freshness_threshold: 3600.0,
            global_check_freshness: true,
            passive_checks_enabled: true,
            active_checks_enabled: false,
            in_checking: false,
            in_check_period: true,
            last_state_update: NOW - 3615.0,
            additional_freshness_latency: 15.0,
        }
    }

    #[test]
    fn freshness() {
        let f = passive_only();
        // Exactly at threshold + latency: not yet stale.
        assert!(!is_stale(&f, NOW));
        assert!(is_stale(&f, NOW + 1.0));
        for off in [
            FreshnessInput {
                check_freshness: false,
                ..f
            },
            FreshnessInput {
                freshness_threshold: 0.0,
                ..f
            },
            FreshnessInput {
                global_check_freshness: false,
                ..f
            },
            FreshnessInput {
                passive_checks_enabled: false,
                ..f
            },
            FreshnessInput {
                active_checks_enabled: true,
                ..f
            },
            FreshnessInput { in_checking: true, ..f },
            FreshnessInput {
                in_check_period: false,
                ..f
            },
        ] {
            assert!(!is_stale(&off, NOW + 1.0), "{off:?}");
        }
    }

    #[test]
    fn freshness_log_line() {
        assert_eq!(format_dhms(90_061), "1d 1h 1m 1s");
        assert_eq!(
            stale_log_line("h", Some("s"), NOW - 3700.0, 3600.0, NOW),
            "The results of service 's' on host 'h' are stale by 0d 1h 1m 40s (threshold=0d 1h 0m 0s).  \
             I'm forcing an immediate check of the service."
        );
        assert_eq!(
            stale_log_line("h", None, NOW - 58.0, 30.0, NOW),
            "The results of host 'h' are stale by 0d 0h 0m 58s (threshold=0d 0h 0m 30s).  I'm forcing an immediate check of the host."
        );
    }
}
