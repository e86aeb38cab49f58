//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas (or the old
//! and new pod during a rolling update) never reconcile at the same time.
//!
//! kube-rs has no leader election (kube#485), and the third-party crates either trust the
//! `renewTime` written by another node's clock or bring their own dependency tree. This module
//! follows client-go's `leaderelection` package instead, in about the same few hundred lines:
//!
//! - **Optimistic concurrency, not locks.** Every write is a `replace` carrying the
//!   `resourceVersion` that was read (or a `create` when the Lease is missing). When two replicas
//!   race, the API server accepts one write and answers 409 to the other, which then simply is not
//!   leader this round.
//! - **Expiry measured on the follower's own clock.** A follower does not compare the Lease's
//!   `renewTime` with its clock, since the two clocks may disagree by seconds. It notes *when it
//!   first saw* the current version of the Lease, and takes over only when that version has stood
//!   unchanged for `leaseDurationSeconds`. Only the clocks' rates matter, not their offsets.
//! - **The leader gives up early.** The leader counts its term from the moment it *started* its
//!   last successful renewal (the server committed the write later, so every follower saw it later
//!   still). It steps down once `renew_deadline` has passed since then, which is
//!   `lease_duration − renew_deadline` (5 s by default) before any follower may take over.
//! - **A clean shutdown releases the Lease** (empty holder), so a successor takes over at its next
//!   retry instead of waiting out the lease duration.
//!
//! The decision itself, [`decide`] and [`next_spec`], is pure and tested apart from the I/O in
//! [`LeaderElector`]. Time comes from a [`Clock`], so tests move time by hand.
//!
//! Like every Lease-based election, this one has no fencing: a leader whose process freezes (GC
//! pause, SIGSTOP) for longer than the lease can still act once after waking up. Writes that must
//! never overlap need their own guard.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// How long a lease lasts and how often it is renewed.
///
/// The defaults are client-go's, which CloudNativePG copies: a 15 s lease, a 10 s renew deadline
/// and a 2 s retry period. A crashed leader is thus replaced within 15–17 s, and a leader cut off
/// from the API server stops acting 5 s before anyone may replace it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timings {
    /// How long a holder's claim lasts after it was last seen renewed. Written to the Lease as
    /// `leaseDurationSeconds`, rounded up to whole seconds.
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal. Must be shorter than
    /// `lease_duration`: the difference is the margin against clock rate and scheduling delays.
    pub renew_deadline: Duration,
    /// How often every candidate, leader or not, tries to acquire or renew.
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timings {
    /// Checks the relations client-go and CloudNativePG enforce: `lease > renew > 1.2 × retry`.
    ///
    /// A renew deadline not longer than the lease would let a leader believe it leads after a
    /// follower may have taken over. A renew deadline not above 1.2 retry periods would let a
    /// single slow retry depose a healthy leader.
    pub fn validate(&self) -> Result<(), InvalidTimings> {
        if self.retry_period.is_zero() {
            return Err(InvalidTimings("retry period must be positive".into()));
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err(InvalidTimings(
                "lease duration must be at least 1 s (the Lease counts whole seconds)".into(),
            ));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(InvalidTimings(format!(
                "lease duration ({:?}) must be longer than the renew deadline ({:?})",
                self.lease_duration, self.renew_deadline
            )));
        }
        if self.renew_deadline.as_secs_f64() <= 1.2 * self.retry_period.as_secs_f64() {
            return Err(InvalidTimings(format!(
                "renew deadline ({:?}) must be longer than 1.2 × the retry period ({:?})",
                self.renew_deadline, self.retry_period
            )));
        }
        Ok(())
    }

    /// `leaseDurationSeconds` to write: rounded up, so followers never wait less than we promise.
    fn lease_duration_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// Timings that break the rules of [`Timings::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTimings(String);

impl std::fmt::Display for InvalidTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid leader election timings: {}", self.0)
    }
}

impl std::error::Error for InvalidTimings {}

/// What a candidate should do after reading the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The Lease does not exist: create it, naming us as holder.
    Create,
    /// The Lease is free (released, or never held) or its holder let it expire: take it over.
    Acquire,
    /// We hold the Lease: renew it.
    Renew,
    /// Someone else holds a lease that is still valid: wait.
    Follow {
        /// The current holder.
        holder: String,
        /// How long, by our clock, until we may take over if the holder does not renew.
        expires_in: Duration,
    },
}

/// Decides what `me` should do with the Lease as read.
///
/// `lease` is `None` when the Lease object does not exist (a Lease without spec is passed as the
/// default spec). `observed_at` is when this candidate first saw the current version of the Lease,
/// by its own clock; expiry is counted from it rather than from `renewTime`, so that clock offsets
/// between nodes cannot shorten someone else's lease. The lease duration is the one the holder
/// wrote (its promise), or ours if it wrote none.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, observed_at: Timestamp, now: Timestamp, timings: &Timings) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == me {
        return Decision::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|secs| u64::try_from(secs).ok())
        .filter(|secs| *secs > 0)
        .map_or(timings.lease_duration, Duration::from_secs);
    let expires_at = add(observed_at, duration);
    if now >= expires_at {
        Decision::Acquire
    } else {
        Decision::Follow {
            holder: holder.to_owned(),
            expires_in: since(expires_at, now),
        }
    }
}

