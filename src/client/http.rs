//! The client's half of HTTP/1.1, pure: URLs, request heads, response
//! heads, and the framing of a response body, chunked decoding included.
//!
//! Spec: RFC 9112 (HTTP/1.1), <https://www.rfc-editor.org/rfc/rfc9112>;
//! RFC 3986 §3 for the URL.
//!
//! ```text
//! http-URI     = "http" "://" authority path-abempty [ "?" query ]   ; RFC 9110 §4.2.1
//! status-line  = HTTP-version SP status-code SP [ reason-phrase ]    ; RFC 9112 §4
//! chunked-body = *chunk last-chunk trailer-section CRLF              ; RFC 9112 §7.1
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! Our own server never sends a chunked body (an event stream is simply
//! read until the connection closes), but nginx, Node and most frameworks
//! do, so `listen` must undo it before the event-stream parser sees the
//! bytes. This module never touches a socket; `transport.rs` does.

use std::fmt::Write as _;

use crate::limits::{MAX_CHUNK_LINE_BYTES, MAX_RESPONSE_HEAD_BYTES, MAX_TRAILER_BYTES};

/// An `http://` URL, split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The host as written, without brackets (`127.0.0.1`, `::1`, `example`).
    pub host: String,
    pub port: u16,
    /// The `Host` header value: the authority as written (`[::1]:3000`).
    pub authority: String,
    /// Path and query, at least `/`: the request-target (RFC 9112 §3.2.1).
    pub target: String,
}

/// Why a URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Occurs when the URL is `https://`: TLS needs a library we do not use.
    Https,
    /// Occurs when the URL is not `http://host[:port][/path][?query]`; the
    /// text says what is wrong.
    Malformed(&'static str),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Https => formatter.write_str(
                "https is not supported (no TLS without dependencies): use curl, \
                 or a local nginx that terminates TLS (scripts/nginx/sse-server.conf)",
            ),
            UrlError::Malformed(why) => write!(formatter, "not an http:// URL: {why}"),
        }
    }
}

/// Parses `http://host[:port][/path][?query][#fragment]`; the fragment is
/// dropped, as a browser does before sending a request.
pub fn parse_url(text: &str) -> Result<Url, UrlError> {
    let scheme_end = text.find("://").ok_or(UrlError::Malformed("no scheme"))?;
    let scheme = &text[..scheme_end];
    if scheme.eq_ignore_ascii_case("https") {
        return Err(UrlError::Https);
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(UrlError::Malformed("the scheme must be http"));
    }
    let rest = &text[scheme_end + 3..];
    let rest = rest.split('#').next().unwrap_or(rest);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(UrlError::Malformed("user:password@ is not supported"));
    }
    let (host, port) = split_host_port(authority)?;
    let target = match target {
        "" => "/".to_string(),
        query if query.starts_with('?') => format!("/{query}"),
        path => path.to_string(),
    };
    // A request line cannot hold spaces or control characters.
    if target.bytes().any(|byte| byte <= b' ' || byte == 0x7f) {
        return Err(UrlError::Malformed(
            "spaces or control characters in the path",
        ));
    }
    Ok(Url {
        host,
        port,
        authority: authority.to_string(),
        target,
    })
}

