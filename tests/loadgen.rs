//! Scale smoke test: the real server binary under 500 concurrent streams,
//! measured by the load generator in `examples/loadgen.rs` (included here as a
//! module, so the test and `cargo run --example loadgen` share one code path).
//!
//! Sized for a 2-core CI machine: 500 connections, a 500 ms interval (a
//! debug build of 500 threads on a loaded machine can run a tick late by
//! more than a shorter interval), a 4 s steady window, 3 broadcasts and 100
//! clients closed at once; about 8 s.
//! Every socket the load generator opens has a timeout and every phase has a
//! deadline, so a broken server fails the test instead of hanging it.

#[path = "../examples/loadgen.rs"]
mod loadgen;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long the server may take to print `listening on`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// 500 streams get every timer frame and every broadcast, all frames are
/// valid, `users` reaches 500, and closing 100 clients shows in `/users` and
/// in the server log.
#[test]
fn five_hundred_streams_get_every_frame_broadcast_and_disconnect() {
    let clients = 500;
    let server = Server::start(&["--interval", "500ms", "--max-clients", "1000"]);
    let options = loadgen::Options {
        addr: server.addr,
        clients,
        duration: Duration::from_secs(4),
        interval: Some(Duration::from_millis(500)),
        broadcasts: 3,
        close: 100,
        threads: 2,
        server_log: Some(server.log_path.clone()),
        timeout: Duration::from_secs(30),
        progress: false,
        ..loadgen::Options::default()
    };

    let report = loadgen::run(&options).expect("the load generator could not run");

    print!("{}", report.human());
    println!("{}", report.result_line());
    assert_eq!(report.failures, Vec::<String>::new(), "failed checks");
    assert_eq!(report.connected, clients);
    assert_eq!(report.errors.total(), 0);
    assert_eq!(report.invalid, 0);
    assert!(
        report.frames >= (clients * 6) as u64,
        "only {} timer frames",
        report.frames
    );
    assert_eq!(report.users_in_frames, clients);
    assert!(report
        .broadcasts
        .iter()
        .all(|b| b.received == clients && b.delivered == Some(clients)));
    assert!(report.disconnect_ms.is_some());
    assert_eq!(report.disconnect_log.map(|log| log.count), Some(100));
}

/// The real binary on a free port. Its stdout is copied line by line into a
/// log file by a thread, so the pipe never fills and the load generator can
/// tail the file for `close` lines. Dropping it kills the server.
struct Server {
    child: Child,
    addr: std::net::SocketAddr,
    log_path: PathBuf,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("loadgen-server-{}.log", std::process::id()));
        let mut log = File::create(&log_path).expect("cannot create the server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sse-server"))
            .args(["--port", "0"])
            .args(flags)
            .env_remove("SSE_PUBLISH_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start sse-server");
        let stdout = child.stdout.take().expect("no stdout");
        let (first_line_sender, first_line) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = first_line_sender.send(line.clone());
                let _ = writeln!(log, "{line}");
                let _ = log.flush();
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log_path,
        };
        let line = first_line
            .recv_timeout(STARTUP_TIMEOUT)
            .expect("the server printed no `listening on` line");
        let port = line
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|port| port.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        server.addr.set_port(port);
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