/// The spec `me` writes when it creates, acquires or renews the Lease previously holding `old`.
///
/// `leaseTransitions` counts changes of holder, so it grows when we take the Lease from anyone
/// else, including from nobody after a release, and stays when we renew. `acquireTime` is when the
/// current holder got the Lease, so a renewal keeps it. Fields this module does not manage
/// (`preferredHolder`, `strategy`) are kept as they were.
pub fn next_spec(old: Option<&LeaseSpec>, me: &str, now: Timestamp, timings: &Timings) -> LeaseSpec {
    let held_by_me = old.is_some_and(|spec| spec.holder_identity.as_deref() == Some(me));
    let transitions = old.map_or(0, |spec| {
        let previous = spec.lease_transitions.unwrap_or(0);
        if held_by_me { previous } else { previous.saturating_add(1) }
    });
    let acquire_time = match old {
        Some(spec) if held_by_me => spec.acquire_time.clone().unwrap_or(MicroTime(now)),
        _ => MicroTime(now),
    };
    let base = old.cloned().unwrap_or_default();
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(timings.lease_duration_seconds()),
        acquire_time: Some(acquire_time),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..base
    }
}

/// The spec a holder writes to release the Lease: no holder, so the next candidate takes it at its
/// next retry. Like client-go, it also writes a 1 s duration, for tools that only look at times.
pub fn released_spec(old: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..old.clone()
    }
}

/// The source of time, injected so that tests move time by hand instead of sleeping 15 s.
///
/// `now` feeds both the Lease's timestamps and every local deadline, so it must never go
/// backwards: a step back would extend a leader's belief that it still leads.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Waits until `duration` has passed by this clock.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The production clock: wall time at start, advanced by the monotonic clock.
///
/// Advancing by the monotonic clock keeps local deadlines immune to NTP steps of the wall clock.
/// The wall time written in `renewTime` may drift from the real one over a long uptime, which does
/// no harm: other candidates count expiry on their own clocks and read the Lease's times only for
/// display.
#[derive(Clone, Debug)]
pub struct SystemClock {
    wall_at_start: Timestamp,
    started: tokio::time::Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let micros = i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX);
        Self {
            wall_at_start: Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH),
            started: tokio::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        add(self.wall_at_start, self.started.elapsed())
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// The last version of the Lease this candidate read, and when it first read it.
#[derive(Debug)]
struct Observed {
    resource_version: Option<String>,
    spec: LeaseSpec,
    at: Timestamp,
}

/// One candidate in the election for one Lease.
pub struct LeaderElector<C = SystemClock> {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    clock: C,
    /// Behind a mutex only because `try_acquire_or_renew` takes `&self`; never held across an
    /// await.
    observed: Mutex<Option<Observed>>,
}

impl LeaderElector<SystemClock> {
    /// A candidate named `identity` (the pod name, `POD_NAME`) for the Lease `name` in `api`'s
    /// namespace.
    pub fn new(api: Api<Lease>, name: impl Into<String>, identity: impl Into<String>, timings: Timings) -> Result<Self, InvalidTimings> {
        Self::with_clock(api, name, identity, timings, SystemClock::new())
    }
}

impl<C: Clock> LeaderElector<C> {
    /// Like [`LeaderElector::new`], with time taken from `clock`.
    pub fn with_clock(
        api: Api<Lease>,
        name: impl Into<String>,
        identity: impl Into<String>,
        timings: Timings,
        clock: C,
    ) -> Result<Self, InvalidTimings> {
        timings.validate()?;
        Ok(Self {
            api,
            name: name.into(),
            identity: identity.into(),
            timings,
            clock,
            observed: Mutex::new(None),
        })
    }

    /// This candidate's identity, as written in `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The Lease's name.
    pub fn lease_name(&self) -> &str {
        &self.name
    }

