//! The shared event stream's schema, and the reply shapes of the stream
//! commands cluster mode sends. Pure: `Value`s in, events out.
//!
//! Spec: Redis Streams, <https://redis.io/docs/latest/develop/data-types/streams/>,
//! and the command pages `XADD` (…/commands/xadd/), `XREAD`
//! (…/commands/xread/), `XRANGE` (…/commands/xrange/) and `XINFO STREAM`
//! (…/commands/xinfo-stream/).
//!
//! ```text
//! key     {prefix}:events                    one stream for every event
//! entry   id  target  all | user:{userId}    who the event is for
//!             event   {name}                 optional; "message" if absent
//!             data    {text}                 UTF-8, the event's data
//! id      {ms}-{seq}                         chosen by Redis (XADD … *)
//!
//! XRANGE reply  = *N ( *2 id ( *2K field value … ) )
//! XREAD reply   = *-1 (BLOCK timed out) | *1 ( *2 key XRANGE-reply )
//! ```
//!
//! Any program may append (`XADD sse:events '*' target all event message
//! data hello`), so an entry is untrusted input: one with a missing or bad
//! field is reported as [`EntryError`] and skipped, never a reason to stop.
//! Fields other than these three are ignored.

use std::sync::Arc;

use crate::event::{EventId, StoredEvent, Target};
use crate::history::Gap;
use crate::limits::{MAX_BODY_BYTES, MAX_EVENT_NAME_BYTES, MAX_USER_ID_BYTES};
use crate::redis::RedisError;
use crate::resp::Value;

/// The stream field naming who an event is for.
pub const FIELD_TARGET: &str = "target";
/// The stream field with the event type.
pub const FIELD_EVENT: &str = "event";
/// The stream field with the event's data.
pub const FIELD_DATA: &str = "data";
/// The event type a browser assumes when a frame has no `event:` line.
pub const DEFAULT_EVENT: &str = "message";

/// The stream every instance appends to and reads: `{prefix}:events`.
pub fn events_key(prefix: &str) -> String {
    format!("{prefix}:events")
}

/// The `XADD` that appends one event, trimming the stream to about
/// `history` entries in the same command:
/// `XADD {key} MAXLEN ~ {history} * target … event … data …`.
/// `~` lets Redis trim whole nodes only, which is much cheaper; the stream
/// may hold a few more entries than `history` (XADD, "Capped streams").
pub fn xadd_command(
    key: &str,
    history: usize,
    target: &Target,
    event: Option<&str>,
    data: &str,
) -> Vec<Vec<u8>> {
    let history = history.to_string();
    let target = target_field(target);
    let parts: [&[u8]; 12] = [
        b"XADD",
        key.as_bytes(),
        b"MAXLEN",
        b"~",
        history.as_bytes(),
        b"*",
        FIELD_TARGET.as_bytes(),
        target.as_bytes(),
        FIELD_EVENT.as_bytes(),
        event.unwrap_or(DEFAULT_EVENT).as_bytes(),
        FIELD_DATA.as_bytes(),
        data.as_bytes(),
    ];
    parts.iter().map(|part| part.to_vec()).collect()
}

/// `all` or `user:{userId}`.
pub fn target_field(target: &Target) -> String {
    match target {
        Target::All => "all".to_string(),
        Target::User(user_id) => format!("user:{user_id}"),
    }
}

/// One event read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: EventId,
    pub target: Target,
    /// `None` for the default type, `message`.
    pub event: Option<String>,
    pub data: String,
}

impl Entry {
    /// Encodes the event once, for every local stream that gets it.
    pub fn into_stored(self) -> Arc<StoredEvent> {
        Arc::new(StoredEvent::new(
            self.id,
            self.target,
            self.event.as_deref(),
            &self.data,
        ))
    }
}

