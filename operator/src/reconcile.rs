//! One reconcile of a ShinkenCluster: the I/O around the pure parts ([`tree`], [`desired`],
//! [`takeover`], [`status`]).
//!
//! Order matters:
//! 1. secrets the daemons need (the token, the managed MongoDB's credentials) exist;
//! 2. the configuration is built and validated: refused, nothing that runs is touched;
//! 3. pod failures are signalled to the arbiter and masters fenced *before* applying, so the
//!    Deployments applied carry the fence;
//! 4. the owned objects are applied (server-side apply, one field manager) and the stale ones
//!    pruned;
//! 5. the status says what was seen and done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shinken::protocol::Token;
use tracing::{info, warn};

use crate::arbiter::{self, Resolver};
use crate::crd::{DaemonStatus, ShinkenCluster, Takeover};
use crate::desired::{self, Context as DesiredContext, Desired};
use crate::layout::{self, ANNOTATION_SWITCHOVER, ANNOTATION_TEMPLATE_HASH, FIELD_MANAGER, LABEL_DAEMON, LABEL_INSTANCE, LABEL_MANAGED_BY};
use crate::metrics::Metrics;
use crate::status::{self, ConfigOutcome, Facts, RetentionOutcome};
use crate::takeover;
use crate::tree::{self, Inputs};

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes API.
    pub client: kube::Client,
    /// Where the arbiters answer (their Services; loopback in tests).
    pub resolver: Arc<dyn Resolver>,
    /// Publishes Events on the ShinkenCluster.
    pub recorder: Recorder,
    /// Failures already told to an arbiter (daemon, pod), so each is told once.
    pub signalled: Mutex<BTreeSet<(String, String)>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// Why a reconcile failed (it is retried).
