//! How fast a spare scheduler takes over when its master's pod is deleted: with the operator
//! telling the arbiter (`POST /v1/daemons/{name}/down` from the pod watch), against the arbiter
//! alone (its own probes), with the operator's default failover timings (probes every 2 s, dead
//! after 3 failures, 2 s timeout) in both. Real daemons on loopback; the in-memory Kubernetes API.
//!
//! `cargo build --release -p shinken && cargo bench -p shinken-operator --bench takeover`
//! (`SHINKEN_BENCH_ROUNDS=N`, default 5 rounds each).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use shinken_testkit::TempDir;
use support::*;

/// One round: the time from the master's death to the spare holding its part.
async fn round(with_operator: bool) -> f64 {
    let tmp = TempDir::new("operator-bench").unwrap();
    let dir = tmp.path().to_path_buf();
    let names = ["arbiter-0", "scheduler-0", "scheduler-spare-0", "poller-0", "broker-0"];
    let ports: BTreeMap<&str, u16> = names.iter().map(|n| (*n, free_port())).collect();
    write_tree_probing(&dir, &ports, 2, 3, 2);
    let mut daemons = start_all(&names, &ports, &dir).await;
    let arbiter = ports["arbiter-0"];
    wait_for(Duration::from_secs(30), "scheduler-0 to hold the part", || async {
        (holder(arbiter).await? == "scheduler-0").then_some(())
    })
    .await;
    let operator = if with_operator {
        let kube = fake_kube_with(cluster_with(0, 1), OBJECTS).await;
        let ctx = context(kube.clone(), &ports);
        let c = reconcile_once(&kube, &ctx).await;
        let hash = c.status.as_ref().unwrap().config_hash.clone().unwrap();
        let pods: Api<Pod> = Api::namespaced(kube.clone(), NS);
        for n in names {
            pods.create(&PostParams::default(), &ready_pod(n, &hash)).await.unwrap();
        }
        reconcile_once(&kube, &ctx).await;
        Some((kube, ctx, pods, hash))
    } else {
        None
    };
    let killed = Instant::now();
    daemons.get_mut("scheduler-0").unwrap().kill();
    if let Some((kube, ctx, pods, hash)) = &operator {
        // What the pod watch sees: the pod is gone, and the reconcile it triggers.
        pods.delete(&ready_pod("scheduler-0", hash).metadata.name.unwrap(), &DeleteParams::default())
            .await
            .unwrap();
        reconcile_once(kube, ctx).await;
    }
    wait_for(Duration::from_secs(60), "scheduler-spare-0 to hold the part", || async {
        (holder(arbiter).await? == "scheduler-spare-0").then_some(())
    })
    .await;
    killed.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("SHINKEN_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut with = Vec::new();
    let mut alone = Vec::new();
    rt.block_on(async {
        for _ in 0..rounds {
            with.push(round(true).await);
            alone.push(round(false).await);
        }
    });
    let (mw, xw) = (median(&mut with), with.iter().cloned().fold(0.0, f64::max));
    let (ma, xa) = (median(&mut alone), alone.iter().cloned().fold(0.0, f64::max));
    println!("master scheduler killed -> spare holds its part ({rounds} rounds each; probes 2 s x 3, timeout 2 s)");
    println!("| detection | median | max |");
    println!("| --- | ---: | ---: |");
    println!("| operator (pod deleted -> down call) | {mw:.2} s | {xw:.2} s |");
    println!("| arbiter alone (its probes) | {ma:.2} s | {xa:.2} s |");
    println!("ratio arbiter alone / operator (median): {:.1}x", ma / mw);
}
