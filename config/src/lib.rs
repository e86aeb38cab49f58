//! The Shinken/Nagios configuration language: read, inherit, expand, validate.
//!
//! Pure: the only I/O is reading the files of a tree ([`loader`]); no network, no async, so the
//! daemons and the Kubernetes operator share it. Entry point: [`load`].
//!
//! The major components, in the order a tree goes through them:
//! - [`source`], [`diag`]: where things come from, and the problems found, located;
//! - [`loader`], [`reader`]: files and includes, then the text of one file to blocks and params;
//! - [`schema`]: what the language knows (types, list keys, old names, known keys);
//! - [`object`], [`inherit`]: objects as text attributes, and template inheritance;
//! - [`groups`], [`expr`], [`expand`]: group membership, host selections, services per host,
//!   dependencies and escalations;
//! - [`main_config`], [`daemons`], [`timeperiod`]: typed views the daemons act on;
//! - [`load`]: the pipeline, and [`output`]: what `check-config` prints;
//! - [`macros`]: building the command line of a check, notification or event handler.

pub mod commandline;
pub mod daemons;
pub mod diag;
pub mod expand;
pub mod expr;
pub mod fasthash;
pub mod groups;
pub mod inherit;
pub mod load;
pub mod loader;
pub mod macros;
pub mod main_config;
pub mod object;
pub mod output;
pub mod reader;
pub mod schema;
pub mod source;
pub mod timeperiod;

pub use load::{Config, load};
