//! The core behaviour, against the real binary: the original example's
//! stream, its headers and frames, the user count, disconnect detection,
//! and the plain error answers.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{json_number, json_string, Server};

const EXPECTED_HEAD: &str = "HTTP/1.1 200 OK\r\n\
    Content-Type: text/event-stream; charset=utf-8\r\n\
    Cache-Control: no-cache, no-transform\r\n\
    Connection: keep-alive\r\n\
    X-Accel-Buffering: no\r\n\r\n";

/// Takes the `Date` line out of a head, after checking that it is the
/// second line and shows the current second (or one of the two before it,
/// for a slow run): RFC 9110 §6.6.1 asks for it on every 2xx response.
#[track_caller]
fn undated(head: &str) -> String {
    let (status_line, rest) = head.split_once("\r\n").expect("a status line");
    let (date_line, rest) = rest.split_once("\r\n").expect("a second line");
    let now = SystemTime::now();
    let recent: Vec<String> = (0..3)
        .map(|back| {
            let date = sse_server::httpdate::format(now - Duration::from_secs(back));
            format!("Date: {}", String::from_utf8_lossy(&date))
        })
        .collect();
    assert!(recent.iter().any(|line| line == date_line), "{head}");
    format!("{status_line}\r\n{rest}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The status line and headers are exactly the original's, plus charset,
/// no-transform and `Date`, with no Content-Length and no chunked encoding.
#[test]
fn stream_head_is_exact() {
    let server = Server::start(&["--interval", "50ms"]);
    let client = server.open_stream("alice");
    assert_eq!(undated(&client.head()), EXPECTED_HEAD);
}

/// The first body bytes are the comment `:\n\n`, then `retry:`, then the
/// id-only block with the newest id, then frames.
#[test]
fn comment_comes_first_then_retry_then_frames() {
    let server = Server::start(&["--interval", "50ms"]);
    let mut client = server.open_stream("alice");
    assert_eq!(client.next_event(), ":\n\n");
    let retry = client.next_event();
    assert!(
        retry.starts_with("retry: ") && retry.ends_with("\n\n"),
        "{retry:?}"
    );
    let id_only = client.next_event();
    assert!(common::is_id_only(&id_only), "{id_only:?}");
    let frame = client.next_event();
    assert!(
        frame.starts_with("data: {\"userId\":\"alice\""),
        "{frame:?}"
    );
}

/// Each frame is one `data:` line of compact JSON in the original's key
/// order, with LF endings and a current epoch-millisecond time.
#[test]
fn frames_are_the_originals_json() {
    let server = Server::start(&["--interval", "50ms"]);
    let mut client = server.open_stream("alice");
    for _ in 0..2 {
        let frame = client.next_tick();
        let json = frame
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        assert!(!json.contains('\n') && !frame.contains('\r'), "{frame:?}");
        assert_eq!(json_string(json, "userId"), "alice");
        assert_eq!(json_number(json, "users"), 1);
        let time = json_number(json, "time");
        assert!(time.abs_diff(now_ms()) < 10_000, "time {time} is not now");
        let expected = format!("{{\"userId\":\"alice\",\"users\":1,\"time\":{time}}}");
        assert_eq!(json, expected);
    }
}

/// Frames come at the interval: by their own `time` fields, six frames at
/// 100 ms span about 500 ms, neither bunched nor late.
#[test]
fn frames_follow_the_interval() {
    let server = Server::start(&["--interval", "100ms"]);
    let mut client = server.open_stream("alice");
    let times: Vec<u64> = (0..6)
        .map(|_| json_number(&client.next_tick(), "time"))
        .collect();
    let span = times[5] - times[0];
    assert!((400..1500).contains(&span), "{times:?}");
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 50,
            "two frames within one interval: {times:?}"
        );
    }
}

/// `users` counts distinct users: 1, then 2 while bob is there, then 1 again.
#[test]
fn user_count_follows_joins_and_leaves() {
    let server = Server::start(&["--interval", "50ms"]);
    let mut alice = server.open_stream("alice");
    assert!(alice.next_tick().contains("\"users\":1"));
    let bob = server.open_stream("bob");
    server
        .wait_for_log("open user=\"bob\"", Duration::from_secs(5))
        .unwrap();
    // A tick written just before bob registered may still be in flight.
    assert!(next_tick_with(&mut alice, "\"users\":2"));
    drop(bob);
    server
        .wait_for_log("close user=\"bob\"", Duration::from_secs(5))
        .unwrap();
    assert!(next_tick_with(&mut alice, "\"users\":1"));
}

/// Reads up to three ticks for one containing `text` (the first may have
/// been written just before the change).
fn next_tick_with(client: &mut common::SseClient, text: &str) -> bool {
    (0..3).any(|_| client.next_tick().contains(text))
}

