//! `docs/shinkencluster.md`, the reference a user reads before applying a ShinkenCluster, is kept
//! complete by this test:
//! - every property path of the generated CRD's schema under `spec` and `status` (dotted,
//!   camelCase, arrays transparent as in `kubectl explain`: `spec.config.configMaps.name`)
//!   appears in backticks; the embedded Kubernetes types (`resources`, `affinity`,
//!   `tolerations`, `conditions`) count by their own field name only;
//! - every condition type and reason the operator can set, found by reading `status.rs` and
//!   `reconcile.rs`, appears in backticks, and so does every Event reason;
//! - every validation message of the CRD (its CEL rules) appears in double quotes;
//! - the printer columns, and every annotation and label key of `layout.rs`, appear.
//!
//! Adding a field to `crd.rs` or a reason to the operator without documenting it fails here.

use kube::CustomResourceExt;
use serde_json::Value;
use shinken_operator::crd::ShinkenCluster;
use shinken_operator::layout;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Fields whose schema is a Kubernetes type: documented by name, not field by field.
const EMBEDDED: [&str; 4] = ["resources", "affinity", "tolerations", "conditions"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn doc() -> String {
    read("docs/shinkencluster.md")
}

/// Names from `names` that the doc does not show in backticks.
fn undocumented<'a>(doc: &str, names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    names.into_iter().filter(|n| !doc.contains(&format!("`{n}`"))).cloned().collect()
}

fn crd() -> Value {
    serde_json::to_value(ShinkenCluster::crd()).expect("the CRD serializes")
}

fn open_api_schema() -> Value {
    let crd = crd();
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "one version: extend this test when a second one comes");
    versions[0]["schema"]["openAPIV3Schema"].clone()
}

/// Every property path under `node`, dotted from `prefix`: objects' properties, and the
/// properties of arrays' items under the array's own path.
fn property_paths(prefix: &str, node: &Value, out: &mut Vec<String>) {
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, child) in props {
        let path = format!("{prefix}.{name}");
        out.push(path.clone());
        if EMBEDDED.contains(&name.as_str()) {
            continue;
        }
        let inner = child.get("items").unwrap_or(child);
        // A map of objects would hide fields behind a key this walk cannot name.
        assert!(
            inner.get("additionalProperties").and_then(|a| a.get("properties")).is_none(),
            "{path} is a map of objects: teach this test how to name its fields"
        );
        property_paths(&path, inner, out);
    }
}

fn spec_and_status_paths() -> Vec<String> {
    let schema = open_api_schema();
    let mut out = Vec::new();
    for top in ["spec", "status"] {
        let node = &schema["properties"][top];
        assert!(node.is_object(), "the schema has no {top}");
        property_paths(top, node, &mut out);
    }
    out
}

