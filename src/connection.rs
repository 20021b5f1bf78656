//! One open event stream as every thread sees it: its socket, the lock that
//! keeps frames whole, and the outbox of pushed events waiting to be
//! written.
//!
//! ```text
//! publisher ── enqueue(event) ──▶ outbox (in id order) ──▶ whoever holds the writer drains it
//!                                                          ├─ a publisher: try_lock, one write slice at most
//!                                                          └─ the owner thread: lock, up to --write-timeout
//! ```
//!
//! Why an outbox: a publisher must never wait on somebody else's socket.
//! If it wrote each event itself, one subscriber that stops reading would
//! hold every publish (and, through the order of events, every other
//! subscriber) for the whole write timeout. So a publisher only *queues*
//! the event, then writes it if nobody else is writing to that socket
//! (`try_lock`), and then spends at most one [`WRITE_SLICE`] on a full
//! socket. What it could not write stays queued, and the connection's owner
//! thread, which wakes at least every `--write-timeout`, finishes it with the
//! full timeout, or ends the stream as `stalled`. The owner may block on
//! its own socket: that is all it does.
//!
//! Every socket write of a stream goes through the writer lock, and only
//! whole frames are started or finished under it, so a tick, a replayed
//! event and a pushed event never interleave their bytes. The socket's own
//! write timeout (`SO_SNDTIMEO`) is set to one slice for the stream's whole
//! life: a writer with more time than that simply tries again until its
//! deadline.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

pub use crate::end_reason::EndReason;
use crate::event::{EventId, StoredEvent};
use crate::limits::{MAX_OUTBOX_BYTES, WRITE_SLICE};
use crate::metrics::Metrics;
use crate::net::is_timeout;

/// One open event stream, shared (`Arc`) by its own thread, which waits on
/// the socket, the registry, and any thread that pushes an event to it.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub user_id: String,
    pub peer: SocketAddr,
    pub opened: Instant,
    /// `&TcpStream` implements both `Read` and `Write`, so one socket (one
    /// file descriptor) serves the owner's `peek` and everyone's writes.
    stream: Arc<TcpStream>,
    /// Held by whoever is writing to the socket. The owner holds it from
    /// before the stream is registered until its start is written, so no
    /// publisher can write before the response head.
    writer: Mutex<()>,
    /// Pushed events not yet (completely) written, in id order.
    outbox: Mutex<Outbox>,
    /// Set once, by whoever first sees the end (0 while open).
    end_reason: AtomicU8,
    /// When anything was last written, in ms since `opened` (for heartbeats).
    last_write_ms: AtomicU64,
    /// The server's counters: bytes written and pushed frames are counted
    /// here, where every stream write passes. (`Connection` is kept at 176
    /// bytes: with one more word its allocation moves up a malloc size
    /// class, which measured 0.2 KiB more RSS per stream.)
    metrics: Arc<Metrics>,
}

/// The queue behind a connection. Only the writer's holder removes from it
/// or moves `front_written`; publishers only append.
#[derive(Debug, Default)]
struct Outbox {
    events: VecDeque<Arc<StoredEvent>>,
    /// Bytes of the front event already on the wire: a publisher's slice
    /// ran out in the middle of it.
    front_written: usize,
    /// Sum of the queued frames' lengths (what the client is behind by).
    bytes: usize,
    /// When a publisher's slice last ran out on a full socket, in ms since
    /// the connection opened (0: the outbox is not stuck).
    stuck_at_ms: u64,
    /// Events up to this id are the client's already and are not queued
    /// (cluster mode: a client that resumes from an id this instance's
    /// reader has not delivered yet).
    seen_through: EventId,
}

/// Whether a drain emptied the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    All,
    /// The socket was full until the deadline; the rest stays queued.
    NotAll,
}

/// Proof that this thread holds the connection's writer lock; the only way
/// to write to the stream's socket.
#[derive(Debug)]
pub struct Writer<'a> {
    connection: &'a Connection,
    _turn: MutexGuard<'a, ()>,
}

impl Connection {
    pub fn new(
        id: u64,
        user_id: String,
        peer: SocketAddr,
        stream: Arc<TcpStream>,
        metrics: Arc<Metrics>,
    ) -> Connection {
        Connection {
            id,
            user_id,
            peer,
            opened: Instant::now(),
            stream,
            writer: Mutex::new(()),
            outbox: Mutex::new(Outbox::default()),
            end_reason: AtomicU8::new(0),
            last_write_ms: AtomicU64::new(0),
            metrics,
        }
    }

