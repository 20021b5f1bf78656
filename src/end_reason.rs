//! Why a stream ended: one word per way a stream can end, shared by the
//! stream's own thread, the publishers, the `close` log line and the
//! metrics. Pure: no sockets (a write error is only classified here).

use std::io;

/// Why a stream ended. A client leaving is an outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed the connection (FIN).
    Eof,
    /// The client reset the connection (RST).
    Reset,
    /// A write failed for another reason than a timeout.
    WriteError,
    /// The client did not take what was written to it within the write
    /// timeout, or fell [`MAX_OUTBOX_BYTES`](crate::limits::MAX_OUTBOX_BYTES)
    /// behind.
    Stalled,
    /// The client kept sending bytes after its request.
    ClientData,
    /// Reading the socket failed in an unexpected way.
    ReadError,
    /// The server is shutting down.
    Shutdown,
    /// The connection's thread panicked.
    Panic,
}

impl EndReason {
    /// Every reason, in the order of the README's table.
    pub const ALL: [EndReason; 8] = [
        EndReason::Eof,
        EndReason::Reset,
        EndReason::WriteError,
        EndReason::Stalled,
        EndReason::ClientData,
        EndReason::ReadError,
        EndReason::Shutdown,
        EndReason::Panic,
    ];

    /// The word after `reason=` in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Eof => "eof",
            EndReason::Reset => "reset",
            EndReason::WriteError => "write-error",
            EndReason::Stalled => "stalled",
            EndReason::ClientData => "client-data",
            EndReason::ReadError => "read-error",
            EndReason::Shutdown => "shutdown",
            EndReason::Panic => "panic",
        }
    }

    pub(crate) fn code(self) -> u8 {
        self as u8 + 1
    }

    pub(crate) fn from_code(code: u8) -> Option<EndReason> {
        EndReason::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }

    /// Classifies a failed write.
    pub(crate) fn from_write_error(error: &io::Error) -> EndReason {
        if error.kind() == io::ErrorKind::ConnectionReset {
            EndReason::Reset
        } else {
            EndReason::WriteError
        }
    }
}
