//! Pushing events: send and broadcast, ids, replay with `Last-Event-ID`,
//! the gap event, auth, heartbeats, overload, CORS, the demo page and
//! graceful shutdown.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{split_response, Server};

const WAIT: Duration = Duration::from_secs(5);

/// Starts a push-only server (no timer frames) with extra flags.
fn push_server(args: &[&str]) -> Server {
    let mut all = vec!["--interval", "0"];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// Opens a stream and waits until the server has registered it.
fn subscribe(server: &Server, user: &str, count_before: usize) -> common::SseClient {
    let client = server.open_stream(user);
    let needle = format!("open user=\"{user}\"");
    server
        .wait_for_log_count(&needle, count_before + 1, WAIT)
        .expect("stream registered");
    client
}

/// `POST /send/{user}` reaches every stream of that user and nobody else,
/// and answers `202 {"id":"MS-SEQ","delivered":K}`.
#[test]
fn send_reaches_only_that_user() {
    let server = push_server(&[]);
    let mut alice_1 = subscribe(&server, "alice", 0);
    let mut alice_2 = subscribe(&server, "alice", 1);
    let mut bob = subscribe(&server, "bob", 0);
    let (status, _, body) = server.post("/send/alice", "hi alice");
    assert_eq!(status, 202);
    assert_eq!(
        body,
        format!("{{\"id\":\"{}\",\"delivered\":2}}", server.id(1))
    );
    assert_eq!(alice_1.next_pushed(), "id: 1\ndata: hi alice\n\n");
    assert_eq!(alice_2.next_pushed(), "id: 1\ndata: hi alice\n\n");
    server.post("/broadcast", "all");
    assert_eq!(
        bob.next_pushed(),
        "id: 2\ndata: all\n\n",
        "bob skipped event 1"
    );
}

/// `POST /broadcast?event=NAME` reaches everyone with its event type.
#[test]
fn broadcast_reaches_everyone_with_its_type() {
    let server = push_server(&[]);
    let mut clients: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|user| subscribe(&server, user, 0))
        .collect();
    let (status, _, body) = server.post("/broadcast?event=chat", "hello");
    assert_eq!(status, 202);
    assert_eq!(
        body,
        format!("{{\"id\":\"{}\",\"delivered\":3}}", server.id(1))
    );
    for client in &mut clients {
        assert_eq!(client.next_pushed(), "id: 1\nevent: chat\ndata: hello\n\n");
    }
}

/// A message to an offline user is accepted, delivered to nobody, and kept.
#[test]
fn offline_user_message_is_kept_for_later() {
    let server = push_server(&[]);
    let (status, _, body) = server.post("/send/carol", "later");
    assert_eq!(status, 202);
    assert!(body.ends_with(",\"delivered\":0}"), "{body}");
    // An id from before this run (0) gets a gap, then everything held.
    let mut carol = server.open_stream_with("/sse/carol", "Last-Event-ID: 0\r\n");
    assert!(carol.next_pushed().contains("event: gap\n"));
    assert_eq!(carol.next_pushed(), "id: 1\ndata: later\n\n");
}

/// A body with CRLF, CR and LF breaks becomes one `data:` line per line.
#[test]
fn multi_line_bodies_become_several_data_lines() {
    let server = push_server(&[]);
    let mut client = subscribe(&server, "a", 0);
    server.post("/send/a", "one\r\ntwo\rthree\nfour\n");
    assert_eq!(
        client.next_pushed(),
        "id: 1\ndata: one\ndata: two\ndata: three\ndata: four\ndata: \n\n"
    );
}

/// Ids are `ms-seq` and strictly increase; timer frames carry no id.
#[test]
fn ids_grow_and_timer_frames_have_none() {
    let server = Server::start(&["--interval", "50ms"]);
    let mut client = subscribe(&server, "a", 0);
    let mut previous = sse_server::event::EventId::default();
    for _ in 1..=3 {
        let (_, _, body) = server.post("/broadcast", "x");
        let id = common::event_id(&common::json_string(&body, "id"));
        assert!(id > previous, "{id:?} after {previous:?}");
        previous = id;
    }
    let mut pushed = Vec::new();
    for _ in 0..1000 {
        if pushed.len() == 3 {
            break;
        }
        let event = client.next_event();
        if event.starts_with("data: {\"userId\"") {
            assert!(!event.contains("id: "), "{event:?}");
        } else if event.starts_with("id: ") && !common::is_id_only(&event) {
            pushed.push(server.ids().number(&event));
        }
    }
    assert_eq!(
        pushed,
        [
            "id: 1\ndata: x\n\n",
            "id: 2\ndata: x\n\n",
            "id: 3\ndata: x\n\n"
        ]
    );
}

