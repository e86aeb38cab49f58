//! `import` on real trees: the HA course's `/etc/shinken` (`corpus/course4-etc`), every other
//! tree of the shared corpus, and the repository's two-box example.
//!
//! What a migrating user relies on: the spec says what the tree said (roles, spares, timings,
//! retention, modules, main parameters), every file reaches a ConfigMap byte for byte, the YAML
//! reads back as the same objects, and the files put back on disk load as the same tree.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use shinken_config::schema::Kind;
use shinken_operator::crd::ShinkenCluster;
use shinken_operator::import::{ImportOptions, Imported, MAX_CONFIG_MAP_BYTES, import_tree};
use shinken_operator::layout;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

fn course4_dir() -> PathBuf {
    corpus_dir().join("course4-etc")
}

fn course4() -> Imported {
    import_tree(&course4_dir(), &ImportOptions::new("course")).expect("the course's tree imports")
}

/// Every `.cfg` file under `dir`, relative to it.
fn cfg_files(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if p.is_dir() {
            cfg_files(&p, &r, out);
        } else if r.ends_with(".cfg") {
            out.push(r);
        }
    }
}

/// Every file of the ConfigMaps: path in the pods' `objects/` -> text.
fn config_map_files(imp: &Imported) -> BTreeMap<String, String> {
    imp.config_maps
        .iter()
        .flat_map(|cm| cm.data.clone().unwrap_or_default())
        .map(|(k, v)| (layout::path_of_key(None, &k), v))
        .collect()
}

fn secret<'a>(imp: &'a Imported, name: &str) -> &'a BTreeMap<String, String> {
    imp.secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .and_then(|s| s.string_data.as_ref())
        .unwrap_or_else(|| panic!("no Secret {name}"))
}

#[test]
fn import_course4_roles_count_masters_and_spares() {
    let imp = course4();
    let roles = &imp.cluster.spec.roles;
    for role in shinken_operator::crd::ROLES {
        let r = roles.get(role);
        assert_eq!((r.masters, r.spares), (1, 1), "{role}");
    }
    // The course's realm `All` is its default realm: no daemon is left out.
    assert!(!imp.not_carried.iter().any(|n| n.contains("of realm")), "{:?}", imp.not_carried);
}

#[test]
fn import_course4_failover_timings_are_carried_unchanged() {
    let f = course4().cluster.spec.failover;
    // Shinken's 60 s x 3, as the course writes them: import does not tune.
    assert_eq!((f.check_interval, f.timeout, f.max_check_attempts), (60, 3, 3));
    assert_eq!(f.pod_failure_grace_seconds, 10, "stays the operator's default");
}

#[test]
fn import_course4_mongodb_module_becomes_external_retention() {
    let imp = course4();
    let ext = imp.cluster.spec.retention.external.as_ref().expect("retention.external");
    assert_eq!(ext.uri_secret.name, "course-mongodb");
    assert_eq!(ext.uri_secret.key, "uri");
    assert_eq!(ext.database, "shinken");
    assert!(imp.cluster.spec.retention.managed.is_none());
    assert_eq!(secret(&imp, "course-mongodb")["uri"], "mongodb://127.0.0.4/?safe=false");
    // The module leaves the scheduler's list: the operator writes the retention module itself.
    assert!(imp.cluster.spec.roles.scheduler.modules.is_empty());
    // 127.0.0.4 was a box of the course; in a pod it is the pod itself: said at the top.
    assert!(
        imp.not_carried
            .iter()
            .any(|n| n.starts_with("modules/retention-mongodb.cfg:1: module 'MongodbRetention': its uri names 127.0.0.4")),
        "{:?}",
        imp.not_carried
    );
}

#[test]
fn import_course4_modules_stay_in_their_roles_and_are_listed_as_not_implemented() {
    let imp = course4();
    let roles = &imp.cluster.spec.roles;
    assert_eq!(roles.broker.modules, ["WebUI"]);
    assert_eq!(roles.arbiter.modules, ["CommandFile"]);
    for r in ["poller", "reactionner", "receiver", "scheduler"] {
        assert!(roles.get(r).modules.is_empty(), "{r}");
    }
    for (file, name, ty, role) in [
        ("modules/webui.cfg:1", "WebUI", "webui", "broker"),
        ("modules/commandfile.cfg:1", "CommandFile", "named_pipe", "arbiter"),
    ] {
        let want =
            format!("{file}: module '{name}' (module_type {ty}): kept in spec.roles.{role}.modules but not implemented by the daemons");
        assert!(
            imp.not_carried.iter().any(|n| n.starts_with(&want)),
            "{want}\n{:?}",
            imp.not_carried
        );
    }
}

