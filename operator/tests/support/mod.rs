//! What the operator's process tests and its takeover benchmark share: real daemons started from
//! the `shinken` binary on loopback ports chosen at run time, an in-memory Kubernetes API
//! (`kube-fake-client`), and the reconcile called as the controller's watch would call it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodCondition, PodStatus, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Recorder, Reporter};
use kube_fake_client::ClientBuilder;
use shinken::messages::ArbiterStatus;
use shinken::protocol::{Client, Token};
use shinken_operator::arbiter::Resolver;
use shinken_operator::crd::ShinkenCluster;
use shinken_operator::layout::{ANNOTATION_CONFIG_HASH, LABEL_DAEMON, LABEL_INSTANCE, LABEL_MANAGED_BY};
use shinken_operator::metrics::Metrics;
use shinken_operator::reconcile::{Context, reconcile};

pub const SECRET: &str = "operator-test-token-0123456789abcdef";
pub const NS: &str = "mon";

/// The `shinken` binary, built beside this test (the workspace test run builds every binary).
pub fn shinken_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("shinken");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo nextest run --workspace` (or `cargo build -p shinken` first)",
        bin.display()
    );
    bin
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(role: &str, name: &str, dir: &Path) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(shinken_bin())
            .args([role, "--config", dir.join("shinken.cfg").to_str().unwrap(), "--name", name])
            .env("SHINKEN_STATE_DIR", dir.join(format!("state-{name}")))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemons, named as the operator names them. The arbiter alone needs 12 failed probes 5 s
/// apart (55 s or more) to declare a daemon dead; a returning daemon is seen alive at its next
/// probe, within 5 s.
pub fn write_tree(dir: &Path, ports: &BTreeMap<&str, u16>) {
    write_tree_probing(dir, ports, 5, 12, 3)
}

/// The same with the probes given (seconds, failed probes before death, probe timeout).
pub fn write_tree_probing(dir: &Path, ports: &BTreeMap<&str, u16>, check_interval: u32, max_check_attempts: u32, timeout: u32) {
    let probe = format!(
        "    check_interval  {check_interval}\n    max_check_attempts  {max_check_attempts}\n    timeout  {timeout}\n    data_timeout  10\n"
    );
    let mut daemons = String::new();
    for (name, port) in ports {
        let role = name.split('-').next().unwrap();
        let spare = u8::from(name.contains("spare"));
        daemons.push_str(&format!(
            "define {role} {{\n    {role}_name  {name}\n    address  127.0.0.1\n    port  {port}\n    spare  {spare}\n{probe}}}\n"
        ));
    }
    fs::write(
        dir.join("shinken.cfg"),
        "cfg_file=daemons.cfg\ncfg_file=objects.cfg\ninterval_length=1\n",
    )
    .unwrap();
    fs::write(dir.join("daemons.cfg"), daemons).unwrap();
    fs::write(dir.join("objects.cfg"), OBJECTS).unwrap();
    let token = dir.join("shinken.token");
    fs::write(&token, format!("{SECRET}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
}

pub const OBJECTS: &str = "define command {\n    command_name  check_dummy\n    command_line  /usr/lib/nagios/plugins/check_dummy $ARG1$\n}\n\
define host {\n    host_name  web1\n    address  127.0.0.1\n    check_command  check_dummy!0\n    max_check_attempts  2\n    check_interval  5\n    retry_interval  1\n}\n\
define service {\n    host_name  web1\n    service_description  http\n    check_command  check_dummy!2\n    check_interval  1\n    retry_interval  1\n    max_check_attempts  2\n}\n";

/// Arbiters answer on loopback instead of their Services.
pub struct Loopback(pub BTreeMap<String, u16>);

impl Resolver for Loopback {
    fn url(&self, _ns: &str, _cluster: &str, daemon: &str) -> String {
        format!("http://127.0.0.1:{}", self.0[daemon])
    }
}

pub fn api_client(port: u16) -> Client {
    Client::new(
        &format!("http://127.0.0.1:{port}"),
        Token::new(SECRET).unwrap(),
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap()
}

pub async fn arbiter_status(port: u16) -> Option<ArbiterStatus> {
    api_client(port).get("status", &[], false).await.ok()
}

/// Who holds part 0 according to the arbiter.
pub async fn holder(port: u16) -> Option<String> {
    let s = arbiter_status(port).await?;
    s.daemons
        .iter()
        .find(|d| d.role == "scheduler" && d.alive && !d.parts.is_empty())
        .map(|d| d.name.clone())
}

pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn cluster_spec() -> ShinkenCluster {
    cluster_with(0, 1)
}

/// The test cluster with `arbiter_spares` spare arbiters and `scheduler_spares` spare schedulers.
pub fn cluster_with(arbiter_spares: i32, scheduler_spares: i32) -> ShinkenCluster {
    let spec = serde_json::json!({
        "image": "shinken:test",
        "config": { "configMaps": [ { "name": "objs" } ] },
        "roles": {
            "arbiter": { "masters": 1, "spares": arbiter_spares },
            "scheduler": { "masters": 1, "spares": scheduler_spares },
            "poller": { "masters": 1, "spares": 0 },
            "reactionner": { "masters": 0, "spares": 0 },
            "broker": { "masters": 1, "spares": 0 },
            "receiver": { "masters": 0, "spares": 0 }
        },
        "retention": { "external": { "uriSecret": { "name": "mongo" } } },
        "tokenSecret": "prod-token"
    });
    let mut c = ShinkenCluster::new("prod", serde_json::from_value(spec).unwrap());
    c.metadata.namespace = Some(NS.into());
    c.metadata.uid = Some("c0ffee".into());
    c.metadata.generation = Some(1);
    c
}

pub fn secret(name: &str, key: &str, value: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some(NS.into());
    s.data = Some(BTreeMap::from([(key.to_string(), ByteString(value.as_bytes().to_vec()))]));
    s
}

pub fn config_map(name: &str, key: &str, value: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.namespace = Some(NS.into());
    c.data = Some(BTreeMap::from([(key.to_string(), value.to_string())]));
    c
}

/// A Ready pod of a daemon, as the Deployment's ReplicaSet would make it.
pub fn ready_pod(daemon: &str, hash: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(format!("prod-{daemon}-5d8f7-x{}", daemon.len()));
    p.metadata.namespace = Some(NS.into());
    p.metadata.labels = Some(BTreeMap::from([
        (LABEL_DAEMON.to_string(), daemon.to_string()),
        (LABEL_INSTANCE.to_string(), "prod".to_string()),
        (LABEL_MANAGED_BY.to_string(), "shinken-operator".to_string()),
    ]));
    p.metadata.annotations = Some(BTreeMap::from([(ANNOTATION_CONFIG_HASH.to_string(), hash.to_string())]));
    p.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

pub async fn fake_kube(objects: &str) -> kube::Client {
    fake_kube_with(cluster_spec(), objects).await
}

pub async fn fake_kube_with(cluster: ShinkenCluster, objects: &str) -> kube::Client {
    ClientBuilder::new()
        .with_resource::<ShinkenCluster>()
        .with_status_subresource::<ShinkenCluster>()
        .with_status_subresource::<Deployment>()
        .with_object(cluster)
        .with_object(secret("prod-token", "token", SECRET))
        .with_object(secret("mongo", "uri", "mongodb://127.0.0.1:1/?directConnection=true"))
        .with_object(config_map("objs", "hosts__web.cfg", objects))
        .build()
        .await
        .unwrap()
}

pub fn context(client: kube::Client, ports: &BTreeMap<&str, u16>) -> Arc<Context> {
    Arc::new(Context {
        client: client.clone(),
        resolver: Arc::new(Loopback(ports.iter().map(|(k, v)| (k.to_string(), *v)).collect())),
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "shinken-operator".into(),
                instance: Some("test".into()),
            },
        ),
        signalled: Default::default(),
        metrics: Arc::new(Metrics::default()),
    })
}

pub async fn reconcile_once(kube: &kube::Client, ctx: &Arc<Context>) -> ShinkenCluster {
    let api: Api<ShinkenCluster> = Api::namespaced(kube.clone(), NS);
    let c = api.get("prod").await.unwrap();
    reconcile(Arc::new(c), ctx.clone()).await.unwrap();
    // The Deployment controller catches up at once (the in-memory API has none).
    rolled_out(kube).await;
    api.get("prod").await.unwrap()
}

pub fn condition<'a>(c: &'a ShinkenCluster, t: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    c.status.as_ref().unwrap().conditions.iter().find(|x| x.type_ == t).unwrap()
}

/// What the Deployment controller would write: every Deployment rolled out.
pub async fn rolled_out(kube: &kube::Client) {
    let deps: Api<Deployment> = Api::namespaced(kube.clone(), NS);
    for d in deps.list(&ListParams::default()).await.unwrap().items {
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = serde_json::json!({ "status": {
            "observedGeneration": d.metadata.generation.unwrap_or(1),
            "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
        } });
        deps.patch_status(d.metadata.name.as_deref().unwrap(), &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
}

pub async fn replicas(kube: &kube::Client, name: &str) -> Option<i32> {
    let deps: Api<Deployment> = Api::namespaced(kube.clone(), NS);
    deps.get(name).await.unwrap().spec.unwrap().replicas
}

/// Starts the daemons, the arbiters last, so that the first dispatch finds the masters up.
pub async fn start_all<'a>(names: &[&'a str], ports: &BTreeMap<&str, u16>, dir: &Path) -> BTreeMap<&'a str, Daemon> {
    let mut daemons: BTreeMap<&str, Daemon> = BTreeMap::new();
    let mut order: Vec<&str> = names.to_vec();
    order.sort_by_key(|n| (n.starts_with("arbiter"), n.contains("spare")));
    for n in order {
        daemons.insert(n, Daemon::start(n.split('-').next().unwrap(), n, dir));
        let port = ports[n];
        wait_for(Duration::from_secs(15), &format!("{n} to answer"), || async move {
            api_client(port).health().await.ok()
        })
        .await;
    }
    daemons
}
