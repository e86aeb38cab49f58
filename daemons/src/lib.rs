//! The Shinken daemons and the tools around them.
//!
//! The major components are:
//! - [`arbiter`]: the arbiter's decisions, pure: cutting a configuration into parts;
//! - [`cluster`]: `shinken run`, a whole cluster on one machine, one process per daemon;
//! - [`daemon`]: what every daemon does alike: arguments, own definition, token, logging,
//!   common endpoints, graceful stop;
//! - [`messages`]: the request and response bodies of the API, defined once;
//! - [`protocol`]: the HTTP API between daemons: bearer token, body limits, timeouts, one
//!   typed client;
//! - [`retention`]: hosts' and services' states kept across restarts and failovers: a file or
//!   MongoDB, written behind, fenced by epoch;
//! - [`runner`]: runs checks, notifications and event handlers as real processes (shared by
//!   the poller and the reactionner): process groups, timeouts, output capture and parsing;
//! - [`satellite`]: the poller, reactionner, broker and receiver daemons;
//! - [`status`]: `shinken status`, every host, service and daemon from whichever daemons answer;
//! - [`scheduler`]: the scheduler's decision logic, pure (time is an input): the soft/hard
//!   state machine and when the next check runs.
//!
//! The daemons themselves, their HTTP API and `shinken run` are built on these.

pub mod arbiter;
pub mod cluster;
pub mod daemon;
pub mod messages;
pub mod protocol;
pub mod retention;
pub mod runner;
pub mod satellite;
pub mod scheduler;
pub mod status;
