//! The in-process event log: the ring buffer of recent pushed events, for
//! `Last-Event-ID` replay.
//!
//! Spec: WHATWG HTML §9.2.4 (the last event ID and reconnection), §9.2.6
//! (the `id` field), <https://html.spec.whatwg.org/multipage/server-sent-events.html>.
//!
//! Every pushed event gets the next id (`ms-seq`, see `event.rs`) and is
//! kept, already encoded, until `capacity` newer events or the byte cap push
//! it out. A browser that reconnects sends the id of the last event it got;
//! the new stream first replays every retained event after it that was
//! meant for that user. Pure: no sockets, no locks (the caller holds one).
//!
//! What a client's id tells us:
//! - an id of this run that we still hold everything after: replay, no gap;
//! - an id of this run older than events we evicted: a `gap`, then replay;
//! - an id from before this run started (ids are wall-clock based, so those
//!   are smaller than our `floor`), one from the future (a clock that went
//!   back across a restart), or one we cannot read: a `gap`, then all we hold.
//!
//! Simplification: history lives in memory, so a restart forgets it (cluster
//! mode keeps it in Redis instead).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::{EventId, IdGenerator, LastSeen, StoredEvent, Target};
use crate::limits::MAX_HISTORY_BYTES;

/// What a reconnecting stream must be sent before going live.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// `Some(gap)` when events the client may not have seen are no longer
    /// held (whether they were meant for it is no longer known).
    pub gap: Option<Gap>,
    /// The retained events after the client's last id meant for it, in order.
    pub events: Vec<Arc<StoredEvent>>,
}

/// Events after `after` (`None`: an id we could not read) up to and
/// including `to` may have been lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub after: Option<EventId>,
    pub to: EventId,
}

/// Events oldest first: the last `capacity` kept, holding at most
/// `max_bytes` (counted with `StoredEvent::footprint`). What falls out is
/// remembered, so a replay can report it as a gap. History keeps one; a
/// cluster replay collects into one too, to stay within the same bytes.
#[derive(Debug)]
pub struct EventRing {
    events: VecDeque<Arc<StoredEvent>>,
    capacity: usize,
    max_bytes: usize,
    /// Sum of the retained events' footprints.
    bytes: usize,
    /// The newest id evicted so far.
    evicted_up_to: Option<EventId>,
}

impl EventRing {
    pub fn new(capacity: usize, max_bytes: usize) -> EventRing {
        EventRing {
            events: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            max_bytes,
            bytes: 0,
            evicted_up_to: None,
        }
    }

    /// Keeps an event, evicting the oldest while over either limit.
    pub fn keep(&mut self, stored: Arc<StoredEvent>) {
        self.bytes += stored.footprint();
        self.events.push_back(stored);
        while self.events.len() > self.capacity || self.bytes > self.max_bytes {
            let Some(evicted) = self.events.pop_front() else {
                break;
            };
            self.bytes -= evicted.footprint();
            self.evicted_up_to = Some(evicted.id);
        }
    }

    /// The newest id evicted so far.
    pub fn evicted_up_to(&self) -> Option<EventId> {
        self.evicted_up_to
    }

    /// The events kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<StoredEvent>> {
        self.events.iter()
    }

    /// The events kept, oldest first.
    pub fn into_vec(self) -> Vec<Arc<StoredEvent>> {
        self.events.into()
    }
}

/// The in-process event log: the id counter and the ring of recent events.
#[derive(Debug)]
pub struct History {
    ring: EventRing,
    ids: IdGenerator,
    /// `start_ms-0`: every id of this run is above it, every id of an
    /// earlier run below it.
    floor: EventId,
}

impl History {
    /// A history of `capacity` events and at most [`MAX_HISTORY_BYTES`],
    /// for a run that started at `start_ms`.
    pub fn new(capacity: usize, start_ms: u64) -> History {
        History::with_limits(capacity, MAX_HISTORY_BYTES, start_ms)
    }