#[derive(Debug)]
pub enum Error {
    Kube(kube::Error),
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Kube(e) => write!(f, "Kubernetes API: {e}"),
            Error::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        Error::Kube(e)
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Reconciles one cluster.
pub async fn reconcile(cluster: Arc<ShinkenCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let r = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics.reconciled(started.elapsed(), r.is_ok());
    r
}

async fn reconcile_inner(cluster: &ShinkenCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_else(|| "default".to_string());
    let name = cluster.name_any();
    let spec = &cluster.spec;
    let client = ctx.client.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let now = Timestamp::now();
    let owner = cluster.controller_owner_ref(&()).into_iter().collect::<Vec<_>>();

    // 1. Secrets.
    let token_secret = spec.token_secret.clone().unwrap_or_else(|| layout::token_secret_name(&name));
    let token = match read_secret_key(&secrets, &token_secret, "token").await? {
        Some(t) => Token::new(t.trim()).ok(),
        None if spec.token_secret.is_none() => {
            let t = Token::generate().map_err(|e| Error::Other(format!("cannot generate a token: {e}")))?;
            create_secret(&secrets, &token_secret, &owner, &name, [("token", t.secret())]).await?;
            info!(cluster = %name, secret = %token_secret, "Token Secret created");
            Some(t)
        }
        None => None,
    };
    let (mongodb_uri, database, retention, managed) = retention(cluster, &ns, &name, &secrets, &owner).await?;

    // 2. Configuration.
    let mut inputs = Inputs {
        cluster: name.clone(),
        namespace: ns.clone(),
        mongodb_uri: mongodb_uri.clone(),
        database,
        ..Default::default()
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for source in &spec.config.config_maps {
        match cms.get_opt(&source.name).await? {
            Some(cm) => {
                inputs.config_maps.insert(source.name.clone(), cm.data.unwrap_or_default());
            }
            None => continue,
        }
    }
    for s in &spec.config.resource_secrets {
        if let Some(secret) = secrets.get_opt(s).await? {
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            inputs.resource_secrets.insert(s.clone(), data);
        }
    }
    let built = if mongodb_uri.is_none() {
        Err(ConfigOutcome::Invalid {
            reason: "RetentionSecretMissing",
            messages: vec![match &retention {
                RetentionOutcome::NotReady { message, .. } => message.clone(),
                RetentionOutcome::Ready(m) => m.clone(),
            }],
        })
    } else {
        match tree::build(spec, &inputs) {
            Err(messages) => Err(ConfigOutcome::Invalid {
                reason: "SourcesMissing",
                messages,
            }),
            Ok(t) => {
                let checked = tokio::task::spawn_blocking(move || {
                    let v = tree::validate(&t);
                    (t, v)
                })
                .await
                .map_err(|e| Error::Other(format!("validation panicked: {e}")))?;
                match checked {
                    (t, Ok(v)) => Ok((t, v)),
                    (_, Err(messages)) => Err(ConfigOutcome::Invalid {
                        reason: "InvalidConfiguration",
                        messages,
                    }),
                }
            }
        }
    };
    let previous_hash = cluster.status.as_ref().and_then(|s| s.config_hash.clone());
    // The Event once when the configuration turns bad, not at every requeue.
    let was_valid = cluster
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "ConfigValid")
        .is_none_or(|c| c.status == "True");
    if let Err(ConfigOutcome::Invalid { messages, .. }) = &built
        && was_valid
    {
        let first = messages.first().cloned().unwrap_or_default();
        warn!(cluster = %name, problems = messages.len(), first = %first, "Configuration refused: the last valid one keeps running");
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "InvalidConfig",
            "Validate",
            format!("{} problem(s), first: {first}", messages.len()),
        )
        .await;
    }
    // 3. Pod failures.
    let ours = format!("{LABEL_INSTANCE}={name},{LABEL_MANAGED_BY}={FIELD_MANAGER}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod_list = pods.list(&ListParams::default().labels(&ours)).await?.items;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let known = known_daemons(cluster, &deps.list(&ListParams::default().labels(&ours)).await?.items);
    let failures = takeover::failures(cluster, &pod_list, &known, now);
    let plan = {
        let done = ctx.signalled.lock().expect("not poisoned");
        takeover::plan(cluster, &failures, &done)
    };
    let mut fenced = takeover::fenced(cluster);
    let arbiters: Vec<String> = desired::instances(cluster)
        .into_iter()
        .filter(|i| i.role == "arbiter")
        .map(|i| i.name)
        .collect();
    let mut last_takeover = None;
    let mut told_down = Vec::new();
    for f in &plan.signal {
        let live: Vec<String> = arbiters
            .iter()
            .filter(|a| **a != f.daemon && !fenced.contains(*a))
            .cloned()
            .collect();
        let told = match &token {
            Some(t) => arbiter::declare_down(ctx.resolver.as_ref(), t, &ns, &name, &live, &f.daemon, &f.reason).await,
            None => arbiter::Told {
                accepted: vec![],
                failed: vec![("*".into(), "no token".into())],
            },
        };
        if told.accepted.is_empty() {
            // No fence either: an arbiter that was not told may still count on that master.
            warn!(cluster = %name, daemon = %f.daemon, reason = %f.reason, failed = ?told.failed, "Could not tell any arbiter that a daemon is down; will retry");
            continue;
        }
        told_down.push(f.daemon.clone());
        ctx.signalled.lock().expect("not poisoned").insert(f.key());
        ctx.metrics.takeover();
        info!(cluster = %name, daemon = %f.daemon, reason = %f.reason, arbiters = ?told.accepted, "Takeover: daemon declared down to the arbiter");
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "Takeover",
            "DeclareDown",
            format!("{} declared down ({}); told {}", f.daemon, f.reason, told.accepted.join(", ")),
        )
        .await;
        last_takeover = Some(Takeover {
            time: now.to_string(),
            daemon: f.daemon.clone(),
            reason: f.reason.clone(),
        });
    }
    for d in plan.fence.iter().filter(|d| told_down.contains(d)) {
        if fenced.insert(d.clone()) {
            info!(cluster = %name, daemon = %d, "Fenced: the master's Deployment is scaled to 0 until a switchover brings it back");
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "Fenced",
                "Fence",
                format!("{d} scaled to 0: its spare works"),
            )
            .await;
        }
    }
    for d in &plan.unfence {
        if fenced.remove(d) {
            info!(cluster = %name, daemon = %d, "Unfenced: a daemon of its role failed in turn");
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "Unfenced",
                "Unfence",
                format!("{d} comes back: another daemon of its role failed"),
            )
            .await;
        }
    }
    let mut requeue = Duration::from_secs(30);
    if let Some(target) = cluster.annotations().get(ANNOTATION_SWITCHOVER).cloned() {
        if !desired::instances(cluster).iter().any(|i| i.name == target) {
            warn!(cluster = %name, daemon = %target, "Switchover refused: no such daemon");
            let note = format!("{ANNOTATION_SWITCHOVER}={target}: no daemon of that name in spec.roles");
            publish(ctx, cluster, EventType::Warning, "SwitchoverRejected", "Switchover", note).await;
            let api: Api<ShinkenCluster> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = serde_json::json!({ "metadata": { "annotations": { ANNOTATION_SWITCHOVER: null } } });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        } else if fenced.remove(&target) {
            info!(cluster = %name, daemon = %target, "Switchover requested: unfencing first");
            requeue = Duration::from_secs(2);
        } else if switch_back(ctx, cluster, &ns, &name, &target, token.as_ref(), &arbiters, &pod_list).await? {
            requeue = Duration::from_secs(30);
        } else {
            requeue = Duration::from_secs(2);
        }
    }
    let fenced: Vec<String> = fenced.into_iter().collect();

    // 4. Apply.
    let mut config_outcome = match &built {
        Ok((_, v)) => ConfigOutcome::Valid {
            hash: v.hash.clone(),
            hosts: v.hosts,
            services: v.services,
            warnings: v.warnings.len(),
            replaced: built.as_ref().map(|(t, _)| t.notes.clone()).unwrap_or_default(),
        },
        Err(o) => o.clone(),
    };
    match &built {
        Ok((t, v)) => {
            let d = desired::desired(
                cluster,
                &DesiredContext {
                    tree: t,
                    hash: &v.hash,
                    fenced: &fenced,
                    token_secret: &token_secret,
                    managed_mongodb: managed,
                },
            );
            if let Err(e) = apply_all(&client, &ns, &name, &d).await {
                config_outcome = ConfigOutcome::Invalid {
                    reason: "ApplyFailed",
                    messages: vec![e.to_string()],
                };
                warn!(cluster = %name, error = %e, "Applying the cluster's objects failed");
            } else if previous_hash.as_deref() != Some(v.hash.as_str()) {
                info!(cluster = %name, hash = %v.hash, hosts = v.hosts, services = v.services, "Configuration applied");
                publish(
                    ctx,
                    cluster,
                    EventType::Normal,
                    "ConfigApplied",
                    "Apply",
                    format!("configuration {} applied: {} hosts, {} services", v.hash, v.hosts, v.services),
                )
                .await;
            }
        }
        Err(_) => scale_only(&client, &ns, &name, cluster, &fenced).await?,
    }

    // 5. Status.
    let leading = match &token {
        Some(t) => arbiter::leading_status(ctx.resolver.as_ref(), t, &ns, &name, &arbiters).await,
        None => None,
    };
    let daemons = daemon_statuses(cluster, &pod_list, leading.as_ref());
    let facts = Facts {
        generation: cluster.metadata.generation,
        config: config_outcome,
        retention: if token.is_none() {
            RetentionOutcome::NotReady {
                reason: "TokenSecretMissing",
                message: format!("Secret {token_secret} with key token not found: the daemons cannot start"),
            }
        } else {
            retention
        },
        daemons,
        fenced,
        failing: failures.iter().map(|f| format!("{}: {}", f.daemon, f.reason)).collect(),
        active_arbiter: leading.map(|s| s.name),
        last_takeover,
        previous: cluster.status.as_ref(),
        now,
    };
    let new_status = status::status(&facts);
    let api: Api<ShinkenCluster> = Api::namespaced(client, &ns);
    // A merge patch leaves out what is absent: an emptied field is sent as null to clear it.
    let mut body = serde_json::to_value(&new_status).map_err(|e| Error::Other(e.to_string()))?;
    if let Some(o) = body.as_object_mut() {
        for key in [
            "observedGeneration",
            "readyDaemons",
            "activeArbiter",
            "fenced",
            "lastTakeover",
            "configHash",
        ] {
            o.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": body })))
        .await?;
    Ok(Action::requeue(requeue))
}

/// Retention: the URI, database, condition, and whether the operator runs MongoDB.
async fn retention(
    cluster: &ShinkenCluster,
    ns: &str,
    name: &str,
    secrets: &Api<Secret>,
    owner: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
) -> Result<(Option<String>, String, RetentionOutcome, bool), Error> {
    let r = &cluster.spec.retention;
    if let Some(ext) = &r.external {
        return Ok(match read_secret_key(secrets, &ext.uri_secret.name, &ext.uri_secret.key).await? {
            Some(uri) => (
                Some(uri.trim().to_string()),
                ext.database.clone(),
                RetentionOutcome::Ready("external MongoDB".to_string()),
                false,
            ),
            None => (
                None,
                ext.database.clone(),
                RetentionOutcome::NotReady {
                    reason: "SecretNotFound",
                    message: format!(
                        "Secret {} has no key {}: create it with the MongoDB URI",
                        ext.uri_secret.name, ext.uri_secret.key
                    ),
                },
                false,
            ),
        });
    }
    let managed = r.managed.clone().unwrap_or_default();
    let secret = desired::mongodb_secret_name(name);
    let password = match read_secret_key(secrets, &secret, "password").await? {
        Some(p) => p,
        None => {
            let p = Token::generate()
                .map_err(|e| Error::Other(format!("cannot generate a password: {e}")))?
                .secret()
                .to_string();
            create_secret(secrets, &secret, owner, name, [("username", "shinken"), ("password", p.as_str())]).await?;
            p
        }
    };
    let uri = desired::managed_mongodb_uri(name, ns, "shinken", &password);
    let sts: Api<StatefulSet> = Api::namespaced(secrets.clone().into_client(), ns);
    let ready = sts
        .get_opt(&format!("{name}-mongodb"))
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= 1;
    let outcome = if ready {
        RetentionOutcome::Ready("managed MongoDB ready".to_string())
    } else {
        RetentionOutcome::NotReady {
            reason: "MongoDBStarting",
            message: format!("StatefulSet {name}-mongodb has no ready pod yet"),
        }
    };
    Ok((Some(uri), managed.database, outcome, true))
}

async fn read_secret_key(secrets: &Api<Secret>, name: &str, key: &str) -> Result<Option<String>, Error> {
    let s = match secrets.get_opt(name).await? {
        Some(s) => s,
        None => return Ok(None),
    };
    let from_data = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned());
    Ok(from_data.or_else(|| s.string_data.as_ref().and_then(|d| d.get(key)).cloned()))
}