#[test]
fn import_course4_main_parameters_and_resources() {
    let imp = course4();
    let main: Vec<(&str, &str)> = imp.cluster.spec.config.main.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        main,
        [
            ("max_host_check_spread", "5"),
            ("max_service_check_spread", "5"),
            ("retention_update_interval", "60")
        ]
    );
    assert_eq!(imp.cluster.spec.config.resource_secrets, ["course-resources"]);
    let resources = secret(&imp, "course-resources");
    assert_eq!(resources.len(), 1);
    assert_eq!(
        resources["resource.cfg"],
        std::fs::read_to_string(course4_dir().join("resource.cfg")).unwrap()
    );
}

#[test]
fn import_course4_files_reach_config_maps_byte_for_byte() {
    let imp = course4();
    let dir = course4_dir();
    let mut expected = Vec::new();
    cfg_files(&dir, "", &mut expected);
    // The main file becomes spec.config.main, the resource file a Secret.
    expected.retain(|f| f != "shinken.cfg" && f != "resource.cfg");
    let files = config_map_files(&imp);
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), expected);
    for (path, text) in &files {
        assert_eq!(text.as_bytes(), std::fs::read(dir.join(path)).unwrap(), "{path}");
    }
    let mut listed = Vec::new();
    for (i, cm) in imp.config_maps.iter().enumerate() {
        let name = format!("course-cfg-{i}");
        assert_eq!(cm.metadata.name.as_deref(), Some(name.as_str()));
        assert_eq!(cm.metadata.labels.as_ref().unwrap()[layout::LABEL_INSTANCE], "course");
        let bytes: usize = cm.data.as_ref().unwrap().iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(bytes <= MAX_CONFIG_MAP_BYTES, "{name}: {bytes}");
        for k in cm.data.as_ref().unwrap().keys() {
            assert_eq!(k, &layout::key_of_path(&layout::path_of_key(None, k)), "keys round-trip");
        }
        listed.push(name);
    }
    let sources = &imp.cluster.spec.config.config_maps;
    assert_eq!(sources.iter().map(|s| s.name.clone()).collect::<Vec<_>>(), listed);
    assert!(sources.iter().all(|s| s.directory.is_none()));
}

#[test]
fn import_course4_yaml_reads_back_as_the_same_objects() {
    let imp = course4();
    let text = imp.to_yaml().unwrap();
    let head: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    assert_eq!(head.len(), 1 + imp.not_carried.len(), "a title line, then one line per item");
    for (line, item) in head[1..].iter().zip(&imp.not_carried) {
        assert_eq!(*line, format!("# not carried over: {item}"));
    }
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(docs.len(), imp.secrets.len() + imp.config_maps.len() + 1);
    let (secrets, rest) = docs.split_at(imp.secrets.len());
    let (maps, cluster) = rest.split_at(imp.config_maps.len());
    for (doc, s) in secrets.iter().zip(&imp.secrets) {
        assert_eq!(doc["kind"], "Secret");
        assert_eq!(&serde_json::from_value::<Secret>(doc.clone()).unwrap(), s);
    }
    for (doc, cm) in maps.iter().zip(&imp.config_maps) {
        assert_eq!(doc["kind"], "ConfigMap");
        assert_eq!(&serde_json::from_value::<ConfigMap>(doc.clone()).unwrap(), cm);
    }
    assert_eq!(cluster[0]["kind"], "ShinkenCluster");
    assert_eq!(cluster[0]["apiVersion"], "shinken.io/v1alpha1");
    let back: ShinkenCluster = serde_json::from_value(cluster[0].clone()).unwrap();
    assert_eq!(back.spec, imp.cluster.spec);
    assert_eq!(back.metadata, imp.cluster.metadata);
}

