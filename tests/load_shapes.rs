//! Load-shaped tests against the real binary: Slowloris, a connection
//! flood, connect/close churn with resets, a client that never reads, and
//! running out of file descriptors. Counts are sized for a 2-core CI
//! machine; each test takes seconds, not minutes.
//!
//! The tests take turns (one lock), so their timing assertions do not
//! compete for the same two cores. Each records the server's thread and
//! open-fd counts before and after (Linux only, from `/proc`) and prints
//! them with `eprintln!` (see them with `--nocapture`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
#[cfg(target_os = "linux")]
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use common::{split_response, Server};
#[cfg(target_os = "linux")]
use common::{threads_and_fds, IO_TIMEOUT};

/// Threads or fds above the baseline still accepted once a test is over:
/// none. A server at rest holds exactly its baseline (one thread; stdio,
/// the log pipe, the listener); transients are absorbed by polling until
/// [`SETTLE_TIMEOUT`], and a slack would hide a leak of one fd per stream.
#[cfg(target_os = "linux")]
const SLACK: usize = 0;

/// Longest the server may take to get back to its baseline.
#[cfg(target_os = "linux")]
const SETTLE_TIMEOUT: Duration = Duration::from_secs(8);

/// One load test at a time.
fn take_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server's (threads, fds) at rest: measured after one request has come
/// and gone, once two samples agree.
#[cfg(target_os = "linux")]
fn baseline(server: &Server) -> (usize, usize) {
    assert_eq!(server.get("/users").0, 200);
    let mut previous = threads_and_fds(server.pid());
    for _ in 0..100 {
        thread::sleep(Duration::from_millis(100));
        let now = threads_and_fds(server.pid());
        if now == previous {
            return now;
        }
        previous = now;
    }
    panic!("threads and fds never settled within 10 s: last {previous:?}");
}

/// Polls until the server is back within [`SLACK`] of `baseline`; returns
/// the last sample.
#[cfg(target_os = "linux")]
#[track_caller]
fn assert_settles(pid: u32, baseline: (usize, usize), what: &str) -> (usize, usize) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let now = threads_and_fds(pid);
        if now.0 <= baseline.0 + SLACK && now.1 <= baseline.1 + SLACK {
            eprintln!(
                "{what}: baseline threads={} fds={}; after threads={} fds={}",
                baseline.0, baseline.1, now.0, now.1
            );
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: threads/fds stayed at {now:?}, baseline {baseline:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// This process's soft open-file limit (Linux), so the flood fits in it.
#[cfg(target_os = "linux")]
fn own_fd_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read limits");
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// Slowloris: 200 connections that send their head one byte at a time, or
/// nothing at all, do not keep a normal client from being served; the head
/// timeout (10 s) cuts every one of them off with `408`; afterwards the
/// server's threads and fds are back to baseline. Linux only (`/proc`).
#[cfg(target_os = "linux")]
#[test]
fn slowloris_is_cut_off_and_others_are_served() {
    const SLOW: usize = 200;
    let _turn = take_turn();
    let server = Server::start(&["--interval", "200ms"]);
    let base = baseline(&server);
    let started = Instant::now();
    let slow: Vec<TcpStream> = (0..SLOW).map(|_| server.connect()).collect();
    // Even-numbered connections trickle a never-ending head, the others
    // stay silent.
    let trickling: Vec<TcpStream> = slow
        .iter()
        .step_by(2)
        .map(|socket| socket.try_clone().unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || trickle(trickling, &stop))
    };

    // A normal client gets its first bytes promptly.
    let asked = Instant::now();
    let mut normal = server.open_stream("normal");
    assert_eq!(normal.next_event(), ":\n\n");
    let first_bytes = asked.elapsed();
    assert!(first_bytes < Duration::from_secs(2), "{first_bytes:?}");
    assert!(normal
        .next_tick()
        .starts_with("data: {\"userId\":\"normal\""));
    assert_eq!(server.counts(), (1, 1));
    let peak = threads_and_fds(server.pid());
    eprintln!(
        "slowloris: first bytes after {first_bytes:?}; peak threads={} fds={}",
        peak.0, peak.1
    );

    // Nobody is cut off early, and everybody is cut off by the timeout.
    let first_408 = server
        .wait_for_log("reject status=408", Duration::from_secs(15))
        .expect("a 408");
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_millis(9500),
        "{cut_after:?}: {first_408}"
    );
    let cut = server.wait_for_log_count("reject status=408", SLOW, Duration::from_secs(5));
    assert!(cut.is_some(), "not every slow connection got 408");
    stop.store(true, Ordering::Relaxed);
    trickler.join().unwrap();
    // The silent ones can read their 408 (the trickling ones may see a
    // reset instead, since they kept writing after the server's close).
    for mut socket in slow.into_iter().skip(1).step_by(2) {
        let mut response = Vec::new();
        let _ = socket.read_to_end(&mut response);
        assert!(
            response.starts_with(b"HTTP/1.1 408 "),
            "{:?}",
            String::from_utf8_lossy(&response)
        );
    }
    // The normal client was never disturbed.
    assert!(normal
        .next_tick()
        .starts_with("data: {\"userId\":\"normal\""));
    drop(normal);
    assert!(server.wait_for_users(0, Duration::from_secs(5)));
    assert_settles(server.pid(), base, "slowloris");
    server.assert_no_panic();
}

