//! The client side: one typed client that every caller uses (arbiter -> satellites, pollers ->
//! schedulers, brokers -> everybody...).
//!
//! Timing is Shinken's (`http_client.py`): the connect timeout is the link's `timeout` (default
//! 3 s); a whole call is bounded by `timeout` when short (`ping`, `have_conf`, `what_i_managed`...)
//! or by `data_timeout` (default 120 s) when long (`put_conf`, `get_checks`, `get_broks`,
//! `push_broks`, ...). Connections are kept alive and reused (HTTP/1.1), as pycurl does.
//!
//! A failure is a [`CallError`] whose `Display` names the URL, in the manner of Shinken's log
//! lines: `Connection error to http://10.0.0.2:7768/v1/ping: connection refused`.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::token::Token;

/// Default limit of an answer's body. Bulk answers (`get_checks`, `get_broks`) can be large; an
/// answer past this is a broken peer, refused rather than allowed to exhaust memory.
pub const DEFAULT_RESPONSE_LIMIT: usize = 256 * 1024 * 1024;

/// How long an idle kept-alive connection stays in the pool. Shinken's callers talk to each peer
/// every second or so; a connection idle this long is dropped rather than risk finding it closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest error text kept from a non-JSON error answer.
const MAX_ERROR_TEXT: usize = 512;

/// Why a call failed. Every variant carries the URL called (without its query string).
#[derive(Debug)]
pub enum CallError {
    /// No connection could be made (refused, unreachable, connect timeout): the request was
    /// never sent, so repeating it is safe.
    Connect { url: String, reason: String },
    /// No complete answer within the call's timeout (`timeout` or `data_timeout`). The request
    /// may have been received and acted upon.
    Timeout { url: String, after: Duration },
    /// The peer answered with a non-2xx status; `body` is its `error` message when the answer
    /// is Shinken JSON (`{"error": "..."}`), else the start of its text.
    Status { url: String, code: u16, body: String },
    /// The answer (2xx) is not the JSON expected, or is larger than the response limit.
    Decode { url: String, reason: String },
    /// The connection failed during the call (reset, closed before the answer).
    Transport { url: String, reason: String },
    /// The call could not be built (invalid base URL or endpoint, body not serialisable);
    /// nothing was sent.
    Request { url: String, reason: String },
}

impl CallError {
    /// The URL of the failed call.
    pub fn url(&self) -> &str {
        match self {
            CallError::Connect { url, .. }
            | CallError::Timeout { url, .. }
            | CallError::Status { url, .. }
            | CallError::Decode { url, .. }
            | CallError::Transport { url, .. }
            | CallError::Request { url, .. } => url,
        }
    }

    /// The HTTP status, when the peer answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the peer could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, CallError::Connect { .. })
    }

    /// Whether the call ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout { .. })
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Connect { url, reason } => write!(f, "Connection error to {url}: {reason}"),
            CallError::Timeout { url, after } => write!(f, "Connection error to {url}: timed out after {}", seconds(*after)),
            CallError::Status { url, code, body } => write!(f, "HTTP error {code} from {url}: {body}"),
            CallError::Decode { url, reason } => write!(f, "Invalid answer from {url}: {reason}"),
            CallError::Transport { url, reason } => write!(f, "Connection error to {url}: {reason}"),
            CallError::Request { url, reason } => write!(f, "Cannot call {url}: {reason}"),
        }
    }
}

