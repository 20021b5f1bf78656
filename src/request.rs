//! Parsing an HTTP/1.1 request head: bytes in, [`Request`] or
//! [`RequestError`] out.
//!
//! Spec: RFC 9112 (HTTP/1.1 message syntax), <https://www.rfc-editor.org/rfc/rfc9112>,
//! and RFC 9110 (semantics) for methods and status codes.
//!
//! ```text
//! HTTP-message   = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]   ; §2.1
//! request-line   = method SP request-target SP HTTP-version                   ; §3
//! method         = token                                                      ; §3.1
//! HTTP-version   = "HTTP" "/" DIGIT "." DIGIT                                 ; §2.3
//! field-line     = field-name ":" OWS field-value OWS                         ; §5
//! token          = 1*tchar   (RFC 9110 §5.6.2)
//! ```
//!
//! This module never touches a socket: [`parse`] is a pure function over the
//! bytes read so far, in the style of the `httparse` crate. It tells
//! "not enough bytes yet" ([`Parse::Partial`]) apart from "these bytes can
//! never become a valid request" ([`RequestError`]), so the caller can stop
//! reading garbage at once instead of waiting for the head timeout.
//!
//! Choices where the RFC lets a server choose:
//! - A bare LF is accepted as a line ending, like CRLF (RFC 9112 §2.2 allows
//!   it). A bare CR is rejected.
//! - Empty lines before the request line are skipped (§2.2 says a server
//!   SHOULD ignore at least one).
//! - Obsolete line folding (a header line starting with a space) is rejected
//!   with `400` (§5.2 allows that).
//! - Whitespace between a field name and its colon is rejected with `400`
//!   (§5.1: a server MUST).
//! - `HTTP/1.x` with a minor version above 1 is treated as HTTP/1.1 (§2.6);
//!   any other major version gets `505`.

use crate::limits::{MAX_HEADER_COUNT, MAX_HEAD_BYTES};

/// A parsed request head. Owns its strings, so the read buffer can be freed
/// as soon as parsing is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path part of the request-target, still percent-encoded. For an
    /// absolute-form target (`GET http://host/path`) this is `/path`.
    pub path: String,
    /// The query after `?`, without the `?`, still percent-encoded.
    pub query: Option<String>,
    pub version: Version,
    pub headers: Vec<Header>,
}

/// One header field. Names compare case-insensitively (RFC 9110 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    /// The value with surrounding whitespace removed. Bytes that are not
    /// UTF-8 (allowed as obs-text) are replaced with U+FFFD.
    pub value: String,
}

/// Request methods (RFC 9110 §9). Methods are case-sensitive: `get` is not
/// `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    /// A method defined by RFC 9110 that this server does not allow on any
    /// resource (`PUT`, `DELETE`, …): `405`.
    OtherStandard(String),
    /// A syntactically valid method nobody defined: `501 Not Implemented`
    /// (RFC 9110 §9.1).
    Unknown(String),
}

impl Method {
    /// The method as it appeared on the request line.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::OtherStandard(name) | Method::Unknown(name) => name,
        }
    }
}

/// The HTTP versions we serve (RFC 9112 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// A complete head. `head_len` counts its bytes, the final empty line
    /// included; anything after it is body or a pipelined request.
    Complete { request: Request, head_len: usize },
    /// Valid so far, but the empty line ending the head has not arrived.
    Partial,
}

/// Why a head can never become a valid request. [`RequestError::status`]
/// is the one place that maps these to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Occurs when the request line is not `method SP target SP version`,
    /// or the method is not a token (binary bytes, a TLS ClientHello).
    BadRequestLine,
    /// Occurs when the request-target is not origin-form or absolute-form,
    /// or holds bytes a URI cannot hold.
    BadTarget,
    /// Occurs when the version is not `HTTP/DIGIT.DIGIT`.
    BadVersion,
    /// Occurs when the version is well-formed but not HTTP/1.x (`HTTP/2.0`).
    UnsupportedVersion,
    /// Occurs when a header line has no colon, a bad name, whitespace before
    /// the colon, a control character, or is an obsolete folded line.
    BadHeader,
    /// Occurs when a line ends in a CR that is not followed by LF.
    BareCarriageReturn,
    /// Occurs when the request line alone is longer than [`MAX_HEAD_BYTES`].
    TargetTooLong,
    /// Occurs when the head is longer than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// Occurs when there are more than [`MAX_HEADER_COUNT`] header lines.
    TooManyHeaders,
    /// Occurs when an HTTP/1.1 request has no `Host` header, or any request
    /// has more than one (RFC 9112 §3.2: the server MUST answer `400`).
    BadHost,
}

