//! `sse-server listen` and `sse-server publish`, run as the real binary:
//! against the real server, and against a tiny fake server that answers
//! each connection with bytes the test chooses (other statuses, content
//! types, chunked bodies, closes), as other SSE servers might.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{json_string, Server};

/// Longest any client command in these tests may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `sse-server ARGS...` with its stdout and stderr piped.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sse-server"));
    command
        .args(args)
        .env_remove("SSE_PUBLISH_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("start sse-server")
}

/// Waits for `child` (killing it past [`COMMAND_TIMEOUT`]) and collects its
/// output; panics if it had to be killed.
fn finish(mut child: Child) -> Output {
    drop(child.stdin.take());
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "the command did not end in {COMMAND_TIMEOUT:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// Runs a client command to its end.
fn run(args: &[&str]) -> Output {
    finish(spawn(args, &[]))
}

/// Runs `publish` with `stdin` as its input.
fn run_with_stdin(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = spawn(args, env);
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    finish(child)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

fn url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

/// Waits until the server has logged `count` opens of `user`'s stream.
#[track_caller]
fn wait_for_open(server: &Server, user: &str, count: usize) {
    let needle = format!("open user=\"{user}\"");
    assert!(
        server
            .wait_for_log_count(&needle, count, Duration::from_secs(10))
            .is_some(),
        "no {needle} in the log"
    );
}

// Against the real server.

/// `--count N` prints N JSON lines and exits 0; timer frames are events.
#[test]
fn count_prints_n_events_as_json_lines() {
    let server = Server::start(&["--interval", "100ms"]);
    let output = run(&["listen", &url(&server, "/sse/alice"), "--count", "2"]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for line in lines {
        // The id is the one the stream's id-only block set: timer frames
        // carry no id of their own.
        let id = json_string(line, "id");
        assert!(id.split_once('-').is_some(), "{line}");
        assert!(
            line.contains("\",\"event\":\"message\",\"data\":\"{\\\"userId\\\":\\\"alice\\\""),
            "{line}"
        );
    }
    assert!(
        stderr(&output).contains("listen: connected to http://"),
        "{}",
        stderr(&output)
    );
}

/// `--timeout` exits 1 when the `--count` events have not come.
#[test]
fn timeout_exits_1_without_the_events() {
    let server = Server::start(&["--interval", "0"]);
    let started = Instant::now();
    let output = run(&[
        "listen",
        &url(&server, "/sse/quiet"),
        "--count",
        "1",
        "--timeout",
        "500ms",
    ]);
    assert_exit(&output, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains("timed out after"),
        "{}",
        stderr(&output)
    );
}

/// Without `--count`, `--timeout` is just how long to listen: exit 0.
#[test]
fn timeout_without_count_exits_0() {
    let server = Server::start(&["--interval", "100ms"]);
    let output = run(&[
        "listen",
        &url(&server, "/sse/tail"),
        "--timeout",
        "450ms",
        "--format",
        "data",
    ]);
    assert_exit(&output, 0);
    assert!(stdout(&output).lines().count() >= 2, "{}", stdout(&output));
}

/// `--event` filters by type; `publish` reads stdin; `--format data` and
/// `--format raw` print the data and the block as received.
#[test]
fn filter_formats_and_publish_from_stdin() {
    let server = Server::start(&["--interval", "50ms"]);
    let data_listener = spawn(
        &[
            "listen",
            &url(&server, "/sse/bob"),
            "--event",
            "note",
            "--count",
            "1",
            "--format",
            "data",
        ],
        &[],
    );
    let raw_listener = spawn(
        &[
            "listen",
            &url(&server, "/sse/bob"),
            "--event=chat",
            "--event=note",
            "--count=2",
            "--format=raw",
        ],
        &[],
    );
    wait_for_open(&server, "bob", 2);
    let base = url(&server, "");
    let published = run_with_stdin(
        &["publish", &base, "--to", "bob", "--event", "chat", "-"],
        &[],
        "hi\n",
    );
    assert_exit(&published, 0);
    let published = run(&[
        "publish",
        &base,
        "--to",
        "bob",
        "--event=note",
        "two\nlines",
    ]);
    assert_exit(&published, 0);
    assert!(
        stdout(&published).contains("\"delivered\":2"),
        "{}",
        stdout(&published)
    );

    let data = finish(data_listener);
    assert_exit(&data, 0);
    assert_eq!(stdout(&data), "two\nlines\n");
    let raw = finish(raw_listener);
    assert_exit(&raw, 0);
    let raw = stdout(&raw);
    let blocks: Vec<&str> = raw.split_inclusive("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{raw}");
    assert!(
        blocks[0].starts_with("id: ") && blocks[0].ends_with("\nevent: chat\ndata: hi\n\n"),
        "{raw}"
    );
    assert!(
        blocks[1].ends_with("\nevent: note\ndata: two\ndata: lines\n\n"),
        "{raw}"
    );
}

/// `publish` exits 0 on 202 with the reply on stdout, and 3 with the
/// status and body on stderr otherwise; it sends `$SSE_PUBLISH_TOKEN`.
#[test]
fn publish_exit_codes_and_token() {
    let server = Server::start(&["--interval", "0", "--publish-token", "s3cret"]);
    let base = url(&server, "");
    let refused = run(&["publish", &base, "hello"]);
    assert_exit(&refused, 3);
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));
    assert_eq!(stdout(&refused), "");

    let accepted = run_with_stdin(
        &["publish", &base, "hello"],
        &[("SSE_PUBLISH_TOKEN", "s3cret")],
        "",
    );
    assert_exit(&accepted, 0);
    let reply = stdout(&accepted);
    assert!(
        reply.starts_with("{\"id\":") && reply.ends_with("\"delivered\":0}\n"),
        "{reply}"
    );

    let wrong = run_with_stdin(
        &["publish", &base, "x"],
        &[("SSE_PUBLISH_TOKEN", "nope")],
        "",
    );
    assert_exit(&wrong, 3);
    let empty = run_with_stdin(
        &["publish", &base, "-"],
        &[("SSE_PUBLISH_TOKEN", "s3cret")],
        "",
    );
    assert_exit(&empty, 3);
    assert!(stderr(&empty).contains("400"), "{}", stderr(&empty));
}

/// Across a server restart on the same port, `listen` reconnects with the
/// id it last saw as `Last-Event-ID`; the new server, which knows that id
/// comes from an earlier run, sends a `gap` and then everything it holds,
/// including what was published before the reconnection.
#[test]
fn reconnects_across_a_restart_and_replays_with_last_event_id() {
    let first = Server::start(&["--interval", "0", "--retry", "1500ms"]);
    let port = first.addr.port().to_string();
    let listener = spawn(
        &[
            "listen",
            &url(&first, "/sse/carol"),
            "--count",
            "4",
            "--timeout",
            "15s",
        ],
        &[],
    );
    wait_for_open(&first, "carol", 1);
    for data in ["before-1", "before-2"] {
        let (status, _, _) = first.post("/send/carol", data);
        assert_eq!(status, 202);
    }
    // Give the two events time to arrive, then stop the server for good.
    thread::sleep(Duration::from_millis(300));
    drop(first);
    let second = Server::start(&["--port", &port, "--interval", "0"]);
    for data in ["after-1", "after-2", "after-3"] {
        let (status, _, _) = second.post("/send/carol", data);
        assert_eq!(status, 202);
    }
    let output = finish(listener);
    assert_exit(&output, 0);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(json_string(lines[0], "data"), "before-1");
    assert_eq!(json_string(lines[1], "data"), "before-2");
    assert_eq!(json_string(lines[2], "event"), "gap", "{out}");
    // Only a replay can bring it: it was published before the reconnection.
    assert_eq!(json_string(lines[3], "data"), "after-1");
    let last_id = json_string(lines[1], "id");
    assert!(
        lines[2].contains(&format!("\\\"after\\\":\\\"{last_id}\\\"")),
        "{out}"
    );
    let status = stderr(&output);
    assert!(status.contains("reconnecting in"), "{status}");
    assert!(
        status.contains(&format!("with Last-Event-ID: {last_id}")),
        "{status}"
    );
    wait_for_open(&second, "carol", 1);
}

// Against a fake server.

/// A server that answers the first `responses.len()` connections in turn:
/// it reads the request head, writes the bytes, and closes. The handle
/// returns the request heads it read.
fn fake_server(responses: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut requests = Vec::new();
        for response in responses {
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(_) => return requests,
                }
            };
            stream.set_nonblocking(false).expect("blocking");
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            requests.push(String::from_utf8_lossy(&head).into_owned());
            let _ = stream.write_all(&response);
        }
        requests
    });
    (addr, handle)
}

