//! The operator's reconcile against an in-memory Kubernetes API (`kube-fake-client`, which has no
//! watch: the test calls `reconcile` as the controller would on each event) and REAL daemons on
//! loopback: an arbiter, a master and a spare scheduler, a poller and a broker, started from the
//! `shinken` binary. The arbiter's own probes need 55 s or more to declare a daemon dead, so a
//! takeover within seconds can only come from the operator's signal.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_fake_client::ClientBuilder;
use shinken_operator::crd::ShinkenCluster;
use shinken_operator::layout::{ANNOTATION_CONFIG_HASH, ANNOTATION_SWITCHOVER};
use shinken_testkit::TempDir;
use support::*;

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