/// Why an entry cannot be an event. The entry is logged and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// Occurs when an entry is not `[id, [field, value, …]]`, or has an
    /// odd number of field items.
    NotAnEntry,
    /// Occurs when the id is not `ms-seq`.
    BadId,
    /// Occurs when there is no `target` field.
    MissingTarget,
    /// Occurs when `target` is not `all` or `user:{userId}` with a valid
    /// userId (1 to 128 bytes of UTF-8 without control characters).
    BadTarget,
    /// Occurs when `event` is not 1 to 64 of `[A-Za-z0-9._-]`.
    BadEvent,
    /// Occurs when there is no `data` field.
    MissingData,
    /// Occurs when `data` is not UTF-8 (an event stream is UTF-8 text).
    DataNotUtf8,
    /// Occurs when `data` is longer than `MAX_BODY_BYTES`, the limit a
    /// publish through HTTP has.
    DataTooLarge,
}

impl EntryError {
    pub fn reason(self) -> &'static str {
        match self {
            EntryError::NotAnEntry => "not a stream entry",
            EntryError::BadId => "bad id",
            EntryError::MissingTarget => "no target field",
            EntryError::BadTarget => "bad target",
            EntryError::BadEvent => "bad event name",
            EntryError::MissingData => "no data field",
            EntryError::DataNotUtf8 => "data is not utf-8",
            EntryError::DataTooLarge => "data too large",
        }
    }
}

/// An entry that is not an event: its id (if readable, for the log and to
/// move past it) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub id: Option<EventId>,
    pub error: EntryError,
}

/// Occurs when a whole reply does not have the shape its command promises:
/// the server is not the Redis we expect, and the connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeError(pub &'static str);

impl From<ShapeError> for RedisError {
    fn from(error: ShapeError) -> RedisError {
        RedisError::UnexpectedReply(error.0)
    }
}

/// The value of the first `name` in a flat `[name, value, name, value, …]`
/// list (an entry's fields, `XINFO STREAM`'s reply); later repeats are
/// ignored.
fn field<'a>(items: &'a [Value], name: &str) -> Option<&'a Value> {
    items
        .chunks_exact(2)
        .find(|pair| pair[0].as_bytes() == Some(name.as_bytes()))
        .map(|pair| &pair[1])
}

/// The entries of an `XRANGE` reply, in order, each an event or a reason
/// to skip it.
pub fn parse_range(reply: &Value) -> Result<Vec<Result<Entry, Skipped>>, ShapeError> {
    let Value::Array(entries) = reply else {
        return Err(ShapeError("xrange reply is not an array"));
    };
    Ok(entries.iter().map(parse_entry).collect())
}

/// The entries of an `XREAD` reply for one stream; none when it timed out.
pub fn parse_read(reply: &Value) -> Result<Vec<Result<Entry, Skipped>>, ShapeError> {
    let streams = match reply {
        Value::NullArray => return Ok(Vec::new()),
        Value::Array(streams) => streams,
        _ => return Err(ShapeError("xread reply is not an array")),
    };
    match streams.as_slice() {
        [] => Ok(Vec::new()),
        [Value::Array(key_and_entries)] => match key_and_entries.as_slice() {
            [_key, entries] => parse_range(entries),
            _ => Err(ShapeError("xread stream is not [key, entries]")),
        },
        _ => Err(ShapeError("xread reply is not one stream")),
    }
}

/// `[id, [field, value, …]]` → an event, or why not.
fn parse_entry(entry: &Value) -> Result<Entry, Skipped> {
    let skipped = |id, error| Skipped { id, error };
    let Value::Array(parts) = entry else {
        return Err(skipped(None, EntryError::NotAnEntry));
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return Err(skipped(None, EntryError::NotAnEntry));
    };
    let id = id
        .as_str()
        .and_then(EventId::parse)
        .ok_or(skipped(None, EntryError::BadId))?;
    let fail = |error| skipped(Some(id), error);
    if fields.len() % 2 != 0 {
        return Err(fail(EntryError::NotAnEntry));
    }
    // The first of each field counts; later repeats are ignored.
    let field = |name: &str| field(fields, name);
    let target = field(FIELD_TARGET).ok_or(fail(EntryError::MissingTarget))?;
    let target = parse_target(target).ok_or(fail(EntryError::BadTarget))?;
    let event = match field(FIELD_EVENT) {
        None => None,
        Some(value) => parse_event(value).ok_or(fail(EntryError::BadEvent))?,
    };
    let data = field(FIELD_DATA).ok_or(fail(EntryError::MissingData))?;
    let data = data.as_bytes().ok_or(fail(EntryError::MissingData))?;
    if data.len() > MAX_BODY_BYTES {
        return Err(fail(EntryError::DataTooLarge));
    }
    let data = String::from_utf8(data.to_vec()).map_err(|_| fail(EntryError::DataNotUtf8))?;
    Ok(Entry {
        id,
        target,
        event,
        data,
    })
}

