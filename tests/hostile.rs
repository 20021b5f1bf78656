//! Malformed and hostile requests against the real binary, over raw
//! sockets: each gets the status RFC 9110 / RFC 9112 call for (or a clean
//! close), each rejection is logged exactly once, and the server keeps
//! serving afterwards.
//!
//! One table per concern, one row per case, all through [`check`].

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{read_to_close, split_response, Server};

/// What a hostile request should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A response with this status code.
    Status(u16),
    /// The server closes without sending anything.
    Close,
}
use Outcome::{Close, Status};

/// Longest a check waits for the log line of its request.
const LOG_TIMEOUT: Duration = Duration::from_secs(3);

/// A server under test. Derefs to [`Server`].
struct Hostile(Server);

impl std::ops::Deref for Hostile {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl Hostile {
    fn start(args: &[&str]) -> Hostile {
        Hostile(Server::start(args))
    }

    /// Sends `request` on a fresh connection, reads until the server closes,
    /// and checks the outcome and the log:
    /// - a status of 400 or more has exactly one `reject status=NNN` line for
    ///   this connection's peer address, and no other line about it;
    /// - a success has no `reject` line for it.
    ///
    /// Returns the raw response for extra checks.
    #[track_caller]
    fn check(&self, request: &[u8], expected: Outcome) -> Vec<u8> {
        let server: &Server = self;
        let mut socket = server.connect();
        let peer = socket.local_addr().expect("local address");
        // The server may close before reading everything (a huge head):
        // a failed write is part of the test, the response is what counts.
        let _ = socket.write_all(request);
        if request.is_empty() {
            // A client that leaves without a byte: send our FIN.
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
        let response = read_to_close(&mut socket);
        drop(socket);
        let shown = String::from_utf8_lossy(request);
        let actual = if response.is_empty() {
            Close
        } else {
            Status(split_response(&response).0)
        };
        assert_eq!(
            actual,
            expected,
            "request {shown:?} got {:?}",
            String::from_utf8_lossy(&response)
        );

        let suffix = format!(" peer={peer}");
        let lines = wait_for_lines_ending(server, &suffix);
        let rejects: Vec<&String> = lines
            .iter()
            .filter(|line| line.starts_with("reject "))
            .collect();
        match expected {
            Status(status) if status >= 400 => {
                assert_eq!(
                    lines.len(),
                    1,
                    "request {shown:?}: expected one log line, got {lines:?}"
                );
                let wanted = format!("reject status={status} ");
                assert!(
                    lines[0].starts_with(&wanted),
                    "request {shown:?}: expected a `{wanted}…` line, got {lines:?}"
                );
            }
            _ => assert!(
                rejects.is_empty(),
                "request {shown:?}: unexpected reject {rejects:?}"
            ),
        }
        response
    }
}

/// Every log line about `peer` (lines that end with ` peer=ADDR`), waiting
/// until there is at least one. A short grace period after the first one
/// catches a duplicate.
fn wait_for_lines_ending(server: &Server, suffix: &str) -> Vec<String> {
    let deadline = Instant::now() + LOG_TIMEOUT;
    let matching = || -> Vec<String> {
        server
            .log_lines()
            .into_iter()
            .filter(|line| line.ends_with(suffix))
            .collect()
    };
    loop {
        let lines = matching();
        if !lines.is_empty() || Instant::now() > deadline {
            std::thread::sleep(Duration::from_millis(20));
            return matching();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// After the hostile cases, an ordinary request still works and no thread
/// panicked.
#[track_caller]
fn assert_still_serving(server: &Server) {
    let (status, _, body) = server.get("/users");
    assert_eq!(status, 200, "{body}");
    server.assert_no_panic();
}

/// The value of header `name` in a raw response, if present.
fn header_value(response: &[u8], name: &str) -> Option<String> {
    let (_, head, _) = split_response(response);
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// Bytes that are not HTTP at all are refused with `400` as soon as they
/// arrive, without waiting for a line end or the head timeout.
#[test]
fn non_http_bytes_are_bad_requests() {
    let server = Hostile::start(&[]);
    server.check(b"hello world\r\n\r\n", Status(400));
    server.check(b"\x00\x01\x02\x03\xff\xfe\xfd", Status(400));
    server.check(b"\xde\xad\xbe\xef\r\n\r\n", Status(400));
    // The start of a TLS 1.2 ClientHello: handshake record, version 3.1.
    server.check(
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x5e\x8f",
        Status(400),
    );
    server.check(b"GET /us\x00ers HTTP/1.1\r\n\r\n", Status(400));
    server.check(b"G\x00ET /users HTTP/1.1\r\n\r\n", Status(400));
    server.check(b"\r\n\r\n\r\n\x7f\r\n\r\n", Status(400));
    // A client that connects and leaves without a byte gets nothing.
    server.check(b"", Close);
    assert_still_serving(&server);
}

/// The request line must be exactly `method SP target SP HTTP/d.d`
/// (RFC 9112 §3); HTTP/2 and HTTP/3 get `505` (RFC 9110 §15.6.6).
#[test]
fn request_line_shapes() {
    let server = Hostile::start(&[]);
    // RFC 9113 §3.4: the preface is built so HTTP/1.1 servers refuse it.
    server.check(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Status(505));
    server.check(b"GET /users HTTP/2.0\r\n\r\n", Status(505));
    server.check(b"GET /users HTTP/3.0\r\n\r\n", Status(505));
    server.check(b"GET /users HTTP/0.9\r\n\r\n", Status(505));
    server.check(b"GET /users\r\n\r\n", Status(400));
    server.check(b"GET /users HTTP/1\r\n\r\n", Status(400));
    server.check(b"GET /users HTTP/1.10\r\n\r\n", Status(400));
    server.check(b"GET /users http/1.1\r\n\r\n", Status(400));
    server.check(b"GET /users HTTPS/1.1\r\n\r\n", Status(400));
    server.check(b"GET /users HTTP/1.1 extra\r\n\r\n", Status(400));
    server.check(b"GET  /users HTTP/1.1\r\n\r\n", Status(400));
    server.check(b"GET\t/users\tHTTP/1.1\r\n\r\n", Status(400));
    server.check(b" GET /users HTTP/1.1\r\n\r\n", Status(400));
    server.check(b"GET /users HTTP/1.1\rX: y\r\n\r\n", Status(400));
    // HTTP/1.0 is served; a higher 1.x minor is treated as 1.1 (§2.6).
    server.check(b"GET /users HTTP/1.0\r\n\r\n", Status(200));
    server.check(b"GET /users HTTP/1.2\r\nHost: t\r\n\r\n", Status(200));
    // A bare LF ends a line too, and empty lines before the request line
    // are skipped (§2.2).
    server.check(b"GET /users HTTP/1.1\nHost: t\n\n", Status(200));
    server.check(b"\r\nGET /users HTTP/1.1\r\nHost: t\r\n\r\n", Status(200));
    assert_still_serving(&server);
}

/// Methods are case-sensitive tokens (RFC 9110 §9.1): unknown ones get
/// `501`, standard ones the server does not allow get `405` with `Allow`.
#[test]
fn methods() {
    let server = Hostile::start(&[]);
    server.check(b"get /users HTTP/1.1\r\nHost: t\r\n\r\n", Status(501));
    server.check(b"BREW /users HTTP/1.1\r\nHost: t\r\n\r\n", Status(501));
    server.check(b"Post /broadcast HTTP/1.1\r\nHost: t\r\n\r\n", Status(501));
    let read_only = server.check(b"DELETE /users HTTP/1.1\r\nHost: t\r\n\r\n", Status(405));
    assert_eq!(
        header_value(&read_only, "Allow").as_deref(),
        Some("GET, HEAD")
    );
    let read_only = server.check(b"PUT /sse/alice HTTP/1.1\r\nHost: t\r\n\r\n", Status(405));
    assert_eq!(
        header_value(&read_only, "Allow").as_deref(),
        Some("GET, HEAD")
    );
    let post_only = server.check(b"GET /broadcast HTTP/1.1\r\nHost: t\r\n\r\n", Status(405));
    assert_eq!(header_value(&post_only, "Allow").as_deref(), Some("POST"));
    server.check(b"PATCH /send/bob HTTP/1.1\r\nHost: t\r\n\r\n", Status(405));
    server.check(b"HEAD /users HTTP/1.1\r\nHost: t\r\n\r\n", Status(200));
    assert_still_serving(&server);
}

/// Request-targets (RFC 9112 §3.2): origin-form and absolute-form are
/// served; `*`, authority-form and bad percent-encoding are `400`; dot
/// segments are never a userId.
#[test]
fn request_targets() {
    let server = Hostile::start(&[]);
    server.check(
        b"GET http://h/users HTTP/1.1\r\nHost: h\r\n\r\n",
        Status(200),
    );
    server.check(
        b"GET HTTP://h:80/users HTTP/1.1\r\nHost: h\r\n\r\n",
        Status(200),
    );
    server.check(b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        Status(400),
    );
    server.check(b"GET users HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"GET /sse/%zz HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"GET /sse/a%2 HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"GET /sse/%FF HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"GET /sse/%C0%AF HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"GET /sse/a%00b HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(
        b"GET /sse/a%0D%0Ab HTTP/1.1\r\nHost: t\r\n\r\n",
        Status(400),
    );
    server.check(
        b"GET /sse/\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",
        Status(400),
    );
    server.check(b"GET /sse/.. HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"GET /sse/%2E%2E HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(b"GET /sse/. HTTP/1.1\r\nHost: t\r\n\r\n", Status(400));
    server.check(
        b"GET /sse/../users HTTP/1.1\r\nHost: t\r\n\r\n",
        Status(404),
    );
    server.check(b"GET /../users HTTP/1.1\r\nHost: t\r\n\r\n", Status(404));
    server.check(
        b"POST /send/%FF HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        Status(400),
    );
    server.check(
        b"POST /broadcast?event=a%0Ab HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        Status(400),
    );
    server.check(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", Status(404));
    assert_still_serving(&server);
}

/// Request line and head limits (`414`, `431`, RFC 9110 §15.5.15 and
/// RFC 6585 §5).
#[test]
fn size_limits() {
    let server = Hostile::start(&[]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    server.check(long_target.as_bytes(), Status(414));
    let endless_line = "A".repeat(20_000);
    server.check(endless_line.as_bytes(), Status(414));
    let big_header = format!(
        "GET /users HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "v".repeat(9000)
    );
    server.check(big_header.as_bytes(), Status(431));
    let many_small = (0..300).fold(String::from("GET /users HTTP/1.1\r\n"), |head, index| {
        head + &format!("X-Header-{index}: {}\r\n", "v".repeat(30))
    }) + "\r\n";
    server.check(many_small.as_bytes(), Status(431));
    let too_many = (0..65).fold(String::from("GET /users HTTP/1.1\r\n"), |head, index| {
        head + &format!("H{index}: v\r\n")
    }) + "\r\n";
    server.check(too_many.as_bytes(), Status(431));
    let just_enough = (0..63).fold(
        String::from("GET /users HTTP/1.1\r\nHost: t\r\n"),
        |head, index| head + &format!("H{index}: v\r\n"),
    ) + "\r\n";
    server.check(just_enough.as_bytes(), Status(200));
    assert_still_serving(&server);
}

/// Header lines (RFC 9112 §5): a colon, a token name with no whitespace
/// before the colon, no control characters, no obsolete folding.
#[test]
fn header_lines() {
    let server = Hostile::start(&[]);
    server.check(
        b"GET /users HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n",
        Status(400),
    );
    server.check(b"GET /users HTTP/1.1\r\nHost : t\r\n\r\n", Status(400));
    server.check(b"GET /users HTTP/1.1\r\n: empty-name\r\n\r\n", Status(400));
    server.check(b"GET /users HTTP/1.1\r\nX(y): z\r\n\r\n", Status(400));
    server.check(
        b"GET /users HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n",
        Status(400),
    );
    server.check(
        b"GET /users HTTP/1.1\r\nHost: t\r\nX\x00: a\r\n\r\n",
        Status(400),
    );
    server.check(
        b"GET /users HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
        Status(400),
    );
    server.check(
        b"GET /users HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",
        Status(400),
    );
    server.check(
        b"GET /users HTTP/1.1\r\nHost: t\r\nX: a\r\n\tb\r\n\r\n",
        Status(400),
    );
    server.check(b"GET /users HTTP/1.1\r\n Host: t\r\n\r\n", Status(400));
    // obs-text in a value is allowed (§5.5).
    server.check(
        b"GET /users HTTP/1.1\r\nHost: t\r\nX: caf\xe9\r\n\r\n",
        Status(200),
    );
    assert_still_serving(&server);
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
/// code to any HTTP/1.1 request message that lacks a Host header field and
/// to any request message that contains more than one Host header field
/// line". HTTP/1.0 requests need none.
#[test]
fn http11_requests_need_exactly_one_host() {
    let server = Hostile::start(&[]);
    server.check(b"GET /users HTTP/1.0\r\n\r\n", Status(200));
    server.check(b"GET /users HTTP/1.1\r\nHost: t\r\n\r\n", Status(200));
    server.check(b"GET /users HTTP/1.1\r\n\r\n", Status(400));
    server.check(
        b"GET /users HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        Status(400),
    );
    server.check(b"GET /sse/alice HTTP/1.1\r\n\r\n", Status(400));
    assert_still_serving(&server);
}

/// Body framing on the publish endpoints (RFC 9112 §6.3): anything a proxy
/// could read differently is refused.
#[test]
fn publish_framing() {
    let server = Hostile::start(&[]);
    let post = |path: &str, headers: &str, body: &[u8]| -> Vec<u8> {
        let mut bytes = format!("POST {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").into_bytes();
        bytes.extend_from_slice(body);
        bytes
    };
    server.check(
        &post("/broadcast", "Content-Length: 2\r\n", b"hi"),
        Status(202),
    );
    server.check(
        &post("/send/bob", "Content-Length: 2, 2\r\n", b"hi"),
        Status(202),
    );
    server.check(
        &post(
            "/broadcast",
            "Content-Length: 2\r\nContent-Length: 3\r\n",
            b"hi!",
        ),
        Status(400),
    );
    server.check(
        &post("/send/bob", "Content-Length: 2, 3\r\n", b"hi!"),
        Status(400),
    );
    server.check(
        &post(
            "/broadcast",
            "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
            b"hi",
        ),
        Status(400),
    );
    server.check(
        &post(
            "/send/bob",
            "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
            b"hi",
        ),
        Status(400),
    );
    server.check(
        &post(
            "/broadcast",
            "Transfer-Encoding: chunked\r\n",
            b"2\r\nhi\r\n0\r\n\r\n",
        ),
        Status(411),
    );
    server.check(&post("/broadcast", "", b""), Status(411));
    server.check(&post("/send/bob", "", b"hi"), Status(411));
    server.check(
        &post("/broadcast", "Content-Length: 65537\r\n", b""),
        Status(413),
    );
    server.check(
        &post(
            "/broadcast",
            "Content-Length: 99999999999999999999999\r\n",
            b"",
        ),
        Status(413),
    );
    server.check(
        &post("/broadcast", "Content-Length: -1\r\n", b""),
        Status(400),
    );
    server.check(
        &post("/broadcast", "Content-Length: +2\r\n", b"hi"),
        Status(400),
    );
    server.check(
        &post("/broadcast", "Content-Length: 0x2\r\n", b"hi"),
        Status(400),
    );
    server.check(
        &post("/broadcast", "Content-Length: 2\r\n", b"\xff\xfe"),
        Status(400),
    );
    server.check(
        &post("/send/bob", "Content-Length: 3\r\n", b"a\xc0b"),
        Status(400),
    );
    server.check(
        &post("/broadcast", "Content-Length: 0\r\n", b""),
        Status(400),
    );
    server.check(
        &post(
            "/broadcast",
            "Expect: teapot\r\nContent-Length: 2\r\n",
            b"hi",
        ),
        Status(417),
    );
    assert_still_serving(&server);
}

/// RFC 9112 §6.3 item 4: a request whose `Transfer-Encoding` does not end
/// in `chunked` has no determinable length, and the server MUST answer
/// `400` (not `411`, which says "send a length and try again").
#[test]
fn transfer_encoding_without_final_chunked_is_a_bad_request() {
    let server = Hostile::start(&[]);
    let request = b"POST /broadcast HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhi";
    server.check(request, Status(400));
    let request =
        b"POST /send/bob HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhi";
    server.check(request, Status(400));
    assert_still_serving(&server);
}

/// A body shorter than its `Content-Length`, cut off by the client's
/// half-close, gets `400`.
#[test]
fn short_body_then_half_close_is_a_bad_request() {
    let server = Hostile::start(&[]);
    let mut socket = server.connect();
    let peer = socket.local_addr().unwrap();
    socket
        .write_all(b"POST /broadcast HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    socket.shutdown(Shutdown::Write).unwrap();
    let (status, _, _) = split_response(&read_to_close(&mut socket));
    assert_eq!(status, 400);
    let lines = wait_for_lines_ending(&server, &format!(" peer={peer}"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("reject status=400 "), "{lines:?}");
    assert_still_serving(&server);
}

/// `Expect: 100-continue` (RFC 9110 §10.1.1): the server says
/// `100 Continue` before the client sends the body, then `202`.
#[test]
fn expect_100_continue_is_answered() {
    let server = Hostile::start(&[]);
    let mut socket = server.connect();
    socket
        .write_all(
            b"POST /broadcast HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
    let mut interim = [0u8; 25];
    std::io::Read::read_exact(&mut socket, &mut interim).expect("an interim response");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    socket.write_all(b"hello").unwrap();
    let (status, _, body) = split_response(&read_to_close(&mut socket));
    assert_eq!(status, 202, "{body}");
    assert!(body.starts_with("{\"id\":"), "{body}");
    assert_still_serving(&server);
}

/// Bytes pipelined after a stream request are thrown away: the stream
/// still works, nothing answers them, and a few of them do not get the
/// stream closed for `client-data`.
#[test]
fn pipelined_requests_after_a_stream_are_discarded() {
    let server = Hostile::start(&["--interval", "100ms"]);
    let mut client = server.open_stream_with(
        "/sse/piper",
        "\r\nGET /users HTTP/1.1\r\nHost: t\r\n\r\nPOST /broadcast HTTP/1.1\r\nContent-Length: 1\r\n",
    );
    assert!(
        client.head().starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        client.head()
    );
    // More pipelined bytes after the stream has started.
    client
        .stream
        .write_all(b"GET /users HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(client.next_event(), ":\n\n");
    for _ in 0..3 {
        let tick = client.next_tick();
        assert!(tick.starts_with("data: {\"userId\":\"piper\""), "{tick:?}");
    }
    // No second response ever appears in the stream.
    client
        .stream
        .write_all(b"GET /users HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    for _ in 0..3 {
        let event = client.next_event();
        assert!(!event.contains("HTTP/1.1"), "{event:?}");
    }
    assert_eq!(server.counts(), (1, 1));
    let closes: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|line| line.starts_with("close ") || line.starts_with("reject "))
        .collect();
    assert!(closes.is_empty(), "{closes:?}");
    assert_still_serving(&server);
}

/// RFC 9112 §2.2 lets a client send an empty line before the request line.
/// When its CR and LF arrive in different reads, the lone CR is the start
/// of that empty line, not a malformed request.
#[test]
fn leading_empty_line_split_across_reads_is_accepted() {
    let server = Hostile::start(&[]);
    let mut socket = server.connect();
    socket.write_all(b"\r").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = socket.write_all(b"\nGET /users HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = read_to_close(&mut socket);
    assert!(
        response.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    assert_still_serving(&server);
}
