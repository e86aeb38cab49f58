//! `shinken-operator import`: an existing Shinken tree (`/etc/shinken`) to a ShinkenCluster and
//! the ConfigMaps and Secrets it reads, so that a user migrates with `kubectl apply -f`.
//!
//! The tree is loaded by the configuration crate, exactly as the daemons load it: a tree the
//! daemons would refuse is refused here too, with every error located (`file:line`), rather than
//! moved into a cluster that cannot start. What the tree says is then split three ways:
//!
//! - what the ShinkenCluster spec models (masters and spares per role, failover timings, the
//!   MongoDB retention module, modules per role, main-file parameters) goes into the spec,
//!   **unchanged**: `import` carries a tree over, it does not tune it;
//! - the files (objects, templates, even the daemon definitions, which the operator comments out
//!   in the pods) go as they are into ConfigMaps, resource files into a Secret;
//! - everything else is listed in [`Imported::not_carried`] with where it comes from, and printed
//!   at the top of the YAML: nothing is dropped silently.
//!
//! Pure but for reading the tree: the result is values, printed by [`Imported::to_yaml`].

use crate::crd::{
    ConfigMapSource, ExternalMongo, FailoverTimings, LegacyConfig, Retention, RoleSpec, Roles, SecretKey, ShinkenCluster,
    ShinkenClusterSpec,
};
use crate::layout;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use shinken_config::daemons::{DaemonDef, ModuleDef, Role};
use shinken_config::diag::{Diagnostics, Severity};
use shinken_config::reader;
use shinken_config::schema::Kind;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// The image written in the spec when `--image` is not given: the release this operator ships
/// with, so that an imported cluster runs daemons that understand the operator's layout.
pub const DEFAULT_IMAGE: &str = "ghcr.io/shinken-on-k8s/shinken:0.1.0";

/// Most bytes of data (keys and values) put in one ConfigMap. Kubernetes refuses an object over
/// 1 MiB; the margin leaves room for the metadata.
pub const MAX_CONFIG_MAP_BYTES: usize = 900_000;

/// Client-side `kubectl apply` copies each object into its `last-applied-configuration`
/// annotation, and annotations hold at most 256 KiB: past this size of data the YAML says to
/// apply it server-side, which keeps no such copy.
const CLIENT_SIDE_APPLY_BYTES: usize = 200_000;

/// Main-file directives that include files: the files are carried themselves, and the operator
/// writes its own directives for where they land in the pods.
const INCLUDE_KEYS: [&str; 3] = ["cfg_file", "cfg_dir", "resource_file"];

/// Main-file parameters that belong to a daemon process on a machine, not to the monitoring
/// configuration: in a pod the paths do not exist (or are the image's), the process user is the
/// image's, and daemons talk over the operator's Services with a shared token, not TLS set up by
/// hand. Each comes with the reason printed in the not-carried list.
const DAEMON_ONLY_PARAMS: [(&str, &str); 40] = [
    ("lock_file", "a daemon's pid file; the pod's container is the process"),
    ("pidfile", "a daemon's pid file; the pod's container is the process"),
    ("local_log", "a daemon's log file; daemons in pods log to stdout (kubectl logs)"),
    ("log_file", "a daemon's log file; daemons in pods log to stdout (kubectl logs)"),
    ("debug_file", "a daemon's debug file; daemons in pods log to stdout (kubectl logs)"),
    (
        "log_archive_path",
        "a log archive directory; daemons in pods log to stdout (kubectl logs)",
    ),
    (
        "daemons_log_folder",
        "a log directory; daemons in pods log to stdout (kubectl logs)",
    ),
    ("workdir", "a daemon's working directory; the image sets it"),
    (
        "modules_dir",
        "the Python modules directory of Shinken; the daemons are one Rust binary",
    ),
    (
        "pack_distribution_file",
        "a state file of the arbiter on its machine; the operator's arbiter keeps its state itself",
    ),
    (
        "state_retention_file",
        "a retention file on a machine; the operator keeps retention in MongoDB",
    ),
    (
        "retention_file",
        "a retention file on a machine; the operator keeps retention in MongoDB",
    ),
    ("status_file", "a status file on a machine; the broker serves status over its API"),
    ("object_cache_file", "a cache file on a machine"),
    ("precached_object_file", "a cache file on a machine"),
    ("temp_file", "a temporary file on a machine"),
    ("temp_path", "a temporary directory on a machine"),
    (
        "check_result_path",
        "a spool directory on a machine; results travel over the daemons' API",
    ),
    (
        "command_file",
        "an external-command pipe on a machine; commands go to the receiver's API",
    ),
    ("p1_file", "the embedded Perl interpreter's file of Nagios"),
    ("user", "the process user; the image and the pod's securityContext set it"),
    ("group", "the process group; the image and the pod's securityContext set it"),
    ("shinken_user", "the process user; the image and the pod's securityContext set it"),
    ("shinken_group", "the process group; the image and the pod's securityContext set it"),
    ("nagios_user", "the process user; the image and the pod's securityContext set it"),
    ("nagios_group", "the process group; the image and the pod's securityContext set it"),
    ("idontcareaboutsecurity", "running as root is the pod's securityContext's business"),
    (
        "daemon_enabled",
        "whether a machine starts a daemon; the operator starts every daemon of the spec",
    ),
    ("daemonize", "daemons in pods run in the foreground"),
    ("daemons_initial_port", "daemon ports; the operator's Services set them"),
    ("use_ssl", "TLS between daemons is not modelled; daemons share a bearer token"),
    ("ca_cert", "TLS between daemons is not modelled; daemons share a bearer token"),
    ("server_cert", "TLS between daemons is not modelled; daemons share a bearer token"),
    ("server_key", "TLS between daemons is not modelled; daemons share a bearer token"),
    (
        "hard_ssl_name_check",
        "TLS between daemons is not modelled; daemons share a bearer token",
    ),
    ("http_backend", "the HTTP server of Shinken's Python daemons"),
    ("daemon_thread_pool_size", "a thread pool of Shinken's Python daemons"),
    ("max_queue_size", "a queue of Shinken's Python daemons"),
    ("http_proxy", "a proxy on a machine; set it in the pods' environment"),
    ("https_proxy", "a proxy on a machine; set it in the pods' environment"),
];

/// Module types the daemons implement. Kept here rather than taken from the daemons crate, which
/// the operator does not link: it is the daemons' `retention::MONGODB_TYPES`, compared with
/// [`ModuleDef::is_type`] (which treats `_` and `-` alike).
const MONGODB_RETENTION_TYPES: [&str; 2] = ["mongodb_retention", "retention_mongodb"];

/// The key, in the resources Secret, of the resource macros (`$USER1$=...`) written in the main
/// file itself: the operator writes its own main file, so they travel as a resource file.
pub const MAIN_MACROS_KEY: &str = "main-macros.cfg";

/// Where files outside the tree's directory land, under the tree (the pods' tree has nothing
/// outside `/etc/shinken/objects`).
const OUTSIDE_DIR: &str = "_outside";

/// What `import` is told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The ShinkenCluster's name; also the prefix of the ConfigMaps and Secrets.
    pub name: String,
    /// Written in every object's metadata when given; else `kubectl apply -n` decides.
    pub namespace: Option<String>,
    /// The daemons' image.
    pub image: String,
}

impl ImportOptions {
    /// Options for a cluster named `name`, in no namespace, with [`DEFAULT_IMAGE`].
    pub fn new(name: impl Into<String>) -> ImportOptions {
        ImportOptions {
            name: name.into(),
            namespace: None,
            image: DEFAULT_IMAGE.to_string(),
        }
    }
}

