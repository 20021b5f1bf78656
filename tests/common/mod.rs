//! Shared helpers for the integration tests: start the real binary on port
//! 0, collect its log, and talk to it over raw sockets. Every socket has a
//! read and write timeout, so no test can hang.

#![allow(dead_code)] // each test file uses a different subset

pub mod redis;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Longest any single read in a test waits.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The server binary, started on a free port. Killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    /// Event ids from publish replies, in order: the test's event 1, 2, …
    ids: Ids,
}

/// The real ids (`1764509000123-0`) the server gave published events, so a
/// test can speak of "event 1, 2, 3" and compare frames as text.
#[derive(Clone, Default)]
pub struct Ids(Arc<Mutex<Vec<String>>>);

impl Ids {
    fn learn(&self, reply_body: &str) {
        if reply_body.contains("\"id\":\"") {
            self.0.lock().unwrap().push(json_string(reply_body, "id"));
        }
    }

    /// The real id of the test's event `number` (1-based).
    pub fn real(&self, number: usize) -> String {
        let ids = self.0.lock().unwrap();
        ids.get(number - 1)
            .unwrap_or_else(|| panic!("no event {number} published yet: {ids:?}"))
            .clone()
    }

    /// `text` with every known real id replaced by its number.
    pub fn number(&self, text: &str) -> String {
        let ids = self.0.lock().unwrap();
        let mut numbered: Vec<(usize, &String)> = ids.iter().enumerate().collect();
        // Longest first, so `5-1` never eats into `5-10`.
        numbered.sort_by_key(|(_, id)| std::cmp::Reverse(id.len()));
        let mut text = text.to_string();
        for (index, id) in numbered {
            text = text.replace(id.as_str(), &(index + 1).to_string());
        }
        text
    }
}

impl Server {
    /// Starts `sse-server --port 0` plus `args` and waits for its
    /// `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sse-server"));
        command.args(["--port", "0"]).args(args);
        command
            .env_remove("PORT")
            .env_remove("SSE_PUBLISH_TOKEN")
            .env_remove("SSE_SUBSCRIBE_SECRET");
        for (name, value) in env {
            command.env(name, value);
        }
        Server::start_command(command)
    }

    /// Runs `command`, which must end up exec'ing the server on port 0 (so
    /// the child's PID is the server's), and waits for its address.
    pub fn start_command(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sse-server");
        let stdout = child.stdout.take().expect("stdout is piped");
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let collector = Arc::clone(&log);
        // Drain stdout for the server's whole life, so it never blocks on a
        // full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (lines, changed) = &*collector;
                lines.lock().unwrap().push(line);
                changed.notify_all();
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
            ids: Ids::default(),
        };
        let first = server
            .wait_for_log("listening on http://", Duration::from_secs(10))
            .expect("server printed its address");
        let address = first.trim_start_matches("listening on http://");
        server.addr = address.parse().expect("a socket address");
        server
    }

    /// The log lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log_lines()
            .into_iter()
            .filter(|line| line.contains(needle))
            .collect()
    }

    /// Fails the test if any log line mentions a panic.
    #[track_caller]
    pub fn assert_no_panic(&self) {
        let panics = self.lines_with("panic");
        assert!(panics.is_empty(), "{panics:?}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; returns the first such line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_log_count(needle, 1, timeout)
            .map(|mut lines| lines.remove(0))
    }

    /// Waits until `count` log lines contain `needle`; returns them.
    pub fn wait_for_log_count(
        &self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Option<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let (lines, changed) = &*self.log;
        let mut lines = lines.lock().unwrap();
        loop {
            let found: Vec<String> = lines
                .iter()
                .filter(|line| line.contains(needle))
                .cloned()
                .collect();
            if found.len() >= count {
                return Some(found);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            lines = changed.wait_timeout(lines, remaining).unwrap().0;
        }
    }

    /// Opens a raw connection with timeouts.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Sends raw bytes and returns everything until the server closes.
    pub fn exchange(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        stream.write_all(request).expect("send request");
        read_to_close(&mut stream)
    }

    /// A `GET` with `Connection: close`; returns (status, headers text, body).
    pub fn get(&self, path: &str) -> (u16, String, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        split_response(&self.exchange(request.as_bytes()))
    }

    /// A `POST` with a body; returns (status, headers text, body). The id
    /// in a `202` reply becomes the test's next event number.
    pub fn post(&self, path: &str, body: &str) -> (u16, String, String) {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let reply = split_response(&self.exchange(request.as_bytes()));
        if reply.0 == 202 {
            self.ids.learn(&reply.2);
        }
        reply
    }

    /// The real id of the test's event `number` (1-based, in publish order).
    pub fn id(&self, number: usize) -> String {
        self.ids.real(number)
    }

    /// The ids this server gave, shared with the streams opened on it.
    pub fn ids(&self) -> Ids {
        self.ids.clone()
    }

    /// `GET /users` parsed down to (users, connections).
    pub fn counts(&self) -> (u64, u64) {
        let (_, _, body) = self.get("/users");
        (
            json_number(&body, "users"),
            json_number(&body, "connections"),
        )
    }

    /// Polls `/users` until `users` equals `expected`.
    pub fn wait_for_users(&self, expected: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.counts().0 == expected {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Opens `GET /sse/{user}` and reads through the response head.
    pub fn open_stream(&self, user: &str) -> SseClient {
        self.open_stream_with(&format!("/sse/{user}"), "")
    }

    /// Opens a stream with extra header lines (each ending in `\r\n`).
    pub fn open_stream_with(&self, target: &str, extra_headers: &str) -> SseClient {
        let mut stream = self.connect();
        let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\n{extra_headers}\r\n");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut client = SseClient::from_stream(stream);
        client.ids = self.ids.clone();
        client
    }

    /// Sends SIGTERM (Unix only), for the graceful-shutdown tests.
    #[cfg(unix)]
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log_lines().join("\n"));
        }
    }
}

