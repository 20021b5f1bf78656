//! Reading the `text/event-stream` format: bytes in, events out. The other
//! half of `sse.rs`, which writes what this module reads.
//!
//! Spec: WHATWG HTML §9.2.6 "Interpreting an event stream",
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>.
//!
//! ```text
//! stream        = [ bom ] *event
//! event         = *( comment / field ) end-of-line
//! comment       = colon *any-char end-of-line
//! field         = 1*name-char [ colon [ space ] *any-char ] end-of-line
//! end-of-line   = ( cr lf / cr / lf )
//! ```
//!
//! The algorithm, step by step as the spec words it, and where each step
//! lives here:
//! - "Streams must be decoded using the UTF-8 decode algorithm": one leading
//!   byte-order mark is dropped, and bytes that are not UTF-8 become U+FFFD
//!   (`Parser::finish_line`).
//! - "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE
//!   FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character, or
//!   a single U+000D CARRIAGE RETURN (CR) character" ([`Parser::feed`]).
//! - "If the line is empty (a blank line): dispatch the event."
//! - "If the line starts with a U+003A COLON character (:): ignore the line."
//! - "If the line contains a U+003A COLON character (:): collect the
//!   characters on the line before the first U+003A COLON character (:), and
//!   let field be that string. Collect the characters on the line after the
//!   first U+003A COLON character (:), and let value be that string. If value
//!   starts with a U+0020 SPACE character, remove it from value."
//! - "Otherwise, the string is not empty but does not contain a U+003A COLON
//!   character (:): process the field using the whole line as the field
//!   name, and the empty string as the field value."
//! - The fields, names compared case-sensitively (`Parser::process_field`):
//!   `event` sets the event type buffer; `data` appends the value and a
//!   U+000A LINE FEED to the data buffer; `id` sets the last event ID buffer,
//!   unless the value contains U+0000 NULL; `retry` sets the reconnection
//!   time, if the value is ASCII digits only; anything else is ignored.
//! - "Once the end of the file is reached, any pending data must be
//!   discarded. (If the file ends in the middle of an event, before the final
//!   empty line, the incomplete event is not dispatched.)" ([`Parser::end`]).
//!
//! The bytes may arrive split anywhere: in the middle of a line, of a UTF-8
//! character, of a byte-order mark, or between the CR and the LF of a CRLF.
//! The parser keeps what it needs between calls to [`Parser::feed`], and a
//! CR ends its line at once (the LF that may follow is skipped when it
//! comes), so an event is never held back waiting for the next read.
//!
//! This module never touches a socket.

use crate::json::Quoted;
use crate::limits::MAX_CLIENT_EVENT_BYTES;

/// UTF-8's encoding of U+FEFF, the byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the parser hands back while reading a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A dispatched event (§9.2.6 "dispatch the event").
    Event(Event),
    /// A `retry:` field with a valid value: the new reconnection time, in
    /// milliseconds. Values too large for a `u64` are clamped to its maximum.
    Retry(u64),
}

/// One dispatched event, as a browser's `MessageEvent` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event source's last event ID string when the event was
    /// dispatched (`MessageEvent.lastEventId`): set by this event's `id:`
    /// or an earlier one, and `""` if no `id:` was ever seen. Opaque: the
    /// parser never looks inside it.
    pub id: String,
    /// The event type: the `event:` field, or `message` when it is absent
    /// or empty.
    pub event_type: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The event's lines as they came (comments and unknown fields too),
    /// each ending in `\n`, and the blank line that dispatched it.
    pub raw: String,
}

impl Event {
    /// Writes the event as one JSON line, `{"id":…,"event":…,"data":…}`:
    /// what `sse-server listen` prints, and what the differential test
    /// compares with another parser's output.
    pub fn write_json_line(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{{\"id\":{},\"event\":{},\"data\":{}}}",
            Quoted(&self.id),
            Quoted(&self.event_type),
            Quoted(&self.data)
        )
    }
}

/// Why the parser stops reading a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStreamError {
    /// Occurs when one line, or one event's buffered lines, grows past
    /// [`MAX_CLIENT_EVENT_BYTES`]: a stream that never sends a line end
    /// would otherwise fill memory.
    EventTooLarge,
}

impl EventStreamError {
    /// A short lowercase reason for the client's status line.
    pub fn reason(self) -> &'static str {
        match self {
            EventStreamError::EventTooLarge => "event larger than the client's limit",
        }
    }
}

