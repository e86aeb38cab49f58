//! `shinken-operator`: runs Shinken clusters on Kubernetes.
//!
//! The major components are:
//! - [`crd`]: the `ShinkenCluster` resource (spec and status), from which `crds/` is generated;
//! - [`layout`]: paths in the pods and names of the objects the operator owns;
//! - [`yaml`]: printing resources as YAML documents (`crd`, `import`).
//!
//! The operator decides nothing about which daemon works: the arbiter does (Shinken's
//! semantics). The operator lays out the pods, tells the arbiter fast when a pod fails, and fences
//! the old master so that it never runs beside its spare.

pub mod arbiter;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod import;
pub mod layout;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod status;
pub mod takeover;
pub mod tree;
pub mod yaml;
