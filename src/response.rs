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
//! the connection, which is exactly what an endless stream wants. Pure: no
//! sockets.

use std::fmt::Write;

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

    /// A reply with any content type (`/metrics` has its own).
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header such as `Allow` or `Retry-After`.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire. A reply to `HEAD` has the same headers,
    /// `Content-Length` included, and no body (RFC 9110 §9.3.2).
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = status_line(self.status);
        let _ = write!(head, "Content-Type: {}\r\n", self.content_type);
        let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Appends the status line and headers that start an event stream. The
/// original's headers, with `charset=utf-8` (event streams are always UTF-8,
/// WHATWG §9.2.5) and `no-transform` (so no proxy recompresses or rewrites
/// it). `X-Accel-Buffering: no` tells nginx not to hold frames back.
pub fn write_stream_head(out: &mut Vec<u8>, allow_origin: Option<&str>) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
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
pub fn stream_head(allow_origin: Option<&str>) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    write_stream_head(&mut head, allow_origin);
    head
}

/// `HTTP/1.1 200 OK\r\n`. We answer HTTP/1.0 clients with HTTP/1.1 too, as
/// RFC 9110 §6.2 expects ("the highest minor version … to which the server
/// is conformant").
fn status_line(status: u16) -> String {
    format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status))
}

/// The reason phrases of RFC 9110 §15 for the codes we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
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

    #[track_caller]
    fn check(bytes: Vec<u8>, expected: &str) {
        assert_eq!(String::from_utf8(bytes).expect("test setup"), expected);
    }

    #[test]
    fn plain_text_reply() {
        check(
            Reply::text(404, "unknown path").to_bytes(false),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 13\r\nConnection: close\r\n\r\nunknown path\n",
        );
    }

    #[test]
    fn head_reply_keeps_the_length_and_drops_the_body() {
        check(
            Reply::json(200, "{}".into()).to_bytes(true),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n",
        );
    }

    #[test]
    fn extra_headers_come_before_connection() {
        check(
            Reply::text(405, "x")
                .with_header("Allow", "GET, HEAD")
                .to_bytes(false),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 2\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\nx\n",
        );
    }

    #[test]
    fn stream_head_has_the_sse_headers_and_no_length() {
        check(
            stream_head(None),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
             Cache-Control: no-cache, no-transform\r\nConnection: keep-alive\r\n\
             X-Accel-Buffering: no\r\n\r\n",
        );
    }

    #[test]
    fn stream_head_with_allowed_origin() {
        let head = String::from_utf8(stream_head(Some("https://a.example"))).expect("test setup");
        assert!(head.ends_with("Access-Control-Allow-Origin: https://a.example\r\n\r\n"));
    }
}