impl RequestError {
    /// The status code the client gets for this error.
    pub fn status(self) -> u16 {
        match self {
            RequestError::BadRequestLine
            | RequestError::BadTarget
            | RequestError::BadVersion
            | RequestError::BadHeader
            | RequestError::BareCarriageReturn
            | RequestError::BadHost => 400,
            RequestError::UnsupportedVersion => 505,
            RequestError::TargetTooLong => 414,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
        }
    }

    /// A short lowercase reason, used in the log and the reply body.
    pub fn reason(self) -> &'static str {
        match self {
            RequestError::BadRequestLine => "malformed request line",
            RequestError::BadTarget => "malformed request target",
            RequestError::BadVersion => "malformed http version",
            RequestError::UnsupportedVersion => "http version not supported",
            RequestError::BadHeader => "malformed header line",
            RequestError::BareCarriageReturn => "bare carriage return",
            RequestError::TargetTooLong => "request line too long",
            RequestError::HeadTooLarge => "request head too large",
            RequestError::TooManyHeaders => "too many header fields",
            RequestError::BadHost => "missing or repeated host header",
        }
    }
}

impl Request {
    /// The first header with this name (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_str())
    }

    /// The credentials of `Authorization: Bearer …` (RFC 6750 §2.1; the
    /// scheme is case-insensitive), if the request has them.
    pub fn bearer_token(&self) -> Option<&str> {
        self.header("Authorization")
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, credentials)| credentials.trim())
    }

    /// Every header with this name, in order (for spotting duplicates such as
    /// two `Content-Length`s).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_str())
    }
}

/// Parses the request head at the start of `buf`.
///
/// Returns `Partial` while the head may still become valid, and an error as
/// soon as it cannot (including when it grows past [`MAX_HEAD_BYTES`]).
pub fn parse(buf: &[u8]) -> Result<Parse, RequestError> {
    let start = skip_leading_empty_lines(buf);
    let mut lines = Lines {
        buf,
        position: start,
    };

    // Step 1: the request line.
    let request_line = match lines.next_line()? {
        Some(line) => line,
        None => return check_partial_request_line(&buf[start..], buf.len()),
    };
    let (method, target, version) = parse_request_line(request_line)?;
    let (path, query) = split_target(target)?;

    // Step 2: header lines, up to the empty line.
    let mut headers = Vec::new();
    loop {
        let Some(line) = lines.next_line()? else {
            return check_partial_head(buf.len());
        };
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADER_COUNT {
            return Err(RequestError::TooManyHeaders);
        }
        headers.push(parse_header_line(line)?);
    }

    // Step 3: the whole head must fit the limit, even when it arrived at once.
    if lines.position > MAX_HEAD_BYTES {
        return Err(RequestError::HeadTooLarge);
    }
    let request = Request {
        method,
        path,
        query,
        version,
        headers,
    };
    Ok(Parse::Complete {
        request,
        head_len: lines.position,
    })
}

/// Checks what RFC 9112 requires of a complete head beyond its syntax: an
/// HTTP/1.1 request has exactly one `Host` header, an HTTP/1.0 request at
/// most one (§3.2). Kept apart from [`parse`], which is syntax only.
pub fn validate(request: &Request) -> Result<(), RequestError> {
    let hosts = request.headers_named("Host").count();
    match (request.version, hosts) {
        (Version::Http11, 1) | (Version::Http10, 0 | 1) => Ok(()),
        _ => Err(RequestError::BadHost),
    }
}

/// RFC 9112 §2.2: "a server that is expecting to receive and parse a
/// request-line SHOULD ignore at least one empty line (CRLF) received prior
/// to the request-line".
fn skip_leading_empty_lines(buf: &[u8]) -> usize {
    let mut position = 0;
    loop {
        if buf[position..].starts_with(b"\r\n") {
            position += 2;
        } else if buf[position..].starts_with(b"\n") {
            position += 1;
        } else {
            return position;
        }
    }
}

