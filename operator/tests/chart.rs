//! The operator's Helm chart (`charts/shinken-operator`), rendered and linted by the real Helm
//! library: helm-python-sdk carries Helm v4's Go SDK, driven by `helm_render.py` beside this file
//! with the interpreter of the project's virtualenv (`$SHINKEN_VENV`, default
//! `/opt/shinken-venv`, made by `.ci/run`). Without it these tests fail: they never skip.
//!
//! The Python side only asks Helm; every assertion is here. Rendered manifests are read back with
//! serde-saphyr, so the CRD comparison crosses two YAML implementations (Go's, Rust's).

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RELEASE: &str = "ops";
const NAMESPACE: &str = "shinken-system";
/// The release's object names: `<release>-<chart>`.
const FULLNAME: &str = "ops-shinken-operator";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart_dir() -> PathBuf {
    root().join("charts/shinken-operator")
}

fn python() -> PathBuf {
    let venv = std::env::var_os("SHINKEN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/shinken-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} does not exist: run .ci/run, which creates the virtualenv and installs helm-python-sdk into it \
         (or point SHINKEN_VENV at a virtualenv that has it)",
        python.display()
    );
    python
}

/// One request to Helm through `helm_render.py`; its JSON answer.
fn helm(mut request: Value) -> Value {
    request["chart"] = json!(chart_dir());
    let script = root().join("operator/tests/helm_render.py");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helm_render.py failed ({}){}:\n{stderr}",
        out.status,
        if out.status.code() == Some(3) {
            ": helm-python-sdk is missing, run .ci/run"
        } else {
            ""
        }
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("helm_render.py printed no JSON ({e}); stderr:\n{stderr}"))
}

/// The objects the chart renders with these values, or Helm's error.
fn try_render(values: Value) -> Result<Vec<Value>, String> {
    let answer = helm(json!({ "action": "render", "values": values, "name": RELEASE, "namespace": NAMESPACE }));
    if answer["ok"] != json!(true) {
        return Err(answer["error"].as_str().unwrap_or("no error message").to_string());
    }
    let mut objects = Vec::new();
    for (template, text) in answer["manifests"].as_object().expect("manifests") {
        let text = text.as_str().expect("a manifest is text");
        if template.ends_with("NOTES.txt") {
            continue;
        }
        let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{template} is not YAML: {e}\n{text}"));
        objects.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    Ok(objects)
}

fn render(values: Value) -> Vec<Value> {
    try_render(values.clone()).unwrap_or_else(|e| panic!("the chart does not render with {values}: {e}"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The one object of a kind.
fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}: {:?}", found.len(), kinds(objects));
    found[0]
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects.iter().map(|o| o["kind"].as_str().unwrap_or("?").to_string()).collect()
}

fn container(objects: &[Value]) -> &Value {
    let containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn command(objects: &[Value]) -> Vec<String> {
    container(objects)["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

type Grant = (String, String, String);

/// A role's rules as (apiGroup, resource, verb) grants. Fails on anything but plain
/// group/resource/verb rules and on any wildcard.
fn grants(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for key in rule.as_object().unwrap().keys() {
            assert!(
                ["apiGroups", "resources", "verbs"].contains(&key.as_str()),
                "rule with {key}: {rule}"
            );
        }
        let list = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap_or_else(|| panic!("rule without {k}: {rule}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    for part in [&group, &resource, &verb] {
                        assert!(!part.contains('*'), "wildcard in {rule}");
                    }
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn grant_set(rules: &[(&str, &[&str], &[&str])]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in rules {
        for resource in *resources {
            for verb in *verbs {
                out.insert((group.to_string(), resource.to_string(), verb.to_string()));
            }
        }
    }
    out
}

const OWNED: &[&str] = &["get", "list", "watch", "create", "patch", "update", "delete"];

/// What the operator may do in the namespaces it watches, and nothing else.
fn operator_grants() -> BTreeSet<Grant> {
    grant_set(&[
        ("shinken.io", &["shinkenclusters"], &["get", "list", "watch", "patch", "update"]),
        ("shinken.io", &["shinkenclusters/status"], &["get", "patch", "update"]),
        ("shinken.io", &["shinkenclusters/finalizers"], &["update"]),
        ("apps", &["deployments", "statefulsets"], OWNED),
        ("", &["services", "configmaps", "secrets"], OWNED),
        ("", &["pods"], &["get", "list", "watch"]),
        ("policy", &["poddisruptionbudgets"], OWNED),
        ("", &["events"], &["create", "patch"]),
        ("events.k8s.io", &["events"], &["create", "patch"]),
    ])
}

/// Leader election, in the release namespace only.
fn lease_grants() -> BTreeSet<Grant> {
    grant_set(&[("coordination.k8s.io", &["leases"], &["get", "create", "update", "patch"])])
}

/// A binding gives its role to the operator's ServiceAccount, and to nothing else.
fn assert_binds(binding: &Value, role_kind: &str, role_name: &str) {
    assert_eq!(
        binding["roleRef"],
        json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name })
    );
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE }])
    );
}

/// Every option switched on at once.
fn everything_on() -> Value {
    json!({
        "replicaCount": 3,
        "watchNamespace": "team-a",
        "networkPolicy": { "enabled": true, "apiServerCIDRs": ["10.0.0.1/32"] },
        "serviceMonitor": { "enabled": true, "labels": { "release": "prometheus" } },
        "podAnnotations": { "example.com/a": "b" },
        "podLabels": { "team": "monitoring" },
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": { "kubernetes.io/os": "linux" },
        "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule" }],
        "affinity": { "nodeAffinity": {} },
        "imagePullSecrets": [{ "name": "registry" }],
        "env": [{ "name": "EXTRA", "value": "1" }],
        "image": { "repository": "registry.example.com/shinken", "tag": "v9", "pullPolicy": "Always" },
    })
}