/// The state §9.2.6 keeps for one stream, carried between calls to
/// [`Parser::feed`].
#[derive(Debug, Clone, Default)]
pub struct Parser {
    /// Bytes of the line read so far (no line end yet).
    line: Vec<u8>,
    /// The last byte fed was a CR that ended a line: an LF right after it
    /// belongs to that line end (CRLF) and is skipped.
    after_cr: bool,
    /// No line has ended yet, so the first line may still start with a BOM.
    at_stream_start: bool,
    /// The spec's "data buffer".
    data: String,
    /// The spec's "event type buffer".
    event_type: String,
    /// The spec's "last event ID buffer".
    last_event_id_buffer: String,
    /// The event source's "last event ID string", updated on every blank
    /// line; what a reconnecting client sends as `Last-Event-ID`.
    last_event_id: String,
    /// The current event's lines, for [`Event::raw`].
    raw: String,
}

impl Parser {
    /// A parser for a new stream of an event source whose last event ID
    /// string is `last_event_id` (`""` for a new source). A reconnecting
    /// client passes the id it had, so events without an `id:` of their own
    /// keep reporting it, as a browser's `EventSource` does.
    pub fn new(last_event_id: &str) -> Parser {
        Parser {
            at_stream_start: true,
            last_event_id_buffer: last_event_id.to_string(),
            last_event_id: last_event_id.to_string(),
            ..Parser::default()
        }
    }

