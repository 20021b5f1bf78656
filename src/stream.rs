//! The life of one event stream, on its own thread.
//!
//! ```text
//! take the writer ─▶ register ─▶ headers, ":\n\n", retry:, [gap], replay, id: N ─▶ loop {
//!     wait = time until the next tick (or heartbeat, or backlog check)
//!     peek the socket with read timeout = wait
//!         timeout   → write what is queued, then the tick frame
//!                     (a write that cannot finish in time ends the stream)
//!         Ok(0)     → FIN: the client left       → reason=eof
//!         reset     → RST: the client left       → reason=reset
//!         Ok(n > 0) → the client sent bytes: read and discard them (bounded)
//! } ─▶ deregister, log the close
//! ```
//!
//! Why `peek`: a thread that only writes learns that its client left at the
//! next write at the earliest, and often later. The kernel accepts the bytes
//! of the first write after the client's FIN (the client's side is only
//! half-closed as far as TCP knows); the client's kernel answers them with a
//! reset, and only the write after that fails. With a 3 s interval that is
//! up to 6 s of a ghost user in the count. Waiting in `peek` instead, the
//! FIN wakes the thread the moment it arrives: `peek` returns `Ok(0)`.
//! `peek` rather than `read` so the wait consumes nothing.
//!
//! Each stream ticks on its own phase within the interval, on a schedule
//! that never drifts (see `schedule.rs`). The frame's `time` is the moment
//! it is written, as in the original.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::connection::{Connection, EndReason, Writer};
use crate::event::{EventId, LastSeen};
use crate::history::Replay;
use crate::json;
use crate::limits::{MAX_DISCARD_BYTES, RETRY_JITTER_MS, SERVER_FULL_SSE_RETRY, WRITE_SLICE};
use crate::log;
use crate::net::{finish_reply, is_timeout, MIN_SOCKET_TIMEOUT};
use crate::registry::{now_ms, Registration};
use crate::response::{stream_head, write_stream_head};
use crate::schedule::{socket_part, TickSchedule};
use crate::sse;
use crate::state::Shared;

/// Room for the response head plus `retry:`, and for a tick frame (a long
/// userId full of escapes makes it grow, once).
const FRAME_BUFFER_BYTES: usize = 256;

/// Serves `GET /sse/{user_id}` until the client leaves, the stream fails,
/// or the server shuts down. `last_seen` is the client's `Last-Event-ID`
/// (or `?lastEventId=`), if it sent one.
pub fn serve(
    shared: &Shared,
    connection_id: u64,
    stream: &Arc<TcpStream>,
    peer: SocketAddr,
    user_id: String,
    last_seen: Option<LastSeen>,
) {
    let connection = Arc::new(Connection::new(
        connection_id,
        user_id,
        peer,
        Arc::clone(stream),
        Arc::clone(&shared.metrics),
    ));
    // Every write from here on waits at most one slice per call; writers
    // with more time try again until their deadline (see connection.rs).
    let _ = stream.set_write_timeout(Some(WRITE_SLICE));
    // 1. Take the writer before anyone can see this stream, so no publisher
    //    writes to it before its head.
    let mut writer = connection.writer();
    // 2. Register and take the replay, both under the event log's lock.
    let Some((registration, replay)) = register(shared, &connection, last_seen) else {
        drop(writer);
        return send_server_full(shared, stream, connection_id, peer);
    };
    // 3. Write the start, with one deadline for all of it. No lock but
    //    this stream's own writer is held.
    let mut frame = Vec::with_capacity(FRAME_BUFFER_BYTES);
    let started = write_start(shared, &mut writer, &replay, connection_id, &mut frame);
    drop((writer, replay));
    // 4. Live: ticks, heartbeats, and the client's disconnect.
    let reason = match started {
        Ok(()) => {
            connection.flush();
            wait_loop(shared, &connection, frame)
        }
        Err(reason) => reason,
    };
    registration.close(reason);
    shared.users_changed();
}

/// What a stream's start must write after its head.
struct StartReplay {
    replay: Replay,
    /// The newest event id when the stream registered (or the client's own,
    /// when it is ahead of this instance's reader): the stream accounts for
    /// every event up to it (by replay, or because the client did not ask
    /// or had it already), and is queued every event after it. The id-only
    /// block carries it.
    newest: EventId,
}