impl StdError for CallError {}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// A typed client of one daemon's API. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    /// `http://host:port`, without a trailing slash; every URL starts with it.
    base: Arc<str>,
    /// `Bearer <token>`, marked sensitive (kept out of hyper's debug output).
    authorization: HeaderValue,
    /// Connect timeout, and the bound of a short call.
    timeout: Duration,
    /// The bound of a long call.
    data_timeout: Duration,
    /// Largest answer body accepted.
    response_limit: usize,
    /// The pooled HTTP/1.1 client (keep-alive connections reused across calls).
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("data_timeout", &self.data_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the daemon at `base` (`http://127.0.0.1:7768`; only `http`). `timeout` bounds
    /// the connection and short calls, `data_timeout` long calls (Shinken's link `timeout` and
    /// `data_timeout`).
    pub fn new(base: &str, token: Token, timeout: Duration, data_timeout: Duration) -> Result<Client, CallError> {
        let trimmed = base.trim().trim_end_matches('/');
        let invalid = |reason: String| CallError::Request {
            url: base.to_string(),
            reason,
        };
        let uri: Uri = trimmed.parse().map_err(|e| invalid(format!("invalid base URL: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("the base URL must start with http:// (TLS is not supported)".to_string()));
        }
        if uri.authority().is_none() {
            return Err(invalid("the base URL has no host".to_string()));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
            return Err(invalid("the base URL must be http://host:port, without a path".to_string()));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
            .map_err(|_| invalid("the token cannot be sent in a header".to_string()))?;
        authorization.set_sensitive(true);

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Client {
            base: Arc::from(trimmed),
            authorization,
            timeout,
            data_timeout,
            response_limit: DEFAULT_RESPONSE_LIMIT,
            http,
        })
    }

    /// The same client with another limit on answer bodies.
    pub fn with_response_limit(mut self, bytes: usize) -> Client {
        self.response_limit = bytes;
        self
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Connect timeout and bound of short calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Bound of long calls.
    pub fn data_timeout(&self) -> Duration {
        self.data_timeout
    }

    /// The URL of an endpoint: `<base>/v1/<endpoint>`.
    pub fn url(&self, endpoint: &str) -> String {
        format!("{}/v1/{}", self.base, endpoint.trim_start_matches('/'))
    }

    /// `GET /v1/<endpoint>?<query>`, the answer decoded as `R`. `long` selects `data_timeout`.
    pub async fn get<R: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, String)], long: bool) -> Result<R, CallError> {
        let url = self.url(endpoint);
        check_endpoint(endpoint, &url)?;
        let mut full = url.clone();
        if !query.is_empty() {
            full.push('?');
            for (i, (name, value)) in query.iter().enumerate() {
                if i > 0 {
                    full.push('&');
                }
                percent_encode(name, &mut full);
                full.push('=');
                percent_encode(value, &mut full);
            }
        }
        self.call(Method::GET, url, &full, None, long, true).await
    }

    /// `POST /v1/<endpoint>` with `body` as JSON, the answer decoded as `R`. `long` selects
    /// `data_timeout`.
    pub async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(&self, endpoint: &str, body: &B, long: bool) -> Result<R, CallError> {
        let url = self.url(endpoint);
        check_endpoint(endpoint, &url)?;
        let body = serde_json::to_vec(body).map_err(|e| CallError::Request {
            url: url.clone(),
            reason: format!("cannot encode the request body: {e}"),
        })?;
        self.call(Method::POST, url.clone(), &url, Some(Bytes::from(body)), long, true)
            .await
    }

    /// `GET /health` (open, short): `Ok` when the daemon answers 200 `{"status":"ok"}`.
    pub async fn health(&self) -> Result<(), CallError> {
        let url = format!("{}/health", self.base);
        let answer: serde_json::Value = self.call(Method::GET, url.clone(), &url, None, false, false).await?;
        if answer.get("status").and_then(|s| s.as_str()) == Some("ok") {
            Ok(())
        } else {
            Err(CallError::Decode {
                url,
                reason: format!("unexpected health answer {answer}"),
            })
        }
    }

    /// One exchange, bounded by the call's timeout as a whole (connection, request, answer).
    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        url: String,
        full_url: &str,
        body: Option<Bytes>,
        long: bool,
        authenticated: bool,
    ) -> Result<R, CallError> {
        let mut request = Request::builder()
            .method(method)
            .uri(full_url)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("shinken-rs/", env!("CARGO_PKG_VERSION")));
        if authenticated {
            request = request.header(AUTHORIZATION, self.authorization.clone());
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default())).map_err(|e| CallError::Request {
            url: url.clone(),
            reason: e.to_string(),
        })?;

        let bound = if long { self.data_timeout } else { self.timeout };
        let (status, bytes) = match tokio::time::timeout(bound, self.exchange(request, &url)).await {
            Ok(answer) => answer?,
            Err(_) => return Err(CallError::Timeout { url, after: bound }),
        };
        if !status.is_success() {
            return Err(CallError::Status {
                url,
                code: status.as_u16(),
                body: error_text(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Decode {
            url,
            reason: e.to_string(),
        })
    }

    async fn exchange(&self, request: Request<Full<Bytes>>, url: &str) -> Result<(StatusCode, Bytes), CallError> {
        let response = self.http.request(request).await.map_err(|e| {
            let reason = root_cause(&e);
            if e.is_connect() {
                CallError::Connect {
                    url: url.to_string(),
                    reason,
                }
            } else {
                CallError::Transport {
                    url: url.to_string(),
                    reason,
                }
            }
        })?;
        let status = response.status();
        let collected = Limited::new(response.into_body(), self.response_limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::Decode {
                        url: url.to_string(),
                        reason: format!("answer larger than {} bytes", self.response_limit),
                    }
                } else {
                    CallError::Transport {
                        url: url.to_string(),
                        reason: root_cause(e.as_ref()),
                    }
                }
            })?;
        Ok((status, collected.to_bytes()))
    }
}