/// A tree turned into Kubernetes objects.
#[derive(Debug, Clone)]
pub struct Imported {
    pub cluster: ShinkenCluster,
    /// The tree's files, `<name>-cfg-<n>`, each under [`MAX_CONFIG_MAP_BYTES`].
    pub config_maps: Vec<ConfigMap>,
    /// `<name>-resources` (resource files) and `<name>-mongodb` (the retention URI), when needed.
    pub secrets: Vec<Secret>,
    /// What the spec cannot express, each with the file:line or object it comes from.
    pub not_carried: Vec<String>,
}

/// Parses `import`'s arguments (those after the word `import`):
/// `PATH --name NAME [--namespace NS] [--image IMAGE]`, `--flag=value` also accepted.
pub fn parse_args(args: &[String]) -> Result<(PathBuf, ImportOptions), String> {
    let mut path = None;
    let mut name = None;
    let mut namespace = None;
    let mut image = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let slot = match flag {
            "--name" => &mut name,
            "--namespace" | "-n" => &mut namespace,
            "--image" => &mut image,
            f if f.starts_with('-') => return Err(format!("import: unknown option {f}")),
            _ => {
                if path.replace(PathBuf::from(arg)).is_some() {
                    return Err(format!("import: one tree at a time (got a second path {arg})"));
                }
                continue;
            }
        };
        let value = match inline {
            Some(v) => v,
            None => it.next().cloned().ok_or_else(|| format!("import: {flag} needs a value"))?,
        };
        *slot = Some(value);
    }
    let path = path.ok_or("import: the path of the tree (its directory or main file) is missing")?;
    let name = name.ok_or("import: --name NAME is required (the ShinkenCluster's name)")?;
    Ok((
        path,
        ImportOptions {
            name,
            namespace,
            image: image.unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
        },
    ))
}

/// Reads the tree at `path` (its directory or its main file) and turns it into objects.
///
/// Errors: the options are not valid Kubernetes names, the tree cannot be read at all, it has
/// configuration errors (all of them listed, `file:line: object: message`, as `check-config`
/// prints them), or a single file is too large for a ConfigMap.
pub fn import_tree(path: &Path, opts: &ImportOptions) -> Result<Imported, String> {
    check_name("--name", &opts.name)?;
    if let Some(ns) = &opts.namespace {
        check_name("--namespace", ns)?;
    }
    if opts.image.trim().is_empty() {
        return Err("import: --image must not be empty".into());
    }
    let cfg = shinken_config::load(path).map_err(|e| format!("import: {e}"))?;
    if cfg.has_errors() {
        let errors = cfg.diag.reports(Severity::Error, &cfg.sources);
        let mut msg = format!(
            "import: {} has {} configuration error{}; fix {} first (`shinken check-config` says the same):",
            cfg.main_file.display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            if errors.len() == 1 { "it" } else { "them" },
        );
        for e in &errors {
            msg.push_str(&format!("\n{e}"));
        }
        return Err(msg);
    }
    let root = normalise(main_dir(&cfg.main_file));
    let main_bytes = std::fs::read(&cfg.main_file).map_err(|e| format!("import: {}: {e}", cfg.main_file.display()))?;
    let main_text = reader::decode(&main_bytes)
        .map_err(|e| format!("import: {}: {e}", cfg.main_file.display()))?
        .into_owned();
    let main_parsed = reader::parse(&main_text, 0, &mut Diagnostics::new());
    let tree = Tree {
        main_rel: rel_to(&root, &cfg.main_file),
        root,
        cfg: &cfg,
    };

    let mut notes = Vec::new();
    let daemons = carried_daemons(&tree, &mut notes);
    duplicates(&tree, &mut notes);
    let roles = roles(&tree, &daemons, &mut notes);
    let failover = failover(&tree, &daemons, &mut notes);
    let mut secrets = Vec::new();
    let (module_lists, retention) = modules(&tree, &daemons, opts, &mut secrets, &mut notes);
    let mut roles = roles;
    for (role, list) in module_lists {
        role_mut(&mut roles, role).modules = list;
    }
    check_object_names(opts, &roles)?;

    let mut resources = BTreeMap::new();
    let main = main_params(&tree, &main_parsed, &mut resources, &mut notes);
    let files = files(&tree, &main_text, &main_parsed, &mut resources, &mut notes)?;
    let config_maps = pack(opts, files)?;
    let mut resource_secrets = Vec::new();
    if !resources.is_empty() {
        let name = format!("{}-resources", opts.name);
        let bytes: usize = resources.iter().map(|(k, v): (&String, &String)| k.len() + v.len()).sum();
        if bytes > MAX_CONFIG_MAP_BYTES {
            return Err(format!(
                "import: the resource files hold {bytes} bytes, more than the {MAX_CONFIG_MAP_BYTES} a Secret takes here"
            ));
        }
        secrets.insert(0, secret(opts, &name, resources));
        resource_secrets.push(name);
    }

    let spec = ShinkenClusterSpec {
        image: opts.image.clone(),
        image_pull_policy: None,
        config: LegacyConfig {
            config_maps: config_maps
                .iter()
                .map(|cm| ConfigMapSource {
                    name: cm.metadata.name.clone().unwrap_or_default(),
                    directory: None,
                })
                .collect(),
            main,
            resource_secrets,
        },
        roles,
        failover,
        retention,
        token_secret: None,
    };
    let mut cluster = ShinkenCluster::new(&opts.name, spec);
    cluster.metadata.namespace = opts.namespace.clone();
    Ok(Imported {
        cluster,
        config_maps,
        secrets,
        not_carried: notes,
    })
}

impl Imported {
    /// The objects as one YAML stream for `kubectl apply -f`: a comment block listing what was
    /// not carried over (read it before applying), then the Secrets and ConfigMaps, then the
    /// ShinkenCluster last, so that what it reads exists when the operator first sees it.
    pub fn to_yaml(&self) -> Result<String, String> {
        let name = self.cluster.metadata.name.as_deref().unwrap_or_default();
        let data_bytes = |m: Option<&BTreeMap<String, String>>| m.map_or(0, |d| d.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
        let largest = (self.config_maps.iter().map(|c| data_bytes(c.data.as_ref())))
            .chain(self.secrets.iter().map(|s| data_bytes(s.string_data.as_ref())))
            .max()
            .unwrap_or(0);
        let apply = if largest > CLIENT_SIDE_APPLY_BYTES {
            "`kubectl apply --server-side -f` (client-side apply cannot keep a copy of ConfigMaps this large in its 256 KiB annotation)"
        } else {
            "`kubectl apply -f`"
        };
        let mut out = format!("# ShinkenCluster {name}, written by `shinken-operator import`; apply with {apply}.\n");
        if self.not_carried.is_empty() {
            out.push_str("# not carried over: nothing; every setting of the tree is in these objects.\n");
        }
        for item in &self.not_carried {
            // One item a line: a newline inside an item would end the comment.
            out.push_str(&format!("# not carried over: {}\n", item.replace(['\r', '\n'], " ")));
        }
        for s in &self.secrets {
            out.push_str("---\n");
            out.push_str(&crate::yaml::document(s)?);
        }
        for cm in &self.config_maps {
            out.push_str("---\n");
            out.push_str(&crate::yaml::document(cm)?);
        }
        out.push_str("---\n");
        out.push_str(&crate::yaml::document(&self.cluster)?);
        Ok(out)
    }
}

/// The loaded tree and where it lies, for paths relative to it.
struct Tree<'a> {
    /// The main file's directory, absolute and without `.`/`..`: the root of every key.
    root: PathBuf,
    /// The main file, relative to the root (`shinken.cfg`), for locations in notes.
    main_rel: String,
    cfg: &'a shinken_config::Config,
}

