//! The broker's web UI and its read-only JSON API, open (no token), served on the broker's own
//! port beside `/v1/` (token), `/health` and `/metrics`.
//!
//! - `GET /`: one page of plain HTML and inline JS ([`PAGE`], no build step, no external
//!   asset) that polls the API every 2 s and re-renders: problems first, then hosts, services,
//!   recent state changes and notifications, daemon health and takeovers; `#/host/<name>` shows
//!   one host with its services. Stable hooks for tests and scripts: tables `#problems`,
//!   `#hosts`, `#services`, `#host-services`, `#changes`, `#notifications`, `#daemons`,
//!   `#takeovers`; every item row has `data-host`, `data-service` (services) and `data-state`;
//!   `#updated` holds the time of the last refresh.
//! - `GET /api/v1/hosts`: `{"hosts": [host...]}`, each host with `services_by_state`;
//! - `GET /api/v1/hosts/{name}`: `{"host": host, "services": [...], "state_changes": [...],
//!   "notifications": [...]}` (404 `{"error": ...}` for an unknown host);
//! - `GET /api/v1/services`: `{"services": [service...]}`;
//! - `GET /api/v1/problems`: `{"problems": [...]}`, worst first (see [`LiveView::problems`]);
//! - `GET /api/v1/daemons`: `{"broker": {...}, "arbiter", "arbiter_reachable", "updated",
//!   "daemons": [...], "takeovers": [...]}`; without an arbiter's answer the daemons are this
//!   broker and the schedulers it is linked to;
//! - `GET /api/v1/events`: `{"state_changes": [...], "notifications": [...], "takeovers": [...]}`,
//!   newest first.
//!
//! A host or service is its [`ItemStatus`](crate::messages::ItemStatus) fields plus `kind`
//! (`host` or `service`), `last_state_change`, `latency`, `execution_time` and, for problems,
//! `severity`.

use super::Broker;
use crate::protocol::server::{self, ApiError};
use crate::satellite::view::{Entry, LiveView, severity};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use warp::reply::Response;

/// The page.
pub const PAGE: &str = include_str!("web_page.html");

/// What the broker says about itself in `/api/v1/daemons`.
#[derive(Debug, Clone, Default)]
pub struct Me {
    pub name: String,
    pub spare: bool,
    pub have_conf: bool,
    /// The broker's scheduler links, as its `/v1/status` shows them.
    pub schedulers: Vec<Value>,
}

fn entry(e: &Entry) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        let kind = if e.status.service_description.is_some() {
            "service"
        } else {
            "host"
        };
        m.insert("kind".into(), kind.into());
        if let Some(s) = severity(&e.status) {
            m.insert("severity".into(), s.into());
        }
    }
    v
}

fn host(view: &LiveView, e: &Entry) -> Value {
    let mut v = entry(e);
    let mut by_state: BTreeMap<&str, u32> = BTreeMap::new();
    for s in view.services_of(&e.status.host_name) {
        *by_state.entry(s.status.state.as_str()).or_default() += 1;
    }
    v["services_by_state"] = json!(by_state);
    v
}

