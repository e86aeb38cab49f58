//! The transport end to end: a real server on 127.0.0.1 (port chosen at run time) and the typed
//! client, plus the token file rules.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shinken::protocol::server::{self, ApiError};
use shinken::protocol::{CallError, Client, Token, TokenError, ensure_token, load_token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

const SECRET: &str = "0123456789abcdef-test-token";

/// How long the slow endpoint takes; short calls give up well before, long calls wait for it.
const SLOW: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Results {
    scheduler: String,
    checks: Vec<u32>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Accepted {
    scheduler: String,
    count: usize,
}

#[derive(Debug, Deserialize)]
struct GetChecksArgs {
    worker_name: String,
    poller_tags: String,
    max_actions: Option<u32>,
}

/// A server running for one test; `stop` fires the shutdown future and waits for the task.
struct TestServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start() -> TestServer {
        let ping = server::get("ping").map(|| server::json(&"pong"));
        let get_checks = server::get_query::<GetChecksArgs>("get_checks").map(|args: GetChecksArgs| {
            server::json(&serde_json::json!({
                "worker_name": args.worker_name,
                "poller_tags": args.poller_tags,
                "max_actions": args.max_actions,
            }))
        });
        let put_results = server::post::<Results>("put_results").then(|results: Results| async move {
            server::reply(Ok::<_, ApiError>(Accepted {
                scheduler: results.scheduler,
                count: results.checks.len(),
            }))
        });
        let small = server::post_with_limit::<serde_json::Value>("small", 1024).map(|_| server::json(&true));
        let slow = server::get("slow").then(|| async {
            tokio::time::sleep(SLOW).await;
            server::json(&"done")
        });
        let refuse = server::get("refuse").then(|| async { server::reply::<bool>(Err(ApiError::conflict("stale epoch 3 < 4"))) });
        let routes = ping.or(get_checks).or(put_results).or(small).or(slow).or(refuse);
        let filter = server::api(
            Token::new(SECRET).unwrap(),
            || "# TYPE shinken_up gauge\nshinken_up 1\n".to_string(),
            routes,
        );

        let (tx, rx) = oneshot::channel::<()>();
        let (addr, task) = server::serve("127.0.0.1:0".parse().unwrap(), filter, async {
            let _ = rx.await;
        })
        .await
        .expect("bind 127.0.0.1:0");
        assert_ne!(addr.port(), 0);
        TestServer { addr, shutdown: tx, task }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self, secret: &str) -> Client {
        Client::new(
            &self.base(),
            Token::new(secret).unwrap(),
            Duration::from_millis(300),
            Duration::from_secs(30),
        )
        .unwrap()
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the server task ends after the shutdown future completes")
            .expect("the server task does not panic");
    }
}

/// One request over a fresh connection, written by hand: (status, lower-cased head, body).
async fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn get_request(path: &str, authorization: Option<&str>) -> String {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn authenticated_round_trip() {
    let server = TestServer::start().await;
    let client = server.client(SECRET);

    let pong: String = client.get("ping", &[], false).await.unwrap();
    assert_eq!(pong, "pong");

    let sent = Results {
        scheduler: "scheduler-1".to_string(),
        checks: vec![1, 2, 3],
    };
    let accepted: Accepted = client.post("put_results", &sent, true).await.unwrap();
    assert_eq!(
        accepted,
        Accepted {
            scheduler: "scheduler-1".to_string(),
            count: 3
        }
    );

    // The dashed spelling is the same endpoint, as in Shinken.
    let accepted: Accepted = client.post("put-results", &sent, false).await.unwrap();
    assert_eq!(accepted.count, 3);

    // Query arguments, with characters that need encoding.
    let echoed: serde_json::Value = client
        .get(
            "get_checks",
            &[
                ("worker_name", "poller 1/é".to_string()),
                ("poller_tags", "['None', 'DMZ&co']".to_string()),
                ("max_actions", "7".to_string()),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(echoed["worker_name"], "poller 1/é");
    assert_eq!(echoed["poller_tags"], "['None', 'DMZ&co']");
    assert_eq!(echoed["max_actions"], 7);

    // A missing required argument: 400 with the reason.
    let err = client
        .get::<serde_json::Value>("get_checks", &[("worker_name", "p".to_string())], false)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");

    // A handler's own error keeps its status and message.
    let err = client.get::<bool>("refuse", &[], false).await.unwrap_err();
    match &err {
        CallError::Status { code: 409, body, .. } => assert_eq!(body, "stale epoch 3 < 4"),
        other => panic!("expected a 409, got {other:?}"),
    }

    // An answer of another shape than expected.
    let err = client.get::<Accepted>("ping", &[], false).await.unwrap_err();
    assert!(matches!(err, CallError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("/v1/ping"), "{err}");

    server.stop().await;
}

#[tokio::test]
async fn missing_or_wrong_token_is_refused() {
    let server = TestServer::start().await;

    let wrong = server.client("not-the-token");
    let err = wrong.get::<String>("ping", &[], false).await.unwrap_err();
    assert!(matches!(err, CallError::Status { code: 401, .. }), "{err:?}");
    assert!(!err.to_string().contains(SECRET));
    let err = wrong
        .post::<_, Accepted>(
            "put_results",
            &Results {
                scheduler: "s".into(),
                checks: vec![],
            },
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));

    for authorization in [
        None,
        Some("Bearer nope"),
        Some("Basic Zm9vOmJhcg=="),
        Some(&*format!("Bearer {SECRET}x")),
    ] {
        let (status, head, body) = raw(server.addr, &get_request("/v1/ping", authorization)).await;
        assert_eq!(status, 401, "{authorization:?}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["error"].is_string(), "{body}");
        assert!(!body.contains(SECRET), "{body}");
    }
    // An unknown endpoint under /v1/ says nothing to an unauthenticated caller either.
    let (status, _, _) = raw(server.addr, &get_request("/v1/no_such_endpoint", None)).await;
    assert_eq!(status, 401);

    // The right token, by hand (scheme case-insensitive).
    let (status, _, body) = raw(server.addr, &get_request("/v1/ping", Some(&format!("bearer {SECRET}")))).await;
    assert_eq!((status, body.as_str()), (200, "\"pong\""));

    server.stop().await;
}

#[tokio::test]
async fn health_and_metrics_are_open_and_errors_are_json() {
    let server = TestServer::start().await;

    // A client with the wrong token still sees /health.
    server.client("not-the-token").health().await.unwrap();

    let (status, head, body) = raw(server.addr, &get_request("/health", None)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "ok"})
    );
    assert!(head.contains("content-type: application/json"), "{head}");

    let (status, head, body) = raw(server.addr, &get_request("/metrics", None)).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert!(body.contains("shinken_up 1"), "{body}");

    // Unknown paths: 404, JSON, with or without token.
    for (path, auth) in [
        ("/nowhere", None),
        ("/v1/nowhere", Some(format!("Bearer {SECRET}"))),
        ("/v2/ping", None),
    ] {
        let (status, head, body) = raw(server.addr, &get_request(path, auth.as_deref())).await;
        assert_eq!(status, 404, "{path}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].is_string(),
            "{body}"
        );
    }
    let err = server.client(SECRET).get::<String>("nowhere", &[], false).await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    // Wrong method on a known endpoint: 405.
    let (status, _, body) = raw(server.addr, &get_request("/v1/put_results", Some(&format!("Bearer {SECRET}")))).await;
    assert_eq!(status, 405, "{body}");

    // A body that is not JSON: 400 with the reason.
    let request = format!(
        "POST /v1/put_results HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\n\
         Content-Length: 8\r\nConnection: close\r\n\r\nnot json"
    );
    let (status, _, body) = raw(server.addr, &request).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid JSON"), "{body}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413() {
    let server = TestServer::start().await;
    let client = server.client(SECRET);

    let fits: bool = client.post("small", &"x".repeat(900), false).await.unwrap();
    assert!(fits);
    let err = client.post::<_, bool>("small", &"x".repeat(4096), false).await.unwrap_err();
    assert!(matches!(err, CallError::Status { code: 413, .. }), "{err:?}");

    // Chunked, without Content-Length: refused once the limit is passed.
    let chunk = "x".repeat(2000);
    let request = format!(
        "POST /v1/small HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {SECRET}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{:x}\r\n\"{chunk}\"\r\n0\r\n\r\n",
        chunk.len() + 2
    );
    let (status, _, body) = raw(server.addr, &request).await;
    assert_eq!(status, 413, "{body}");

    // The default limit (16 MiB) on a data call.
    let big = Results {
        scheduler: "s".repeat(17 * 1024 * 1024),
        checks: vec![],
    };
    let err = client.post::<_, Accepted>("put_results", &big, true).await.unwrap_err();
    assert_eq!(err.status(), Some(413), "{err:?}");
    // The server is still fine afterwards.
    let pong: String = client.get("ping", &[], false).await.unwrap();
    assert_eq!(pong, "pong");

    server.stop().await;
}

#[tokio::test]
async fn short_calls_time_out_long_calls_wait() {
    let server = TestServer::start().await;
    let client = server.client(SECRET); // timeout 300 ms, data_timeout 30 s

    let err = client.get::<String>("slow", &[], false).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("/v1/slow"), "{err}");

    let done: String = client.get("slow", &[], true).await.unwrap();
    assert_eq!(done, "done");

    server.stop().await;
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new(&base, Token::new(SECRET).unwrap(), Duration::from_secs(5), Duration::from_secs(60)).unwrap();
    let err = client.get::<String>("ping", &[], true).await.unwrap_err();
    assert!(matches!(err, CallError::Connect { .. }), "{err:?}");
    assert!(err.is_connect());
    assert_eq!(err.to_string(), format!("Connection error to {base}/v1/ping: connection refused"));
    let err = client.health().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn graceful_shutdown_ends_the_task_and_frees_the_port() {
    let server = TestServer::start().await;
    let client = server.client(SECRET);
    // Leave a kept-alive connection in the client's pool.
    let _: String = client.get("ping", &[], false).await.unwrap();
    let addr = server.addr;

    // A call in flight when the shutdown comes is still answered.
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.get::<String>("slow", &[], true).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), "done");

    let err = client.get::<String>("ping", &[], false).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // The port can be bound again.
    let again = std::net::TcpListener::bind(addr);
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let filter = server::api(
        Token::new(SECRET).unwrap(),
        String::new,
        server::get("ping").map(|| server::json(&"pong")),
    );
    let err = server::serve(addr, filter, std::future::pending()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// A fresh empty directory under the system temp dir.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shinken-protocol-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn token_file_is_created_0600_and_reused() {
    let dir = scratch_dir();
    let path = shinken::protocol::default_token_path(&dir.join("shinken.cfg"));
    assert_eq!(path, dir.join("shinken.token"));

    let created = ensure_token(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(created.secret().len(), 64);
    assert!(created.secret().bytes().all(|b| b.is_ascii_hexdigit()));
    // Nothing else left in the directory (the temporary file is gone).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let again = ensure_token(&path).unwrap();
    assert_eq!(again.secret(), created.secret());
    let loaded = load_token(&path).unwrap();
    assert!(loaded.verify(created.secret().as_bytes()));

    // Whitespace around the token is not part of it.
    std::fs::write(&path, "  abc-def \n\n").unwrap();
    assert_eq!(load_token(&path).unwrap().secret(), "abc-def");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn token_file_readable_by_others_is_refused() {
    let dir = scratch_dir();
    let path = dir.join("shinken.token");
    std::fs::write(&path, "abc\n").unwrap();
    for bad in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = load_token(&path).unwrap_err();
        assert!(matches!(err, TokenError::TooOpen { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("{bad:04o}")), "{text}");
        // ensure_token does not paper over it either.
        assert!(matches!(ensure_token(&path), Err(TokenError::TooOpen { .. })));
    }
    for good in [0o600, 0o400] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(good)).unwrap();
        assert_eq!(load_token(&path).unwrap().secret(), "abc");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_or_missing_token_file_is_refused() {
    let dir = scratch_dir();
    let path = dir.join("shinken.token");
    std::fs::write(&path, " \n\t\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = load_token(&path).unwrap_err();
    assert!(matches!(err, TokenError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
    // ensure_token refuses it too: an empty file is a mistake to report, not to overwrite.
    assert!(matches!(ensure_token(&path), Err(TokenError::Empty { .. })));

    let missing = dir.join("absent.token");
    let err = load_token(&missing).unwrap_err();
    assert!(
        matches!(&err, TokenError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(err.to_string().contains("absent.token"));

    assert!(matches!(load_token(&dir), Err(TokenError::NotAFile { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}
