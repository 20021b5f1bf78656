//! One connection to a Redis server: connect with a timeout, log in, send a
//! command, read its reply. Blocking, one command at a time.
//!
//! Spec: "Redis serialization protocol specification" (request-response
//! model), <https://redis.io/docs/latest/develop/reference/protocol-spec/>;
//! `AUTH` <https://redis.io/docs/latest/commands/auth/> and `SELECT`
//! <https://redis.io/docs/latest/commands/select/>.
//!
//! The bytes are encoded and parsed by [`crate::resp`]; this module adds
//! the socket, its timeouts, and a cap on how much of a reply is buffered.
//! After any error other than [`RedisError::Server`] the connection is out
//! of step with the server (half a reply may be in flight) and is dropped;
//! callers open a new one.
//!
//! Passwords never leave this module except inside the `AUTH` command, and
//! no error or log line repeats them.

use std::fmt;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::RedisUrl;
use crate::net::read_with_timeout;
use crate::resp::{self, Parse, RespError, Value};

/// Longest wait for a TCP connection to Redis, per address the name
/// resolves to.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a command may take, from the first byte written to the last byte
/// of its reply read (for a blocking command, on top of its block time).
/// Past it the connection is dropped and the caller sees
/// [`RedisError::Io`] with a timeout.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Most bytes of one reply buffered; past it the reply is refused
/// ([`RedisError::ReplyTooLarge`]). Our largest replies are `XRANGE` pages
/// of [`crate::resp::MAX_BULK_BYTES`]-bounded entries.
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Idle connections kept by a [`Pool`]; more are closed when returned.
pub const POOL_IDLE_CONNECTIONS: usize = 8;

/// Why a command did not get an answer.
#[derive(Debug)]
pub enum RedisError {
    /// Occurs when Redis cannot be reached, or a read or write fails or
    /// times out.
    Io(io::Error),
    /// Occurs when Redis closes the connection.
    Closed,
    /// Occurs when the reply is not valid RESP2 or breaks one of its limits.
    Protocol(RespError),
    /// Occurs when a reply is longer than [`MAX_REPLY_BYTES`].
    ReplyTooLarge,
    /// Occurs when Redis answers with an error reply (`-ERR …`); the
    /// connection stays usable.
    Server(String),
    /// Occurs when a reply is valid RESP but not the shape its command
    /// promises (not the Redis we expect).
    UnexpectedReply(&'static str),
}

impl RedisError {
    /// Whether the connection that produced this error is still usable.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, RedisError::Server(_))
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Io(error) => write!(formatter, "{error}"),
            RedisError::Closed => formatter.write_str("connection closed by redis"),
            RedisError::Protocol(error) => write!(formatter, "bad reply: {}", error.reason()),
            RedisError::ReplyTooLarge => formatter.write_str("reply too large"),
            RedisError::Server(message) => write!(formatter, "redis error: {message}"),
            RedisError::UnexpectedReply(what) => write!(formatter, "unexpected reply: {what}"),
        }
    }
}

impl From<io::Error> for RedisError {
    fn from(error: io::Error) -> RedisError {
        RedisError::Io(error)
    }
}

/// One open, logged-in connection.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read but not yet parsed: the start of the next reply.
    buffer: Vec<u8>,
    /// What each `read` fills, allocated once per connection.
    chunk: Vec<u8>,
}

impl Connection {
    /// Connects to the server `url` names, then sends `AUTH` if it has a
    /// password and `SELECT` if its database is not 0.
    pub fn open(url: &RedisUrl) -> Result<Connection, RedisError> {
        let stream = connect(&url.address())?;
        stream.set_nodelay(true)?;
        let mut connection = Connection {
            stream,
            buffer: Vec::new(),
            chunk: vec![0u8; READ_CHUNK_BYTES],
        };
        if let Some(password) = &url.password {
            // `AUTH [username] password` (Redis 6 adds the username).
            let mut auth = vec!["AUTH"];
            auth.extend(url.username.as_deref());
            auth.push(password);
            connection.command(&auth)?;
        }
        if url.db != 0 {
            connection.command(&["SELECT", &url.db.to_string()])?;
        }
        Ok(connection)
    }

