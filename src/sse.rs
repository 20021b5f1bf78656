//! The `text/event-stream` format: events in, bytes out.
//!
//! Spec: WHATWG HTML §9.2.6 "Interpreting an event stream" and §9.2.7
//! "Authoring notes", <https://html.spec.whatwg.org/multipage/server-sent-events.html>.
//!
//! ```text
//! stream  = [ bom ] *event
//! event   = *( comment / field ) end-of-line
//! comment = colon *any-char end-of-line
//! field   = 1*name-char [ colon [ space ] *any-char ] end-of-line
//! end-of-line = ( cr lf / cr / lf )
//! ```
//!
//! What the browser does with each field:
//! - `data: x` appends `x` and a line feed to the event's data; the final
//!   line feed is dropped when the event is dispatched. One space after the
//!   colon is removed, so we always write `data: ` and a value that starts
//!   with a space keeps it.
//! - `event: name` sets the event type (`message` when absent).
//! - `id: n` sets the last event id, which a reconnecting browser sends back
//!   as `Last-Event-ID`.
//! - `retry: ms` sets the reconnection time.
//! - A line starting with `:` is a comment: ignored by the browser, but it
//!   keeps proxies and load balancers from closing an idle stream.
//! - An empty line dispatches the event.
//!
//! We write LF line endings only and never a byte-order mark. Every function
//! here appends to a caller's buffer, so a connection can reuse one buffer
//! for its whole life instead of allocating per frame. This module never
//! touches a socket.

use std::io::Write;

use std::fmt::Display;

use crate::json::Quoted;

/// The comment written first on every stream, as the original does: it
/// makes the response start at once, so the client (and any proxy) sees the
/// stream is open before the first frame.
pub const OPENING_COMMENT: &[u8] = b":\n\n";

/// Written when nothing else was written for the heartbeat interval.
pub const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// The comment that explains a "server is full" answer.
pub const FULL_COMMENT: &[u8] = b": server is full, retry later\n\n";

/// The last event of every stream on a graceful shutdown.
pub const SHUTDOWN_EVENT: &[u8] = b"event: shutdown\ndata: server is shutting down\n\n";

/// Appends `retry: ms` as an event of its own (it dispatches nothing).
pub fn write_retry(out: &mut Vec<u8>, milliseconds: u64) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "retry: {milliseconds}\n\n");
}

/// Appends the original example's timer frame:
/// `data: {"userId":"alice","users":2,"time":1732435200000}`.
///
/// The userId is JSON-escaped on the way (see `json.rs`), so whatever it
/// holds stays inside the one `data:` line.
pub fn write_tick(out: &mut Vec<u8>, user_id: &str, users: usize, time_ms: u64) {
    let _ = write!(
        out,
        "data: {{\"userId\":{},\"users\":{users},\"time\":{time_ms}}}\n\n",
        Quoted(user_id)
    );
}