impl Tree<'_> {
    /// A file's path relative to the root, `/`-separated; a file outside the root goes under
    /// [`OUTSIDE_DIR`] with its absolute path.
    fn rel_of(&self, path: &Path) -> String {
        rel_to(&self.root, path)
    }

    /// `rel/path:line` of a location of the tree.
    fn at(&self, loc: shinken_config::source::Loc) -> String {
        format!("{}:{}", self.rel_of(self.cfg.sources.path(loc.file)), loc.line)
    }

    /// An `imported_from` (`/abs/path:line`, empty for an object Shinken creates itself) made
    /// relative to the root.
    fn located(&self, imported_from: &str, what: &str) -> String {
        if imported_from.is_empty() {
            return format!("(Shinken's default {what})");
        }
        match imported_from.rsplit_once(':') {
            Some((file, line)) => format!("{}:{line}", self.rel_of(Path::new(file))),
            None => imported_from.to_string(),
        }
    }

    /// Where a daemon is defined.
    fn daemon_at(&self, d: &DaemonDef) -> String {
        self.located(&d.imported_from, d.role.name())
    }
}

/// See [`Tree::rel_of`].
fn rel_to(root: &Path, path: &Path) -> String {
    let abs = normalise(path);
    match abs.strip_prefix(root) {
        Ok(rel) => slash_path(rel),
        Err(_) => format!("{OUTSIDE_DIR}/{}", slash_path(abs.strip_prefix("/").unwrap_or(&abs))),
    }
}

/// The directory of the main file, against which its includes are read (`.` for a bare name).
fn main_dir(main_file: &Path) -> &Path {
    main_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The path without `.` and `..`, made absolute against the working directory, without
/// following symbolic links (the loader does not either: `cfg_dir/link/x.cfg` stays there).
fn normalise(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn slash_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// A DNS-1123 label: what a namespace and (with the suffixes added) every object name must be.
fn check_name(flag: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "import: {flag} {name:?} is not a valid name: lower-case letters, digits and '-', starting with a letter, at most 63 characters"
        ))
    }
}

/// The operator names a daemon's Deployment and Service `<cluster>-<daemon>`, and a Service
/// name is at most 63 characters: refuse a cluster name that would make the longest too long,
/// now rather than when the operator fails to create it.
fn check_object_names(opts: &ImportOptions, roles: &Roles) -> Result<(), String> {
    for role in crate::crd::ROLES {
        let spec = roles.get(role);
        for (spare, count) in [(false, spec.masters), (true, spec.spares)] {
            if count <= 0 {
                continue;
            }
            let name = layout::object_name(&opts.name, &layout::daemon_name(role, spare, count as usize - 1));
            if name.len() > 63 {
                return Err(format!(
                    "import: --name {} is too long: the operator would name a Service {name} ({} characters; at most 63)",
                    opts.name,
                    name.len()
                ));
            }
        }
    }
    Ok(())
}

fn role_mut(roles: &mut Roles, role: Role) -> &mut RoleSpec {
    match role {
        Role::Arbiter => &mut roles.arbiter,
        Role::Scheduler => &mut roles.scheduler,
        Role::Poller => &mut roles.poller,
        Role::Reactionner => &mut roles.reactionner,
        Role::Broker => &mut roles.broker,
        Role::Receiver => &mut roles.receiver,
    }
}

