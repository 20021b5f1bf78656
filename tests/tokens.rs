//! Subscriber tokens, end to end: the real binary with a subscribe secret,
//! streams opened with good and bad tokens, tokens minted by the CLI, by
//! `POST /token/{user}` and by Python, and a log that never shows a token.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{json_number, json_string, split_response, Server};
use sse_server::token;

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
const WAIT: Duration = Duration::from_secs(5);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn start() -> Server {
    Server::start_with_env(&["--interval", "50ms"], &[("SSE_SUBSCRIBE_SECRET", SECRET)])
}

/// A token for `user` made with the library, valid for an hour.
fn library_token(user: &str) -> String {
    token::mint(SECRET.as_bytes(), user, now() + 3600)
}

/// Opens `target` with extra headers and checks that a stream starts.
#[track_caller]
fn assert_stream_opens(server: &Server, target: &str, headers: &str) {
    let mut client = server.open_stream_with(target, headers);
    assert!(
        client.head().starts_with("HTTP/1.1 200 OK\r\n"),
        "{target}: {}",
        client.head()
    );
    assert!(client.next_tick().contains("\"userId\":\"alice\""));
}

/// Sends a `GET` with extra headers; returns (status, head, body). Reads
/// for at most [`WAIT`] and 64 KiB, so a stream wrongly opened (it never
/// closes) fails the test instead of hanging it.
fn get_with(server: &Server, target: &str, headers: &str) -> (u16, String, String) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
    split_response(&exchange_bounded(server, request.as_bytes()))
}

/// [`get_with`] without extra headers.
fn get(server: &Server, target: &str) -> (u16, String, String) {
    get_with(server, target, "")
}

/// Sends `request`; returns what arrives until the close, the deadline or
/// the size cap, whichever comes first.
fn exchange_bounded(server: &Server, request: &[u8]) -> Vec<u8> {
    let mut stream = server.connect();
    stream.write_all(request).expect("send request");
    let deadline = Instant::now() + WAIT;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while received.len() < 64 * 1024 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || stream.set_read_timeout(Some(remaining)).is_err() {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(count) => received.extend_from_slice(&chunk[..count]),
        }
    }
    received
}

/// A `401` with the Bearer challenge and the one short body.
#[track_caller]
fn assert_refused(response: (u16, String, String), what: &str) {
    let (status, head, body) = response;
    assert_eq!(status, 401, "{what}: {head}");
    assert!(
        head.contains("\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\n"),
        "{what}: {head}"
    );
    assert_eq!(body, "a valid subscriber token is required\n", "{what}");
}

/// A valid token opens the stream, in the query or in the header.
#[test]
fn a_good_token_opens_the_stream_by_query_or_header() {
    let server = start();
    let token = library_token("alice");
    assert_stream_opens(&server, &format!("/sse/alice?token={token}"), "");
    assert_stream_opens(
        &server,
        &format!("/sse/alice?lastEventId=0&token={token}"),
        "",
    );
    assert_stream_opens(
        &server,
        "/sse/alice",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    server.assert_no_panic();
}

/// Every bad token gets the same 401, is logged once with a reason, and no
/// log line shows a token.
#[test]
fn bad_tokens_are_refused_the_same_way_and_never_logged() {
    let server = start();
    let good = library_token("alice");
    let (expires, mac) = good.split_once('.').expect("a dot");
    let expires: u64 = expires.parse().expect("digits");
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("no dot", format!("{expires}{mac}")),
        ("many dots", format!("{expires}.{mac}.x")),
        ("non-digits", format!("12ab.{mac}")),
        ("huge number", format!("99999999999999999999.{mac}")),
        ("bad base64", format!("{expires}.*{}", &mac[1..])),
        ("padding", format!("{good}=")),
        ("short mac", format!("{expires}.{}", &mac[..20])),
        ("bob's token", library_token("bob")),
        (
            "expired",
            token::mint(SECRET.as_bytes(), "alice", now() - 1),
        ),
        (
            "other secret",
            token::mint(&[b'x'; 40], "alice", now() + 3600),
        ),
        ("altered expiry", format!("{}.{mac}", expires + 1)),
    ];
    assert_refused(get(&server, "/sse/alice"), "no token at all");
    for (what, bad) in &cases {
        assert_refused(get(&server, &format!("/sse/alice?token={bad}")), what);
        let header = format!("Authorization: Bearer {bad}\r\n");
        if !bad.is_empty() {
            assert_refused(get_with(&server, "/sse/alice", &header), what);
        }
    }
    // One reject line per refusal: the bare request, each case by query,
    // each non-empty case by header.
    let expected = 1 + cases.len() * 2 - 1;
    let rejects = server
        .wait_for_log_count("reject status=401", expected, WAIT)
        .expect("every refusal logged");
    assert_eq!(rejects.len(), expected, "{rejects:#?}");
    for line in &rejects {
        assert!(line.contains(" reason=\""), "{line}");
    }
    assert!(rejects
        .iter()
        .any(|line| line.contains("reason=\"token expired\"")));
    assert!(rejects
        .iter()
        .any(|line| line.contains("target=\"/sse/alice?token=[redacted]\"")));
    let log = server.log_lines().join("\n");
    assert!(!log.contains(mac), "the log shows a MAC:\n{log}");
    assert!(
        !log.contains(&mac[..20]),
        "the log shows part of a MAC:\n{log}"
    );
    assert_eq!(server.counts(), (0, 0), "no refused stream registered");
    server.assert_no_panic();
}