    /// The socket, for the owner's `peek` and reads.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Waits for the writer lock (the owner thread does this: it waits at
    /// most for one publisher's slice).
    pub fn writer(&self) -> Writer<'_> {
        let turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Writer {
            connection: self,
            _turn: turn,
        }
    }

    /// The writer lock if nobody holds it (publishers never wait for it).
    fn try_writer(&self) -> Option<Writer<'_>> {
        let turn = match self.writer.try_lock() {
            Ok(turn) => turn,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(Writer {
            connection: self,
            _turn: turn,
        })
    }

    /// Queues a pushed event. Returns whether the caller must
    /// [`Connection::flush`]: when the outbox was empty before (otherwise
    /// whoever made it non-empty is writing it), or when a publisher last
    /// gave up on the full socket at least [`STUCK_RETRY`] ago (so a client
    /// that reads slowly but steadily keeps getting its events, and one that
    /// reads nothing costs each publisher at most one slice per
    /// [`STUCK_RETRY`]). A client more than [`MAX_OUTBOX_BYTES`] behind is
    /// ended as `stalled`.
    ///
    /// Called with the event log's lock held, so every outbox receives
    /// events in id order.
    pub fn enqueue(&self, event: &Arc<StoredEvent>) -> Result<bool, EndReason> {
        if let Some(reason) = self.end_reason() {
            return Err(reason);
        }
        let mut outbox = self.lock_outbox();
        if event.id <= outbox.seen_through {
            return Ok(false);
        }
        if outbox.bytes + event.frame.len() > MAX_OUTBOX_BYTES {
            drop(outbox);
            return Err(self.end_and_wake_owner(EndReason::Stalled));
        }
        let was_empty = outbox.events.is_empty();
        outbox.bytes += event.frame.len();
        outbox.events.push_back(Arc::clone(event));
        let stuck_for = self.ms_since_opened().saturating_sub(outbox.stuck_at_ms);
        let retry_stuck =
            outbox.stuck_at_ms != 0 && Duration::from_millis(stuck_for) >= STUCK_RETRY;
        Ok(was_empty || retry_stuck)
    }

    /// Marks every event up to `id` as the client's already: it is not
    /// queued (see [`Outbox::seen_through`]). Called before the stream is
    /// registered.
    pub fn skip_through(&self, id: EventId) {
        self.lock_outbox().seen_through = id;
    }

    /// Milliseconds since the connection opened: the clock of
    /// `last_write_ms` and `stuck_at_ms`.
    fn ms_since_opened(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// A publisher's flush: writes what is queued unless someone else is
    /// writing (they will), spending at most one [`WRITE_SLICE`] on a full
    /// socket. Never waits for another thread.
    pub fn flush(&self) {
        // Another round happens only when an event arrived while we held the
        // writer (its publisher found the writer busy and left it to us), and
        // the socket took everything so far: so a publisher may write other
        // publishers' events too, for as long as the socket takes them at
        // once, but never waits on a full socket more than one slice.
        loop {
            let Some(mut writer) = self.try_writer() else {
                return;
            };
            let drained = writer.drain(Instant::now() + WRITE_SLICE);
            drop(writer);
            if drained != Ok(Drained::All) || !self.has_backlog() {
                return;
            }
        }
    }

    /// Whether pushed events are waiting to be written.
    pub fn has_backlog(&self) -> bool {
        !self.lock_outbox().events.is_empty()
    }

    /// The farewell of a graceful shutdown, then the end. Written only if
    /// nobody else is writing and nothing is queued (a client with a backlog
    /// is slow: it is closed without it), by `deadline`, which a shutdown
    /// shares between all streams: a full socket costs at most one try of
    /// one [`WRITE_SLICE`].
    pub fn send_farewell(&self, frame: &[u8], deadline: Instant) {
        if let Some(mut writer) = self.try_writer() {
            if !self.has_backlog() {
                let _ = writer.write_until(frame, deadline);
            }
        }
        self.end_and_wake_owner(EndReason::Shutdown);
    }

    /// Records why the stream ended (the first reason wins) and shuts the
    /// socket down, which makes the owner's blocked `peek` return at once,
    /// so it deregisters without waiting for its timeout. For any thread
    /// but the owner.
    pub fn end_and_wake_owner(&self, reason: EndReason) -> EndReason {
        let reason = self.record_end(reason);
        let _ = self.stream.shutdown(Shutdown::Both);
        reason
    }

    /// Records why the stream ended, without touching the socket: the owner
    /// thread's own discovery (EOF, reset), it is awake already. The first
    /// reason wins because the first to notice saw the cause; whoever comes
    /// later sees its consequences (after a `stalled` shutdown, the owner's
    /// `peek` reads EOF).
    pub fn record_end(&self, reason: EndReason) -> EndReason {
        let _ =
            self.end_reason
                .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire);
        self.end_reason().unwrap_or(reason)
    }

    /// Why the stream ended, if it has.
    pub fn end_reason(&self) -> Option<EndReason> {
        EndReason::from_code(self.end_reason.load(Ordering::Acquire))
    }

    /// Time since anything was last written.
    pub fn idle_since_last_write(&self) -> Duration {
        let last = self.last_write_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.ms_since_opened().saturating_sub(last))
    }

    fn lock_outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long after a publisher gave up on a full socket the next publisher
