//! A real `redis-server` for the cluster tests: started on a free loopback
//! port in its own temporary directory, with no persistence, and killed by
//! its PID on drop.
//!
//! Where `redis-server` is not installed, [`RedisServer::start`] prints one
//! loud `SKIP` line and returns `None`, so a developer without Redis can
//! still run `cargo test`. Under `CI=true` a missing `redis-server` fails
//! the test instead: CI installs it (`scripts/clients/install.sh`), and a
//! skipped cluster test there would be a silent hole.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::config::RedisUrl;
use sse_server::redis::Connection;
use sse_server::resp::Value;

/// Longest wait for a started `redis-server` to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at finding a free port (another process may take the one we
/// picked between our check and Redis's bind).
const START_ATTEMPTS: usize = 3;

/// Numbers the temporary directories of one test process.
static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port, or returns `None` (after a loud
    /// skip line) where it is not installed and `CI` is not `true`.
    pub fn start(test_name: &str) -> Option<RedisServer> {
        RedisServer::start_with(test_name, &[])
    }

    /// Like [`RedisServer::start`], with extra `redis-server` arguments
    /// (`["--requirepass", "pw"]`).
    pub fn start_with(test_name: &str, extra_args: &[&str]) -> Option<RedisServer> {
        if !installed() {
            let message = format!(
                "redis-server is not installed: {test_name} did not run \
                 (apt-get install redis-server)"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{message}; CI=true requires it");
            }
            // Written to stderr directly, not with `eprintln!`, which the
            // test harness captures and hides for a passing test.
            let line = format!("\n!!!!! SKIP: {message} !!!!!\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "sse-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the redis directory");
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
        };
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            if server.spawn() {
                return Some(server);
            }
        }
        panic!(
            "redis-server did not start; log:\n{}",
            server.log().unwrap_or_default()
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A client connection from the library's own Redis client.
    pub fn connect(&self) -> Connection {
        let url = RedisUrl {
            host: "127.0.0.1".into(),
            port: self.port,
            username: None,
            password: None,
            db: 0,
        };
        Connection::open(&url).expect("connect to the test redis")
    }

    /// Runs one command on a fresh connection and returns the reply.
    pub fn command(&self, args: &[&str]) -> Value {
        self.connect().command(args).expect("redis command")
    }

    /// `kill -9`: no chance to save or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new, empty `redis-server` on the same port (after
    /// [`RedisServer::kill`]): what a restart without persistence looks like.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `redis-server` on `self.port` and waits until it answers;
    /// `false` if it exited first (the port was taken) or never answered.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let log_file = self.dir.join("redis.log");
        // A restart must not find the old server's "ready" line.
        let _ = std::fs::remove_file(&log_file);
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log_file)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if self.answers() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// Whether our server said it is ready and accepts connections (not
    /// some other process that holds the port).
    fn answers(&self) -> bool {
        let ready = self
            .log()
            .is_some_and(|log| log.contains("Ready to accept connections"));
        let address = ([127, 0, 0, 1], self.port).into();
        ready && TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
    }

    fn log(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("redis.log")).ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- redis log ---\n{}", self.log().unwrap_or_default());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `redis-server` can be run.
fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
