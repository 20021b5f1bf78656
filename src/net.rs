//! Socket helpers shared by every floor that touches a socket: one read
//! with a timeout, the timeout classifier, and the lingering close that
//! ends every plain reply.
//!
//! Spec: RFC 9112 §9.6 (tear-down), <https://www.rfc-editor.org/rfc/rfc9112#section-9.6>.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::limits::{LINGER_TIMEOUT, MAX_LINGER_BYTES};

/// The shortest timeout we hand the OS: a zero timeout means "block
/// forever" to `set_read_timeout`, and std refuses it outright.
pub const MIN_SOCKET_TIMEOUT: Duration = Duration::from_millis(1);

/// One `read` that gives up after `timeout`.
pub fn read_with_timeout(
    stream: &TcpStream,
    buffer: &mut [u8],
    timeout: Duration,
) -> io::Result<usize> {
    stream.set_read_timeout(Some(timeout.max(MIN_SOCKET_TIMEOUT)))?;
    (&*stream).read(buffer)
}

/// `WouldBlock` and `TimedOut` both mean a timeout: std documents that
/// platforms differ.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes a final reply and closes cleanly.
///
/// Closing a socket that still has unread input makes the kernel send a
/// reset, which can destroy the reply before the client reads it (RFC 9112
/// §9.6). So: send our FIN first (`shutdown(Write)`), then read and discard
/// what the client still sends, for a short, bounded time, and only then
/// close ("lingering close").
pub fn finish_reply(stream: &TcpStream, bytes: &[u8]) {
    if (&*stream).write_all(bytes).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIMEOUT;
    let mut sink = [0u8; 512];
    let mut drained = 0;
    while drained < MAX_LINGER_BYTES {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match read_with_timeout(stream, &mut sink, remaining) {
            Ok(0) | Err(_) => break,
            Ok(count) => drained += count,
        }
    }
}