/// Sends one more byte of an endless head on every socket, four times a
/// second, until told to stop or every socket is closed.
fn trickle(mut sockets: Vec<TcpStream>, stop: &AtomicBool) {
    const HEAD: &[u8] = b"GET /sse/slow HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    let mut step = 0;
    while !stop.load(Ordering::Relaxed) && !sockets.is_empty() {
        let byte = HEAD.get(step).copied().unwrap_or(b'z');
        sockets.retain_mut(|socket| socket.write_all(&[byte]).is_ok());
        step += 1;
        thread::sleep(Duration::from_millis(250));
    }
}

/// A flood of ~2000 idle connections: the server keeps answering `/users`
/// and serving streams meanwhile, and once the flood closes its threads,
/// fds and users go back to baseline. Linux only (`/proc`).
#[cfg(target_os = "linux")]
#[test]
fn flood_of_idle_connections() {
    let _turn = take_turn();
    let server = Server::start(&["--interval", "200ms"]);
    let base = baseline(&server);
    let count = 2000.min(own_fd_limit().saturating_sub(256));
    let started = Instant::now();
    let flood: Vec<TcpStream> = (0..count).map(|_| server.connect()).collect();
    let connected_in = started.elapsed();

    assert_eq!(server.counts(), (0, 0));
    let asked = Instant::now();
    let mut client = server.open_stream("during-flood");
    assert_eq!(client.next_event(), ":\n\n");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let peak = threads_and_fds(server.pid());
    eprintln!(
        "flood: {count} connections in {connected_in:?}; peak threads={} fds={}",
        peak.0, peak.1
    );
    assert!(
        peak.0 > count / 2,
        "the flood never reached the server: {peak:?}"
    );

    drop(flood);
    drop(client);
    assert!(server.wait_for_users(0, Duration::from_secs(5)));
    assert_settles(server.pid(), base, "flood");
    assert_eq!(server.get("/users").0, 200);
    server.assert_no_panic();
}

