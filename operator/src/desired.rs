//! The objects a ShinkenCluster owns, as a pure function of the cluster, its validated tree and
//! what the operator fenced. The caller applies them (server-side apply) and prunes the rest.
//!
//! Choices a reader may wonder about:
//! - one Deployment of one pod per daemon, strategy `Recreate`: two pods of the same daemon
//!   would be two schedulers on one part;
//! - Services publish not-ready addresses: whether a daemon is alive is the arbiter's call
//!   (Shinken's probes), not the kubelet's;
//! - ConfigMaps are named by the configuration's hash and immutable: the last good ones stay
//!   mounted by the running pods until a new valid configuration rolls them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapProjection, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, SeccompProfile, Secret, SecretKeySelector, SecretProjection, SecurityContext,
    Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount, VolumeProjection, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::crd::{AntiAffinity, ROLES, ShinkenCluster};
use crate::layout::{self, *};
use crate::tree::{Origin, Tree};

/// Bytes of data per ConfigMap: under the 1 MiB (1,048,576 B) object limit with room for
/// metadata. Every user file comes from a ConfigMap, so each fits alone.
pub const CONFIGMAP_BUDGET: usize = 1_000_000;
/// The port of the managed MongoDB.
pub const MONGODB_PORT: i32 = 27017;

/// Everything the cluster owns.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub stateful_sets: Vec<StatefulSet>,
}

/// One daemon instance of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub role: &'static str,
    pub name: String,
    pub spare: bool,
}

/// Every daemon instance the spec asks for, masters first within a role.
pub fn instances(cluster: &ShinkenCluster) -> Vec<Instance> {
    let mut out = Vec::new();
    for role in ROLES {
        let r = cluster.spec.roles.get(role);
        for (spare, count) in [(false, r.masters), (true, r.spares)] {
            for i in 0..count.max(0) as usize {
                out.push(Instance {
                    role,
                    name: layout::daemon_name(role, spare, i),
                    spare,
                });
            }
        }
    }
    out
}

/// The labels shared by everything of a cluster.
pub fn cluster_labels(cluster: &str) -> BTreeMap<String, String> {
    [
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
    ]
    .into_iter()
    .collect()
}

fn daemon_selector(cluster: &str, daemon: &str) -> BTreeMap<String, String> {
    [
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_DAEMON.to_string(), daemon.to_string()),
    ]
    .into_iter()
    .collect()
}

fn daemon_labels(cluster: &str, i: &Instance) -> BTreeMap<String, String> {
    let mut l = cluster_labels(cluster);
    l.insert(LABEL_COMPONENT.to_string(), i.role.to_string());
    l.insert(LABEL_DAEMON.to_string(), i.name.clone());
    l.insert(LABEL_SPARE.to_string(), i.spare.to_string());
    l
}

/// What the pure function needs besides the cluster.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The validated tree to mount, and its hash.
    pub tree: &'a Tree,
    pub hash: &'a str,
    /// Masters the operator fenced (replicas 0).
    pub fenced: &'a [String],
    /// The Secret holding the shared token.
    pub token_secret: &'a str,
    /// Whether the cluster runs its own MongoDB (the caller made its credentials Secret).
    pub managed_mongodb: bool,
}

