//! `POST /send/{userId}` and `POST /broadcast`: a request body becomes one
//! event, written to every open stream it is meant for.
//!
//! Spec: RFC 9112 §6 (message body length: `Content-Length`,
//! `Transfer-Encoding`), RFC 9110 §10.1.1 (`Expect: 100-continue`), RFC 6750
//! §2.1 (`Authorization: Bearer`), <https://www.rfc-editor.org/rfc/rfc9112#section-6>.
//!
//! Request smuggling: a proxy and a server that disagree on where a body
//! ends can be made to see two different requests. So a request with both
//! `Content-Length` and `Transfer-Encoding`, or with `Content-Length`s that
//! disagree, is refused with `400` (RFC 9112 §6.3 items 3 and 5), and so is
//! one whose last transfer coding is not `chunked` (item 4).
//!
//! Simplification: chunked bodies are refused with `411 Length Required`,
//! although RFC 9112 §6.1 expects an HTTP/1.1 recipient to parse them. A
//! production server would decode them, with the same size cap; every
//! client we target (curl, `fetch`, forms) sends `Content-Length` for a
//! body it has in full.
//!
//! Delivery: a publisher holds the event log's lock (see `state.rs`) only
//! while it gives the event its id, keeps it in history and queues it on
//! every target stream's outbox; nothing is written under it. Then it
//! flushes each target it queued on (see `connection.rs`): it writes only
//! to streams nobody else is writing to, and spends at most one
//! `WRITE_SLICE` (10 ms) on a stream whose socket is full; what did not fit
//! stays queued for that stream's own thread. So the worst case of a
//! publish is one slice for each target whose socket filled up during it,
//! or was stuck at least `STUCK_RETRY` (100 ms) ago (12 subscribers that
//! stopped reading: about 120 ms, at most once per 100 ms), not one write
//! timeout per stalled subscriber, and a publish to one healthy user is
//! never held up by anyone else.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use crate::connection::Connection;
use crate::event::{EventId, StoredEvent, Target};
use crate::event_log::{EventLog, ExternalLog, Unavailable};
use crate::hmac::constant_time_eq;
use crate::json;
use crate::limits::{BODY_READ_TIMEOUT, LOG_UNAVAILABLE_RETRY_AFTER_SECS, MAX_BODY_BYTES};
use crate::log;
use crate::net::{is_timeout, read_with_timeout};
use crate::registry::now_ms;
use crate::request::{Request, Version};
use crate::response::Reply;
use crate::state::Shared;

/// Broadcasts to at least this many streams are written by several threads.
const PARALLEL_DELIVERY_MIN: usize = 512;