/// `all` or `user:{userId}`, with the userId rules of `/sse/{userId}`.
fn parse_target(value: &Value) -> Option<Target> {
    let text = value.as_str()?;
    if text == "all" {
        return Some(Target::All);
    }
    let user_id = text.strip_prefix("user:")?;
    let valid = !user_id.is_empty()
        && user_id.len() <= MAX_USER_ID_BYTES
        && !user_id.chars().any(char::is_control);
    valid.then(|| Target::user(user_id))
}

/// The event type: `Some(None)` for the default `message`, `Some(name)`
/// for another valid name (the rules of `?event=`), `None` if invalid.
fn parse_event(value: &Value) -> Option<Option<String>> {
    let name = value.as_str()?;
    let valid = !name.is_empty()
        && name.len() <= MAX_EVENT_NAME_BYTES
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
    match name {
        _ if !valid => None,
        DEFAULT_EVENT => Some(None),
        _ => Some(Some(name.to_string())),
    }
}

/// What `XINFO STREAM` says about where the stream starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// The oldest entry still in the stream; `None` when it is empty.
    pub first: Option<EventId>,
    /// The newest id Redis ever gave out in this stream (`0-0` if none).
    pub last_generated: EventId,
    /// Whether any entry was ever removed (`entries-added` > `length`;
    /// assumed on Redis before 7.0, which has no `entries-added`).
    pub trimmed: bool,
}

impl StreamInfo {
    /// What a stream that does not exist (yet, or after a restart) is like.
    pub const EMPTY: StreamInfo = StreamInfo {
        first: None,
        last_generated: EventId::new(0, 0),
        trimmed: false,
    };
}

/// Reads `XINFO STREAM`'s flat `[name, value, …]` reply.
///
/// The first entry is `recorded-first-entry-id` (Redis 7.0+). Not
/// `max-deleted-entry-id`: trimming (`MAXLEN`, `XTRIM`) leaves that at
/// `0-0`, only `XDEL` moves it. On Redis before 7.0, the `first-entry`
/// (`[id, fields]` or null) gives the same answer.
pub fn parse_stream_info(reply: &Value) -> Result<StreamInfo, ShapeError> {
    let Value::Array(items) = reply else {
        return Err(ShapeError("xinfo reply is not an array"));
    };
    let field = |name: &str| field(items, name);
    let id_field = |name| field(name).and_then(Value::as_str).and_then(EventId::parse);
    let length = match field("length") {
        Some(Value::Integer(length)) => *length,
        _ => return Err(ShapeError("xinfo reply has no length")),
    };
    let last_generated =
        id_field("last-generated-id").ok_or(ShapeError("xinfo has no last-generated-id"))?;
    let trimmed = match field("entries-added") {
        Some(Value::Integer(added)) => *added > length,
        _ => true,
    };
    let first = if length == 0 {
        None
    } else if let Some(first) = id_field("recorded-first-entry-id") {
        Some(first)
    } else {
        match field("first-entry") {
            Some(Value::Array(entry)) => entry
                .first()
                .and_then(Value::as_str)
                .and_then(EventId::parse),
            _ => None,
        }
    };
    Ok(StreamInfo {
        first,
        last_generated,
        trimmed,
    })
}