async fn create_secret<'a>(
    secrets: &Api<Secret>,
    name: &str,
    owner: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    cluster: &str,
    data: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), Error> {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(desired::cluster_labels(cluster)),
            owner_references: Some(owner.to_vec()),
            ..Default::default()
        },
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        type_: Some("Opaque".to_string()),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        // It exists without these keys (the caller found them missing): add them, keeping the
        // rest, rather than using values stored nowhere.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = serde_json::json!({ "data": secret.data });
            secrets.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A switchover back to `target`: once its pod is Ready, the part its spare holds moves back.
/// Returns whether it is done (the annotation is removed).
#[allow(clippy::too_many_arguments)]
async fn switch_back(
    ctx: &Context,
    cluster: &ShinkenCluster,
    ns: &str,
    name: &str,
    target: &str,
    token: Option<&Token>,
    arbiters: &[String],
    pods: &[Pod],
) -> Result<bool, Error> {
    let Some(token) = token else { return Ok(false) };
    let target_ready = pods
        .iter()
        .any(|p| p.labels().get(LABEL_DAEMON).map(String::as_str) == Some(target) && pod_ready(p));
    if !target_ready {
        return Ok(false);
    }
    let Some(leader) = arbiter::leading_status(ctx.resolver.as_ref(), token, ns, name, arbiters).await else {
        return Ok(false);
    };
    let role = desired::instances(cluster).into_iter().find(|i| i.name == target).map(|i| i.role);
    // A scheduler's part moves back through the arbiter's switchover. Other roles have no
    // fail-back in Shinken: the returning master stands by, unfenced, until it is needed.
    if role == Some("scheduler") {
        let holder = leader
            .daemons
            .iter()
            .find(|d| d.role == "scheduler" && d.spare && !d.parts.is_empty())
            .map(|d| d.name.clone());
        if let Some(from) = holder {
            if let Err(e) = arbiter::switchover(ctx.resolver.as_ref(), token, ns, name, &leader.name, &from, target).await {
                warn!(cluster = %name, from = %from, to = %target, error = %e, "Switchover refused; will retry");
                return Ok(false);
            }
            info!(cluster = %name, from = %from, to = %target, "Switchover done");
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "Switchover",
                "Switchover",
                format!("part moved from {from} back to {target}"),
            )
            .await;
        }
    }
    let api: Api<ShinkenCluster> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({ "metadata": { "annotations": { ANNOTATION_SWITCHOVER: null } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    Ok(true)
}

/// Per daemon: the template its Deployment wants, whether it rolls out, its last pod.
fn known_daemons(cluster: &ShinkenCluster, deployments: &[Deployment]) -> BTreeMap<String, takeover::Known> {
    let mut known: BTreeMap<String, takeover::Known> = BTreeMap::new();
    for d in deployments {
        let Some(daemon) = d.labels().get(LABEL_DAEMON).cloned() else {
            continue;
        };
        let template = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(ANNOTATION_TEMPLATE_HASH))
            .cloned();
        let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        let rolling = st.observed_generation < d.metadata.generation || st.updated_replicas.unwrap_or(0) < wanted;
        known.insert(
            daemon,
            takeover::Known {
                template,
                rolling,
                last_pod: None,
            },
        );
    }
    for d in cluster.status.iter().flat_map(|s| s.daemons.iter()) {
        if let Some(pod) = &d.pod {
            known.entry(d.name.clone()).or_default().last_pod = Some(pod.clone());
        }
    }
    known
}

fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Every daemon: its newest pod, readiness, and whether the arbiter says it works.
fn daemon_statuses(cluster: &ShinkenCluster, pods: &[Pod], leading: Option<&shinken::messages::ArbiterStatus>) -> Vec<DaemonStatus> {
    desired::instances(cluster)
        .into_iter()
        .map(|i| {
            let pod = pods
                .iter()
                .filter(|p| p.labels().get(LABEL_DAEMON) == Some(&i.name) && p.metadata.deletion_timestamp.is_none())
                .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let active = match leading {
                Some(s) if i.role == "arbiter" => s.name == i.name,
                Some(s) => s.daemons.iter().any(|d| d.name == i.name && d.alive && !d.parts.is_empty()),
                None => false,
            };
            DaemonStatus {
                name: i.name.clone(),
                role: i.role.to_string(),
                spare: i.spare,
                pod: pod.and_then(|p| p.metadata.name.clone()),
                ready: pod.is_some_and(pod_ready),
                active,
            }
        })
        .collect()
}

async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(), kube::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .map(|_| ())
}

