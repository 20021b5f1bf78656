//! The client's sockets: resolve, connect, send a request, read the
//! response head. Every step is bounded by a deadline.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::http::{self, HeadParse, ResponseError, ResponseHead, Url};
use crate::limits::CLIENT_CONNECT_TIMEOUT;
pub use crate::net::is_timeout;
use crate::net::{read_with_timeout, MIN_SOCKET_TIMEOUT};

/// A response whose head has been read.
#[derive(Debug)]
pub struct Response {
    pub stream: TcpStream,
    pub head: ResponseHead,
    /// Bytes read past the head: the start of the body.
    pub body_start: Vec<u8>,
}

/// Why a request got no usable response head.
#[derive(Debug)]
pub enum TransportError {
    /// Occurs when the host does not resolve, or no address of it accepts a
    /// connection (refused, unreachable, connect timeout).
    Connect(io::Error),
    /// Occurs when sending or reading fails after the connection was made.
    Io(io::Error),
    /// Occurs when the server closes before a complete response head.
    Closed,
    /// Occurs when the deadline passes first.
    TimedOut,
    /// Occurs when the response head is malformed or too large.
    Response(ResponseError),
}

impl fmt::Display for TransportError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Connect(error) => write!(formatter, "could not connect: {error}"),
            TransportError::Io(error) => write!(formatter, "connection failed: {error}"),
            TransportError::Closed => {
                formatter.write_str("the server closed the connection before answering")
            }
            TransportError::TimedOut => formatter.write_str("no answer in time"),
            TransportError::Response(error) => formatter.write_str(error.reason()),
        }
    }
}

/// Connects to `url`, sends `request`, and reads the response head, all by
/// `deadline`.
pub fn exchange(url: &Url, request: &[u8], deadline: Instant) -> Result<Response, TransportError> {
    let mut stream = connect(url, deadline)?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(TransportError::Io)?;
    stream
        .write_all(request)
        .map_err(|error| match is_timeout(&error) {
            true => TransportError::TimedOut,
            false => TransportError::Io(error),
        })?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded: each round adds at least one byte, and parse_head fails past
    // MAX_RESPONSE_HEAD_BYTES; each read is bounded by the deadline.
    loop {
        match http::parse_head(&buffer).map_err(TransportError::Response)? {
            HeadParse::Complete { head, head_len } => {
                let body_start = buffer.split_off(head_len);
                return Ok(Response {
                    stream,
                    head,
                    body_start,
                });
            }
            HeadParse::Partial => match read_by(&mut stream, &mut chunk, Some(deadline)) {
                Ok(0) => return Err(TransportError::Closed),
                Ok(count) => buffer.extend_from_slice(&chunk[..count]),
                Err(error) if is_timeout(&error) => return Err(TransportError::TimedOut),
                Err(error) => return Err(TransportError::Io(error)),
            },
        }
    }
}

/// Tries each address of the host in turn.
fn connect(url: &Url, deadline: Instant) -> Result<TcpStream, TransportError> {
    let addresses = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(TransportError::Connect)?;
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for address in addresses {
        let timeout = remaining(deadline)?.min(CLIENT_CONNECT_TIMEOUT);
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = error,
        }
    }
    if Instant::now() >= deadline {
        return Err(TransportError::TimedOut);
    }
    Err(TransportError::Connect(last_error))
}

/// Reads into `buffer`, waiting at most until `deadline` (forever without
/// one). A timeout comes back as an error that [`is_timeout`] recognizes.
pub fn read_by(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    loop {
        let result = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                }
                read_with_timeout(stream, buffer, left)
            }
            None => stream
                .set_read_timeout(None)
                .and_then(|()| stream.read(buffer)),
        };
        match result {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// Time left until `deadline`, never zero (a zero socket timeout is an
/// error in std); `TimedOut` once it has passed.
pub fn remaining(deadline: Instant) -> Result<Duration, TransportError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(TransportError::TimedOut)
    } else {
        Ok(left.max(MIN_SOCKET_TIMEOUT))
    }
}
