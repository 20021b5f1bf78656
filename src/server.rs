//! The accept loop, one thread per connection, and `handle_connection`:
//! read the request head, route it, answer it.
//!
//! ```text
//! accept ──spawn(named, small stack)──▶ read head (timeout, size cap) ─▶ parse ─▶ route
//!                                                                             │
//!        plain reply (404/405/…, /users, /metrics, demo, publish) ◀───────────┤
//!                                                                             ▼
//!                                                        stream.rs: the event stream
//! ```
//!
//! Spec: RFC 9112 §9 (connection management). Every plain reply closes the
//! connection; keep-alive for plain requests would only complicate the
//! thread's life, and browsers open a new connection for each `EventSource`
//! anyway.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::auth;
use crate::config::Config;
use crate::event::Target;
use crate::json;
use crate::limits::{
    ACCEPT_BACKOFF, CONNECTION_STACK_BYTES, FAREWELL_TIMEOUT, HEAD_READ_TIMEOUT, MAX_HEAD_BYTES,
    SERVER_FULL_RETRY_AFTER_SECS, SHUTDOWN_GRACE,
};
use crate::log;
use crate::metrics::{self, Gauges};
use crate::net::{finish_reply, is_timeout, read_with_timeout};
use crate::publish;
use crate::request::{self, Method, Parse, Request, RequestError};
use crate::response::Reply;
use crate::route::{self, Route};
use crate::sse;
use crate::state::{Admission, Shared};
use crate::stream;

/// The demo page served at `GET /`.
pub const DEMO_PAGE: &str = include_str!("demo.html");

/// A bound listener and the shared state: call [`Server::run`].
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Asks a running server to shut down, from another thread (a signal
/// handler).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
    wake_address: SocketAddr,
}

impl Server {
    /// Takes an already-bound listener (so tests and `main` can use port 0).
    pub fn new(listener: TcpListener, config: Config, max_clients: usize) -> Server {
        Server::with_shared(listener, Arc::new(Shared::new(config, max_clients)))
    }

    /// Like [`Server::new`], with shared state made by the caller (cluster
    /// mode builds it with its external event log).
    pub fn with_shared(listener: TcpListener, shared: Arc<Shared>) -> Server {
        Server { listener, shared }
    }

    /// The state every connection shares (cluster mode's threads need it).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn shutdown_handle(&self) -> io::Result<ShutdownHandle> {
        let mut wake_address = self.listener.local_addr()?;
        if wake_address.ip().is_unspecified() {
            let loopback = match wake_address {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            wake_address.set_ip(loopback);
        }
        Ok(ShutdownHandle {
            shared: Arc::clone(&self.shared),
            wake_address,
        })
    }

    /// Accepts connections until a shutdown is requested, then closes every
    /// connection and returns how many streams were closed.
    pub fn run(self) -> usize {
        let mut failures_in_burst = 0u64;
        for incoming in self.listener.incoming() {
            if self.shared.is_shutting_down() {
                break;
            }
            match incoming {
                Ok(stream) => {
                    if failures_in_burst > 0 {
                        log!("accept recovered after={failures_in_burst} errors");
                        failures_in_burst = 0;
                    }
                    spawn_connection(&self.shared, stream);
                }
                Err(error) => {
                    failures_in_burst += 1;
                    backoff_after_accept_error(&error, failures_in_burst);
                }
            }
        }
        close_everything(&self.shared)
    }
}

impl ShutdownHandle {
    /// Sets the flag, then wakes the accept loop (blocked in `accept`) by
    /// connecting to it once.
    pub fn shutdown(&self) {
        self.shared.request_shutdown();
        let _ = TcpStream::connect_timeout(&self.wake_address, Duration::from_secs(1));
    }
}

/// `accept` failed: most often `EMFILE` (out of file descriptors) under a
/// flood. Log once per burst and pause, instead of spinning at 100% CPU;
/// the loop serves again as soon as descriptors free up.
fn backoff_after_accept_error(error: &io::Error, failures_in_burst: u64) {
    if failures_in_burst == 1 {
        log!(
            "accept-error error={} backoff={}ms",
            json::Quoted(&error.to_string()),
            ACCEPT_BACKOFF.as_millis()
        );
    }
    thread::sleep(ACCEPT_BACKOFF);
}