/// Every stream starts with an id-only block holding the newest id, so a tab
/// that has seen no pushed event yet still reconnects with `Last-Event-ID`
/// and gets what was published while it was away (the replay hole).
#[test]
fn a_stream_that_saw_no_event_still_gets_what_it_missed() {
    let server = push_server(&[]);
    server.post("/broadcast", "before");
    let mut first = subscribe(&server, "alice", 0);
    let newest = first.next_id_only();
    assert_eq!(newest, server.id(1));
    drop(first);
    server.wait_for_log("close user=\"alice\"", WAIT).unwrap();
    server.post("/send/alice", "during the outage");
    let mut again = server.open_stream_with("/sse/alice", &format!("Last-Event-ID: {newest}\r\n"));
    assert_eq!(again.next_pushed(), "id: 2\ndata: during the outage\n\n");
    assert_eq!(again.next_id_only(), server.id(2));
}

/// A reconnect with `Last-Event-ID: N` first gets every retained event after
/// N meant for it (its own and broadcasts), in order, then the live stream.
#[test]
fn reconnect_replays_missed_events() {
    let server = push_server(&[]);
    let mut first = subscribe(&server, "alice", 0);
    server.post("/send/alice", "seen");
    assert_eq!(first.next_pushed(), "id: 1\ndata: seen\n\n");
    drop(first);
    server.wait_for_log("close user=\"alice\"", WAIT).unwrap();
    server.post("/send/alice", "missed 1");
    server.post("/send/bob", "not for alice");
    server.post("/broadcast", "missed 2");
    let mut again = server.open_stream_with(
        "/sse/alice",
        &format!("Last-Event-ID: {}\r\n", server.id(1)),
    );
    assert_eq!(again.next_pushed(), "id: 2\ndata: missed 1\n\n");
    assert_eq!(again.next_pushed(), "id: 4\ndata: missed 2\n\n");
    server.post("/send/alice", "live");
    assert_eq!(again.next_pushed(), "id: 5\ndata: live\n\n");
}

/// `?lastEventId=N` works like the header for a brand-new `EventSource`,
/// and the header wins when both are present.
#[test]
fn last_event_id_query_parameter() {
    let server = push_server(&[]);
    for text in ["one", "two", "three"] {
        server.post("/broadcast", text);
    }
    let mut by_query = server.open_stream_with(&format!("/sse/a?lastEventId={}", server.id(1)), "");
    assert_eq!(by_query.next_pushed(), "id: 2\ndata: two\n\n");
    let mut both = server.open_stream_with(
        &format!("/sse/a?lastEventId={}", server.id(1)),
        &format!("Last-Event-ID: {}\r\n", server.id(2)),
    );
    assert_eq!(both.next_pushed(), "id: 3\ndata: three\n\n");
}

/// When the events after N were evicted, the client gets an `event: gap`
/// with the lost range (and that range's last id), then what is retained.
/// (With `--history 2`, events 2 and 3 of 5 are gone.)
#[test]
fn evicted_history_is_reported_as_a_gap() {
    let server = push_server(&["--history", "2"]);
    for index in 1..=5 {
        server.post("/broadcast", &format!("m{index}"));
    }
    let mut client =
        server.open_stream_with("/sse/a", &format!("Last-Event-ID: {}\r\n", server.id(1)));
    assert_eq!(
        client.next_pushed(),
        "id: 3\nevent: gap\ndata: {\"after\":\"1\",\"to\":\"3\"}\n\n"
    );
    assert_eq!(client.next_pushed(), "id: 4\ndata: m4\n\n");
    assert_eq!(client.next_pushed(), "id: 5\ndata: m5\n\n");
}

/// The stream starts with `retry:` of the configured time plus at most
/// one second of jitter, different between connections.
#[test]
fn retry_has_jitter() {
    let server = push_server(&["--retry", "2s"]);
    let mut values = std::collections::HashSet::new();
    for index in 0..8 {
        let mut client = server.open_stream(&format!("u{index}"));
        assert_eq!(client.next_event(), ":\n\n");
        let retry = client.next_event();
        let ms: u64 = retry.trim_start_matches("retry: ").trim().parse().unwrap();
        assert!((2000..=3000).contains(&ms), "{retry:?}");
        values.insert(ms);
    }
    assert!(values.len() > 1, "no jitter: {values:?}");
}

/// With `--interval 0`, heartbeat comments keep an idle stream alive.
#[test]
fn heartbeat_keeps_a_push_only_stream_alive() {
    let server = push_server(&["--heartbeat", "200ms"]);
    let mut client = server.open_stream("a");
    assert_eq!(client.next_event(), ":\n\n");
    client.next_event(); // retry:
    client.next_id_only();
    for _ in 0..3 {
        assert_eq!(client.next_event(), ": heartbeat\n\n");
    }
}