fn assert_lints_clean(values: Value) {
    let answer = helm(json!({ "action": "lint", "values": values, "namespace": NAMESPACE, "kube_version": "v1.32.0" }));
    let report = &answer["report"];
    assert_eq!(report["errors"], json!([]), "helm lint --strict with {values}: {report:#}");
    for message in report["messages"].as_array().unwrap() {
        assert!(
            message["severity"].as_i64().unwrap() < 2,
            "helm lint --strict with {values}: {message}"
        );
    }
    assert_eq!(report["total_charts_linted"], json!(1), "{report:#}");
}

#[test]
fn the_chart_lints_clean_with_defaults_and_with_every_option() {
    assert_lints_clean(json!({}));
    assert_lints_clean(everything_on());
    assert_lints_clean(
        json!({ "crds": { "install": false }, "rbac": { "create": false }, "serviceAccount": { "create": false, "name": "existing" } }),
    );
}

#[test]
fn the_chart_is_a_v2_chart_for_kubernetes_1_32_and_later() {
    let meta = &helm(json!({ "action": "inspect" }))["metadata"];
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["name"], "shinken-operator");
    assert_eq!(meta["version"], "0.1.0");
    assert_eq!(meta["appVersion"], "0.1.0");
    assert_eq!(meta["kubeVersion"], ">=1.32.0-0");
    // Helm installs crds/ once and never upgrades it: the CRD must not be there.
    assert!(
        !chart_dir().join("crds").exists(),
        "the chart must template its CRD, not ship it in crds/"
    );
}

#[test]
fn the_default_render_carries_the_generated_crd_kept_on_uninstall() {
    let objects = render(json!({}));
    let mut crd = one(&objects, "CustomResourceDefinition").clone();
    let meta = crd["metadata"].as_object_mut().unwrap();
    assert_eq!(meta.remove("annotations"), Some(json!({ "helm.sh/resource-policy": "keep" })));
    let labels = meta.remove("labels").expect("the CRD carries the release labels");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");

    let text = std::fs::read_to_string(root().join("crds/shinkenclusters.shinken.io.yaml")).unwrap();
    let committed: Value = serde_saphyr::from_str(&text).unwrap();
    assert!(
        crd == committed,
        "the chart's CRD differs from crds/shinkenclusters.shinken.io.yaml (beyond its labels and annotations)"
    );
}

