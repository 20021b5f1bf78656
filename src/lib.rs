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
//! 4. [`response`]: status lines and headers. Pure. [`log`]: one line per
//!    event.
//! 5. [`registry`]: who is connected, and the handle other threads write
//!    through.
//! 6. [`stream`]: the life of one stream: ticks, and disconnect detection
//!    with `peek`.
//! 7. [`history`] and [`publish`]: event ids, replay, pushing to a user or
//!    to everyone.
//! 8. [`server`]: the accept loop, the thread per connection, limits,
//!    shutdown.
//! 9. [`config`] and [`limits`]: every flag and every limit in one place.
//! 10. Cluster mode: [`event_log`] (the seam the core talks to), [`resp`]
//!     (RESP2, pure, the second protocol lesson), [`redis`] (one
//!     connection with timeouts), [`cluster`] (the Redis stream as the
//!     shared log, its reader thread, users across instances).
//!
//! Architecture invariants, stated as absences:
//! - `request`, `route`, `sse`, `response`, `json` and `history` never
//!   touch a socket.
//! - The registry and history locks are never held while writing to a
//!   socket. The only locks held across a write are a connection's own
//!   writer lock (it orders writes to that one socket) and a publisher's
//!   turn (it keeps event ids in order on every stream); every such write
//!   is bounded by the write timeout.
//! - Nothing a client sends is `unwrap`ped, nor anything a Redis server
//!   sends.
//! - The core (`publish`, `stream`, `server`, `state`) never imports the
//!   Redis code: it talks to [`event_log`], and only `main` chooses which
//!   log runs. `resp` never touches a socket.

pub mod cluster;
pub mod config;
pub mod connection;
pub mod event;
pub mod event_log;
pub mod history;
pub mod json;
pub mod limits;
pub mod log;
pub mod net;
pub mod publish;
pub mod redis;
pub mod registry;
pub mod request;
pub mod resp;
pub mod response;
pub mod route;
pub mod server;
pub mod sse;
pub mod state;
pub mod stream;