/// Registers the connection and takes its replay in one hold of the event
/// log's lock, so no event falls between the two (see `state.rs`). Logs the
/// `open` line. `None` when `--max-clients` streams are open already.
fn register<'a>(
    shared: &'a Shared,
    connection: &Arc<Connection>,
    last_seen: Option<LastSeen>,
) -> Option<(Registration<'a>, StartReplay)> {
    let (registration, counts, pending, newest, resume_id) = {
        let events = shared.lock_events_caught_up(last_seen);
        let newest = events.newest();
        // Cluster mode: a client that comes from an instance whose reader
        // is ahead of ours already has the events up to its id; ours may
        // deliver them after the wait above ran out. They are not queued.
        let mut resume_id = newest;
        if let (Some(_), Some(LastSeen::Id(id))) = (events.external(), last_seen) {
            if id > newest {
                connection.skip_through(id);
                resume_id = id;
            }
        }
        let (registration, counts) = shared
            .registry
            .register(Arc::clone(connection), shared.max_clients)?;
        let pending = events.begin_replay(&connection.user_id, last_seen);
        (registration, counts, pending, newest, resume_id)
    };
    // An external log (cluster mode) is asked only now, without the lock:
    // events after `newest` are queued on this stream meanwhile, and its
    // writer is held, so they follow the replay.
    let replay = pending.finish(&connection.user_id, newest);
    let start = StartReplay {
        replay,
        newest: resume_id,
    };
    shared.users_changed();
    log!(
        "open user={} conn={} users={} conns={} peer={}",
        json::Quoted(&connection.user_id),
        connection.id,
        counts.users,
        counts.connections,
        connection.peer
    );
    Some((registration, start))
}

/// Writes the start of the stream, all by one deadline: status line and
/// headers, the opening comment, `retry:`, a `gap` event if events were
/// lost, the replayed events (shared with history, not copied), and an
/// id-only block with the newest id, so even a client that gets no pushed
/// event reconnects with a `Last-Event-ID` (WHATWG §9.2.6); then whatever
/// was queued meanwhile.
fn write_start(
    shared: &Shared,
    writer: &mut Writer<'_>,
    start: &StartReplay,
    connection_id: u64,
    head: &mut Vec<u8>,
) -> Result<(), EndReason> {
    let deadline = writer_deadline(shared);
    head.clear();
    write_stream_head(
        head,
        shared.config.allow_origin.as_deref(),
        SystemTime::now(),
    );
    head.extend_from_slice(sse::OPENING_COMMENT);
    sse::write_retry(head, jittered_ms(shared.config.retry, connection_id));
    if let Some(gap) = start.replay.gap {
        sse::write_gap(head, gap.after, gap.to);
    }
    writer.write_all(head, deadline)?;
    for event in &start.replay.events {
        writer.write_all(&event.frame, deadline)?;
        shared.metrics.count_pushed_frame();
    }
    head.clear();
    sse::write_id_only(head, start.newest);
    writer.write_all(head, deadline)?;
    writer.drain_all(deadline)
}

/// The owner's deadline for one write: `--write-timeout` from now.
fn writer_deadline(shared: &Shared) -> Instant {
    Instant::now() + shared.config.write_timeout
}

/// The answer to a stream request over `--max-clients`. A browser's
/// `EventSource` gives up for good on any status but 200 (WHATWG §9.2.3),
/// so we answer 200 with a `retry:` hint and a comment, then close: the
/// browser comes back by itself a few seconds later.
fn send_server_full(shared: &Shared, stream: &TcpStream, connection_id: u64, peer: SocketAddr) {
    let mut bytes = stream_head(shared.config.allow_origin.as_deref(), SystemTime::now());
    sse::write_retry(
        &mut bytes,
        jittered_ms(SERVER_FULL_SSE_RETRY, connection_id),
    );
    bytes.extend_from_slice(sse::FULL_COMMENT);
    log!("reject status=200 reason=\"server full\" conn={connection_id} peer={peer}");
    shared.metrics.count_reject(200);
    let _ = stream.set_write_timeout(Some(shared.config.write_timeout));
    finish_reply(stream, &bytes);
}

/// What waiting on the socket found.
enum Wake {
    /// The deadline passed: time to tick, send a heartbeat or catch up.
    Deadline,
    /// The client sent this many bytes (now read and discarded).
    Data(usize),
    /// A signal cut the wait short; nothing happened.
    Interrupted,
    /// The stream is over.
    End(EndReason),
}