    /// One round of the election: reads the Lease, then creates, takes over or renews it if
    /// [`decide`] says so.
    ///
    /// Returns whether we hold the Lease after this round. A 409 (someone else created or wrote
    /// the Lease since we read it) is an ordinary lost round, `Ok(false)`; other API errors are
    /// returned, and the caller decides how long it may keep leading without a renewal.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = self.clock.now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().map(|lease| lease.spec.clone().unwrap_or_default());
        let observed_at = self.observe(current.as_ref(), now);
        let decision = decide(spec.as_ref(), &self.identity, observed_at, now, &self.timings);
        debug!(lease = %self.name, identity = %self.identity, ?decision, "Leader election round");
        let written = match (decision, current) {
            (Decision::Follow { .. }, _) => return Ok(false),
            (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(next_spec(None, &self.identity, now, &self.timings)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (_, Some(mut lease)) => {
                // Keeps metadata.resourceVersion as read: the server rejects the write if anyone
                // wrote in between.
                lease.spec = Some(next_spec(spec.as_ref(), &self.identity, now, &self.timings));
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
        };
        match written {
            Ok(_) => Ok(true),
            Err(err) if is_conflict(&err) => {
                debug!(lease = %self.name, identity = %self.identity, "Lease written by someone else first");
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Gives the Lease up if we hold it, so a successor takes over at its next retry instead of
    /// waiting for the lease to expire. Returns whether we released it.
    ///
    /// Call it only once this process has stopped acting as leader: the successor may start at
    /// once.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        // A conflict may come from a harmless writer (a label added by hand): read again, a few
        // times, rather than leave a successor waiting for the expiry.
        for _ in 0..3 {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else {
                return Ok(false);
            };
            let spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(false);
            }
            lease.spec = Some(released_spec(&spec, self.clock.now()));
            match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                Ok(_) => return Ok(true),
                Err(err) if is_conflict(&err) => continue,
                Err(err) => return Err(err),
            }
        }
        Ok(false)
    }

    /// Runs the election until `shutdown` completes, publishing in `leading` whether this process
    /// leads, then releases the Lease if it holds it.
    ///
    /// `leading` turns false as soon as `renew_deadline` has passed since the start of the last
    /// successful renewal, even while a request hangs, so this process never believes it leads
    /// after its lease could have expired for the others. On shutdown `leading` turns false before
    /// the release, so that the successor never overlaps with us.
    pub async fn run(self, leading: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        self.campaign(&leading, shutdown, || self.try_acquire_or_renew()).await;
        self.publish(&leading, false, "shutting down");
        match self.release().await {
            Ok(true) => info!(lease = %self.name, identity = %self.identity, "Released the lease"),
            Ok(false) => {}
            Err(err) => warn!(lease = %self.name, identity = %self.identity, error = %err, "Could not release the lease"),
        }
    }

    /// Starts [`LeaderElector::run`] on the runtime. The receiver tells whether this process
    /// leads; await the handle after `shutdown` completes to be sure the Lease was released.
    pub fn spawn(self, shutdown: impl Future<Output = ()> + Send + 'static) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (sender, receiver) = watch::channel(false);
        let handle = tokio::spawn(self.run(sender, shutdown));
        (receiver, handle)
    }

    /// The timing half of [`LeaderElector::run`]: calls `round` every retry period until
    /// `shutdown`, and decides from its results and the clock whether we lead.
    ///
    /// `round` is a parameter so that tests can make a round hang: the fake client answers every
    /// request within the same poll, so it cannot show that a hanging request does not extend a
    /// leader's term.
    async fn campaign<R, F>(&self, leading: &watch::Sender<bool>, shutdown: impl Future<Output = ()>, mut round: R)
    where
        R: FnMut() -> F,
        F: Future<Output = Result<bool, kube::Error>>,
    {
        tokio::pin!(shutdown);
        // The start of the last successful round while leading: the term runs until
        // renewed_at + renew_deadline.
        let mut renewed_at: Option<Timestamp> = None;
        loop {
            let started = self.clock.now();
            if renewed_at.is_some_and(|at| started >= add(at, self.timings.renew_deadline)) {
                renewed_at = None;
                self.publish(leading, false, "could not renew the lease within the renew deadline");
            }
            let attempt = round();
            let bounded = async {
                match renewed_at {
                    Some(at) => {
                        let left = since(add(at, self.timings.renew_deadline), started);
                        tokio::select! {
                            result = attempt => Some(result),
                            () = self.clock.sleep(left) => None,
                        }
                    }
                    None => Some(attempt.await),
                }
            };
            let outcome = tokio::select! {
                outcome = bounded => outcome,
                () = &mut shutdown => break,
            };
            let now = self.clock.now();
            let term_end = add(started, self.timings.renew_deadline);
            match outcome {
                Some(Ok(true)) if now < term_end => {
                    renewed_at = Some(started);
                    self.publish(leading, true, "");
                }
                Some(Ok(true)) => {
                    warn!(lease = %self.name, identity = %self.identity, "Lease written too late to count as renewed");
                    renewed_at = None;
                    self.publish(leading, false, "the renewal took longer than the renew deadline");
                }
                Some(Ok(false)) => {
                    renewed_at = None;
                    self.publish(leading, false, "another candidate holds the lease");
                }
                Some(Err(err)) => {
                    warn!(lease = %self.name, identity = %self.identity, error = %err, "Leader election round failed");
                    if renewed_at.is_some_and(|at| now >= add(at, self.timings.renew_deadline)) {
                        renewed_at = None;
                        self.publish(leading, false, "could not renew the lease within the renew deadline");
                    }
                }
                None => {
                    renewed_at = None;
                    self.publish(leading, false, "could not renew the lease within the renew deadline");
                }
            }
            // A leader wakes up at its deadline at the latest, to step down on time.
            let pause = match renewed_at {
                Some(at) => self.timings.retry_period.min(since(add(at, self.timings.renew_deadline), now)),
                None => self.timings.retry_period,
            };
            tokio::select! {
                () = self.clock.sleep(pause) => {}
                () = &mut shutdown => break,
            }
        }
    }

    /// Returns when this candidate first saw the version of the Lease just read, by its clock.
    fn observe(&self, lease: Option<&Lease>, now: Timestamp) -> Timestamp {
        let Some(lease) = lease else {
            return now;
        };
        let resource_version = lease.metadata.resource_version.clone();
        let spec = lease.spec.clone().unwrap_or_default();
        let mut observed = self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*observed {
            Some(seen) if seen.resource_version == resource_version && seen.spec == spec => seen.at,
            _ => {
                *observed = Some(Observed {
                    resource_version,
                    spec,
                    at: now,
                });
                now
            }
        }
    }

    /// Publishes whether we lead, logging one line when it changes.
    fn publish(&self, leading: &watch::Sender<bool>, value: bool, reason: &str) {
        let changed = leading.send_if_modified(|current| {
            let changed = *current != value;
            *current = value;
            changed
        });
        if !changed {
            return;
        }
        if value {
            info!(lease = %self.name, identity = %self.identity, "Became leader");
        } else {
            info!(lease = %self.name, identity = %self.identity, reason, "Lost leadership");
        }
    }
}

/// Whether the API server refused the write because the object changed or already exists.
fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// `at + duration`, saturating: durations here are seconds, far from the limits.
fn add(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(duration).unwrap_or(Timestamp::MAX)
}

/// `later − earlier`, or zero if `later` is not later.
fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use kube_fake_client::{ClientBuilder, interceptor};

    use super::*;

    const NAMESPACE: &str = "shinken";
    const LEASE: &str = "shinken-operator";

    fn t0() -> Timestamp {
        Timestamp::from_second(1_760_000_000).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn held(holder: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(t0())),
            renew_time: Some(MicroTime(t0())),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    // ---- decide / next_spec ----

    #[test]
    fn timings_default_to_client_go() {
        let timings = Timings::default();
        assert_eq!(
            (timings.lease_duration, timings.renew_deadline, timings.retry_period),
            (secs(15), secs(10), secs(2))
        );
        assert_eq!(timings.validate(), Ok(()));
        assert_eq!(timings.lease_duration_seconds(), 15);
    }

    #[test]
    fn timings_are_validated() {
        let bad = |lease, renew, retry| {
            Timings {
                lease_duration: lease,
                renew_deadline: renew,
                retry_period: retry,
            }
            .validate()
            .is_err()
        };
        assert!(bad(secs(10), secs(10), secs(2)), "renew deadline must be below the lease");
        assert!(
            bad(secs(15), Duration::from_millis(2400), secs(2)),
            "renew deadline must exceed 1.2 retry"
        );
        assert!(bad(secs(15), secs(10), Duration::ZERO));
        assert!(bad(
            Duration::from_millis(900),
            Duration::from_millis(500),
            Duration::from_millis(100)
        ));
        let fractional = Timings {
            lease_duration: Duration::from_millis(15_500),
            ..Timings::default()
        };
        assert_eq!(fractional.validate(), Ok(()));
        assert_eq!(fractional.lease_duration_seconds(), 16, "rounded up, never shorter than promised");
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide(None, "a", t0(), t0(), &Timings::default()), Decision::Create);
        let spec = next_spec(None, "a", t0(), &Timings::default());
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(MicroTime(t0())));
        assert_eq!(spec.renew_time, Some(MicroTime(t0())));
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        let timings = Timings::default();
        for holder in [None, Some(String::new())] {
            let spec = LeaseSpec {
                holder_identity: holder,
                ..held("a", 3)
            };
            // Seen just now, yet free: no wait.
            assert_eq!(decide(Some(&spec), "b", t0(), t0(), &timings), Decision::Acquire);
            let next = next_spec(Some(&spec), "b", t0() + secs(1), &timings);
            assert_eq!(next.holder_identity.as_deref(), Some("b"));
            assert_eq!(next.lease_transitions, Some(4), "taking a released lease is a transition");
            assert_eq!(next.acquire_time, Some(MicroTime(t0() + secs(1))));
        }
        // A Lease object without spec is free too.
        assert_eq!(decide(Some(&LeaseSpec::default()), "b", t0(), t0(), &timings), Decision::Acquire);
        assert_eq!(
            next_spec(Some(&LeaseSpec::default()), "b", t0(), &timings).lease_transitions,
            Some(1)
        );
    }