/// Handles a publish request whose head has been read; returns the reply.
pub fn handle(
    shared: &Shared,
    stream: &TcpStream,
    peer: SocketAddr,
    request: &Request,
    leftover: Vec<u8>,
    target: Target,
    event: Option<String>,
) -> Reply {
    if let Err(reply) = authorize(shared.config.publish_token.as_deref(), peer, request) {
        return reply;
    }
    let body = match body_length(request)
        .and_then(|length| read_body(stream, request, leftover, length))
    {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let text = match String::from_utf8(body) {
        Ok(text) if !text.is_empty() => text,
        // An event needs something to say; an empty body is almost always a
        // mistake (a `curl -d ''`), so it is refused rather than sent as `data: `.
        Ok(_) => return Reply::text(400, "empty message"),
        Err(_) => return Reply::text(400, "body is not utf-8"),
    };
    match publish(shared, target, event.as_deref(), &text) {
        Ok((id, delivered)) => Reply::json(
            202,
            format!("{{\"id\":\"{id}\",\"delivered\":{delivered}}}"),
        ),
        Err(unavailable) => {
            log!(
                "publish refused status=503 reason={}",
                json::Quoted(&unavailable.reason)
            );
            Reply::json(503, "{\"error\":\"event log unavailable\"}".to_string())
                .with_header("Retry-After", LOG_UNAVAILABLE_RETRY_AFTER_SECS.to_string())
        }
    }
}

/// Cluster mode: appends the event to the shared log and returns its id
/// once the log has it. Local streams get it like everyone else's, from
/// the log's reader ([`deliver`]). `delivered` is the number of streams
/// on this instance it is meant for right now: the publisher cannot count
/// other instances' subscribers without waiting for them.
fn append_to_external(
    shared: &Shared,
    log: &dyn ExternalLog,
    target: Target,
    event: Option<&str>,
    data: &str,
) -> Result<(EventId, usize), Unavailable> {
    let started = Instant::now();
    let id = log.append(&target, event, data)?;
    let local = match &target {
        Target::User(user_id) => shared.registry.connection_count_of(user_id),
        Target::All => shared.registry.connection_count(),
    };
    log!(
        "publish id={id} target={} event={} local={local} bytes={} took={}us",
        target_text(&target),
        event.unwrap_or("message"),
        data.len(),
        started.elapsed().as_micros()
    );
    Ok((id, local))
}

/// `all` or `user:"bob"`, for the log.
fn target_text(target: &Target) -> String {
    match target {
        Target::User(user_id) => format!("user:{}", json::Quoted(user_id)),
        Target::All => "all".to_string(),
    }
}

/// Pushes one event: gives it an id, keeps it in history, queues it on
/// every open stream it is meant for and flushes them. Returns the id and
/// `delivered`: the number of streams it was queued on. Each of them writes
/// it, in id order, unless it ends first. With an external log (cluster
/// mode) it appends there instead (see `append_to_external`), which can
/// fail while the log is unreachable.
pub fn publish(
    shared: &Shared,
    target: Target,
    event: Option<&str>,
    data: &str,
) -> Result<(EventId, usize), Unavailable> {
    let started = Instant::now();
    let (stored, queued) = {
        let mut events = shared.lock_events();
        let stored = match &mut *events {
            EventLog::InProcess(history) => history.push(target, event, data, now_ms()),
            EventLog::External { log, .. } => {
                let log = Arc::clone(log);
                drop(events);
                return append_to_external(shared, log.as_ref(), target, event, data);
            }
        };
        let queued = queue_on_targets(shared, &events, &stored);
        (stored, queued)
    };
    let delivered = queued.delivered;
    flush_starting_anywhere(queued.to_flush, stored.id);
    let took = started.elapsed();
    shared.metrics.observe_publish_latency(took);
    log!(
        "publish id={} target={} event={} delivered={delivered} bytes={} took={}us",
        stored.id,
        target_text(&stored.target),
        event.unwrap_or("message"),
        data.len(),
        took.as_micros()
    );
    Ok((stored.id, delivered))
}

/// Hands an event that already has its id (from another event log, such
/// as cluster mode's) to the local streams it is meant for, through the
/// same queues and flushes as [`publish`]. Returns `delivered`.
pub fn deliver(shared: &Shared, stored: &Arc<StoredEvent>) -> usize {
    let queued = {
        let mut events = shared.lock_events();
        let queued = queue_on_targets(shared, &events, stored);
        events.note_delivered(stored.id);
        queued
    };
    shared.notify_delivered();
    let delivered = queued.delivered;
    flush_starting_anywhere(queued.to_flush, stored.id);
    delivered
}

/// Flushes the streams an event was queued on. The writes start somewhere
/// else each time (picked from the event's id), so the same streams are
/// not always the last to get a broadcast.
fn flush_starting_anywhere(mut to_flush: Vec<Arc<Connection>>, id: EventId) {
    if !to_flush.is_empty() {
        let start = (id.ms ^ id.seq.rotate_left(17)) as usize % to_flush.len();
        to_flush.rotate_left(start);
    }
    spread_over_threads(&to_flush, |connection| connection.flush());
}

/// What queueing an event found.
struct Queued {
    /// Streams it was queued on.
    delivered: usize,
    /// Those whose outbox was empty before: this publisher flushes them.
    /// (A non-empty outbox is being written by someone else, or is behind
    /// and waits for its own thread.)
    to_flush: Vec<Arc<Connection>>,
}

/// Queues `stored` on every stream it is meant for. The caller holds the
/// event log's lock (`_order`), so every outbox gets events in id order and
/// a stream registering meanwhile gets this event either by replay or here,
/// never both and never neither.
fn queue_on_targets(shared: &Shared, _order: &EventLog, stored: &Arc<StoredEvent>) -> Queued {
    let connections = match &stored.target {
        Target::User(user_id) => shared.registry.connections_of(user_id),
        Target::All => shared.registry.all_connections(),
    };
    let mut queued = Queued {
        delivered: 0,
        to_flush: Vec::new(),
    };
    for connection in connections {
        match connection.enqueue(stored) {
            Ok(true) => {
                queued.delivered += 1;
                queued.to_flush.push(connection);
            }
            Ok(false) => queued.delivered += 1,
            Err(_) => {}
        }
    }
    queued
}

/// Runs `work` for every connection. Long lists are split over one thread
/// per core, so a broadcast to thousands of streams uses every core.
pub fn spread_over_threads(connections: &[Arc<Connection>], work: impl Fn(&Connection) + Sync) {
    let run_chunk = |chunk: &[Arc<Connection>]| chunk.iter().for_each(|c| work(c));
    if connections.len() < PARALLEL_DELIVERY_MIN {
        return run_chunk(connections);
    }
    // Asked only for long lists: std reads the cgroup's CPU quota for it.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if workers == 1 {
        return run_chunk(connections);
    }
    let chunk_size = connections.len().div_ceil(workers);
    std::thread::scope(|scope| {
        for chunk in connections.chunks(chunk_size) {
            // No thread to be had (the server is at its limits): do this
            // share here instead of panicking like `scope.spawn` would.
            if std::thread::Builder::new()
                .spawn_scoped(scope, move || run_chunk(chunk))
                .is_err()
            {
                run_chunk(chunk);
            }
        }
    });
}