/// The objects of a cluster.
pub fn desired(cluster: &ShinkenCluster, ctx: &Context) -> Desired {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let ns = cluster.metadata.namespace.clone();
    let owner = cluster.controller_owner_ref(&()).into_iter().collect::<Vec<OwnerReference>>();
    let meta = |object: String, labels: BTreeMap<String, String>| ObjectMeta {
        name: Some(object),
        namespace: ns.clone(),
        labels: Some(labels),
        owner_references: Some(owner.clone()),
        ..Default::default()
    };
    let mut out = Desired::default();

    // ConfigMaps of the tree, packed under the budget, named by the hash.
    let packs = pack(ctx.tree);
    let mut projections = Vec::new();
    for (n, files) in packs.iter().enumerate() {
        let cm_name = format!("{name}-config-{}-{n}", &ctx.hash[..ctx.hash.len().min(10)]);
        let mut labels = cluster_labels(&name);
        labels.insert(ANNOTATION_CONFIG_HASH.to_string(), ctx.hash.to_string());
        out.config_maps.push(ConfigMap {
            metadata: meta(cm_name.clone(), labels),
            data: Some(files.iter().map(|(p, c)| (layout::key_of_path(p), c.clone())).collect()),
            immutable: Some(true),
            ..Default::default()
        });
        projections.push(VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: cm_name,
                items: Some(
                    files
                        .iter()
                        .map(|(p, _)| KeyToPath {
                            key: layout::key_of_path(p),
                            path: p.clone(),
                            mode: None,
                        })
                        .collect(),
                ),
                optional: Some(false),
            }),
            ..Default::default()
        });
    }
    // Secrets of the tree: the user's resource Secrets, the operator's retention Secret.
    let mut secret_items: BTreeMap<String, Vec<KeyToPath>> = BTreeMap::new();
    for (path, file) in &ctx.tree.files {
        match &file.origin {
            Origin::Secret { name: s, key } => secret_items.entry(s.clone()).or_default().push(KeyToPath {
                key: key.clone(),
                path: path.clone(),
                mode: None,
            }),
            Origin::Generated if path == RETENTION_FILE => {
                let s = retention_secret_name(&name);
                out.secrets.push(Secret {
                    metadata: meta(s.clone(), cluster_labels(&name)),
                    // `data`, not `stringData`: write-only stringData never compares equal under
                    // server-side apply, so every reconcile would rewrite it.
                    data: Some(
                        [("retention.cfg".to_string(), ByteString(file.content.clone().into_bytes()))]
                            .into_iter()
                            .collect(),
                    ),
                    type_: Some("Opaque".to_string()),
                    ..Default::default()
                });
                secret_items.entry(s).or_default().push(KeyToPath {
                    key: "retention.cfg".to_string(),
                    path: path.clone(),
                    mode: None,
                });
            }
            _ => {}
        }
    }
    for (s, items) in secret_items {
        projections.push(VolumeProjection {
            secret: Some(SecretProjection {
                name: s,
                items: Some(items),
                optional: Some(false),
            }),
            ..Default::default()
        });
    }

    for inst in instances(cluster) {
        let object = layout::object_name(&name, &inst.name);
        let labels = daemon_labels(&name, &inst);
        let port = i32::from(layout::default_port(inst.role));
        let fenced = ctx.fenced.contains(&inst.name);
        out.deployments.push(Deployment {
            metadata: meta(object.clone(), labels.clone()),
            spec: Some(DeploymentSpec {
                replicas: Some(if fenced { 0 } else { 1 }),
                selector: LabelSelector {
                    match_labels: Some(daemon_selector(&name, &inst.name)),
                    ..Default::default()
                },
                strategy: Some(DeploymentStrategy {
                    type_: Some("Recreate".to_string()),
                    ..Default::default()
                }),
                template: pod_template(cluster, ctx, &inst, labels.clone(), port, &projections),
                ..Default::default()
            }),
            ..Default::default()
        });
        out.services.push(Service {
            metadata: meta(object.clone(), labels),
            spec: Some(ServiceSpec {
                selector: Some(daemon_selector(&name, &inst.name)),
                ports: Some(vec![ServicePort {
                    name: Some("api".to_string()),
                    port,
                    target_port: Some(IntOrString::Int(port)),
                    ..Default::default()
                }]),
                publish_not_ready_addresses: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    for role in ROLES {
        let r = cluster.spec.roles.get(role);
        if r.spares > 0 && r.masters > 0 {
            let mut selector = BTreeMap::new();
            selector.insert(LABEL_INSTANCE.to_string(), name.clone());
            selector.insert(LABEL_COMPONENT.to_string(), role.to_string());
            let mut labels = cluster_labels(&name);
            labels.insert(LABEL_COMPONENT.to_string(), role.to_string());
            out.pdbs.push(PodDisruptionBudget {
                metadata: meta(format!("{name}-{role}"), labels),
                spec: Some(PodDisruptionBudgetSpec {
                    max_unavailable: Some(IntOrString::Int(1)),
                    selector: Some(LabelSelector {
                        match_labels: Some(selector),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }

    if ctx.managed_mongodb {
        let (sts, svc) = managed_mongodb(cluster, &meta);
        out.stateful_sets.push(sts);
        out.services.push(svc);
    }
    out
}

/// The Secret holding the retention resource file.
pub fn retention_secret_name(cluster: &str) -> String {
    format!("{cluster}-retention")
}

/// The Secret holding the managed MongoDB's credentials (`username`, `password`).
pub fn mongodb_secret_name(cluster: &str) -> String {
    format!("{cluster}-mongodb")
}

/// The URI of the managed MongoDB.
pub fn managed_mongodb_uri(cluster: &str, namespace: &str, username: &str, password: &str) -> String {
    format!("mongodb://{username}:{password}@{cluster}-mongodb.{namespace}.svc:{MONGODB_PORT}/?authSource=admin&directConnection=true")
}

/// Files of the tree that go to ConfigMaps, packed first-fit in path order under the budget.
fn pack(tree: &Tree) -> Vec<Vec<(String, String)>> {
    let mut packs: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    for (path, file) in &tree.files {
        if matches!(file.origin, Origin::Secret { .. }) || path == RETENTION_FILE {
            continue;
        }
        let size = file.content.len() + path.len();
        match packs.iter_mut().find(|(used, _)| used + size <= CONFIGMAP_BUDGET) {
            Some((used, files)) => {
                *used += size;
                files.push((path.clone(), file.content.clone()));
            }
            None => packs.push((size, vec![(path.clone(), file.content.clone())])),
        }
    }
    packs.into_iter().map(|(_, f)| f).collect()
}

fn pod_template(
    cluster: &ShinkenCluster,
    ctx: &Context,
    inst: &Instance,
    labels: BTreeMap<String, String>,
    port: i32,
    projections: &[VolumeProjection],
) -> PodTemplateSpec {
    let spec = &cluster.spec;
    let role = spec.roles.get(inst.role);
    let probe = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".to_string()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(spec.failover.timeout),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    let env = vec![
        EnvVar {
            name: "SHINKEN_TOKEN".to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: ctx.token_secret.to_string(),
                    key: "token".to_string(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        EnvVar {
            name: "SHINKEN_STATE_DIR".to_string(),
            value: Some("/var/lib/shinken".to_string()),
            ..Default::default()
        },
    ];
    let container = Container {
        name: "shinken".to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(vec!["shinken".to_string()]),
        args: Some(vec![
            inst.role.to_string(),
            "--config".to_string(),
            format!("{CONFIG_ROOT}/{MAIN_FILE}"),
            "--name".to_string(),
            inst.name.clone(),
            "--listen".to_string(),
            format!("0.0.0.0:{port}"),
        ]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("api".to_string()),
            container_port: port,
            ..Default::default()
        }]),
        readiness_probe: Some(probe(spec.failover.check_interval, 1)),
        liveness_probe: Some(probe(10, 3)),
        resources: role.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".to_string(),
                mount_path: CONFIG_ROOT.to_string(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "state".to_string(),
                mount_path: "/var/lib/shinken".to_string(),
                ..Default::default()
            },
            VolumeMount {
                name: "tmp".to_string(),
                mount_path: "/tmp".to_string(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_CONFIG_HASH.to_string(), ctx.hash.to_string());
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            affinity: Some(affinity(cluster, inst)),
            node_selector: role.node_selector.clone(),
            tolerations: role.tolerations.clone(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(10001),
                run_as_group: Some(10001),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(10),
            volumes: Some(vec![
                Volume {
                    name: "config".to_string(),
                    projected: Some(ProjectedVolumeSource {
                        sources: Some(projections.to_vec()),
                        default_mode: Some(0o444),
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "state".to_string(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
                Volume {
                    name: "tmp".to_string(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
    };
    // The hash of everything above: a pod made from another template is being replaced.
    let hash = template_hash(&template);
    if let Some(a) = template.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
        a.insert(ANNOTATION_TEMPLATE_HASH.to_string(), hash);
    }
    template
}

/// The hash of the template's JSON (the arbiter's FNV-1a `magic_hash`).
fn template_hash(t: &PodTemplateSpec) -> String {
    shinken::arbiter::whole_cfg::magic_hash(&serde_json::to_string(t).unwrap_or_default())
}

/// The user's affinity plus anti-affinity between a role's masters and spares (a spare on its
/// master's node dies with it).
fn affinity(cluster: &ShinkenCluster, inst: &Instance) -> Affinity {
    let role = cluster.spec.roles.get(inst.role);
    let mut a = role.affinity.clone().unwrap_or_default();
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let mut other = BTreeMap::new();
    other.insert(LABEL_INSTANCE.to_string(), name);
    other.insert(LABEL_COMPONENT.to_string(), inst.role.to_string());
    other.insert(LABEL_SPARE.to_string(), (!inst.spare).to_string());
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(other),
            ..Default::default()
        }),
        topology_key: "kubernetes.io/hostname".to_string(),
        ..Default::default()
    };
    let anti = a.pod_anti_affinity.get_or_insert_with(PodAntiAffinity::default);
    match role.anti_affinity {
        AntiAffinity::Preferred => anti
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm {
                pod_affinity_term: term,
                weight: 100,
            }),
        AntiAffinity::Required => anti
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term),
    }
    a
}

fn managed_mongodb(cluster: &ShinkenCluster, meta: &dyn Fn(String, BTreeMap<String, String>) -> ObjectMeta) -> (StatefulSet, Service) {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let m = cluster.spec.retention.managed.clone().unwrap_or_default();
    let object = format!("{name}-mongodb");
    let mut labels = cluster_labels(&name);
    labels.insert(LABEL_COMPONENT.to_string(), "mongodb".to_string());
    let mut selector = BTreeMap::new();
    selector.insert(LABEL_INSTANCE.to_string(), name.clone());
    selector.insert(LABEL_COMPONENT.to_string(), "mongodb".to_string());
    let secret_env = |var: &str, key: &str| EnvVar {
        name: var.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: mongodb_secret_name(&name),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut storage = BTreeMap::new();
    storage.insert("storage".to_string(), Quantity(m.storage_size.clone()));
    let sts = StatefulSet {
        metadata: meta(object.clone(), labels.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(object.clone()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "mongodb".to_string(),
                        image: Some(m.image.clone()),
                        env: Some(vec![
                            secret_env("MONGO_INITDB_ROOT_USERNAME", "username"),
                            secret_env("MONGO_INITDB_ROOT_PASSWORD", "password"),
                        ]),
                        ports: Some(vec![ContainerPort {
                            name: Some("mongodb".to_string()),
                            container_port: MONGODB_PORT,
                            ..Default::default()
                        }]),
                        readiness_probe: Some(Probe {
                            tcp_socket: Some(TCPSocketAction {
                                port: IntOrString::Int(MONGODB_PORT),
                                ..Default::default()
                            }),
                            period_seconds: Some(5),
                            ..Default::default()
                        }),
                        volume_mounts: Some(vec![VolumeMount {
                            name: "data".to_string(),
                            mount_path: "/data/db".to_string(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".to_string()),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    storage_class_name: m.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(storage),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let svc = Service {
        metadata: meta(object, labels),
        spec: Some(ServiceSpec {
            // Headless: the StatefulSet's governing Service.
            cluster_ip: Some("None".to_string()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("mongodb".to_string()),
                port: MONGODB_PORT,
                target_port: Some(IntOrString::Int(MONGODB_PORT)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    (sts, svc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{self, Inputs};

    pub(crate) fn cluster(spec: serde_json::Value) -> ShinkenCluster {
        let mut c = ShinkenCluster::new("prod", serde_json::from_value(spec).unwrap());
        c.metadata.namespace = Some("mon".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    fn tree_of(c: &ShinkenCluster, objects: &str) -> Tree {
        let inputs = Inputs {
            cluster: "prod".into(),
            namespace: "mon".into(),
            config_maps: [(
                "objs".to_string(),
                [("web.cfg".to_string(), objects.to_string())].into_iter().collect(),
            )]
            .into_iter()
            .collect(),
            resource_secrets: BTreeMap::new(),
            mongodb_uri: Some("mongodb://x".into()),
            database: "shinken".into(),
        };
        tree::build(&c.spec, &inputs).unwrap()
    }

    fn run(c: &ShinkenCluster, fenced: &[String], objects: &str) -> Desired {
        let t = tree_of(c, objects);
        let h = tree::hash(&t);
        desired(
            c,
            &Context {
                tree: &t,
                hash: &h,
                fenced,
                token_secret: "prod-token",
                managed_mongodb: c.spec.retention.external.is_none(),
            },
        )
    }

    fn base() -> serde_json::Value {
        serde_json::json!({ "image": "shinken:1", "config": { "configMaps": [ { "name": "objs" } ] } })
    }

    #[test]
    fn one_deployment_and_service_per_daemon_master_and_spare() {
        let d = run(&cluster(base()), &[], "define host {\n host_name a\n}\n");
        assert_eq!(d.deployments.len(), 12);
        assert_eq!(d.services.len(), 13, "12 daemons and the managed MongoDB");
        let names: Vec<_> = d.deployments.iter().map(|x| x.metadata.name.clone().unwrap()).collect();
        assert!(names.contains(&"prod-scheduler-0".to_string()) && names.contains(&"prod-scheduler-spare-0".to_string()));
        for dep in &d.deployments {
            let spec = dep.spec.as_ref().unwrap();
            assert_eq!(spec.replicas, Some(1));
            assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"));
            let owner = &dep.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!((owner.kind.as_str(), owner.controller), ("ShinkenCluster", Some(true)));
        }
        assert_eq!(d.pdbs.len(), 6, "every role has a spare");
        assert_eq!(d.stateful_sets.len(), 1);
    }

    #[test]
    fn a_daemon_pod_runs_its_role_with_probes_token_and_config_hash() {
        let d = run(&cluster(base()), &[], "");
        let dep = d
            .deployments
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some("prod-poller-spare-0"))
            .unwrap();
        let tpl = &dep.spec.as_ref().unwrap().template;
        let pod = tpl.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "poller",
                "--config",
                "/etc/shinken/shinken.cfg",
                "--name",
                "poller-spare-0",
                "--listen",
                "0.0.0.0:7771"
            ]
        );
        assert_eq!(
            c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(),
            Some("/health")
        );
        assert!(c.env.as_ref().unwrap().iter().any(|e| e.name == "SHINKEN_TOKEN"));
        assert!(
            tpl.metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(ANNOTATION_CONFIG_HASH)
        );
        let anti = pod.affinity.as_ref().unwrap().pod_anti_affinity.as_ref().unwrap();
        let term = &anti.preferred_during_scheduling_ignored_during_execution.as_ref().unwrap()[0].pod_affinity_term;
        assert_eq!(
            term.label_selector.as_ref().unwrap().match_labels.as_ref().unwrap()[LABEL_SPARE],
            "false"
        );
    }

    #[test]
    fn required_anti_affinity_on_request() {
        let mut spec = base();
        spec["roles"] = serde_json::json!({ "scheduler": { "antiAffinity": "Required" } });
        let d = run(&cluster(spec), &[], "");
        let dep = d
            .deployments
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some("prod-scheduler-0"))
            .unwrap();
        let anti = dep
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .affinity
            .clone()
            .unwrap()
            .pod_anti_affinity
            .unwrap();
        assert_eq!(anti.required_during_scheduling_ignored_during_execution.unwrap().len(), 1);
    }

    #[test]
    fn fenced_masters_are_scaled_to_zero() {
        let d = run(&cluster(base()), &["scheduler-0".to_string()], "");
        let replicas = |n: &str| {
            d.deployments
                .iter()
                .find(|x| x.metadata.name.as_deref() == Some(n))
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .replicas
        };
        assert_eq!(replicas("prod-scheduler-0"), Some(0));
        assert_eq!(replicas("prod-scheduler-spare-0"), Some(1));
    }

    #[test]
    fn no_pdb_without_a_spare_and_no_mongodb_when_external() {
        let mut spec = base();
        spec["roles"] = serde_json::json!({ "poller": { "spares": 0 } });
        spec["retention"] = serde_json::json!({ "external": { "uriSecret": { "name": "ext" } } });
        let d = run(&cluster(spec), &[], "");
        assert_eq!(d.pdbs.len(), 5);
        assert!(d.pdbs.iter().all(|p| p.metadata.name.as_deref() != Some("prod-poller")));
        assert!(d.stateful_sets.is_empty());
        assert_eq!(d.deployments.len(), 11);
    }

    #[test]
    fn a_big_tree_is_split_across_configmaps_under_the_limit() {
        let c = cluster(base());
        let mut host = String::new();
        for i in 0..14_000 {
            host.push_str(&format!("define host {{\n    host_name h{i:06}\n    address 10.0.0.1\n}}\n"));
        }
        // Three files of ~0.7 MB: the operator's copies must stay under the budget each.
        let mut t = tree_of(&c, &host);
        let file = t.files["objects/web.cfg"].clone();
        t.files.insert("objects/more.cfg".into(), file.clone());
        t.files.insert("objects/most.cfg".into(), file);
        let h = tree::hash(&t);
        let d = desired(
            &c,
            &Context {
                tree: &t,
                hash: &h,
                fenced: &[],
                token_secret: "t",
                managed_mongodb: false,
            },
        );
        assert_eq!(d.config_maps.len(), 3);
        for cm in &d.config_maps {
            let size: usize = cm.data.as_ref().unwrap().iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(size <= CONFIGMAP_BUDGET, "{size}");
            assert_eq!(cm.immutable, Some(true));
        }
        let keys: usize = d.config_maps.iter().map(|c| c.data.as_ref().unwrap().len()).sum();
        assert_eq!(keys, t.files.len() - 1, "every file but the retention Secret's");
    }
}
