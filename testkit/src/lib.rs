//! Test and benchmark support for the Shinken workspace.
//!
//! - [`tempdir`]: a self-removing temporary directory;
//! - [`nagios`]: Nagios 4 as an oracle (`nagios4 -v` counts, `nagios4 -pv` resolved objects);
//! - `gen` (spelt `r#gen`, `gen` being reserved in edition 2024): deterministic generators of
//!   valid Nagios-syntax configuration trees;
//! - [`measure`]: wall time and peak RSS of a child process.

pub mod r#gen;
pub mod measure;
pub mod nagios;
pub mod tempdir;

pub use tempdir::TempDir;
