//! The server side: warp building blocks so that a daemon writes only its routes.
//!
//! A daemon builds its endpoints with [`get`], [`get_query`], [`post`] (or [`post_with_limit`]),
//! answers with [`json`] or [`reply`], wraps them with [`api`] and runs the result with [`serve`]:
//!
//! ```no_run
//! use shinken::protocol::{server, ApiError, Token};
//! use warp::Filter;
//!
//! # async fn run(token: Token) -> std::io::Result<()> {
//! let ping = server::get("ping").map(|| server::json(&"pong"));
//! let put_results = server::post::<Vec<String>>("put_results")
//!     .then(|results: Vec<String>| async move { server::reply(Ok::<_, ApiError>(results.len())) });
//! let filter = server::api(token, || "shinken_up 1\n".to_string(), ping.or(put_results));
//! let (bound, task) = server::serve("127.0.0.1:7768".parse().unwrap(), filter, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # let _ = (bound, task); Ok(()) }
//! ```
//!
//! What [`api`] adds around the routes:
//! - every route is under `/v1/` and requires `Authorization: Bearer <token>`; a request without
//!   it or with another token gets 401 and `{"error": "..."}` (the expected token is never
//!   shown), whatever the path under `/v1/` (an unauthenticated caller learns no endpoint names);
//! - `GET /health` (200 `{"status":"ok"}`) and `GET /metrics` (Prometheus text exposition from the
//!   daemon's closure) are open;
//! - every failure is rendered as JSON `{"error": "..."}` with its status: 404 unknown path, 405
//!   wrong method, 400 bad query or body, 413 body over the limit, 500 handler failure.
//!
//! Endpoint names are Shinken's (`put_conf`); as in Shinken, the dashed spelling (`put-conf`) is
//! served too.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use warp::http::StatusCode;
use warp::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply, Stream};

use super::token::Token;

/// Default limit of a request body: enough for the data calls (`put_conf`, `put_results`,
/// `push_broks`...). A route that needs more says so with [`post_with_limit`].
pub const DEFAULT_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// Content type of `/metrics` (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A failure a handler reports: rendered as `{"error": message}` with `status`.
///
/// Use it either as the error of [`reply`]'s `Result`, or as a rejection
/// (`Err(warp::reject::custom(ApiError::bad_request("...")))`) in an `and_then` handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// What went wrong, for the caller's logs.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is wrong ("Missing argument" in Shinken).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: the thing asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the daemon's state forbids it now (e.g. a stale configuration epoch).
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 503: the daemon cannot serve this yet (e.g. no configuration received).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: the handler failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

/// The rejection of a request without the right bearer token. Carries no detail on purpose.
#[derive(Debug)]
struct Unauthorized {
    reason: &'static str,
}

impl warp::reject::Reject for Unauthorized {}

/// The rejection of a body over its route's limit.
#[derive(Debug)]
struct BodyTooLarge {
    limit: u64,
}

impl warp::reject::Reject for BodyTooLarge {}

/// `{"error": message}` with `status`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A 200 JSON answer. A value that cannot be serialised (a map with non-string keys) gives a 500
/// with the reason.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(body.into());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot encode the answer: {e}")),
    }
}

/// `Ok(value)` as a 200 JSON answer, `Err(error)` as its JSON error.
pub fn reply<T: Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(value) => json(&value),
        Err(error) => error.into_response(),
    }
}

/// Matches one path segment: the endpoint name or its dashed spelling, then the end of the path.
fn endpoint(name: &'static str) -> impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static {
    let dashed: Arc<str> = Arc::from(name.replace('_', "-"));
    warp::path::param::<String>()
        .and_then(move |segment: String| {
            let matched = segment == name || *segment == *dashed;
            async move { if matched { Ok(()) } else { Err(warp::reject::not_found()) } }
        })
        .untuple_one()
        .and(warp::path::end())
}

