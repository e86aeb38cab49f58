//! The transport between daemons: JSON over HTTP/1.1, behind a shared bearer token.
//!
//! Shinken's daemons speak HTTP with pickled, zlib-compressed bodies, which nothing but Python
//! can read. This re-implementation keeps everything else of the wire: the endpoint names
//! (`ping`, `put_conf`, `wait_new_conf`, `have_conf`, `what_i_managed`, `get_checks`,
//! `put_results`, `get_broks`, `push_broks`, ...), the direction of every call, the arguments
//! (GET arguments in the query string, POST arguments in the body) and the timeouts (connect and
//! short calls bounded by a link's `timeout`, long calls by its `data_timeout`). Who calls whom
//! and when is in `shared/reference/shinken-semantics.md`, sections 1.3 and 1.4. What changes:
//!
//! - bodies are JSON, both ways (requests `Content-Type: application/json`; every answer, errors
//!   included: `{"error": "..."}`);
//! - the endpoints live under `/v1/` (`/v1/ping`, `/v1/put_conf`; the dashed spelling
//!   `/v1/put-conf` is served too, as in Shinken);
//! - every call under `/v1/` carries `Authorization: Bearer <token>`, the token the cluster shares
//!   (a file, `shinken.token` beside the main cfg by default); `GET /health` and `GET /metrics`
//!   are open;
//! - request bodies are limited (16 MiB by default, per route), over it: 413.
//!
//! The message types are defined by the daemons that serve them; this module is generic over
//! serde types. Its parts:
//!
//! - [`token`]: the shared token: loading it (refusing a file others can read), creating it,
//!   comparing in constant time;
//! - [`server`]: warp filters a daemon composes its routes with, [`server::api`] around them
//!   (authentication, `/health`, `/metrics`, JSON errors) and [`server::serve`] (bind first, then
//!   serve until a shutdown future completes);
//! - [`client`]: [`Client`], the one typed client every caller uses, and [`CallError`].

pub mod client;
pub mod server;
pub mod token;

pub use client::{CallError, Client};
pub use server::{ApiError, DEFAULT_BODY_LIMIT, api, serve};
pub use token::{Token, TokenError, default_token_path, ensure_token, load_token};
