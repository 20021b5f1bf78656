//! The binary as its own client: `sse-server listen URL` reads an event
//! stream the way a browser's `EventSource` does, and `sse-server publish
//! URL` posts an event. Both exist for shell scripts and smoke tests, and to
//! show the other half of the protocol.
//!
//! Read in this order:
//! 1. [`http`]: URLs, request heads, response heads, chunked bodies. Pure.
//! 2. `crate::eventstream`: the event-stream parser (WHATWG HTML §9.2.6).
//!    Pure.
//! 3. [`transport`]: connect, send, read a response head, with deadlines.
//! 4. [`listen`]: the reconnecting reader (WHATWG HTML §9.2.3).
//! 5. [`publish`]: one `POST`.
//!
//! Exit codes, the same for both commands (see [`Exit`]): 0 done, 1
//! timed out, 2 bad usage, 3 the server could not be reached or refused.

pub mod http;
pub mod listen;
pub mod publish;
pub mod transport;

use std::process::ExitCode;

/// How a client command ends; the process exit code is the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: what was asked for happened (`--count` events printed, the
    /// stream ended for good, the event was accepted).
    Done,
    /// 1: `--timeout` passed first.
    TimedOut,
    /// 2: a bad flag, value or URL; nothing was sent.
    Usage,
    /// 3: no connection, a refusing status, a wrong content type, or a
    /// response broken past a limit; stderr says which.
    Failed,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::TimedOut => 1,
            Exit::Usage => 2,
            Exit::Failed => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
