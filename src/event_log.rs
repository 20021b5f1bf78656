//! The event log seam: the one interface through which `publish.rs`
//! appends events and `stream.rs` replays them, with two implementations.
//!
//! ```text
//!                  ┌─ InProcess(History)   default: ids, history and replay in this process
//! EventLog ────────┤
//!  (Shared's lock) └─ External { log, delivered }
//!                        log: dyn ExternalLog   cluster mode: Redis keeps the log (cluster.rs)
//!                        delivered: EventId     the newest event handed to local streams
//! ```
//!
//! With the in-process log, a publisher gives the event its id and queues it
//! on local streams in one hold of the lock, as before. With an external
//! log, a publisher only appends ([`ExternalLog::append`]); the log's own
//! reader hands every event, from every instance, back to the local
//! streams through `publish::deliver`, which moves `delivered` on under the
//! same lock. A stream registering under the lock therefore knows exactly
//! which events it will get live (those after [`EventLog::newest`]) and
//! replays the rest, so the ordering argument of `state.rs` holds in both
//! modes.
//!
//! The core never imports the Redis code: cluster mode plugs in through the
//! [`ExternalLog`] trait, and only `main` chooses which log runs.

use std::fmt;
use std::sync::Arc;

use crate::event::{EventId, LastSeen, Target};
use crate::history::{History, Replay};

/// A log kept outside this process (cluster mode). Every method may take a
/// network round trip: none is called with the event log's lock held.
pub trait ExternalLog: Send + Sync + fmt::Debug {
    /// Appends one event; `Ok` with its id only once the log has stored it.
    fn append(
        &self,
        target: &Target,
        event: Option<&str>,
        data: &str,
    ) -> Result<EventId, Unavailable>;

    /// What a stream for `user_id` whose client last saw `last_seen` must
    /// be sent, up to and including `newest` (later events come live).
    fn replay(&self, user_id: &str, last_seen: LastSeen, newest: EventId) -> Replay;

    /// Users with a stream on any instance, as last counted; `None` before
    /// the first count.
    fn user_count(&self) -> Option<usize>;

    /// Local users came or went: the count may be refreshed early. Must
    /// not block.
    fn users_changed(&self);
}

/// Occurs when the external log cannot take an event right now: the
/// publisher gets `503` with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// For the log line (never shown to the client; no secrets in it).
    pub reason: String,
}

/// The event log behind `Shared::lock_events`.
#[derive(Debug)]
pub enum EventLog {
    InProcess(History),
    External {
        log: Arc<dyn ExternalLog>,
        /// The newest event handed to local streams.
        delivered: EventId,
    },
}

/// A replay taken under the lock: complete, or to be fetched from the
/// external log after the lock is released.
pub enum PendingReplay {
    Ready(Replay),
    Fetch {
        log: Arc<dyn ExternalLog>,
        last_seen: LastSeen,
    },
}

impl EventLog {
    /// The newest event local streams have been given: a stream that
    /// registers now gets every later one live.
    pub fn newest(&self) -> EventId {
        match self {
            EventLog::InProcess(history) => history.last_id(),
            EventLog::External { delivered, .. } => *delivered,
        }
    }

    /// The external log, if that is what runs.
    pub fn external(&self) -> Option<&Arc<dyn ExternalLog>> {
        match self {
            EventLog::InProcess(_) => None,
            EventLog::External { log, .. } => Some(log),
        }
    }

    /// Records that `id` was handed to local streams (external log only).
    pub fn note_delivered(&mut self, id: EventId) {
        if let EventLog::External { delivered, .. } = self {
            *delivered = (*delivered).max(id);
        }
    }

    /// Starts the replay for a stream registering now: the in-process
    /// history answers at once; an external log is asked after the lock is
    /// released ([`PendingReplay::finish`]).
    pub fn begin_replay(&self, user_id: &str, last_seen: Option<LastSeen>) -> PendingReplay {
        let Some(last_seen) = last_seen else {
            return PendingReplay::Ready(Replay::default());
        };
        match self {
            EventLog::InProcess(history) => {
                PendingReplay::Ready(history.replay(user_id, last_seen))
            }
            EventLog::External { log, .. } => PendingReplay::Fetch {
                log: Arc::clone(log),
                last_seen,
            },
        }
    }
}

impl PendingReplay {
    /// The replay, fetched if need be, up to `newest`. Call without locks.
    pub fn finish(self, user_id: &str, newest: EventId) -> Replay {
        match self {
            PendingReplay::Ready(replay) => replay,
            PendingReplay::Fetch { log, last_seen } => log.replay(user_id, last_seen, newest),
        }
    }
}