/// The daemons the spec can stand for: those of the default realm (the arbiter has none). The
/// operator does not model realms yet, so a daemon of another realm is listed, as are hosts of
/// other realms (no daemon of the operator serves them).
fn carried_daemons<'a>(tree: &Tree<'a>, notes: &mut Vec<String>) -> Vec<&'a DaemonDef> {
    let topo = &tree.cfg.topology;
    let default_realm = topo.default_realm().unwrap_or("Default");
    let mut out = Vec::new();
    for d in &topo.daemons {
        if d.role != Role::Arbiter && d.realm != default_realm {
            notes.push(format!(
                "{}: {} '{}' of realm '{}': realms are not modelled by the operator yet, which runs every daemon in the default realm '{default_realm}' (the realm definitions stay in the files)",
                tree.daemon_at(d),
                d.role.name(),
                d.name,
                d.realm
            ));
            continue;
        }
        out.push(d);
    }
    let mut by_realm: BTreeMap<&str, (usize, String)> = BTreeMap::new();
    for h in tree.cfg.objects(Kind::Host) {
        let Some(realm) = h.get("realm").filter(|r| !r.is_empty() && *r != default_realm) else {
            continue;
        };
        let e = by_realm
            .entry(realm)
            .or_insert_with(|| (0, format!("{}: host '{}'", tree.at(h.loc), h.name().unwrap_or_default())));
        e.0 += 1;
    }
    for (realm, (n, first)) in by_realm {
        notes.push(format!(
            "{first}: {n} host{} of realm '{realm}': the operator's daemons serve the default realm '{default_realm}' only",
            if n == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Objects defined twice under one name: Shinken keeps the later one, and "later" is the order
/// of the main file's includes. In the pods every file sits under one `cfg_dir`, read in path
/// order, so the other definition may win: listed, with the loader's own words.
fn duplicates(tree: &Tree, notes: &mut Vec<String>) {
    for p in tree.cfg.diag.problems() {
        if p.severity != Severity::Warning || !p.message.starts_with("duplicate ") {
            continue;
        }
        let Some(loc) = p.loc else { continue };
        notes.push(format!(
            "{}: {}: {}; the pods read the files in path order, not in the order of the main file's includes, so the other definition may win",
            tree.at(loc),
            p.object,
            p.message
        ));
    }
}

/// Masters and spares per role, as counted among the daemon definitions. A role without any
/// definition has Shinken's default daemon (one master) except the receiver (none), which is
/// what the loader's topology already holds.
fn roles(tree: &Tree, daemons: &[&DaemonDef], notes: &mut Vec<String>) -> Roles {
    let mut roles = Roles::default();
    for role in Role::ALL {
        let of_role: Vec<&DaemonDef> = daemons.iter().copied().filter(|d| d.role == role).collect();
        let mut masters: Vec<&DaemonDef> = of_role.iter().copied().filter(|d| !d.spare).collect();
        let mut spares: Vec<&DaemonDef> = of_role.iter().copied().filter(|d| d.spare).collect();
        let (max_masters, max_spares) = if role == Role::Arbiter { (1, 1) } else { (32, 32) };
        let why = if role == Role::Arbiter {
            "the operator runs one master arbiter and at most one spare"
        } else {
            "the operator runs at most 32 masters and 32 spares of a role"
        };
        for (list, what, max) in [(&mut masters, "master", max_masters), (&mut spares, "spare", max_spares)] {
            for d in list.iter().skip(max) {
                notes.push(format!(
                    "{}: {} '{}': one {what} too many ({why}; its definition stays in the files, commented out in the pods)",
                    tree.daemon_at(d),
                    role.name(),
                    d.name
                ));
            }
            list.truncate(max);
        }
        let mut count = masters.len() as i32;
        if role == Role::Arbiter && count == 0 {
            notes.push(format!(
                "{}: the tree defines no master arbiter (only a spare); the operator runs one master arbiter",
                tree.main_rel
            ));
            count = 1;
        }
        let spec = role_mut(&mut roles, role);
        spec.masters = count;
        spec.spares = spares.len() as i32;
        for d in masters.iter().chain(spares.iter()) {
            let settings = daemon_settings(d);
            if !settings.is_empty() {
                notes.push(format!(
                    "{}: {} '{}': {} (the operator writes the daemons' definitions itself)",
                    tree.daemon_at(d),
                    role.name(),
                    d.name,
                    settings.join(", ")
                ));
            }
        }
    }
    if daemons.iter().any(|d| !d.imported_from.is_empty()) {
        notes.push(
            "daemon definitions: their address, port and (arbiter) host_name: the operator gives each daemon a pod and a Service"
                .to_string(),
        );
    }
    roles
}

/// A daemon's settings that differ from Shinken's defaults and that the spec has no field for
/// (the failover timings are carried in `spec.failover`; modules in the role's `modules`).
fn daemon_settings(d: &DaemonDef) -> Vec<String> {
    let mut v = Vec::new();
    let mut num = |key: &str, value: u32, default: u32| {
        if value != default {
            v.push(format!("{key} {value}"));
        }
    };
    num("data_timeout", d.data_timeout, 120);
    num("polling_interval", d.polling_interval, 1);
    num("weight", d.weight, 1);
    num("min_workers", d.min_workers, if d.role == Role::Reactionner { 1 } else { 0 });
    num("max_workers", d.max_workers, 30);
    num("processes_by_worker", d.processes_by_worker, 256);
    num("broks_batch", d.broks_batch, 0);
    num("results_batch", d.results_batch, 0);
    if let Some(n) = d.max_plugins_output_length {
        v.push(format!("max_plugins_output_length {n}"));
    }
    let mut flag = |key: &str, value: bool, default: bool| {
        if value != default {
            v.push(format!("{key} {}", u8::from(value)));
        }
    };
    flag("manage_sub_realms", d.manage_sub_realms, true);
    flag("manage_arbiters", d.manage_arbiters, false);
    flag("passive", d.passive, false);
    flag("direct_routing", d.direct_routing, false);
    flag("skip_initial_broks", d.skip_initial_broks, false);
    flag("use_ssl", d.use_ssl, false);
    flag(
        "accept_passive_unknown_check_results",
        d.accept_passive_unknown_check_results,
        false,
    );
    if !d.tags.is_empty() {
        let key = if d.role == Role::Reactionner {
            "reactionner_tags"
        } else {
            "poller_tags"
        };
        v.push(format!("{key} {}", d.tags.join(",")));
    }
    if !d.satellitemap.is_empty() {
        let map: Vec<String> = d.satellitemap.iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.push(format!("satellitemap {}", map.join(",")));
    }
    v
}

/// `spec.failover` from the daemons' `check_interval`, `timeout` and `max_check_attempts`,
/// unchanged (even Shinken's 60 s x 3). The spec has one value for every daemon: when the
/// daemons disagree the most common value wins (a tie goes to the schedulers', whose death costs
/// most, then to the smaller value), and the disagreement is listed. Only daemons written in the
/// files vote; Shinken's default daemons only when the tree defines none.
fn failover(tree: &Tree, daemons: &[&DaemonDef], notes: &mut Vec<String>) -> FailoverTimings {
    let written: Vec<&DaemonDef> = daemons.iter().copied().filter(|d| !d.imported_from.is_empty()).collect();
    let voters: &[&DaemonDef] = if written.is_empty() { daemons } else { &written };
    let mut pick = |key: &str, get: fn(&DaemonDef) -> u32| -> Option<u32> {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        let mut sched: BTreeMap<u32, usize> = BTreeMap::new();
        for d in voters {
            *counts.entry(get(d)).or_default() += 1;
            if d.role == Role::Scheduler {
                *sched.entry(get(d)).or_default() += 1;
            }
        }
        let best = counts
            .iter()
            .max_by(|(va, na), (vb, nb)| {
                na.cmp(nb)
                    .then(sched.get(va).unwrap_or(&0).cmp(sched.get(vb).unwrap_or(&0)))
                    .then(vb.cmp(va))
            })
            .map(|(v, _)| *v)?;
        if counts.len() > 1 {
            let others: Vec<String> = voters
                .iter()
                .filter(|d| get(d) != best)
                .map(|d| format!("{} '{}' ({}) has {}", d.role.name(), d.name, tree.daemon_at(d), get(d)))
                .collect();
            notes.push(format!(
                "{key}: the daemons disagree and the spec has one value for all; carried {best}, the most common, while {}",
                others.join("; ")
            ));
        }
        Some(best)
    };
    let check_interval = pick("check_interval", |d| d.check_interval);
    let timeout = pick("timeout", |d| d.timeout);
    let max_check_attempts = pick("max_check_attempts", |d| d.max_check_attempts);
    let mut f = FailoverTimings::default();
    let mut bounded = |key: &str, value: Option<u32>, min: i32, max: i32, into: &mut i32| {
        let Some(v) = value else { return };
        let v = i32::try_from(v).unwrap_or(i32::MAX);
        *into = v.clamp(min, max);
        if *into != v {
            notes.push(format!(
                "{key} {v}: outside the {min}..{max} the ShinkenCluster accepts; carried {}",
                *into
            ));
        }
    };
    bounded("check_interval", check_interval, 1, 3600, &mut f.check_interval);
    bounded("timeout", timeout, 1, 600, &mut f.timeout);
    bounded("max_check_attempts", max_check_attempts, 1, 100, &mut f.max_check_attempts);
    let window = f.check_interval * f.max_check_attempts;
    if f.timeout > window {
        notes.push(format!(
            "timeout {}: longer than check_interval x max_check_attempts ({window}), which the ShinkenCluster refuses; carried {window}",
            f.timeout
        ));
        f.timeout = window;
    }
    f
}

/// Whether a module keeps states (a retention module of any backend).
fn is_retention(m: &ModuleDef) -> bool {
    m.module_type.to_ascii_lowercase().contains("retention")
}

fn is_mongodb_retention(m: &ModuleDef) -> bool {
    MONGODB_RETENTION_TYPES.iter().any(|t| m.is_type(t))
}

/// Every role's module list, and the retention. The MongoDB retention module becomes
/// `spec.retention.external` (its URI in the Secret `<name>-mongodb`) and leaves the lists: the
/// operator writes the retention module of its schedulers itself. Other retention modules
/// (pickle, file, memcache...) leave the lists too, listed: the operator keeps states in MongoDB.
/// Every other module stays in its role's list, its definition in the files; the daemons
/// implement none of them yet, which is listed.
fn modules(
    tree: &Tree,
    daemons: &[&DaemonDef],
    opts: &ImportOptions,
    secrets: &mut Vec<Secret>,
    notes: &mut Vec<String>,
) -> (Vec<(Role, Vec<String>)>, Retention) {
    let topo = &tree.cfg.topology;
    let mut lists = Vec::new();
    // Module name -> roles listing it, for one note per module.
    let mut kept: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut other_retention: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // MongoDB modules, those listed by schedulers first (as the daemons choose theirs).
    let mut mongo: Vec<&ModuleDef> = Vec::new();
    for role in [
        Role::Scheduler,
        Role::Arbiter,
        Role::Poller,
        Role::Reactionner,
        Role::Broker,
        Role::Receiver,
    ] {
        let mut list: Vec<String> = Vec::new();
        for d in daemons.iter().filter(|d| d.role == role) {
            for name in &d.modules {
                let Some(m) = topo.module(name) else { continue };
                if is_mongodb_retention(m) {
                    if !mongo.iter().any(|x| x.name == m.name) {
                        mongo.push(m);
                    }
                } else if is_retention(m) {
                    other_retention.entry(&m.name).or_default().insert(role.name());
                } else if !list.contains(name) {
                    kept.entry(&m.name).or_default().insert(role.name());
                    list.push(name.clone());
                }
            }
        }
        lists.push((role, list));
    }
    for (name, roles) in &kept {
        if let Some(m) = topo.module(name) {
            notes.push(format!(
                "{}: module '{name}' (module_type {}): kept in spec.roles.{}.modules but not implemented by the daemons (its definition stays in the files)",
                tree.located(&m.imported_from, "module"),
                m.module_type,
                roles.iter().copied().collect::<Vec<_>>().join(", spec.roles.")
            ));
        }
    }
    for (name, roles) in &other_retention {
        if let Some(m) = topo.module(name) {
            notes.push(format!(
                "{}: module '{name}' (module_type {}) listed by the {}: the operator keeps retention in MongoDB (spec.retention), so this retention module is not carried",
                tree.located(&m.imported_from, "module"),
                m.module_type,
                roles.iter().copied().collect::<Vec<_>>().join(" and ")
            ));
        }
    }
    let mut retention = Retention::default();
    let Some(m) = mongo.first() else {
        return (lists, retention);
    };
    for other in &mongo[1..] {
        notes.push(format!(
            "{}: module '{}' (module_type {}): a second MongoDB retention module; the cluster keeps one retention store, '{}'",
            tree.located(&other.imported_from, "module"),
            other.name,
            other.module_type,
            m.name
        ));
    }
    let at = tree.located(&m.imported_from, "module");
    let param = |k: &str| m.params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let Some(uri) = param("uri") else {
        notes.push(format!(
            "{at}: module '{}' has no uri: retention is left to the MongoDB the operator runs (spec.retention.managed)",
            m.name
        ));
        return (lists, retention);
    };
    let mut uri = uri.to_string();
    if let Some(rs) = param("replica_set")
        && !uri.contains("replicaSet=")
    {
        // The daemons add `replica_set` to the URI's options; the spec has the URI only.
        let sep = if uri.contains('?') {
            "&"
        } else if uri.matches('/').count() >= 3 {
            "?"
        } else {
            "/?"
        };
        uri = format!("{uri}{sep}replicaSet={rs}");
    }
    if let Some(host) = loopback_host(&uri) {
        notes.push(format!(
            "{at}: module '{}': its uri names {host}, which in a pod is the pod itself: point the Secret {}-mongodb at an address the pods reach",
            m.name, opts.name
        ));
    }
    let dropped: Vec<String> = m
        .params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "uri" | "database" | "replica_set"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !dropped.is_empty() {
        notes.push(format!(
            "{at}: module '{}': {} (spec.retention.external has a URI and a database only)",
            m.name,
            dropped.join(", ")
        ));
    }
    let secret_name = format!("{}-mongodb", opts.name);
    secrets.push(secret(opts, &secret_name, BTreeMap::from([("uri".to_string(), uri)])));
    retention.external = Some(ExternalMongo {
        uri_secret: SecretKey {
            name: secret_name,
            key: "uri".into(),
        },
        database: param("database").unwrap_or("shinken").to_string(),
    });
    (lists, retention)
}

/// The first host of a MongoDB URI that is the machine itself (`localhost`, `127.x`, `::1`).
fn loopback_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = hosts.rsplit_once('@').map(|(_, h)| h).unwrap_or(hosts);
    hosts
        .split(',')
        .map(|h| {
            if let Some(v6) = h.strip_prefix('[') {
                v6.split(']').next().unwrap_or_default()
            } else {
                h.split(':').next().unwrap_or_default()
            }
        })
        .find(|h| h.eq_ignore_ascii_case("localhost") || h.starts_with("127.") || *h == "::1")
        .map(str::to_string)
}

/// The main file's parameters to `spec.config.main`: include directives are carried as files,
/// resource macros written in the main file go to the resources Secret, daemon-only parameters
/// are listed. A later line overrides an earlier one, as in Shinken.
fn main_params(
    tree: &Tree,
    parsed: &reader::Parsed,
    resources: &mut BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut main = BTreeMap::new();
    let mut macros = String::new();
    for p in &parsed.params {
        let key = p.key.trim();
        if INCLUDE_KEYS.contains(&key) {
            continue;
        }
        if key.len() > 1 && key.starts_with('$') && key.ends_with('$') {
            macros.push_str(&format!("{key}={}\n", p.value));
            continue;
        }
        if let Some((_, why)) = DAEMON_ONLY_PARAMS.iter().find(|(k, _)| *k == key) {
            notes.push(format!("{}:{}: {key}={}: {why}", tree.main_rel, p.loc.line, p.value));
            continue;
        }
        main.insert(key.to_string(), p.value.to_string());
    }
    if !macros.is_empty() {
        resources.insert(MAIN_MACROS_KEY.to_string(), macros);
    }
    main
}

/// One file of the tree bound for a ConfigMap: its key and its text.
struct FileEntry {
    key: String,
    /// The path relative to the root, for messages.
    rel: String,
    text: String,
}

/// Every file the tree reads, as the loader read them (its list of sources, in reading order,
/// each once): resource files (`resource_file=`, and included files holding nothing but
/// resource macros, where passwords live) to the resources Secret, every other file to the
/// ConfigMaps. The main file is not carried (the operator writes its own from
/// `spec.config.main`) unless it defines objects: then it is carried with its parameter lines
/// commented out, line numbers kept.
fn files(
    tree: &Tree,
    main_text: &str,
    main_parsed: &reader::Parsed,
    resources: &mut BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Result<Vec<FileEntry>, String> {
    let main_abs = normalise(&tree.cfg.main_file);
    let base = main_dir(&tree.cfg.main_file);
    let resource_files: BTreeSet<PathBuf> = main_parsed
        .params
        .iter()
        .filter(|p| p.key.trim() == "resource_file")
        .map(|p| normalise(&base.join(p.value.trim())))
        .collect();
    let mut seen = BTreeSet::new();
    let mut out: Vec<FileEntry> = Vec::new();
    let mut keys = BTreeSet::new();
    let mut main_included = false;
    for (i, path) in tree.cfg.sources.files().enumerate() {
        let abs = normalise(path);
        if i == 0 || !seen.insert(abs.clone()) {
            continue;
        }
        main_included |= abs == main_abs;
        let rel = tree.rel_of(&abs);
        let bytes = std::fs::read(&abs).map_err(|e| format!("import: {}: {e}", abs.display()))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!(
                    "{rel}: not valid UTF-8; carried with the invalid bytes replaced by U+FFFD, as the daemons read it"
                ));
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        };
        let resource_only = {
            let p = reader::parse(&text, 0, &mut Diagnostics::new());
            p.objects.is_empty() && !p.params.is_empty() && p.params.iter().all(|p| p.key.starts_with('$') && p.key.ends_with('$'))
        };
        if resource_files.contains(&abs) || resource_only {
            // Named by the file's name alone when that is free (what `resource_file=` names).
            let name = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let wanted = if resource_files.contains(&abs) {
                name
            } else {
                layout::key_of_path(&rel)
            };
            let key = unique_key(&sanitise_key(&wanted), |k| resources.contains_key(k));
            resources.insert(key, text);
            continue;
        }
        let (key, carried) = file_key(&rel, &keys);
        if !abs.starts_with(&tree.root) {
            notes.push(format!(
                "{}: carried as {carried} (ConfigMap key {key}): it lies outside the tree's directory",
                abs.display()
            ));
        } else if carried != rel {
            notes.push(format!(
                "{rel}: carried as {carried} (ConfigMap key {key}): {}",
                rename_reason(&rel)
            ));
        }
        keys.insert(key.clone());
        out.push(FileEntry { key, rel, text });
    }
    if !main_parsed.objects.is_empty() && !main_included {
        let commented = comment_out_params(main_text, main_parsed);
        let (key, carried) = file_key(&tree.main_rel, &keys);
        notes.push(format!(
            "{}: its objects are carried as {carried} (ConfigMap key {key}) with its parameter lines commented out; the operator writes the main file itself",
            tree.main_rel
        ));
        keys.insert(key.clone());
        out.push(FileEntry {
            key,
            rel: tree.main_rel.clone(),
            text: commented,
        });
    }
    Ok(out)
}

/// Why a file's path changes on its way into a ConfigMap.
fn rename_reason(rel: &str) -> &'static str {
    if !rel.ends_with(".cfg") {
        "the operator reads `.cfg` files only"
    } else {
        "a ConfigMap key allows letters, digits, '-', '.' and '_' only, and `__` stands for `/`"
    }
}