/// Two tabs of one user are both served and counted once; closing one
/// leaves the other registered and streaming.
#[test]
fn duplicate_user_id_keeps_both_connections() {
    let server = Server::start(&["--interval", "50ms"]);
    let first = server.open_stream("alice");
    let mut second = server.open_stream("alice");
    server
        .wait_for_log_count("open user=\"alice\"", 2, Duration::from_secs(5))
        .unwrap();
    assert!(second.next_tick().contains("\"users\":1"));
    assert_eq!(server.counts(), (1, 2));
    drop(first);
    server
        .wait_for_log("close user=\"alice\"", Duration::from_secs(5))
        .unwrap();
    assert_eq!(server.counts(), (1, 1));
    let frame = second.next_tick();
    assert!(
        frame.contains("\"userId\":\"alice\",\"users\":1"),
        "{frame:?}"
    );
}

/// With a 10 s interval, a client closing is logged within a second: `peek`
/// sees the FIN, no write is needed to notice.
#[test]
fn close_is_detected_by_peek_long_before_the_next_tick() {
    let server = Server::start(&["--interval", "10s"]);
    let client = server.open_stream("alice");
    server
        .wait_for_log("open user=\"alice\"", Duration::from_secs(5))
        .unwrap();
    let closed_at = Instant::now();
    client.stream.shutdown(Shutdown::Both).unwrap();
    drop(client);
    let line = server
        .wait_for_log("close user=\"alice\"", Duration::from_secs(5))
        .unwrap();
    assert!(
        closed_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        closed_at.elapsed()
    );
    assert!(line.contains("reason=eof"), "{line}");
    assert!(line.contains("users=0"), "{line}");
}

/// UserIds with quotes, backslashes, line breaks (rejected) and non-ASCII
/// text come back intact through the JSON.
#[test]
fn hostile_user_ids_round_trip_through_json() {
    let server = Server::start(&["--interval", "50ms"]);
    for (encoded, decoded) in [
        ("a%22b", "a\"b"),
        ("a%5Cb", "a\\b"),
        ("%C3%A9l%C3%A8ve%20%E2%9C%93", "élève ✓"),
        ("%7B%22x%22%3A1%7D", "{\"x\":1}"),
        ("data%3A%20x", "data: x"),
    ] {
        let mut client = server.open_stream(encoded);
        let frame = client.next_tick();
        assert_eq!(
            frame.matches('\n').count(),
            2,
            "one line per frame: {frame:?}"
        );
        assert_eq!(json_string(&frame, "userId"), decoded);
    }
    let (status, _, _) = server.get("/sse/a%0Ab");
    assert_eq!(status, 400);
}

/// Unknown paths, wrong methods, malformed lines, oversized heads and bad
/// userIds get their status, a text body with Content-Length, and a close.
#[test]
fn plain_errors() {
    let server = Server::start(&["--interval", "50ms"]);
    let check = |request: &[u8], status: u16| {
        let raw = server.exchange(request);
        let (actual, head, body) = common::split_response(&raw);
        assert_eq!(actual, status, "{:?}", String::from_utf8_lossy(request));
        assert!(
            head.contains("Content-Type: text/plain; charset=utf-8"),
            "{head}"
        );
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("Connection: close"), "{head}");
        head
    };
    check(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404);
    check(b"GET /users HTTP/1.1\r\n\r\n", 400); // HTTP/1.1 without Host
    let head = check(
        b"POST /sse/alice HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        405,
    );
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    check(b"GET /sse/alice\r\n\r\n", 400);
    check(b"GET /sse/%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    check(b"GET /sse/ HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    check(b"GET /sse/alice HTTP/2.0\r\n\r\n", 505);
    let big = format!(
        "GET /sse/alice HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "x".repeat(9000)
    );
    check(big.as_bytes(), 431);
    let long_target = format!("GET /sse/{} HTTP/1.1\r\nHost: t\r\n\r\n", "x".repeat(9000));
    check(long_target.as_bytes(), 414);
    // The log arrives through a pipe: wait for the ninth line, then check
    // that there is no tenth.
    let _ = server.wait_for_log_count("reject ", 9, Duration::from_secs(5));
    let rejected = server
        .log_lines()
        .iter()
        .filter(|line| line.starts_with("reject "))
        .count();
    assert_eq!(rejected, 9, "one log line per rejected request");
}

/// A head that never completes gets `408` after the head timeout.
#[test]
fn incomplete_head_times_out_with_408() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /sse/alice HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let raw = common::read_to_close(&mut stream);
    assert_eq!(common::split_response(&raw).0, 408);
}

