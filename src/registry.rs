//! The registry of connected users, and the connection handle other threads
//! write through.
//!
//! ```text
//! Registry ── RwLock<HashMap<userId, User>>
//!                                   └── User { since, connections: HashMap<conn id, Arc<Connection>> }
//! ```
//!
//! A user with two browser tabs has two entries under one key, so closing
//! one tab removes only its own entry; the user is gone when its last
//! connection is (the original example keyed connections by userId alone,
//! so a second tab replaced the first and closing either removed both).
//!
//! Invariants:
//! - Registering hands out a [`Registration`] whose `Drop` deregisters, so
//!   every way a connection thread can end (return, error, panic) removes it.
//! - The lock is never held while writing to a socket: publishers clone the
//!   `Arc<Connection>`s they need and drop the lock first.
//! - A poisoned lock (a thread panicked while holding it) is taken over with
//!   `PoisonError::into_inner`: our maps are consistent after every single
//!   insert or remove, so one panicking thread must not stop everyone else.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::history::StoredEvent;
use crate::limits::FAREWELL_TIMEOUT;

/// Why a stream ended. A client leaving is an outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed the connection (FIN).
    Eof,
    /// The client reset the connection (RST).
    Reset,
    /// A write failed for another reason than a timeout.
    WriteError,
    /// A write could not complete within the write timeout.
    Stalled,
    /// The client kept sending bytes after its request.
    ClientData,
    /// Reading the socket failed in an unexpected way.
    ReadError,
    /// The server is shutting down.
    Shutdown,
    /// The connection's thread panicked.
    Panic,
}

impl EndReason {
    /// The word after `reason=` in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Eof => "eof",
            EndReason::Reset => "reset",
            EndReason::WriteError => "write-error",
            EndReason::Stalled => "stalled",
            EndReason::ClientData => "client-data",
            EndReason::ReadError => "read-error",
            EndReason::Shutdown => "shutdown",
            EndReason::Panic => "panic",
        }
    }

    const ALL: [EndReason; 8] = [
        EndReason::Eof,
        EndReason::Reset,
        EndReason::WriteError,
        EndReason::Stalled,
        EndReason::ClientData,
        EndReason::ReadError,
        EndReason::Shutdown,
        EndReason::Panic,
    ];

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<EndReason> {
        EndReason::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }

    /// Classifies a failed write: a timeout means the client is not reading.
    pub fn from_write_error(error: &io::Error) -> EndReason {
        if crate::server::is_timeout(error) {
            EndReason::Stalled
        } else if error.kind() == io::ErrorKind::ConnectionReset {
            EndReason::Reset
        } else {
            EndReason::WriteError
        }
    }
}

/// One open event stream. Shared (`Arc`) between its own thread, which
/// waits on the socket, and any thread that pushes an event to it.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub user_id: String,
    pub peer: SocketAddr,
    pub opened: Instant,
    /// `&TcpStream` implements both `Read` and `Write`, so one socket (one
    /// file descriptor) serves the owner's `peek` and everyone's writes.
    stream: Arc<TcpStream>,
    /// The longest one frame may take to write (`--write-timeout`).
    write_timeout: Duration,
    /// Locked for the length of one frame, so a tick and a pushed event
    /// never interleave their bytes. It guards the id of the newest pushed
    /// event this stream accounts for (`None` until its start is written),
    /// which keeps replay and live delivery from sending an event twice.
    last_pushed: Mutex<Option<u64>>,
    /// Set once, by whoever first sees the end (0 while open).
    end_reason: AtomicU8,
    /// When anything was last written, in ms since `opened` (for heartbeats).
    last_write_ms: AtomicU64,
}

/// What a stream's start needs from history, taken in one short look.
#[derive(Debug, Default)]
pub struct StartSnapshot {
    /// The newest event id the start accounts for: live delivery skips
    /// anything up to it.
    pub last_id: u64,
    /// Events to replay after the head, in order (shared, not copied).
    pub replay: Vec<Arc<StoredEvent>>,
}

impl Connection {
    pub fn new(
        id: u64,
        user_id: String,
        peer: SocketAddr,
        stream: Arc<TcpStream>,
        write_timeout: Duration,
    ) -> Connection {
        Connection {
            id,
            user_id,
            peer,
            opened: Instant::now(),
            stream,
            write_timeout,
            last_pushed: Mutex::new(None),
            end_reason: AtomicU8::new(0),
            last_write_ms: AtomicU64::new(0),
        }
    }