    /// Sends one command and reads its reply, within [`COMMAND_TIMEOUT`].
    /// An error reply becomes [`RedisError::Server`].
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, RedisError> {
        self.command_within(args, COMMAND_TIMEOUT)
    }

    /// Like [`Connection::command`], for a command that may block on the
    /// server (`XREAD BLOCK ms`): `timeout` must cover the block time.
    pub fn command_within<A: AsRef<[u8]>>(
        &mut self,
        args: &[A],
        timeout: Duration,
    ) -> Result<Value, RedisError> {
        let deadline = Instant::now() + timeout;
        self.stream.set_write_timeout(Some(timeout))?;
        self.stream.write_all(&resp::encode_command(args))?;
        match self.read_reply(deadline)? {
            Value::Error(message) => Err(RedisError::Server(message)),
            value => Ok(value),
        }
    }

    /// Reads until one whole reply is buffered, then parses it. Bounded in
    /// time by `deadline` and in bytes by [`MAX_REPLY_BYTES`].
    fn read_reply(&mut self, deadline: Instant) -> Result<Value, RedisError> {
        loop {
            match resp::parse(&self.buffer).map_err(RedisError::Protocol)? {
                Parse::Complete { value, len } => {
                    self.buffer.drain(..len);
                    return Ok(value);
                }
                Parse::Partial if self.buffer.len() >= MAX_REPLY_BYTES => {
                    return Err(RedisError::ReplyTooLarge)
                }
                Parse::Partial => {}
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(io::Error::from(io::ErrorKind::TimedOut).into());
            }
            match read_with_timeout(&self.stream, &mut self.chunk, remaining) {
                Ok(0) => return Err(RedisError::Closed),
                Ok(count) => self.buffer.extend_from_slice(&self.chunk[..count]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// Connects to the first address `address` resolves to that answers.
fn connect(address: &str) -> Result<TcpStream, RedisError> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for socket_address in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&socket_address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = error,
        }
    }
    Err(last_error.into())
}

impl fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Connection({:?})", self.stream.peer_addr().ok())
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Pool({}, {} idle)", self.url, self.lock().len())
    }
}