/// Plain replies are dated (RFC 9110 §6.6.1) and say how caches may keep
/// them: `/users` and `/metrics` are live data (`no-store`), the demo page
/// is revalidated (`no-cache`, with an `ETag` that earns a `304`), an error
/// carries no `Cache-Control`.
#[test]
fn plain_replies_carry_date_and_cache_control() {
    let server = Server::start(&["--interval", "50ms"]);
    for (path, status, cache_control) in [
        ("/users", 200, Some("no-store")),
        ("/metrics", 200, Some("no-store")),
        ("/", 200, Some("no-cache")),
        ("/nope", 404, None),
    ] {
        let (actual, head, _) = server.get(path);
        assert_eq!(actual, status, "{path}");
        let undated = undated(&head);
        let found = undated
            .lines()
            .find_map(|line| line.strip_prefix("Cache-Control: "));
        assert_eq!(found, cache_control, "{path}: {head}");
    }
    // The demo page's ETag revalidates: the same tag back gets 304 and no body.
    let (_, head, _) = server.get("/");
    let tag = head
        .lines()
        .find_map(|line| line.strip_prefix("ETag: "))
        .expect("the demo page has an ETag");
    let request = format!("GET / HTTP/1.1\r\nHost: t\r\nIf-None-Match: {tag}\r\n\r\n");
    let raw = server.exchange(request.as_bytes());
    let (status, head, body) = common::split_response(&raw);
    assert_eq!((status, body.as_str()), (304, ""), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
}

/// `HEAD` gets the stream's headers and no body, then a close.
#[test]
fn head_request_gets_headers_only() {
    let server = Server::start(&["--interval", "50ms"]);
    let raw = server.exchange(b"HEAD /sse/alice HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(undated(&String::from_utf8(raw).unwrap()), EXPECTED_HEAD);
    assert_eq!(server.counts(), (0, 0), "a HEAD request registers nobody");
}

/// An error answer to `HEAD` has the error's headers and no body.
#[test]
fn head_errors_have_no_body() {
    let server = Server::start(&["--interval", "50ms"]);
    let raw = server.exchange(b"HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text:?}");
    assert!(text.contains("Content-Length: 13\r\n"), "{text:?}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "no body after the head: {text:?}"
    );
}

/// HTTP/1.0 clients are served too (the answer is HTTP/1.1, RFC 9110 §6.2).
#[test]
fn http10_is_served() {
    let server = Server::start(&["--interval", "50ms"]);
    let mut stream = server.connect();
    stream.write_all(b"GET /sse/old HTTP/1.0\r\n\r\n").unwrap();
    let mut client = common::SseClient::from_stream(stream);
    assert!(client.head().starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(client.next_tick().contains("\"userId\":\"old\""));
}

/// Bytes sent after the request are read and thrown away: the stream goes
/// on ticking; a client that keeps sending too much is cut off.
#[test]
fn bytes_after_the_request_are_discarded() {
    let server = Server::start(&["--interval", "50ms"]);
    let mut client = server.open_stream("chatty");
    client
        .stream
        .write_all(b"GET /sse/other HTTP/1.1\r\nHost: t\r\n\r\nhello")
        .unwrap();
    client.next_tick();
    client.next_tick();
    assert!(server
        .log_lines()
        .iter()
        .all(|line| !line.contains("user=\"other\"")));
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..8 {
        if client.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let line = server
        .wait_for_log("close user=\"chatty\"", Duration::from_secs(5))
        .unwrap();
    assert!(line.contains("reason=client-data"), "{line}");
}

/// `--help` prints usage with defaults; `--version` the version; a bad flag
/// exits 2 with a one-line reason.
#[test]
fn command_line() {
    let binary = env!("CARGO_BIN_EXE_sse-server");
    let help = Command::new(binary).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(
        text.contains("--interval DUR") && text.contains("(default 3s)"),
        "{text}"
    );
    let version = Command::new(binary).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!("sse-server {}\n", env!("CARGO_PKG_VERSION"))
    );
    for bad in [&["--nope"][..], &["--interval", "3"], &["--port", "x"]] {
        let output = Command::new(binary).args(bad).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    }
}

/// `--bind ::1` serves IPv6 and prints the address in brackets. Needs an
/// IPv6 loopback, which Linux, macOS and Windows have by default.
#[test]
fn ipv6_bind() {
    let server = Server::start(&["--bind", "::1", "--interval", "50ms"]);
    let first = server.log_lines()[0].clone();
    assert!(first.starts_with("listening on http://[::1]:"), "{first}");
    let mut client = server.open_stream("v6");
    assert!(client.next_tick().contains("\"userId\":\"v6\""));
}