/// `GET /v1/<name>` without arguments (add `.map(...)` / `.then(...)` for the handler).
pub fn get(name: &'static str) -> impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static {
    endpoint(name).and(warp::get())
}

/// `GET /v1/<name>?...` with its query string decoded into `Q` (a struct of named arguments; an
/// absent argument with no serde default gives 400).
pub fn get_query<Q>(name: &'static str) -> impl Filter<Extract = (Q,), Error = Rejection> + Clone + Send + Sync + 'static
where
    Q: DeserializeOwned + Send + 'static,
{
    get(name).and(warp::query::<Q>())
}

/// `POST /v1/<name>` with a JSON body decoded into `B`, at most [`DEFAULT_BODY_LIMIT`] bytes.
pub fn post<B>(name: &'static str) -> impl Filter<Extract = (B,), Error = Rejection> + Clone + Send + Sync + 'static
where
    B: DeserializeOwned + Send + 'static,
{
    post_with_limit(name, DEFAULT_BODY_LIMIT)
}

/// `POST /v1/<name>` with a JSON body decoded into `B`, at most `limit` bytes (over: 413).
pub fn post_with_limit<B>(name: &'static str, limit: u64) -> impl Filter<Extract = (B,), Error = Rejection> + Clone + Send + Sync + 'static
where
    B: DeserializeOwned + Send + 'static,
{
    endpoint(name).and(warp::post()).and(json_body(limit))
}

/// A JSON request body decoded into `B`, at most `limit` bytes, else 413.
///
/// A body over the limit is read to its end and discarded (up to [`DRAIN_LIMIT`] bytes) before
/// the 413 is sent: a peer still writing its body when the server answers and closes would get
/// "broken pipe" instead of the 413 that explains the failure. Past [`DRAIN_LIMIT`] the
/// connection is answered and closed at once. Bodies are read only after the token is checked,
/// so only members of the cluster can make a daemon drain.
pub fn json_body<B>(limit: u64) -> impl Filter<Extract = (B,), Error = Rejection> + Clone + Send + Sync + 'static
where
    B: DeserializeOwned + Send + 'static,
{
    warp::header::optional::<u64>(CONTENT_LENGTH.as_str())
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, body| async move {
            let bytes = read_limited(body, limit, declared).await?;
            serde_json::from_slice::<B>(&bytes)
                .map_err(|e| warp::reject::custom(ApiError::bad_request(format!("invalid JSON request body: {e}"))))
        })
}

/// The most a daemon reads and discards of a body over its limit, to answer 413 cleanly.
pub const DRAIN_LIMIT: u64 = 256 * 1024 * 1024;

/// Collects a body stream, refusing it (after draining it, see [`json_body`]) once it passes
/// `limit` bytes or when its declared length does.
async fn read_limited<S, D>(body: S, limit: u64, declared: Option<u64>) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<D, warp::Error>> + Send,
    D: Buf + Send,
{
    use std::pin::pin;
    let read_error = |e: warp::Error| warp::reject::custom(ApiError::bad_request(format!("cannot read the request body: {e}")));
    let mut body = pin!(body);
    let mut too_large = declared.is_some_and(|n| n > limit);
    if too_large && declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(warp::reject::custom(BodyTooLarge { limit }));
    }
    let capacity = if too_large {
        0
    } else {
        declared.unwrap_or(0).min(1 << 20) as usize
    };
    let mut collected = BytesMut::with_capacity(capacity);
    let mut seen: u64 = 0;
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let mut chunk = chunk.map_err(read_error)?;
        seen += chunk.remaining() as u64;
        if seen > limit {
            too_large = true;
            collected = BytesMut::new();
        }
        if too_large {
            if seen > DRAIN_LIMIT {
                break;
            }
            chunk.advance(chunk.remaining());
        } else {
            collected.put(chunk);
        }
    }
    if too_large {
        return Err(warp::reject::custom(BodyTooLarge { limit }));
    }
    Ok(collected.freeze())
}

