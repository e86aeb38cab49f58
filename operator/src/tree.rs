//! The configuration tree the daemons read in their pods, built from the spec and the user's
//! ConfigMaps, and validated with the configuration crate before anything that runs is touched.
//!
//! Pure but for [`validate`], which writes the tree to a scratch directory because the loader
//! reads files (`cfg_dir` semantics are those of a file system).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::crd::{ROLES, ShinkenClusterSpec};
use crate::layout::{self, DAEMONS_FILE, MAIN_FILE, MONGODB_URI_MACRO, OBJECTS_DIR, RESOURCES_DIR, RETENTION_FILE};

/// The name of the retention module the operator defines in `daemons.cfg`.
pub const RETENTION_MODULE: &str = "shinken-operator-retention";

/// Where a file of the tree came from, to name it in error messages as the user knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Written by the operator.
    Generated,
    /// A key of one of the user's ConfigMaps.
    ConfigMap { name: String, key: String },
    /// A key of a Secret.
    Secret { name: String, key: String },
}

/// A file of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub content: String,
    pub origin: Origin,
}

/// The whole tree, by path relative to [`layout::CONFIG_ROOT`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: BTreeMap<String, TreeFile>,
    /// Lines the user wrote that the operator replaced (their own daemon definitions), to report.
    pub notes: Vec<String>,
}

/// What the tree is made from, fetched by the caller.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The cluster's name and namespace (Service addresses).
    pub cluster: String,
    pub namespace: String,
    /// The user's ConfigMaps by name: key -> content. A missing one is an error.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// The resource Secrets by name: key -> content.
    pub resource_secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The MongoDB URI the schedulers and arbiters use (none: not known yet).
    pub mongodb_uri: Option<String>,
    /// The database name.
    pub database: String,
}

/// Builds the tree. Errors are the user's mistakes, one per line, naming the ConfigMap and key.
pub fn build(spec: &ShinkenClusterSpec, inputs: &Inputs) -> Result<Tree, Vec<String>> {
    let mut tree = Tree::default();
    let mut errors = Vec::new();

    for source in &spec.config.config_maps {
        let Some(data) = inputs.config_maps.get(&source.name) else {
            errors.push(format!("ConfigMap {}: not found in namespace {}", source.name, inputs.namespace));
            continue;
        };
        for (key, content) in data {
            let path = layout::path_of_key(source.directory.as_deref(), key);
            if !layout::path_is_safe(&path) {
                errors.push(format!("ConfigMap {} key {key}: the path {path} leaves the tree", source.name));
                continue;
            }
            let full = format!("{OBJECTS_DIR}/{path}");
            let (content, replaced) = comment_out_daemon_definitions(content);
            for (line, what) in replaced {
                tree.notes.push(format!(
                    "ConfigMap {} key {key} line {line}: {what} replaced by the daemons of spec.roles",
                    source.name
                ));
            }
            let origin = Origin::ConfigMap {
                name: source.name.clone(),
                key: key.clone(),
            };
            if let Some(previous) = tree.files.insert(full.clone(), TreeFile { content, origin }) {
                errors.push(format!(
                    "{full}: given twice ({} and ConfigMap {} key {key})",
                    describe(&previous.origin),
                    source.name
                ));
            }
        }
    }

    let mut resource_files = Vec::new();
    for name in &spec.config.resource_secrets {
        let Some(data) = inputs.resource_secrets.get(name) else {
            errors.push(format!("Secret {name}: not found in namespace {}", inputs.namespace));
            continue;
        };
        for (key, content) in data {
            let path = format!("{RESOURCES_DIR}/{name}/{key}");
            resource_files.push(path.clone());
            let origin = Origin::Secret {
                name: name.clone(),
                key: key.clone(),
            };
            tree.files.insert(
                path,
                TreeFile {
                    content: content.clone(),
                    origin,
                },
            );
        }
    }
    if let Some(uri) = &inputs.mongodb_uri {
        resource_files.push(RETENTION_FILE.to_string());
        tree.files
            .insert(RETENTION_FILE.to_string(), generated(format!("{MONGODB_URI_MACRO}={uri}\n")));
    }

    tree.files
        .insert(MAIN_FILE.to_string(), generated(main_file(spec, &resource_files)));
    tree.files.insert(DAEMONS_FILE.to_string(), generated(daemons_file(spec, inputs)));

    if errors.is_empty() { Ok(tree) } else { Err(errors) }
}

fn generated(content: String) -> TreeFile {
    TreeFile {
        content,
        origin: Origin::Generated,
    }
}

fn describe(origin: &Origin) -> String {
    match origin {
        Origin::Generated => "generated by the operator".to_string(),
        Origin::ConfigMap { name, key } => format!("ConfigMap {name} key {key}"),
        Origin::Secret { name, key } => format!("Secret {name} key {key}"),
    }
}