#[test]
fn every_spec_and_status_field_is_documented() {
    let paths = spec_and_status_paths();
    // The walk reaches the depths and stops at the embedded types.
    for expected in [
        "spec.image",
        "spec.config.configMaps.directory",
        "spec.roles.receiver.antiAffinity",
        "spec.failover.podFailureGraceSeconds",
        "spec.retention.external.uriSecret.key",
        "status.daemons.active",
        "status.lastTakeover.reason",
        "spec.roles.scheduler.resources",
        "status.conditions",
    ] {
        assert!(paths.iter().any(|p| p == expected), "the walk missed {expected}: {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| EMBEDDED.iter().any(|e| p.contains(&format!(".{e}.")))),
        "the walk went into an embedded Kubernetes type: {paths:?}"
    );
    assert!(paths.len() >= 80, "only {} paths: {paths:?}", paths.len());

    let missing = undocumented(&doc(), &paths);
    assert!(
        missing.is_empty(),
        "docs/shinkencluster.md does not document (in backticks) these {} field(s):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn a_field_added_to_the_schema_without_documentation_is_caught() {
    let mut schema = open_api_schema();
    schema["properties"]["spec"]["properties"]["failover"]["properties"]["undocumentedKnob"] = serde_json::json!({ "type": "integer" });
    let mut paths = Vec::new();
    property_paths("spec", &schema["properties"]["spec"], &mut paths);
    assert_eq!(undocumented(&doc(), &paths), vec!["spec.failover.undocumentedKnob".to_string()]);
}

/// Rust source without its test module (tests use reasons the code may not set).
fn source(rel: &str) -> String {
    let text = read(rel);
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Skips a string literal starting at `bytes[i] == b'"'`; returns its content and the index
/// after the closing quote.
fn string_at(bytes: &[u8], i: usize) -> (String, usize) {
    let mut j = i + 1;
    let mut content = Vec::new();
    while j < bytes.len() && bytes[j] != b'"' {
        if bytes[j] == b'\\' && j + 1 < bytes.len() {
            content.push(bytes[j + 1]);
            j += 2;
        } else {
            content.push(bytes[j]);
            j += 1;
        }
    }
    (String::from_utf8_lossy(&content).into_owned(), j + 1)
}

/// The index after a char literal at `bytes[i] == b'\''` (`'('`, `'\n'`), or `i + 1` for a
/// lifetime (`'static`).
fn after_quote(bytes: &[u8], i: usize) -> usize {
    if bytes.get(i + 1) == Some(&b'\\') {
        return bytes[i + 2..].iter().position(|&b| b == b'\'').map_or(i + 1, |p| i + 3 + p);
    }
    if bytes.get(i + 2) == Some(&b'\'') { i + 3 } else { i + 1 }
}

/// A token of a Rust expression list: a string literal, or any other text.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Literal(String),
    Other(String),
}

/// The arguments of every call `name(...)` in `src` (not `other_name(`, not `.name(`): split on
/// the commas at the call's own depth, strings and char literals skipped.
fn calls(src: &str, name: &str) -> Vec<Vec<Arg>> {
    let bytes = src.as_bytes();
    let needle = format!("{name}(");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = src[from..].find(&needle) {
        let start = from + found;
        from = start + needle.len();
        let before = src[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let mut args = Vec::new();
        let mut current = String::new();
        let mut literal: Option<String> = None;
        let mut depth = 0usize;
        let mut i = from;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    let (s, next) = string_at(bytes, i);
                    if depth == 0 && current.trim().is_empty() && literal.is_none() {
                        literal = Some(s);
                    } else {
                        current.push_str("\"..\"");
                    }
                    i = next;
                    continue;
                }
                b'\'' => {
                    let next = after_quote(bytes, i);
                    current.push_str(&src[i..next]);
                    i = next;
                    continue;
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth > 0 => depth -= 1,
                b')' | b',' if depth == 0 => {
                    let arg = match literal.take() {
                        Some(s) if current.trim().is_empty() => Arg::Literal(s),
                        Some(s) => Arg::Other(format!("\"{s}\"{current}")),
                        None => Arg::Other(current.trim().to_string()),
                    };
                    current.clear();
                    if !(bytes[i] == b')' && arg == Arg::Other(String::new())) {
                        args.push(arg);
                    }
                    if bytes[i] == b')' {
                        break;
                    }
                    i += 1;
                    continue;
                }
                _ => {}
            }
            current.push(bytes[i] as char);
            i += 1;
        }
        out.push(args);
    }
    out
}

/// The string literal of argument `n` (0-based) of every call `name(...)`.
fn literal_arguments(src: &str, name: &str, n: usize) -> BTreeSet<String> {
    calls(src, name)
        .into_iter()
        .filter_map(|args| match args.get(n) {
            Some(Arg::Literal(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// Every string literal of `text`.
fn literals(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let (s, next) = string_at(bytes, i);
                out.push(s);
                i = next;
            }
            b'\'' => i = after_quote(bytes, i),
            _ => i += 1,
        }
    }
    out
}

fn is_reason(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The condition reasons set in `src`: the literal after `reason: ` (a field of the outcomes),
/// the literal fourth argument of `condition(f, type, ok, reason, message)`, and the literals
/// a `let reason = ...;` chooses among.
fn condition_reasons(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in src.match_indices("reason: \"") {
        let start = i + "reason: ".len();
        let (s, _) = string_at(src.as_bytes(), start);
        out.insert(s);
    }
    out.extend(literal_arguments(src, "condition", 3));
    for (i, _) in src.match_indices("let reason = ") {
        let rest = &src[i..];
        let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
        out.extend(literals(statement).into_iter().filter(|s| is_reason(s)));
    }
    out
}

const SOURCES: [&str; 2] = ["operator/src/status.rs", "operator/src/reconcile.rs"];

#[test]
fn the_extraction_understands_the_shapes_of_the_calls() {
    let src = r#"
        fn condition(f: &Facts, type_: &str, ok: bool, reason: &str, message: String) -> C {}
        let a = condition(f, "Ready", false, "Nope", format!("{} (s), x", g(1, 2)));
        let b = condition(
            f,
            "Other",
            true,
            "Fine",
            "a, b".to_string(),
        );
        let c = precondition(f, "X", true, "NotACall", m);
        let d = x.condition(f, "X", true, "NotACallEither", m);
        let e = condition(f, "Third", true, reason, m);
        let reason = if a { "First" } else if b { "Second" } else { "Third" };
        let o = Outcome::NotReady { reason: "Field", message: m };
        let p = trim_matches('(');
    "#;
    assert_eq!(
        literal_arguments(src, "condition", 1),
        BTreeSet::from(["Ready".to_string(), "Other".to_string(), "Third".to_string()])
    );
    assert_eq!(
        condition_reasons(src),
        ["Nope", "Fine", "First", "Second", "Third", "Field"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn every_condition_and_reason_the_operator_sets_is_documented() {
    let doc = doc();
    let mut reasons = BTreeSet::new();
    let mut types = BTreeSet::new();
    for rel in SOURCES {
        let src = source(rel);
        reasons.extend(condition_reasons(&src));
        types.extend(literal_arguments(&src, "condition", 1));
    }
    // Each pattern found what it is there for.
    for (reason, how) in [
        ("AllDaemonsReady", "a literal argument of condition()"),
        ("ConfigInvalid", "a literal argument of condition()"),
        ("DaemonsFailing", "a let reason = ... choice"),
        ("ConfigRefused", "a let reason = ... choice"),
        ("InvalidConfiguration", "a reason: field"),
        ("TokenSecretMissing", "a reason: field"),
        ("MongoDBStarting", "a reason: field"),
    ] {
        assert!(reasons.contains(reason), "{reason} ({how}) not found in {reasons:?}");
    }
    assert!(reasons.len() >= 10, "only {} reasons found: {reasons:?}", reasons.len());
    assert!(reasons.iter().all(|r| is_reason(r)), "not a CamelCase reason: {reasons:?}");
    assert_eq!(
        types,
        ["Ready", "ConfigValid", "RetentionReady", "Degraded"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );

    let missing: Vec<String> = undocumented(&doc, types.iter().chain(&reasons));
    assert!(
        missing.is_empty(),
        "docs/shinkencluster.md does not document (in backticks) these condition types or reasons:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_event_reason_is_documented() {
    // publish(ctx, cluster, type, reason, action, note)
    let events = literal_arguments(&source("operator/src/reconcile.rs"), "publish", 3);
    assert!(
        events.contains("Takeover") && events.contains("InvalidConfig") && events.len() >= 5,
        "{events:?}"
    );
    let missing = undocumented(&doc(), &events);
    assert!(
        missing.is_empty(),
        "docs/shinkencluster.md does not document these Event reasons:\n{}",
        missing.join("\n")
    );
}

/// Every `x-kubernetes-validations` message under `node`.
fn validation_messages(node: &Value, out: &mut BTreeSet<String>) {
    match node {
        Value::Object(map) => {
            for rule in map.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
                out.insert(rule["message"].as_str().expect("a CEL rule has a message").to_string());
            }
            map.values().for_each(|v| validation_messages(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| validation_messages(v, out)),
        _ => {}
    }
}

#[test]
fn every_validation_message_is_documented() {
    let mut messages = BTreeSet::new();
    validation_messages(&open_api_schema(), &mut messages);
    for expected in [
        "image must not be empty",
        "imagePullPolicy is Always, IfNotPresent or Never",
        "masters must be between 0 and 32",
    ] {
        assert!(messages.contains(expected), "the walk missed {expected:?}: {messages:?}");
    }
    let doc = doc();
    let missing: Vec<&String> = messages.iter().filter(|m| !doc.contains(&format!("\"{m}\""))).collect();
    assert!(
        missing.is_empty(),
        "docs/shinkencluster.md does not quote these validation messages:\n{missing:#?}"
    );
}

/// The values of the annotation and label key constants of `layout.rs`
/// (`pub const ANNOTATION_...` and `pub const LABEL_...`).
fn layout_keys() -> BTreeSet<String> {
    source("operator/src/layout.rs")
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("pub const ANNOTATION_") || l.starts_with("pub const LABEL_"))
        .flat_map(literals)
        .collect()
}

#[test]
fn printer_columns_annotation_and_labels_are_documented() {
    let crd = crd();
    let columns: Vec<String> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| c["name"].as_str().expect("a column name").to_string())
        .collect();
    assert!(columns.len() >= 5, "{columns:?}");
    let mut keys = layout_keys();
    // The extraction reads the constants it is there for.
    for key in [
        layout::ANNOTATION_SWITCHOVER,
        layout::ANNOTATION_CONFIG_HASH,
        layout::ANNOTATION_TEMPLATE_HASH,
        layout::LABEL_NAME,
        layout::LABEL_INSTANCE,
        layout::LABEL_COMPONENT,
        layout::LABEL_MANAGED_BY,
        layout::LABEL_DAEMON,
        layout::LABEL_SPARE,
    ] {
        assert!(keys.contains(key), "{key} not read from layout.rs: {keys:?}");
    }
    keys.extend(["SHINKEN_TOKEN", "SHINKEN_STATE_DIR"].map(String::from));
    let missing = undocumented(&doc(), columns.iter().chain(&keys));
    assert!(
        missing.is_empty(),
        "docs/shinkencluster.md does not document:\n{}",
        missing.join("\n")
    );
}