fn split_host_port(authority: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or(UrlError::Malformed("unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-_:".contains(&byte))
    {
        return Err(UrlError::Malformed("bad host"));
    }
    let port = match port {
        None => 80,
        Some(digits) => digits
            .parse()
            .map_err(|_| UrlError::Malformed("bad port"))?,
    };
    Ok((host.to_string(), port))
}

impl Url {
    /// This URL's target with `path` appended (`/base` + `/send/alice`).
    pub fn with_path(&self, path: &str) -> String {
        let base = self.target.split('?').next().unwrap_or("");
        format!("{}{path}", base.trim_end_matches('/'))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a
/// path segment or a query value.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The request head of an event-stream `GET` (WHATWG HTML §9.2.2: the
/// `Accept` and `Cache-Control` an `EventSource` sends; §9.2.3: the
/// `Last-Event-ID` of a reconnection).
///
/// `last_event_id` must hold no CR, LF or NUL; ids from the parser never
/// do (a line ends at CR or LF, and an id with NUL is ignored).
pub fn stream_request(url: &Url, last_event_id: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
        url.target, url.authority
    );
    if let Some(id) = last_event_id.filter(|id| !id.is_empty()) {
        let _ = write!(head, "Last-Event-ID: {id}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The request head of a `POST` with a `text/plain` body of `body_len`
/// bytes, and a bearer token if given (RFC 6750 §2.1).
pub fn post_request(url: &Url, target: &str, body_len: usize, token: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {body_len}\r\nConnection: close\r\n",
        url.authority
    );
    if let Some(token) = token {
        let _ = write!(head, "Authorization: Bearer {token}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header with this name (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the media type is `text/event-stream`, parameters aside
    /// (WHATWG HTML §9.2.2 checks the MIME type's essence; WPT
    /// format-mime-trailing-semicolon accepts `text/event-stream;`).
    pub fn is_event_stream(&self) -> bool {
        self.header("Content-Type").is_some_and(|value| {
            let essence = value.split(';').next().unwrap_or("");
            essence.trim().eq_ignore_ascii_case("text/event-stream")
        })
    }

    /// How the body is delimited (RFC 9112 §6.3).
    pub fn framing(&self) -> Result<Framing, ResponseError> {
        if self.status == 204 || self.status == 304 || self.status < 200 {
            return Ok(Framing::Length(0));
        }
        if let Some(codings) = self.header("Transfer-Encoding") {
            // §6.3 rule 4: chunked as the final coding frames the body;
            // any other final coding means "read until close".
            let last = codings.rsplit(',').next().unwrap_or("").trim();
            return Ok(if last.eq_ignore_ascii_case("chunked") {
                Framing::Chunked(ChunkedDecoder::default())
            } else {
                Framing::UntilClose
            });
        }
        match self.header("Content-Length") {
            Some(value) => value
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| ResponseError::BadContentLength),
            None => Ok(Framing::UntilClose),
        }
    }
}

/// The outcome of looking at the response bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadParse {
    /// A complete head; the body starts at `head_len`.
    Complete { head: ResponseHead, head_len: usize },
    /// The blank line ending the head has not arrived yet.
    Partial,
}

/// Why a response cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Occurs when the first line is not `HTTP/1.x NNN reason`.
    BadStatusLine,
    /// Occurs when a header line has no colon or an empty name.
    BadHeader,
    /// Occurs when the head is longer than [`MAX_RESPONSE_HEAD_BYTES`].
    HeadTooLarge,
    /// Occurs when `Content-Length` is not a number.
    BadContentLength,
    /// Occurs when a chunk-size line is not hex digits (with optional
    /// extensions), or a chunk's data is not followed by CRLF.
    BadChunk,
    /// Occurs when a chunk-size or trailer line is longer than
    /// [`MAX_CHUNK_LINE_BYTES`], or the trailers than [`MAX_TRAILER_BYTES`].
    ChunkLineTooLong,
}

impl ResponseError {
    /// A short lowercase reason.
    pub fn reason(self) -> &'static str {
        match self {
            ResponseError::BadStatusLine => "malformed status line",
            ResponseError::BadHeader => "malformed response header",
            ResponseError::HeadTooLarge => "response head too large",
            ResponseError::BadContentLength => "malformed content-length",
            ResponseError::BadChunk => "malformed chunked encoding",
            ResponseError::ChunkLineTooLong => "chunk-size or trailer line too long",
        }
    }
}

/// Parses the response head at the start of `buf`. Lines may end in CRLF
/// or a bare LF (RFC 9112 §2.2 lets a recipient accept it).
pub fn parse_head(buf: &[u8]) -> Result<HeadParse, ResponseError> {
    let Some((head_end, head_len)) = find_blank_line(buf) else {
        return if buf.len() > MAX_RESPONSE_HEAD_BYTES {
            Err(ResponseError::HeadTooLarge)
        } else {
            Ok(HeadParse::Partial)
        };
    };
    if head_len > MAX_RESPONSE_HEAD_BYTES {
        return Err(ResponseError::HeadTooLarge);
    }
    let text = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let status_line = lines.next().unwrap_or("");
    let (status, reason) = parse_status_line(status_line)?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ResponseError::BadHeader)?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(ResponseError::BadHeader);
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(HeadParse::Complete {
        head: ResponseHead {
            status,
            reason,
            headers,
        },
        head_len,
    })
}

/// `HTTP/1.1 200 OK` → (200, "OK").
fn parse_status_line(line: &str) -> Result<(u16, String), ResponseError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let reason = parts.next().unwrap_or("");
    let version_ok = version.len() == 8 && version.starts_with("HTTP/1.");
    if !version_ok || code.len() != 3 || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ResponseError::BadStatusLine);
    }
    let status = code.parse().map_err(|_| ResponseError::BadStatusLine)?;
    Ok((status, reason.to_string()))
}