/// The main file: the spec's parameters, then the includes.
fn main_file(spec: &ShinkenClusterSpec, resource_files: &[String]) -> String {
    let mut out = String::from("# Generated by shinken-operator from the ShinkenCluster: do not edit.\n");
    for (k, v) in &spec.config.main {
        let _ = writeln!(out, "{k}={v}");
    }
    let _ = writeln!(out, "cfg_file={DAEMONS_FILE}");
    let _ = writeln!(out, "cfg_dir={OBJECTS_DIR}");
    for r in resource_files {
        let _ = writeln!(out, "resource_file={r}");
    }
    out
}

/// The daemon topology: one definition per daemon, addressed by its Service.
fn daemons_file(spec: &ShinkenClusterSpec, inputs: &Inputs) -> String {
    let f = &spec.failover;
    let mut out = String::from("# Generated by shinken-operator from spec.roles: do not edit.\n");
    if inputs.mongodb_uri.is_some() {
        let _ = write!(
            out,
            "\ndefine module {{\n    module_name {RETENTION_MODULE}\n    module_type mongodb_retention\n    uri {MONGODB_URI_MACRO}\n    database {}\n}}\n",
            inputs.database
        );
    }
    for role in ROLES {
        let r = spec.roles.get(role);
        let mut modules = r.modules.clone();
        if role == "scheduler" && inputs.mongodb_uri.is_some() {
            modules.insert(0, RETENTION_MODULE.to_string());
        }
        for (spare, count) in [(false, r.masters), (true, r.spares)] {
            for i in 0..count.max(0) as usize {
                let name = layout::daemon_name(role, spare, i);
                let address = format!("{}.{}.svc", layout::object_name(&inputs.cluster, &name), inputs.namespace);
                let _ = write!(
                    out,
                    "\ndefine {role} {{\n    {role}_name {name}\n    address {address}\n    port {}\n    spare {}\n    check_interval {}\n    timeout {}\n    data_timeout {}\n    max_check_attempts {}\n",
                    layout::default_port(role),
                    u8::from(spare),
                    f.check_interval,
                    f.timeout,
                    f.timeout.max(5),
                    f.max_check_attempts
                );
                if !modules.is_empty() {
                    let _ = writeln!(out, "    modules {}", modules.join(", "));
                }
                out.push_str("}\n");
            }
        }
    }
    out
}

const DAEMON_KINDS: [&str; 6] = ["arbiter", "scheduler", "poller", "reactionner", "broker", "receiver"];

/// Comments out `define <daemon> { ... }` blocks (the operator defines the daemons), keeping
/// every line so that file:line messages stay right. Returns the text and (line, what) replaced.
pub fn comment_out_daemon_definitions(text: &str) -> (String, Vec<(usize, String)>) {
    let mut out = String::with_capacity(text.len());
    let mut replaced = Vec::new();
    let mut inside = false;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let code = line.split([';', '#']).next().unwrap_or("");
        if !inside {
            let mut words = code.split_whitespace();
            if words.next() == Some("define")
                && let Some(kind) = words.next().map(|w| w.trim_end_matches('{'))
                && DAEMON_KINDS.contains(&kind)
            {
                inside = true;
                replaced.push((n + 1, format!("define {kind}")));
            }
        }
        if inside {
            out.push_str("# [shinken-operator] ");
            out.push_str(line);
            if code.contains('}') {
                inside = false;
            }
        } else {
            out.push_str(line);
        }
    }
    (out, replaced)
}

/// A tree the configuration crate accepted: its hash, and warnings to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub hash: String,
    pub warnings: Vec<String>,
    pub hosts: usize,
    pub services: usize,
}

/// Loads the tree as the daemons will and returns its errors (file:line: object: message, files
/// named as the user knows them) or what it holds.
pub fn validate(tree: &Tree) -> Result<Validated, Vec<String>> {
    let dir = Scratch::new().map_err(|e| vec![format!("cannot write a scratch tree: {e}")])?;
    for (path, file) in &tree.files {
        let full = dir.0.join(path);
        let written = full
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|_| std::fs::write(&full, &file.content));
        if let Err(e) = written {
            return Err(vec![format!("cannot write a scratch tree: {e}")]);
        }
    }
    let cfg = shinken_config::load(&dir.0.join(MAIN_FILE)).map_err(|e| vec![e.to_string()])?;
    let rename = |report: shinken_config::diag::Report| {
        let rel = Path::new(&report.file)
            .strip_prefix(&dir.0)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or(report.file.clone());
        let file = tree.files.get(&rel).map(|f| describe(&f.origin)).unwrap_or(rel);
        shinken_config::diag::Report { file, ..report }.to_string()
    };
    let errors: Vec<String> = cfg
        .diag
        .reports(shinken_config::diag::Severity::Error, &cfg.sources)
        .into_iter()
        .map(rename)
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let warnings = cfg
        .diag
        .reports(shinken_config::diag::Severity::Warning, &cfg.sources)
        .into_iter()
        .map(rename)
        .collect();
    let count = |k| cfg.objects.get(&k).map_or(0, Vec::len);
    Ok(Validated {
        hash: hash(tree),
        warnings,
        hosts: count(shinken_config::schema::Kind::Host),
        services: count(shinken_config::schema::Kind::Service),
    })
}