    /// The socket, for the owner's `peek` and reads.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes one frame (a tick, a heartbeat). On failure the connection is
    /// marked ended and shut down, which wakes its owner thread at once.
    pub fn send(&self, frame: &[u8]) -> Result<(), EndReason> {
        let _turn = self.lock_for_writing();
        self.write_frame(frame)
    }

    /// Writes a pushed event unless this stream already got it, or has not
    /// started yet (then the event is in the history snapshot its start
    /// takes). Returns whether it was written.
    pub fn send_pushed(&self, id: u64, frame: &[u8]) -> Result<bool, EndReason> {
        let mut last_pushed = self.lock_for_writing();
        match *last_pushed {
            Some(last) if id > last => {
                self.write_frame(frame)?;
                *last_pushed = Some(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Writes the start of the stream while holding the writer lock: `head`
    /// (headers, comment, `retry:`, and whatever `snapshot` appends to it),
    /// then the replayed events `snapshot` picks from history. A publisher
    /// that finds this connection before it started skips it: its event is
    /// already in history, so in the snapshot.
    pub fn send_start(
        &self,
        head: &mut Vec<u8>,
        snapshot: impl FnOnce(&mut Vec<u8>) -> StartSnapshot,
    ) -> Result<(), EndReason> {
        let mut last_pushed = self.lock_for_writing();
        let snapshot = snapshot(head);
        self.write_frame(head)?;
        for event in &snapshot.replay {
            self.write_frame(&event.frame)?;
        }
        *last_pushed = Some(snapshot.last_id);
        Ok(())
    }

    /// The farewell of a graceful shutdown, then the end. Written only if
    /// the stream has started and nobody else is writing to it, with one
    /// short write: a stalled client is not waited for.
    pub fn send_farewell(&self, frame: &[u8]) {
        if let Ok(last_pushed) = self.last_pushed.try_lock() {
            if last_pushed.is_some() {
                let _ = self.stream.set_write_timeout(Some(FAREWELL_TIMEOUT));
                let _ = (&*self.stream).write(frame);
            }
        }
        self.end(EndReason::Shutdown);
    }

    fn lock_for_writing(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.last_pushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes all of `frame` within the write timeout, counted for the
    /// whole frame. The socket's own timeout (set at accept) bounds each
    /// `write` call; a client that takes a few bytes now and then would
    /// otherwise keep one large frame going for ever.
    fn write_frame(&self, frame: &[u8]) -> Result<(), EndReason> {
        if let Some(reason) = self.end_reason() {
            return Err(reason);
        }
        let deadline = Instant::now() + self.write_timeout;
        let mut rest = frame;
        let mut shortened = false;
        let result = loop {
            match (&*self.stream).write(rest) {
                Ok(written) if written == rest.len() => break Ok(()),
                Ok(0) => break Err(EndReason::WriteError),
                Ok(written) => rest = &rest[written..],
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => break Err(EndReason::from_write_error(&error)),
            }
            // A partial write: what is left must fit in what is left of
            // the deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_write_timeout(Some(left)).is_err() {
                break Err(EndReason::Stalled);
            }
            shortened = true;
        };
        if shortened {
            let _ = self.stream.set_write_timeout(Some(self.write_timeout));
        }
        match result {
            Ok(()) => {
                let elapsed = self.opened.elapsed().as_millis() as u64;
                self.last_write_ms.store(elapsed, Ordering::Relaxed);
                Ok(())
            }
            Err(reason) => {
                self.end(reason);
                Err(reason)
            }
        }
    }

    /// Marks the connection ended (the first reason wins) and shuts the
    /// socket down. Shutting down makes the owner's blocked `peek` return at
    /// once, so it deregisters and logs without waiting for its timeout.
    pub fn end(&self, reason: EndReason) {
        self.note_end(reason);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Records why the stream ended without touching the socket (the owner
    /// thread's own discovery: EOF, reset). The first reason wins.
    pub fn note_end(&self, reason: EndReason) -> EndReason {
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
    pub fn idle_since_last_write(&self) -> std::time::Duration {
        let last = self.last_write_ms.load(Ordering::Relaxed);
        let now = self.opened.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(last))
    }
}

/// All users with at least one open stream.
#[derive(Debug, Default)]
pub struct Registry {
    users: RwLock<HashMap<String, User>>,
    /// `users.len()`, kept beside the map so every tick can read it without
    /// taking the lock.
    user_count: AtomicUsize,
    connection_count: AtomicUsize,
}

#[derive(Debug)]
struct User {
    /// When the user's first open connection arrived, in ms since the epoch.
    since_ms: u128,
    connections: HashMap<u64, Arc<Connection>>,
}

/// A user's line in `GET /users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub user_id: String,
    pub connections: usize,
    pub since_ms: u128,
}

/// Proof of registration; dropping it deregisters the connection.
#[derive(Debug)]
pub struct Registration<'a> {
    registry: &'a Registry,
    pub connection: Arc<Connection>,
    /// Set by [`Registration::finish`], so `Drop` does not deregister twice.
    finished: bool,
}

/// The counts right after a registration or deregistration, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub users: usize,
    pub connections: usize,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Number of distinct users with an open stream (the `users` field).
    pub fn user_count(&self) -> usize {
        self.user_count.load(Ordering::Relaxed)
    }

    /// Number of open streams.
    pub fn connection_count(&self) -> usize {
        self.connection_count.load(Ordering::Relaxed)
    }

    /// Adds a connection unless `max_connections` are already open.
    pub fn register(
        &self,
        connection: Connection,
        max_connections: usize,
    ) -> Option<(Registration<'_>, Counts)> {
        let connection = Arc::new(connection);
        let mut users = self.write();
        if self.connection_count() >= max_connections {
            return None;
        }
        let user = users
            .entry(connection.user_id.clone())
            .or_insert_with(|| User {
                since_ms: now_ms(),
                connections: HashMap::new(),
            });
        user.connections
            .insert(connection.id, Arc::clone(&connection));
        let counts = self.store_counts(users.len(), 1);
        let registration = Registration {
            registry: self,
            connection,
            finished: false,
        };
        Some((registration, counts))
    }

    /// The open streams of one user.
    pub fn connections_of(&self, user_id: &str) -> Vec<Arc<Connection>> {
        self.read()
            .get(user_id)
            .map(|user| user.connections.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every open stream.
    pub fn all_connections(&self) -> Vec<Arc<Connection>> {
        let users = self.read();
        let mut all = Vec::with_capacity(self.connection_count());
        for user in users.values() {
            all.extend(user.connections.values().cloned());
        }
        all
    }

    /// Each user with its number of streams, sorted by userId.
    pub fn summary(&self) -> Vec<UserSummary> {
        let mut list: Vec<UserSummary> = self
            .read()
            .iter()
            .map(|(user_id, user)| UserSummary {
                user_id: user_id.clone(),
                connections: user.connections.len(),
                since_ms: user.since_ms,
            })
            .collect();
        list.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        list
    }

    fn deregister(&self, connection: &Connection) -> Counts {
        let mut users = self.write();
        let mut removed = 0;
        if let Some(user) = users.get_mut(&connection.user_id) {
            removed = usize::from(user.connections.remove(&connection.id).is_some());
            if user.connections.is_empty() {
                users.remove(&connection.user_id);
            }
        }
        let connections = self.connection_count.fetch_sub(removed, Ordering::Relaxed) - removed;
        self.user_count.store(users.len(), Ordering::Relaxed);
        Counts {
            users: users.len(),
            connections,
        }
    }

    fn store_counts(&self, users: usize, added: usize) -> Counts {
        self.user_count.store(users, Ordering::Relaxed);
        let connections = self.connection_count.fetch_add(added, Ordering::Relaxed) + added;
        Counts { users, connections }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, User>> {
        self.users.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, User>> {
        self.users.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Registration<'_> {
    /// Deregisters now and returns the counts after it; `Drop` then only
    /// releases the connection (and with its last `Arc`, the socket). Used on
    /// the normal path so the close can be logged with the new counts.
    pub fn finish(mut self) -> Counts {
        self.finished = true;
        self.registry.deregister(&self.connection)
    }
}

impl Drop for Registration<'_> {
    /// Deregisters on an abnormal exit (a panic); the normal path has called
    /// [`Registration::finish`] already.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let reason = self.connection.note_end(EndReason::Panic);
        let counts = self.registry.deregister(&self.connection);
        crate::stream::log_close(&self.connection, reason, counts);
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |duration| duration.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected socket pair's server half, so a `Connection` has a real
    /// stream (the registry itself never touches it).
    fn socket() -> Arc<TcpStream> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("test setup");
        let _client =
            TcpStream::connect(listener.local_addr().expect("test setup")).expect("test setup");
        Arc::new(listener.accept().expect("test setup").0)
    }

    fn connection(id: u64, user_id: &str) -> Connection {
        let peer = "127.0.0.1:1".parse().expect("test setup");
        Connection::new(
            id,
            user_id.to_string(),
            peer,
            socket(),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn second_tab_of_a_user_counts_once_and_survives_the_first_closing() {
        let registry = Registry::new();
        let (first, counts) = registry
            .register(connection(1, "alice"), 10)
            .expect("test setup");
        assert_eq!(
            counts,
            Counts {
                users: 1,
                connections: 1
            }
        );
        let (second, counts) = registry
            .register(connection(2, "alice"), 10)
            .expect("test setup");
        assert_eq!(
            counts,
            Counts {
                users: 1,
                connections: 2
            }
        );
        assert_eq!(
            first.finish(),
            Counts {
                users: 1,
                connections: 1
            }
        );
        assert_eq!(registry.connections_of("alice").len(), 1);
        assert_eq!(
            second.finish(),
            Counts {
                users: 0,
                connections: 0
            }
        );
        assert_eq!(registry.user_count(), 0);
    }

    #[test]
    fn finishing_releases_the_connection() {
        let registry = Registry::new();
        let (registration, _) = registry
            .register(connection(1, "a"), 10)
            .expect("test setup");
        let weak = Arc::downgrade(&registration.connection);
        registration.finish();
        assert!(
            weak.upgrade().is_none(),
            "the Arc<Connection> (and its socket) must be freed"
        );
    }

    #[test]
    fn users_are_counted_by_distinct_id() {
        let registry = Registry::new();
        let (_a, _) = registry
            .register(connection(1, "a"), 10)
            .expect("test setup");
        let (_b, counts) = registry
            .register(connection(2, "b"), 10)
            .expect("test setup");
        assert_eq!(counts.users, 2);
        assert_eq!(registry.all_connections().len(), 2);
        let names: Vec<String> = registry.summary().into_iter().map(|u| u.user_id).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn registration_stops_at_the_limit() {
        let registry = Registry::new();
        let (_a, _) = registry
            .register(connection(1, "a"), 1)
            .expect("test setup");
        assert!(registry.register(connection(2, "b"), 1).is_none());
        assert_eq!(registry.connection_count(), 1);
    }

    #[test]
    fn a_panicking_thread_deregisters_and_leaves_the_registry_usable() {
        let registry = Arc::new(Registry::new());
        let shared = Arc::clone(&registry);
        let result = std::thread::spawn(move || {
            let (_registration, _) = shared.register(connection(1, "a"), 10).expect("test setup");
            let _users = shared.write(); // poison the lock while holding it
            panic!("boom");
        })
        .join();
        assert!(result.is_err());
        assert_eq!(registry.user_count(), 0);
        let (_b, counts) = registry
            .register(connection(2, "b"), 10)
            .expect("test setup");
        assert_eq!(counts.users, 1);
    }

    #[test]
    fn end_reason_is_set_once() {
        let connection = connection(1, "a");
        assert_eq!(connection.end_reason(), None);
        assert_eq!(connection.note_end(EndReason::Eof), EndReason::Eof);
        connection.end(EndReason::Stalled);
        assert_eq!(connection.end_reason(), Some(EndReason::Eof));
    }

    #[test]
    fn pushed_events_are_not_sent_twice() {
        let connection = connection(1, "a");
        assert_eq!(
            connection.send_pushed(4, b"x"),
            Ok(false),
            "not started yet"
        );
        let snapshot = || StartSnapshot {
            last_id: 5,
            replay: Vec::new(),
        };
        connection
            .send_start(&mut Vec::new(), |_| snapshot())
            .expect("test setup");
        assert_eq!(connection.send_pushed(5, b"x"), Ok(false));
        assert_eq!(connection.send_pushed(6, b"y"), Ok(true));
    }
}