/// Passes requests that carry `Authorization: Bearer <token>`; rejects the others (401).
pub fn bearer(token: Token) -> impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::header::value("authorization")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
        .and_then(move |header: Option<HeaderValue>| {
            let outcome = match header {
                None => Err(warp::reject::custom(Unauthorized {
                    reason: "missing bearer token",
                })),
                Some(value) if token.verify_bearer(value.as_bytes()) => Ok(()),
                Some(_) => Err(warp::reject::custom(Unauthorized {
                    reason: "invalid bearer token",
                })),
            };
            async move { outcome }
        })
        .untuple_one()
}

/// The whole API of a daemon: `routes` under `/v1/` behind the bearer token, plus the open
/// `GET /health` and `GET /metrics` (`metrics` produces the Prometheus text), with every
/// failure rendered as JSON.
pub fn api<F, R, M>(
    token: Token,
    metrics: M,
    routes: F,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
    M: Fn() -> String + Send + Sync + 'static,
{
    let metrics = Arc::new(metrics);
    let v1 = warp::path("v1").and(bearer(token)).and(routes).map(|r: R| r.into_response());
    let health = warp::path("health")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| json(&serde_json::json!({ "status": "ok" })));
    let metrics = warp::path("metrics").and(warp::path::end()).and(warp::get()).map(move || {
        let mut response = Response::new(metrics().into());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
        response
    });
    v1.or(health)
        .unify()
        .or(metrics)
        .unify()
        .recover(|rejection: Rejection| async move { Ok::<_, Infallible>(render(rejection)) })
        .unify()
}

/// A rejection as a JSON error with the right status. The order matters where several routes
/// rejected: authentication first, then the most specific reason.
pub fn render(rejection: Rejection) -> Response {
    use warp::reject;
    if let Some(Unauthorized { reason }) = rejection.find::<Unauthorized>() {
        let mut response = error_response(StatusCode::UNAUTHORIZED, reason);
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    if let Some(BodyTooLarge { limit }) = rejection.find::<BodyTooLarge>() {
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body larger than {limit} bytes"));
    }
    if let Some(error) = rejection.find::<ApiError>() {
        return error.clone().into_response();
    }
    if rejection.find::<reject::PayloadTooLarge>().is_some() {
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    if rejection.find::<reject::InvalidQuery>().is_some() {
        return error_response(StatusCode::BAD_REQUEST, "invalid or missing query arguments");
    }
    if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        return error_response(StatusCode::BAD_REQUEST, &e.to_string());
    }
    if let Some(e) = rejection.find::<reject::MissingHeader>() {
        return error_response(StatusCode::BAD_REQUEST, &e.to_string());
    }
    if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        return error_response(StatusCode::BAD_REQUEST, &e.to_string());
    }
    if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported content type");
    }
    if rejection.find::<reject::LengthRequired>().is_some() {
        return error_response(StatusCode::LENGTH_REQUIRED, "a content-length header is required");
    }
    if rejection.find::<reject::MethodNotAllowed>().is_some() {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if rejection.is_not_found() {
        return error_response(StatusCode::NOT_FOUND, "not found");
    }
    error_response(StatusCode::INTERNAL_SERVER_ERROR, &format!("unhandled rejection: {rejection:?}"))
}

/// Binds `addr` (port 0: any free port), then serves `filter` on a spawned task until `shutdown`
/// completes. Returns the address actually bound and the task, which ends once the listener is
/// closed and the requests in flight are answered (idle keep-alive connections are closed).
///
/// A bind failure is returned, not a panic, with the address in the message
/// ("cannot listen on 127.0.0.1:7768: Address already in use"), keeping its
/// [`io::ErrorKind`] (`AddrInUse`, `PermissionDenied`...).
pub async fn serve<F, R>(
    addr: SocketAddr,
    filter: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<(SocketAddr, JoinHandle<()>)>
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(warp::serve(filter).incoming(listener).graceful(shutdown).run());
    Ok((bound, task))
}