/// Splits a buffer into lines ending in CRLF or LF, without the ending.
struct Lines<'a> {
    buf: &'a [u8],
    position: usize,
}

impl<'a> Lines<'a> {
    /// The next complete line, `None` if its end has not arrived yet, or an
    /// error for a CR that is not part of a CRLF.
    fn next_line(&mut self) -> Result<Option<&'a [u8]>, RequestError> {
        let rest = &self.buf[self.position..];
        let Some(lf) = rest.iter().position(|&byte| byte == b'\n') else {
            return Ok(None);
        };
        let mut line = &rest[..lf];
        if let Some(without_cr) = line.strip_suffix(b"\r") {
            line = without_cr;
        }
        if line.contains(&b'\r') {
            return Err(RequestError::BareCarriageReturn);
        }
        self.position += lf + 1;
        Ok(Some(line))
    }
}

/// The request line has not ended yet: fail early if what we have can never
/// become one (binary garbage, a TLS handshake) or is already too long.
fn check_partial_request_line(line_so_far: &[u8], total: usize) -> Result<Parse, RequestError> {
    if total > MAX_HEAD_BYTES {
        return Err(RequestError::TargetTooLong);
    }
    // A CR at the very end may be the first half of a CRLF still on its way.
    let line_so_far = line_so_far.strip_suffix(b"\r").unwrap_or(line_so_far);
    let method_so_far = line_so_far
        .split(|&byte| byte == b' ')
        .next()
        .unwrap_or(b"");
    if !method_so_far.iter().all(|&byte| is_tchar(byte)) {
        return Err(RequestError::BadRequestLine);
    }
    let has_control = line_so_far
        .iter()
        .any(|&byte| byte != b'\r' && (byte.is_ascii_control() || byte >= 0x80));
    if has_control {
        return Err(RequestError::BadRequestLine);
    }
    Ok(Parse::Partial)
}

/// The headers have not ended yet: fail early once over the size limit.
/// (The header count is checked as each line is parsed.)
fn check_partial_head(total: usize) -> Result<Parse, RequestError> {
    if total > MAX_HEAD_BYTES {
        Err(RequestError::HeadTooLarge)
    } else {
        Ok(Parse::Partial)
    }
}

/// `request-line = method SP request-target SP HTTP-version` (RFC 9112 §3).
/// Exactly one space between the parts: lenient parsers that accept more are
/// a source of request-smuggling bugs.
fn parse_request_line(line: &[u8]) -> Result<(Method, &[u8], Version), RequestError> {
    if line.len() > MAX_HEAD_BYTES {
        return Err(RequestError::TargetTooLong);
    }
    let mut parts = line.split(|&byte| byte == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::BadRequestLine);
    };
    let method = parse_method(method)?;
    let version = parse_version(version)?;
    if target.is_empty() {
        return Err(RequestError::BadTarget);
    }
    Ok((method, target, version))
}

fn parse_method(token: &[u8]) -> Result<Method, RequestError> {
    if token.is_empty() || !token.iter().all(|&byte| is_tchar(byte)) {
        return Err(RequestError::BadRequestLine);
    }
    // Every byte is a tchar, hence ASCII, so the lossy conversion is exact.
    let name = || String::from_utf8_lossy(token).into_owned();
    Ok(match token {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"POST" => Method::Post,
        b"PUT" | b"DELETE" | b"CONNECT" | b"OPTIONS" | b"TRACE" | b"PATCH" => {
            Method::OtherStandard(name())
        }
        _ => Method::Unknown(name()),
    })
}

/// `HTTP-version = "HTTP" "/" DIGIT "." DIGIT` (RFC 9112 §2.3).
fn parse_version(version: &[u8]) -> Result<Version, RequestError> {
    let [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] = *version else {
        return Err(RequestError::BadVersion);
    };
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return Err(RequestError::BadVersion);
    }
    match (major, minor) {
        (b'1', b'0') => Ok(Version::Http10),
        // §2.6: a higher minor version is processed as the highest we know.
        (b'1', _) => Ok(Version::Http11),
        _ => Err(RequestError::UnsupportedVersion),
    }
}