/// The ConfigMap key of a file and the path it gets in the pods (which equals `rel` unless the
/// name had to change). The path always ends in `.cfg`: the operator reads only those.
fn file_key(rel: &str, taken: &BTreeSet<String>) -> (String, String) {
    let mut comps: Vec<String> = rel.split('/').map(sanitise_component).collect();
    let last = comps.len() - 1;
    for c in comps.iter_mut().take(last) {
        // `x_` + `/` would read back as `x` + `/_`: no trailing `_` before a separator.
        if c.ends_with('_') {
            c.pop();
            c.push('-');
        }
    }
    if !comps[last].ends_with(".cfg") {
        comps[last].push_str(".cfg");
    }
    let key = unique_key(&layout::key_of_path(&comps.join("/")), |k| taken.contains(k));
    let carried = layout::path_of_key(None, &key);
    (key, carried)
}

/// A path component as a key allows it: other characters become `_`, and runs of `_` one `_`
/// (`__` stands for `/`).
fn sanitise_component(c: &str) -> String {
    let mut s: String = c
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | '_') {
                ch
            } else {
                '_'
            }
        })
        .collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    if s.is_empty() || s == "." || s == ".." {
        s = format!("_{}", s.replace('.', "-"));
    }
    s
}

/// A key as Kubernetes allows it (resource keys, where `/` plays no part).
fn sanitise_key(k: &str) -> String {
    let s: String = k
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | '_') {
                ch
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        format!("_{s}")
    } else {
        s
    }
}

