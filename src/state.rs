//! The state every connection thread shares, and the overload policy.
//!
//! ```text
//! Shared ── config, max_clients, started
//!        ├─ events:   Mutex<EventLog>  the event log (event_log.rs), and the order of events
//!        ├─ registry: Registry         who is connected (registry.rs)
//!        ├─ metrics:  Arc<Metrics>     counters for GET /metrics (metrics.rs)
//!        └─ live:     Mutex<HashMap>   every connection thread alive, by id
//! ```
//!
//! The event log's lock is also what puts events in order: a publisher
//! holds it while it gives an event its id and queues it on every target
//! stream, and a new stream holds it while it registers and takes its
//! replay. So every stream sees every event exactly once (by replay or
//! live) and in id order, and nobody holds it while writing to a socket.
//! In cluster mode the log's reader thread takes the publisher's place
//! (`publish::deliver`), and `delivered` wakes streams waiting for it.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::config::Config;
use crate::event::{EventId, LastSeen};
use crate::event_log::{EventLog, ExternalLog};
use crate::history::History;
use crate::limits::{CATCH_UP_WAIT, OVERLOAD_HEADROOM, PLAIN_REQUEST_HEADROOM};
use crate::metrics::Metrics;
use crate::registry::{now_ms, Registry};

/// State shared by every connection thread.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    /// Most concurrent streams (from `--max-clients` or the open-file limit).
    pub max_clients: usize,
    pub registry: Registry,
    /// Counters for `GET /metrics`; the registry and every connection hold
    /// it too, so each can count without reaching for `Shared`.
    pub metrics: Arc<Metrics>,
    events: Mutex<EventLog>,
    /// Notified when an external log's reader delivered events.
    delivered: Condvar,
    /// The external log, also reachable without the lock (for the users
    /// count on every tick); `None` in process.
    external: Option<Arc<dyn ExternalLog>>,
    /// When the server started; each stream's ticks fall at its own phase
    /// plus multiples of the interval since then (see `schedule.rs`).
    pub started: Instant,
    shutting_down: AtomicBool,
    /// Every connection whose thread is alive, by connection id: the
    /// thread count for the limits, and the sockets a shutdown must close.
    live: Mutex<HashMap<u64, Arc<TcpStream>>>,
    next_connection_id: AtomicU64,
}

/// What the overload policy lets a new connection do, by how many
/// connection threads are alive. Streams count against `--max-clients`
/// when they register (`Registry::register`); the thread counts below add
/// the headroom on top, so an overloaded server still answers properly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A thread reads the request and serves it.
    Serve,
    /// A thread reads the request; a plain request gets `503`, a stream
    /// request `200`, `retry:` and a close (streams are full by then).
    StreamsOnly,
    /// No thread: the accept loop itself answers `503` without reading.
    Refuse,
}

impl Shared {
    /// Shared state with the in-process event log (the default).
    pub fn new(config: Config, max_clients: usize) -> Shared {
        let history = History::new(config.history, now_ms());
        Shared::with_log(config, max_clients, EventLog::InProcess(history))
    }

    /// Shared state with an external event log (cluster mode) whose newest
    /// event, when we start reading it, is `start`.
    pub fn with_external_log(
        config: Config,
        max_clients: usize,
        log: Arc<dyn ExternalLog>,
        start: EventId,
    ) -> Shared {
        let events = EventLog::External {
            log,
            delivered: start,
        };
        Shared::with_log(config, max_clients, events)
    }

    fn with_log(config: Config, max_clients: usize, events: EventLog) -> Shared {
        let metrics = Arc::new(Metrics::new());
        Shared {
            external: events.external().cloned(),
            events: Mutex::new(events),
            delivered: Condvar::new(),
            config,
            max_clients,
            registry: Registry::with_metrics(Arc::clone(&metrics)),
            metrics,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            next_connection_id: AtomicU64::new(1),
        }
    }