fn stream_response(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n{body}").into_bytes()
}

/// §9.2.3: a status other than 200 fails the connection: exit 3, no retry.
#[test]
fn gives_up_on_404() {
    let (addr, server) = fake_server(vec![
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
    ]);
    let output = run(&["listen", &format!("http://{addr}/sse/x")]);
    assert_exit(&output, 3);
    assert!(
        stderr(&output).contains("giving up: the server answered 404 Not Found"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.join().expect("fake server").len(), 1);
}

/// §9.2.3: 204 No Content means "stop": exit 0, or 3 if `--count` was not
/// reached.
#[test]
fn stops_on_204() {
    let no_content = b"HTTP/1.1 204 No Content\r\n\r\n".to_vec();
    let (addr, _server) = fake_server(vec![no_content.clone()]);
    let output = run(&["listen", &format!("http://{addr}/")]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("204 No Content"),
        "{}",
        stderr(&output)
    );

    // WPT format-data-before-final-empty-line: the event with no blank line
    // is dropped when the stream ends.
    let (addr, _server) = fake_server(vec![
        stream_response("retry: 10\ndata: a\n\nid: 9\ndata: b"),
        no_content,
    ]);
    let output = run(&[
        "listen",
        &format!("http://{addr}/"),
        "--count",
        "5",
        "--format",
        "data",
    ]);
    assert_exit(&output, 3);
    assert_eq!(stdout(&output), "a\n");
    assert!(
        stderr(&output).contains("an incomplete event was dropped"),
        "{}",
        stderr(&output)
    );
}

/// §9.2.3 and WPT format-mime-*: only `text/event-stream` (parameters
/// aside) is read; anything else fails the connection.
#[test]
fn content_type_decides() {
    for content_type in ["text/x-bogus", "x bogus", "text/html; charset=utf-8"] {
        let response =
            format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\ndata: no\n\n");
        let (addr, _server) = fake_server(vec![response.into_bytes()]);
        let output = run(&["listen", &format!("http://{addr}/"), "--count", "1"]);
        assert_exit(&output, 3);
        assert!(
            stderr(&output).contains("not text/event-stream"),
            "{}",
            stderr(&output)
        );
        assert_eq!(stdout(&output), "");
    }
    let response = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;\r\n\r\ndata: yes\n\n";
    let (addr, _server) = fake_server(vec![response.as_bytes().to_vec()]);
    let output = run(&[
        "listen",
        &format!("http://{addr}/"),
        "--count",
        "1",
        "--format",
        "data",
    ]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "yes\n");
}

/// The request carries `Accept` and `Cache-Control`; a reconnection after
/// the server closes waits `retry:` and sends the last id back (WPT
/// format-field-id: a non-ASCII id survives the round trip).
#[test]
fn reconnection_sends_last_event_id() {
    let (addr, server) = fake_server(vec![
        stream_response("retry: 50\nid: …\ndata: hello\n\n"),
        stream_response("data: again\n\n"),
    ]);
    let started = Instant::now();
    let output = run(&["listen", &format!("http://{addr}/sse/x"), "--count", "2"]);
    assert_exit(&output, 0);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        stdout(&output),
        "{\"id\":\"…\",\"event\":\"message\",\"data\":\"hello\"}\n\
         {\"id\":\"…\",\"event\":\"message\",\"data\":\"again\"}\n"
    );
    let requests = server.join().expect("fake server");
    assert_eq!(requests.len(), 2);
    assert!(
        requests[0].starts_with("GET /sse/x HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0].contains("\r\nAccept: text/event-stream\r\n"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0].contains("\r\nCache-Control: no-cache\r\n"),
        "{}",
        requests[0]
    );
    assert!(!requests[0].contains("Last-Event-ID"), "{}", requests[0]);
    assert!(
        requests[1].contains("\r\nLast-Event-ID: …\r\n"),
        "{}",
        requests[1]
    );
    let status = stderr(&output);
    assert!(
        status.contains("the server closed the stream; reconnecting in 50 ms"),
        "{status}"
    );
}

/// `--last-event-id` is sent on the first request too.
#[test]
fn last_event_id_flag_is_sent_first() {
    let (addr, server) = fake_server(vec![stream_response("data: x\n\n")]);
    let output = run(&[
        "listen",
        &format!("http://{addr}/"),
        "--count",
        "1",
        "--last-event-id",
        "1764509000123-0",
    ]);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "{\"id\":\"1764509000123-0\",\"event\":\"message\",\"data\":\"x\"}\n"
    );
    let requests = server.join().expect("fake server");
    assert!(
        requests[0].contains("\r\nLast-Event-ID: 1764509000123-0\r\n"),
        "{}",
        requests[0]
    );
}