/// tries it again (see [`Connection::enqueue`]).
pub const STUCK_RETRY: Duration = Duration::from_millis(100);

impl Writer<'_> {
    /// Writes all of `frame` by `deadline`, or ends the stream: a client
    /// that cannot take it in time is `stalled`.
    pub fn write_all(&mut self, frame: &[u8], deadline: Instant) -> Result<(), EndReason> {
        let written = self.write_until(frame, deadline)?;
        if written < frame.len() {
            return Err(self.connection.end_and_wake_owner(EndReason::Stalled));
        }
        Ok(())
    }

    /// Writes the queued events, oldest first, until the outbox is empty or
    /// `deadline` passes with the socket full.
    pub fn drain(&mut self, deadline: Instant) -> Result<Drained, EndReason> {
        loop {
            let (event, offset) = {
                let outbox = self.connection.lock_outbox();
                match outbox.events.front() {
                    None => return Ok(Drained::All),
                    Some(event) => (Arc::clone(event), outbox.front_written),
                }
            };
            let rest = event.frame.get(offset..).unwrap_or_default();
            let written = self.write_until(rest, deadline)?;
            let mut outbox = self.connection.lock_outbox();
            if written < rest.len() {
                outbox.front_written += written;
                // At least 1: 0 means "not stuck".
                outbox.stuck_at_ms = self.connection.ms_since_opened().max(1);
                return Ok(Drained::NotAll);
            }
            outbox.events.pop_front();
            outbox.bytes -= event.frame.len();
            outbox.front_written = 0;
            if outbox.events.is_empty() {
                outbox.stuck_at_ms = 0;
            }
            self.connection.metrics.count_pushed_frame();
        }
    }

    /// Drains everything by `deadline`, or ends the stream as `stalled`:
    /// the owner's catch-up.
    pub fn drain_all(&mut self, deadline: Instant) -> Result<(), EndReason> {
        match self.drain(deadline)? {
            Drained::All => Ok(()),
            Drained::NotAll => Err(self.connection.end_and_wake_owner(EndReason::Stalled)),
        }
    }

    /// Writes as much of `bytes` as the socket takes by `deadline` (at
    /// least one try, even past it); returns how much. A failed write ends
    /// the stream.
    fn write_until(&mut self, bytes: &[u8], deadline: Instant) -> Result<usize, EndReason> {
        let connection = self.connection;
        if let Some(reason) = connection.end_reason() {
            return Err(reason);
        }
        let mut written = 0;
        while written < bytes.len() {
            match (&*connection.stream).write(&bytes[written..]) {
                Ok(0) => return Err(connection.end_and_wake_owner(EndReason::WriteError)),
                Ok(count) => {
                    written += count;
                    connection.metrics.count_stream_bytes(count);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // The socket's buffer stayed full for one slice.
                Err(error) if is_timeout(&error) => {}
                Err(error) => {
                    let reason = EndReason::from_write_error(&error);
                    return Err(connection.end_and_wake_owner(reason));
                }
            }
            if written < bytes.len() && Instant::now() >= deadline {
                break;
            }
        }
        if written > 0 {
            let now = connection.ms_since_opened();
            connection.last_write_ms.store(now, Ordering::Relaxed);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, Target};
    use std::io::Read;
    use std::net::TcpListener;

    /// A connection over a real loopback socket, and the client's end.
    fn connected() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("test setup");
        let client =
            TcpStream::connect(listener.local_addr().expect("test setup")).expect("test setup");
        let server = listener.accept().expect("test setup").0;
        server
            .set_write_timeout(Some(WRITE_SLICE))
            .expect("test setup");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("test setup");
        let peer = "127.0.0.1:1".parse().expect("test setup");
        let metrics = Arc::new(Metrics::new());
        let connection = Connection::new(1, "a".into(), peer, Arc::new(server), metrics);
        (connection, client)
    }

    fn event(ms: u64, data: &str) -> Arc<StoredEvent> {
        Arc::new(StoredEvent::new(
            EventId::new(ms, 0),
            Target::All,
            None,
            data,
        ))
    }

    fn read_exactly(client: &mut TcpStream, length: usize) -> String {
        let mut bytes = vec![0; length];
        client.read_exact(&mut bytes).expect("client reads");
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn end_reason_is_set_once() {
        let (connection, _client) = connected();
        assert_eq!(connection.end_reason(), None);
        assert_eq!(connection.record_end(EndReason::Eof), EndReason::Eof);
        connection.end_and_wake_owner(EndReason::Stalled);
        assert_eq!(connection.end_reason(), Some(EndReason::Eof));
    }

    #[test]
    fn queued_events_are_written_in_order_by_whoever_flushes() {
        let (connection, mut client) = connected();
        assert_eq!(connection.enqueue(&event(1, "a")), Ok(true));
        assert_eq!(connection.enqueue(&event(2, "b")), Ok(false));
        connection.flush();
        let expected = "id: 1-0\ndata: a\n\nid: 2-0\ndata: b\n\n";
        assert_eq!(read_exactly(&mut client, expected.len()), expected);
        assert!(!connection.has_backlog());
    }

    #[test]
    fn a_publisher_does_not_write_while_the_owner_holds_the_writer() {
        let (connection, mut client) = connected();
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut writer = connection.writer();
        assert_eq!(connection.enqueue(&event(1, "pushed")), Ok(true));
        connection.flush(); // returns at once: the writer is busy
        assert!(connection.has_backlog());
        writer.write_all(b"head\n", deadline).expect("write");
        writer.drain_all(deadline).expect("drain");
        drop(writer);
        let expected = "head\nid: 1-0\ndata: pushed\n\n";
        assert_eq!(read_exactly(&mut client, expected.len()), expected);
    }

    #[test]
    fn a_full_socket_costs_a_publisher_one_slice_and_keeps_the_rest_queued() {
        let (connection, _client) = connected();
        let big = event(1, &"x".repeat(256 * 1024));
        let mut spent = Duration::ZERO;
        // The client never reads: sooner or later the socket is full.
        for _ in 0..64 {
            if connection.enqueue(&big).is_err() {
                break;
            }
            let started = Instant::now();
            connection.flush();
            spent = spent.max(started.elapsed());
            if connection.has_backlog() {
                break;
            }
        }
        assert!(connection.has_backlog(), "the socket never filled");
        assert!(spent < Duration::from_secs(1), "a flush took {spent:?}");
    }

    #[test]
    fn the_owner_ends_a_stream_that_cannot_catch_up() {
        let (connection, _client) = connected();
        let big = event(1, &"x".repeat(256 * 1024));
        // The client never reads; the kernel's buffers take a few MB at most.
        let mut result = Ok(());
        for _ in 0..64 {
            if connection.enqueue(&big).is_err() {
                break;
            }
            let started = Instant::now();
            let owner_deadline = Instant::now() + Duration::from_millis(200);
            result = connection.writer().drain_all(owner_deadline);
            assert!(started.elapsed() < Duration::from_secs(2));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(EndReason::Stalled));
        assert_eq!(connection.end_reason(), Some(EndReason::Stalled));
    }

    #[test]
    fn an_outbox_too_far_behind_ends_the_stream() {
        let (connection, _client) = connected();
        let big = event(1, &"x".repeat(MAX_OUTBOX_BYTES / 3));
        assert_eq!(connection.enqueue(&big), Ok(true));
        assert_eq!(connection.enqueue(&big), Ok(false));
        assert_eq!(connection.enqueue(&big), Err(EndReason::Stalled));
        assert_eq!(connection.enqueue(&event(2, "x")), Err(EndReason::Stalled));
    }

    #[test]
    fn a_stuck_socket_is_tried_again_after_a_while_not_at_every_event() {
        let (connection, _client) = connected();
        let big = event(1, &"x".repeat(256 * 1024));
        for _ in 0..64 {
            if connection.enqueue(&big).is_err() {
                break;
            }
            connection.flush();
            if connection.has_backlog() {
                break;
            }
        }
        assert!(connection.has_backlog(), "the socket never filled");
        // Stuck just now: the next publisher leaves it to the owner.
        assert_eq!(connection.enqueue(&event(2, "x")), Ok(false));
        std::thread::sleep(STUCK_RETRY + Duration::from_millis(20));
        // A while later, the next publisher tries one slice again.
        assert_eq!(connection.enqueue(&event(3, "x")), Ok(true));
    }

    #[test]
    fn events_the_client_has_already_are_not_queued() {
        let (connection, mut client) = connected();
        connection.skip_through(EventId::new(5, 0));
        assert_eq!(connection.enqueue(&event(4, "old")), Ok(false));
        assert_eq!(connection.enqueue(&event(5, "old")), Ok(false));
        assert!(!connection.has_backlog());
        assert_eq!(connection.enqueue(&event(6, "new")), Ok(true));
        connection.flush();
        let expected = "id: 6-0\ndata: new\n\n";
        assert_eq!(read_exactly(&mut client, expected.len()), expected);
    }
}