/// A token is bound to its user: bob's opens bob's stream, not alice's.
#[test]
fn a_token_for_bob_is_refused_on_alice() {
    let server = start();
    let bob = library_token("bob");
    assert_refused(
        get(&server, &format!("/sse/alice?token={bob}")),
        "bob on alice",
    );
    let client = server.open_stream_with(&format!("/sse/bob?token={bob}"), "");
    assert!(client.head().starts_with("HTTP/1.1 200 OK\r\n"));
    server
        .wait_for_log("reason=\"token mac does not match", WAIT)
        .expect("the refusal is logged with its reason");
}

/// `HEAD /sse/{user}` needs a token too.
#[test]
fn head_needs_a_token_too() {
    let server = start();
    let raw = exchange_bounded(&server, b"HEAD /sse/alice HTTP/1.1\r\nHost: test\r\n\r\n");
    let (status, _, body) = split_response(&raw);
    assert_eq!((status, body.as_str()), (401, ""));
    let token = library_token("alice");
    let request = format!("HEAD /sse/alice?token={token} HTTP/1.1\r\nHost: test\r\n\r\n");
    let (status, head, _) = split_response(&server.exchange(request.as_bytes()));
    assert_eq!(status, 200, "{head}");
}

/// `sse-server token alice` prints a token the server accepts, reading the
/// same secret from the environment or from a file.
#[test]
fn a_cli_minted_token_is_accepted() {
    let server = start();
    let output = Command::new(env!("CARGO_BIN_EXE_sse-server"))
        .args(["token", "alice", "--ttl", "5m"])
        .env("SSE_SUBSCRIBE_SECRET", SECRET)
        .output()
        .expect("run sse-server token");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    let token = token.trim_end();
    let expires: u64 = token.split('.').next().unwrap().parse().unwrap();
    assert!((now() + 299..=now() + 301).contains(&expires), "{token}");
    assert_stream_opens(&server, &format!("/sse/alice?token={token}"), "");

    let file = std::env::temp_dir().join(format!("sse-tokens-{}", std::process::id()));
    std::fs::write(&file, format!("{SECRET}\n")).expect("write the secret file");
    let output = Command::new(env!("CARGO_BIN_EXE_sse-server"))
        .arg("token")
        .arg("alice")
        .arg("--subscribe-secret-file")
        .arg(&file)
        .env_remove("SSE_SUBSCRIBE_SECRET")
        .output()
        .expect("run sse-server token");
    let _ = std::fs::remove_file(&file);
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    assert_stream_opens(
        &server,
        &format!("/sse/alice?token={}", token.trim_end()),
        "",
    );
}

/// A short secret stops the server and the CLI with exit status 2 and one line.
#[test]
fn a_short_secret_exits_2_with_one_line() {
    for args in [&["--port", "0"][..], &["token", "alice"][..]] {
        let output = Command::new(env!("CARGO_BIN_EXE_sse-server"))
            .args(args)
            .env("SSE_SUBSCRIBE_SECRET", "too short")
            .output()
            .expect("run sse-server");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("the secret is 9 bytes, it needs at least 32"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("too short"),
            "the secret is echoed: {stderr}"
        );
    }
}

/// `POST /token/alice` from loopback answers a token the server accepts.
#[test]
fn a_token_from_post_token_is_accepted() {
    let server = start();
    let (status, head, body) = server.post("/token/alice?ttl=10m", "");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.contains("Cache-Control: no-store"), "{head}");
    let token = json_string(&body, "token");
    let expires = json_number(&body, "expires");
    assert!((now() + 599..=now() + 601).contains(&expires), "{body}");
    assert!(token.starts_with(&format!("{expires}.")), "{body}");
    assert_stream_opens(&server, &format!("/sse/alice?token={token}"), "");
    let (status, _, _) = server.post("/token/alice?ttl=48h", "");
    assert_eq!(status, 400);
    let (status, _, _) = server.get("/token/alice");
    assert_eq!(status, 405);
    assert!(
        !server.log_lines().join("\n").contains(&token),
        "the log shows the minted token"
    );
}

/// With a publish token, `POST /token/` needs it, as `/send` does.
#[test]
fn post_token_is_guarded_like_send() {
    let server = Server::start_with_env(
        &["--publish-token", "pub-token"],
        &[("SSE_SUBSCRIBE_SECRET", SECRET)],
    );
    let (status, _, _) = server.post("/token/alice", "");
    assert_eq!(status, 401);
    let request = "POST /token/alice HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer pub-token\r\n\
                   Content-Length: 0\r\n\r\n";
    let (status, _, body) = split_response(&server.exchange(request.as_bytes()));
    assert_eq!(status, 200, "{body}");
}

/// Without a secret nothing changes, and there is no `/token/` to call.
#[test]
fn without_a_secret_streams_are_open_and_token_is_404() {
    let server = Server::start(&["--interval", "50ms"]);
    assert_stream_opens(&server, "/sse/alice", "");
    let (status, _, _) = server.post("/token/alice", "");
    assert_eq!(status, 404);
}

/// A token computed by Python's standard library is accepted: the format
/// is what the README says, and any language can mint one.
#[test]
fn a_token_computed_by_python_is_accepted() {
    let script = "import base64, hashlib, hmac, sys, time\n\
                  secret, user = sys.argv[1].encode(), sys.argv[2]\n\
                  exp = str(int(time.time()) + 3600)\n\
                  mac = hmac.new(secret, (user + '\\n' + exp).encode(), hashlib.sha256).digest()\n\
                  print(exp + '.' + base64.urlsafe_b64encode(mac).rstrip(b'=').decode())\n";
    let output = match Command::new("python3")
        .args(["-c", script, SECRET, "alice"])
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "python3 is required under CI=true: {error}"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED a_token_computed_by_python_is_accepted: python3 not found ({error})"
            );
            return;
        }
    };
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    let server = start();
    assert_stream_opens(
        &server,
        &format!("/sse/alice?token={}", token.trim_end()),
        "",
    );
}