    pub fn with_limits(capacity: usize, max_bytes: usize, start_ms: u64) -> History {
        let floor = EventId::new(start_ms, 0);
        History {
            ring: EventRing::new(capacity, max_bytes),
            ids: IdGenerator::starting_at(floor),
            floor,
        }
    }

    /// The newest id issued so far, or the floor before the first event.
    pub fn last_id(&self) -> EventId {
        self.ids.last()
    }

    /// Gives the event the next id (from the clock `now_ms`), encodes it,
    /// keeps it and returns it.
    pub fn push(
        &mut self,
        target: Target,
        event: Option<&str>,
        data: &str,
        now_ms: u64,
    ) -> Arc<StoredEvent> {
        let id = self.ids.next(now_ms);
        let stored = Arc::new(StoredEvent::new(id, target, event, data));
        self.ring.keep(Arc::clone(&stored));
        stored
    }

    /// What a stream for `user_id` whose client last saw `last_seen` must
    /// be sent.
    pub fn replay(&self, user_id: &str, last_seen: LastSeen) -> Replay {
        let newest = self.last_id();
        let after = match last_seen {
            LastSeen::Id(id) if id == newest => return Replay::default(),
            LastSeen::Id(id) if self.floor <= id && id < newest => id,
            // From an earlier run, from the future, or not ours at all:
            // anything may be missing up to what we hold.
            _ => {
                let to = self.ring.evicted_up_to().unwrap_or(self.floor);
                let after = match last_seen {
                    LastSeen::Id(id) => Some(id),
                    LastSeen::Unreadable => None,
                };
                return Replay {
                    gap: Some(Gap { after, to }),
                    events: self.retained_after(user_id, to),
                };
            }
        };
        let gap = self
            .ring
            .evicted_up_to()
            .filter(|&evicted| evicted > after)
            .map(|to| Gap {
                after: Some(after),
                to,
            });
        Replay {
            gap,
            events: self.retained_after(user_id, after),
        }
    }