    /// The last event ID string: the value of the last event ID buffer at
    /// the most recent blank line. An `id:`-only block changes it too.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Reads `bytes`, the next part of the stream, and appends every event
    /// and reconnection time they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Output>) -> Result<(), EventStreamError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&byte| byte == b'\r' || byte == b'\n') {
                Some(index) => {
                    self.append_to_line(&rest[..index])?;
                    self.after_cr = rest[index] == b'\r';
                    self.finish_line(out)?;
                    rest = &rest[index + 1..];
                }
                None => {
                    self.append_to_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// The stream ended (EOF, or the connection failed). "Any pending data
    /// must be discarded": a partial line and an event without its blank
    /// line are dropped. Returns whether anything was dropped. The last
    /// event ID string stays, for the reconnection.
    pub fn end(&mut self) -> bool {
        let dropped = !self.line.is_empty() || !self.raw.is_empty();
        let last_event_id = std::mem::take(&mut self.last_event_id);
        *self = Parser::new(&last_event_id);
        dropped
    }

    fn append_to_line(&mut self, bytes: &[u8]) -> Result<(), EventStreamError> {
        if self.line.len() + self.raw.len() + bytes.len() > MAX_CLIENT_EVENT_BYTES {
            return Err(EventStreamError::EventTooLarge);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// A line end arrived: decode the line and process it.
    fn finish_line(&mut self, out: &mut Vec<Output>) -> Result<(), EventStreamError> {
        let mut bytes = std::mem::take(&mut self.line);
        if std::mem::replace(&mut self.at_stream_start, false) && bytes.starts_with(BOM) {
            // The UTF-8 decode algorithm drops one leading BOM, and only at
            // the very start of the stream (WPT format-bom, format-bom-2).
            bytes.drain(..BOM.len());
        }
        let line = String::from_utf8_lossy(&bytes);
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        // Data and raw text both grow with each line; the line itself was
        // checked as it arrived.
        if self.data.len() + self.raw.len() + 2 * line.len() > MAX_CLIENT_EVENT_BYTES {
            return Err(EventStreamError::EventTooLarge);
        }
        self.raw.push_str(&line);
        self.raw.push('\n');
        if line.starts_with(':') {
            return Ok(()); // a comment
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        self.process_field(field, value, out);
        Ok(())
    }

    /// §9.2.6 "process the field".
    fn process_field(&mut self, field: &str, value: &str, out: &mut Vec<Output>) {
        match field {
            "event" => self.event_type = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the
            // last event ID buffer to the field value. Otherwise, ignore the
            // field."
            "id" if !value.contains('\0') => self.last_event_id_buffer = value.to_string(),
            // "If the field value consists of only ASCII digits, then
            // interpret the field value as an integer in base ten, and set
            // the event stream's reconnection time to that integer.
            // Otherwise, ignore the field." An empty value has no digits to
            // interpret (WPT format-field-retry-empty), so it is ignored.
            "retry" if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) => {
                out.push(Output::Retry(value.parse().unwrap_or(u64::MAX)));
            }
            _ => {} // "Otherwise: the field is ignored."
        }
    }

    /// §9.2.6 "dispatch the event", steps 1 to 6.
    fn dispatch(&mut self, out: &mut Vec<Output>) {
        // 1. "Set the last event ID string of the event source to the value
        //    of the last event ID buffer. The buffer does not get reset."
        self.last_event_id.clone_from(&self.last_event_id_buffer);
        let mut raw = std::mem::take(&mut self.raw);
        let mut data = std::mem::take(&mut self.data);
        let event_type = std::mem::take(&mut self.event_type);
        // 2. "If the data buffer is an empty string, set the data buffer and
        //    the event type buffer to the empty string and return."
        if data.is_empty() {
            return;
        }
        // 3. "If the data buffer's last character is a U+000A LINE FEED (LF)
        //    character, then remove the last character from the data buffer."
        if data.ends_with('\n') {
            data.pop();
        }
        // 4.–5. The event's data, its lastEventId, and its type: `message`
        //    unless the event type buffer has something else.
        let event_type = if event_type.is_empty() {
            "message".to_string()
        } else {
            event_type
        };
        raw.push('\n');
        out.push(Output::Event(Event {
            id: self.last_event_id.clone(),
            event_type,
            data,
            raw,
        }));
        // 6. The buffers were reset by the `take`s above.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole, then again one byte at a time, and compares a
    /// summary of the outputs with `expected`: one `type|id|data` per event
    /// (data with `\n` shown as `⏎`), `retry=N` per retry, joined by `, `.
    #[track_caller]
    fn check(input: &[u8], expected: &str) {
        check_from("", input, expected);
    }

    #[track_caller]
    fn check_from(last_event_id: &str, input: &[u8], expected: &str) {
        let whole = summarize(&parse_in_pieces(last_event_id, &[input]));
        assert_eq!(
            whole,
            expected,
            "input: {:?}",
            String::from_utf8_lossy(input)
        );
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let split = summarize(&parse_in_pieces(last_event_id, &bytes));
        assert_eq!(
            split,
            expected,
            "byte by byte: {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn parse_in_pieces(last_event_id: &str, pieces: &[&[u8]]) -> Vec<Output> {
        let mut parser = Parser::new(last_event_id);
        let mut out = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut out).expect("within the limit");
        }
        parser.end();
        out
    }

    fn summarize(outputs: &[Output]) -> String {
        let items: Vec<String> = outputs
            .iter()
            .map(|output| match output {
                Output::Event(event) => format!(
                    "{}|{}|{}",
                    event.event_type,
                    event.id,
                    event.data.replace('\n', "⏎")
                ),
                Output::Retry(milliseconds) => format!("retry={milliseconds}"),
            })
            .collect();
        items.join(", ")
    }

    // Lines and dispatch.

    #[test]
    fn a_blank_line_dispatches() {
        check(b"data: hi\n\n", "message||hi");
    }

    #[test]
    fn lf_cr_and_crlf_all_end_lines() {
        check(b"data: a\n\n", "message||a");
        check(b"data: a\r\r", "message||a");
        check(b"data: a\r\n\r\n", "message||a");
        check(b"data: a\r\ndata: b\rdata: c\n\n", "message||a⏎b⏎c");
    }

    #[test]
    fn cr_then_lf_is_one_line_end_not_two() {
        // If CRLF counted twice, "data: a" would be dispatched alone.
        check(b"data: a\r\ndata: b\r\n\r\n", "message||a⏎b");
    }

    #[test]
    fn lf_then_cr_is_two_line_ends() {
        check(b"data: a\n\rdata: b\n\n", "message||a, message||b");
    }

    #[test]
    fn a_cr_dispatches_at_once_without_waiting_for_the_next_byte() {
        let mut parser = Parser::new("");
        let mut out = Vec::new();
        parser.feed(b"data: a\r\r", &mut out).expect("small");
        assert_eq!(summarize(&out), "message||a");
        // The LF that completes the CRLF comes later and is skipped.
        parser.feed(b"\ndata: b\n\n", &mut out).expect("small");
        assert_eq!(summarize(&out), "message||a, message||b");
    }

    #[test]
    fn an_incomplete_event_at_end_of_stream_is_not_dispatched() {
        check(b"data: a\n\ndata: b\n", "message||a");
        check(b"data: a\n\ndata: b", "message||a");
        let mut parser = Parser::new("");
        parser.feed(b"data: b\n", &mut Vec::new()).expect("small");
        assert!(parser.end(), "end reports the dropped event");
        assert!(!parser.end(), "nothing is left the second time");
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing() {
        check(b"\n\n\r\n\r", "");
        check(b"event: x\n\ndata: y\n\n", "message||y");
    }

    // Field parsing.

    #[test]
    fn one_space_after_the_colon_is_removed_and_only_one() {
        check(b"data:a\n\n", "message||a");
        check(b"data: a\n\n", "message||a");
        check(b"data:  a\n\n", "message|| a");
        check(b"data:\ta\n\n", "message||\ta");
    }

    #[test]
    fn only_the_first_colon_separates() {
        check(b"data: a: b:c\n\n", "message||a: b:c");
    }

    #[test]
    fn a_line_without_colon_is_a_field_with_an_empty_value() {
        check(b"data\n\n", "message||");
        check(b"data\ndata\n\n", "message||⏎");
    }

    #[test]
    fn field_names_are_case_sensitive_and_exact() {
        check(b"Data: x\nDATA: y\n data: z\ndata : w\n\n", "");
    }

    #[test]
    fn comments_are_ignored() {
        check(b": hello\ndata: a\n:\n\n", "message||a");
        check(b":\n\n", "");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        check(b"foo: bar\ndata: a\nbaz\n\n", "message||a");
    }

    #[test]
    fn data_lines_are_joined_with_line_feeds() {
        check(b"data: a\ndata:\ndata: b\n\n", "message||a⏎⏎b");
    }

    #[test]
    fn data_may_hold_a_null() {
        check(b"data: \0\n\n", "message||\0");
    }

    // event

    #[test]
    fn event_sets_the_type_for_one_event_only() {
        check(
            b"event: chat\ndata: a\n\ndata: b\n\n",
            "chat||a, message||b",
        );
    }

    #[test]
    fn an_empty_event_field_means_message() {
        check(b"event:\ndata: a\n\n", "message||a");
    }

    #[test]
    fn the_last_event_field_wins() {
        check(b"event: a\nevent: b\ndata: x\n\n", "b||x");
    }

    // id

    #[test]
    fn id_is_the_last_event_id_of_this_and_later_events() {
        check(
            b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n",
            "message|1|a, message|1|b, message|2|c",
        );
    }

    #[test]
    fn ids_are_opaque_strings() {
        check(
            b"id: 1764509000123-0\ndata: a\n\n",
            "message|1764509000123-0|a",
        );
        check(b"id:  x y \ndata: a\n\n", "message| x y |a");
    }

    #[test]
    fn an_id_only_block_updates_the_last_event_id_without_an_event() {
        let mut parser = Parser::new("");
        let mut out = Vec::new();
        parser.feed(b"id: 7\n\n", &mut out).expect("small");
        assert!(out.is_empty());
        assert_eq!(parser.last_event_id(), "7");
        parser.feed(b"data: a\n\n", &mut out).expect("small");
        assert_eq!(summarize(&out), "message|7|a");
    }

    #[test]
    fn the_last_event_id_changes_only_at_the_blank_line() {
        let mut parser = Parser::new("");
        parser
            .feed(b"id: 7\ndata: a\n", &mut Vec::new())
            .expect("small");
        assert_eq!(parser.last_event_id(), "");
        parser.end();
        assert_eq!(parser.last_event_id(), "", "the event never completed");
    }

    #[test]
    fn an_empty_id_resets_the_last_event_id() {
        check(
            b"id: 1\ndata: a\n\nid\ndata: b\n\n",
            "message|1|a, message||b",
        );
        check(
            b"id: 1\ndata: a\n\nid:\ndata: b\n\n",
            "message|1|a, message||b",
        );
    }

    #[test]
    fn an_id_with_a_null_is_ignored() {
        check(
            b"id: 1\ndata: a\n\nid: x\0\ndata: b\n\n",
            "message|1|a, message|1|b",
        );
    }

    #[test]
    fn a_reconnected_stream_starts_from_the_previous_id() {
        check_from(
            "41",
            b"data: a\n\nid: 42\ndata: b\n\n",
            "message|41|a, message|42|b",
        );
        let mut parser = Parser::new("41");
        parser.end();
        assert_eq!(parser.last_event_id(), "41");
    }

    // retry

    #[test]
    fn retry_with_digits_sets_the_reconnection_time() {
        check(b"retry: 3000\n\n", "retry=3000");
        check(b"retry: 03000\n\n", "retry=3000");
        check(
            b"retry: 99999999999999999999999\n",
            "retry=18446744073709551615",
        );
    }

    #[test]
    fn retry_with_anything_but_digits_is_ignored() {
        check(
            b"retry\nretry:\nretry: -1\nretry: 1.5\nretry: 1000x\nretry:  1\n",
            "",
        );
    }

    #[test]
    fn retry_takes_effect_without_a_blank_line() {
        check(b"retry: 10\n", "retry=10");
    }

    // Decoding.

    #[test]
    fn one_leading_bom_is_dropped() {
        check(b"\xEF\xBB\xBFdata: a\n\n", "message||a");
    }

    #[test]
    fn a_bom_alone_on_the_first_line_leaves_an_empty_line() {
        check(b"\xEF\xBB\xBF\ndata: a\n\n", "message||a");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        check(b"data: a\xFFb\n\n", "message||a\u{FFFD}b");
        check(b"data: \xE2\x82\n\n", "message||\u{FFFD}");
    }

    #[test]
    fn a_character_split_across_reads_is_kept_whole() {
        let bytes = "data: é…😀\n\n".as_bytes();
        for split in 1..bytes.len() {
            let pieces = [&bytes[..split], &bytes[split..]];
            assert_eq!(summarize(&parse_in_pieces("", &pieces)), "message||é…😀");
        }
    }

    // Raw blocks.

    #[test]
    fn raw_keeps_every_line_of_the_event_with_lf_endings() {
        let mut out = Vec::new();
        Parser::new("")
            .feed(b": c\r\nid: 1\revent: e\ndata: a\nx: y\n\n", &mut out)
            .expect("small");
        let Some(Output::Event(event)) = out.first() else {
            panic!("an event");
        };
        assert_eq!(event.raw, ": c\nid: 1\nevent: e\ndata: a\nx: y\n\n");
    }

    // Limits.

    #[test]
    fn a_line_that_never_ends_is_cut_off() {
        let mut parser = Parser::new("");
        let chunk = vec![b'x'; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..(MAX_CLIENT_EVENT_BYTES / chunk.len() + 2) {
            result = parser.feed(&chunk, &mut Vec::new());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(EventStreamError::EventTooLarge));
    }

    #[test]
    fn an_event_of_many_lines_is_cut_off() {
        let mut parser = Parser::new("");
        let line = format!("data: {}\n", "x".repeat(1000));
        let mut result = Ok(());
        for _ in 0..(MAX_CLIENT_EVENT_BYTES / line.len() + 2) {
            result = parser.feed(line.as_bytes(), &mut Vec::new());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(EventStreamError::EventTooLarge));
    }

    #[test]
    fn many_events_of_any_total_size_are_fine() {
        let mut parser = Parser::new("");
        let event = format!("data: {}\n\n", "x".repeat(1000));
        let mut out = Vec::new();
        for _ in 0..(2 * MAX_CLIENT_EVENT_BYTES / event.len()) {
            parser
                .feed(event.as_bytes(), &mut out)
                .expect("each event is small");
            out.clear();
        }
    }

    // The web-platform-tests `eventsource/format-*` cases: the stream each
    // one serves, and what its page asserts, as facts. Their server script
    // (`resources/message.py`) sends the test's message, then `\n\n` unless
    // the test asks for `newline=none`, then one more `\n`. The cases about
    // reconnection, MIME types and timing are in `tests/listen.rs`.

    #[test]
    fn wpt_format_bom() {
        // A BOM is dropped only at the very start: the second one makes its
        // line the unknown field "\u{FEFF}data", so "2" is never dispatched.
        check(
            b"\xEF\xBB\xBFdata:1\n\n\xEF\xBB\xBFdata:2\n\ndata:3\n\n",
            "message||1, message||3",
        );
    }

    #[test]
    fn wpt_format_bom_2() {
        // Of two BOMs only the first is dropped: "1" is lost, "2" and "3" come.
        check(
            b"\xEF\xBB\xBF\xEF\xBB\xBFdata:1\n\ndata:2\n\ndata:3\n\n",
            "message||2, message||3",
        );
    }

    #[test]
    fn wpt_format_comments() {
        let long = "x".repeat(2 * 1024);
        let stream =
            format!("data:1\r:\0\n:\r\ndata:2\n:{long}\rdata:3\n:data:fail\r:{long}\ndata:4\n\n");
        check(stream.as_bytes(), "message||1⏎2⏎3⏎4");
    }

    #[test]
    fn wpt_format_data_before_final_empty_line() {
        // newline=none: the second event never gets its blank line.
        check(
            b"retry:1000\ndata:test1\n\nid:test\ndata:test2\n",
            "retry=1000, message||test1",
        );
    }

    #[test]
    fn wpt_format_field_data() {
        check(
            b"data:\n\ndata\ndata\n\ndata:test\n\n",
            "message||, message||⏎, message||test",
        );
    }

    #[test]
    fn wpt_format_field_event() {
        check(b"event:test\ndata:x\n\ndata:x\n\n", "test||x, message||x");
    }

    #[test]
    fn wpt_format_field_event_empty() {
        check(b"event: \ndata:data\n\n", "message||data");
    }

    #[test]
    fn wpt_format_field_id_non_ascii() {
        // format-field-id: an id of U+2026 comes back as the event's id (the
        // reconnection half is in tests/listen.rs).
        check("id: …\ndata: hello\n\n".as_bytes(), "message|…|hello");
    }

    #[test]
    fn wpt_format_field_id_3_persists() {
        check(
            b"id: 1\ndata: 1\n\ndata: 2\n\nid: 2\ndata:3\n\ndata:4\n\n",
            "message|1|1, message|1|2, message|2|3, message|2|4",
        );
    }

    #[test]
    fn wpt_format_field_id_3_resets() {
        check(
            b"id: 1\ndata: 1\n\nid: \ndata:2\n\ndata:3\n\n",
            "message|1|1, message||2, message||3",
        );
        // The same with "id" and no colon.
        check(
            b"id: 1\ndata: 1\n\nid\ndata:2\n\ndata:3\n\n",
            "message|1|1, message||2, message||3",
        );
    }

    #[test]
    fn wpt_format_field_id_null() {
        for id in ["\0\0", "x\0", "\0x", "x\0x", " \0"] {
            let stream = format!("id: {id}\ndata: hello\n\n");
            check(stream.as_bytes(), "message||hello");
        }
    }

    #[test]
    fn wpt_format_field_parsing() {
        check(
            b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n",
            "message||\0⏎ 2⏎1⏎3⏎⏎4",
        );
    }

    #[test]
    fn wpt_format_field_retry() {
        // "03000" is 3000 in base ten, not octal.
        check(b"retry:03000\ndata:x\n\n", "retry=3000, message||x");
    }

    #[test]
    fn wpt_format_field_retry_bogus() {
        check(
            b"retry:3000\nretry:1000x\ndata:x\n\n",
            "retry=3000, message||x",
        );
    }

    #[test]
    fn wpt_format_field_retry_empty() {
        check(b"retry\ndata:test\n\n", "message||test");
    }

    #[test]
    fn wpt_format_field_unknown() {
        check(
            b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n",
            "message||test⏎⏎test",
        );
    }

    #[test]
    fn wpt_format_leading_space() {
        check(
            b"data:\ttest\rdata: \ndata:test\n\n",
            "message||\ttest⏎⏎test",
        );
    }

    #[test]
    fn wpt_format_newlines() {
        check(
            b"data:test\r\ndata\ndata:test\r\n\r\n",
            "message||test⏎⏎test",
        );
    }

    #[test]
    fn wpt_format_null_character() {
        check(b"data:\0\n\n", "message||\0");
    }

    #[test]
    fn wpt_format_utf_8() {
        // Always UTF-8, whatever charset the Content-Type names.
        check(b"data:ok\xE2\x80\xA6\n\n", "message||ok…");
    }

    // Splits: a small seeded generator, so every run checks the same cases.

    #[test]
    fn any_split_into_reads_gives_the_same_events() {
        let stream: &[u8] = b"\xEF\xBB\xBFretry: 5\r\nid: 1\rdata: a\r\n\r\n: c\ndata: \xC3\xA9\r\revent: x\ndata\n\n";
        let expected = summarize(&parse_in_pieces("", &[stream]));
        assert_eq!(expected, "retry=5, message|1|a, message|1|é, x|1|");
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..500 {
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < stream.len() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let length = 1 + (seed % 7) as usize;
                let end = (start + length).min(stream.len());
                pieces.push(&stream[start..end]);
                start = end;
            }
            assert_eq!(
                summarize(&parse_in_pieces("", &pieces)),
                expected,
                "{pieces:?}"
            );
        }
    }
}