#[test]
fn the_crd_toggles_drop_it_or_its_keep_policy() {
    let without = render(json!({ "crds": { "install": false } }));
    assert!(of_kind(&without, "CustomResourceDefinition").is_empty(), "{:?}", kinds(&without));
    assert!(!of_kind(&without, "Deployment").is_empty());

    let unkept = render(json!({ "crds": { "keep": false } }));
    let crd = one(&unkept, "CustomResourceDefinition");
    assert!(
        crd["metadata"]
            .get("annotations")
            .is_none_or(|a| a.get("helm.sh/resource-policy").is_none()),
        "{}",
        crd["metadata"]
    );
}

#[test]
fn the_default_deployment_runs_the_operator_hardened() {
    let objects = render(json!({}));
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["metadata"]["name"], FULLNAME);
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    assert_eq!(deployment["spec"]["replicas"], 1);
    // One operator without leader election never runs beside another, even during a rollout.
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(one(&objects, "ServiceAccount")["metadata"]["name"], FULLNAME);
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&deployment["spec"]["template"]["metadata"]["labels"][k], v);
    }

    let c = container(&objects);
    assert_eq!(c["image"], "shinken:0.1.0", "the tag defaults to the chart's appVersion");
    assert_eq!(command(&objects), ["shinken-operator", "run", "--metrics-addr", "0.0.0.0:8080"]);
    let env = c["env"].as_array().unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
    };
    assert_eq!(var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(var("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
    assert_eq!(var("RUST_LOG")["value"], "info");
    assert_eq!(c["ports"], json!([{ "name": "http", "containerPort": 8080, "protocol": "TCP" }]));
    assert_eq!(c["readinessProbe"]["httpGet"], json!({ "path": "/readyz", "port": "http" }));
    assert_eq!(c["livenessProbe"]["httpGet"], json!({ "path": "/healthz", "port": "http" }));

    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 10001);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());

    let service = one(&objects, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{ "name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP" }])
    );
    assert_eq!(&service["spec"]["selector"], selector);
}