/// Who may publish: with a token, whoever sends `Authorization: Bearer
/// TOKEN` (`401` without it or with a wrong one, RFC 6750 §3.1); without
/// one, only peers on loopback (`403` for others).
pub fn authorize(token: Option<&str>, peer: SocketAddr, request: &Request) -> Result<(), Reply> {
    let Some(token) = token else {
        return if peer.ip().to_canonical().is_loopback() {
            Ok(())
        } else {
            Err(Reply::text(403, "publishing is only allowed from loopback"))
        };
    };
    match request.bearer_token() {
        None => {
            Err(Reply::text(401, "bearer token required").with_header("WWW-Authenticate", "Bearer"))
        }
        Some(presented) if constant_time_eq(presented.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(Reply::text(401, "invalid token")
            .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")),
    }
}

/// The body length from `Content-Length` (RFC 9112 §6.3), refusing every
/// framing a proxy could read differently.
pub fn body_length(request: &Request) -> Result<usize, Reply> {
    let transfer_codings: Vec<&str> = request
        .headers_named("Transfer-Encoding")
        .flat_map(|value| value.split(','))
        .map(trim_ows)
        .collect();
    let mut lengths = request
        .headers_named("Content-Length")
        .flat_map(|value| value.split(','))
        .map(trim_ows);
    let first = lengths.next();
    if let Some(last_coding) = transfer_codings.last() {
        // §6.3 item 3: with both headers the message is suspect; item 4: a
        // request whose final coding is not chunked has no knowable length.
        return Err(if first.is_some() {
            Reply::text(400, "content-length with transfer-encoding")
        } else if last_coding.eq_ignore_ascii_case("chunked") {
            Reply::text(411, "chunked bodies are not supported, send content-length")
        } else {
            Reply::text(400, "transfer-encoding must end in chunked")
        });
    }
    let Some(first) = first else {
        return Err(Reply::text(411, "content-length required"));
    };
    if lengths.any(|other| other != first) {
        return Err(Reply::text(400, "conflicting content-length"));
    }
    if first.is_empty() || !first.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(Reply::text(400, "invalid content-length"));
    }
    match first.parse::<usize>() {
        Ok(length) if length <= MAX_BODY_BYTES => Ok(length),
        _ => Err(Reply::text(413, "body too large (at most 64 KiB)")),
    }
}

/// Trims optional whitespace, which is spaces and tabs only (RFC 9110
/// §5.6.3); `str::trim` would also take a non-breaking space or U+3000.
fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// Reads exactly `length` body bytes, starting with those that arrived with
/// the head. Answers `Expect: 100-continue` first (RFC 9110 §10.1.1).
fn read_body(
    stream: &TcpStream,
    request: &Request,
    leftover: Vec<u8>,
    length: usize,
) -> Result<Vec<u8>, Reply> {
    // An HTTP/1.0 client cannot mean 100-continue; §10.1.1 says to ignore it.
    let expect = request
        .header("Expect")
        .filter(|_| request.version == Version::Http11);
    if let Some(expect) = expect {
        if !expect.eq_ignore_ascii_case("100-continue") {
            return Err(Reply::text(417, "unsupported expectation"));
        }
        if leftover.len() < length {
            let _ = (&*stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
    }
    let mut body = leftover;
    body.truncate(length);
    let mut filled = body.len();
    body.resize(length, 0);
    let deadline = Instant::now() + BODY_READ_TIMEOUT;
    let timed_out = || Reply::text(408, "body not complete in time");
    while filled < length {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        match read_with_timeout(stream, &mut body[filled..], remaining) {
            Ok(0) => return Err(Reply::text(400, "body shorter than content-length")),
            Ok(count) => filled += count,
            Err(error) if is_timeout(&error) => return Err(timed_out()),
            Err(_) => return Err(Reply::text(400, "body could not be read")),
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{parse, Parse};

    fn request(head: &str) -> Request {
        match parse(head.as_bytes()) {
            Ok(Parse::Complete { request, .. }) => request,
            other => panic!("not a complete request: {other:?}"),
        }
    }

    #[track_caller]
    fn check_length(headers: &str, expected: Result<usize, u16>) {
        let request = request(&format!("POST /broadcast HTTP/1.1\r\n{headers}\r\n"));
        let actual = body_length(&request).map_err(|reply| reply.status);
        assert_eq!(actual, expected, "headers: {headers:?}");
    }

    #[test]
    fn content_length_rules() {
        check_length("Content-Length: 5\r\n", Ok(5));
        check_length("Content-Length: 0\r\n", Ok(0));
        check_length("Content-Length: 5\r\nContent-Length: 5\r\n", Ok(5));
        check_length("Content-Length: 5, 5\r\n", Ok(5));
        check_length("", Err(411));
        check_length("Transfer-Encoding: chunked\r\n", Err(411));
        check_length("Transfer-Encoding: gzip, chunked\r\n", Err(411));
        check_length("Transfer-Encoding: gzip\r\n", Err(400));
        check_length("Transfer-Encoding: chunked, gzip\r\n", Err(400));
        check_length(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            Err(400),
        );
        check_length("Content-Length: 5\r\nContent-Length: 6\r\n", Err(400));
        check_length("Content-Length: 5, 6\r\n", Err(400));
        check_length("Content-Length: +5\r\n", Err(400));
        check_length("Content-Length: -1\r\n", Err(400));
        check_length("Content-Length: 0x10\r\n", Err(400));
        check_length("Content-Length: \r\n", Err(400));
        check_length("Content-Length: \t5 \r\n", Ok(5));
        check_length("Content-Length: 5,\t5\r\n", Ok(5));
        check_length("Content-Length: \u{a0}5\r\n", Err(400));
        check_length("Content-Length: 5\u{85}\r\n", Err(400));
        check_length("Content-Length: \u{3000}5\r\n", Err(400));
        check_length("Content-Length: 65537\r\n", Err(413));
        check_length("Content-Length: 99999999999999999999999\r\n", Err(413));
    }

    #[track_caller]
    fn check_auth(
        token: Option<&str>,
        peer: &str,
        authorization: Option<&str>,
        expected: Result<(), u16>,
    ) {
        let header =
            authorization.map_or(String::new(), |value| format!("Authorization: {value}\r\n"));
        let request = request(&format!("POST /broadcast HTTP/1.1\r\n{header}\r\n"));
        let actual = authorize(token, peer.parse().expect("test setup"), &request)
            .map_err(|reply| reply.status);
        assert_eq!(actual, expected);
    }

    #[test]
    fn without_a_token_only_loopback_may_publish() {
        check_auth(None, "127.0.0.1:1", None, Ok(()));
        check_auth(None, "[::1]:1", None, Ok(()));
        check_auth(None, "[::ffff:127.0.0.1]:1", None, Ok(()));
        check_auth(None, "192.0.2.1:1", None, Err(403));
    }

    #[test]
    fn with_a_token_everyone_needs_it() {
        check_auth(Some("s3cret"), "192.0.2.1:1", Some("Bearer s3cret"), Ok(()));
        check_auth(Some("s3cret"), "192.0.2.1:1", Some("bearer s3cret"), Ok(()));
        check_auth(Some("s3cret"), "127.0.0.1:1", None, Err(401));
        check_auth(
            Some("s3cret"),
            "127.0.0.1:1",
            Some("Basic czNjcmV0"),
            Err(401),
        );
        check_auth(
            Some("s3cret"),
            "127.0.0.1:1",
            Some("Bearer s3creT"),
            Err(401),
        );
        check_auth(
            Some("s3cret"),
            "127.0.0.1:1",
            Some("Bearer s3cre"),
            Err(401),
        );
    }
}