/// A chunked body (as nginx or Node may send) is decoded before parsing,
/// even with chunk boundaries inside a line and inside a CRLF.
#[test]
fn chunked_bodies_are_decoded() {
    // Cut after "data", inside the first CRLF, inside "data: two", and
    // leave an incomplete "id" line before the last chunk.
    let events = "data: one\r\n\r\ndata: two\r\n\r\nid";
    let mut body =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_string();
    let mut start = 0;
    for end in [4, 10, 16, 20, events.len()] {
        body += &format!("{:x}; ext=1\r\n{}\r\n", end - start, &events[start..end]);
        start = end;
    }
    body += "0\r\nTrailer: x\r\n\r\n";
    let (addr, _server) = fake_server(vec![body.as_bytes().to_vec()]);
    let output = run(&[
        "listen",
        &format!("http://{addr}/"),
        "--count",
        "2",
        "--format",
        "data",
    ]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "one\ntwo\n");
}

/// A broken chunked body is a give-up, not a hang or a crash.
#[test]
fn broken_chunked_body_gives_up() {
    let body = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let (addr, _server) = fake_server(vec![body.as_bytes().to_vec()]);
    let output = run(&["listen", &format!("http://{addr}/"), "--count", "1"]);
    assert_exit(&output, 3);
    assert!(
        stderr(&output).contains("malformed chunked encoding"),
        "{}",
        stderr(&output)
    );
}