/// The end of the head's text and the head's length with its blank line.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut index = 0;
    while let Some(offset) = buf[index..].iter().position(|&byte| byte == b'\n') {
        let newline = index + offset;
        let rest = &buf[newline + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((newline, newline + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((newline, newline + 2));
        }
        index = newline + 1;
    }
    None
}

/// How a response body ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`: decode, and stop at the last chunk.
    Chunked(ChunkedDecoder),
    /// `Content-Length`: this many bytes are left.
    Length(u64),
    /// Neither: the body ends when the server closes the connection, as our
    /// own event streams do.
    UntilClose,
}

impl Framing {
    /// Appends the body bytes in `input` to `out`. Returns `true` once the
    /// body is complete (bytes after it are ignored: we send no second
    /// request on this connection).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, ResponseError> {
        match self {
            Framing::Chunked(decoder) => decoder.decode(input, out),
            Framing::Length(remaining) => {
                let take = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                Ok(*remaining == 0)
            }
            Framing::UntilClose => {
                out.extend_from_slice(input);
                Ok(false)
            }
        }
    }
}

/// A streaming decoder for `Transfer-Encoding: chunked` (RFC 9112 §7.1):
/// bytes in any split, chunk data out, state kept between calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// The chunk-size or trailer line read so far.
    line: Vec<u8>,
    trailer_bytes: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading `chunk-size [ chunk-ext ] CRLF`.
    #[default]
    Size,
    /// Copying chunk data; this many bytes are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    /// The body is complete.
    Done,
}

impl ChunkedDecoder {
    /// Decodes `input` into `out`; `true` once the last chunk and the
    /// trailer section have been read.
    pub fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, ResponseError> {
        while !input.is_empty() && self.state != ChunkState::Done {
            input = match self.state {
                ChunkState::Data(remaining) => {
                    let take = input
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[..take]);
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    &input[take..]
                }
                _ => self.read_line_byte(input)?,
            };
        }
        Ok(self.state == ChunkState::Done)
    }

    /// Takes bytes up to and including an LF into `line`, and acts on a
    /// complete line. Returns the rest of `input`.
    fn read_line_byte<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], ResponseError> {
        let (taken, complete) = match input.iter().position(|&byte| byte == b'\n') {
            Some(index) => (&input[..index], Some(index + 1)),
            None => (input, None),
        };
        if self.line.len() + taken.len() > MAX_CHUNK_LINE_BYTES {
            return Err(ResponseError::ChunkLineTooLong);
        }
        self.line.extend_from_slice(taken);
        let Some(consumed) = complete else {
            return Ok(&[]);
        };
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.on_line(&line)?;
        Ok(&input[consumed..])
    }

    fn on_line(&mut self, line: &[u8]) -> Result<(), ResponseError> {
        match self.state {
            ChunkState::Size => {
                let size = parse_chunk_size(line)?;
                self.state = if size == 0 {
                    ChunkState::Trailer
                } else {
                    ChunkState::Data(size)
                };
            }
            ChunkState::DataEnd if line.is_empty() => self.state = ChunkState::Size,
            ChunkState::DataEnd => return Err(ResponseError::BadChunk),
            ChunkState::Trailer if line.is_empty() => self.state = ChunkState::Done,
            ChunkState::Trailer => {
                // Trailer fields are read and dropped (§7.1.2 lets a
                // recipient discard them).
                self.trailer_bytes += line.len();
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(ResponseError::ChunkLineTooLong);
                }
            }
            ChunkState::Data(_) | ChunkState::Done => {}
        }
        Ok(())
    }
}

