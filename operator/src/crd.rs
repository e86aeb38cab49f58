//! The `ShinkenCluster` custom resource: what a user writes (spec) and what the operator reports
//! (status). The generated CRD YAML in `crds/` comes from these types (`shinken-operator crd`);
//! a test fails when the committed file differs.
//!
//! Field docs become the CRD's descriptions, so they are written for the user of `kubectl explain`.

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// API group of the operator's resources.
pub const GROUP: &str = "shinken.io";

/// A Shinken monitoring cluster: an arbiter, schedulers, pollers, reactionners, brokers and
/// receivers, each with masters and spares, reading a legacy Shinken configuration tree, with
/// retention in MongoDB so that a spare scheduler that takes over keeps every state.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "shinken.io",
    version = "v1alpha1",
    kind = "ShinkenCluster",
    plural = "shinkenclusters",
    singular = "shinkencluster",
    shortname = "shc",
    category = "shinken",
    namespaced,
    status = "ShinkenClusterStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether every daemon that should run (masters and spares, fenced ones aside) is ready"}"#,
    printcolumn = r#"{"name":"Daemons","type":"string","jsonPath":".status.readyDaemons","description":"Ready daemon pods out of those wanted"}"#,
    printcolumn = r#"{"name":"Arbiter","type":"string","jsonPath":".status.activeArbiter","description":"The arbiter that leads now"}"#,
    printcolumn = r#"{"name":"Last Takeover","type":"date","jsonPath":".status.lastTakeover.time","description":"When a spare last took over"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ShinkenClusterSpec {
    /// Image holding the `shinken` binary and the monitoring plugins, for every daemon.
    #[x_kube(validation = Rule::new("self != ''").message("image must not be empty"))]
    pub image: String,
    /// Pull policy of that image (Always, IfNotPresent, Never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['Always', 'IfNotPresent', 'Never']").message("imagePullPolicy is Always, IfNotPresent or Never"))]
    pub image_pull_policy: Option<String>,
    /// The legacy Shinken/Nagios object configuration (hosts, services, commands, ...).
    #[serde(default)]
    pub config: LegacyConfig,
    /// Masters and spares per daemon role.
    #[serde(default)]
    pub roles: Roles,
    /// How fast a dead daemon is detected (Shinken's daemon definition keys, in seconds).
    #[serde(default)]
    pub failover: FailoverTimings,
    /// Where schedulers keep host and service states across takeovers.
    #[serde(default)]
    pub retention: Retention,
    /// Name of the Secret (key `token`) holding the token the daemons share. Generated as
    /// `<cluster>-token` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
}

/// The user's configuration tree, held in ConfigMaps.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LegacyConfig {
    /// ConfigMaps whose keys are files of the tree. Kubernetes forbids `/` in a key: write it as
    /// `__` (`hosts__web.cfg` is `hosts/web.cfg`). Every `.cfg` file is read, as a `cfg_dir`.
    #[serde(default)]
    pub config_maps: Vec<ConfigMapSource>,
    /// Main-file parameters (`interval_length`, `enable_notifications`, ...), as `key=value`
    /// lines of `shinken.cfg`. The operator writes the main file itself.
    #[serde(default)]
    pub main: BTreeMap<String, String>,
    /// Secrets whose keys are resource files (`$USER1$=...` lines), read with `resource_file`:
    /// the place for passwords used by check commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_secrets: Vec<String>,
}

/// One ConfigMap of the tree.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// The ConfigMap's name, in the cluster's namespace.
    pub name: String,
    /// Directory of the tree its keys go under (none: the top of the tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

/// The six roles.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Roles {
    /// Reads the configuration, cuts it, dispatches it, watches every daemon. One master, at most
    /// one spare.
    #[serde(default = "RoleSpec::one_and_spare")]
    #[x_kube(validation = Rule::new("self.masters == 1 && self.spares <= 1").message("the arbiter has exactly one master and at most one spare"))]
    pub arbiter: RoleSpec,
    /// Owns hosts and services: schedules checks, keeps states. Several masters shard the hosts.
    #[serde(default = "RoleSpec::one_and_spare")]
    pub scheduler: RoleSpec,
    /// Runs the checks. Several masters share the load.
    #[serde(default = "RoleSpec::one_and_spare")]
    pub poller: RoleSpec,
    /// Runs notifications and event handlers.
    #[serde(default = "RoleSpec::one_and_spare")]
    pub reactionner: RoleSpec,
    /// Gathers broks: the web UI, the JSON API, metrics and the monitoring log.
    #[serde(default = "RoleSpec::one_and_spare")]
    pub broker: RoleSpec,
    /// Takes passive results and external commands.
    #[serde(default = "RoleSpec::one_and_spare")]
    pub receiver: RoleSpec,
}