/// Decodes `%XX` sequences of a path segment.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer to `GET /api/v1/<path>` (`path` as in the URL, percent-encoded).
pub fn answer(view: &LiveView, me: &Me, path: &str) -> Result<Value, ApiError> {
    let segments: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["hosts"] => Ok(json!({ "hosts": view.hosts().map(|e| host(view, e)).collect::<Vec<_>>() })),
        ["hosts", name] => {
            let h = view
                .host(name)
                .ok_or_else(|| ApiError::not_found(format!("no host named '{name}'")))?;
            let changes: Vec<_> = view.state_changes().into_iter().filter(|c| c.host_name == *name).collect();
            let notifications: Vec<_> = view.notifications().into_iter().filter(|n| n.host_name == *name).collect();
            Ok(json!({
                "host": host(view, h),
                "services": view.services_of(name).map(entry).collect::<Vec<_>>(),
                "state_changes": changes,
                "notifications": notifications,
            }))
        }
        ["services"] => Ok(json!({ "services": view.services().map(entry).collect::<Vec<_>>() })),
        ["problems"] => Ok(json!({ "problems": view.problems().into_iter().map(entry).collect::<Vec<_>>() })),
        ["daemons"] => {
            let health = view.health();
            let daemons = if health.arbiter.is_some() {
                serde_json::to_value(&health.daemons).unwrap_or_default()
            } else {
                // No arbiter answered yet: what this broker knows by itself.
                let mut d = vec![json!({
                    "name": me.name, "role": "broker", "spare": me.spare, "alive": true,
                    "active": me.have_conf, "address": "", "port": 0, "realm": "", "parts": [],
                })];
                for s in &me.schedulers {
                    d.push(json!({
                        "name": s["name"], "role": "scheduler", "spare": false, "alive": s["connected"],
                        "active": true, "address": s["url"], "port": 0, "realm": "", "parts": [s["part_id"]],
                    }));
                }
                Value::Array(d)
            };
            Ok(json!({
                "broker": { "name": me.name, "spare": me.spare, "have_conf": me.have_conf, "schedulers": me.schedulers },
                "arbiter": health.arbiter,
                "arbiter_reachable": health.arbiter_reachable,
                "updated": health.updated,
                "daemons": daemons,
                "takeovers": view.takeovers(),
            }))
        }
        ["events"] => Ok(json!({
            "state_changes": view.state_changes(),
            "notifications": view.notifications(),
            "takeovers": view.takeovers(),
        })),
        _ => Err(ApiError::not_found(format!("no API endpoint /api/v1/{}", path.trim_matches('/')))),
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The open routes: the page and the API, or nothing (404 from the rest of the API) when this
/// satellite is not a broker.
pub fn routes(broker: Option<Arc<Broker>>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let b = warp::any().and_then(move || {
        let b = broker.clone();
        async move { b.ok_or_else(warp::reject::not_found) }
    });
    let page = warp::path::end().and(warp::get()).and(b.clone()).map(|_: Arc<Broker>| {
        let mut r = Response::new(PAGE.into());
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        no_store(r)
    });
    let api = warp::path("api")
        .and(warp::path("v1"))
        .and(warp::get())
        .and(b)
        .and(warp::path::tail())
        .map(|b: Arc<Broker>, tail: warp::path::Tail| no_store(server::reply(b.api(tail.as_str()))));
    page.or(api).unify()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Brok;

    fn view() -> LiveView {
        let mut v = LiveView::new();
        let mut add = |kind: &str, host: &str, svc: Option<&str>, state: &str| {
            let mut d = json!({
                "host_name": host, "state": state, "state_type": "HARD", "attempt": 1,
                "max_check_attempts": 2, "last_check": 1.0, "output": "out", "acknowledged": false,
                "in_downtime": false, "scheduler": "s1",
            });
            if let Some(s) = svc {
                d["service_description"] = s.into();
            }
            v.apply(
                "s1",
                &Brok {
                    id: 0,
                    kind: kind.into(),
                    data: d,
                },
                10.0,
            );
        };
        add("initial_host_status", "web 1", None, "UP");
        add("initial_host_status", "db", None, "DOWN");
        add("initial_service_status", "web 1", Some("disk"), "OK");
        add("initial_service_status", "web 1", Some("http"), "OK");
        add("service_check_result", "web 1", Some("disk"), "CRITICAL");
        v
    }

    fn me() -> Me {
        Me {
            name: "broker-1".into(),
            spare: false,
            have_conf: true,
            schedulers: vec![json!({"name": "s1", "connected": true, "url": "http://x:1", "part_id": 0})],
        }
    }

    #[test]
    fn the_api_lists_hosts_services_problems_and_one_host() {
        let v = view();
        let hosts = answer(&v, &me(), "hosts").unwrap();
        assert_eq!(hosts["hosts"].as_array().unwrap().len(), 2);
        assert_eq!(hosts["hosts"][1]["host_name"], "web 1");
        assert_eq!(hosts["hosts"][1]["kind"], "host");
        assert_eq!(hosts["hosts"][1]["services_by_state"], json!({"CRITICAL": 1, "OK": 1}));
        let services = answer(&v, &me(), "/services").unwrap();
        assert_eq!(services["services"].as_array().unwrap().len(), 2);
        assert_eq!(services["services"][0]["service_description"], "disk");
        let p = answer(&v, &me(), "problems").unwrap();
        let p: Vec<(&str, &str)> = p["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["host_name"].as_str().unwrap(), e["state"].as_str().unwrap()))
            .collect();
        assert_eq!(p, [("db", "DOWN"), ("web 1", "CRITICAL")]);
        let one = answer(&v, &me(), "hosts/web%201").unwrap();
        assert_eq!(one["host"]["host_name"], "web 1");
        assert_eq!(one["services"].as_array().unwrap().len(), 2);
        assert_eq!(one["state_changes"][0]["state"], "CRITICAL");
        assert_eq!(one["state_changes"][0]["from_state"], "OK");
        let missing = answer(&v, &me(), "hosts/nope").unwrap_err();
        assert_eq!(missing.status, warp::http::StatusCode::NOT_FOUND);
        assert!(answer(&v, &me(), "bogus").is_err());
        let ev = answer(&v, &me(), "events").unwrap();
        assert_eq!(ev["state_changes"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn daemons_without_an_arbiter_are_the_broker_and_its_schedulers() {
        let d = answer(&view(), &me(), "daemons").unwrap();
        assert_eq!(d["arbiter"], Value::Null);
        assert_eq!(d["daemons"][0]["name"], "broker-1");
        assert_eq!(d["daemons"][1]["name"], "s1");
        assert_eq!(d["daemons"][1]["alive"], true);
        assert_eq!(d["broker"]["spare"], false);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn the_page_is_self_contained() {
        assert!(PAGE.contains("id=\"problems\""));
        assert!(PAGE.contains("/api/v1/problems"));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"), "no external assets");
    }
}
