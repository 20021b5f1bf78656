//! Event ids and the ring buffer of recent pushed events, for
//! `Last-Event-ID` replay.
//!
//! Spec: WHATWG HTML §9.2.4 (the last event ID and reconnection), §9.2.6
//! (the `id` field), <https://html.spec.whatwg.org/multipage/server-sent-events.html>.
//!
//! Every pushed event gets the next id of one server-wide counter, starting
//! at 1, and is kept, already encoded, until `capacity` newer events push it
//! out. A browser that reconnects sends the id of the last event it got; the
//! new stream first replays every retained event after it that was meant for
//! that user. Pure: no sockets, no locks (the caller holds one).
//!
//! Simplification: history lives in memory, so a restart forgets it and
//! starts ids at 1 again. A `Last-Event-ID` above the newest id we issued
//! comes from an earlier run and is answered with no replay. A production
//! hub would persist events or start ids from a time-based base.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::limits::MAX_HISTORY_BYTES;
use crate::sse;

/// Who a pushed event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(String),
    All,
}

impl Target {
    pub fn includes(&self, user_id: &str) -> bool {
        match self {
            Target::All => true,
            Target::User(target) => target == user_id,
        }
    }
}

/// A pushed event, encoded once and shared by every stream that gets it.
#[derive(Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: u64,
    pub target: Target,
    /// The complete wire form: `id:`, `event:`, `data:` lines, empty line.
    pub frame: Vec<u8>,
}

/// What a reconnecting stream must be sent before going live.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// `Some((from, to))` when events `from..=to` were evicted before this
    /// client could get them (whether they were meant for it is no longer
    /// known).
    pub gap: Option<(u64, u64)>,
    /// The retained events after the client's last id meant for it, in order.
    pub events: Vec<Arc<StoredEvent>>,
}

/// The id counter and the ring of the last `capacity` events, at most
/// `max_bytes` of them.
#[derive(Debug)]
pub struct History {
    events: VecDeque<Arc<StoredEvent>>,
    capacity: usize,
    max_bytes: usize,
    /// Sum of the retained frames' lengths.
    bytes: usize,
    last_id: u64,
}

impl History {
    /// A history of `capacity` events and at most [`MAX_HISTORY_BYTES`].
    pub fn new(capacity: usize) -> History {
        History::with_limits(capacity, MAX_HISTORY_BYTES)
    }

    pub fn with_limits(capacity: usize, max_bytes: usize) -> History {
        History {
            events: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            max_bytes,
            bytes: 0,
            last_id: 0,
        }
    }

    /// The newest id issued so far (0 before the first event).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Gives the event the next id, encodes it, keeps it (evicting the
    /// oldest if full) and returns it.
    pub fn push(&mut self, target: Target, event: Option<&str>, data: &str) -> Arc<StoredEvent> {
        self.last_id += 1;
        let mut frame = Vec::with_capacity(data.len() + 32);
        sse::write_event(&mut frame, self.last_id, event, data);
        let stored = Arc::new(StoredEvent {
            id: self.last_id,
            target,
            frame,
        });
        self.bytes += stored.frame.len();
        self.events.push_back(Arc::clone(&stored));
        while self.events.len() > self.capacity || self.bytes > self.max_bytes {
            match self.events.pop_front() {
                Some(evicted) => self.bytes -= evicted.frame.len(),
                None => break,
            }
        }
        stored
    }

    /// What a stream for `user_id` that last saw `after_id` must be sent.
    pub fn replay(&self, user_id: &str, after_id: u64) -> Replay {
        if after_id >= self.last_id {
            return Replay::default();
        }
        let first_retained = self
            .events
            .front()
            .map_or(self.last_id + 1, |event| event.id);
        let gap = (after_id + 1 < first_retained).then(|| (after_id + 1, first_retained - 1));
        let events = self
            .events
            .iter()
            .filter(|event| event.id > after_id && event.target.includes(user_id))
            .cloned()
            .collect();
        Replay { gap, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Target {
        Target::User(name.to_string())
    }

    /// A history holding `targets` in order, ids 1, 2, 3, …
    fn history(capacity: usize, targets: &[Target]) -> History {
        let mut history = History::new(capacity);
        for target in targets {
            history.push(target.clone(), None, "x");
        }
        history
    }

    #[track_caller]
    fn check(
        history: &History,
        user_id: &str,
        after_id: u64,
        gap: Option<(u64, u64)>,
        ids: &[u64],
    ) {
        let replay = history.replay(user_id, after_id);
        let replayed: Vec<u64> = replay.events.iter().map(|event| event.id).collect();
        assert_eq!((replay.gap, replayed.as_slice()), (gap, ids));
    }

    #[test]
    fn ids_count_up_from_one() {
        let mut history = History::new(10);
        assert_eq!(history.last_id(), 0);
        assert_eq!(history.push(Target::All, None, "a").id, 1);
        assert_eq!(history.push(Target::All, None, "b").id, 2);
        assert_eq!(history.last_id(), 2);
    }

    #[test]
    fn stored_frame_is_the_encoded_event() {
        let mut history = History::new(10);
        let event = history.push(Target::All, Some("chat"), "hi");
        assert_eq!(event.frame, b"id: 1\nevent: chat\ndata: hi\n\n");
    }

    #[test]
    fn replay_has_own_events_and_broadcasts_in_order() {
        let history = history(10, &[user("a"), user("b"), Target::All, user("a")]);
        check(&history, "a", 0, None, &[1, 3, 4]);
        check(&history, "a", 1, None, &[3, 4]);
        check(&history, "b", 0, None, &[2, 3]);
        check(&history, "c", 0, None, &[3]);
    }

    #[test]
    fn nothing_to_replay_when_up_to_date() {
        let history = history(10, &[Target::All, Target::All]);
        check(&history, "a", 2, None, &[]);
    }

    #[test]
    fn ids_from_an_earlier_run_replay_nothing() {
        let history = history(10, &[Target::All]);
        check(&history, "a", 500, None, &[]);
    }

    #[test]
    fn evicted_events_are_reported_as_a_gap() {
        let history = history(2, &[Target::All, Target::All, Target::All, Target::All]);
        check(&history, "a", 0, Some((1, 2)), &[3, 4]);
        check(&history, "a", 1, Some((2, 2)), &[3, 4]);
        check(&history, "a", 2, None, &[3, 4]);
    }

    #[test]
    fn the_byte_limit_evicts_too() {
        // Each frame `id: N\ndata: x\n\n` is 16 bytes: room for two.
        let mut history = History::with_limits(10, 40);
        for _ in 0..4 {
            history.push(Target::All, None, "x");
        }
        check(&history, "a", 0, Some((1, 2)), &[3, 4]);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let history = history(0, &[Target::All, Target::All]);
        check(&history, "a", 0, Some((1, 2)), &[]);
    }
}