/// Connect/close churn as fast as possible, then streams dropped with
/// unread data (the kernel sends a reset): every connection is accounted
/// for in the log, resets are detected, and users, threads and fds go back
/// to baseline. Linux only (`/proc`).
#[cfg(target_os = "linux")]
#[test]
fn connect_close_churn_and_resets() {
    const CHURN: usize = 3000;
    const RESETS: usize = 20;
    let _turn = take_turn();
    let server = Server::start(&["--interval", "10ms"]);
    let base = baseline(&server);

    let started = Instant::now();
    let mut churned = 0;
    while churned < CHURN && started.elapsed() < Duration::from_secs(8) {
        drop(server.connect());
        churned += 1;
    }
    eprintln!("churn: {churned} connect+close in {:?}", started.elapsed());
    let drops = server.wait_for_log_count(
        "drop reason=\"closed before a complete request\" bytes=0",
        churned,
        Duration::from_secs(10),
    );
    assert!(drops.is_some(), "not every churned connection was logged");

    // Streams whose ticks pile up unread: closing them sends a reset.
    let streams: Vec<_> = (0..RESETS)
        .map(|index| server.open_stream(&format!("rst-{index}")))
        .collect();
    assert!(server.wait_for_users(RESETS as u64, Duration::from_secs(5)));
    thread::sleep(Duration::from_millis(300));
    drop(streams);
    let closes = server
        .wait_for_log_count("close user=\"rst-", RESETS, Duration::from_secs(5))
        .expect("every reset stream closed");
    let resets = closes
        .iter()
        .filter(|line| line.contains("reason=reset"))
        .count();
    eprintln!("churn: {resets} of {RESETS} dropped streams logged reason=reset");
    for line in &closes {
        assert!(
            line.contains("reason=reset") || line.contains("reason=eof"),
            "{line}"
        );
    }
    assert!(resets > 0, "no reset detected: {closes:?}");

    assert!(server.wait_for_users(0, Duration::from_secs(5)));
    assert_settles(server.pid(), base, "churn");
    server.assert_no_panic();
}

/// A stream client that never reads while big events are pushed to it is
/// dropped with `reason=stalled` once it cannot take its backlog within
/// `--write-timeout` or falls 1 MiB behind,
/// while another client's ticks keep arriving on time and publishing to it
/// stays prompt.
#[test]
fn non_reading_client_is_dropped_as_stalled() {
    let _turn = take_turn();
    let server = Server::start(&["--interval", "100ms", "--write-timeout", "500ms"]);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let mut client = server.open_stream("watcher");
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut arrivals = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                client.next_tick();
                arrivals.push(Instant::now());
            }
            arrivals
        })
    };
    let stuck = server.open_stream("stuck"); // reads its head, then nothing
    assert!(server.wait_for_users(2, Duration::from_secs(5)));

    let big = "x".repeat(60 * 1024);
    let started = Instant::now();
    let mut pushes = 0;
    let mut slowest_other_publish = Duration::ZERO;
    let stalled = loop {
        let stalled = server
            .log_lines()
            .into_iter()
            .find(|line| line.starts_with("close user=\"stuck\""));
        if let Some(line) = stalled {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still not stalled after {pushes} pushes of 60 KiB"
        );
        let (status, _, body) = server.post("/send/stuck", &big);
        assert_eq!(status, 202, "{body}");
        pushes += 1;
        if pushes % 5 == 0 {
            let asked = Instant::now();
            let (status, _, body) = server.post("/send/watcher", "ping");
            assert_eq!(
                (status, body.contains("\"delivered\":1")),
                (202, true),
                "{body}"
            );
            slowest_other_publish = slowest_other_publish.max(asked.elapsed());
        }
    };
    let took = started.elapsed();
    assert!(stalled.contains("reason=stalled"), "{stalled}");
    assert_eq!(server.counts(), (1, 1), "only the watcher is left");
    // Keep watching a little after the stall (and for 1.5 s in all: since
    // outboxes, a stall can be seen within half a second), then stop.
    let watched = started.elapsed();
    thread::sleep(
        Duration::from_millis(500).max(Duration::from_millis(1500).saturating_sub(watched)),
    );
    stop.store(true, Ordering::Relaxed);
    let arrivals = watcher.join().expect("the watcher kept getting ticks");
    let widest_gap = arrivals
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "non-reading: stalled after {pushes} pushes ({} KiB) in {took:?}; \
         watcher got {} ticks, widest gap {widest_gap:?}; slowest publish to it {slowest_other_publish:?}",
        pushes * 60,
        arrivals.len()
    );
    assert!(arrivals.len() >= 10, "{} ticks", arrivals.len());
    assert!(widest_gap < Duration::from_secs(1), "{widest_gap:?}");
    assert!(
        slowest_other_publish < Duration::from_millis(1500),
        "{slowest_other_publish:?}"
    );
    drop(stuck);
    assert!(server.wait_for_users(0, Duration::from_secs(5)));
    server.assert_no_panic();
}