    #[test]
    fn fresh_lease_of_another_is_followed() {
        let timings = Timings::default();
        let spec = held("a", 0);
        assert_eq!(
            decide(Some(&spec), "b", t0(), t0(), &timings),
            Decision::Follow {
                holder: "a".into(),
                expires_in: secs(15)
            }
        );
        assert_eq!(
            decide(Some(&spec), "b", t0(), t0() + Duration::from_millis(14_999), &timings),
            Decision::Follow {
                holder: "a".into(),
                expires_in: Duration::from_millis(1)
            }
        );
    }

    #[test]
    fn expired_lease_of_another_is_acquired() {
        let timings = Timings::default();
        let spec = held("a", 2);
        assert_eq!(decide(Some(&spec), "b", t0(), t0() + secs(15), &timings), Decision::Acquire);
        assert_eq!(decide(Some(&spec), "b", t0(), t0() + secs(60), &timings), Decision::Acquire);
        let next = next_spec(Some(&spec), "b", t0() + secs(15), &timings);
        assert_eq!(next.lease_transitions, Some(3), "change of holder is counted");
        assert_eq!(next.acquire_time, Some(MicroTime(t0() + secs(15))));
        assert_eq!(next.renew_time, Some(MicroTime(t0() + secs(15))));
    }

    #[test]
    fn expiry_counts_from_observation_not_from_renew_time() {
        let timings = Timings::default();
        // renewTime is an hour old (the holder's clock is late, or we just started), but we saw
        // this version only now: the holder's promise still runs for its whole duration.
        let spec = LeaseSpec {
            renew_time: Some(MicroTime(t0() - secs(3600))),
            ..held("a", 0)
        };
        assert!(matches!(
            decide(Some(&spec), "b", t0(), t0() + secs(14), &timings),
            Decision::Follow { .. }
        ));
        // renewTime in the future (the holder's clock is early) does not extend it either.
        let spec = LeaseSpec {
            renew_time: Some(MicroTime(t0() + secs(3600))),
            ..held("a", 0)
        };
        assert_eq!(decide(Some(&spec), "b", t0(), t0() + secs(15), &timings), Decision::Acquire);
    }

