//! Where things are in a daemon's pod, and how the objects the operator owns are named.
//!
//! Every daemon pod mounts the same configuration tree at [`CONFIG_ROOT`]:
//!
//! ```text
//! /etc/shinken/shinken.cfg        generated main file: spec.config.main as key=value lines,
//!                                 cfg_file=daemons.cfg, cfg_dir=objects, one resource_file= per
//!                                 resource Secret key and the retention resource file
//! /etc/shinken/daemons.cfg        generated topology: one define per daemon with its Service
//!                                 address, the failover timings, and the retention module
//! /etc/shinken/objects/...        the user's files (from spec.config.configMaps; key `a__b.cfg`
//!                                 is `a/b.cfg` under the ConfigMap's directory); their own daemon
//!                                 definitions are commented out, line numbers kept
//! /etc/shinken/resources/S/K      key K of resource Secret S (spec.config.resourceSecrets)
//! /etc/shinken/retention/retention.cfg   `$MONGODB_URI$=...` (Secret `<cluster>-retention`)
//! ```
//!
//! The token comes from the Secret's `token` key through the `SHINKEN_TOKEN` environment variable.

/// Where the tree is mounted in every daemon pod.
pub const CONFIG_ROOT: &str = "/etc/shinken";
/// The generated main file, relative to the root.
pub const MAIN_FILE: &str = "shinken.cfg";
/// The generated daemon topology, relative to the root.
pub const DAEMONS_FILE: &str = "daemons.cfg";
/// The directory of the user's files, relative to the root.
pub const OBJECTS_DIR: &str = "objects";
/// The directory of the resource Secrets, relative to the root.
pub const RESOURCES_DIR: &str = "resources";
/// The retention resource file, relative to the root.
pub const RETENTION_FILE: &str = "retention/retention.cfg";
/// The resource macro holding the MongoDB URI.
pub const MONGODB_URI_MACRO: &str = "$MONGODB_URI$";

/// Label keys the operator puts on everything it owns.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_DAEMON: &str = "shinken.io/daemon";
pub const LABEL_SPARE: &str = "shinken.io/spare";
/// Annotation on pod templates: the hash of the configuration, so a change rolls the pods.
pub const ANNOTATION_CONFIG_HASH: &str = "shinken.io/config-hash";
/// Annotation on pod templates: the hash of the whole template the operator wrote, so that a pod
/// deleted by a rollout (another template) is told apart from a pod that failed.
pub const ANNOTATION_TEMPLATE_HASH: &str = "shinken.io/template-hash";
/// Annotation on a ShinkenCluster: `<daemon>` asks to bring a fenced master back and move its
/// work back to it (the arbiter's switchover). Removed by the operator once done.
pub const ANNOTATION_SWITCHOVER: &str = "shinken.io/switchover";
/// The value of `app.kubernetes.io/name` on daemon objects.
pub const APP_NAME: &str = "shinken";
/// Field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "shinken-operator";

/// The name of a daemon in the generated configuration: `scheduler-0` for masters,
/// `scheduler-spare-0` for spares.
pub fn daemon_name(role: &str, spare: bool, index: usize) -> String {
    if spare {
        format!("{role}-spare-{index}")
    } else {
        format!("{role}-{index}")
    }
}

/// The Deployment and Service of a daemon: `<cluster>-<daemon>`.
pub fn object_name(cluster: &str, daemon: &str) -> String {
    format!("{cluster}-{daemon}")
}

/// Shinken's default port of a role.
pub fn default_port(role: &str) -> u16 {
    match role {
        "arbiter" => 7770,
        "scheduler" => 7768,
        "poller" => 7771,
        "reactionner" => 7769,
        "broker" => 7772,
        _ => 7773,
    }
}

/// The Secret holding the shared token when the spec names none.
pub fn token_secret_name(cluster: &str) -> String {
    format!("{cluster}-token")
}

/// The ConfigMap key of a file path of the tree (`/` is not allowed in a key).
pub fn key_of_path(path: &str) -> String {
    path.replace('/', "__")
}

/// The file path of a ConfigMap key, under an optional directory.
pub fn path_of_key(directory: Option<&str>, key: &str) -> String {
    let file = key.replace("__", "/");
    match directory.map(|d| d.trim_matches('/')).filter(|d| !d.is_empty()) {
        Some(d) => format!("{d}/{file}"),
        None => file,
    }
}

/// Whether a ConfigMap key may hold a file: Kubernetes allows `[-._a-zA-Z0-9]+`; a path made of
/// `..` or empty components would leave the tree.
pub fn path_is_safe(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths_round_trip() {
        assert_eq!(key_of_path("hosts/web.cfg"), "hosts__web.cfg");
        assert_eq!(path_of_key(None, "hosts__web.cfg"), "hosts/web.cfg");
        assert_eq!(path_of_key(Some("/etc/"), "web.cfg"), "etc/web.cfg");
        assert_eq!(path_of_key(Some(""), "a.cfg"), "a.cfg");
    }

    #[test]
    fn paths_leaving_the_tree_are_unsafe() {
        assert!(path_is_safe("a/b.cfg"));
        assert!(!path_is_safe("../b.cfg"));
        assert!(!path_is_safe("a//b.cfg"));
        assert!(!path_is_safe(""));
    }
}
