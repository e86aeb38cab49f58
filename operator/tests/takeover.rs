//! The operator's reconcile against an in-memory Kubernetes API (`kube-fake-client`, which has no
//! watch: the test calls `reconcile` as the controller would on each event) and REAL daemons on
//! loopback: an arbiter, a master and a spare scheduler, a poller and a broker, started from the
//! `shinken` binary. The arbiter's own probes need 55 s or more to declare a daemon dead, so a
//! takeover within seconds can only come from the operator's signal.

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
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Recorder, Reporter};
use kube_fake_client::ClientBuilder;
use shinken::messages::ArbiterStatus;
use shinken::protocol::{Client, Token};
use shinken_operator::arbiter::Resolver;
use shinken_operator::crd::ShinkenCluster;
use shinken_operator::layout::{ANNOTATION_CONFIG_HASH, ANNOTATION_SWITCHOVER, LABEL_DAEMON, LABEL_INSTANCE, LABEL_MANAGED_BY};
use shinken_operator::metrics::Metrics;
use shinken_operator::reconcile::{Context, reconcile};
use shinken_testkit::TempDir;

const SECRET: &str = "operator-test-token-0123456789abcdef";
const NS: &str = "mon";

/// The `shinken` binary, built beside this test (the workspace test run builds every binary).
fn shinken_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("shinken");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo nextest run --workspace` (or `cargo build -p shinken` first)",
        bin.display()
    );
    bin
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(role: &str, name: &str, dir: &Path) -> Daemon {
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

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemons, named as the operator names them, with Shinken's slow default probes.
fn write_tree(dir: &Path, ports: &BTreeMap<&str, u16>) {
    // The arbiter alone needs 12 failed probes 5 s apart (55 s or more) to declare a daemon dead;
    // a returning daemon is seen alive at its next probe, within 5 s.
    let probe = "    check_interval  5\n    max_check_attempts  12\n    timeout  3\n    data_timeout  10\n";
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

const OBJECTS: &str = "define command {\n    command_name  check_dummy\n    command_line  /usr/lib/nagios/plugins/check_dummy $ARG1$\n}\n\
define host {\n    host_name  web1\n    address  127.0.0.1\n    check_command  check_dummy!0\n    max_check_attempts  2\n    check_interval  5\n    retry_interval  1\n}\n\
define service {\n    host_name  web1\n    service_description  http\n    check_command  check_dummy!2\n    check_interval  1\n    retry_interval  1\n    max_check_attempts  2\n}\n";

/// Arbiters answer on loopback instead of their Services.
struct Loopback(BTreeMap<String, u16>);

impl Resolver for Loopback {
    fn url(&self, _ns: &str, _cluster: &str, daemon: &str) -> String {
        format!("http://127.0.0.1:{}", self.0[daemon])
    }
}

fn api_client(port: u16) -> Client {
    Client::new(
        &format!("http://127.0.0.1:{port}"),
        Token::new(SECRET).unwrap(),
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap()
}

async fn arbiter_status(port: u16) -> Option<ArbiterStatus> {
    api_client(port).get("status", &[], false).await.ok()
}

/// Who holds part 0 according to the arbiter.
async fn holder(port: u16) -> Option<String> {
    let s = arbiter_status(port).await?;
    s.daemons
        .iter()
        .find(|d| d.role == "scheduler" && d.alive && !d.parts.is_empty())
        .map(|d| d.name.clone())
}

async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
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

fn cluster_spec() -> ShinkenCluster {
    cluster_with(0, 1)
}

/// The test cluster with `arbiter_spares` spare arbiters and `scheduler_spares` spare schedulers.
fn cluster_with(arbiter_spares: i32, scheduler_spares: i32) -> ShinkenCluster {
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

fn secret(name: &str, key: &str, value: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some(NS.into());
    s.data = Some(BTreeMap::from([(key.to_string(), ByteString(value.as_bytes().to_vec()))]));
    s
}

fn config_map(name: &str, key: &str, value: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.namespace = Some(NS.into());
    c.data = Some(BTreeMap::from([(key.to_string(), value.to_string())]));
    c
}

/// A Ready pod of a daemon, as the Deployment's ReplicaSet would make it.
fn ready_pod(daemon: &str, hash: &str) -> Pod {
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

async fn fake_kube(objects: &str) -> kube::Client {
    fake_kube_with(cluster_spec(), objects).await
}

async fn fake_kube_with(cluster: ShinkenCluster, objects: &str) -> kube::Client {
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

fn context(client: kube::Client, ports: &BTreeMap<&str, u16>) -> Arc<Context> {
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

async fn reconcile_once(kube: &kube::Client, ctx: &Arc<Context>) -> ShinkenCluster {
    let api: Api<ShinkenCluster> = Api::namespaced(kube.clone(), NS);
    let c = api.get("prod").await.unwrap();
    reconcile(Arc::new(c), ctx.clone()).await.unwrap();
    // The Deployment controller catches up at once (the in-memory API has none).
    rolled_out(kube).await;
    api.get("prod").await.unwrap()
}

fn condition<'a>(c: &'a ShinkenCluster, t: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    c.status.as_ref().unwrap().conditions.iter().find(|x| x.type_ == t).unwrap()
}

/// What the Deployment controller would write: every Deployment rolled out.
async fn rolled_out(kube: &kube::Client) {
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

async fn replicas(kube: &kube::Client, name: &str) -> Option<i32> {
    let deps: Api<Deployment> = Api::namespaced(kube.clone(), NS);
    deps.get(name).await.unwrap().spec.unwrap().replicas
}

/// Starts the daemons, the arbiters last, so that the first dispatch finds the masters up.
async fn start_all<'a>(names: &[&'a str], ports: &BTreeMap<&str, u16>, dir: &Path) -> BTreeMap<&'a str, Daemon> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_master_arbiter_pod_makes_the_spare_arbiter_lead_at_once() {
    let tmp = TempDir::new("operator-arbiter-takeover").unwrap();
    let dir = tmp.path().to_path_buf();
    let names = ["arbiter-0", "arbiter-spare-0", "scheduler-0", "poller-0", "broker-0"];
    let ports: BTreeMap<&str, u16> = names.iter().map(|n| (*n, free_port())).collect();
    write_tree(&dir, &ports);
    let mut daemons = start_all(&names, &ports, &dir).await;
    let (master, spare) = (ports["arbiter-0"], ports["arbiter-spare-0"]);
    wait_for(Duration::from_secs(20), "scheduler-0 to hold the part", || async {
        (holder(master).await? == "scheduler-0").then_some(())
    })
    .await;
    wait_for(Duration::from_secs(20), "the spare arbiter to wait", || async {
        (!arbiter_status(spare).await?.master).then_some(())
    })
    .await;

    let kube = fake_kube_with(cluster_with(1, 0), OBJECTS).await;
    let ctx = context(kube.clone(), &ports);
    let c = reconcile_once(&kube, &ctx).await;
    let hash = c.status.as_ref().unwrap().config_hash.clone().unwrap();
    let pods: Api<Pod> = Api::namespaced(kube.clone(), NS);
    for n in names {
        pods.create(&PostParams::default(), &ready_pod(n, &hash)).await.unwrap();
    }
    let c = reconcile_once(&kube, &ctx).await;
    assert_eq!(c.status.as_ref().unwrap().active_arbiter.as_deref(), Some("arbiter-0"));

    // The master arbiter's pod goes: the spare is told, and leads without its 60 s wait.
    let killed = Instant::now();
    daemons.get_mut("arbiter-0").unwrap().kill();
    pods.delete(&ready_pod("arbiter-0", &hash).metadata.name.unwrap(), &DeleteParams::default())
        .await
        .unwrap();
    let _ = reconcile_once(&kube, &ctx).await;
    wait_for(Duration::from_secs(20), "the spare arbiter to lead", || async {
        arbiter_status(spare).await?.master.then_some(())
    })
    .await;
    println!(
        "master arbiter pod deleted -> spare arbiter leads: {:.2} s (its own wait: 60 s)",
        killed.elapsed().as_secs_f64()
    );
    let log = fs::read_to_string(&daemons["arbiter-spare-0"].log).unwrap();
    assert!(
        log.contains("Arbiter Master is dead. The arbiter arbiter-spare-0 take the lead"),
        "{log}"
    );
    assert!(
        log.contains(
            "The master arbiter was declared down: daemon arbiter-0 has no pod any more (its pod prod-arbiter-0-5d8f7-x9 is gone)"
        ),
        "{log}"
    );
    // The part stays where it is (adopted, not re-dispatched), and the status names the new leader.
    wait_for(
        Duration::from_secs(20),
        "the spare arbiter to see scheduler-0 holding the part",
        || async { (holder(spare).await? == "scheduler-0").then_some(()) },
    )
    .await;
    let c = reconcile_once(&kube, &ctx).await;
    let st = c.status.unwrap();
    assert_eq!(st.active_arbiter.as_deref(), Some("arbiter-spare-0"));
    assert_eq!(st.fenced, vec!["arbiter-0".to_string()]);
    assert_eq!(replicas(&kube, "prod-arbiter-0").await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_master_pod_makes_the_spare_take_over_in_seconds_and_a_switchover_brings_it_back() {
    let tmp = TempDir::new("operator-takeover").unwrap();
    let dir = tmp.path().to_path_buf();
    let names = ["arbiter-0", "scheduler-0", "scheduler-spare-0", "poller-0", "broker-0"];
    let ports: BTreeMap<&str, u16> = names.iter().map(|n| (*n, free_port())).collect();
    write_tree(&dir, &ports);
    let mut daemons = start_all(&names, &ports, &dir).await;
    let arbiter = ports["arbiter-0"];
    wait_for(Duration::from_secs(20), "scheduler-0 to hold the part", || async {
        (holder(arbiter).await? == "scheduler-0").then_some(())
    })
    .await;

    // The operator lays the cluster out; the ReplicaSets' pods appear, Ready.
    let kube = fake_kube(OBJECTS).await;
    let ctx = context(kube.clone(), &ports);
    let c = reconcile_once(&kube, &ctx).await;
    assert_eq!(condition(&c, "ConfigValid").status, "True", "{:?}", c.status);
    let hash = c.status.as_ref().unwrap().config_hash.clone().unwrap();
    assert_eq!(replicas(&kube, "prod-scheduler-0").await, Some(1));
    let pods: Api<Pod> = Api::namespaced(kube.clone(), NS);
    for n in names {
        pods.create(&PostParams::default(), &ready_pod(n, &hash)).await.unwrap();
    }
    let c = reconcile_once(&kube, &ctx).await;
    assert_eq!(condition(&c, "Ready").status, "True", "{:?}", c.status);
    assert_eq!(c.status.as_ref().unwrap().active_arbiter.as_deref(), Some("arbiter-0"));
    let active: Vec<&str> = c
        .status
        .as_ref()
        .unwrap()
        .daemons
        .iter()
        .filter(|d| d.active)
        .map(|d| d.name.as_str())
        .collect();
    assert!(
        active.contains(&"scheduler-0") && !active.contains(&"scheduler-spare-0"),
        "{active:?}"
    );

    // scheduler-0's node dies: its process is killed and its pod deleted.
    let killed = Instant::now();
    daemons.get_mut("scheduler-0").unwrap().kill();
    let master_pod = ready_pod("scheduler-0", &hash).metadata.name.unwrap();
    pods.delete(&master_pod, &DeleteParams::default()).await.unwrap();
    let c = reconcile_once(&kube, &ctx).await;
    wait_for(Duration::from_secs(20), "scheduler-spare-0 to hold the part", || async {
        (holder(arbiter).await? == "scheduler-spare-0").then_some(())
    })
    .await;
    let took = killed.elapsed();
    println!(
        "pod deleted -> spare holds the part: {:.2} s (the arbiter alone: 55 s or more)",
        took.as_secs_f64()
    );
    let status = c.status.clone().unwrap();
    assert_eq!(status.fenced, vec!["scheduler-0".to_string()]);
    let last = status.last_takeover.unwrap();
    assert_eq!(last.daemon, "scheduler-0");
    assert_eq!(
        last.reason,
        "daemon scheduler-0 has no pod any more (its pod prod-scheduler-0-5d8f7-x11 is gone)"
    );
    assert_eq!(replicas(&kube, "prod-scheduler-0").await, Some(0), "the master is fenced");
    assert_eq!(condition(&c, "Degraded").reason, "DaemonsFailing");
    let log = fs::read_to_string(&daemons["arbiter-0"].log).unwrap();
    assert!(
        log.contains("daemon scheduler-0 has no pod any more"),
        "the arbiter logs why:\n{log}"
    );

    // A second reconcile does not signal again; the cluster is degraded by the fence only.
    let c = reconcile_once(&kube, &ctx).await;
    assert_eq!(condition(&c, "Degraded").reason, "MastersFenced");
    assert_eq!(condition(&c, "Ready").status, "True", "every daemon that should run is ready");
    assert_eq!(
        ctx.metrics
            .render()
            .lines()
            .find(|l| l.starts_with("shinken_operator_takeovers_total")),
        Some("shinken_operator_takeovers_total 1")
    );

    // Switchover back: the annotation unfences the master; once its pod is Ready, the part moves.
    let clusters: Api<ShinkenCluster> = Api::namespaced(kube.clone(), NS);
    let ann = serde_json::json!({ "metadata": { "annotations": { ANNOTATION_SWITCHOVER: "scheduler-0" } } });
    clusters.patch("prod", &PatchParams::default(), &Patch::Merge(ann)).await.unwrap();
    let c = reconcile_once(&kube, &ctx).await;
    assert!(c.status.as_ref().unwrap().fenced.is_empty());
    assert_eq!(replicas(&kube, "prod-scheduler-0").await, Some(1));
    daemons.insert("scheduler-0", Daemon::start("scheduler", "scheduler-0", &dir));
    let mut back = ready_pod("scheduler-0", &hash);
    back.metadata.name = Some("prod-scheduler-0-new".into());
    pods.create(&PostParams::default(), &back).await.unwrap();
    // The arbiter must see the master alive before it accepts the switchover: reconcile until done.
    wait_for(Duration::from_secs(30), "the switchover to scheduler-0", || {
        let kube = kube.clone();
        let ctx = ctx.clone();
        async move {
            let c = reconcile_once(&kube, &ctx).await;
            let done = !c
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .contains_key(ANNOTATION_SWITCHOVER);
            (done && holder(arbiter).await? == "scheduler-0").then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configuration_is_refused_and_the_running_objects_stay() {
    // No daemons here: the arbiter is unreachable, which the reconcile tolerates.
    let ports: BTreeMap<&str, u16> = BTreeMap::from([("arbiter-0", free_port())]);
    let kube = fake_kube(OBJECTS).await;
    let ctx = context(kube.clone(), &ports);
    let c = reconcile_once(&kube, &ctx).await;
    let good = c.status.as_ref().unwrap().config_hash.clone().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), NS);
    let before: Vec<String> = cms
        .list(&ListParams::default().labels("app.kubernetes.io/instance=prod"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert!(before.iter().any(|n| n.starts_with("prod-config-")), "{before:?}");

    // A typo in the user's ConfigMap.
    let bad = OBJECTS.replace("check_command  check_dummy!2", "check_command  check_dumy!2");
    cms.replace("objs", &PostParams::default(), &{
        let mut cm = cms.get("objs").await.unwrap();
        cm.data = Some(BTreeMap::from([("hosts__web.cfg".to_string(), bad)]));
        cm
    })
    .await
    .unwrap();
    let c = reconcile_once(&kube, &ctx).await;
    let cond = condition(&c, "ConfigValid");
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "InvalidConfiguration"));
    assert!(
        cond.message.contains("ConfigMap objs key hosts__web.cfg:") && cond.message.contains("check_dumy"),
        "{}",
        cond.message
    );
    assert_eq!(
        c.status.as_ref().unwrap().config_hash.as_deref(),
        Some(good.as_str()),
        "the last good configuration stays"
    );
    let after: Vec<String> = cms
        .list(&ListParams::default().labels("app.kubernetes.io/instance=prod"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(before, after, "no ConfigMap touched");
    let deps: Api<Deployment> = Api::namespaced(kube.clone(), NS);
    let d = deps.get("prod-scheduler-0").await.unwrap();
    let annotations = d.spec.unwrap().template.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations[ANNOTATION_CONFIG_HASH], good, "pods keep the good configuration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_gets_a_token_mongodb_credentials_and_a_statefulset() {
    let mut c = cluster_spec();
    c.spec.token_secret = None;
    c.spec.retention = Default::default();
    let kube = ClientBuilder::new()
        .with_resource::<ShinkenCluster>()
        .with_status_subresource::<ShinkenCluster>()
        .with_object(c)
        .with_object(config_map("objs", "hosts__web.cfg", OBJECTS))
        .build()
        .await
        .unwrap();
    let ctx = context(kube.clone(), &BTreeMap::from([("arbiter-0", free_port())]));
    let c = reconcile_once(&kube, &ctx).await;
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), NS);
    let token = secrets.get("prod-token").await.unwrap();
    assert_eq!(token.data.unwrap()["token"].0.len(), 64, "a generated token");
    let creds = secrets.get("prod-mongodb").await.unwrap().data.unwrap();
    let password = String::from_utf8(creds["password"].0.clone()).unwrap();
    let retention = secrets.get("prod-retention").await.unwrap().data.unwrap();
    let file = String::from_utf8(retention["retention.cfg"].0.clone()).unwrap();
    assert!(
        file.starts_with("$MONGODB_URI$=mongodb://shinken:") && file.contains(&password) && file.contains("prod-mongodb.mon.svc:27017")
    );
    let stss: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(kube.clone(), NS);
    assert!(stss.get("prod-mongodb").await.is_ok());
    let r = condition(&c, "RetentionReady");
    assert_eq!((r.status.as_str(), r.reason.as_str()), ("False", "MongoDBStarting"));
    assert_eq!(condition(&c, "Ready").reason, "RetentionNotReady");
    // A second reconcile keeps the same token and password.
    let _ = reconcile_once(&kube, &ctx).await;
    let again = secrets.get("prod-mongodb").await.unwrap().data.unwrap();
    assert_eq!(again["password"].0, password.as_bytes());
}
