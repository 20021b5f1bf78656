//! Load generator for sse-server: opens N concurrent SSE connections
//! (`GET /sse/u{i}`) and measures what a server with one thread per connection
//! is judged on: connect time, time to first byte, tick delivery, broadcast
//! fan-out latency and disconnect detection.
//!
//! ```text
//! cargo run --release --example loadgen -- --addr 127.0.0.1:3000 --clients 1000 \
//!     --interval 1s --duration 10s --broadcasts 5 --close 500 --threads 2
//! ```
//!
//! # What it does, in order
//!
//! 1. Opens the N streams from one connector thread per worker, at most
//!    `--connect-window` (100) unanswered at a time, and times each one's
//!    first bytes (`:\n\n`). Without the window, a burst overflows the
//!    server's accept queue (128 for std's `TcpListener::bind`) and the
//!    kernel retries the dropped SYNs after 1 s: that measures the kernel,
//!    not the server.
//! 2. Waits until `GET /users` counts N, then keeps every stream open for
//!    `--duration` and records each timer frame: lateness on its stream's own schedule over
//!    all clients, jitter of each client's frame gaps, missed ticks.
//! 3. Sends `--broadcasts` `POST /broadcast`s one at a time, each with a
//!    token unique to this run, and times every client's receipt.
//! 4. Closes `--close` clients at once and times `GET /users` (and, with
//!    `--server-log`, each client's `close user=…` log line) noticing.
//!
//! Every frame is parsed strictly (LF line endings, known fields only, the
//! timer frame byte for byte with this client's userId); anything else is an
//! invalid frame. The run fails (exit 1) if any check fails.
//!
//! # How it reads N sockets without a thread per client
//!
//! std has no `epoll`, so a few worker threads each own a share of the sockets,
//! all non-blocking, and read them in passes. While data is flowing a worker
//! reads all of its sockets back to back. When a full pass finds nothing it
//! goes idle: every millisecond it reads one socket in `IDLE_STRIDE`, and goes
//! back to full passes as soon as one of them has data. Ticks and broadcasts
//! reach every client, so a sample notices them; an idle worker costs about
//! `N / IDLE_STRIDE` reads per millisecond instead of `N`, which leaves the
//! 2-core machine's CPU to the server being measured. A receive time is the
//! moment `read` returned the bytes, so every latency here is late by up to
//! one pass; the report prints the pass duration as the measurement
//! resolution.
//!
//! # Limits on N
//!
//! - Each connection is one file descriptor here and one in the server: both
//!   processes need `ulimit -n` above N (checked at start).
//! - Each connection takes a port from the ephemeral range
//!   (`/proc/sys/net/ipv4/ip_local_port_range`, about 28 000 ports) *per
//!   destination address*. std cannot bind a source address before `connect`,
//!   so to go past it, `--targets 127.0.0.1,127.0.0.2,…` spreads connections
//!   over several destination addresses; the server must listen on each of
//!   them; sse-server binds one address, so past ~28 000 this needs a second
//!   server or listener per address.
//! - The server spends one thread per connection: `pid_max`, `threads-max`,
//!   and `vm.max_map_count`, which a std thread uses four entries of (stack,
//!   its guard page, signal stack, its guard page). With the default 65530,
//!   that is about 16 300 threads, below the 20 000 open files.
//!
//! The integration test `tests/loadgen.rs` includes this file as a module and
//! calls [`run`]; `main` only parses flags and prints.

// Items used by `main` only are unused when `tests/loadgen.rs` includes this
// file as a module, and the other way round.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An idle worker reads one socket in this many per pass (see the module doc).
const IDLE_STRIDE: usize = 32;

/// Pause after a pass that found nothing.
const IDLE_SLEEP: Duration = Duration::from_millis(1);

/// Bytes read from a socket per `read` call.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// A response head longer than this is counted as an HTTP error.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most broadcasts per run (each client tracks them in a `u64` bit set).
const MAX_BROADCASTS: usize = 64;

/// Invalid frames quoted in the report.
const MAX_INVALID_EXAMPLES: usize = 5;

/// Timeout of each control request (`GET /users`, `POST /broadcast`).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between two broadcasts, so their deliveries do not overlap.
const BROADCAST_GAP: Duration = Duration::from_millis(100);

/// After `/users` shows the closed clients gone, how long to keep tailing the
/// server log for the last `close` lines.
const LOG_GRACE: Duration = Duration::from_secs(2);

/// What to run; `parse_args` fills it from flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// Server address for control requests and, without `targets`, streams.
    pub addr: SocketAddr,
    /// Destination addresses to spread the streams over (port from `addr`).
    pub targets: Vec<IpAddr>,
    /// Cluster mode: instances to spread the streams over, round-robin
    /// (control requests still go to `addr`). A broadcast's `delivered` is
    /// then only the instance's own share, so it is not checked.
    pub stream_addrs: Vec<SocketAddr>,
    /// Number of concurrent SSE connections, users `u0` … `u{N-1}`.
    pub clients: usize,
    /// Steady window after all clients are connected, for tick measurements.
    pub duration: Duration,
    /// The server's `--interval`; inferred from the `time` fields when absent.
    pub interval: Option<Duration>,
    /// Number of `POST /broadcast` to time.
    pub broadcasts: usize,
    /// Number of clients to close at once at the end (disconnect detection).
    pub close: usize,
    /// Worker threads that read the sockets.
    pub threads: usize,
    /// Most connections opened but not yet answered (0: no limit). Kept
    /// below the server's accept backlog (128 with std's `TcpListener::bind`)
    /// so a burst of `connect`s measures how fast the server accepts, not the
    /// kernel's 1 s SYN retry after the accept queue overflows.
    pub connect_window: usize,
    /// The server's stdout log, tailed for `close user=…` lines.
    pub server_log: Option<PathBuf>,
    /// Limit for each waiting phase (connect, users, each broadcast, close).
    pub timeout: Duration,
    /// Print progress to stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            targets: Vec::new(),
            stream_addrs: Vec::new(),
            clients: 1000,
            duration: Duration::from_secs(10),
            interval: None,
            broadcasts: 5,
            close: 0,
            threads: 2,
            connect_window: 100,
            server_log: None,
            timeout: Duration::from_secs(60),
            progress: true,
        }
    }
}

pub const USAGE: &str = "\
usage: loadgen [--addr HOST:PORT] [--targets IP,IP,…] [--stream-addrs HOST:PORT,…]
               [--clients N] [--duration DUR]
               [--interval DUR] [--broadcasts N] [--close K] [--threads T]
               [--connect-window W] [--server-log PATH]
               [--timeout DUR] [--quiet]
DUR = number + ms|s|m. Exits 1 if any check fails.";

/// p50 / p99 / max of a set of samples, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Error counts. A client we closed ourselves is not an error.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Errors {
    /// `connect` failed or timed out.
    pub connect: u64,
    /// Wrong status, headers or response head.
    pub http: u64,
    /// The server answered "server is full".
    pub full: u64,
    /// The server closed a stream (EOF) we had not closed.
    pub eof: u64,
    /// `read` failed (connection reset and the like).
    pub reset: u64,
    /// Control requests (`/users`, `/broadcast`) that failed.
    pub control: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.http + self.full + self.eof + self.reset + self.control
    }

    fn add(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.http += other.http;
        self.full += other.full;
        self.eof += other.eof;
        self.reset += other.reset;
        self.control += other.control;
    }
}