/// `--max-reconnects K` gives up after K reconnections in a row that
/// brought no event.
#[test]
fn max_reconnects_bounds_the_retries() {
    let empty = stream_response("retry: 10\n\n");
    let (addr, server) = fake_server(vec![empty.clone(), empty.clone(), empty]);
    let output = run(&[
        "listen",
        &format!("http://{addr}/"),
        "--max-reconnects",
        "2",
    ]);
    assert_exit(&output, 3);
    assert!(
        stderr(&output).contains("2 reconnections in a row brought no event"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.join().expect("fake server").len(), 3);
}

/// A refused first connection exits 3 at once; bad usage exits 2.
#[test]
fn exit_codes_for_refused_and_bad_usage() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let refused = run(&["listen", &format!("http://127.0.0.1:{port}/")]);
    assert_exit(&refused, 3);
    assert!(
        stderr(&refused).contains("could not connect"),
        "{}",
        stderr(&refused)
    );
    let refused = run(&["publish", &format!("http://127.0.0.1:{port}/"), "x"]);
    assert_exit(&refused, 3);

    for args in [
        vec!["listen"],
        vec!["listen", "http://127.0.0.1:1/", "--bogus"],
        vec!["listen", "http://127.0.0.1:1/", "--count", "x"],
        vec!["listen", "https://127.0.0.1:1/"],
        vec!["publish", "http://127.0.0.1:1/"],
        vec!["publish", "https://127.0.0.1:1/", "x"],
    ] {
        let output = run(&args);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).lines().count() == 1,
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let https = run(&["listen", "https://127.0.0.1:1/"]);
    assert!(
        stderr(&https).contains("use curl, or a local nginx"),
        "{}",
        stderr(&https)
    );
    let help = run(&["listen", "--help"]);
    assert_exit(&help, 0);
    assert!(stdout(&help).contains("Exit codes"));
}