/// Puts the imported files back on disk as the operator lays them out in a pod (main file
/// generated from spec.config.main, the ConfigMaps under `objects/`, each resource Secret key
/// read with `resource_file`) and loads that tree: it must be valid and hold the same hosts and
/// services as the original.
fn reload_matches(original: &Path, imp: &Imported, tag: &str) {
    let root = std::env::temp_dir().join(format!("shinken-import-reload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let objects = root.join(layout::OBJECTS_DIR);
    std::fs::create_dir_all(&objects).unwrap();
    for (path, text) in config_map_files(imp) {
        assert!(layout::path_is_safe(&path), "{path}");
        let p = objects.join(&path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let mut main = String::new();
    for (k, v) in &imp.cluster.spec.config.main {
        main.push_str(&format!("{k}={v}\n"));
    }
    main.push_str(&format!("cfg_dir={}\n", layout::OBJECTS_DIR));
    for name in &imp.cluster.spec.config.resource_secrets {
        let dir = root.join(layout::RESOURCES_DIR).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, v) in secret(imp, name) {
            std::fs::write(dir.join(k), v).unwrap();
            main.push_str(&format!("resource_file={}/{name}/{k}\n", layout::RESOURCES_DIR));
        }
    }
    std::fs::write(root.join(layout::MAIN_FILE), main).unwrap();

    let before = shinken_config::load(original).unwrap();
    let after = shinken_config::load(&root).unwrap();
    let errors = after.diag.reports(shinken_config::diag::Severity::Error, &after.sources);
    assert!(errors.is_empty(), "{tag}: the imported tree does not load:\n{errors:#?}");
    for kind in [Kind::Host, Kind::Service, Kind::Command, Kind::Contact, Kind::TimePeriod] {
        assert_eq!(after.count(kind), before.count(kind), "{tag}: {kind:?}");
    }
    assert_eq!(after.main.resources, before.main.resources, "{tag}: resource macros");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Runs the operator's own pod-tree builder on the imported objects, as the reconcile would once
/// they are applied: the tree it builds (daemon definitions replaced by the spec's) must be valid
/// and hold the original's hosts and services.
fn pod_tree_matches(original: &Path, imp: &Imported, tag: &str) {
    use shinken_operator::tree;
    let by_name = |name: &str| -> BTreeMap<String, String> {
        let cm = imp.config_maps.iter().find(|c| c.metadata.name.as_deref() == Some(name));
        cm.and_then(|c| c.data.clone()).unwrap_or_default()
    };
    let spec = &imp.cluster.spec;
    let external = spec.retention.external.as_ref();
    let inputs = tree::Inputs {
        cluster: imp.cluster.metadata.name.clone().unwrap_or_default(),
        namespace: "monitoring".into(),
        config_maps: spec.config.config_maps.iter().map(|s| (s.name.clone(), by_name(&s.name))).collect(),
        resource_secrets: spec
            .config
            .resource_secrets
            .iter()
            .map(|n| (n.clone(), secret(imp, n).clone()))
            .collect(),
        mongodb_uri: external.map(|e| secret(imp, &e.uri_secret.name)[&e.uri_secret.key].clone()),
        database: external.map_or("shinken".into(), |e| e.database.clone()),
    };
    let built = tree::build(spec, &inputs).unwrap_or_else(|e| panic!("{tag}: {e:#?}"));
    let valid = tree::validate(&built).unwrap_or_else(|e| panic!("{tag}: the pods' tree is invalid:\n{e:#?}"));
    let before = shinken_config::load(original).unwrap();
    assert_eq!(valid.hosts, before.count(Kind::Host), "{tag}: hosts");
    assert_eq!(valid.services, before.count(Kind::Service), "{tag}: services");
}

#[test]
fn import_course4_files_load_again_as_the_same_tree() {
    let imp = course4();
    reload_matches(&course4_dir(), &imp, "course4");
    pod_tree_matches(&course4_dir(), &imp, "course4");
    let before = shinken_config::load(&course4_dir()).unwrap();
    assert_eq!(before.count(Kind::Host), 2);
    assert_eq!(before.count(Kind::Service), 7);
}

#[test]
fn import_every_corpus_tree_imports_or_is_refused_with_its_errors() {
    let mut trees: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    trees.sort();
    trees.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/two-boxes"));
    assert!(trees.len() >= 4, "{trees:?}");
    let mut imported = 0;
    for tree in &trees {
        let tag = tree.file_name().unwrap().to_string_lossy().into_owned();
        let mut opts = ImportOptions::new("imported");
        opts.namespace = Some("monitoring".into());
        match import_tree(tree, &opts) {
            Ok(imp) => {
                imported += 1;
                let text = imp.to_yaml().unwrap_or_else(|e| panic!("{tag}: {e}"));
                let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{tag}: {e}"));
                assert_eq!(docs.len(), imp.secrets.len() + imp.config_maps.len() + 1, "{tag}");
                for doc in &docs {
                    assert_eq!(doc["metadata"]["namespace"], "monitoring", "{tag}");
                }
                for cm in &imp.config_maps {
                    let bytes: usize = cm.data.as_ref().unwrap().iter().map(|(k, v)| k.len() + v.len()).sum();
                    assert!(bytes <= MAX_CONFIG_MAP_BYTES, "{tag}");
                }
                reload_matches(tree, &imp, &tag);
                pod_tree_matches(tree, &imp, &tag);
            }
            Err(e) => {
                // Refused only for errors the loader reports, each located.
                assert!(e.starts_with("import: "), "{tag}: {e}");
                assert!(shinken_config::load(tree).map(|c| c.has_errors()).unwrap_or(true), "{tag}: {e}");
            }
        }
    }
    assert!(imported >= 3, "course4, two-boxes and Shinken's own tree import");
}