/// One broadcast: what the server said and when clients got it.
#[derive(Clone, Debug, Default)]
pub struct BroadcastResult {
    /// `delivered` from the 202 answer.
    pub delivered: Option<usize>,
    /// From just before the POST until its answer arrived: the server
    /// answers after writing to every stream, so this is its own fan-out time.
    pub post_ms: f64,
    /// Clients that received the token.
    pub received: usize,
    /// Latency per client from just before the POST.
    pub latency: Stats,
}

/// Everything measured, plus the checks that failed.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub clients: usize,
    /// Clients whose stream started (got `:\n\n`).
    pub connected: usize,
    /// Until every `connect` returned and its request was written.
    pub tcp_connect_ms: f64,
    /// Until every stream got its first bytes.
    pub connect_ms: f64,
    /// From `connect` to the `:\n\n` comment, per client.
    pub ttfb: Stats,
    /// Timer frames received (all clients, whole run).
    pub frames: u64,
    /// Pushed events received.
    pub events: u64,
    pub invalid: u64,
    pub invalid_examples: Vec<String>,
    /// Highest `users` in a timer frame.
    pub users_in_frames: usize,
    /// Highest `users` from `GET /users`.
    pub users_api: usize,
    pub interval_ms: f64,
    /// Tick numbers seen inside the steady window.
    pub ticks_measured: usize,
    /// Per frame: how late it was written on its stream's own schedule
    /// (from the frame's `time`; a lower bound, see `analyse_ticks`).
    pub tick_lateness: Stats,
    /// |gap between consecutive frames of a client - interval|.
    pub jitter: Stats,
    /// Ticks a client skipped (a `time` gap of two intervals or more).
    pub missed_ticks: u64,
    /// Clients with fewer frames in the steady window than it must hold.
    pub short_clients: usize,
    pub broadcasts: Vec<BroadcastResult>,
    /// Latency of all clients over all broadcasts.
    pub fanout: Stats,
    pub closed: usize,
    /// From the first close until `/users` dropped by `closed`.
    pub disconnect_ms: Option<f64>,
    /// Per client, from its close until its `close user=` log line appeared.
    pub disconnect_log: Option<Stats>,
    /// `/users` requests made while waiting, and their mean duration.
    pub users_polls: usize,
    pub users_poll_ms: f64,
    pub errors: Errors,
    /// Duration of a worker's full read pass: the measurement resolution.
    pub pass: Stats,
    /// CPU time of this process per second of run, in % of one core.
    pub loadgen_cpu_percent: f64,
    pub run_seconds: f64,
    /// Checks that failed; empty means the run passed.
    pub failures: Vec<String>,
}

fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(message) => {
            eprintln!("loadgen: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&options) {
        Ok(report) => {
            print!("{}", report.human());
            println!("{}", report.result_line());
            if !report.failures.is_empty() {
                std::process::exit(1);
            }
        }
        Err(message) => {
            eprintln!("loadgen: {message}");
            std::process::exit(1);
        }
    }
}

/// Parses flags; `Ok(None)` for `--help`.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        if flag == "--quiet" {
            options.progress = false;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("bad {flag} {value:?}: {what}");
        match flag.as_str() {
            "--addr" => options.addr = value.parse().map_err(|_| bad("want IP:PORT"))?,
            "--targets" => {
                options.targets = value
                    .split(',')
                    .map(|ip| ip.trim().parse::<IpAddr>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("want IP,IP,…"))?
            }
            "--stream-addrs" => {
                options.stream_addrs = value
                    .split(',')
                    .map(|addr| addr.trim().parse::<SocketAddr>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("want IP:PORT,IP:PORT,…"))?
            }
            "--clients" => options.clients = value.parse().map_err(|_| bad("want a number"))?,
            "--duration" => options.duration = parse_duration(&value).map_err(|e| bad(&e))?,
            "--interval" => options.interval = Some(parse_duration(&value).map_err(|e| bad(&e))?),
            "--broadcasts" => {
                options.broadcasts = value.parse().map_err(|_| bad("want a number"))?
            }
            "--close" => options.close = value.parse().map_err(|_| bad("want a number"))?,
            "--threads" => options.threads = value.parse().map_err(|_| bad("want a number"))?,
            "--connect-window" => {
                options.connect_window = value.parse().map_err(|_| bad("want a number"))?
            }
            "--server-log" => options.server_log = Some(PathBuf::from(value)),
            "--timeout" => options.timeout = parse_duration(&value).map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Some(options))
}

/// `250ms`, `3s`, `1m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "want number + ms|s|m".to_string())?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" | "" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("unknown unit {unit:?}")),
    }
}

/// Runs the whole measurement: connect, steady window, broadcasts, closes.
/// `Err` only when the run cannot start; failed checks are in
/// `Report::failures`.
pub fn run(options: &Options) -> Result<Report, String> {
    check_options(options)?;
    let cpu_before = process_cpu_seconds();
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        token_prefix: format!("lg{nonce}-"),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        broadcast_received: (0..options.broadcasts)
            .map(|_| AtomicUsize::new(0))
            .collect(),
        close_now: AtomicBool::new(false),
        closed_workers: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let workers = spawn_workers(options, &shared)?;
    let mut control = Control::default();
    let outcome = drive(options, &shared, &mut control);
    shared.stop.store(true, Ordering::SeqCst);
    let mut results = Vec::new();
    for worker in workers {
        results.push(
            worker
                .join()
                .map_err(|_| "a worker thread panicked".to_string())?,
        );
    }
    outcome?;
    let mut report = analyse(options, &control, results);
    let run_seconds = shared.start.elapsed().as_secs_f64();
    report.run_seconds = run_seconds;
    if let (Some(before), Some(after)) = (cpu_before, process_cpu_seconds()) {
        report.loadgen_cpu_percent = 100.0 * (after - before) / run_seconds;
    }
    report.failures = failed_checks(options, &report);
    Ok(report)
}