    /// The event log; holding it also holds the order of events (see the
    /// module doc). Never write to a socket while holding it.
    pub fn lock_events(&self) -> MutexGuard<'_, EventLog> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Like [`Shared::lock_events`], for a stream that resumes after
    /// `last_seen`. In cluster mode a client may come from an instance
    /// whose reader is ahead of ours; it waits (at most [`CATCH_UP_WAIT`],
    /// the lock released meanwhile) until ours delivered its id too, so it
    /// gets no event twice.
    pub fn lock_events_caught_up(&self, last_seen: Option<LastSeen>) -> MutexGuard<'_, EventLog> {
        let mut events = self.lock_events();
        let (Some(LastSeen::Id(id)), Some(_)) = (last_seen, &self.external) else {
            return events;
        };
        let deadline = Instant::now() + CATCH_UP_WAIT;
        while events.newest() < id {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            events = self
                .delivered
                .wait_timeout(events, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        events
    }

    /// Wakes streams waiting in [`Shared::lock_events_caught_up`].
    pub fn notify_delivered(&self) {
        self.delivered.notify_all();
    }

    /// The external log (cluster mode), if one runs.
    pub fn external_log(&self) -> Option<&Arc<dyn ExternalLog>> {
        self.external.as_ref()
    }

    /// The `users` of every frame and of `GET /users`: in process, this
    /// instance's users; in cluster mode, the cluster-wide count as last
    /// counted, and never less than our own.
    pub fn user_count(&self) -> usize {
        let local = self.registry.user_count();
        match self.external.as_ref().and_then(|log| log.user_count()) {
            Some(cluster) => cluster.max(local),
            None => local,
        }
    }

    /// Local users came or went (cluster mode refreshes its count soon).
    pub fn users_changed(&self) {
        if let Some(log) = &self.external {
            log.users_changed();
        }
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Number of connection threads alive right now.
    pub fn live_connections(&self) -> usize {
        self.lock_live().len()
    }

    /// The policy for `live` threads alive. Sums saturate, so a huge
    /// `--max-clients` cannot wrap around.
    pub fn admission(&self, live: usize) -> Admission {
        if live >= self.max_clients.saturating_add(OVERLOAD_HEADROOM) {
            Admission::Refuse
        } else if live > self.max_clients.saturating_add(PLAIN_REQUEST_HEADROOM) {
            Admission::StreamsOnly
        } else {
            Admission::Serve
        }
    }

    /// Records a new connection thread, unless the policy refuses it.
    pub fn admit(&self, id: u64, stream: &Arc<TcpStream>) -> bool {
        let mut live = self.lock_live();
        if self.admission(live.len()) == Admission::Refuse {
            return false;
        }
        live.insert(id, Arc::clone(stream));
        true
    }

    /// Forgets a connection thread (it ended, or could not start).
    pub fn release(&self, id: u64) {
        self.lock_live().remove(&id);
    }

    /// The sockets of every connection thread alive, for a shutdown.
    pub fn live_sockets(&self) -> Vec<Arc<TcpStream>> {
        self.lock_live().values().cloned().collect()
    }

    fn lock_live(&self) -> MutexGuard<'_, HashMap<u64, Arc<TcpStream>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(max_clients: usize, live: usize, expected: Admission) {
        let shared = Shared::new(Config::default(), max_clients);
        assert_eq!(
            shared.admission(live),
            expected,
            "max {max_clients}, live {live}"
        );
    }

    #[test]
    fn overload_policy() {
        check(100, 0, Admission::Serve);
        check(100, 132, Admission::Serve);
        check(100, 133, Admission::StreamsOnly);
        check(100, 163, Admission::StreamsOnly);
        check(100, 164, Admission::Refuse);
        check(usize::MAX, usize::MAX - 1, Admission::Serve);
        check(usize::MAX - 10, 63, Admission::Serve);
    }
}