/// A raw event-stream client.
pub struct SseClient {
    pub stream: TcpStream,
    buffer: Vec<u8>,
    head: Vec<u8>,
    /// The ids of the server it came from, for [`SseClient::next_pushed`].
    ids: Ids,
}

impl SseClient {
    /// Wraps a socket whose request was sent; reads through the response head.
    pub fn from_stream(stream: TcpStream) -> SseClient {
        let mut client = SseClient {
            stream,
            buffer: Vec::new(),
            head: Vec::new(),
            ids: Ids::default(),
        };
        client.head = client.read_until(b"\r\n\r\n");
        client
    }

    /// The response head (status line and headers), as text.
    pub fn head(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    /// Reads until `pattern` and returns everything up to and including it.
    /// Panics on timeout or close.
    pub fn read_until(&mut self, pattern: &[u8]) -> Vec<u8> {
        self.try_read_until(pattern, IO_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no {:?} in {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(&self.buffer)
            )
        })
    }

    pub fn try_read_until(&mut self, pattern: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(index) = find(&self.buffer, pattern) {
                let end = index + pattern.len();
                return Some(self.buffer.drain(..end).collect());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(remaining)).ok()?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(count) => self.buffer.extend_from_slice(&chunk[..count]),
            }
        }
    }

    /// The next event block (up to and including its blank line), as text.
    pub fn next_event(&mut self) -> String {
        String::from_utf8(self.read_until(b"\n\n")).expect("utf-8 event")
    }

    /// The next block that is a `data:` timer frame, skipping comments and
    /// `retry:`.
    pub fn next_tick(&mut self) -> String {
        self.next_event_starting_with("data: {\"userId\"", 100)
    }

    /// The next block with an `id:` and more (a pushed event or a gap),
    /// skipping others, with the ids the test published replaced by their
    /// numbers: `id: 1\ndata: hi\n\n`.
    pub fn next_pushed(&mut self) -> String {
        let event = self.next_pushed_raw();
        self.ids.number(&event)
    }

    /// [`SseClient::next_pushed`] with the real ids.
    pub fn next_pushed_raw(&mut self) -> String {
        self.next_event_where("a pushed event", 1000, |event| {
            event.starts_with("id: ") && !is_id_only(event)
        })
    }

    /// The id of the next id-only block (`id: N` and a blank line), which
    /// every stream starts with; skips others.
    pub fn next_id_only(&mut self) -> String {
        let event = self.next_event_where("an id-only block", 100, is_id_only);
        event["id: ".len()..event.len() - 2].to_string()
    }

    /// The next block starting with `prefix`, skipping at most `limit` others.
    fn next_event_starting_with(&mut self, prefix: &str, limit: usize) -> String {
        self.next_event_where(prefix, limit, |event| event.starts_with(prefix))
    }

    /// The next block that `wanted` accepts, skipping at most `limit`
    /// others; `what` names it in the panic.
    fn next_event_where(
        &mut self,
        what: &str,
        limit: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        for _ in 0..limit {
            let event = self.next_event();
            if wanted(&event) {
                return event;
            }
        }
        panic!("no {what:?} in {limit} events");
    }

    /// Reads until the server closes; returns what arrived.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buffer);
        rest.extend(read_to_close(&mut self.stream));
        rest
    }
}

/// An event id in its `ms-seq` form, parsed by the server's own parser
/// (ids compare as the server orders them). Panics on anything else.
pub fn event_id(text: &str) -> sse_server::event::EventId {
    assert!(text.contains('-'), "not an ms-seq id: {text:?}");
    sse_server::event::EventId::parse(text).unwrap_or_else(|| panic!("not an id: {text:?}"))
}

/// Whether an event block is only an id line: it sets the last event id
/// and dispatches nothing.
pub fn is_id_only(event: &str) -> bool {
    event.starts_with("id: ") && event.ends_with("\n\n") && event.matches('\n').count() == 2
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Reads until the server closes (EOF, or a reset after its reply). Panics
/// if the read timeout passes first: a server that hangs must not look like
/// one that closed.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return all,
            Ok(count) => all.extend_from_slice(&chunk[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "the server did not close within the read timeout; got {:?}",
                    String::from_utf8_lossy(&all)
                )
            }
            Err(_) => return all,
        }
    }
}

/// Splits a raw response into (status, head text, body text).
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_string(), body.to_string())
}

/// The number after `"key":` in a JSON text (flat, test-only parsing).
pub fn json_number(json: &str, key: &str) -> u64 {
    let needle = format!("\"{key}\":");
    let start = json
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + needle.len();
    let digits: String = json[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number for {key} in {json}"))
}

/// The string after `"key":` in a JSON text, with its escapes undone.
pub fn json_string(json: &str, key: &str) -> String {
    let needle = format!("\"{key}\":\"");
    let start = json
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + needle.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(character) = chars.next() {
        match character {
            '"' => return out,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).expect("hex escape");
                    out.push(char::from_u32(code).expect("a char"));
                }
                Some(other) => out.push(other),
                None => break,
            },
            other => out.push(other),
        }
    }
    panic!("unterminated string for {key} in {json}");
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Thread count and open-fd count of a process, from `/proc` (Linux only).
#[cfg(target_os = "linux")]
pub fn threads_and_fds(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("Threads: line");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fd dir")
        .count();
    (threads, fds)
}