/// Appends a pushed event: `id:` (any text without a line break: to the
/// browser an id is an opaque string), then `event:` if given, then one `data:`
/// line per line of `data`.
///
/// A line break in `data` (CRLF, CR or LF, as WHATWG §9.2.6 reads them) starts
/// a new `data:` line, so the browser sees the lines joined by `\n`, and no
/// text can end the event early or inject a field. `event` must not contain a
/// line break; `route.rs` allows only `[A-Za-z0-9._-]`.
pub fn write_event(out: &mut Vec<u8>, id: impl Display, event: Option<&str>, data: &str) {
    let _ = writeln!(out, "id: {id}");
    if let Some(event) = event {
        let _ = writeln!(out, "event: {event}");
    }
    for line in split_lines(data) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Appends an id-only block, `id: N` and an empty line. It sets the
/// browser's last event id without dispatching an event (WHATWG §9.2.6:
/// "If the data buffer is an empty string, set the data buffer and the
/// event type buffer to the empty string and return"; the id was already
/// stored when the `id` field was read). Every stream starts with one, so a
/// tab that has seen no pushed event yet still reconnects with
/// `Last-Event-ID` and gets what it missed meanwhile.
pub fn write_id_only(out: &mut Vec<u8>, id: impl Display) {
    let _ = write!(out, "id: {id}\n\n");
}

/// Appends the `gap` event that tells a reconnecting client that events
/// after `after` up to and including `to` may have been lost: evicted from
/// history, or published by an earlier run of the server. `after` is
/// `None` when the client's id was not one of ours at all. The event's id is
/// `to`, so the browser's last event id moves past the lost range.
pub fn write_gap<Id: Display>(out: &mut Vec<u8>, after: Option<Id>, to: Id) {
    let _ = match after {
        Some(after) => write!(
            out,
            "id: {to}\nevent: gap\ndata: {{\"after\":\"{after}\",\"to\":\"{to}\"}}\n\n"
        ),
        None => write!(
            out,
            "id: {to}\nevent: gap\ndata: {{\"after\":null,\"to\":\"{to}\"}}\n\n"
        ),
    };
}

/// Splits on CRLF, CR or LF. Unlike `str::lines`, a lone CR is a break too and
/// a trailing break yields a final empty line (which the browser keeps).
fn split_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(index) => {
                let break_len = if text[index..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&text[index + break_len..]);
                Some(&text[..index])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(bytes: Vec<u8>, expected: &str) {
        assert_eq!(String::from_utf8(bytes).expect("test setup"), expected);
    }

    fn event(id: u64, name: Option<&str>, data: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_event(&mut out, format!("{id}-0"), name, data);
        out
    }

    #[test]
    fn tick_frame_matches_the_original() {
        let mut out = Vec::new();
        write_tick(&mut out, "alice", 2, 1732435200000);
        check(
            out,
            "data: {\"userId\":\"alice\",\"users\":2,\"time\":1732435200000}\n\n",
        );
    }

    #[test]
    fn tick_escapes_the_user_id() {
        let mut out = Vec::new();
        write_tick(&mut out, "a\"\nb", 1, 5);
        check(
            out,
            "data: {\"userId\":\"a\\\"\\nb\",\"users\":1,\"time\":5}\n\n",
        );
    }

    #[test]
    fn single_line_event() {
        check(event(5, None, "hi"), "id: 5-0\ndata: hi\n\n");
    }

    #[test]
    fn named_event() {
        check(
            event(6, Some("chat"), "hi"),
            "id: 6-0\nevent: chat\ndata: hi\n\n",
        );
    }

    #[test]
    fn every_line_break_starts_a_data_line() {
        check(event(1, None, "a\nb"), "id: 1-0\ndata: a\ndata: b\n\n");
        check(event(1, None, "a\r\nb"), "id: 1-0\ndata: a\ndata: b\n\n");
        check(event(1, None, "a\rb"), "id: 1-0\ndata: a\ndata: b\n\n");
        check(
            event(1, None, "a\n\nb"),
            "id: 1-0\ndata: a\ndata: \ndata: b\n\n",
        );
        check(event(1, None, "a\r\n"), "id: 1-0\ndata: a\ndata: \n\n");
    }

    #[test]
    fn injected_fields_stay_inside_data() {
        check(
            event(1, None, "x\n\nid: 99\nevent: evil"),
            "id: 1-0\ndata: x\ndata: \ndata: id: 99\ndata: event: evil\n\n",
        );
    }

    #[test]
    fn leading_space_is_not_stripped() {
        check(event(1, None, " padded"), "id: 1-0\ndata:  padded\n\n");
    }

    #[test]
    fn retry_and_gap() {
        let mut out = Vec::new();
        write_retry(&mut out, 3250);
        write_gap(&mut out, Some("4-0"), "9-2");
        write_gap(&mut out, None, "9-2");
        write_id_only(&mut out, "9-3");
        check(
            out,
            "retry: 3250\n\n\
             id: 9-2\nevent: gap\ndata: {\"after\":\"4-0\",\"to\":\"9-2\"}\n\n\
             id: 9-2\nevent: gap\ndata: {\"after\":null,\"to\":\"9-2\"}\n\n\
             id: 9-3\n\n",
        );
    }

    #[test]
    fn frames_append_to_a_reused_buffer() {
        let mut out = b":\n\n".to_vec();
        write_event(&mut out, "2-0", None, "x");
        check(out, ":\n\nid: 2-0\ndata: x\n\n");
    }
}