/// The id just before `id`: what a `gap` reports as the last id that may
/// be lost when `id` is the first one still held.
pub fn previous(id: EventId) -> EventId {
    match (id.ms, id.seq) {
        (0, 0) => id,
        (ms, 0) => EventId::new(ms - 1, u64::MAX),
        (ms, seq) => EventId::new(ms, seq - 1),
    }
}

/// The `gap` a client gets when it resumes after `after` (`None`: an id we
/// cannot read), given that the stream had `info` after the replay was
/// read, `first_read` is the first entry that replay found, and `newest`
/// is where live delivery to the client starts.
///
/// Trimming only ever removes the oldest entries. So if the stream's
/// first entry is at or before `after`, everything after `after` is still
/// there and there is no gap. Otherwise entries between `after` and the
/// first one we read may be gone: the gap runs up to just before it (or
/// up to `newest`, if the replay found nothing). One exception: `0-0`,
/// the id a stream starts with before its first entry, misses nothing in
/// a stream that never lost an entry.
pub fn replay_gap(
    after: Option<EventId>,
    info: StreamInfo,
    first_read: Option<EventId>,
    newest: EventId,
) -> Option<Gap> {
    if let (Some(after), Some(first)) = (after, info.first) {
        if first <= after {
            return None;
        }
    }
    if after == Some(EventId::new(0, 0)) && !info.trimmed {
        return None;
    }
    if after.is_some_and(|after| after >= newest) {
        return None;
    }
    let to = first_read.map_or(newest, previous).min(newest);
    if after.is_some_and(|after| to <= after) {
        return None;
    }
    Some(Gap { after, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::Bulk(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|field| bulk(field)).collect()),
        ])
    }

    fn id(ms: u64, seq: u64) -> EventId {
        EventId::new(ms, seq)
    }

    #[track_caller]
    fn check_entry(fields: &[&str], expected: Result<(Target, Option<&str>, &str), EntryError>) {
        let reply = Value::Array(vec![entry("5-1", fields)]);
        let parsed = parse_range(&reply).expect("shape").remove(0);
        let expected = match expected {
            Ok((target, event, data)) => Ok(Entry {
                id: id(5, 1),
                target,
                event: event.map(String::from),
                data: data.to_string(),
            }),
            Err(error) => Err(Skipped {
                id: Some(id(5, 1)),
                error,
            }),
        };
        assert_eq!(parsed, expected, "fields: {fields:?}");
    }

    #[test]
    fn good_entries() {
        let bob = || Target::user("bob");
        check_entry(
            &["target", "all", "event", "chat", "data", "hi"],
            Ok((Target::All, Some("chat"), "hi")),
        );
        check_entry(
            &["target", "user:bob", "data", "hi"],
            Ok((bob(), None, "hi")),
        );
        check_entry(
            &["target", "all", "event", "message", "data", ""],
            Ok((Target::All, None, "")),
        );
        check_entry(
            &["data", "a\nb", "target", "user:bob", "x", "y"],
            Ok((bob(), None, "a\nb")),
        );
        check_entry(
            &["target", "user:a:b", "data", "x"],
            Ok((Target::user("a:b"), None, "x")),
        );
        check_entry(
            &["target", "all", "data", "1", "data", "2"],
            Ok((Target::All, None, "1")),
        );
    }

    #[test]
    fn bad_entries_say_why() {
        check_entry(&["data", "hi"], Err(EntryError::MissingTarget));
        check_entry(
            &["target", "everyone", "data", "hi"],
            Err(EntryError::BadTarget),
        );
        check_entry(
            &["target", "user:", "data", "hi"],
            Err(EntryError::BadTarget),
        );
        check_entry(
            &["target", "user:a\nb", "data", "hi"],
            Err(EntryError::BadTarget),
        );
        let long_user = format!("user:{}", "u".repeat(MAX_USER_ID_BYTES + 1));
        check_entry(
            &["target", &long_user, "data", "hi"],
            Err(EntryError::BadTarget),
        );
        check_entry(
            &["target", "all", "event", "a b", "data", "hi"],
            Err(EntryError::BadEvent),
        );
        check_entry(
            &["target", "all", "event", "", "data", "hi"],
            Err(EntryError::BadEvent),
        );
        check_entry(&["target", "all"], Err(EntryError::MissingData));
        check_entry(&["target", "all", "data"], Err(EntryError::NotAnEntry));
        let big = "x".repeat(MAX_BODY_BYTES + 1);
        check_entry(
            &["target", "all", "data", &big],
            Err(EntryError::DataTooLarge),
        );
    }

    #[test]
    fn data_must_be_utf8() {
        let fields = vec![
            bulk("target"),
            bulk("all"),
            bulk("data"),
            Value::Bulk(vec![0xff]),
        ];
        let reply = Value::Array(vec![Value::Array(vec![bulk("5-1"), Value::Array(fields)])]);
        let parsed = parse_range(&reply).expect("shape");
        assert_eq!(
            parsed,
            [Err(Skipped {
                id: Some(id(5, 1)),
                error: EntryError::DataNotUtf8
            })]
        );
    }

    #[test]
    fn entries_that_are_not_entries() {
        let reply = Value::Array(vec![
            Value::Integer(1),
            Value::Array(vec![bulk("5-1")]),
            entry("nope", &["target", "all", "data", "x"]),
        ]);
        let errors: Vec<_> = parse_range(&reply)
            .expect("shape")
            .into_iter()
            .map(|entry| entry.map_err(|skipped| (skipped.id, skipped.error)))
            .collect();
        assert_eq!(
            errors,
            [
                Err((None, EntryError::NotAnEntry)),
                Err((None, EntryError::NotAnEntry)),
                Err((None, EntryError::BadId)),
            ]
        );
    }

    #[test]
    fn xread_replies() {
        assert_eq!(parse_read(&Value::NullArray), Ok(vec![]));
        let one = Value::Array(vec![Value::Array(vec![
            bulk("sse:events"),
            Value::Array(vec![entry("7-0", &["target", "all", "data", "x"])]),
        ])]);
        let entries = parse_read(&one).expect("shape");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].as_ref().map(|entry| entry.id), Ok(id(7, 0)));
        assert!(parse_read(&Value::Integer(1)).is_err());
        assert!(parse_read(&Value::Array(vec![bulk("x")])).is_err());
        assert!(parse_range(&Value::NullBulk).is_err());
    }

    #[test]
    fn xadd_command_shape() {
        let command = xadd_command("sse:events", 1000, &Target::user("bob"), None, "hi");
        let text: Vec<String> = command
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        assert_eq!(
            text,
            [
                "XADD",
                "sse:events",
                "MAXLEN",
                "~",
                "1000",
                "*",
                "target",
                "user:bob",
                "event",
                "message",
                "data",
                "hi"
            ]
        );
    }

    fn info(fields: Vec<(&str, Value)>) -> Value {
        Value::Array(
            fields
                .into_iter()
                .flat_map(|(name, value)| [bulk(name), value])
                .collect(),
        )
    }

    #[test]
    fn stream_info_uses_recorded_first_entry_id() {
        let reply = info(vec![
            ("length", Value::Integer(2)),
            ("last-generated-id", bulk("9-0")),
            ("max-deleted-entry-id", bulk("0-0")),
            ("recorded-first-entry-id", bulk("8-0")),
            ("entries-added", Value::Integer(5)),
            ("first-entry", entry("8-0", &["data", "x"])),
        ]);
        assert_eq!(
            parse_stream_info(&reply),
            Ok(StreamInfo {
                first: Some(id(8, 0)),
                last_generated: id(9, 0),
                trimmed: true,
            })
        );
        let never_trimmed = info(vec![
            ("length", Value::Integer(2)),
            ("entries-added", Value::Integer(2)),
            ("last-generated-id", bulk("9-0")),
            ("recorded-first-entry-id", bulk("8-0")),
        ]);
        assert_eq!(
            parse_stream_info(&never_trimmed).map(|info| info.trimmed),
            Ok(false)
        );
        let before_7 = info(vec![
            ("length", Value::Integer(1)),
            ("last-generated-id", bulk("9-0")),
            ("first-entry", entry("9-0", &["data", "x"])),
        ]);
        assert_eq!(
            parse_stream_info(&before_7).map(|info| (info.first, info.trimmed)),
            Ok((Some(id(9, 0)), true))
        );
        let empty = info(vec![
            ("length", Value::Integer(0)),
            ("last-generated-id", bulk("9-0")),
            ("recorded-first-entry-id", bulk("0-0")),
        ]);
        assert_eq!(parse_stream_info(&empty).map(|info| info.first), Ok(None));
        assert!(parse_stream_info(&Value::NullArray).is_err());
        assert!(parse_stream_info(&info(vec![("length", Value::Integer(0))])).is_err());
    }

    #[test]
    fn previous_ids() {
        assert_eq!(previous(id(5, 3)), id(5, 2));
        assert_eq!(previous(id(5, 0)), id(4, u64::MAX));
        assert_eq!(previous(id(0, 0)), id(0, 0));
    }

    #[track_caller]
    fn check_gap(
        after: Option<EventId>,
        first: Option<EventId>,
        first_read: Option<EventId>,
        newest: EventId,
        expected: Option<(Option<EventId>, EventId)>,
    ) {
        let info = StreamInfo {
            first,
            last_generated: newest,
            trimmed: true,
        };
        let gap = replay_gap(after, info, first_read, newest).map(|gap| (gap.after, gap.to));
        assert_eq!(gap, expected);
    }

    #[test]
    fn gaps() {
        // The client's id is still in the stream: nothing was trimmed after it.
        check_gap(
            Some(id(5, 0)),
            Some(id(5, 0)),
            Some(id(6, 0)),
            id(9, 0),
            None,
        );
        check_gap(
            Some(id(5, 0)),
            Some(id(3, 0)),
            Some(id(6, 0)),
            id(9, 0),
            None,
        );
        // Trimmed past the client's id: lost up to just before the first read.
        check_gap(
            Some(id(5, 0)),
            Some(id(7, 0)),
            Some(id(7, 0)),
            id(9, 0),
            Some((Some(id(5, 0)), id(6, u64::MAX))),
        );
        // Nothing left to read (Redis restarted empty): lost up to where live starts.
        check_gap(
            Some(id(5, 0)),
            None,
            None,
            id(9, 0),
            Some((Some(id(5, 0)), id(9, 0))),
        );
        check_gap(
            Some(id(5, 0)),
            Some(id(12, 0)),
            None,
            id(9, 0),
            Some((Some(id(5, 0)), id(9, 0))),
        );
        // Up to date, or ahead: nothing to say.
        check_gap(Some(id(9, 0)), None, None, id(9, 0), None);
        check_gap(Some(id(10, 0)), Some(id(12, 0)), None, id(9, 0), None);
        // An id we cannot read: lost up to the first thing we hold.
        check_gap(
            None,
            Some(id(7, 0)),
            Some(id(7, 0)),
            id(9, 0),
            Some((None, id(6, u64::MAX))),
        );
        check_gap(None, None, None, id(9, 0), Some((None, id(9, 0))));
        // 0-0 (the id of a stream before its first entry) misses nothing
        // in a stream that never lost an entry, and may miss some in one
        // that did.
        let untrimmed = StreamInfo {
            first: Some(id(7, 0)),
            last_generated: id(9, 0),
            trimmed: false,
        };
        assert_eq!(
            replay_gap(Some(id(0, 0)), untrimmed, Some(id(7, 0)), id(9, 0)),
            None
        );
        check_gap(
            Some(id(0, 0)),
            Some(id(7, 0)),
            Some(id(7, 0)),
            id(9, 0),
            Some((Some(id(0, 0)), id(6, u64::MAX))),
        );
        // Another id before the first entry of a never-trimmed stream is
        // from an earlier stream (Redis restarted empty): a gap.
        let after_restart = replay_gap(Some(id(5, 0)), untrimmed, Some(id(7, 0)), id(9, 0));
        assert_eq!(after_restart.map(|gap| gap.to), Some(id(6, u64::MAX)));
    }
}
