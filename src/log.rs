//! One line per event on stdout, stable and greppable:
//! `open user="alice" conn=7 users=2 conns=3 peer=127.0.0.1:53412`.
//!
//! Values that come from a client (userIds, reasons) are written as JSON
//! strings, so no client can split a log line or forge one.

use std::fmt;
use std::io::Write;

/// Writes one log line. Errors are ignored on purpose: a closed or full
/// stdout must never take a connection thread (or the server) down, which
/// `println!` would do by panicking.
pub fn line(args: fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(args);
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
}

/// `log!("open user={} …", …)`: formats and writes one line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!($($arg)*))
    };
}