/// `key`, or `key` with `-2`, `-3`... before its extension when taken.
fn unique_key(key: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(key) {
        return key.to_string();
    }
    let (stem, ext) = match key.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && !e.contains("__") => (s, format!(".{e}")),
        _ => (key, String::new()),
    };
    (2..)
        .map(|i| format!("{stem}-{i}{ext}"))
        .find(|k| !taken(k))
        .unwrap_or_else(|| key.to_string())
}

/// The main file's text with each parameter line turned into a comment, so that its objects
/// keep their line numbers and its parameters are not read twice (they are in the spec).
fn comment_out_params(text: &str, parsed: &reader::Parsed) -> String {
    let lines: BTreeSet<u32> = parsed.params.iter().map(|p| p.loc.line).collect();
    let mut out = String::with_capacity(text.len() + lines.len() * 2);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if lines.contains(&(i as u32 + 1)) {
            out.push('#');
        }
        out.push_str(line);
    }
    out
}

/// The files into ConfigMaps `<name>-cfg-<n>` in key order, a new one whenever the next file
/// would take one past [`MAX_CONFIG_MAP_BYTES`]. A single file over the limit is an error: it
/// cannot be split without knowing its objects, and the user can.
fn pack(opts: &ImportOptions, mut files: Vec<FileEntry>) -> Result<Vec<ConfigMap>, String> {
    files.sort_by(|a, b| a.key.cmp(&b.key));
    let mut maps: Vec<BTreeMap<String, String>> = Vec::new();
    let mut size = 0;
    for f in files {
        let bytes = f.key.len() + f.text.len();
        if bytes > MAX_CONFIG_MAP_BYTES {
            return Err(format!(
                "import: {}: {} bytes, more than the {MAX_CONFIG_MAP_BYTES} a ConfigMap holds here; split it into smaller files",
                f.rel,
                f.text.len()
            ));
        }
        if maps.is_empty() || size + bytes > MAX_CONFIG_MAP_BYTES {
            maps.push(BTreeMap::new());
            size = 0;
        }
        size += bytes;
        maps.last_mut().expect("pushed above").insert(f.key, f.text);
    }
    Ok(maps
        .into_iter()
        .enumerate()
        .map(|(i, data)| ConfigMap {
            metadata: meta(opts, &format!("{}-cfg-{i}", opts.name)),
            data: Some(data),
            ..ConfigMap::default()
        })
        .collect())
}

fn meta(opts: &ImportOptions, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: opts.namespace.clone(),
        labels: Some(BTreeMap::from([(layout::LABEL_INSTANCE.to_string(), opts.name.clone())])),
        ..ObjectMeta::default()
    }
}