/// Deletes the objects of the cluster that are not wanted any more.
async fn prune<K>(api: &Api<K>, cluster: &str, keep: &[&K]) -> Result<(), kube::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let wanted: BTreeSet<String> = keep.iter().filter_map(|k| k.meta().name.clone()).collect();
    let selector = format!("{LABEL_INSTANCE}={cluster},{LABEL_MANAGED_BY}={FIELD_MANAGER}");
    for obj in api.list(&ListParams::default().labels(&selector)).await?.items {
        let n = obj.meta().name.clone().unwrap_or_default();
        if !wanted.contains(&n) {
            match api.delete(&n, &DeleteParams::default()).await {
                Ok(_) => info!(cluster, object = %n, "Pruned"),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Applies every wanted object, ConfigMaps first (the new pods mount them), then prunes.
pub async fn apply_all(client: &kube::Client, ns: &str, cluster: &str, d: &Desired) -> Result<(), kube::Error> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    for o in &d.config_maps {
        apply(&cms, o).await?;
    }
    for o in &d.secrets {
        apply(&secrets, o).await?;
    }
    for o in &d.stateful_sets {
        apply(&stss, o).await?;
    }
    for o in &d.services {
        apply(&svcs, o).await?;
    }
    for o in &d.deployments {
        apply(&deps, o).await?;
    }
    for o in &d.pdbs {
        apply(&pdbs, o).await?;
    }
    prune(&deps, cluster, &d.deployments.iter().collect::<Vec<_>>()).await?;
    prune(&svcs, cluster, &d.services.iter().collect::<Vec<_>>()).await?;
    prune(&pdbs, cluster, &d.pdbs.iter().collect::<Vec<_>>()).await?;
    prune(&stss, cluster, &d.stateful_sets.iter().collect::<Vec<_>>()).await?;
    // ConfigMaps last: the Deployments no longer name the old ones.
    prune(&cms, cluster, &d.config_maps.iter().collect::<Vec<_>>()).await?;
    Ok(())
}

/// With a refused configuration, only the fence moves: the replicas of the daemons' Deployments.
async fn scale_only(client: &kube::Client, ns: &str, name: &str, cluster: &ShinkenCluster, fenced: &[String]) -> Result<(), Error> {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let wanted: BTreeMap<String, i32> = desired::instances(cluster)
        .into_iter()
        .map(|i| (layout::object_name(name, &i.name), if fenced.contains(&i.name) { 0 } else { 1 }))
        .collect();
    for (dep, replicas) in wanted {
        let Some(current) = deps.get_opt(&dep).await? else { continue };
        if current.spec.as_ref().and_then(|s| s.replicas) != Some(replicas) {
            deps.patch(
                &dep,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } })),
            )
            .await?;
        }
    }
    Ok(())
}

/// Publishes an Event on the cluster; a failure to publish is logged, never fatal.
async fn publish(ctx: &Context, cluster: &ShinkenCluster, type_: EventType, reason: &str, action: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &cluster.object_ref(&())).await {
        warn!(error = %e, reason, "Could not publish an Event");
    }
}

/// How long to wait after a failed reconcile.
pub fn error_policy(_cluster: Arc<ShinkenCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %error, "Reconcile failed; retrying in 5 s");
    Action::requeue(Duration::from_secs(5))
}