    #[test]
    fn holders_duration_is_used() {
        let timings = Timings::default();
        let long = LeaseSpec {
            lease_duration_seconds: Some(60),
            ..held("a", 0)
        };
        assert!(matches!(
            decide(Some(&long), "b", t0(), t0() + secs(59), &timings),
            Decision::Follow { .. }
        ));
        assert_eq!(decide(Some(&long), "b", t0(), t0() + secs(60), &timings), Decision::Acquire);
        // Missing or nonsense durations fall back to ours.
        for duration in [None, Some(0), Some(-5)] {
            let spec = LeaseSpec {
                lease_duration_seconds: duration,
                ..held("a", 0)
            };
            assert!(matches!(
                decide(Some(&spec), "b", t0(), t0() + secs(14), &timings),
                Decision::Follow { .. }
            ));
            assert_eq!(decide(Some(&spec), "b", t0(), t0() + secs(15), &timings), Decision::Acquire);
        }
    }

    #[test]
    fn own_lease_is_renewed_without_transition() {
        let timings = Timings::default();
        let spec = held("a", 5);
        assert_eq!(decide(Some(&spec), "a", t0(), t0() + secs(2), &timings), Decision::Renew);
        // Even past expiry: nobody wrote since our last write, so nobody else took it.
        assert_eq!(decide(Some(&spec), "a", t0(), t0() + secs(100), &timings), Decision::Renew);
        let next = next_spec(Some(&spec), "a", t0() + secs(2), &timings);
        assert_eq!(next.lease_transitions, Some(5));
        assert_eq!(next.acquire_time, Some(MicroTime(t0())), "acquireTime is kept on renewal");
        assert_eq!(next.renew_time, Some(MicroTime(t0() + secs(2))));
    }