/// Starts the thread for one accepted connection, or answers `503` right
/// away if even the overload headroom is used up.
fn spawn_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let id = shared.next_connection_id();
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        Err(_) => return, // already gone
    };
    let stream = Arc::new(stream);
    if !shared.admit(id, &stream) {
        refuse_without_thread(shared, &stream, id, peer, "too many connections");
        return;
    }
    let thread_shared = Arc::clone(shared);
    let thread_stream = Arc::clone(&stream);
    let spawned = thread::Builder::new()
        .name(format!("conn-{id}"))
        .stack_size(CONNECTION_STACK_BYTES)
        .spawn(move || handle_connection(&thread_shared, id, thread_stream, peer));
    if spawned.is_err() {
        shared.release(id);
        refuse_without_thread(shared, &stream, id, peer, "cannot start a thread");
    }
}

/// A `503` written by the accept loop itself. The socket is fresh, so its
/// send buffer is empty and this small write cannot block; non-blocking
/// mode makes sure of it. What the client already sent is drained before
/// the close, so the close does not turn into a reset that could destroy
/// the reply (see [`finish_reply`]); what arrives later is not waited for.
fn refuse_without_thread(
    shared: &Shared,
    stream: &TcpStream,
    id: u64,
    peer: SocketAddr,
    reason: &str,
) {
    log!(
        "reject status=503 reason={} conn={id} peer={peer}",
        json::Quoted(reason)
    );
    shared.metrics.count_reject(503);
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(&server_full_reply().to_bytes(false, SystemTime::now()));
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 1024];
    for _ in 0..4 {
        if !matches!((&*stream).read(&mut sink), Ok(count) if count > 0) {
            break;
        }
    }
}

/// Removes the connection from `live` when its thread ends, however it ends.
struct LiveGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.shared.release(self.id);
    }
}

/// One accepted connection, as the functions below pass it around.
struct Client {
    id: u64,
    stream: Arc<TcpStream>,
    peer: SocketAddr,
}

/// The whole life of one connection, on its own thread.
fn handle_connection(shared: &Shared, id: u64, stream: Arc<TcpStream>, peer: SocketAddr) {
    let _live = LiveGuard { shared, id };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shared.config.write_timeout));
    let client = Client { id, stream, peer };

    // 1. Read and parse the head.
    let (request, leftover) = match read_head(&client.stream) {
        Ok(head) => head,
        Err(failure) => return answer_head_failure(shared, &client, failure),
    };
    // From here on a reply to HEAD carries no body (RFC 9110 §9.3.2).
    let head_only = request.method == Method::Head;
    if let Err(error) = request::validate(&request) {
        let reply = Reply::text(error.status(), error.reason());
        return reject(shared, &client, reply, head_only);
    }
    // 2. Route it.
    let route = match route::route(&request.method, &request.path, request.query.as_deref()) {
        Ok(route) => route,
        Err(error) => {
            let mut reply = Reply::text(error.status(), error.reason());
            if let route::RouteError::MethodNotAllowed { allow } = error {
                reply = reply.with_header("Allow", allow);
            }
            return reject(shared, &client, reply, head_only);
        }
    };
    // 3. Refuse plain requests when the server is full; streams are told
    //    to come back by `stream.rs`.
    let streams_only = shared.admission(shared.live_connections()) != Admission::Serve;
    if !matches!(route, Route::Stream { .. }) && streams_only {
        if route.is_publish() {
            shared.metrics.count_publish(503);
        }
        return reject(shared, &client, server_full_reply(), head_only);
    }
    // 4. Answer.
    dispatch(shared, &client, request, leftover, route, head_only);
}

