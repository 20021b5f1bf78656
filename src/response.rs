//! Writing responses: the status line and headers, for the event stream and
//! for plain replies.
//!
//! Spec: RFC 9112 §4 (status line) and §6.3 (message body length), RFC 9110
//! §15 (status codes), <https://www.rfc-editor.org/rfc/rfc9112>.
//!
//! ```text
//! status-line = HTTP-version SP status-code SP [ reason-phrase ]
//! ```
//!
//! Plain replies carry `Content-Length` and `Connection: close`, and the
//! server closes after them: one request per connection keeps the thread's
//! life simple. An event stream has neither `Content-Length` nor chunked
//! encoding: §6.3 says such a response's body ends when the server closes
//! the connection, which is exactly what an endless stream wants.
//!
//! Every response carries `Date` (RFC 9110 §6.6.1: an origin server with a
//! clock MUST send it on 2xx, 3xx and 4xx responses). Pure: no sockets, and
//! no clock either: the caller passes the time in, so tests can pin it.

use std::io::Write;
use std::time::SystemTime;

use crate::httpdate;

/// A complete plain (non-stream) reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A `text/plain` reply; the body gets a final line break.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::new(
            status,
            "text/plain; charset=utf-8",
            format!("{body}\n").into_bytes(),
        )
    }

    /// An `application/json` reply.
    pub fn json(status: u16, body: String) -> Reply {
        Reply::new(status, "application/json", body.into_bytes())
    }

    /// A `text/html` reply.
    pub fn html(body: &str) -> Reply {
        Reply::new(200, "text/html; charset=utf-8", body.as_bytes().to_vec())
    }

    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// A page that never changes while the server runs (the demo page), with
    /// a validator so a cache may keep it but asks each time whether it is
    /// still current: `Cache-Control: no-cache` (RFC 9111 §5.2.2.4) and an
    /// `ETag` (RFC 9110 §8.8.3). A request whose `If-None-Match` names that
    /// tag gets `304 Not Modified` and no body (RFC 9110 §13.1.2, §15.4.5).
    ///
    /// Simplification: only the first `If-None-Match` line is read; a client
    /// that splits the list over several lines gets the full page.
    pub fn cached_page(page: &'static str, if_none_match: Option<&str>) -> Reply {
        let tag = entity_tag(page.as_bytes());
        let status = match if_none_match {
            Some(list) if none_match_lists(list, &tag) => 304,
            _ => 200,
        };
        let mut reply = Reply::html(page);
        reply.status = status;
        reply
            .with_header("Cache-Control", "no-cache")
            .with_header("ETag", tag)
    }

    /// Adds a header such as `Allow` or `Retry-After`.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire, dated `now`. A reply to `HEAD` has the same
    /// headers, `Content-Length` included, and no body (RFC 9110 §9.3.2).
    pub fn to_bytes(&self, head_only: bool, now: SystemTime) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(160 + self.body.len());
        // Writing into a Vec cannot fail, so the io::Results are ignored.
        let _ = write!(
            bytes,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        write_date(&mut bytes, now);
        // A 304 has no body (RFC 9112 §6.3) and should not describe one
        // (RFC 9110 §15.4.5): no Content-Type, no Content-Length.
        let not_modified = self.status == 304;
        if !not_modified {
            let _ = write!(bytes, "Content-Type: {}\r\n", self.content_type);
            let _ = write!(bytes, "Content-Length: {}\r\n", self.body.len());
        }
        for (name, value) in &self.headers {
            let _ = write!(bytes, "{name}: {value}\r\n");
        }
        bytes.extend_from_slice(b"Connection: close\r\n\r\n");
        if !head_only && !not_modified {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Appends the status line and headers that start an event stream. The
/// original's headers, with `charset=utf-8` (event streams are always UTF-8,
/// WHATWG §9.2.5) and `no-transform` (so no proxy recompresses or rewrites
/// it). `X-Accel-Buffering: no` tells nginx not to hold frames back.
/// `Date` is added as RFC 9110 §6.6.1 requires.
pub fn write_stream_head(out: &mut Vec<u8>, allow_origin: Option<&str>, now: SystemTime) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    write_date(out, now);
    out.extend_from_slice(b"Content-Type: text/event-stream; charset=utf-8\r\n");
    out.extend_from_slice(b"Cache-Control: no-cache, no-transform\r\n");
    // As the original sends it. In HTTP/1.1 it changes nothing: this
    // response has no length, so it still ends when the connection closes.
    out.extend_from_slice(b"Connection: keep-alive\r\n");
    out.extend_from_slice(b"X-Accel-Buffering: no\r\n");
    if let Some(origin) = allow_origin {
        out.extend_from_slice(b"Access-Control-Allow-Origin: ");
        out.extend_from_slice(origin.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// [`write_stream_head`] into a new buffer.
pub fn stream_head(allow_origin: Option<&str>, now: SystemTime) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    write_stream_head(&mut head, allow_origin, now);
    head
}

/// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n` (RFC 9110 §6.6.1, §5.6.7),
/// formatted into a fixed array: no allocation of its own.
fn write_date(out: &mut Vec<u8>, now: SystemTime) {
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(&httpdate::format(now));
    out.extend_from_slice(b"\r\n");
}

/// A strong entity tag for `bytes` (RFC 9110 §8.8.3): `"` + 16 hex digits
/// of their 64-bit FNV-1a hash + `"`. The tag only has to change when the
/// bytes do; nobody gains by forging one, so a fast non-cryptographic hash
/// is enough.
pub fn entity_tag(bytes: &[u8]) -> String {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    });
    format!("\"{hash:016x}\"")
}

/// Whether an `If-None-Match` value names `tag`, so the answer is 304
/// (RFC 9110 §13.1.2). The field is `"*"` or a comma-separated list of
/// entity tags, and the comparison is weak: a `W/` prefix is ignored
/// (§8.8.3.2).
///
/// ```text
/// If-None-Match = "*" / #entity-tag
/// entity-tag    = [ weak ] opaque-tag      ; weak = %s"W/"
/// ```
pub fn none_match_lists(if_none_match: &str, tag: &str) -> bool {
    if if_none_match.trim() == "*" {
        return true;
    }
    // Simplification: splitting on commas would cut a tag that contains
    // one; our own tags never do, so such a tag simply never matches.
    if_none_match.split(',').any(|listed| {
        let listed = listed.trim();
        listed.strip_prefix("W/").unwrap_or(listed) == tag
    })
}

/// The reason phrases of RFC 9110 §15 for the codes we send. The status
/// line is always `HTTP/1.1`, for HTTP/1.0 clients too, as RFC 9110 §6.2
/// expects ("the highest minor version … to which the server is
/// conformant").
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// RFC 9110's own example instant, `Sun, 06 Nov 1994 08:49:37 GMT`.
    fn pinned() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[track_caller]
    fn check(bytes: Vec<u8>, expected: &str) {
        assert_eq!(String::from_utf8(bytes).expect("test setup"), expected);
    }

    #[test]
    fn plain_text_reply() {
        check(
            Reply::text(404, "unknown path").to_bytes(false, pinned()),
            "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 13\r\nConnection: close\r\n\r\nunknown path\n",
        );
    }

    #[test]
    fn head_reply_keeps_the_length_and_drops_the_body() {
        check(
            Reply::json(200, "{}".into()).to_bytes(true, pinned()),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n",
        );
    }

    #[test]
    fn extra_headers_come_before_connection() {
        check(
            Reply::text(405, "x")
                .with_header("Allow", "GET, HEAD")
                .to_bytes(false, pinned()),
            "HTTP/1.1 405 Method Not Allowed\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 2\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\nx\n",
        );
    }

    #[test]
    fn the_date_follows_the_clock_passed_in() {
        let later = pinned() + Duration::from_secs(86_400 + 61);
        let bytes = Reply::text(503, "full").to_bytes(true, later);
        let head = String::from_utf8(bytes).expect("test setup");
        assert!(
            head.contains("\r\nDate: Mon, 07 Nov 1994 08:50:38 GMT\r\n"),
            "{head}"
        );
    }

    #[test]
    fn a_cached_page_has_a_validator_and_no_cache() {
        let tag = entity_tag(b"<p>hi</p>");
        check(
            Reply::cached_page("<p>hi</p>", None).to_bytes(false, pinned()),
            &format!(
                "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                 Content-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n\
                 Cache-Control: no-cache\r\nETag: {tag}\r\nConnection: close\r\n\r\n<p>hi</p>"
            ),
        );
    }

    #[test]
    fn a_matching_if_none_match_gets_304_without_body_or_length() {
        let tag = entity_tag(b"<p>hi</p>");
        check(
            Reply::cached_page("<p>hi</p>", Some(&tag)).to_bytes(false, pinned()),
            &format!(
                "HTTP/1.1 304 Not Modified\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                 Cache-Control: no-cache\r\nETag: {tag}\r\nConnection: close\r\n\r\n"
            ),
        );
    }

    #[test]
    fn if_none_match_lists() {
        #[track_caller]
        fn check_match(field: &str, expected: bool) {
            assert_eq!(none_match_lists(field, "\"abc\""), expected, "{field}");
        }
        check_match("\"abc\"", true);
        check_match("*", true);
        check_match(" * ", true);
        check_match("W/\"abc\"", true); // weak comparison, RFC 9110 §8.8.3.2
        check_match("\"x\", \"abc\"", true);
        check_match("\"x\",W/\"abc\" ", true);
        check_match("\"abcd\"", false);
        check_match("abc", false); // not quoted: not an entity tag
        check_match("", false);
        check_match("\"x\", *", false); // `*` only counts alone
    }

    #[test]
    fn entity_tags_are_quoted_and_change_with_the_bytes() {
        // FNV-1a of the empty input is the offset basis itself.
        assert_eq!(entity_tag(b""), "\"cbf29ce484222325\"");
        assert_eq!(entity_tag(b"a"), "\"af63dc4c8601ec8c\"");
        assert_ne!(entity_tag(b"page 1"), entity_tag(b"page 2"));
    }

    #[test]
    fn stream_head_has_the_sse_headers_and_no_length() {
        check(
            stream_head(None, pinned()),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/event-stream; charset=utf-8\r\n\
             Cache-Control: no-cache, no-transform\r\nConnection: keep-alive\r\n\
             X-Accel-Buffering: no\r\n\r\n",
        );
    }

    #[test]
    fn stream_head_with_allowed_origin() {
        let head = String::from_utf8(stream_head(Some("https://a.example"), pinned()))
            .expect("test setup");
        assert!(head.ends_with("Access-Control-Allow-Origin: https://a.example\r\n\r\n"));
    }
}