fn check_options(options: &Options) -> Result<(), String> {
    if options.clients == 0 || options.threads == 0 {
        return Err("--clients and --threads must be at least 1".into());
    }
    if options.broadcasts > MAX_BROADCASTS {
        return Err(format!("--broadcasts is at most {MAX_BROADCASTS}"));
    }
    if options.close > options.clients {
        return Err("--close is at most --clients".into());
    }
    if let Some(soft) = open_file_soft_limit() {
        let needed = options.clients + 64;
        if soft < needed {
            return Err(format!(
                "{} clients need about {needed} file descriptors, but `ulimit -n` is {soft}; raise it (`ulimit -n {needed}`, up to the hard limit)",
                options.clients
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// State shared by the controller and the workers.

struct Shared {
    start: Instant,
    /// Broadcast bodies are `{token_prefix}{k}`, unique to this run.
    token_prefix: String,
    /// Streams that got their first bytes.
    ready: AtomicUsize,
    /// Clients that will never become ready (connect failed, rejected, …).
    failed: AtomicUsize,
    /// Connections open but not yet started or failed (`connect_window`).
    in_flight: AtomicUsize,
    /// Per broadcast, clients that received it.
    broadcast_received: Vec<AtomicUsize>,
    /// Set by the controller: close clients `u0 … u{close-1}` now.
    close_now: AtomicBool,
    closed_workers: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// What the controller thread measured.
#[derive(Default)]
struct Control {
    ready_us: u64,
    steady_end_us: u64,
    users_api: usize,
    broadcast_start_us: Vec<u64>,
    broadcast_delivered: Vec<Option<usize>>,
    broadcast_answered_us: Vec<u64>,
    /// When `/users` first showed the closed clients gone.
    users_dropped_us: Option<u64>,
    /// Client index -> when its `close` log line was read.
    log_close_us: HashMap<usize, u64>,
    users_polls: usize,
    users_poll_total_us: u64,
    errors: Errors,
}

// ---------------------------------------------------------------------------
// The controller: phases in order.

fn drive(options: &Options, shared: &Shared, control: &mut Control) -> Result<(), String> {
    let clients = options.clients;
    // 1. Wait until every stream has started (or failed).
    let deadline = Instant::now() + options.timeout;
    loop {
        let done = shared.ready.load(Ordering::SeqCst) + shared.failed.load(Ordering::SeqCst);
        if done >= clients {
            break;
        }
        if Instant::now() > deadline {
            progress(
                options,
                &format!("connect phase timed out with {done} of {clients} streams started"),
            );
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    control.ready_us = shared.micros();
    let connected = shared.ready.load(Ordering::SeqCst);
    progress(
        options,
        &format!(
            "{connected} of {clients} streams started after {:.0} ms",
            control.ready_us as f64 / 1000.0
        ),
    );
    // 2. The server must count them all.
    control.users_api = wait_for_users(options, shared, control, |users| users >= connected);
    // 3. Steady window: the workers record ticks.
    progress(options, &format!("steady window of {:?}", options.duration));
    thread::sleep(options.duration);
    control.steady_end_us = shared.micros();
    // 4. Broadcasts, one at a time.
    for index in 0..options.broadcasts {
        broadcast(options, shared, control, index, connected);
        thread::sleep(BROADCAST_GAP);
    }
    // 5. Close `close` clients at once and time the server noticing.
    if options.close > 0 {
        close_clients(options, shared, control)?;
    }
    Ok(())
}

/// Polls `/users` until `done(users)` or the timeout; returns the last count.
fn wait_for_users(
    options: &Options,
    shared: &Shared,
    control: &mut Control,
    done: impl Fn(usize) -> bool,
) -> usize {
    let deadline = Instant::now() + options.timeout;
    let mut last = 0;
    while Instant::now() < deadline {
        match get_users(options.addr, shared, control) {
            Some(users) => {
                last = users;
                if done(users) {
                    break;
                }
            }
            None => thread::sleep(Duration::from_millis(50)),
        }
        thread::sleep(Duration::from_millis(1));
    }
    last
}

fn get_users(addr: SocketAddr, shared: &Shared, control: &mut Control) -> Option<usize> {
    let started = shared.micros();
    let request = "GET /users HTTP/1.1\r\nHost: loadgen\r\nConnection: close\r\n\r\n";
    let answer = http_request(addr, request.as_bytes());
    control.users_polls += 1;
    control.users_poll_total_us += shared.micros() - started;
    match answer {
        Ok((200, body)) => match json_number(&body, "users") {
            Some(users) => Some(users as usize),
            None => {
                control.errors.control += 1;
                None
            }
        },
        _ => {
            control.errors.control += 1;
            None
        }
    }
}

fn broadcast(
    options: &Options,
    shared: &Shared,
    control: &mut Control,
    index: usize,
    expected: usize,
) {
    let body = format!("{}{index}", shared.token_prefix);
    let request = format!(
        "POST /broadcast HTTP/1.1\r\nHost: loadgen\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    control.broadcast_start_us.push(shared.micros());
    let delivered = match http_request(options.addr, request.as_bytes()) {
        Ok((202, answer)) => json_number(&answer, "delivered").map(|n| n as usize),
        Ok((status, answer)) => {
            progress(
                options,
                &format!("broadcast {index}: status {status} {answer:?}"),
            );
            None
        }
        Err(message) => {
            progress(options, &format!("broadcast {index}: {message}"));
            None
        }
    };
    if delivered.is_none() {
        control.errors.control += 1;
    }
    control.broadcast_answered_us.push(shared.micros());
    control.broadcast_delivered.push(delivered);
    let deadline = Instant::now() + options.timeout.min(CONTROL_TIMEOUT);
    while shared.broadcast_received[index].load(Ordering::SeqCst) < expected
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(1));
    }
}

fn close_clients(options: &Options, shared: &Shared, control: &mut Control) -> Result<(), String> {
    let before = wait_for_users(options, shared, control, |_| true);
    let target = before.saturating_sub(options.close);
    let mut log = match &options.server_log {
        Some(path) => Some(LogTail::open_at_end(path)?),
        None => None,
    };
    progress(
        options,
        &format!("closing {} of {before} clients", options.close),
    );
    shared.close_now.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + options.timeout;
    let mut log_deadline = None;
    while Instant::now() < deadline {
        if let Some(log) = log.as_mut() {
            log.read_closes(shared, &mut control.log_close_us)?;
        }
        let workers_done = shared.closed_workers.load(Ordering::SeqCst) == options.threads;
        if control.users_dropped_us.is_none() && workers_done {
            if let Some(users) = get_users(options.addr, shared, control) {
                if users <= target {
                    control.users_dropped_us = Some(shared.micros());
                    log_deadline = Some(Instant::now() + LOG_GRACE);
                }
            }
        }
        let log_done = match (&log, log_deadline) {
            (None, _) => true,
            (Some(_), Some(at)) => {
                control.log_close_us.len() >= options.close || Instant::now() > at
            }
            (Some(_), None) => false,
        };
        if control.users_dropped_us.is_some() && log_done {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Follows the server's stdout log from its current end.
struct LogTail {
    file: File,
    partial: Vec<u8>,
}

impl LogTail {
    fn open_at_end(path: &PathBuf) -> Result<LogTail, String> {
        let mut file =
            File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| format!("cannot seek {}: {e}", path.display()))?;
        Ok(LogTail {
            file,
            partial: Vec::new(),
        })
    }

    /// Reads new lines; records `close user="u{i}"` by client index.
    fn read_closes(
        &mut self,
        shared: &Shared,
        seen: &mut HashMap<usize, u64>,
    ) -> Result<(), String> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let read = self
                .file
                .read(&mut chunk)
                .map_err(|e| format!("reading the server log: {e}"))?;
            if read == 0 {
                return Ok(());
            }
            let now = shared.micros();
            self.partial.extend_from_slice(&chunk[..read]);
            while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(index) = line
                    .strip_prefix("close user=\"u")
                    .and_then(|rest| rest.split('"').next())
                {
                    if let Ok(index) = index.parse::<usize>() {
                        seen.entry(index).or_insert(now);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Workers: each owns the clients `i` with `i % threads == worker`.

/// One SSE client.
struct Client {
    index: usize,
    user: String,
    stream: Option<TcpStream>,
    head: Vec<u8>,
    head_done: bool,
    /// Body bytes not yet parsed into a whole event block.
    pending: Vec<u8>,
    connect_start_us: u64,
    started: bool,
    closed_by_us: bool,
    /// Broadcasts received, as a bit set (duplicates are invalid).
    broadcasts_seen: u64,
}

/// One timer frame: which client, its `time` field, when we read it.
#[derive(Clone, Copy)]
struct Tick {
    client: u32,
    time_ms: u64,
    received_us: u64,
}

#[derive(Default)]
struct WorkerResult {
    ttfb_ms: Vec<f64>,
    ticks: Vec<Tick>,
    /// (broadcast index, client received at).
    broadcasts: Vec<(usize, u64)>,
    /// (client index, closed at).
    closes: Vec<(usize, u64)>,
    tcp_done_us: u64,
    events: u64,
    invalid: u64,
    invalid_examples: Vec<String>,
    users_in_frames: usize,
    errors: Errors,
    pass_ms: Vec<f64>,
}

/// Spawns, per worker, a reader thread and a connector thread that hands it
/// the connections it opens. Connecting has its own thread because `connect`
/// blocks (for a second or more when the server's accept queue overflows and
/// the SYN is retried), and a reader stuck in `connect` would delay the first
/// bytes of every stream it already holds.
fn spawn_workers(
    options: &Options,
    shared: &Arc<Shared>,
) -> Result<Vec<thread::JoinHandle<WorkerResult>>, String> {
    let mut handles = Vec::new();
    for worker in 0..options.threads {
        let (sender, receiver) = mpsc::channel();
        let (connect_options, connect_shared) = (options.clone(), Arc::clone(shared));
        let connector = thread::Builder::new()
            .name(format!("loadgen-connect-{worker}"))
            .spawn(move || connect_share(&connect_options, &connect_shared, worker, sender))
            .map_err(|e| format!("cannot spawn a connector: {e}"))?;
        let (options, shared) = (options.clone(), Arc::clone(shared));
        let handle = thread::Builder::new()
            .name(format!("loadgen-read-{worker}"))
            .spawn(move || {
                let mut result = run_worker(&options, &shared, receiver);
                match connector.join() {
                    Ok((errors, done_us)) => {
                        result.errors.connect += errors;
                        result.tcp_done_us = done_us;
                    }
                    Err(_) => result.errors.connect += 1,
                }
                result
            })
            .map_err(|e| format!("cannot spawn a worker: {e}"))?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Reads the clients the connector hands over until the controller says stop.
fn run_worker(
    options: &Options,
    shared: &Shared,
    new_clients: mpsc::Receiver<Client>,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut clients: Vec<Client> = Vec::new();
    // Clients waiting for their first bytes are read on every round.
    let mut waiting: Vec<usize> = Vec::new();
    let mut closed = false;
    let mut idle_round = 0usize;
    let mut idle = false;
    while !shared.stop.load(Ordering::SeqCst) {
        while let Ok(client) = new_clients.try_recv() {
            waiting.push(clients.len());
            clients.push(client);
        }
        let mut found = false;
        waiting.retain(|&at| {
            found |= read_client(shared, &mut clients[at], &mut result, &mut buffer);
            !clients[at].started && clients[at].stream.is_some()
        });
        if !closed && shared.close_now.load(Ordering::SeqCst) {
            close_designated(options, shared, &mut clients, &mut result, &mut buffer);
            shared.closed_workers.fetch_add(1, Ordering::SeqCst);
            closed = true;
        }
        if idle {
            let offset = idle_round % IDLE_STRIDE;
            idle_round += 1;
            for client in clients.iter_mut().skip(offset).step_by(IDLE_STRIDE) {
                found |= read_client(shared, client, &mut result, &mut buffer);
            }
            if found {
                idle = false;
            } else {
                thread::sleep(IDLE_SLEEP);
            }
        } else {
            let started = Instant::now();
            let mut found_in_pass = false;
            for client in clients.iter_mut() {
                found_in_pass |= read_client(shared, client, &mut result, &mut buffer);
            }
            if found_in_pass {
                result
                    .pass_ms
                    .push(started.elapsed().as_secs_f64() * 1000.0);
            } else {
                idle = true;
            }
        }
    }
    result
}

/// Opens the streams of clients `i` with `i % threads == worker`, in order.
/// Returns the failed connects and when the last `connect` returned.
fn connect_share(
    options: &Options,
    shared: &Shared,
    worker: usize,
    to_reader: mpsc::Sender<Client>,
) -> (u64, u64) {
    let targets: Vec<IpAddr> = if options.targets.is_empty() {
        vec![options.addr.ip()]
    } else {
        options.targets.clone()
    };
    let mut errors = 0;
    for index in (worker..options.clients).step_by(options.threads) {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        while options.connect_window > 0
            && shared.in_flight.load(Ordering::SeqCst) >= options.connect_window
            && !shared.stop.load(Ordering::SeqCst)
        {
            thread::sleep(Duration::from_micros(50));
        }
        let target = match options.stream_addrs.as_slice() {
            [] => SocketAddr::new(targets[index % targets.len()], options.addr.port()),
            instances => instances[index % instances.len()],
        };
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let sent = match open_stream(target, index, shared) {
            Ok(client) => to_reader.send(client).is_ok(),
            Err(_) => false,
        };
        if !sent {
            errors += 1;
            not_started(shared);
        }
    }
    (errors, shared.micros())
}

fn open_stream(target: SocketAddr, index: usize, shared: &Shared) -> std::io::Result<Client> {
    let connect_start_us = shared.micros();
    let mut stream = TcpStream::connect_timeout(&target, CONTROL_TIMEOUT)?;
    let user = format!("u{index}");
    let request =
        format!("GET /sse/{user} HTTP/1.1\r\nHost: loadgen\r\nAccept: text/event-stream\r\n\r\n");
    stream.set_write_timeout(Some(CONTROL_TIMEOUT))?;
    stream.write_all(request.as_bytes())?;
    stream.set_nonblocking(true)?;
    Ok(Client {
        index,
        user,
        stream: Some(stream),
        head: Vec::new(),
        head_done: false,
        pending: Vec::new(),
        connect_start_us,
        started: false,
        closed_by_us: false,
        broadcasts_seen: 0,
    })
}

/// Closes this worker's clients with index below `--close`, all at once.
fn close_designated(
    options: &Options,
    shared: &Shared,
    clients: &mut [Client],
    result: &mut WorkerResult,
    buffer: &mut [u8],
) {
    for client in clients.iter_mut().filter(|c| c.index < options.close) {
        // Read what is already there, so `close` sends FIN rather than RST.
        read_client(shared, client, result, buffer);
        if let Some(stream) = client.stream.take() {
            let _ = stream.shutdown(Shutdown::Both);
            drop(stream);
            client.closed_by_us = true;
            result.closes.push((client.index, shared.micros()));
        }
    }
}

/// Reads what is available on one client; true if it got any bytes.
fn read_client(
    shared: &Shared,
    client: &mut Client,
    result: &mut WorkerResult,
    buffer: &mut [u8],
) -> bool {
    let mut got = false;
    loop {
        let Some(stream) = client.stream.as_mut() else {
            return got;
        };
        match stream.read(buffer) {
            Ok(0) => {
                if !client.closed_by_us {
                    result.errors.eof += 1;
                    if !client.started {
                        not_started(shared);
                    }
                }
                client.stream = None;
                return got;
            }
            Ok(read) => {
                got = true;
                let now = shared.micros();
                feed(shared, client, &buffer[..read], now, result);
                if read < buffer.len() {
                    return got;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return got,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                result.errors.reset += 1;
                if !client.started {
                    not_started(shared);
                }
                client.stream = None;
                return got;
            }
        }
    }
}

/// Takes bytes off the wire: the response head first, then event blocks.
fn feed(
    shared: &Shared,
    client: &mut Client,
    bytes: &[u8],
    now_us: u64,
    result: &mut WorkerResult,
) {
    let mut body = bytes;
    if !client.head_done {
        client.head.extend_from_slice(bytes);
        let Some(end) = find(&client.head, b"\r\n\r\n") else {
            if client.head.len() > MAX_HEAD_BYTES {
                fail_http(shared, client, result, "response head too long".into());
            }
            return;
        };
        let head = client.head[..end].to_vec();
        if let Err(problem) = check_head(&head) {
            fail_http(shared, client, result, problem);
            return;
        }
        client.head_done = true;
        client.pending.extend_from_slice(&client.head[end + 4..]);
        client.head = Vec::new();
        body = &[];
    }
    client.pending.extend_from_slice(body);
    let mut start = 0;
    while let Some(end) = find(&client.pending[start..], b"\n\n") {
        let block = client.pending[start..start + end].to_vec();
        start += end + 2;
        handle_block(shared, client, &block, now_us, result);
        if client.stream.is_none() {
            return;
        }
    }
    client.pending.drain(..start);
}

fn fail_http(shared: &Shared, client: &mut Client, result: &mut WorkerResult, problem: String) {
    result.errors.http += 1;
    note_example(result, &client.user, &problem);
    if !client.started {
        not_started(shared);
    }
    client.stream = None;
}

/// The response head must be `HTTP/1.1 200` with an event-stream body that
/// runs until the connection closes (no length, no chunking).
fn check_head(head: &[u8]) -> Result<(), String> {
    let head = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    if !status_line.starts_with("HTTP/1.1 200 ") {
        return Err(format!("status line {status_line:?}"));
    }
    let mut event_stream = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?}"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-type" => event_stream = value.starts_with("text/event-stream"),
            "transfer-encoding" | "content-length" => {
                return Err(format!("unexpected header {line:?}"))
            }
            _ => {}
        }
    }
    if !event_stream {
        return Err("no Content-Type: text/event-stream".into());
    }
    Ok(())
}

/// One event block (the text between blank lines), parsed strictly: LF line
/// endings, known fields only, timer frames byte-exact.
fn handle_block(
    shared: &Shared,
    client: &mut Client,
    block: &[u8],
    now_us: u64,
    result: &mut WorkerResult,
) {
    let Ok(text) = std::str::from_utf8(block) else {
        return note_invalid(result, &client.user, "block is not UTF-8");
    };
    if text.contains('\r') {
        return note_invalid(result, &client.user, &format!("CR in {text:?}"));
    }
    if !client.started {
        return start_stream(shared, client, text, now_us, result);
    }
    let mut data: Vec<&str> = Vec::new();
    let (mut id, mut event) = (None, None);
    for line in text.split('\n') {
        if line.starts_with(':') {
            continue; // a comment, such as ": heartbeat"
        }
        let Some((field, value)) = line.split_once(':') else {
            return note_invalid(
                result,
                &client.user,
                &format!("line without a colon {line:?}"),
            );
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => data.push(value),
            // ms-seq, or a plain number (the builds before ms-seq ids, which
            // scripts/bench.sh --compare still runs).
            "id" if is_event_id(value) || is_digits(value) => id = Some(value),
            "event" if !value.is_empty() => event = Some(value),
            "retry" if is_digits(value) => {}
            _ => return note_invalid(result, &client.user, &format!("bad field {line:?}")),
        }
    }
    match (data.as_slice(), id, event) {
        ([], None, None) => {}    // comments and retry only
        ([], Some(_), None) => {} // the id-only block every stream starts with
        ([], _, _) => note_invalid(
            result,
            &client.user,
            &format!("event without data {text:?}"),
        ),
        ([frame], None, None) => match parse_tick(frame, &client.user) {
            Some((users, time_ms)) => {
                result.users_in_frames = result.users_in_frames.max(users);
                result.ticks.push(Tick {
                    client: client.index as u32,
                    time_ms,
                    received_us: now_us,
                });
            }
            None => note_invalid(result, &client.user, &format!("bad timer frame {frame:?}")),
        },
        (_, None, _) => note_invalid(
            result,
            &client.user,
            &format!("pushed event without id {text:?}"),
        ),
        (lines, Some(_), _) => {
            result.events += 1;
            let message = lines.join("\n");
            if let Some(index) = message
                .strip_prefix(&shared.token_prefix)
                .and_then(|k| k.parse::<usize>().ok())
            {
                if index >= shared.broadcast_received.len()
                    || client.broadcasts_seen & (1 << index) != 0
                {
                    return note_invalid(
                        result,
                        &client.user,
                        &format!("unexpected broadcast {message:?}"),
                    );
                }
                client.broadcasts_seen |= 1 << index;
                result.broadcasts.push((index, now_us));
                shared.broadcast_received[index].fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// The first block must be the `:` comment; "server is full" is an error.
fn start_stream(
    shared: &Shared,
    client: &mut Client,
    text: &str,
    now_us: u64,
    result: &mut WorkerResult,
) {
    if text.contains(": server is full") {
        result.errors.full += 1;
    } else if text == ":" {
        client.started = true;
        result
            .ttfb_ms
            .push((now_us - client.connect_start_us) as f64 / 1000.0);
        shared.ready.fetch_add(1, Ordering::SeqCst);
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        return;
    } else {
        note_invalid(
            result,
            &client.user,
            &format!("first block {text:?}, want \":\""),
        );
    }
    not_started(shared);
    client.stream = None;
}

/// A client that will never start its stream: counted once, here.
fn not_started(shared: &Shared) {
    shared.failed.fetch_add(1, Ordering::SeqCst);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
}

/// `{"userId":"u7","users":12,"time":1732435200000}` with this client's
/// userId; returns (users, time).
fn parse_tick(frame: &str, user: &str) -> Option<(usize, u64)> {
    let rest = frame.strip_prefix("{\"userId\":\"")?.strip_prefix(user)?;
    let rest = rest.strip_prefix("\",\"users\":")?;
    let (users, rest) = rest.split_once(",\"time\":")?;
    let time = rest.strip_suffix('}')?;
    if !is_digits(users) || !is_digits(time) {
        return None;
    }
    Some((users.parse().ok()?, time.parse().ok()?))
}

fn note_invalid(result: &mut WorkerResult, user: &str, problem: &str) {
    result.invalid += 1;
    note_example(result, user, problem);
}

/// Keeps the first few problems to quote in the report.
fn note_example(result: &mut WorkerResult, user: &str, problem: &str) {
    if result.invalid_examples.len() < MAX_INVALID_EXAMPLES {
        let mut problem = problem.to_string();
        problem.truncate(200);
        result.invalid_examples.push(format!("{user}: {problem}"));
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `ms-seq`, the server's event id form.
fn is_event_id(text: &str) -> bool {
    text.split_once('-')
        .is_some_and(|(ms, seq)| is_digits(ms) && is_digits(seq))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---------------------------------------------------------------------------
// Analysis.

fn analyse(options: &Options, control: &Control, results: Vec<WorkerResult>) -> Report {
    let mut report = Report {
        clients: options.clients,
        closed: options.close,
        ..Report::default()
    };
    let mut ttfb = Vec::new();
    let mut ticks = Vec::new();
    let mut broadcasts = Vec::new();
    let mut closes = Vec::new();
    let mut passes = Vec::new();
    let mut tcp_done_us = 0;
    report.errors = control.errors;
    for result in results {
        ttfb.extend(result.ttfb_ms);
        ticks.extend(result.ticks);
        broadcasts.extend(result.broadcasts);
        closes.extend(result.closes);
        passes.extend(result.pass_ms);
        tcp_done_us = tcp_done_us.max(result.tcp_done_us);
        report.events += result.events;
        report.invalid += result.invalid;
        report.invalid_examples.extend(result.invalid_examples);
        report.users_in_frames = report.users_in_frames.max(result.users_in_frames);
        report.errors.add(&result.errors);
    }
    report.invalid_examples.truncate(MAX_INVALID_EXAMPLES);
    report.connected = ttfb.len();
    report.ttfb = stats(ttfb);
    report.tcp_connect_ms = tcp_done_us as f64 / 1000.0;
    report.connect_ms = control.ready_us as f64 / 1000.0;
    report.users_api = control.users_api;
    report.frames = ticks.len() as u64;
    report.pass = stats(passes);
    report.users_polls = control.users_polls;
    if control.users_polls > 0 {
        report.users_poll_ms =
            control.users_poll_total_us as f64 / control.users_polls as f64 / 1000.0;
    }
    analyse_ticks(options, control, &mut ticks, &mut report);
    analyse_broadcasts(control, &broadcasts, &mut report);
    analyse_closes(control, &closes, &mut report);
    report
}

/// Numbers each client's frames by tick (their `time` field in units of the
/// interval, on that client's own schedule: the server gives every stream
/// its own phase) and follows each client's frames for lateness, jitter and
/// missed ticks.
fn analyse_ticks(options: &Options, control: &Control, ticks: &mut [Tick], report: &mut Report) {
    ticks.sort_by_key(|tick| (tick.client, tick.time_ms));
    let interval_ms = match options.interval {
        Some(interval) => interval.as_secs_f64() * 1000.0,
        None => infer_interval_ms(ticks),
    };
    report.interval_ms = interval_ms;
    if ticks.is_empty() || interval_ms <= 0.0 {
        return;
    }
    let (window_start, window_end) = (control.ready_us, control.steady_end_us);
    let in_window =
        |tick: &Tick| tick.received_us >= window_start && tick.received_us <= window_end;
    let mut phases: HashMap<u32, f64> = HashMap::new();
    let mut rest: &[Tick] = ticks;
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|tick| tick.client == first.client)
            .count();
        phases.insert(first.client, schedule_phase_ms(&rest[..same], interval_ms));
        rest = &rest[same..];
    }
    let phase_of = |tick: &Tick| phases.get(&tick.client).copied().unwrap_or(0.0);
    let tick_number =
        |tick: &Tick| ((tick.time_ms as f64 - phase_of(tick)) / interval_ms).floor() as i64;
    // Lateness: how far after the start of its client's schedule arc a
    // frame was written (a lower bound of the true lateness: the arc starts
    // at the client's least late frame).
    let lateness: Vec<f64> = ticks
        .iter()
        .filter(|tick| in_window(tick))
        .map(|tick| (tick.time_ms as f64 - phase_of(tick)).rem_euclid(interval_ms))
        .collect();
    let mut numbers: Vec<i64> = ticks
        .iter()
        .filter(|tick| in_window(tick))
        .map(tick_number)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    report.ticks_measured = numbers.len();
    report.tick_lateness = stats(lateness);
    // Per client: jitter between consecutive frames, missed ticks, frames in window.
    let window_ms = (window_end.saturating_sub(window_start)) as f64 / 1000.0;
    let must_have = ((window_ms / interval_ms).floor() as i64 - 1).max(0) as usize;
    let mut jitter = Vec::new();
    let mut per_client: HashMap<u32, usize> = HashMap::new();
    for pair in ticks.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.client != b.client {
            continue;
        }
        let step = tick_number(b) - tick_number(a);
        if step > 1 {
            report.missed_ticks += (step - 1) as u64;
        } else if step < 1 {
            report.invalid += 1;
            if report.invalid_examples.len() < MAX_INVALID_EXAMPLES {
                report.invalid_examples.push(format!(
                    "u{}: two frames for one tick (time {} and {})",
                    a.client, a.time_ms, b.time_ms
                ));
            }
        }
        if step == 1 && in_window(a) && in_window(b) {
            jitter.push(((b.received_us - a.received_us) as f64 / 1000.0 - interval_ms).abs());
        }
    }
    for tick in ticks.iter().filter(|tick| in_window(tick)) {
        *per_client.entry(tick.client).or_insert(0) += 1;
    }
    report.short_clients = report
        .connected
        .saturating_sub(per_client.values().filter(|&&n| n >= must_have).count());
    report.jitter = stats(jitter);
}

/// Median difference of consecutive `time` fields of one client.
/// Where the server's tick schedule falls within an interval, in ms.
///
/// The `time` of a frame is the server's clock when it wrote the frame: its
/// tick instant plus how late that thread was, never early. So the `time`s
/// modulo the interval bunch up on a short arc of the circle, starting at
/// the schedule's phase, and the largest empty gap between them ends there.
/// Tick numbers then are `floor((time - phase) / interval)`, right for any
/// lateness below one interval (rounding would be right only below half).
fn schedule_phase_ms(ticks: &[Tick], interval_ms: f64) -> f64 {
    let mut residues: Vec<f64> = ticks
        .iter()
        .map(|tick| (tick.time_ms as f64).rem_euclid(interval_ms))
        .collect();
    residues.sort_by(|a, b| a.total_cmp(b));
    let (Some(&first), Some(&last)) = (residues.first(), residues.last()) else {
        return 0.0;
    };
    let (mut phase, mut widest) = (first, first + interval_ms - last);
    for pair in residues.windows(2) {
        if pair[1] - pair[0] > widest {
            (phase, widest) = (pair[1], pair[1] - pair[0]);
        }
    }
    phase
}

fn infer_interval_ms(sorted_ticks: &[Tick]) -> f64 {
    let mut steps: Vec<u64> = sorted_ticks
        .windows(2)
        .filter(|pair| pair[0].client == pair[1].client)
        .map(|pair| pair[1].time_ms - pair[0].time_ms)
        .filter(|&step| step > 0)
        .collect();
    steps.sort_unstable();
    steps
        .get(steps.len() / 2)
        .map(|&step| step as f64)
        .unwrap_or(0.0)
}

fn analyse_broadcasts(control: &Control, received: &[(usize, u64)], report: &mut Report) {
    let mut all = Vec::new();
    for (index, start_us) in control.broadcast_start_us.iter().enumerate() {
        let latencies: Vec<f64> = received
            .iter()
            .filter(|(k, _)| *k == index)
            .map(|(_, at)| at.saturating_sub(*start_us) as f64 / 1000.0)
            .collect();
        all.extend_from_slice(&latencies);
        report.broadcasts.push(BroadcastResult {
            delivered: control.broadcast_delivered.get(index).copied().flatten(),
            post_ms: control
                .broadcast_answered_us
                .get(index)
                .map_or(0.0, |at| at.saturating_sub(*start_us) as f64 / 1000.0),
            received: latencies.len(),
            latency: stats(latencies),
        });
    }
    report.fanout = stats(all);
}

fn analyse_closes(control: &Control, closes: &[(usize, u64)], report: &mut Report) {
    let Some(first_close) = closes.iter().map(|(_, at)| *at).min() else {
        return;
    };
    report.disconnect_ms = control
        .users_dropped_us
        .map(|at| at.saturating_sub(first_close) as f64 / 1000.0);
    if !control.log_close_us.is_empty() {
        let per_client: Vec<f64> = closes
            .iter()
            .filter_map(|(index, closed_at)| {
                control
                    .log_close_us
                    .get(index)
                    .map(|seen| seen.saturating_sub(*closed_at) as f64 / 1000.0)
            })
            .collect();
        report.disconnect_log = Some(stats(per_client));
    }
}

/// Nearest-rank percentiles.
fn stats(mut samples: Vec<f64>) -> Stats {
    if samples.is_empty() {
        return Stats::default();
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank =
        |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    Stats {
        count: samples.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        max: samples[samples.len() - 1],
    }
}

fn failed_checks(options: &Options, report: &Report) -> Vec<String> {
    let mut failures = Vec::new();
    let clients = options.clients;
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    check(
        report.connected == clients,
        format!("{} of {clients} streams started", report.connected),
    );
    check(
        report.errors.total() == 0,
        format!("{} errors: {:?}", report.errors.total(), report.errors),
    );
    check(
        report.invalid == 0,
        format!(
            "{} invalid frames, e.g. {:?}",
            report.invalid, report.invalid_examples
        ),
    );
    check(report.frames > 0, "no timer frames received".into());
    check(
        report.users_in_frames >= clients,
        format!(
            "users in frames reached {}, want {clients}",
            report.users_in_frames
        ),
    );
    check(
        report.users_api >= clients,
        format!("GET /users reached {}, want {clients}", report.users_api),
    );
    check(
        report.missed_ticks == 0,
        format!("{} ticks missed", report.missed_ticks),
    );
    check(
        report.short_clients == 0,
        format!(
            "{} clients got too few frames in the steady window",
            report.short_clients
        ),
    );
    let window_holds_a_tick = options.duration.as_secs_f64() * 1000.0 >= 2.0 * report.interval_ms;
    check(
        report.ticks_measured > 0 || !window_holds_a_tick,
        "no complete tick inside the steady window".into(),
    );
    for (index, broadcast) in report.broadcasts.iter().enumerate() {
        check(
            broadcast.received == clients,
            format!(
                "broadcast {index} reached {} of {clients} clients",
                broadcast.received
            ),
        );
        check(
            broadcast.delivered == Some(clients)
                || (!options.stream_addrs.is_empty() && broadcast.delivered.is_some()),
            format!(
                "broadcast {index}: server said delivered={:?}, want {clients}",
                broadcast.delivered
            ),
        );
    }
    if options.close > 0 {
        check(
            report.disconnect_ms.is_some(),
            format!("/users did not drop by {} after the closes", options.close),
        );
        if let Some(log) = report.disconnect_log {
            check(
                log.count == options.close,
                format!(
                    "{} of {} close lines seen in the server log",
                    log.count, options.close
                ),
            );
        }
    }
    failures
}

// ---------------------------------------------------------------------------
// Output.

impl Report {
    /// Human-readable lines.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let ms = |stats: &Stats| {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
                stats.p50, stats.p99, stats.max, stats.count
            )
        };
        let _ = writeln!(
            out,
            "clients      {} of {} streams started",
            self.connected, self.clients
        );
        let _ = writeln!(
            out,
            "connect      all TCP connects in {:.0} ms, all streams started in {:.0} ms",
            self.tcp_connect_ms, self.connect_ms
        );
        let _ = writeln!(out, "ttfb         {}", ms(&self.ttfb));
        let _ = writeln!(
            out,
            "users        {} in frames, {} from GET /users",
            self.users_in_frames, self.users_api
        );
        let _ = writeln!(out, "frames       {} timer frames, {} pushed events, {} invalid, {} ticks missed, {} clients short", self.frames, self.events, self.invalid, self.missed_ticks, self.short_clients);
        for example in &self.invalid_examples {
            let _ = writeln!(out, "  invalid    {example}");
        }
        let _ = writeln!(
            out,
            "ticks        interval {:.0} ms, {} complete ticks in the steady window",
            self.interval_ms, self.ticks_measured
        );
        let _ = writeln!(out, "tick late    {}", ms(&self.tick_lateness));
        let _ = writeln!(out, "jitter       {}", ms(&self.jitter));
        for (index, broadcast) in self.broadcasts.iter().enumerate() {
            let _ = writeln!(
                out,
                "broadcast {index}  delivered={:?} received={} answered after {:.1} ms; {}",
                broadcast.delivered,
                broadcast.received,
                broadcast.post_ms,
                ms(&broadcast.latency)
            );
        }
        let _ = writeln!(out, "fan-out      {}", ms(&self.fanout));
        if self.closed > 0 {
            let users = self
                .disconnect_ms
                .map(|d| format!("{d:.1} ms"))
                .unwrap_or_else(|| "not seen".into());
            let _ = writeln!(
                out,
                "disconnect   {} closed; /users dropped after {users} ({} polls, {:.2} ms each)",
                self.closed, self.users_polls, self.users_poll_ms
            );
            if let Some(log) = &self.disconnect_log {
                let _ = writeln!(out, "  per client {} (from the server log)", ms(log));
            }
        }
        let _ = writeln!(
            out,
            "errors       {} {:?}",
            self.errors.total(),
            self.errors
        );
        let _ = writeln!(
            out,
            "resolution   read pass {} ; loadgen CPU {:.0}% of one core over {:.1} s",
            ms(&self.pass),
            self.loadgen_cpu_percent,
            self.run_seconds
        );
        if self.failures.is_empty() {
            let _ = writeln!(out, "checks       all passed");
        } else {
            for failure in &self.failures {
                let _ = writeln!(out, "FAILED       {failure}");
            }
        }
        out
    }

    /// One line for scripts: `RESULT key=value …`.
    pub fn result_line(&self) -> String {
        let opt = |value: Option<f64>| {
            value
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "RESULT n={} connected={} connect_ms={:.0} ttfb_p50_ms={:.1} ttfb_p99_ms={:.1} ttfb_max_ms={:.1} \
             fanout_p50_ms={:.1} fanout_p99_ms={:.1} fanout_max_ms={:.1} disconnect_ms={} disconnect_p50_ms={} disconnect_p99_ms={} \
             tick_late_p99_ms={:.1} jitter_p50_ms={:.1} jitter_p99_ms={:.1} frames={} invalid={} missed={} errors={} pass_p99_ms={:.1} loadgen_cpu_pct={:.0} ok={}",
            self.clients,
            self.connected,
            self.connect_ms,
            self.ttfb.p50,
            self.ttfb.p99,
            self.ttfb.max,
            self.fanout.p50,
            self.fanout.p99,
            self.fanout.max,
            opt(self.disconnect_ms),
            opt(self.disconnect_log.map(|s| s.p50)),
            opt(self.disconnect_log.map(|s| s.p99)),
            self.tick_lateness.p99,
            self.jitter.p50,
            self.jitter.p99,
            self.frames,
            self.invalid,
            self.missed_ticks,
            self.errors.total(),
            self.pass.p99,
            self.loadgen_cpu_percent,
            self.failures.is_empty(),
        )
    }
}

fn progress(options: &Options, message: &str) {
    if options.progress {
        eprintln!("loadgen: {message}");
    }
}

// ---------------------------------------------------------------------------
// Small helpers: one control request, JSON numbers, /proc.

/// Sends one request with `Connection: close`; returns status and body.
fn http_request(addr: SocketAddr, request: &[u8]) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, CONTROL_TIMEOUT)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(CONTROL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(CONTROL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if Instant::now() > deadline {
            return Err("answer took too long".into());
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
        if let Some(complete) = complete_response(&answer) {
            answer.truncate(complete);
            break;
        }
    }
    let end = find(&answer, b"\r\n\r\n").ok_or("no response head")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    Ok((
        status,
        String::from_utf8_lossy(&answer[end + 4..]).into_owned(),
    ))
}

/// Length of a complete response with `Content-Length`, if `bytes` holds one.
fn complete_response(bytes: &[u8]) -> Option<usize> {
    let end = find(bytes, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let length: usize = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))?
        .1
        .trim()
        .parse()
        .ok()?;
    (bytes.len() >= end + 4 + length).then_some(end + 4 + length)
}

/// The number after `"key":` in a JSON text (good enough for our answers).
fn json_number(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Soft `Max open files` of this process.
fn open_file_soft_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// utime + stime of this process, in seconds (Linux clock ticks of 1/100 s).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3,
    // utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n";
    const TICK: &str = "data: {\"userId\":\"u7\",\"users\":1,\"time\":5}\n\n";

    /// What client `u7` made of a response: (started, frames, events,
    /// broadcasts, invalid, http errors).
    fn parse(response: &str) -> (bool, usize, u64, usize, u64, u64) {
        let shared = Shared {
            start: Instant::now(),
            token_prefix: "lgT-".into(),
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(1),
            broadcast_received: (0..2).map(|_| AtomicUsize::new(0)).collect(),
            close_now: AtomicBool::new(false),
            closed_workers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        };
        // `feed` stops at a client whose stream is gone, so give it one.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut client = Client {
            index: 7,
            user: "u7".into(),
            stream: Some(stream),
            head: Vec::new(),
            head_done: false,
            pending: Vec::new(),
            connect_start_us: 0,
            started: false,
            closed_by_us: false,
            broadcasts_seen: 0,
        };
        let mut result = WorkerResult::default();
        feed(&shared, &mut client, response.as_bytes(), 1, &mut result);
        let events = result.events;
        let http = result.errors.http;
        (
            client.started,
            result.ticks.len(),
            events,
            result.broadcasts.len(),
            result.invalid,
            http,
        )
    }

    #[track_caller]
    fn check(body: &str, expected: (bool, usize, u64, usize, u64, u64)) {
        assert_eq!(parse(&format!("{HEAD}{body}")), expected, "body {body:?}");
    }

    #[test]
    fn stream_parsing_is_strict() {
        check(":\n\nretry: 3000\n\n", (true, 0, 0, 0, 0, 0));
        check(
            &format!(":\n\nretry: 3000\n\n{TICK}{TICK}"),
            (true, 2, 0, 0, 0, 0),
        );
        check(
            &format!(":\n\n: heartbeat\n\n{TICK}"),
            (true, 1, 0, 0, 0, 0),
        );
        check(":\n\nretry: 3000\n\nid: 1-0\n\n", (true, 0, 0, 0, 0, 0));
        check(
            ":\n\nid: 3-0\nevent: news\ndata: a\ndata: b\n\n",
            (true, 0, 1, 0, 0, 0),
        );
        check(
            ":\n\nid: 3-0\ndata: lgT-1\n\nid: 4-0\ndata: lgT-0\n\n",
            (true, 0, 2, 2, 0, 0),
        );
    }

    #[test]
    fn frames_that_break_the_contract_are_invalid() {
        check(":\r\n\n", (false, 0, 0, 0, 1, 0));
        check("retry: 3000\n\n", (false, 0, 0, 0, 1, 0));
        check(
            ":\n\ndata: {\"userId\":\"u8\",\"users\":1,\"time\":5}\n\n",
            (true, 0, 0, 0, 1, 0),
        );
        check(
            ":\n\ndata: {\"userId\":\"u7\",\"users\":1,\"time\":5}\r\n\n",
            (true, 0, 0, 0, 1, 0),
        );
        check(":\n\nfoo: bar\n\n", (true, 0, 0, 0, 1, 0));
        check(
            ":\n\ndata: pushed without id\nevent: x\n\n",
            (true, 0, 0, 0, 1, 0),
        );
        check(
            ":\n\nid: 3-0\ndata: lgT-1\n\nid: 4-0\ndata: lgT-1\n\n",
            (true, 0, 2, 1, 1, 0),
        );
    }

    #[test]
    fn a_wrong_response_head_is_an_http_error() {
        assert_eq!(
            parse("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            (false, 0, 0, 0, 0, 1)
        );
        let chunked = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked), (false, 0, 0, 0, 0, 1));
    }

    #[test]
    fn timer_frame_with_the_right_user_parses() {
        assert_eq!(
            parse_tick(r#"{"userId":"u7","users":12,"time":1732435200000}"#, "u7"),
            Some((12, 1732435200000))
        );
        assert_eq!(
            parse_tick(r#"{"userId":"u70","users":12,"time":1}"#, "u7"),
            None
        );
        assert_eq!(
            parse_tick(r#"{"userId":"u7","users":12,"time":1} "#, "u7"),
            None
        );
        assert_eq!(
            parse_tick(r#"{"userId":"u7", "users":12,"time":1}"#, "u7"),
            None
        );
    }

    #[test]
    fn schedule_phase_is_where_the_late_frames_start() {
        let ticks = |times: &[u64]| -> Vec<Tick> {
            times
                .iter()
                .map(|&time_ms| Tick {
                    client: 0,
                    time_ms,
                    received_us: 0,
                })
                .collect()
        };
        assert_eq!(
            schedule_phase_ms(&ticks(&[5_990, 5_999, 6_020, 7_001, 7_990]), 1000.0),
            990.0
        );
        assert_eq!(
            schedule_phase_ms(&ticks(&[5_300, 5_310, 6_450, 7_300]), 1000.0),
            300.0
        );
        assert_eq!(schedule_phase_ms(&[], 1000.0), 0.0);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("1h").is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = stats((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
    }
}