fn secret(opts: &ImportOptions, name: &str, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: meta(opts, name),
        string_data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test.
    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shinken-import-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A small valid tree: one master and one spare per role but the receiver, a host and a
    /// service; `daemons` replaces the daemon definitions.
    fn tree(tag: &str, main_extra: &str, daemons: &str) -> PathBuf {
        let d = tmpdir(tag);
        write(
            &d,
            "shinken.cfg",
            &format!("cfg_dir=objects\nresource_file=resource.cfg\n{main_extra}"),
        );
        write(&d, "resource.cfg", "$USER1$=/usr/lib/nagios/plugins\n");
        write(
            &d,
            "objects/hosts.cfg",
            "define command {\ncommand_name check_ok\ncommand_line $USER1$/check_dummy 0\n}\n\
             define host {\nhost_name web\naddress 127.0.0.1\ncheck_command check_ok\nmax_check_attempts 1\ncheck_period 24x7\n}\n\
             define service {\nhost_name web\nservice_description ok\ncheck_command check_ok\nmax_check_attempts 1\ncheck_interval 1\nretry_interval 1\ncheck_period 24x7\n}\n\
             define timeperiod {\ntimeperiod_name 24x7\nmonday 00:00-24:00\n}\n",
        );
        write(&d, "objects/daemons.cfg", daemons);
        d
    }

    const PAIRS: &str = "define arbiter {\narbiter_name a\n}\ndefine arbiter {\narbiter_name a2\nspare 1\n}\n\
        define scheduler {\nscheduler_name s\n}\ndefine scheduler {\nscheduler_name s2\nspare 1\n}\n\
        define poller {\npoller_name p\n}\ndefine broker {\nbroker_name b\n}\ndefine reactionner {\nreactionner_name r\n}\n";

    fn import(dir: &Path) -> Imported {
        import_tree(dir, &ImportOptions::new("demo")).unwrap()
    }

    #[test]
    fn a_small_tree_gives_its_counts_and_shinkens_default_timings() {
        let d = tree("small", "interval_length=10\n", PAIRS);
        let imp = import(&d);
        let roles = &imp.cluster.spec.roles;
        assert_eq!((roles.arbiter.masters, roles.arbiter.spares), (1, 1));
        assert_eq!((roles.scheduler.masters, roles.scheduler.spares), (1, 1));
        assert_eq!((roles.poller.masters, roles.poller.spares), (1, 0));
        assert_eq!((roles.receiver.masters, roles.receiver.spares), (0, 0));
        let f = &imp.cluster.spec.failover;
        assert_eq!(
            (f.check_interval, f.timeout, f.max_check_attempts, f.pod_failure_grace_seconds),
            (60, 3, 3, 10)
        );
        assert_eq!(
            imp.cluster.spec.config.main,
            BTreeMap::from([("interval_length".into(), "10".into())])
        );
        assert_eq!(imp.cluster.spec.config.resource_secrets, ["demo-resources"]);
        assert!(imp.cluster.spec.retention.external.is_none());
        // The main file named rather than its directory: the same objects.
        let by_file = import_tree(&d.join("shinken.cfg"), &ImportOptions::new("demo")).unwrap();
        assert_eq!(by_file.config_maps, imp.config_maps);
        assert_eq!(by_file.cluster.spec, imp.cluster.spec);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn disagreeing_timings_take_the_most_common_and_are_listed() {
        let daemons = PAIRS.replace("scheduler_name s\n", "scheduler_name s\ncheck_interval 5\n");
        let d = tree("timings", "", &daemons);
        let imp = import(&d);
        assert_eq!(imp.cluster.spec.failover.check_interval, 60);
        let note = imp.not_carried.iter().find(|n| n.starts_with("check_interval:")).expect("listed");
        assert!(
            note.contains("scheduler 's'") && note.contains("objects/daemons.cfg:8") && note.contains("has 5"),
            "{note}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn timings_outside_the_crd_bounds_are_clamped_and_listed() {
        let daemons = PAIRS.replace('}', "timeout 900\n}");
        let d = tree("bounds", "", &daemons);
        let imp = import(&d);
        assert_eq!(imp.cluster.spec.failover.timeout, 180, "clamped to 600, then to 60 x 3");
        assert!(
            imp.not_carried.iter().any(|n| n.starts_with("timeout 900: outside")),
            "{:?}",
            imp.not_carried
        );
        assert!(
            imp.not_carried.iter().any(|n| n.starts_with("timeout 600: longer")),
            "{:?}",
            imp.not_carried
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn extra_arbiters_and_other_realms_are_listed_not_counted() {
        let daemons = format!(
            "{PAIRS}define arbiter {{\narbiter_name a3\n}}\ndefine realm {{\nrealm_name All\ndefault 1\nrealm_members Far\n}}\n\
             define realm {{\nrealm_name Far\n}}\ndefine scheduler {{\nscheduler_name far\nrealm Far\n}}\n\
             define broker {{\nbroker_name farb\nrealm Far\n}}\n"
        );
        let d = tree("realms", "", &daemons);
        let imp = import(&d);
        assert_eq!(
            (imp.cluster.spec.roles.arbiter.masters, imp.cluster.spec.roles.arbiter.spares),
            (1, 1)
        );
        assert_eq!(imp.cluster.spec.roles.scheduler.masters, 1);
        assert_eq!(imp.cluster.spec.roles.broker.masters, 1);
        let joined = imp.not_carried.join("\n");
        assert!(joined.contains("arbiter 'a3': one master too many"), "{joined}");
        assert!(joined.contains("scheduler 'far' of realm 'Far'"), "{joined}");
        assert!(joined.contains("broker 'farb' of realm 'Far'"), "{joined}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn retention_modules_mongodb_to_external_others_listed() {
        let daemons = PAIRS
            .replace("scheduler_name s\n", "scheduler_name s\nmodules Mongo,Pickle\n")
            .replace("broker_name b\n", "broker_name b\nmodules Graphite\n")
            .replace("poller_name p\n", "poller_name p\npoller_tags linux,win\n")
            + "define module {\nmodule_name Mongo\nmodule_type retention-mongodb\nuri mongodb://db.example:27017\nreplica_set rs0\ndatabase states\n}\n\
             define module {\nmodule_name Pickle\nmodule_type pickle_retention_file\npath /var/lib/shinken/retention.dat\n}\n\
             define module {\nmodule_name Graphite\nmodule_type graphite_perfdata\nhost g\n}\n";
        let d = tree("modules", "", &daemons);
        let imp = import(&d);
        let ext = imp.cluster.spec.retention.external.as_ref().expect("external");
        assert_eq!(ext.database, "states");
        assert_eq!(ext.uri_secret.name, "demo-mongodb");
        let s = imp
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("demo-mongodb"))
            .unwrap();
        assert_eq!(s.string_data.as_ref().unwrap()["uri"], "mongodb://db.example:27017/?replicaSet=rs0");
        assert!(imp.cluster.spec.roles.scheduler.modules.is_empty());
        assert_eq!(imp.cluster.spec.roles.broker.modules, ["Graphite"]);
        let joined = imp.not_carried.join("\n");
        assert!(
            joined.contains("module 'Pickle' (module_type pickle_retention_file) listed by the scheduler"),
            "{joined}"
        );
        assert!(
            joined.contains("module 'Graphite' (module_type graphite_perfdata): kept in spec.roles.broker.modules but not implemented"),
            "{joined}"
        );
        assert!(!joined.contains("names db.example"), "not a loopback: {joined}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn main_parameters_daemon_paths_and_macros() {
        let d = tree(
            "main",
            "lock_file=/var/run/shinken/arbiterd.pid\n$SECRET$=hunter2\nmax_host_check_spread=5\nworkdir=/var/run\n",
            PAIRS,
        );
        let imp = import(&d);
        assert_eq!(
            imp.cluster.spec.config.main,
            BTreeMap::from([("max_host_check_spread".into(), "5".into())])
        );
        assert!(
            imp.not_carried
                .iter()
                .any(|n| n.starts_with("shinken.cfg:3: lock_file=/var/run/shinken/arbiterd.pid: ")),
            "{:?}",
            imp.not_carried
        );
        assert!(imp.not_carried.iter().any(|n| n.starts_with("shinken.cfg:6: workdir=/var/run: ")));
        let res = imp.secrets[0].string_data.as_ref().unwrap();
        assert_eq!(res[MAIN_MACROS_KEY], "$SECRET$=hunter2\n");
        assert_eq!(res["resource.cfg"], "$USER1$=/usr/lib/nagios/plugins\n");
        // Neither the main file nor the resource file is in a ConfigMap.
        let keys: Vec<&String> = imp.config_maps.iter().flat_map(|c| c.data.as_ref().unwrap().keys()).collect();
        assert_eq!(keys, ["objects__daemons.cfg", "objects__hosts.cfg"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn macro_only_included_files_go_to_the_secret() {
        let d = tree("macros", "cfg_dir=resource.d\n", PAIRS);
        write(&d, "resource.d/ad.cfg", "# AD\n$DOMAINPASSWORD$=superpassword\n");
        let imp = import(&d);
        let res = imp.secrets[0].string_data.as_ref().unwrap();
        assert_eq!(res["resource.d__ad.cfg"], "# AD\n$DOMAINPASSWORD$=superpassword\n");
        assert!(
            !imp.config_maps
                .iter()
                .any(|c| c.data.as_ref().unwrap().contains_key("resource.d__ad.cfg"))
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn odd_file_names_are_renamed_and_listed() {
        let pid = std::process::id();
        let d = tree(
            "names",
            &format!("cfg_file=extra hosts.conf\ncfg_file=../outside-import-test-{pid}.cfg\ncfg_dir=we__ird_\n"),
            PAIRS,
        );
        write(
            &d,
            "extra hosts.conf",
            "define command {\ncommand_name x1\ncommand_line /bin/true\n}\n",
        );
        write(
            &d,
            "we__ird_/a.cfg",
            "define command {\ncommand_name x2\ncommand_line /bin/true\n}\n",
        );
        let outside = d.parent().unwrap().join(format!("outside-import-test-{pid}.cfg"));
        std::fs::write(&outside, "define command {\ncommand_name x3\ncommand_line /bin/true\n}\n").unwrap();
        let imp = import(&d);
        let data: BTreeMap<&String, &String> = imp.config_maps.iter().flat_map(|c| c.data.as_ref().unwrap().iter()).collect();
        for key in data.keys() {
            assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)), "{key}");
            let path = layout::path_of_key(None, key);
            assert!(layout::path_is_safe(&path) && path.ends_with(".cfg"), "{path}");
        }
        assert!(data.contains_key(&"extra_hosts.conf.cfg".to_string()), "{data:?}");
        assert!(data.contains_key(&"we_ird-__a.cfg".to_string()), "{data:?}");
        let outside_key = layout::key_of_path(&format!("{OUTSIDE_DIR}/{}", slash_path(outside.strip_prefix("/").unwrap())));
        assert!(data.contains_key(&outside_key), "{data:?}");
        let joined = imp.not_carried.join("\n");
        assert!(joined.contains("extra hosts.conf: carried as extra_hosts.conf.cfg"), "{joined}");
        assert!(joined.contains("outside the tree"), "{joined}");
        std::fs::remove_file(&outside).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn objects_in_the_main_file_travel_with_its_parameters_commented() {
        let d = tree(
            "mainobj",
            "define command {\ncommand_name in_main\ncommand_line /bin/true\n}\n",
            PAIRS,
        );
        let imp = import(&d);
        let data = imp.config_maps[0].data.as_ref().unwrap();
        assert_eq!(
            data["shinken.cfg"],
            "#cfg_dir=objects\n#resource_file=resource.cfg\ndefine command {\ncommand_name in_main\ncommand_line /bin/true\n}\n"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn duplicate_names_are_listed_since_the_reading_order_changes() {
        let d = tree("dups", "", PAIRS);
        write(
            &d,
            "objects/again.cfg",
            "define command {\ncommand_name check_ok\ncommand_line /bin/false\n}\n",
        );
        let imp = import(&d);
        let note = imp
            .not_carried
            .iter()
            .find(|n| n.contains("duplicate command name 'check_ok'"))
            .expect("listed");
        assert!(note.contains("path order"), "{note}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_are_split_across_config_maps_and_a_huge_one_is_refused() {
        let d = tree("split", "", PAIRS);
        let comment = format!("# {}\n", "x".repeat(1000));
        let big = comment.repeat(400); // about 400 kB each
        for i in 0..5 {
            write(&d, &format!("objects/big{i}.cfg"), &big);
        }
        let imp = import(&d);
        assert!(imp.config_maps.len() >= 3, "{}", imp.config_maps.len());
        for (i, cm) in imp.config_maps.iter().enumerate() {
            assert_eq!(cm.metadata.name.as_deref(), Some(format!("demo-cfg-{i}").as_str()));
            let bytes: usize = cm.data.as_ref().unwrap().iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(bytes <= MAX_CONFIG_MAP_BYTES, "{bytes}");
        }
        assert!(
            imp.to_yaml()
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .contains("kubectl apply --server-side -f")
        );
        let names: Vec<_> = imp.cluster.spec.config.config_maps.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names.len(), imp.config_maps.len());
        write(&d, "objects/huge.cfg", &comment.repeat(1000));
        let err = import_tree(&d, &ImportOptions::new("demo")).unwrap_err();
        assert!(err.contains("objects/huge.cfg") && err.contains("split it"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn configuration_errors_are_listed_with_file_and_line() {
        let d = tree("errors", "", PAIRS);
        write(
            &d,
            "objects/bad.cfg",
            "define service {\nhost_name nobody\nservice_description x\ncheck_command check_ok\n}\n",
        );
        let err = import_tree(&d, &ImportOptions::new("demo")).unwrap_err();
        assert!(err.contains("configuration error"), "{err}");
        assert!(err.lines().any(|l| l.contains("objects/bad.cfg:2")), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
        let err = import_tree(Path::new("/nonexistent/shinken"), &ImportOptions::new("demo")).unwrap_err();
        assert!(err.contains("/nonexistent/shinken"), "{err}");
    }

    #[test]
    fn names_are_checked() {
        let d = tree("badname", "", PAIRS);
        assert!(import_tree(&d, &ImportOptions::new("Demo")).unwrap_err().contains("--name"));
        let mut o = ImportOptions::new("demo");
        o.namespace = Some("no_underscores".into());
        assert!(import_tree(&d, &o).unwrap_err().contains("--namespace"));
        let long = "a".repeat(50);
        assert!(import_tree(&d, &ImportOptions::new(long)).unwrap_err().contains("too long"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn every_object_is_labelled_and_namespaced() {
        let d = tree("meta", "", PAIRS);
        let mut o = ImportOptions::new("demo");
        o.namespace = Some("monitoring".into());
        let imp = import_tree(&d, &o).unwrap();
        let metas = imp
            .config_maps
            .iter()
            .map(|c| &c.metadata)
            .chain(imp.secrets.iter().map(|s| &s.metadata));
        for m in metas {
            assert_eq!(m.namespace.as_deref(), Some("monitoring"));
            assert_eq!(m.labels.as_ref().unwrap()[layout::LABEL_INSTANCE], "demo");
        }
        assert_eq!(imp.cluster.metadata.namespace.as_deref(), Some("monitoring"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn tricky_file_text_survives_the_yaml() {
        // Through a whole import: text the loader accepts, with what YAML emitters get wrong.
        let d = tree("yaml", "", PAIRS);
        let tricky = "  # leading spaces\ttab\r\n# crlf line\r\n# trailing spaces   \n#---\n; ... \ndefine command {\n  command_name q\n\tcommand_line /bin/echo 'single' \"double\" \\back: - x   \n}\n# no final newline";
        write(&d, "objects/tricky.cfg", tricky);
        write(&d, "objects/empty.cfg", "");
        let imp = import(&d);
        let text = imp.to_yaml().unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let cm: ConfigMap = serde_json::from_value(docs[1].clone()).unwrap();
        assert_eq!(cm, imp.config_maps[0]);
        assert_eq!(cm.data.as_ref().unwrap()["objects__tricky.cfg"], tricky);
        assert_eq!(cm.data.as_ref().unwrap()["objects__empty.cfg"], "");
        std::fs::remove_dir_all(&d).unwrap();
        // Directly: document markers and YAML syntax at the start of lines.
        let mut data = BTreeMap::new();
        for (i, t) in [
            "---\n...\n",
            "a\n---\nb",
            ": colon\n- dash\n? q\n",
            "\n\nleading blank lines\n",
            "trailing blank lines\n\n\n",
            " \t \n",
            "#!/bin/sh\n% %TAG\n@at `tick` |pipe >gt\n",
            "\u{feff}bom and \u{85} nel and \u{2028} ls\n",
        ]
        .iter()
        .enumerate()
        {
            data.insert(format!("k{i}"), t.to_string());
        }
        let cm = ConfigMap {
            data: Some(data),
            ..ConfigMap::default()
        };
        let text = format!("---\n{}", crate::yaml::document(&cm).unwrap());
        let back: Vec<ConfigMap> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(back, [cm]);
    }

    #[test]
    fn the_yaml_starts_with_what_was_not_carried() {
        let d = tree("head", "lock_file=/x\n", PAIRS);
        let imp = import(&d);
        let text = imp.to_yaml().unwrap();
        let head: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        assert!(head[0].ends_with("apply with `kubectl apply -f`."), "{}", head[0]);
        assert!(
            head.iter()
                .any(|l| l.starts_with("# not carried over: shinken.cfg:3: lock_file=/x")),
            "{head:?}"
        );
        assert_eq!(head.len(), imp.not_carried.len() + 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn arguments_parse() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let (p, o) = parse_args(&args("/etc/shinken --name prod --namespace mon")).unwrap();
        assert_eq!(p, PathBuf::from("/etc/shinken"));
        assert_eq!(o.name, "prod");
        assert_eq!(o.namespace.as_deref(), Some("mon"));
        assert_eq!(o.image, DEFAULT_IMAGE);
        let (_, o) = parse_args(&args("--image=me/shinken:2 --name=x t")).unwrap();
        assert_eq!(o.image, "me/shinken:2");
        assert!(parse_args(&args("/etc/shinken")).unwrap_err().contains("--name"));
        assert!(parse_args(&args("--name x")).unwrap_err().contains("path"));
        assert!(parse_args(&args("a --name x --bogus 1")).unwrap_err().contains("--bogus"));
        assert!(parse_args(&args("a --name")).unwrap_err().contains("needs a value"));
    }

    #[test]
    fn file_keys_round_trip_to_their_paths() {
        let none = BTreeSet::new();
        for (rel, carried) in [
            ("hosts/web.cfg", "hosts/web.cfg"),
            ("a/_b.cfg", "a/_b.cfg"),
            ("a_/b.cfg", "a-/b.cfg"),
            ("x__y.cfg", "x_y.cfg"),
            ("sp ace/é.cfg", "sp_ace/_.cfg"),
            ("hosts.conf", "hosts.conf.cfg"),
        ] {
            let (key, path) = file_key(rel, &none);
            assert_eq!(path, carried, "{rel}");
            assert_eq!(layout::path_of_key(None, &key), path);
        }
        let taken = BTreeSet::from(["a.cfg".to_string()]);
        assert_eq!(file_key("a.cfg", &taken).0, "a-2.cfg");
    }

    #[test]
    fn loopback_hosts_in_uris() {
        assert_eq!(loopback_host("mongodb://127.0.0.4/?safe=false").as_deref(), Some("127.0.0.4"));
        assert_eq!(loopback_host("mongodb://u:p@localhost:27017/db").as_deref(), Some("localhost"));
        assert_eq!(loopback_host("mongodb://[::1]:27017").as_deref(), Some("::1"));
        assert_eq!(loopback_host("mongodb://db1,db2:27018/?replicaSet=x"), None);
    }
}