/// `chunk-size = 1*HEXDIG`, then optional `BWS ";" chunk-ext`.
fn parse_chunk_size(line: &[u8]) -> Result<u64, ResponseError> {
    let text = std::str::from_utf8(line).map_err(|_| ResponseError::BadChunk)?;
    let digits = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim_end_matches([' ', '\t']);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ResponseError::BadChunk);
    }
    // More than 16 hex digits overflows a u64: refused, not wrapped.
    u64::from_str_radix(digits, 16).map_err(|_| ResponseError::BadChunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_url(text: &str, expected: &str) {
        let actual = match parse_url(text) {
            Ok(url) => format!("{} {} {} {}", url.host, url.port, url.authority, url.target),
            Err(UrlError::Https) => "https".to_string(),
            Err(UrlError::Malformed(why)) => format!("error: {why}"),
        };
        assert_eq!(actual, expected, "url: {text:?}");
    }

    #[test]
    fn urls() {
        check_url(
            "http://127.0.0.1:3000/sse/alice",
            "127.0.0.1 3000 127.0.0.1:3000 /sse/alice",
        );
        check_url("http://localhost", "localhost 80 localhost /");
        check_url("HTTP://h:1?x=1#frag", "h 1 h:1 /?x=1");
        check_url("http://[::1]:8080/a?b", "::1 8080 [::1]:8080 /a?b");
        check_url("https://example.com/", "https");
        check_url("ftp://x/", "error: the scheme must be http");
        check_url("127.0.0.1:3000", "error: no scheme");
        check_url("http://u:p@h/", "error: user:password@ is not supported");
        check_url("http://h:99999/", "error: bad port");
        check_url("http:///x", "error: bad host");
        check_url(
            "http://h/a b",
            "error: spaces or control characters in the path",
        );
    }

    #[test]
    fn with_path_appends_to_the_base_path() {
        let url = parse_url("http://h:1/").expect("valid");
        assert_eq!(url.with_path("/broadcast"), "/broadcast");
        let url = parse_url("http://h:1/prefix/?x").expect("valid");
        assert_eq!(url.with_path("/send/a"), "/prefix/send/a");
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(percent_encode("alice-1_2.3~"), "alice-1_2.3~");
        assert_eq!(percent_encode("a b/é?"), "a%20b%2F%C3%A9%3F");
    }

    #[test]
    fn stream_request_head() {
        let url = parse_url("http://127.0.0.1:3000/sse/a").expect("valid");
        assert_eq!(
            String::from_utf8(stream_request(&url, Some("1764509000123-0"))).expect("ascii"),
            "GET /sse/a HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nAccept: text/event-stream\r\n\
             Cache-Control: no-cache\r\nLast-Event-ID: 1764509000123-0\r\n\r\n"
        );
        let without = String::from_utf8(stream_request(&url, Some(""))).expect("ascii");
        assert!(!without.contains("Last-Event-ID"));
    }

    #[test]
    fn post_request_head() {
        let url = parse_url("http://h:1").expect("valid");
        assert_eq!(
            String::from_utf8(post_request(&url, "/broadcast", 5, Some("t0k"))).expect("ascii"),
            "POST /broadcast HTTP/1.1\r\nHost: h:1\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 5\r\nConnection: close\r\nAuthorization: Bearer t0k\r\n\r\n"
        );
    }

    /// Parses a head and summarizes it as `status reason|name=value|… +len`.
    #[track_caller]
    fn check_head(input: &[u8], expected: &str) {
        let actual = match parse_head(input) {
            Ok(HeadParse::Complete { head, head_len }) => {
                let mut text = format!("{} {}", head.status, head.reason);
                for (name, value) in &head.headers {
                    let _ = write!(text, "|{name}={value}");
                }
                format!("{text} +{head_len}")
            }
            Ok(HeadParse::Partial) => "partial".to_string(),
            Err(error) => format!("{error:?}"),
        };
        assert_eq!(
            actual,
            expected,
            "input: {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn response_heads() {
        check_head(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata",
            "200 OK|Content-Type=text/event-stream +52",
        );
        check_head(b"HTTP/1.0 204 No Content\n\n", "204 No Content +25");
        check_head(b"HTTP/1.1 404 \r\n\r\n", "404  +17");
        check_head(b"HTTP/1.1 200 OK\r\nX:  a b \r\n", "partial");
        check_head(b"HTTP/1.1 200 OK\r\nX:  a b \r\n\r\n", "200 OK|X=a b +29");
        check_head(b"HTTP/2 200\r\n\r\n", "BadStatusLine");
        check_head(b"HTTP/1.1 20 OK\r\n\r\n", "BadStatusLine");
        check_head(b"SSH-2.0-OpenSSH\r\n\r\n", "BadStatusLine");
        check_head(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "BadHeader");
        check_head(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "BadHeader");
        let endless = vec![b'x'; MAX_RESPONSE_HEAD_BYTES + 1];
        check_head(&endless, "HeadTooLarge");
    }

    fn head_with(headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            status: 200,
            reason: "OK".into(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        }
    }

    #[test]
    fn event_stream_media_type() {
        for (value, expected) in [
            ("text/event-stream", true),
            ("text/event-stream; charset=utf-8", true),
            ("text/event-stream;", true),
            ("TEXT/Event-Stream", true),
            ("text/x-bogus", false),
            ("x bogus", false),
            ("text/event-streamx", false),
        ] {
            let head = head_with(&[("content-type", value)]);
            assert_eq!(head.is_event_stream(), expected, "{value}");
        }
        assert!(!head_with(&[]).is_event_stream());
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let chunked = Framing::Chunked(ChunkedDecoder::default());
        assert_eq!(
            head_with(&[("Transfer-Encoding", "chunked")]).framing(),
            Ok(chunked.clone())
        );
        assert_eq!(
            head_with(&[
                ("Transfer-Encoding", "gzip, chunked"),
                ("Content-Length", "3")
            ])
            .framing(),
            Ok(chunked)
        );
        assert_eq!(
            head_with(&[("Transfer-Encoding", "gzip")]).framing(),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            head_with(&[("Content-Length", "12")]).framing(),
            Ok(Framing::Length(12))
        );
        assert_eq!(head_with(&[]).framing(), Ok(Framing::UntilClose));
        assert_eq!(
            head_with(&[("Content-Length", "x")]).framing(),
            Err(ResponseError::BadContentLength)
        );
        let mut no_content = head_with(&[("Content-Length", "9")]);
        no_content.status = 204;
        assert_eq!(no_content.framing(), Ok(Framing::Length(0)));
    }

    #[test]
    fn content_length_stops_at_its_length() {
        let mut framing = Framing::Length(5);
        let mut out = Vec::new();
        assert_eq!(framing.decode(b"abc", &mut out), Ok(false));
        assert_eq!(framing.decode(b"defgh", &mut out), Ok(true));
        assert_eq!(out, b"abcde");
    }

    /// Decodes `input` whole and byte by byte; both must give `expected`
    /// (the body, then `+done` when the last chunk was read) or the error.
    #[track_caller]
    fn check_chunked(input: &[u8], expected: &str) {
        let run = |pieces: Vec<&[u8]>| {
            let mut decoder = ChunkedDecoder::default();
            let mut out = Vec::new();
            let mut done = false;
            for piece in pieces {
                match decoder.decode(piece, &mut out) {
                    Ok(complete) => done = complete,
                    Err(error) => return format!("{error:?}"),
                }
            }
            format!(
                "{}{}",
                String::from_utf8_lossy(&out),
                if done { "+done" } else { "" }
            )
        };
        assert_eq!(run(vec![input]), expected, "whole");
        assert_eq!(run(input.chunks(1).collect()), expected, "byte by byte");
    }

    #[test]
    fn chunked_bodies() {
        check_chunked(
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            "hello world+done",
        );
        check_chunked(
            b"a\r\n0123456789\r\nA\r\n0123456789\r\n",
            "01234567890123456789",
        );
        check_chunked(b"3;name=value\r\nabc\r\n0\r\n\r\n", "abc+done");
        check_chunked(b"3 ;x\r\nabc\r\n000\r\nExpires: never\r\n\r\n", "abc+done");
        check_chunked(b"3\nabc\n0\n\n", "abc+done");
        check_chunked(b"3\r\nabc\r\n", "abc");
        check_chunked(b"0\r\n\r\nignored", "+done");
    }

    #[test]
    fn malformed_chunks_are_errors() {
        check_chunked(b"x\r\n", "BadChunk");
        check_chunked(b"\r\n", "BadChunk");
        check_chunked(b"-1\r\n", "BadChunk");
        check_chunked(b"3\r\nabcd\r\n", "BadChunk");
        check_chunked(b"11111111111111111\r\n", "BadChunk");
        let long_line = format!("1;{}\r\n", "x".repeat(MAX_CHUNK_LINE_BYTES));
        check_chunked(long_line.as_bytes(), "ChunkLineTooLong");
        let mut many_trailers = b"0\r\n".to_vec();
        for _ in 0..(MAX_TRAILER_BYTES / 8) {
            many_trailers.extend_from_slice(b"X: 123456\r\n");
        }
        check_chunked(&many_trailers, "ChunkLineTooLong");
    }

    #[test]
    fn a_huge_chunk_size_streams_without_buffering() {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        assert_eq!(
            decoder.decode(b"ffffffffffffffff\r\nabc", &mut out),
            Ok(false)
        );
        assert_eq!(out, b"abc");
    }
}