#[test]
fn pod_placement_and_image_values_reach_the_deployment() {
    let objects = render(json!({
        "image": { "repository": "registry.example.com/shinken", "tag": "v9", "pullPolicy": "Always" },
        "logging": { "filter": "debug,kube=info" },
        "podAnnotations": { "example.com/a": "b" },
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": { "kubernetes.io/os": "linux" },
        "tolerations": [{ "key": "dedicated", "operator": "Exists" }],
        "affinity": { "podAntiAffinity": {} },
        "env": [{ "name": "EXTRA", "value": "1" }],
    }));
    let pod = &one(&objects, "Deployment")["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["example.com/a"], "b");
    assert_eq!(pod["spec"]["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["spec"]["nodeSelector"], json!({ "kubernetes.io/os": "linux" }));
    assert_eq!(pod["spec"]["tolerations"], json!([{ "key": "dedicated", "operator": "Exists" }]));
    assert_eq!(pod["spec"]["affinity"], json!({ "podAntiAffinity": {} }));
    let c = container(&objects);
    assert_eq!(c["image"], "registry.example.com/shinken:v9");
    assert_eq!(c["imagePullPolicy"], "Always");
    let env = c["env"].as_array().unwrap();
    assert!(env.contains(&json!({ "name": "RUST_LOG", "value": "debug,kube=info" })), "{env:?}");
    assert!(env.contains(&json!({ "name": "EXTRA", "value": "1" })), "{env:?}");
}

#[test]
fn the_cluster_role_grants_exactly_what_the_operator_needs() {
    let objects = render(json!({}));
    let role = one(&objects, "ClusterRole");
    assert_eq!(role["metadata"]["name"], FULLNAME);
    assert_eq!(grants(role), operator_grants());
    assert_binds(one(&objects, "ClusterRoleBinding"), "ClusterRole", FULLNAME);
    // No Lease without leader election, and nothing namespaced besides.
    assert!(
        of_kind(&objects, "Role").is_empty() && of_kind(&objects, "RoleBinding").is_empty(),
        "{:?}",
        kinds(&objects)
    );
}

#[test]
fn optional_objects_are_off_by_default() {
    let objects = render(json!({}));
    for kind in ["NetworkPolicy", "ServiceMonitor", "PodDisruptionBudget"] {
        assert!(of_kind(&objects, kind).is_empty(), "{kind} rendered by default");
    }
    assert!(!command(&objects).contains(&"--leader-elect".to_string()));
    let mut got = kinds(&objects);
    got.sort();
    assert_eq!(
        got,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Service",
            "ServiceAccount"
        ]
    );
}

#[test]
fn the_network_policy_allows_the_api_server_dns_the_arbiters_and_scrapes_only() {
    let objects = render(json!({ "networkPolicy": { "enabled": true, "apiServerCIDRs": ["10.0.0.1/32", "10.0.0.2/32"] } }));
    let policy = one(&objects, "NetworkPolicy");
    let spec = &policy["spec"];
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        one(&objects, "Deployment")["spec"]["selector"]["matchLabels"]
    );

    let ingress = spec["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["from"],
        json!([{ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } } }])
    );
    assert_eq!(ingress[0]["ports"], json!([{ "port": "http", "protocol": "TCP" }]));

    let egress = spec["egress"].as_array().unwrap();
    let ports = |rule: &Value| -> BTreeSet<String> {
        rule["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap()))
            .collect()
    };
    let api = egress
        .iter()
        .find(|r| r["to"][0].get("ipBlock").is_some())
        .expect("an egress rule to the API server");
    assert_eq!(
        api["to"],
        json!([{ "ipBlock": { "cidr": "10.0.0.1/32" } }, { "ipBlock": { "cidr": "10.0.0.2/32" } }])
    );
    assert_eq!(ports(api), BTreeSet::from(["443/TCP".to_string(), "6443/TCP".to_string()]));
    let dns = egress.iter().find(|r| ports(r).contains("53/UDP")).expect("an egress rule to DNS");
    assert_eq!(ports(dns), BTreeSet::from(["53/UDP".to_string(), "53/TCP".to_string()]));
    let arbiters = egress
        .iter()
        .find(|r| ports(r).contains("7770/TCP"))
        .expect("an egress rule to the arbiters");
    assert_eq!(
        arbiters["to"],
        json!([{ "namespaceSelector": {}, "podSelector": { "matchLabels": { "app.kubernetes.io/name": "shinken" } } }])
    );
    assert_eq!(ports(arbiters).len(), 1);
    assert_eq!(egress.len(), 3, "{egress:#?}");
}

#[test]
fn the_service_monitor_scrapes_the_metrics_port() {
    let objects = render(json!({ "serviceMonitor": { "enabled": true, "labels": { "release": "prometheus" } } }));
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        one(&objects, "Service")["spec"]["selector"]
    );
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!([NAMESPACE]));
}

