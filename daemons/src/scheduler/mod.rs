//! The scheduler's decision logic, pure: no I/O, no clock, no randomness of its own (time and
//! random draws are inputs), so every rule is testable with fixed timestamps.
//!
//! - [`state`]: the soft/hard state machine of hosts and services (semantics §3.5, §3.6):
//!   [`ItemState`] is what the scheduler and retention keep per item, [`apply_result`] consumes
//!   one check result and returns a [`Transition`] saying what to log (alert line), notify
//!   (PROBLEM/RECOVERY), run (event handler) or cancel;
//! - [`engine`]: one configuration part scheduled: items, due checks, checks out, results,
//!   orphans, freshness and broks;
//! - [`commands`]: Nagios external commands parsed and applied to the engine;
//! - [`notify`]: notifications and event handlers (§3.7, §3.8): blocking, scatter to contacts
//!   and notification ways, escalations, re-arming, event handler choice, log lines;
//! - [`fencing`]: the self-fencing timer (no arbiter for too long, or a stale retention write);
//! - [`schedule`]: when the next active check runs (§3.3, [`next_check_time`]) and whether a
//!   passive-only item's results are stale (§3.4, [`is_stale`]).

mod actions;
pub mod commands;
pub mod daemon;
pub mod engine;
pub mod fencing;
pub mod notify;
pub mod schedule;
pub mod state;

pub use schedule::{FreshnessInput, HOST_ZERO_INTERVAL_SECS, ScheduleInput, format_dhms, is_stale, next_check_time, stale_log_line};
pub use state::{
    AlertLine, CheckResult, CheckType, EventCounters, IdUpdate, ItemKind, ItemState, NotificationKind, ProblemIdChange, State,
    StateOptions, StateType, Transition, apply_result, effective_exit_status,
};