/// Ticks, heartbeats and catching up on queued events until the stream
/// ends; returns why it ended.
fn wait_loop(shared: &Shared, connection: &Connection, mut frame: Vec<u8>) -> EndReason {
    let heartbeat = shared.config.heartbeat;
    let mut ticks = shared.config.interval.map(|interval| {
        let phase = Duration::from_nanos(random_u64(connection.id));
        TickSchedule::new(shared.started, interval, phase, Instant::now())
    });
    let mut socket_timeout = SocketTimeout::default();
    let mut discarded = 0;
    loop {
        // 1. A tick that is due (it writes what is queued first).
        let now = Instant::now();
        if let Some(schedule) = ticks.as_mut().filter(|schedule| schedule.next() <= now) {
            let late = now.saturating_duration_since(schedule.next());
            if let Err(reason) = send_tick(shared, connection, &mut frame, late) {
                return reason;
            }
            schedule.advance_past(Instant::now());
            continue;
        }
        // 2. A heartbeat that is due.
        let heartbeat_in =
            heartbeat.map(|every| every.saturating_sub(connection.idle_since_last_write()));
        if heartbeat_in == Some(Duration::ZERO) {
            if let Err(reason) = send_frame(shared, connection, sse::HEARTBEAT) {
                return reason;
            }
            continue;
        }
        // 3. Wait for whichever comes first, or for the client. Publishers
        //    cannot wake this thread, so it looks at its outbox at least
        //    every `--write-timeout` (a stream that fell behind is caught up
        //    or ended as stalled within two of them).
        let tick_in = ticks.map(|schedule| schedule.next().saturating_duration_since(now));
        let socket_tick_in = tick_in
            .zip(shared.config.interval)
            .map(|(in_, every)| socket_part(in_, every));
        let wait = [
            socket_tick_in,
            heartbeat_in,
            Some(shared.config.write_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Err(reason) = socket_timeout.set(connection, wait) {
            return reason;
        }
        match wait_for_client(connection) {
            Wake::Deadline | Wake::Interrupted => {}
            Wake::Data(count) => {
                discarded += count;
                if discarded > MAX_DISCARD_BYTES {
                    return connection.record_end(EndReason::ClientData);
                }
            }
            Wake::End(reason) => return reason,
        }
        // 4. Queued events a publisher could not finish: write them now.
        if connection.has_backlog() {
            if let Err(reason) = send_frame(shared, connection, b"") {
                return reason;
            }
        }
    }
}

/// A socket read timeout within this much of the one already set is kept:
/// setting it costs a system call per frame, and the timer is coarser than
/// this anyway.
const TIMEOUT_SLACK: Duration = Duration::from_millis(1);

/// The read timeout set on the socket, so it is changed only when needed.
#[derive(Debug, Default)]
struct SocketTimeout {
    current: Option<Duration>,
}

impl SocketTimeout {
    /// Makes the socket's read timeout `wait` (`None`: no deadline), unless
    /// the one set is within [`TIMEOUT_SLACK`] of it. Returns the timeout
    /// now in effect.
    fn set(
        &mut self,
        connection: &Connection,
        wait: Option<Duration>,
    ) -> Result<Option<Duration>, EndReason> {
        // A zero timeout means "block forever" to the OS.
        let wait = wait.map(|wait| wait.max(MIN_SOCKET_TIMEOUT));
        let close_enough = match (self.current, wait) {
            (Some(current), Some(wait)) => current.max(wait) - current.min(wait) <= TIMEOUT_SLACK,
            (current, wait) => current == wait,
        };
        if !close_enough {
            if connection.stream().set_read_timeout(wait).is_err() {
                return Err(connection.record_end(EndReason::ReadError));
            }
            self.current = wait;
        }
        Ok(self.current)
    }
}

/// Writes what is queued, then `frame`, all within `--write-timeout`; then
/// flushes what was queued meanwhile.
fn send_frame(shared: &Shared, connection: &Connection, frame: &[u8]) -> Result<(), EndReason> {
    let deadline = writer_deadline(shared);
    let mut writer = connection.writer();
    writer.drain_all(deadline)?;
    if !frame.is_empty() {
        writer.write_all(frame, deadline)?;
    }
    drop(writer);
    connection.flush();
    Ok(())
}

/// Formats the timer frame into the reused buffer and writes it; with
/// `--verbose`, logs it like the original's "Interval loop" line. Counts
/// it, and how late its `time` is against `tick_at`, when it was due.
fn send_tick(
    shared: &Shared,
    connection: &Connection,
    frame: &mut Vec<u8>,
    late: Duration,
) -> Result<(), EndReason> {
    frame.clear();
    let users = shared.user_count();
    sse::write_tick(frame, &connection.user_id, users, now_ms());
    send_frame(shared, connection, frame)?;
    shared.metrics.count_timer_frame();
    shared.metrics.observe_tick_lateness(late);
    if shared.config.verbose {
        let user = json::Quoted(&connection.user_id);
        log!("tick user={user} conn={} users={users}", connection.id);
    }
    Ok(())
}

/// Blocks until the client sends something, leaves, or the socket's read
/// timeout passes.
fn wait_for_client(connection: &Connection) -> Wake {
    let socket = connection.stream();
    let mut probe = [0u8; 1];
    match socket.peek(&mut probe) {
        Ok(0) => Wake::End(connection.record_end(EndReason::Eof)),
        Ok(_) => discard_input(connection),
        Err(error) if is_timeout(&error) => Wake::Deadline,
        Err(error) => match error.kind() {
            io::ErrorKind::Interrupted => Wake::Interrupted,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                Wake::End(connection.record_end(EndReason::Reset))
            }
            _ => Wake::End(connection.record_end(EndReason::ReadError)),
        },
    }
}

/// Reads (and throws away) what the client sent, so the next `peek` waits
/// again instead of returning at once forever.
fn discard_input(connection: &Connection) -> Wake {
    let mut sink = [0u8; 512];
    let mut socket = connection.stream();
    match socket.read(&mut sink) {
        Ok(0) => Wake::End(connection.record_end(EndReason::Eof)),
        Ok(count) => Wake::Data(count),
        Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {
            Wake::End(connection.record_end(EndReason::Reset))
        }
        Err(error) if is_timeout(&error) || error.kind() == io::ErrorKind::Interrupted => {
            Wake::Interrupted
        }
        Err(_) => Wake::End(connection.record_end(EndReason::ReadError)),
    }
}

/// `base` plus up to [`RETRY_JITTER_MS`] random milliseconds, in ms. The
/// jitter spreads reconnections out: after a restart, thousands of
/// browsers would otherwise all come back in the same millisecond.
fn jittered_ms(base: Duration, seed: u64) -> u64 {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    base_ms.saturating_add(random_u64(seed) % (RETRY_JITTER_MS + 1))
}

/// A random number from std alone: `RandomState` is seeded randomly per
/// process and per instance, which is plenty for jitter (not for secrets).
fn random_u64(seed: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(seed);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_timeout_is_set_only_when_it_changes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("test setup");
        let _client = TcpStream::connect(listener.local_addr().expect("test setup"));
        let socket = Arc::new(listener.accept().expect("test setup").0);
        let peer = "127.0.0.1:1".parse().expect("test setup");
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let connection = Connection::new(1, "a".into(), peer, socket, metrics);
        let ms = Duration::from_millis;
        let mut timeout = SocketTimeout::default();
        assert_eq!(timeout.set(&connection, Some(ms(1000))), Ok(Some(ms(1000))));
        assert_eq!(timeout.set(&connection, Some(ms(999))), Ok(Some(ms(1000))));
        assert_eq!(timeout.set(&connection, Some(ms(1002))), Ok(Some(ms(1002))));
        assert_eq!(timeout.set(&connection, Some(ms(0))), Ok(Some(ms(1))));
        assert_eq!(timeout.set(&connection, None), Ok(None));
        let socket_says = connection.stream().read_timeout().expect("read timeout");
        assert_eq!(socket_says, None);
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        for seed in 0..200 {
            let ms = jittered_ms(Duration::from_secs(3), seed);
            assert!((3000..=3000 + RETRY_JITTER_MS).contains(&ms), "{ms}");
        }
    }

    #[test]
    fn jitter_varies() {
        let values: std::collections::HashSet<u64> = (0..50)
            .map(|seed| jittered_ms(Duration::ZERO, seed))
            .collect();
        assert!(values.len() > 10, "only {} distinct values", values.len());
    }
}