/// Runs the route. Streams go to `stream.rs`; everything else is one reply.
fn dispatch(
    shared: &Shared,
    client: &Client,
    request: Request,
    leftover: Vec<u8>,
    route: Route,
    head_only: bool,
) {
    // With a subscribe secret, a stream needs a token (auth.rs), checked before it registers.
    if let Err(refusal) =
        auth::check_stream(shared.config.subscribe_secret.as_ref(), &route, &request)
    {
        refusal.log(client.id, client.peer);
        shared.metrics.count_reject(401);
        return finish_reply(
            &client.stream,
            &refusal.reply().to_bytes(head_only, SystemTime::now()),
        );
    }
    if let Route::Stream {
        user_id,
        head_only: false,
    } = route
    {
        let last_seen =
            route::last_event_id(request.header("Last-Event-ID"), request.query.as_deref());
        // A stream keeps nothing of its request: the head and any pipelined
        // bytes after it are freed before the long wait begins.
        drop((request, leftover));
        return stream::serve(
            shared,
            client.id,
            &client.stream,
            client.peer,
            user_id,
            last_seen,
        );
    }
    // Bytes after the head are the start of a publisher's body.
    let publish = |target, event| {
        publish::handle(
            shared,
            &client.stream,
            client.peer,
            &request,
            leftover,
            target,
            event,
        )
    };
    let is_publish = route.is_publish();
    let reply = match route {
        Route::Stream { .. } => {
            // `HEAD`: the same head as a stream's (RFC 9110 §9.3.2), then close.
            let head = crate::response::stream_head(
                shared.config.allow_origin.as_deref(),
                SystemTime::now(),
            );
            log_reply(client, &request, 200);
            return finish_reply(&client.stream, &head);
        }
        Route::Demo { .. } => Reply::cached_page(DEMO_PAGE, request.header("If-None-Match")),
        Route::Users { .. } => users_reply(shared),
        Route::Metrics { .. } => metrics_reply(shared),
        Route::Send { user_id, event } => publish(Target::user(&user_id), event),
        Route::Broadcast { event } => publish(Target::All, event),
        Route::Token { user_id } => {
            let guard = publish::authorize(
                shared.config.publish_token.as_deref(),
                client.peer,
                &request,
            );
            auth::token_reply(
                guard,
                shared.config.subscribe_secret.as_ref(),
                &user_id,
                request.query.as_deref(),
            )
        }
    };
    if is_publish {
        shared.metrics.count_publish(reply.status);
    }
    if reply.status >= 400 {
        return reject(shared, client, reply, head_only);
    }
    log_reply(client, &request, reply.status);
    finish_reply(
        &client.stream,
        &reply.to_bytes(head_only, SystemTime::now()),
    );
}

/// `reply status=200 method=GET path="/users" conn=9 peer=…`.
fn log_reply(client: &Client, request: &Request, status: u16) {
    log!(
        "reply status={status} method={} path={} conn={} peer={}",
        request.method.as_str(),
        json::Quoted(&request.path),
        client.id,
        client.peer
    );
}

/// `503 Service Unavailable` with `Retry-After`.
fn server_full_reply() -> Reply {
    Reply::text(503, "server is full")
        .with_header("Retry-After", SERVER_FULL_RETRY_AFTER_SECS.to_string())
}

/// `GET /users`: counts, and each user with its number of streams. In
/// cluster mode `users` counts every instance's users; `connections` and
/// `list` are this instance's.
fn users_reply(shared: &Shared) -> Reply {
    let list = shared.registry.summary();
    let connections: usize = list.iter().map(|user| user.connections).sum();
    let users = match shared.external_log() {
        Some(_) => shared.user_count(),
        None => list.len(),
    };
    let mut body = format!("{{\"users\":{users},\"connections\":{connections},\"list\":[");
    for (index, user) in list.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str("{\"userId\":");
        json::write_string(&mut body, &user.user_id);
        body.push_str(&format!(
            ",\"connections\":{},\"since\":{}}}",
            user.connections, user.since_ms
        ));
    }
    body.push_str("]}");
    // Live data: no cache may store it (RFC 9111 §5.2.2.5).
    with_allow_origin(
        shared,
        Reply::json(200, body).with_header("Cache-Control", "no-store"),
    )
}

/// `GET /metrics`: every counter and the gauges, in the Prometheus text
/// format (see `metrics.rs`). Guarded like `/users`: `503` when the server
/// is full, and the CORS header of `--allow-origin`.
fn metrics_reply(shared: &Shared) -> Reply {
    let gauges = Gauges {
        streams: shared.registry.connection_count(),
        users: shared.registry.user_count(),
        threads: shared.live_connections(),
    };
    let body = shared.metrics.render(gauges).into_bytes();
    // Live counts, like `/users`: no cache may store them (RFC 9111 §5.2.2.5).
    let reply =
        Reply::new(200, metrics::CONTENT_TYPE, body).with_header("Cache-Control", "no-store");
    with_allow_origin(shared, reply)
}