/// A hash over every path and content (the arbiter's FNV-1a `magic_hash`): a change of any
/// file rolls the pods.
pub fn hash(tree: &Tree) -> String {
    let mut all = String::new();
    for (path, file) in &tree.files {
        for part in [path.as_str(), "\0", file.content.as_str(), "\0"] {
            all.push_str(part);
        }
    }
    shinken::arbiter::whole_cfg::magic_hash(&all)
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "shinken-operator-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p)?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ConfigMapSource;

    pub(crate) fn spec_with(maps: &[&str]) -> ShinkenClusterSpec {
        let mut spec: ShinkenClusterSpec = serde_json::from_value(serde_json::json!({ "image": "shinken:1" })).unwrap();
        spec.config.config_maps = maps
            .iter()
            .map(|m| ConfigMapSource {
                name: m.to_string(),
                directory: None,
            })
            .collect();
        spec
    }

    pub(crate) const OBJECTS: &str = "define command {\n    command_name check_dummy\n    command_line /bin/true\n}\n\
define host {\n    host_name web1\n    check_command check_dummy\n    max_check_attempts 3\n}\n\
define service {\n    host_name web1\n    service_description http\n    check_command check_dummy\n    check_interval 1\n    retry_interval 1\n    max_check_attempts 3\n}\n";

    fn inputs(content: &str) -> Inputs {
        Inputs {
            cluster: "prod".into(),
            namespace: "mon".into(),
            config_maps: [(
                "objs".to_string(),
                [("hosts__web.cfg".to_string(), content.to_string())].into_iter().collect(),
            )]
            .into_iter()
            .collect(),
            resource_secrets: BTreeMap::new(),
            mongodb_uri: Some("mongodb://u:p@prod-mongodb.mon.svc:27017/?authSource=admin".into()),
            database: "shinken".into(),
        }
    }

    #[test]
    fn a_good_tree_validates_with_every_daemon_and_the_retention_module() {
        let tree = build(&spec_with(&["objs"]), &inputs(OBJECTS)).unwrap();
        let v = validate(&tree).unwrap();
        assert_eq!((v.hosts, v.services), (1, 1));
        let daemons = &tree.files[DAEMONS_FILE].content;
        assert!(daemons.contains("scheduler_name scheduler-spare-0\n    address prod-scheduler-spare-0.mon.svc"));
        assert!(daemons.contains("modules shinken-operator-retention"));
        assert!(tree.files[MAIN_FILE].content.contains("resource_file=retention/retention.cfg"));
        // The configuration crate reads the URI from the resource file into the module.
        let dir = Scratch::new().unwrap();
        for (p, f) in &tree.files {
            let full = dir.0.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, &f.content).unwrap();
        }
        let cfg = shinken_config::load(&dir.0.join(MAIN_FILE)).unwrap();
        let module = cfg.topology.module(RETENTION_MODULE).unwrap();
        assert_eq!(module.params["uri"], "mongodb://u:p@prod-mongodb.mon.svc:27017/?authSource=admin");
        assert_eq!(cfg.topology.by_role(shinken_config::daemons::Role::Scheduler).count(), 2);
    }

    #[test]
    fn errors_name_the_configmap_key_line_and_object() {
        let bad = OBJECTS.replace(
            "check_command check_dummy\n    check_interval",
            "check_command check_missing\n    check_interval",
        );
        let tree = build(&spec_with(&["objs"]), &inputs(&bad)).unwrap();
        let errors = validate(&tree).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("ConfigMap objs key hosts__web.cfg:") && e.contains("check_missing")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_missing_configmap_is_an_error() {
        let errors = build(&spec_with(&["objs", "nope"]), &inputs(OBJECTS)).unwrap_err();
        assert_eq!(errors, vec!["ConfigMap nope: not found in namespace mon".to_string()]);
    }

    #[test]
    fn user_daemon_definitions_are_commented_out_keeping_lines() {
        let text = "define host {\n  host_name a\n}\ndefine scheduler {\n  scheduler_name s ; old\n  address 1.2.3.4\n}\ndefine host{\n host_name b\n}\n";
        let (out, replaced) = comment_out_daemon_definitions(text);
        assert_eq!(out.lines().count(), text.lines().count());
        assert_eq!(replaced, vec![(4, "define scheduler".to_string())]);
        assert!(out.contains("# [shinken-operator] define scheduler {\n# [shinken-operator]   scheduler_name s"));
        assert!(out.contains("# [shinken-operator] }\ndefine host{"));
    }

    #[test]
    fn the_hash_changes_with_any_file() {
        let a = build(&spec_with(&["objs"]), &inputs(OBJECTS)).unwrap();
        let b = build(&spec_with(&["objs"]), &inputs(&OBJECTS.replace("web1", "web2"))).unwrap();
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a), hash(&a.clone()));
    }
}
