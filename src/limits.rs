//! Every limit and timeout in one place.
//!
//! Each constant names its unit and says what a client sees when it is
//! crossed. Those marked "default" can be changed by the flag they name; the
//! README's "Limits and timeouts" table is a copy of this file.

use std::time::Duration;

/// Largest request head (request line plus headers) we read: `431 Request
/// Header Fields Too Large` past it, or `414 URI Too Long` when the request
/// line alone is already over (RFC 9110 §15.5.15, RFC 6585 §5).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most header fields in one request: `431` past it.
pub const MAX_HEADER_COUNT: usize = 64;

/// Time a client has to send its complete request head, counted from when
/// its thread starts reading: `408 Request Timeout` and a close past it. This is what cuts off a
/// Slowloris client that sends one byte at a time.
pub const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest body of `POST /send/…` and `POST /broadcast`: `413 Content Too
/// Large` past it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Time a publisher has to send its body once the head arrived: `408`.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest userId, in bytes after percent-decoding: `400` past it.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Longest `?event=` name: `400` past it.
pub const MAX_EVENT_NAME_BYTES: usize = 64;

/// Default time a write to a client may block (flag `--write-timeout`). A
/// client whose socket cannot take a frame in that time is dropped and logged
/// with `reason=stalled`.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time between timer frames (flag `--interval`), as in the original.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);

/// Default idle time after which a `: heartbeat` comment is written (flag
/// `--heartbeat`). WHATWG HTML §9.2.7 suggests a comment every 15 seconds or
/// so, to keep proxies from timing the stream out.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Default reconnection time sent as `retry:` (flag `--retry`).
pub const DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// Most random milliseconds added to each connection's `retry:`, so a
/// server restart does not bring every browser back in the same millisecond.
pub const RETRY_JITTER_MS: u64 = 1000;

/// `retry:` sent with the "server is full" answer: come back in a few seconds.
pub const FULL_RETRY: Duration = Duration::from_secs(5);

/// `Retry-After` (seconds) of a `503` for a non-stream request while full.
pub const FULL_RETRY_AFTER_SECS: u64 = 5;

/// Default number of pushed events kept for `Last-Event-ID` replay (flag
/// `--history`).
pub const DEFAULT_HISTORY: usize = 1000;

/// Most bytes of encoded events kept in history, whatever `--history` says:
/// a 64 KiB body of line breaks encodes to about 7 times that, and every
/// reconnecting client may ask for all of it. Older events are evicted
/// (and reported as a `gap`).
pub const MAX_HISTORY_BYTES: usize = 16 * 1024 * 1024;

/// Bytes a client may send after its stream request (it has no reason to
/// send any) before we close it with `reason=client-data`. They are read and
/// thrown away so `peek` never spins on them.
pub const MAX_DISCARD_BYTES: usize = 64 * 1024;

/// File descriptors kept back from the open-file limit when computing the
/// default `--max-clients`: stdio, the listener, logs and a little room for
/// `/users` and publishers.
pub const FD_MARGIN: usize = 64;

/// Memory mappings each connection thread costs: its stack and guard page,
/// and the signal stack (with its guard page) std gives every thread.
/// Linux allows `vm.max_map_count` (65530 by default) per process; a thread
/// that cannot get its mappings aborts the whole process, so the number of
/// connection threads is capped well before that.
pub const MAPPINGS_PER_THREAD: usize = 4;

/// Mappings kept back for everything that is not a connection thread: the
/// binary, libraries, heap arenas.
pub const MAPPING_MARGIN: usize = 1024;

/// Default `--max-clients` where the open-file limit cannot be read.
pub const FALLBACK_MAX_CLIENTS: usize = 1000;

/// Connection threads allowed beyond `--max-clients`, so an overloaded server
/// can still read a request and answer it properly: plain requests are
/// served in the first half and get `503` past it; stream requests get `200`,
/// `retry:` and a close in all of it. Past the whole headroom the accept
/// loop answers `503` itself without spawning a thread.
pub const OVERLOAD_HEADROOM: usize = 64;

/// Stack size of each connection thread. The deepest path (parse, route,
/// format a reply, a debug build's unoptimised frames) uses well under half of
/// it; only the pages a thread touches count towards RSS.
pub const CONNECTION_STACK_BYTES: usize = 64 * 1024;

/// Pause of the accept loop after `accept` fails (for example `EMFILE`, out
/// of file descriptors), so it does not spin at 100% CPU.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// After a plain reply, how long unread input from the client is drained
/// (and at most how much) before the close, so the close does not turn into
/// a reset that destroys the reply (see `server::finish_reply`).
pub const LINGER_TIMEOUT: Duration = Duration::from_millis(500);

/// See [`LINGER_TIMEOUT`].
pub const MAX_LINGER_BYTES: usize = 64 * 1024;

/// How long a shutdown's farewell event may take to write, per stream; a
/// stream that cannot take it in that time is closed without it.
pub const FAREWELL_TIMEOUT: Duration = Duration::from_millis(100);

/// How long a graceful shutdown waits for connection threads to end.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Shortest subscriber secret (`--subscribe-secret-file` or
/// `SSE_SUBSCRIBE_SECRET`), in bytes: 256 bits, the size of the HMAC-SHA256
/// output (RFC 2104 §3 advises a key no shorter than it). A shorter secret
/// stops the server at start with exit status 2.
pub const MIN_SUBSCRIBE_SECRET_BYTES: usize = 32;

/// Longest subscriber secret file read, in bytes; a longer file stops the
/// server at start with exit status 2 (it is surely the wrong file).
pub const MAX_SUBSCRIBE_SECRET_BYTES: usize = 4096;

/// Longest subscriber token, in bytes: 20 digits of expiry (`u64::MAX`), a
/// dot and 43 characters of MAC. A longer one gets `401`.
pub const MAX_TOKEN_BYTES: usize = 64;

/// Lifetime of a minted subscriber token when none is asked for
/// (`sse-server token USER`, `POST /token/{user}`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// Longest lifetime a token may be minted with (`--ttl`, `?ttl=`): `400`
/// past it (exit status 2 for the CLI). A token that expires later than this
/// from now (plus [`TOKEN_CLOCK_SKEW`]) is refused with `401`, whoever
/// minted it.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How far another instance's clock may run ahead of ours for its tokens
/// still to be accepted under [`MAX_TOKEN_TTL`].
pub const TOKEN_CLOCK_SKEW: Duration = Duration::from_secs(60);