/// Starts the server through `sh -c 'ulimit -n FDS && exec sse-server
/// --port 0 ARGS…'`, so it runs under a low open-file limit and the child's
/// PID is the server's.
#[cfg(target_os = "linux")]
fn start_with_fd_limit(fds: usize, args: &[&str]) -> Server {
    let script = format!("ulimit -n {fds} && exec \"$0\" --port 0 \"$@\"");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_sse-server"))
        .args(args)
        .env_remove("PORT");
    Server::start_command(command)
}

/// CPU time (user + system) a process used so far, from `/proc/PID/stat`,
/// in clock ticks (USER_HZ, 100 per second on Linux).
#[cfg(target_os = "linux")]
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Out of file descriptors (the server started under `ulimit -n 64`, then
/// 150 idle connections): `accept` fails with `EMFILE`; the server logs one
/// `accept-error` for the burst, does not spin (CPU time over a saturated
/// second stays under 0.1 s), and serves again once the connections close.
/// Linux only (`sh`, `/proc`).
#[cfg(target_os = "linux")]
#[test]
fn out_of_descriptors_backs_off_and_recovers() {
    const FD_LIMIT: usize = 64;
    const CONNECTIONS: usize = 150;
    let _turn = take_turn();
    let server = start_with_fd_limit(FD_LIMIT, &["--max-clients", "200"]);
    let at_rest = threads_and_fds(server.pid());
    let mut idle = Vec::new();
    for _ in 0..CONNECTIONS {
        let socket = TcpStream::connect_timeout(&server.addr, IO_TIMEOUT).expect("connect");
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        idle.push(socket);
    }
    server
        .wait_for_log("accept-error", Duration::from_secs(5))
        .expect("an accept-error line");
    let saturated = threads_and_fds(server.pid());

    let cpu_before = cpu_ticks(server.pid());
    thread::sleep(Duration::from_secs(1));
    let cpu_ticks = cpu_ticks(server.pid()) - cpu_before;
    let errors = server.lines_with("accept-error");
    eprintln!(
        "out of fds: at rest threads={} fds={}; saturated threads={} fds={}; \
         cpu over 1 s saturated: {cpu_ticks} ticks; accept-error lines: {}",
        at_rest.0,
        at_rest.1,
        saturated.0,
        saturated.1,
        errors.len()
    );
    assert!(saturated.1 >= FD_LIMIT - 2, "never ran out: {saturated:?}");
    assert!(cpu_ticks <= 10, "spinning: {cpu_ticks} ticks of CPU in 1 s");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("EMFILE") || errors[0].contains("Too many open files"),
        "{}",
        errors[0]
    );

    drop(idle);
    server
        .wait_for_log("accept recovered", Duration::from_secs(5))
        .expect("an accept recovered line");
    let mut socket = TcpStream::connect_timeout(&server.addr, IO_TIMEOUT).expect("connect");
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
        .write_all(b"GET /users HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response);
    let (status, _, body) = split_response(&response);
    assert_eq!(status, 200, "{body}");
    // Accepting the connections that queued up meanwhile can exhaust the
    // descriptors once more, briefly: a new burst, a new single line.
    let bursts = server.lines_with("accept-error").len();
    assert!(
        bursts <= 3,
        "one line per burst, not per error: {bursts} lines"
    );
    assert!(server.lines_with("panic").is_empty());
}