/// Adds `Access-Control-Allow-Origin` when `--allow-origin` is set.
fn with_allow_origin(shared: &Shared, reply: Reply) -> Reply {
    match &shared.config.allow_origin {
        Some(origin) => reply.with_header("Access-Control-Allow-Origin", origin.clone()),
        None => reply,
    }
}

/// Why no request head could be read.
#[derive(Debug)]
enum HeadFailure {
    /// The bytes can never be a request.
    Invalid(RequestError),
    /// The head was not complete within [`HEAD_READ_TIMEOUT`].
    Timeout,
    /// The client closed or reset before sending a complete head.
    Gone { bytes: usize },
}

/// First size of the head buffer: most request heads fit. It is over
/// glibc's per-thread cache limit (1032 bytes), so once freed it goes back to
/// the shared heap for the next connection instead of staying parked in this
/// thread's cache for the stream's whole life (measured: about 1 KiB of RSS
/// per connection).
const HEAD_BUFFER_BYTES: usize = 2048;

/// Reads until the head is complete. Returns the parsed request and any
/// bytes after the head (the start of a body). The read buffer is dropped
/// here, so a long-lived stream keeps none of it.
fn read_head(stream: &TcpStream) -> Result<(Request, Vec<u8>), HeadFailure> {
    let deadline = Instant::now() + HEAD_READ_TIMEOUT;
    let mut buffer = Vec::with_capacity(HEAD_BUFFER_BYTES);
    loop {
        match request::parse(&buffer).map_err(HeadFailure::Invalid)? {
            Parse::Complete { request, head_len } => {
                let leftover = buffer[head_len..].to_vec();
                return Ok((request, leftover));
            }
            Parse::Partial => {}
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HeadFailure::Timeout);
        }
        // Read at most one byte past the limit: enough for `parse` to say
        // the head is too large.
        let chunk = HEAD_BUFFER_BYTES.min(MAX_HEAD_BYTES + 1 - buffer.len().min(MAX_HEAD_BYTES));
        let start = buffer.len();
        buffer.resize(start + chunk, 0);
        let read = read_with_timeout(stream, &mut buffer[start..], remaining);
        buffer.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Err(HeadFailure::Gone { bytes: start }),
            Ok(_) => {}
            Err(error) if is_timeout(&error) => return Err(HeadFailure::Timeout),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadFailure::Gone { bytes: start }),
        }
    }
}

fn answer_head_failure(shared: &Shared, client: &Client, failure: HeadFailure) {
    match failure {
        HeadFailure::Invalid(error) => reject(
            shared,
            client,
            Reply::text(error.status(), error.reason()),
            false,
        ),
        HeadFailure::Timeout => reject(
            shared,
            client,
            Reply::text(408, "request head not complete in time"),
            false,
        ),
        HeadFailure::Gone { bytes } => log!(
            "drop reason=\"closed before a complete request\" bytes={bytes} conn={} peer={}",
            client.id,
            client.peer
        ),
    }
}

/// Logs an error reply once (`reject status=404 reason="…"`, the reason
/// being its text body), counts it, and sends it.
fn reject(shared: &Shared, client: &Client, reply: Reply, head_only: bool) {
    let reason = String::from_utf8_lossy(&reply.body);
    log!(
        "reject status={} reason={} conn={} peer={}",
        reply.status,
        json::Quoted(reason.trim_end()),
        client.id,
        client.peer
    );
    shared.metrics.count_reject(reply.status);
    finish_reply(
        &client.stream,
        &reply.to_bytes(head_only, SystemTime::now()),
    );
}

/// Graceful shutdown: a farewell event to every stream, then every socket
/// closed, then a bounded wait for the connection threads to end.
fn close_everything(shared: &Shared) -> usize {
    let streams = shared.registry.all_connections();
    // One deadline for every farewell, so a shutdown never waits on
    // stalled clients one after another.
    let farewell_deadline = Instant::now() + FAREWELL_TIMEOUT;
    publish::spread_over_threads(&streams, |connection| {
        connection.send_farewell(sse::SHUTDOWN_EVENT, farewell_deadline);
    });

    for socket in shared.live_sockets() {
        let _ = socket.shutdown(Shutdown::Both);
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while shared.live_connections() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let unfinished = shared.live_connections();
    log!("shutdown closed={} unfinished={unfinished}", streams.len());
    streams.len()
}