/// Endpoints are names (`ping`, `put_conf`) or relative paths of them; nothing that would escape
/// `/v1/` or need encoding.
fn check_endpoint(endpoint: &str, url: &str) -> Result<(), CallError> {
    let name = endpoint.trim_start_matches('/');
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && !name.split('/').any(|seg| seg == ".." || seg == ".");
    if ok {
        Ok(())
    } else {
        Err(CallError::Request {
            url: url.to_string(),
            reason: format!("invalid endpoint name {endpoint:?}"),
        })
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay as they are).
fn percent_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
}

/// The message of an error answer: the `error` field of Shinken JSON, else the start of the text.
fn error_text(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(serde_json::Value::String(message)) = map.get("error")
    {
        return message.clone();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_string();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The innermost cause of an error, worded as curl would: an OS error by its kind ("connection
/// refused", "host unreachable"), a timeout as "connect timed out".
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut deepest: &(dyn StdError + 'static) = error;
    let mut io_error: Option<&io::Error> = None;
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            io_error = Some(io);
        }
        deepest = e;
        current = e.source();
    }
    match io_error {
        Some(io) if io.kind() == io::ErrorKind::TimedOut => "connect timed out".to_string(),
        Some(io) if io.raw_os_error().is_some() => io.kind().to_string(),
        Some(io) => io.to_string(),
        None => deepest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_encoded() {
        let mut out = String::new();
        percent_encode("['None'] a&b=c/é", &mut out);
        assert_eq!(out, "%5B%27None%27%5D%20a%26b%3Dc%2F%C3%A9");
    }

    #[test]
    fn error_text_prefers_the_json_error() {
        assert_eq!(error_text(br#"{"error":"missing bearer token"}"#), "missing bearer token");
        assert_eq!(error_text(b"  plain text\n"), "plain text");
        assert!(error_text("é".repeat(600).as_bytes()).ends_with("..."));
    }

    #[test]
    fn endpoints_cannot_escape_v1() {
        assert!(check_endpoint("ping", "u").is_ok());
        assert!(check_endpoint("put-conf", "u").is_ok());
        assert!(check_endpoint("../health", "u").is_err());
        assert!(check_endpoint("ping?x=1", "u").is_err());
        assert!(check_endpoint("", "u").is_err());
    }

    #[test]
    fn base_url_is_checked() {
        let token = Token::new("t").unwrap();
        let d = Duration::from_secs(1);
        assert!(Client::new("http://127.0.0.1:7768", token.clone(), d, d).is_ok());
        assert_eq!(
            Client::new("http://127.0.0.1:7768/", token.clone(), d, d).unwrap().url("ping"),
            "http://127.0.0.1:7768/v1/ping"
        );
        assert!(Client::new("https://127.0.0.1:7768", token.clone(), d, d).is_err());
        assert!(Client::new("127.0.0.1:7768", token.clone(), d, d).is_err());
        assert!(Client::new("http://127.0.0.1:7768/x", token, d, d).is_err());
    }

    #[test]
    fn debug_hides_the_token() {
        let d = Duration::from_secs(1);
        let client = Client::new("http://127.0.0.1:7768", Token::new("hidden-token").unwrap(), d, d).unwrap();
        assert!(!format!("{client:?}").contains("hidden-token"));
    }
}
