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
//! - Registering hands out a [`Registration`]. The normal path ends it with
//!   [`Registration::close`], which deregisters and logs the `close` line
//!   with the new counts; its `Drop` covers the rest (a panic unwinding
//!   through the thread), so no way of ending leaves a stale entry.
//! - The lock is never held while writing to a socket: publishers clone the
//!   `Arc<Connection>`s they need and drop the lock first.
//! - A poisoned lock (a thread panicked while holding it) is taken over with
//!   `PoisonError::into_inner`: our maps are consistent after every single
//!   insert or remove, so one panicking thread must not stop everyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::connection::{Connection, EndReason};
use crate::json;
use crate::log;
use crate::metrics::Metrics;

/// All users with at least one open stream.
#[derive(Debug, Default)]
pub struct Registry {
    users: RwLock<HashMap<String, User>>,
    /// `users.len()`, kept beside the map so every tick can read it without
    /// taking the lock.
    user_count: AtomicUsize,
    connection_count: AtomicUsize,
    /// Where each close is counted, by reason.
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct User {
    /// When the user's first open connection arrived, in ms since the epoch.
    since_ms: u64,
    connections: HashMap<u64, Arc<Connection>>,
}

/// A user's line in `GET /users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub user_id: String,
    pub connections: usize,
    pub since_ms: u64,
}

/// Proof of registration; dropping it deregisters the connection.
#[derive(Debug)]
pub struct Registration<'a> {
    registry: &'a Registry,
    connection: Arc<Connection>,
    /// Set by [`Registration::close`], so `Drop` does not deregister twice.
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

    /// A registry that counts every close in `metrics`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Registry {
        Registry {
            metrics,
            ..Registry::default()
        }
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
        connection: Arc<Connection>,
        max_connections: usize,
    ) -> Option<(Registration<'_>, Counts)> {
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

    /// The number of open streams of one user.
    pub fn connection_count_of(&self, user_id: &str) -> usize {
        self.read()
            .get(user_id)
            .map_or(0, |user| user.connections.len())
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
    /// Deregisters and logs the close with the counts after it; `Drop`
    /// then only releases the connection (and with its last `Arc`, the
    /// socket).
    pub fn close(mut self, reason: EndReason) {
        self.end(reason);
    }

    /// Deregisters, counts and logs the close, once.
    fn end(&mut self, reason: EndReason) {
        self.finished = true;
        let counts = self.registry.deregister(&self.connection);
        self.registry.metrics.count_close(reason);
        log_close(&self.connection, reason, counts);
    }
}

impl Drop for Registration<'_> {
    /// Deregisters on an abnormal exit (a panic); the normal path has called
    /// [`Registration::close`] already.
    fn drop(&mut self) {
        if !self.finished {
            let reason = self.connection.record_end(EndReason::Panic);
            self.end(reason);
        }
    }
}

/// Logs the end of a stream: `close user="alice" conn=7 users=1 conns=2
/// reason=eof lived=12.4s peer=127.0.0.1:53412`.
fn log_close(connection: &Connection, reason: EndReason, counts: Counts) {
    log!(
        "close user={} conn={} users={} conns={} reason={} lived={:.1}s peer={}",
        json::Quoted(&connection.user_id),
        connection.id,
        counts.users,
        counts.connections,
        reason.as_str(),
        connection.opened.elapsed().as_secs_f64(),
        connection.peer
    );
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |duration| {
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A connected socket pair's server half, so a `Connection` has a real
    /// stream (the registry itself never touches it).
    fn socket() -> Arc<TcpStream> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("test setup");
        let _client =
            TcpStream::connect(listener.local_addr().expect("test setup")).expect("test setup");
        Arc::new(listener.accept().expect("test setup").0)
    }

    fn connection(id: u64, user_id: &str) -> Arc<Connection> {
        let peer = "127.0.0.1:1".parse().expect("test setup");
        Arc::new(Connection::new(
            id,
            user_id.to_string(),
            peer,
            socket(),
            Arc::new(Metrics::new()),
        ))
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
        first.close(EndReason::Eof);
        assert_eq!(registry.connections_of("alice").len(), 1);
        assert_eq!(registry.connection_count(), 1);
        second.close(EndReason::Eof);
        assert_eq!(registry.connection_count(), 0);
        assert_eq!(registry.user_count(), 0);
    }

    #[test]
    fn finishing_releases_the_connection() {
        let registry = Registry::new();
        let (registration, _) = registry
            .register(connection(1, "a"), 10)
            .expect("test setup");
        let weak = Arc::downgrade(&registration.connection);
        registration.close(EndReason::Eof);
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
}