/// Open connections shared by threads that each need one for a command or
/// two (publishers, replays): take one, use it, give it back. A connection
/// that failed is dropped instead of given back.
pub struct Pool {
    url: RedisUrl,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub fn new(url: RedisUrl) -> Pool {
        Pool {
            url,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The server this pool connects to (password hidden by `Display`).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// Runs `work` on an idle connection, or a new one. An idle connection
    /// that fails (Redis restarted since it was last used, so it is dead)
    /// is dropped with every other idle one, and `work` runs once more on a
    /// new connection.
    ///
    /// Simplification: if the dead connection did get the command to Redis
    /// before failing, the command runs twice (an `XADD` stores two
    /// entries). A production client would make the append idempotent.
    pub fn with_connection<T>(
        &self,
        mut work: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let idle = self.lock().pop();
        if let Some(mut connection) = idle {
            match work(&mut connection) {
                Err(error) if !error.keeps_connection() => self.clear(),
                result => {
                    self.give_back(connection, &result);
                    return result;
                }
            }
        }
        let mut connection = Connection::open(&self.url)?;
        let result = work(&mut connection);
        self.give_back(connection, &result);
        result
    }

    /// Keeps a connection for the next user, unless it failed or enough are
    /// idle already.
    fn give_back<T>(&self, connection: Connection, result: &Result<T, RedisError>) {
        let usable = match result {
            Ok(_) => true,
            Err(error) => error.keeps_connection(),
        };
        let mut idle = self.lock();
        if usable && idle.len() < POOL_IDLE_CONNECTIONS {
            idle.push(connection);
        }
    }

    /// Closes every idle connection (after Redis went away, they are dead).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::thread;

    /// A fake Redis on loopback: for each expected command, reads exactly
    /// those bytes and answers with the given chunks (sent one by one, to
    /// split replies across reads). Returns the URL to reach it.
    fn fake_server(
        script: Vec<(Vec<u8>, Vec<&'static [u8]>)>,
    ) -> (RedisUrl, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            for (expected, chunks) in script {
                let mut received = vec![0u8; expected.len()];
                stream.read_exact(&mut received).expect("read command");
                assert_eq!(
                    String::from_utf8_lossy(&received),
                    String::from_utf8_lossy(&expected)
                );
                for chunk in chunks {
                    stream.write_all(chunk).expect("write reply");
                    stream.flush().expect("flush");
                    thread::sleep(Duration::from_millis(5));
                }
            }
        });
        let url = RedisUrl {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: None,
            db: 0,
        };
        (url, handle)
    }

    fn command(args: &[&str]) -> Vec<u8> {
        resp::encode_command(args)
    }

    #[test]
    fn logs_in_and_selects_then_reads_a_split_reply() {
        let (mut url, server) = fake_server(vec![
            (command(&["AUTH", "alice", "s3cret"]), vec![b"+OK\r\n"]),
            (command(&["SELECT", "2"]), vec![b"+O", b"K\r\n"]),
            (command(&["GET", "k"]), vec![b"$5\r", b"\nhel", b"lo\r\n"]),
        ]);
        url.username = Some("alice".into());
        url.password = Some("s3cret".into());
        url.db = 2;
        let mut connection = Connection::open(&url).expect("open");
        let reply = connection.command(&["GET", "k"]).expect("reply");
        assert_eq!(reply, Value::Bulk(b"hello".to_vec()));
        server.join().expect("fake server");
    }

    #[test]
    fn an_error_reply_keeps_the_connection() {
        let (url, server) = fake_server(vec![
            (command(&["NOPE"]), vec![b"-ERR unknown command\r\n"]),
            (command(&["PING"]), vec![b"+PONG\r\n"]),
        ]);
        let mut connection = Connection::open(&url).expect("open");
        let error = connection.command(&["NOPE"]).expect_err("error reply");
        assert!(error.keeps_connection());
        assert_eq!(error.to_string(), "redis error: ERR unknown command");
        let pong = connection.command(&["PING"]).expect("pong");
        assert_eq!(pong, Value::Simple("PONG".into()));
        server.join().expect("fake server");
    }

    #[test]
    fn an_oversized_reply_is_refused_before_it_arrives() {
        let (url, server) = fake_server(vec![(command(&["GET", "k"]), vec![b"$999999999\r\n"])]);
        let mut connection = Connection::open(&url).expect("open");
        let error = connection.command(&["GET", "k"]).expect_err("too large");
        assert!(matches!(
            error,
            RedisError::Protocol(RespError::BulkTooLarge)
        ));
        assert!(!error.keeps_connection());
        server.join().expect("fake server");
    }

    #[test]
    fn a_server_that_closes_mid_reply_is_an_error() {
        let (url, server) = fake_server(vec![(command(&["GET", "k"]), vec![b"$5\r\nhe"])]);
        let mut connection = Connection::open(&url).expect("open");
        let error = connection.command(&["GET", "k"]).expect_err("closed");
        assert!(matches!(error, RedisError::Closed), "{error}");
        server.join().expect("fake server");
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        // Accepts, then holds the socket open without answering.
        let _server = thread::spawn(move || {
            let accepted = listener.accept();
            thread::sleep(Duration::from_secs(2));
            drop(accepted);
        });
        let url = RedisUrl {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: None,
            db: 0,
        };
        let mut connection = Connection::open(&url).expect("open");
        let started = Instant::now();
        let error = connection
            .command_within(&["PING"], Duration::from_millis(200))
            .expect_err("timeout");
        assert!(matches!(&error, RedisError::Io(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn nobody_listening_is_an_io_error() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let url = RedisUrl {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: None,
            db: 0,
        };
        assert!(matches!(Connection::open(&url), Err(RedisError::Io(_))));
    }
}
