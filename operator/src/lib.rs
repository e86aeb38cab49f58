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

pub mod crd;
pub mod layout;
pub mod yaml;