/// Splits the request-target into path and query (RFC 9112 §3.2).
///
/// Accepted forms: origin-form (`/path?query`) and absolute-form
/// (`http://host/path?query`, which §3.2.2 says a server MUST accept).
/// Authority-form belongs to `CONNECT` and asterisk-form (`*`) to
/// `OPTIONS`, neither of which we serve, so both are `400`.
fn split_target(target: &[u8]) -> Result<(String, Option<String>), RequestError> {
    if !target.iter().all(|&byte| is_uri_char(byte)) {
        return Err(RequestError::BadTarget);
    }
    // Every byte is printable ASCII, so this is exact.
    let target = String::from_utf8_lossy(target);
    let origin_form = match strip_scheme_and_authority(&target) {
        Some(rest) => rest,
        None => &target,
    };
    if !origin_form.starts_with('/') {
        return Err(RequestError::BadTarget);
    }
    let without_fragment = origin_form.split('#').next().unwrap_or("");
    Ok(match without_fragment.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (without_fragment.to_string(), None),
    })
}

/// For an absolute-form target, the part from the path on (`/` if the URI
/// has no path). `None` when the target is not absolute-form.
fn strip_scheme_and_authority(target: &str) -> Option<&str> {
    let lower_prefix = |prefix: &str| {
        target.len() >= prefix.len() && target[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let after_scheme = if lower_prefix("http://") {
        &target[7..]
    } else if lower_prefix("https://") {
        &target[8..]
    } else {
        return None;
    };
    match after_scheme.find(['/', '?']) {
        Some(index) if after_scheme[index..].starts_with('/') => Some(&after_scheme[index..]),
        // `http://host?x` has an empty path, which means `/`.
        Some(_) | None => Some("/"),
    }
}

/// `field-line = field-name ":" OWS field-value OWS` (RFC 9112 §5).
fn parse_header_line(line: &[u8]) -> Result<Header, RequestError> {
    // §5.2: a line starting with whitespace continues the previous one
    // (obsolete line folding); we reject it.
    let Some(colon) = line.iter().position(|&byte| byte == b':') else {
        return Err(RequestError::BadHeader);
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&byte| is_tchar(byte)) {
        return Err(RequestError::BadHeader);
    }
    let value = trim_ows(value);
    // field-value = *field-content: VCHAR, obs-text, SP and HTAB (§5.5).
    let has_control = value
        .iter()
        .any(|&byte| byte != b'\t' && (byte < 0x20 || byte == 0x7f));
    if has_control {
        return Err(RequestError::BadHeader);
    }
    Ok(Header {
        name: String::from_utf8_lossy(name).into_owned(),
        value: String::from_utf8_lossy(value).into_owned(),
    })
}

/// Removes optional whitespace (SP / HTAB) from both ends (RFC 9110 §5.6.3).
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// `tchar` from RFC 9110 §5.6.2: the characters of a token.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Bytes that may appear in a request-target: printable ASCII without
/// space (RFC 3986 §2; anything else must be percent-encoded).
fn is_uri_char(byte: u8) -> bool {
    byte.is_ascii_graphic()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and compares a short summary with `expected`:
    /// `"GET /path ?query HTTP/1.1 name=value ... +len"`, `"partial"`, or the
    /// error's `Debug` name.
    #[track_caller]
    fn check(input: &[u8], expected: &str) {
        let actual = match parse(input) {
            Ok(Parse::Partial) => "partial".to_string(),
            Ok(Parse::Complete { request, head_len }) => summarize(&request, head_len),
            Err(error) => format!("{error:?}"),
        };
        assert_eq!(
            actual,
            expected,
            "input: {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn summarize(request: &Request, head_len: usize) -> String {
        let mut summary = format!("{:?} {}", request.method, request.path);
        if let Some(query) = &request.query {
            summary += &format!(" ?{query}");
        }
        summary += &format!(" {:?}", request.version);
        for header in &request.headers {
            summary += &format!(" {}={}", header.name, header.value);
        }
        summary + &format!(" +{head_len}")
    }

    #[test]
    fn simple_get_is_complete() {
        check(
            b"GET /sse/alice HTTP/1.1\r\nHost: x\r\n\r\n",
            "Get /sse/alice Http11 Host=x +36",
        );
    }

    #[test]
    fn http10_without_headers() {
        check(b"GET / HTTP/1.0\r\n\r\n", "Get / Http10 +18");
    }

    #[test]
    fn bytes_after_head_are_not_part_of_it() {
        check(b"GET / HTTP/1.1\r\n\r\nGET /x", "Get / Http11 +18");
    }

    #[test]
    fn query_is_split_from_path() {
        check(
            b"GET /sse/a?lastEventId=4 HTTP/1.1\r\n\r\n",
            "Get /sse/a ?lastEventId=4 Http11 +37",
        );
    }

    #[test]
    fn fragment_is_dropped() {
        check(b"GET /a#frag HTTP/1.1\r\n\r\n", "Get /a Http11 +24");
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        check(b"GET / HTTP/1.1\nHost: x\n\n", "Get / Http11 Host=x +24");
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        check(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", "Get / Http11 +22");
    }

    #[test]
    fn header_value_whitespace_is_trimmed() {
        check(
            b"GET / HTTP/1.1\r\nA: \t v w \t\r\n\r\n",
            "Get / Http11 A=v w +30",
        );
    }

    #[test]
    fn empty_header_value_is_allowed() {
        check(b"GET / HTTP/1.1\r\nA:\r\n\r\n", "Get / Http11 A= +22");
    }

    #[test]
    fn head_without_final_empty_line_is_partial() {
        check(b"GET / HTTP/1.1\r\nHost: x\r\n", "partial");
        check(b"GET / HTTP/1.1\r\n", "partial");
        check(b"GET /sse/al", "partial");
        check(b"", "partial");
        check(b"\r\n", "partial");
    }

    #[test]
    fn methods_are_case_sensitive_and_classified() {
        check(b"HEAD / HTTP/1.1\r\n\r\n", "Head / Http11 +19");
        check(b"POST / HTTP/1.1\r\n\r\n", "Post / Http11 +19");
        check(
            b"DELETE / HTTP/1.1\r\n\r\n",
            "OtherStandard(\"DELETE\") / Http11 +21",
        );
        check(b"get / HTTP/1.1\r\n\r\n", "Unknown(\"get\") / Http11 +18");
        check(b"BREW / HTTP/1.1\r\n\r\n", "Unknown(\"BREW\") / Http11 +19");
    }

    #[test]
    fn absolute_form_is_reduced_to_its_path() {
        check(
            b"GET http://h:3000/sse/a?x HTTP/1.1\r\n\r\n",
            "Get /sse/a ?x Http11 +38",
        );
        check(b"GET HTTP://h HTTP/1.1\r\n\r\n", "Get / Http11 +25");
    }

    #[test]
    fn targets_that_are_not_origin_or_absolute_form_are_rejected() {
        check(b"OPTIONS * HTTP/1.1\r\n\r\n", "BadTarget");
        check(b"CONNECT h:443 HTTP/1.1\r\n\r\n", "BadTarget");
        check(b"GET sse/a HTTP/1.1\r\n\r\n", "BadTarget");
        check(b"GET /a\x7fb HTTP/1.1\r\n\r\n", "BadTarget");
        check(b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", "BadTarget");
    }

    #[test]
    fn request_line_needs_exactly_three_parts() {
        check(b"GET /\r\n\r\n", "BadRequestLine");
        check(b"GET  / HTTP/1.1\r\n\r\n", "BadRequestLine");
        check(b"GET / HTTP/1.1 x\r\n\r\n", "BadRequestLine");
        check(b"GET / HTTP/1.1 \r\n\r\n", "BadRequestLine");
        check(b" \r\n\r\n", "BadRequestLine");
    }

    #[test]
    fn garbage_is_rejected_before_the_line_ends() {
        check(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "BadRequestLine",
        );
        check(b"\x00\x00\x00", "BadRequestLine");
        check(b"GE\x00T", "BadRequestLine");
        check(b"GET /a\x00b", "BadRequestLine");
    }

    #[test]
    fn versions() {
        check(b"GET / HTTP/1.2\r\n\r\n", "Get / Http11 +18");
        check(b"GET / HTTP/2.0\r\n\r\n", "UnsupportedVersion");
        check(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "UnsupportedVersion");
        check(b"GET / HTTP/0.9\r\n\r\n", "UnsupportedVersion");
        check(b"GET / HTTP/1\r\n\r\n", "BadVersion");
        check(b"GET / http/1.1\r\n\r\n", "BadVersion");
        check(b"GET / HTTP/1.10\r\n\r\n", "BadVersion");
        check(b"GET / FOO\r\n\r\n", "BadVersion");
    }

    #[test]
    fn malformed_header_lines_are_rejected() {
        check(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "BadHeader");
        check(b"GET / HTTP/1.1\r\nName : v\r\n\r\n", "BadHeader");
        check(b"GET / HTTP/1.1\r\n: v\r\n\r\n", "BadHeader");
        check(b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", "BadHeader");
        check(b"GET / HTTP/1.1\r\nA: x\x00y\r\n\r\n", "BadHeader");
        check(b"GET / HTTP/1.1\r\nA\x01: v\r\n\r\n", "BadHeader");
    }

    #[test]
    fn obs_text_in_values_is_kept_lossily() {
        check(
            b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n",
            "Get / Http11 A=\u{fffd} +24",
        );
    }

    #[test]
    fn bare_carriage_return_is_rejected() {
        check(b"GET / HTTP/1.1\rA: b\r\n\r\n", "BareCarriageReturn");
        check(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", "BareCarriageReturn");
    }

    #[test]
    fn heads_over_the_limit_are_rejected() {
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD_BYTES));
        check(long_line.as_bytes(), "TargetTooLong");
        let unfinished_line = format!("GET /{}", "a".repeat(MAX_HEAD_BYTES));
        check(unfinished_line.as_bytes(), "TargetTooLong");
        let big_header = format!(
            "GET / HTTP/1.1\r\nA: {}\r\n\r\n",
            "v".repeat(MAX_HEAD_BYTES)
        );
        check(big_header.as_bytes(), "HeadTooLarge");
        let unfinished_header = format!("GET / HTTP/1.1\r\nA: {}", "v".repeat(MAX_HEAD_BYTES));
        check(unfinished_header.as_bytes(), "HeadTooLarge");
    }

    #[test]
    fn too_many_headers_are_rejected() {
        let mut head = String::from("GET / HTTP/1.1\r\n");
        for index in 0..=MAX_HEADER_COUNT {
            head += &format!("H{index}: v\r\n");
        }
        check(format!("{head}\r\n").as_bytes(), "TooManyHeaders");
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let Ok(Parse::Complete { request, .. }) =
            parse(b"GET / HTTP/1.1\r\nlast-event-id: 4\r\nLAST-EVENT-ID: 5\r\n\r\n")
        else {
            panic!("expected a complete request");
        };
        assert_eq!(request.header("Last-Event-ID"), Some("4"));
        let all: Vec<&str> = request.headers_named("last-event-id").collect();
        assert_eq!(all, ["4", "5"]);
    }

    #[test]
    fn a_crlf_split_across_reads_is_not_an_error() {
        check(b"\r", "partial");
        check(b"\r\n\r", "partial");
        check(b"GET / HTTP/1.1\r", "partial");
    }

    #[track_caller]
    fn check_valid(input: &[u8], expected: Result<(), RequestError>) {
        let Ok(Parse::Complete { request, .. }) = parse(input) else {
            panic!(
                "not a complete request: {:?}",
                String::from_utf8_lossy(input)
            );
        };
        assert_eq!(
            validate(&request),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        check_valid(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(()));
        check_valid(b"GET / HTTP/1.1\r\n\r\n", Err(RequestError::BadHost));
        check_valid(
            b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
            Err(RequestError::BadHost),
        );
        check_valid(b"GET / HTTP/1.0\r\n\r\n", Ok(()));
        check_valid(
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
            Err(RequestError::BadHost),
        );
    }

    #[test]
    fn error_statuses() {
        assert_eq!(RequestError::BadRequestLine.status(), 400);
        assert_eq!(RequestError::UnsupportedVersion.status(), 505);
        assert_eq!(RequestError::TargetTooLong.status(), 414);
        assert_eq!(RequestError::HeadTooLarge.status(), 431);
        assert_eq!(RequestError::TooManyHeaders.status(), 431);
    }
}