impl Default for Roles {
    fn default() -> Roles {
        Roles {
            arbiter: RoleSpec::one_and_spare(),
            scheduler: RoleSpec::one_and_spare(),
            poller: RoleSpec::one_and_spare(),
            reactionner: RoleSpec::one_and_spare(),
            broker: RoleSpec::one_and_spare(),
            receiver: RoleSpec::one_and_spare(),
        }
    }
}

/// Masters, spares and placement of one role.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// Daemons that hold work (each a Deployment of one pod).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 32").message("masters must be between 0 and 32"))]
    pub masters: i32,
    /// Idle daemons (`spare 1`) that take over the work of a dead master of the same role.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 32").message("spares must be between 0 and 32"))]
    pub spares: i32,
    /// CPU and memory of each pod of the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the role's pods must run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the role's pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity of the role's pods; the operator adds anti-affinity between masters and spares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Keep a master and a spare of this role off the same node: `Preferred` (default) or
    /// `Required` (a spare stays Pending rather than share its master's node).
    #[serde(default)]
    pub anti_affinity: AntiAffinity,
    /// Module names listed in the role's daemon definitions (`modules`), defined in the tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
}

fn one() -> i32 {
    1
}

impl RoleSpec {
    /// One master and one spare, the default for every role.
    pub fn one_and_spare() -> RoleSpec {
        RoleSpec {
            masters: 1,
            spares: 1,
            resources: None,
            node_selector: None,
            tolerations: None,
            affinity: None,
            anti_affinity: AntiAffinity::Preferred,
            modules: Vec::new(),
        }
    }
}

/// Strength of the anti-affinity between a master and its spares.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AntiAffinity {
    #[default]
    Preferred,
    Required,
}

/// Failure detection, as Shinken's daemon definitions say it (`check_interval`, `timeout`,
/// `max_check_attempts`), with defaults far tighter than Shinken's 60 s x 3.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.timeout <= self.checkInterval * self.maxCheckAttempts").message("timeout must not exceed checkInterval x maxCheckAttempts"))]
pub struct FailoverTimings {
    /// Seconds between two probes of a daemon by the arbiter.
    #[serde(default = "FailoverTimings::default_check_interval")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("checkInterval must be between 1 and 3600 seconds"))]
    pub check_interval: i32,
    /// Seconds a probe may take.
    #[serde(default = "FailoverTimings::default_timeout")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 600").message("timeout must be between 1 and 600 seconds"))]
    pub timeout: i32,
    /// Failed probes in a row before a daemon is dead and its work moves to a spare.
    #[serde(default = "FailoverTimings::default_max_check_attempts")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("maxCheckAttempts must be between 1 and 100"))]
    pub max_check_attempts: i32,
    /// Seconds a master's pod may be not Ready before the operator declares it dead (a deleted,
    /// evicted or crash-looping pod is declared at once).
    #[serde(default = "FailoverTimings::default_pod_failure_grace")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3600").message("podFailureGraceSeconds must be between 0 and 3600"))]
    pub pod_failure_grace_seconds: i32,
}

impl FailoverTimings {
    fn default_check_interval() -> i32 {
        2
    }
    fn default_timeout() -> i32 {
        2
    }
    fn default_max_check_attempts() -> i32 {
        3
    }
    fn default_pod_failure_grace() -> i32 {
        10
    }
}

impl Default for FailoverTimings {
    fn default() -> FailoverTimings {
        FailoverTimings {
            check_interval: Self::default_check_interval(),
            timeout: Self::default_timeout(),
            max_check_attempts: Self::default_max_check_attempts(),
            pod_failure_grace_seconds: Self::default_pod_failure_grace(),
        }
    }
}

/// Retention: a MongoDB the operator runs, or one the user already has.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.managed) && has(self.external))").message("retention is either managed or external, not both"))]
pub struct Retention {
    /// A MongoDB StatefulSet run by the operator (the default when `external` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedMongo>,
    /// An existing MongoDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMongo>,
}

/// The operator's own MongoDB.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedMongo {
    /// MongoDB image.
    #[serde(default = "ManagedMongo::default_image")]
    pub image: String,
    /// Size of its volume.
    #[serde(default = "ManagedMongo::default_storage_size")]
    pub storage_size: String,
    /// StorageClass of its volume (none: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Database name.
    #[serde(default = "default_database")]
    pub database: String,
}

