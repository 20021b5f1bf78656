//! # sse-server: a Server-Sent Events server on the Rust standard library
//!
//! A teaching project. Every byte on the wire is written by hand so you can
//! see the protocols: HTTP/1.1 (RFC 9112, RFC 9110) and the event stream
//! format (WHATWG HTML §9.2). One thread per connection, no async runtime,
//! no dependencies.
//!
//! ## Read the code in this order
//!
//! 1. [`request`]: bytes → a request head, or a precise error. Pure.
//! 2. [`route`]: method and path → what to do; percent-decoding. Pure.
//! 3. [`sse`] and [`json`]: events → `text/event-stream` bytes, and the
//!    escaping that keeps any userId inside its `data:` line. Pure.
//! 4. [`response`]: status lines and headers, with [`httpdate`] for the
//!    `Date` header (calendar arithmetic by hand). Pure. [`log`](mod@log):
//!    one line per event. [`limits`]: every limit a client can run into.
//! 5. [`event`]: event ids (`ms-seq`), targets, the encoded event. Pure.
//! 6. [`connection`]: one stream as other threads see it: the writer lock
//!    and the outbox that keeps publishers from waiting on slow sockets;
//!    [`end_reason`]: every way a stream can end.
//! 7. [`registry`]: who is connected; [`history`]: replay and gaps;
//!    [`state`]: what every thread shares, and the lock that orders events;
//!    [`metrics`]: the counters behind `GET /metrics`, one atomic add each,
//!    and the Prometheus text format they are written in.
//! 8. [`stream`]: the life of one stream: its start, ticks, and disconnect
//!    detection with `peek`.
//! 9. [`publish`]: pushing to a user or to everyone.
//! 10. [`server`]: the accept loop, the thread per connection, dispatch,
//!     shutdown. [`net`]: the socket helpers everyone uses.
//! 11. [`config`]: every flag.
//! 12. The other half of the protocol: [`eventstream`] reads what `sse`
//!     writes (WHATWG HTML §9.2.6). Pure. [`client`] builds `sse-server
//!     listen` (an `EventSource` for the shell, §9.2.3) and `sse-server
//!     publish` on it.
//! 13. Subscriber tokens: [`sha256`] (FIPS 180-4), [`hmac`] (RFC 2104) and
//!     [`base64`] (RFC 4648 §5), pure and checked against the published
//!     vectors; [`token`], the format and its verification as a pure
//!     function of (secret, userId, token, now); [`auth`], where a stream
//!     request's token is checked and `POST /token/{userId}` mints one.
//! 14. Cluster mode: [`event_log`] (the seam the core talks to), [`resp`]
//!     (RESP2, pure, the second protocol lesson), [`redis`] (one
//!     connection with timeouts), [`cluster`] (the Redis stream as the
//!     shared log, its reader thread, users across instances).
//!
//! Architecture invariants, stated as absences:
//! - `request`, `route`, `sse`, `eventstream`, `response`, `httpdate`,
//!   `json`, `event`, `schedule`, `history`, `end_reason` and `metrics` never
//!   touch a socket;
//!   `response` and `httpdate` never read the clock either (the time is
//!   passed in, so tests can pin it). Nor do `sha256`, `hmac`, `base64`
//!   and `token`.
//! - No subscriber token is ever written to the log.
//! - Counting for `/metrics` never takes a lock or allocates: each count
//!   is one relaxed atomic add.
//! - No lock but a stream's own writer lock is ever held while writing to
//!   a socket, and only that stream's own thread ever waits for it:
//!   publishers `try_lock` it and queue what they cannot write.
//! - A module imports only modules on lower floors; there is no cycle:
//!
//! ```text
//! floor 3  server  cluster  cluster::presence   (main.rs above them)
//! floor 2  stream  publish  auth  cluster::schema
//! floor 1  state  registry  connection  history  net  config  event_log  redis
//! floor 0  request  route  sse  json  response  httpdate  event  log  limits
//!          sha256  hmac  base64  token  eventstream  schedule  end_reason  metrics  resp
//! ```
//! - Nothing a client sends is `unwrap`ped, nor anything a Redis server
//!   sends.
//! - The core (`publish`, `stream`, `server`, `state`) never imports the
//!   Redis code: it talks to [`event_log`], and only `main` chooses which
//!   log runs. `resp` never touches a socket.

pub mod auth;
pub mod base64;
pub mod client;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod end_reason;
pub mod event;
pub mod event_log;
pub mod eventstream;
pub mod history;
pub mod hmac;
pub mod httpdate;
pub mod json;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod net;
pub mod publish;
pub mod redis;
pub mod registry;
pub mod request;
pub mod resp;
pub mod response;
pub mod route;
pub mod schedule;
pub mod server;
pub mod sha256;
pub mod sse;
pub mod state;
pub mod stream;
pub mod token;