    /// The retained events after `after` meant for `user_id`, in order.
    fn retained_after(&self, user_id: &str, after: EventId) -> Vec<Arc<StoredEvent>> {
        self.ring
            .iter()
            .filter(|event| event.id > after && event.target.includes(user_id))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run starts at ms 1000; events are pushed at ms 2000, 2001, …
    const START_MS: u64 = 1000;

    fn id(ms: u64) -> EventId {
        EventId::new(ms, 0)
    }

    /// A history holding `targets` in order, ids 2000-0, 2001-0, …
    fn history(capacity: usize, targets: &[Target]) -> History {
        let mut history = History::new(capacity, START_MS);
        for (index, target) in targets.iter().enumerate() {
            history.push(target.clone(), None, "x", 2000 + index as u64);
        }
        history
    }

    #[track_caller]
    fn check(
        history: &History,
        user_id: &str,
        last_seen: LastSeen,
        expected_gap: Option<(Option<u64>, u64)>,
        expected_ids: &[u64],
    ) {
        let replay = history.replay(user_id, last_seen);
        let ids: Vec<u64> = replay.events.iter().map(|event| event.id.ms).collect();
        let gap = replay
            .gap
            .map(|gap| (gap.after.map(|after| after.ms), gap.to.ms));
        assert_eq!((gap, ids.as_slice()), (expected_gap, expected_ids));
    }

    #[test]
    fn ids_start_above_the_floor_and_increase() {
        let mut history = History::new(10, START_MS);
        assert_eq!(history.last_id(), id(START_MS));
        assert_eq!(
            history.push(Target::All, None, "a", 1000).id,
            EventId::new(1000, 1)
        );
        assert_eq!(
            history.push(Target::All, None, "b", 1000).id,
            EventId::new(1000, 2)
        );
        assert_eq!(history.push(Target::All, None, "c", 1500).id, id(1500));
        assert_eq!(history.last_id(), id(1500));
    }

    #[test]
    fn stored_frame_is_the_encoded_event() {
        let mut history = History::new(10, START_MS);
        let event = history.push(Target::All, Some("chat"), "hi", 1234);
        assert_eq!(event.frame, b"id: 1234-0\nevent: chat\ndata: hi\n\n");
    }

    #[test]
    fn replay_has_own_events_and_broadcasts_in_order() {
        let history = history(
            10,
            &[
                Target::user("a"),
                Target::user("b"),
                Target::All,
                Target::user("a"),
            ],
        );
        check(
            &history,
            "a",
            LastSeen::Id(id(START_MS)),
            None,
            &[2000, 2002, 2003],
        );
        check(&history, "a", LastSeen::Id(id(2000)), None, &[2002, 2003]);
        check(
            &history,
            "b",
            LastSeen::Id(id(START_MS)),
            None,
            &[2001, 2002],
        );
        check(&history, "c", LastSeen::Id(id(START_MS)), None, &[2002]);
    }

    #[test]
    fn nothing_to_replay_when_up_to_date() {
        let history = history(10, &[Target::All, Target::All]);
        check(&history, "a", LastSeen::Id(id(2001)), None, &[]);
    }

    #[test]
    fn a_fresh_run_owes_nothing_to_a_client_at_its_floor() {
        let history = History::new(10, START_MS);
        check(&history, "a", LastSeen::Id(id(START_MS)), None, &[]);
    }

    #[test]
    fn ids_from_an_earlier_run_get_a_gap_and_everything_held() {
        let history = history(10, &[Target::All, Target::user("b")]);
        check(
            &history,
            "a",
            LastSeen::Id(id(500)),
            Some((Some(500), START_MS)),
            &[2000],
        );
        check(
            &history,
            "b",
            LastSeen::Id(EventId::new(999, 7)),
            Some((Some(999), START_MS)),
            &[2000, 2001],
        );
    }

    #[test]
    fn ids_from_the_future_and_unreadable_ids_get_a_gap_too() {
        let history = history(10, &[Target::All]);
        check(
            &history,
            "a",
            LastSeen::Id(id(9999)),
            Some((Some(9999), START_MS)),
            &[2000],
        );
        check(
            &history,
            "a",
            LastSeen::Unreadable,
            Some((None, START_MS)),
            &[2000],
        );
    }

    #[test]
    fn evicted_events_are_reported_as_a_gap() {
        let history = history(2, &[Target::All, Target::All, Target::All, Target::All]);
        check(
            &history,
            "a",
            LastSeen::Id(id(START_MS)),
            Some((Some(START_MS), 2001)),
            &[2002, 2003],
        );
        check(
            &history,
            "a",
            LastSeen::Id(id(2000)),
            Some((Some(2000), 2001)),
            &[2002, 2003],
        );
        check(&history, "a", LastSeen::Id(id(2001)), None, &[2002, 2003]);
        check(
            &history,
            "a",
            LastSeen::Id(id(7)),
            Some((Some(7), 2001)),
            &[2002, 2003],
        );
    }

    #[test]
    fn the_byte_limit_evicts_too() {
        // Each event's footprint is its 18-byte frame plus the overhead:
        // room for two.
        let one = StoredEvent::new(id(2000), Target::All, None, "x").footprint();
        let mut history = History::with_limits(10, 2 * one + 1, START_MS);
        for ms in 2000..2004 {
            history.push(Target::All, None, "x", ms);
        }
        check(
            &history,
            "a",
            LastSeen::Id(id(START_MS)),
            Some((Some(START_MS), 2001)),
            &[2002, 2003],
        );
    }

    #[test]
    fn the_byte_limit_counts_the_user_id_and_bookkeeping() {
        // 1-byte events to a 128-byte user: far more than their payload.
        let user = "u".repeat(128);
        let mut history = History::with_limits(100_000, 100_000, START_MS);
        for ms in 2000..3000 {
            history.push(Target::user(&user), None, "x", ms);
        }
        let held = history.retained_after(&user, id(START_MS)).len();
        assert!(held * (128 + 18) < 100_000, "held {held}");
        assert!(held * 300 < 100_000, "held {held}: bookkeeping not counted");
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let history = history(0, &[Target::All, Target::All]);
        check(
            &history,
            "a",
            LastSeen::Id(id(START_MS)),
            Some((Some(START_MS), 2001)),
            &[],
        );
    }
}