/// Bad publish requests: event name, UTF-8, empty body, length rules.
#[test]
fn bad_publish_requests() {
    let server = push_server(&[]);
    let post = |headers: &str, body: &[u8]| {
        let mut request =
            format!("POST /broadcast HTTP/1.1\r\nHost: t\r\n{headers}\r\n").into_bytes();
        request.extend_from_slice(body);
        split_response(&server.exchange(&request)).0
    };
    assert_eq!(post("Content-Length: 2\r\n", b"\xff\xfe"), 400);
    assert_eq!(post("Content-Length: 0\r\n", b""), 400);
    assert_eq!(post("", b""), 411);
    assert_eq!(post("Transfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 411);
    assert_eq!(post("Content-Length: 70000\r\n", b""), 413);
    assert_eq!(server.post("/broadcast?event=bad%20name", "x").0, 400);
    assert_eq!(server.post("/broadcast?event=a%0Aevent:x", "x").0, 400);
    for reserved in ["gap", "shutdown", "open", "error"] {
        let (status, _, body) = server.post(&format!("/broadcast?event={reserved}"), "x");
        assert_eq!((status, body.as_str()), (400, "reserved event name\n"));
    }
    // Content-Length allows spaces and tabs around the digits, nothing else
    // (RFC 9110 §5.6.3, §8.6).
    assert_eq!(post("Content-Length:\t1 \r\n", b"x"), 202);
    assert_eq!(post("Content-Length: \u{a0}1\r\n", b"x"), 400);
    assert_eq!(post("Content-Length: 1\u{85}\r\n", b"x"), 400);
    assert_eq!(post("Content-Length: \u{3000}1\r\n", b"x"), 400);
    assert_eq!(server.get("/broadcast").0, 405);
}

/// With `--publish-token`, publishing needs `Authorization: Bearer TOKEN`:
/// 401 without it or with a wrong one (RFC 6750 §3.1); the stream stays
/// open to all.
#[test]
fn publish_token_is_required() {
    let server = push_server(&["--publish-token", "s3cret"]);
    let mut client = subscribe(&server, "a", 0);
    let publish = |authorization: &str| {
        let request = format!(
            "POST /send/a HTTP/1.1\r\nHost: t\r\n{authorization}Content-Length: 2\r\n\r\nhi"
        );
        split_response(&server.exchange(request.as_bytes()))
    };
    let (status, head, _) = publish("");
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    let (status, head, _) = publish("Authorization: Bearer wrong\r\n");
    assert_eq!(status, 401);
    assert!(
        head.contains("WWW-Authenticate: Bearer error=\"invalid_token\""),
        "{head}"
    );
    let (status, _, body) = publish("Authorization: Bearer s3cret\r\n");
    assert_eq!(status, 202);
    let id = common::json_string(&body, "id");
    assert_eq!(client.next_pushed_raw(), format!("id: {id}\ndata: hi\n\n"));
}

/// The token can come from `SSE_PUBLISH_TOKEN` too.
#[test]
fn publish_token_from_the_environment() {
    let server = Server::start_with_env(&["--interval", "0"], &[("SSE_PUBLISH_TOKEN", "envtoken")]);
    assert_eq!(server.post("/broadcast", "x").0, 401);
    let request = "POST /broadcast HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer envtoken\r\n\
                   Content-Length: 1\r\n\r\nx";
    assert_eq!(split_response(&server.exchange(request.as_bytes())).0, 202);
}

/// Over `--max-clients`, a stream request gets 200, a `retry:` of a few
/// seconds, a comment saying the server is full, and a close.
#[test]
fn full_server_tells_stream_clients_to_come_back() {
    let server = push_server(&["--max-clients", "1"]);
    let _first = subscribe(&server, "a", 0);
    let mut second = server.open_stream("b");
    assert!(second.head().starts_with("HTTP/1.1 200 OK\r\n"));
    let body = String::from_utf8(second.read_to_close()).unwrap();
    let retry_ms: u64 = body
        .strip_prefix("retry: ")
        .and_then(|rest| rest.split('\n').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{body:?}"));
    assert!((5000..=6000).contains(&retry_ms), "{body:?}");
    assert!(
        body.ends_with("\n\n: server is full, retry later\n\n"),
        "{body:?}"
    );
    server
        .wait_for_log("reject status=200 reason=\"server full\"", WAIT)
        .unwrap();
    assert_eq!(server.counts(), (1, 1));
}

/// While the server is full and its headroom is used, other requests get
/// `503` with `Retry-After`.
#[test]
fn full_server_answers_other_requests_with_503() {
    let server = push_server(&["--max-clients", "1"]);
    let _stream = subscribe(&server, "a", 0);
    // Idle connections that have not sent a request hold threads too.
    let idle: Vec<_> = (0..40).map(|_| server.connect()).collect();
    let (status, head, _) = poll_users_until(&server, 503);
    assert_eq!(status, 503);
    assert!(head.contains("Retry-After: 5"), "{head}");
    drop(idle);
    assert_eq!(poll_users_until(&server, 200).0, 200);
}

/// Asks for `/users` until the answer has `status` (or 5 s pass); returns
/// the last answer.
fn poll_users_until(server: &Server, status: u16) -> (u16, String, String) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let answer = server.get("/users");
        if answer.0 == status || std::time::Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/users` lists each user with its connection count and since when.
#[test]
fn users_endpoint_lists_users() {
    let server = push_server(&[]);
    let _a1 = subscribe(&server, "amy", 0);
    let _a2 = subscribe(&server, "amy", 1);
    let _b = subscribe(&server, "b", 0);
    let (status, head, body) = server.get("/users");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert!(body.starts_with("{\"users\":2,\"connections\":3,\"list\":[{\"userId\":\"amy\",\"connections\":2,\"since\":"), "{body}");
    assert!(
        body.contains("{\"userId\":\"b\",\"connections\":1,\"since\":"),
        "{body}"
    );
}

/// `--allow-origin` adds the CORS header to the stream and to `/users`.
#[test]
fn allow_origin_header() {
    let server = push_server(&["--allow-origin", "https://app.example"]);
    let client = server.open_stream("a");
    assert!(client
        .head()
        .contains("Access-Control-Allow-Origin: https://app.example\r\n"));
    assert!(server
        .get("/users")
        .1
        .contains("Access-Control-Allow-Origin: https://app.example"));
}

/// `GET /` serves the self-contained demo page.
#[test]
fn demo_page_is_served() {
    let server = push_server(&[]);
    let (status, head, body) = server.get("/");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        body.contains("EventSource"),
        "the page connects with EventSource"
    );
    assert!(
        !body.contains("src=\"http") && !body.contains("href=\"http"),
        "no external resources"
    );
}

/// A publisher's body may arrive after an `Expect: 100-continue`.
#[test]
fn expect_continue_is_answered() {
    let server = push_server(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"POST /broadcast HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    let mut client = common::SseClient::from_stream(stream);
    assert_eq!(client.head(), "HTTP/1.1 100 Continue\r\n\r\n");
    client.stream.write_all(b"hello").unwrap();
    let rest = client.read_to_close();
    assert_eq!(split_response(&rest).0, 202);
}

/// With `--features ctrlc`, SIGTERM sends every stream a `shutdown` event,
/// closes it, logs how many were closed and exits 0.
#[cfg(all(unix, feature = "ctrlc"))]
#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = push_server(&[]);
    let mut clients: Vec<_> = (0..5)
        .map(|index| subscribe(&server, &format!("u{index}"), 0))
        .collect();
    server.terminate();
    for client in &mut clients {
        let rest = String::from_utf8(client.read_to_close()).unwrap();
        assert!(
            rest.ends_with("event: shutdown\ndata: server is shutting down\n\n"),
            "{rest:?}"
        );
    }
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let line = server.wait_for_log("shutdown closed=", WAIT).unwrap();
    assert_eq!(line, "shutdown closed=5 unfinished=0");
    assert_eq!(
        server
            .log_lines()
            .iter()
            .filter(|l| l.contains("reason=shutdown"))
            .count(),
        5
    );
}

/// Ids keep increasing across a restart: a browser that comes back with an
/// id from the earlier run gets a `gap` (that run's later events are gone),
/// then everything the new run holds, instead of silently nothing.
#[test]
fn an_id_from_an_earlier_run_gets_a_gap_then_the_new_history() {
    let first_run = push_server(&[]);
    first_run.post("/broadcast", "from the first run");
    let old_id = first_run.id(1);
    drop(first_run);
    let second_run = push_server(&[]);
    second_run.post("/broadcast", "new one");
    second_run.post("/broadcast", "new two");
    let new_ids = [second_run.id(1), second_run.id(2)];
    assert!(
        common::event_id(&new_ids[0]) > common::event_id(&old_id),
        "{new_ids:?} vs {old_id}"
    );
    let mut client = second_run.open_stream_with("/sse/a", &format!("Last-Event-ID: {old_id}\r\n"));
    let gap = client.next_pushed_raw();
    assert!(gap.contains("\nevent: gap\n"), "{gap:?}");
    assert!(gap.contains(&format!("\"after\":\"{old_id}\"")), "{gap:?}");
    assert_eq!(client.next_pushed(), "id: 1\ndata: new one\n\n");
    assert_eq!(client.next_pushed(), "id: 2\ndata: new two\n\n");
    // An id that is not ours at all gets the same treatment.
    let mut stranger = second_run.open_stream_with("/sse/a", "Last-Event-ID: tab-42\r\n");
    assert!(stranger.next_pushed_raw().contains("\"after\":null"));
    assert_eq!(stranger.next_pushed(), "id: 1\ndata: new one\n\n");
}