impl ManagedMongo {
    fn default_image() -> String {
        "mongo:7.0".to_string()
    }
    fn default_storage_size() -> String {
        "1Gi".to_string()
    }
}

impl Default for ManagedMongo {
    fn default() -> ManagedMongo {
        ManagedMongo {
            image: Self::default_image(),
            storage_size: Self::default_storage_size(),
            storage_class_name: None,
            database: default_database(),
        }
    }
}

fn default_database() -> String {
    "shinken".to_string()
}

/// A MongoDB that exists already.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMongo {
    /// Secret holding the connection URI.
    pub uri_secret: SecretKey,
    /// Database name.
    #[serde(default = "default_database")]
    pub database: String,
}

/// A key of a Secret in the cluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKey {
    /// The Secret's name.
    pub name: String,
    /// The key (default `uri`).
    #[serde(default = "SecretKey::default_key")]
    pub key: String,
}

impl SecretKey {
    fn default_key() -> String {
        "uri".to_string()
    }
}

/// What the operator sees and did.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShinkenClusterStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `ConfigValid`, `RetentionReady`, `Degraded`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// `ready/wanted` daemon pods, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_daemons: Option<String>,
    /// The arbiter that leads now, as the arbiters say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_arbiter: Option<String>,
    /// Every daemon: its pod, whether it is a master or a spare, and whether it works now.
    #[serde(default)]
    pub daemons: Vec<DaemonStatus>,
    /// Masters whose Deployment the operator scaled to 0 after a takeover (fenced until a
    /// switchover brings them back or their spare fails in turn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fenced: Vec<String>,
    /// The last takeover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_takeover: Option<Takeover>,
    /// Hash of the configuration the pods run (the last valid one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

/// One daemon as the operator sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    /// The daemon's name in the configuration (`scheduler-0`, `scheduler-spare-0`).
    pub name: String,
    /// Its role.
    pub role: String,
    /// Defined as a spare.
    pub spare: bool,
    /// The pod running it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Its pod is Ready.
    pub ready: bool,
    /// It holds work now (a part, or the lead for an arbiter), as the arbiter says.
    pub active: bool,
}

/// A spare taking over.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Takeover {
    /// When (RFC 3339).
    pub time: String,
    /// The daemon declared dead.
    pub daemon: String,
    /// Why.
    pub reason: String,
}

/// Conditions as a list-map keyed by `type`, so that server-side apply merges them by type.
fn conditions_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut s = g.subschema_for::<Vec<Condition>>();
    if let Some(o) = s.as_object_mut() {
        o.insert("x-kubernetes-list-type".into(), "map".into());
        o.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    }
    s
}

/// An empty cluster: what the in-memory API of the tests needs to know the status subresource.
impl Default for ShinkenCluster {
    fn default() -> ShinkenCluster {
        ShinkenCluster::new("", ShinkenClusterSpec::default())
    }
}

/// The daemon roles, in the order the operator lays them out.
pub const ROLES: [&str; 6] = ["arbiter", "scheduler", "poller", "reactionner", "broker", "receiver"];

impl Roles {
    /// The spec of a role by its name.
    pub fn get(&self, role: &str) -> &RoleSpec {
        match role {
            "arbiter" => &self.arbiter,
            "scheduler" => &self.scheduler,
            "poller" => &self.poller,
            "reactionner" => &self.reactionner,
            "broker" => &self.broker,
            _ => &self.receiver,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn a_minimal_spec_takes_every_default() {
        let spec: ShinkenClusterSpec = serde_json::from_value(serde_json::json!({ "image": "shinken:1" })).unwrap();
        assert_eq!(spec.roles.scheduler.masters, 1);
        assert_eq!(spec.roles.scheduler.spares, 1);
        assert_eq!(spec.failover.check_interval, 2);
        assert_eq!(spec.failover.max_check_attempts, 3);
        assert!(spec.retention.external.is_none());
    }

    #[test]
    fn the_crd_has_names_status_columns_and_rules() {
        let crd = serde_json::to_string(&ShinkenCluster::crd()).unwrap();
        for needle in [
            "\"shortNames\":[\"shc\"]",
            "\"categories\":[\"shinken\"]",
            "\"status\":{}",
            "Last Takeover",
            "x-kubernetes-validations",
            "retention is either managed or external",
            "\"x-kubernetes-list-type\":\"map\"",
        ] {
            assert!(crd.contains(needle), "CRD lacks {needle}");
        }
    }
}