    #[test]
    fn missing_fields_are_filled_and_foreign_fields_kept() {
        let timings = Timings::default();
        let spec = LeaseSpec {
            holder_identity: Some("a".into()),
            preferred_holder: Some("a".into()),
            strategy: Some("OldestEmulationVersion".into()),
            ..LeaseSpec::default()
        };
        let renewed = next_spec(Some(&spec), "a", t0(), &timings);
        assert_eq!(renewed.lease_transitions, Some(0));
        assert_eq!(renewed.acquire_time, Some(MicroTime(t0())));
        assert_eq!(renewed.preferred_holder.as_deref(), Some("a"));
        assert_eq!(renewed.strategy.as_deref(), Some("OldestEmulationVersion"));
        let taken = next_spec(Some(&spec), "b", t0(), &timings);
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn released_spec_clears_the_holder_only() {
        let released = released_spec(&held("a", 4), t0() + secs(3));
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_transitions, Some(4));
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.renew_time, Some(MicroTime(t0() + secs(3))));
        assert_eq!(released.acquire_time, Some(MicroTime(t0())));
    }

    // ---- LeaderElector on the fake client ----

    /// A clock moved only by the test. `sleep` waits until the test has advanced past its end, so
    /// loops under test run exactly as far as the test lets time go.
    #[derive(Clone)]
    struct TestClock(Arc<watch::Sender<Timestamp>>);

    impl TestClock {
        fn new() -> Self {
            Self(Arc::new(watch::Sender::new(t0())))
        }

        fn advance(&self, duration: Duration) {
            self.0.send_modify(|now| *now = add(*now, duration));
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> Timestamp {
            *self.0.borrow()
        }

        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
            let end = add(self.now(), duration);
            let mut time = self.0.subscribe();
            async move {
                let _ = time.wait_for(|now| *now >= end).await;
            }
        }
    }

    async fn client(funcs: Option<interceptor::Funcs>) -> kube::Client {
        let builder = ClientBuilder::new();
        let builder = match funcs {
            Some(funcs) => builder.with_interceptor_funcs(funcs),
            None => builder,
        };
        builder.build().await.expect("fake client")
    }

    fn elector(client: &kube::Client, identity: &str, clock: &TestClock) -> LeaderElector<TestClock> {
        LeaderElector::with_clock(
            Api::namespaced(client.clone(), NAMESPACE),
            LEASE,
            identity,
            Timings::default(),
            clock.clone(),
        )
        .unwrap()
    }

    async fn lease_spec(client: &kube::Client) -> LeaseSpec {
        let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
        api.get(LEASE).await.unwrap().spec.unwrap_or_default()
    }

    async fn holder(client: &kube::Client) -> (Option<String>, Option<i32>) {
        let spec = lease_spec(client).await;
        (spec.holder_identity, spec.lease_transitions)
    }

    /// The holder identity of a Lease as sent in a request body.
    fn holder_in(object: &serde_json::Value) -> Option<&str> {
        object.pointer("/spec/holderIdentity").and_then(serde_json::Value::as_str)
    }

    /// Lets spawned election loops react to a clock change (the clock stands still meanwhile).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    async fn wait_leading(leading: &mut watch::Receiver<bool>, value: bool) {
        tokio::time::timeout(secs(5), leading.wait_for(|v| *v == value))
            .await
            .unwrap_or_else(|_| panic!("leading never became {value}"))
            .unwrap();
    }

    #[tokio::test]
    async fn exactly_one_of_two_leads() {
        let client = client(None).await;
        let clock = TestClock::new();
        let (a, b) = (elector(&client, "a", &clock), elector(&client, "b", &clock));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&client).await, (Some("a".into()), Some(0)));
        let spec = lease_spec(&client).await;
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.renew_time, Some(MicroTime(t0())));
    }

    #[tokio::test]
    async fn follower_waits_while_leader_renews() {
        let client = client(None).await;
        let clock = TestClock::new();
        let (a, b) = (elector(&client, "a", &clock), elector(&client, "b", &clock));
        assert!(a.try_acquire_or_renew().await.unwrap());
        // A minute of 2 s retries: far past one lease duration, but renewed all along.
        for _ in 0..30 {
            clock.advance(secs(2));
            assert!(a.try_acquire_or_renew().await.unwrap());
            assert!(!b.try_acquire_or_renew().await.unwrap());
        }
        let spec = lease_spec(&client).await;
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.acquire_time, Some(MicroTime(t0())));
        assert_eq!(spec.renew_time, Some(MicroTime(t0() + secs(60))));
    }

    #[tokio::test]
    async fn follower_takes_over_after_expiry() {
        let client = client(None).await;
        let clock = TestClock::new();
        let (a, b) = (elector(&client, "a", &clock), elector(&client, "b", &clock));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap()); // b first sees a's lease at t0.
        // a stops renewing (crashed).
        for _ in 0..14 {
            clock.advance(secs(1));
            assert!(!b.try_acquire_or_renew().await.unwrap(), "taken over before expiry");
        }
        clock.advance(secs(1));
        assert!(b.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&client).await, (Some("b".into()), Some(1)));
        assert_eq!(lease_spec(&client).await.acquire_time, Some(MicroTime(t0() + secs(15))));
        // a comes back: it sees b's fresh lease and follows.
        assert!(!a.try_acquire_or_renew().await.unwrap());
        assert!(b.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&client).await, (Some("b".into()), Some(1)));
    }

    #[tokio::test]
    async fn late_observer_waits_a_whole_lease() {
        // b starts after a's last renewal: however old renewTime is, b waits a full lease from
        // when it first saw it, since it cannot trust a's clock.
        let client = client(None).await;
        let clock = TestClock::new();
        let a = elector(&client, "a", &clock);
        assert!(a.try_acquire_or_renew().await.unwrap());
        clock.advance(secs(100));
        let b = elector(&client, "b", &clock);
        assert!(!b.try_acquire_or_renew().await.unwrap());
        clock.advance(secs(14));
        assert!(!b.try_acquire_or_renew().await.unwrap());
        clock.advance(secs(1));
        assert!(b.try_acquire_or_renew().await.unwrap());
    }

    #[tokio::test]
    async fn release_lets_follower_take_over_at_once() {
        let client = client(None).await;
        let clock = TestClock::new();
        let (a, b) = (elector(&client, "a", &clock), elector(&client, "b", &clock));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap());
        assert!(!b.release().await.unwrap(), "b does not hold the lease");
        assert_eq!(holder(&client).await, (Some("a".into()), Some(0)));
        assert!(a.release().await.unwrap());
        assert_eq!(holder(&client).await, (None, Some(0)));
        assert!(b.try_acquire_or_renew().await.unwrap(), "no wait after a release");
        assert_eq!(holder(&client).await, (Some("b".into()), Some(1)));
        assert!(!a.release().await.unwrap());
        assert!(!a.try_acquire_or_renew().await.unwrap());
    }

    #[tokio::test]
    async fn release_without_lease_is_a_no_op() {
        let client = client(None).await;
        let a = elector(&client, "a", &TestClock::new());
        assert!(!a.release().await.unwrap());
    }

    #[tokio::test]
    async fn fake_client_rejects_stale_replace_with_409() {
        let client = client(None).await;
        let clock = TestClock::new();
        assert!(elector(&client, "a", &clock).try_acquire_or_renew().await.unwrap());
        let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
        let stale = api.get(LEASE).await.unwrap();
        api.replace(LEASE, &PostParams::default(), &stale).await.unwrap();
        let err = api.replace(LEASE, &PostParams::default(), &stale).await.unwrap_err();
        assert!(is_conflict(&err), "{err:?}");
        let again = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE.into()),
                ..ObjectMeta::default()
            },
            spec: None,
        };
        let err = api.create(&PostParams::default(), &again).await.unwrap_err();
        assert!(is_conflict(&err), "create over an existing Lease: {err:?}");
    }

    #[tokio::test]
    async fn stale_takeover_does_not_make_two_leaders() {
        // b reads a's expired lease and decides to take it over; a's late renewal lands between
        // b's read and b's write. The fake client's own resourceVersion check must refuse b.
        let a_renews_first = Arc::new(AtomicBool::new(false));
        let armed = a_renews_first.clone();
        let funcs = interceptor::Funcs::new().replace(move |ctx| {
            if holder_in(ctx.object) == Some("b") && armed.swap(false, Ordering::SeqCst) {
                let mut lease: Lease = ctx.client.get(ctx.namespace, ctx.name)?;
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(MicroTime(t0() + secs(15)));
                ctx.client.update(ctx.namespace, &lease, &PostParams::default())?;
            }
            Ok(None)
        });
        let client = client(Some(funcs)).await;
        let clock = TestClock::new();
        let (a, b) = (elector(&client, "a", &clock), elector(&client, "b", &clock));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap());
        clock.advance(secs(15));
        a_renews_first.store(true, Ordering::SeqCst);
        assert!(!b.try_acquire_or_renew().await.unwrap(), "a stale write made b leader");
        assert!(!a_renews_first.load(Ordering::SeqCst), "the interceptor did not run");
        assert_eq!(holder(&client).await, (Some("a".into()), Some(0)));
        // a's write is a new version: b counts a fresh lease from now.
        assert!(!b.try_acquire_or_renew().await.unwrap());
        assert!(a.try_acquire_or_renew().await.unwrap());
    }

    #[tokio::test]
    async fn racing_creates_make_one_leader() {
        // Both see no Lease; a's create lands first, b's must get 409 AlreadyExists.
        let a_creates_first = Arc::new(AtomicBool::new(true));
        let armed = a_creates_first.clone();
        let funcs = interceptor::Funcs::new().create(move |ctx| {
            if holder_in(ctx.object) == Some("b") && armed.swap(false, Ordering::SeqCst) {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE.into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(next_spec(None, "a", t0(), &Timings::default())),
                };
                ctx.client.create(ctx.namespace, &lease, &PostParams::default())?;
            }
            Ok(None)
        });
        let client = client(Some(funcs)).await;
        let clock = TestClock::new();
        let (a, b) = (elector(&client, "a", &clock), elector(&client, "b", &clock));
        assert!(!b.try_acquire_or_renew().await.unwrap());
        assert!(!a_creates_first.load(Ordering::SeqCst), "the interceptor did not run");
        assert_eq!(holder(&client).await, (Some("a".into()), Some(0)));
        assert!(a.try_acquire_or_renew().await.unwrap());
    }

    #[tokio::test]
    async fn api_errors_are_returned() {
        let funcs = interceptor::Funcs::new().get(|_| Err(kube_fake_client::Error::Internal("etcd down".into())));
        let client = client(Some(funcs)).await;
        let a = elector(&client, "a", &TestClock::new());
        let err = a.try_acquire_or_renew().await.unwrap_err();
        assert!(matches!(&err, kube::Error::Api(status) if status.code == 500), "{err:?}");
    }

    // ---- the run loop ----

    #[tokio::test]
    async fn leader_steps_down_before_follower_may_take_over() {
        let renewals_fail = Arc::new(AtomicBool::new(false));
        let failing = renewals_fail.clone();
        let funcs = interceptor::Funcs::new().replace(move |ctx| {
            if holder_in(ctx.object) == Some("a") && failing.load(Ordering::SeqCst) {
                return Err(kube_fake_client::Error::Internal("API server unreachable from a".into()));
            }
            Ok(None)
        });
        let client = client(Some(funcs)).await;
        let clock = TestClock::new();
        let b = elector(&client, "b", &clock);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (mut leading, handle) = elector(&client, "a", &clock).spawn(async {
            let _ = stopped.await;
        });
        wait_leading(&mut leading, true).await; // Renewed at t0: its term ends at t0 + 10 s.
        assert!(!b.try_acquire_or_renew().await.unwrap());
        renewals_fail.store(true, Ordering::SeqCst);
        for second in 1..10 {
            clock.advance(secs(1));
            settle().await;
            assert!(*leading.borrow(), "a stepped down early, at t0 + {second} s");
            assert!(!b.try_acquire_or_renew().await.unwrap());
        }
        clock.advance(secs(1));
        wait_leading(&mut leading, false).await; // At t0 + 10 s, the clock standing still.
        for _ in 11..15 {
            clock.advance(secs(1));
            assert!(!b.try_acquire_or_renew().await.unwrap());
        }
        clock.advance(secs(1));
        assert!(b.try_acquire_or_renew().await.unwrap(), "b takes over at t0 + 15 s");
        assert_eq!(holder(&client).await, (Some("b".into()), Some(1)));
        // a's loop now sees b's lease and stays a follower, even once its API calls work again.
        renewals_fail.store(false, Ordering::SeqCst);
        for _ in 0..5 {
            clock.advance(secs(2));
            settle().await;
            assert!(!*leading.borrow());
            assert!(b.try_acquire_or_renew().await.unwrap());
        }
        stop.send(()).unwrap();
        handle.await.unwrap();
        assert_eq!(holder(&client).await, (Some("b".into()), Some(1)), "a must not release b's lease");
    }

    /// Runs `campaign` for an elector on an empty fake client, with `round` standing for the API
    /// calls. Returns the receiver, the stop switch and the task.
    fn campaign_with<R, F>(clock: &TestClock, round: R) -> (watch::Receiver<bool>, tokio::sync::oneshot::Sender<()>, JoinHandle<()>)
    where
        R: FnMut() -> F + Send + 'static,
        F: Future<Output = Result<bool, kube::Error>> + Send,
    {
        let clock = clock.clone();
        let (sender, receiver) = watch::channel(false);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let a = elector(&client(None).await, "a", &clock);
            a.campaign(&sender, async { drop(stopped.await) }, round).await;
        });
        (receiver, stop, handle)
    }

    #[tokio::test]
    async fn leader_steps_down_while_a_renewal_hangs() {
        // The first round wins; every later one never answers (an API server that accepts the
        // connection and says nothing). The term must end at t0 + 10 s all the same.
        let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = rounds.clone();
        let clock = TestClock::new();
        let (mut leading, stop, handle) = campaign_with(&clock, move || {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if !first {
                    std::future::pending::<()>().await;
                }
                Ok(true)
            }
        });
        wait_leading(&mut leading, true).await;
        for second in 1..10 {
            clock.advance(secs(1));
            settle().await;
            assert!(*leading.borrow(), "a stepped down early, at t0 + {second} s");
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2, "the renewal at t0 + 2 s is the one hanging");
        clock.advance(secs(1));
        wait_leading(&mut leading, false).await; // At t0 + 10 s, the request still hanging.
        stop.send(()).unwrap();
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn late_answers_do_not_count() {
        // Every round answers "you hold the lease" only after 11 s: longer than the renew
        // deadline, so the lease may have expired for others by then. Never leader.
        let clock = TestClock::new();
        let slow = clock.clone();
        let (leading, stop, handle) = campaign_with(&clock, move || {
            slow.advance(secs(11));
            async { Ok(true) }
        });
        for _ in 0..5 {
            settle().await;
            assert!(!*leading.borrow());
            clock.advance(secs(2));
        }
        stop.send(()).unwrap();
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn failed_renewals_keep_the_term_until_the_deadline() {
        // Rounds fail with API errors after the first: a is leader until t0 + 10 s, not after.
        let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = rounds.clone();
        let clock = TestClock::new();
        let (mut leading, stop, handle) = campaign_with(&clock, move || {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Ok(true)
                } else {
                    Err(kube::Error::Api(Box::new(
                        kube::core::Status::failure("unreachable", "InternalError").with_code(500),
                    )))
                }
            }
        });
        wait_leading(&mut leading, true).await;
        for second in 1..10 {
            clock.advance(secs(1));
            settle().await;
            assert!(*leading.borrow(), "a stepped down early, at t0 + {second} s");
        }
        clock.advance(secs(1));
        wait_leading(&mut leading, false).await;
        assert!(rounds.load(Ordering::SeqCst) >= 5, "a retried every 2 s");
        stop.send(()).unwrap();
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_releases_for_an_immediate_successor() {
        let client = client(None).await;
        let clock = TestClock::new();
        let b = elector(&client, "b", &clock);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (mut leading, handle) = elector(&client, "a", &clock).spawn(async {
            let _ = stopped.await;
        });
        wait_leading(&mut leading, true).await;
        assert!(!b.try_acquire_or_renew().await.unwrap());
        stop.send(()).unwrap();
        handle.await.unwrap();
        assert!(!*leading.borrow());
        assert_eq!(holder(&client).await, (None, Some(0)));
        assert!(b.try_acquire_or_renew().await.unwrap(), "no wait after a clean shutdown");
        assert_eq!(holder(&client).await, (Some("b".into()), Some(1)));
    }

    #[tokio::test]
    async fn follower_loop_takes_over_after_expiry() {
        let client = client(None).await;
        let clock = TestClock::new();
        assert!(elector(&client, "a", &clock).try_acquire_or_renew().await.unwrap()); // Then a dies.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (mut leading, handle) = elector(&client, "b", &clock).spawn(async {
            let _ = stopped.await;
        });
        settle().await; // b's first round sees a's lease at t0.
        for second in 1..15 {
            clock.advance(secs(1));
            settle().await;
            assert!(!*leading.borrow(), "b took over at t0 + {second} s");
        }
        // b retries every 2 s from t0: its round at t0 + 16 s finds the lease expired.
        clock.advance(secs(2));
        wait_leading(&mut leading, true).await;
        assert_eq!(holder(&client).await, (Some("b".into()), Some(1)));
        stop.send(()).unwrap();
        handle.await.unwrap();
        assert_eq!(holder(&client).await.0, None);
    }
}