#[test]
fn a_watched_namespace_gets_a_role_instead_of_a_cluster_role() {
    let objects = render(json!({ "watchNamespace": "team-a" }));
    assert!(
        of_kind(&objects, "ClusterRole").is_empty() && of_kind(&objects, "ClusterRoleBinding").is_empty(),
        "{:?}",
        kinds(&objects)
    );
    let role = one(&objects, "Role");
    assert_eq!(role["metadata"]["namespace"], "team-a");
    assert_eq!(grants(role), operator_grants());
    let binding = one(&objects, "RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_binds(binding, "Role", FULLNAME);
    let cmd = command(&objects);
    assert!(cmd.windows(2).any(|w| w == ["--namespace", "team-a"]), "{cmd:?}");
}

#[test]
fn replicas_elect_a_leader_under_a_disruption_budget() {
    let objects = render(json!({ "replicaCount": 2 }));
    assert!(command(&objects).contains(&"--leader-elect".to_string()));
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    // The Lease, in the release namespace only; the ClusterRole is unchanged.
    let role = one(&objects, "Role");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(grants(role), lease_grants());
    assert_binds(one(&objects, "RoleBinding"), "Role", &format!("{FULLNAME}-leader-election"));
    assert_eq!(grants(one(&objects, "ClusterRole")), operator_grants());

    // Asked for with one replica: elected, without a budget that would block node drains.
    let single = render(json!({ "leaderElection": { "enabled": true } }));
    assert!(command(&single).contains(&"--leader-elect".to_string()));
    assert!(of_kind(&single, "PodDisruptionBudget").is_empty());
    assert_eq!(grants(one(&single, "Role")), lease_grants());

    // Everything at once: a Role in the watched namespace, the Lease's in the release's.
    let all = render(everything_on());
    let roles = of_kind(&all, "Role");
    assert_eq!(roles.len(), 2);
    let union: BTreeSet<Grant> = roles.iter().flat_map(|r| grants(r)).collect();
    assert_eq!(union, operator_grants().union(&lease_grants()).cloned().collect());
}

#[test]
fn values_of_the_wrong_type_or_name_are_rejected_by_the_schema() {
    for (values, path) in [
        (json!({ "replicaCount": "two" }), "/replicaCount"),
        (json!({ "crds": { "install": "yes" } }), "/crds/install"),
        (json!({ "image": { "pullPolicy": "Sometimes" } }), "/image/pullPolicy"),
        (json!({ "service": { "port": 70000 } }), "/service/port"),
        (
            json!({ "networkPolicy": { "apiServerCIDRs": "10.0.0.1/32" } }),
            "/networkPolicy/apiServerCIDRs",
        ),
        (json!({ "watchNamespace": "Not_A_Namespace" }), "/watchNamespace"),
        (json!({ "replicas": 2 }), "replicas"),
        (json!({ "image": { "registry": "x" } }), "registry"),
    ] {
        let Err(error) = try_render(values.clone()) else {
            panic!("{values} was accepted")
        };
        assert!(error.contains("schema") && error.contains(path), "{values}: {error}");
    }
    let answer = helm(json!({ "action": "lint", "values": { "replicaCount": "two" }, "namespace": NAMESPACE }));
    assert_ne!(answer["report"]["errors"], json!([]), "lint accepted replicaCount: two");
}

#[test]
fn every_value_is_in_the_schema_and_documented() {
    let answer = helm(json!({ "action": "inspect" }));
    let (defaults, schema) = (&answer["values"], &answer["schema"]);
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    let declared: BTreeSet<&String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "global")
        .collect();
    let given: BTreeSet<&String> = defaults.as_object().unwrap().keys().collect();
    assert_eq!(declared, given, "values.yaml and values.schema.json disagree on the top-level keys");

    // Each leaf key of the schema is in values.yaml under a comment saying what it does.
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    fn walk(schema: &Value, indent: usize, from: usize, lines: &[&str], missing: &mut Vec<String>) {
        for (key, sub) in schema["properties"].as_object().unwrap() {
            if key == "global" {
                continue;
            }
            let head = format!("{}{key}:", " ".repeat(indent));
            let Some(at) = (from..lines.len()).find(|&i| lines[i].starts_with(&head)) else {
                missing.push(format!("{key} (absent)"));
                continue;
            };
            if sub["additionalProperties"] == false && sub.get("properties").is_some() {
                walk(sub, indent + 2, at + 1, lines, missing);
            } else if at == 0 || !lines[at - 1].trim_start().starts_with('#') {
                missing.push(key.clone());
            }
            assert!(sub.get("description").is_some(), "{key} has no description in values.schema.json");
        }
    }
    let mut missing = Vec::new();
    walk(schema, 0, 0, &lines, &mut missing);
    assert!(missing.is_empty(), "values.yaml keys without a comment: {missing:?}");
}

#[test]
fn the_readme_example_is_a_shinken_cluster() {
    use shinken_operator::crd::ShinkenCluster;
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## Installing on Kubernetes")
        .nth(1)
        .expect("README has an \"Installing on Kubernetes\" section");
    let yaml = section
        .split("<<'YAML'\n")
        .nth(1)
        .and_then(|s| s.split("\nYAML\n").next())
        .expect("a ShinkenCluster heredoc");
    let cluster: ShinkenCluster =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("the README's ShinkenCluster does not parse: {e}"));
    assert_eq!(cluster.spec.config.config_maps[0].name, "shinken-objects");
    assert_eq!(cluster.spec.roles.poller.masters, 2);
    assert_eq!(cluster.spec.roles.arbiter.spares, 1, "unnamed roles keep their defaults");
}
