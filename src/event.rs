//! Pushed events: their ids, who they are for, and their encoded form.
//!
//! Spec: WHATWG HTML §9.2.4 (the last event ID string) and §9.2.6 (the
//! `id` field), <https://html.spec.whatwg.org/multipage/server-sent-events.html>.
//! To a browser an id is an opaque string that it stores and sends back as
//! `Last-Event-ID`; only the server gives it meaning.
//!
//! ```text
//! event-id = ms "-" seq        ; 1764509000123-0
//! ms       = 1*20DIGIT         ; milliseconds since the Unix epoch
//! seq      = 1*20DIGIT         ; counts events issued within that millisecond
//! ```
//!
//! This is the form of a Redis stream entry id, so one format and one
//! parser serve the in-process log and cluster mode. Ids compare as the
//! pair `(ms, seq)`. Because `ms` is the wall clock when the server
//! issues them, ids keep increasing across a restart: an id from an earlier
//! run is always smaller than every id of this run, so the server can tell
//! it apart (and answer it with a `gap`) instead of mistaking it for one of
//! its own. Pure: no sockets, no locks.

use std::fmt;
use std::sync::Arc;

use crate::sse;

/// An event id, `ms-seq`. Ordered by `ms`, then `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    pub ms: u64,
    pub seq: u64,
}

impl EventId {
    pub const fn new(ms: u64, seq: u64) -> EventId {
        EventId { ms, seq }
    }

    /// Parses `ms-seq`, or `ms` alone (read as `ms-0`, as Redis does in
    /// ranges). Returns `None` for anything else: no sign, no spaces, no
    /// empty parts, nothing that overflows 64 bits.
    pub fn parse(text: &str) -> Option<EventId> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        Some(EventId {
            ms: parse_digits(ms)?,
            seq: parse_digits(seq)?,
        })
    }

    /// The id that follows this one in the same millisecond.
    pub fn next_in_same_ms(self) -> EventId {
        EventId {
            ms: self.ms,
            seq: self.seq.saturating_add(1),
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.ms, self.seq)
    }
}

/// `u64::from_str` accepts a leading `+`; an id must be digits only.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Where a reconnecting client says it left off: its `Last-Event-ID`
/// header (WHATWG §9.2.4), or `?lastEventId=` on a new `EventSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastSeen {
    /// A well-formed `ms-seq` id (of this run or not: history decides).
    Id(EventId),
    /// Something that is no id of ours in any run.
    Unreadable,
}

impl LastSeen {
    pub fn parse(text: &str) -> LastSeen {
        EventId::parse(text).map_or(LastSeen::Unreadable, LastSeen::Id)
    }
}

/// Issues ids that strictly increase: the current millisecond with `seq`
/// 0, or, when the clock has not moved on (or went back), the previous id's
/// millisecond with the next `seq`.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    last: EventId,
}

impl IdGenerator {
    /// A generator whose ids all come after `floor` (`start_ms-0`).
    pub fn starting_at(floor: EventId) -> IdGenerator {
        IdGenerator { last: floor }
    }

    /// The newest id issued, or the floor before the first.
    pub fn last(&self) -> EventId {
        self.last
    }

    /// The next id, given the wall clock in ms.
    pub fn next(&mut self, now_ms: u64) -> EventId {
        self.last = if now_ms > self.last.ms {
            EventId::new(now_ms, 0)
        } else {
            self.last.next_in_same_ms()
        };
        self.last
    }
}

/// Who a pushed event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every open stream of one user.
    User(Arc<str>),
    /// Every open stream.
    All,
}

impl Target {
    pub fn user(user_id: &str) -> Target {
        Target::User(Arc::from(user_id))
    }

    pub fn includes(&self, user_id: &str) -> bool {
        match self {
            Target::All => true,
            Target::User(target) => &**target == user_id,
        }
    }
}

/// Bookkeeping an event costs beyond its frame and userId: the `Arc`
/// allocation with its counters and fields, the frame's `Vec` header, the
/// allocator's own overhead per allocation, and the slot in history's ring.
pub const EVENT_OVERHEAD_BYTES: usize = 160;

/// A pushed event, encoded once and shared (`Arc`) by history and by every
/// stream that sends it.
#[derive(Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: EventId,
    pub target: Target,
    /// The complete wire form: `id:`, `event:`, `data:` lines, empty line.
    pub frame: Vec<u8>,
}

impl StoredEvent {
    /// Encodes an event once (see `sse::write_event`).
    pub fn new(id: EventId, target: Target, event: Option<&str>, data: &str) -> StoredEvent {
        let mut frame = Vec::with_capacity(data.len() + 48);
        sse::write_event(&mut frame, id, event, data);
        frame.shrink_to_fit();
        StoredEvent { id, target, frame }
    }

    /// The memory this event holds, as far as we can count it: the frame,
    /// the userId of its target, and [`EVENT_OVERHEAD_BYTES`]. History caps
    /// the sum of this, so its cap bounds memory, not just payload.
    pub fn footprint(&self) -> usize {
        let user_bytes = match &self.target {
            Target::User(user_id) => user_id.len(),
            Target::All => 0,
        };
        self.frame.capacity() + user_bytes + EVENT_OVERHEAD_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_parse(text: &str, expected: Option<(u64, u64)>) {
        let actual = EventId::parse(text).map(|id| (id.ms, id.seq));
        assert_eq!(actual, expected, "input: {text:?}");
    }

    #[test]
    fn parse_rules() {
        check_parse("1764509000123-0", Some((1_764_509_000_123, 0)));
        check_parse("1764509000123-17", Some((1_764_509_000_123, 17)));
        check_parse("500", Some((500, 0)));
        check_parse("0-0", Some((0, 0)));
        check_parse(
            "18446744073709551615-18446744073709551615",
            Some((u64::MAX, u64::MAX)),
        );
        check_parse("", None);
        check_parse("-", None);
        check_parse("5-", None);
        check_parse("-5", None);
        check_parse("+5-1", None);
        check_parse("5-+1", None);
        check_parse(" 5-1", None);
        check_parse("5-1-2", None);
        check_parse("5_1", None);
        check_parse("18446744073709551616-0", None);
        check_parse("abc", None);
        check_parse("٣-1", None);
    }

    #[test]
    fn display_is_ms_dash_seq() {
        assert_eq!(
            EventId::new(1_764_509_000_123, 4).to_string(),
            "1764509000123-4"
        );
    }

    #[test]
    fn ids_order_by_ms_then_seq() {
        assert!(EventId::new(5, 9) < EventId::new(6, 0));
        assert!(EventId::new(6, 0) < EventId::new(6, 1));
        assert_eq!(EventId::parse("7"), Some(EventId::new(7, 0)));
    }

    #[test]
    fn generated_ids_strictly_increase_even_when_the_clock_stalls_or_goes_back() {
        let mut ids = IdGenerator::starting_at(EventId::new(1000, 0));
        let issued: Vec<String> = [1000, 1000, 1001, 999, 1005]
            .into_iter()
            .map(|now| ids.next(now).to_string())
            .collect();
        assert_eq!(issued, ["1000-1", "1000-2", "1001-0", "1001-1", "1005-0"]);
        assert_eq!(ids.last(), EventId::new(1005, 0));
    }

    #[test]
    fn footprint_counts_frame_user_and_overhead() {
        let event = StoredEvent::new(EventId::new(1, 0), Target::user("bob"), None, "x");
        assert_eq!(event.frame, b"id: 1-0\ndata: x\n\n");
        assert_eq!(
            event.footprint(),
            event.frame.capacity() + 3 + EVENT_OVERHEAD_BYTES
        );
    }
}
