//! Every limit and timeout a client or an operator can run into, in one
//! place.
//!
//! Each constant names its unit and says what a client sees when it is
//! crossed. Those marked "default" can be changed by the flag they name.
//! The README's "Limits and timeouts" table lists every constant of this
//! file with its value, and a test (`tests/readme.rs`) fails when the two
//! disagree. Tuning constants that no client can observe (buffer sizes, the
//! timer's precision tricks) live next to the code they tune.

use std::time::Duration;

/// Largest request head (request line plus headers) we read: `431 Request
/// Header Fields Too Large` past it, or `414 URI Too Long` when the request
/// line alone is already over (RFC 9110 §15.5.15, RFC 6585 §5).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most header fields in one request: `431` past it.
pub const MAX_HEADER_COUNT: usize = 64;

/// Time a client has to send its complete request head, counted from when
/// its connection thread starts reading (right after accept, unless the
/// machine is overloaded): `408 Request Timeout` and a close past it. This
/// is what cuts off a Slowloris client that sends one byte at a time.
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

/// Default time a stream's own thread waits for its client to take what is
/// written to it: one frame, a backlog of pushed events, or the whole start
/// of the stream (head and replay) together (flag `--write-timeout`). A
/// client that cannot take it in that time is dropped and logged with
/// `reason=stalled`.
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

/// The SSE `retry:` field of the "server is full" answer to a stream
/// request: the browser comes back in a few seconds.
pub const SERVER_FULL_SSE_RETRY: Duration = Duration::from_secs(5);

/// The HTTP `Retry-After` header (seconds) of a `503` while full.
pub const SERVER_FULL_RETRY_AFTER_SECS: u64 = 5;

/// Default number of pushed events kept for `Last-Event-ID` replay (flag
/// `--history`).
pub const DEFAULT_HISTORY: usize = 1000;

/// Most bytes history may hold, whatever `--history` says, counting what
/// each event really costs: its encoded frame, its userId and about 160
/// bytes of bookkeeping (`event::EVENT_OVERHEAD_BYTES`). A 64 KiB body of
/// line breaks encodes to about 7 times that, and 80,000 one-byte events
/// to a long userId are mostly bookkeeping. Older events are evicted (and
/// reported as a `gap`).
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
/// can still read a request and answer it properly. Stream requests get
/// `200`, `retry:` and a close anywhere in it (a browser gives up for good on
/// a `503`). Past the whole headroom the accept loop answers `503` itself,
/// before reading the request, so it cannot tell streams apart: only there
/// can a browser get a `503` (see `state::Admission`).
pub const OVERLOAD_HEADROOM: usize = 64;

/// The part of [`OVERLOAD_HEADROOM`] that plain requests (`/users`,
/// publishing, the demo page) may use; past it they get `503`. The rest is
/// kept for telling stream clients to come back.
pub const PLAIN_REQUEST_HEADROOM: usize = 32;

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

/// The shortest `--interval` and `--heartbeat`: the socket timeouts that
/// time them are served by the kernel's timer wheel, which fires a few ms
/// late, so below this frames would silently be skipped. Exit 2 below it.
pub const MIN_PERIOD: Duration = Duration::from_millis(10);

/// The most a publisher waits on one subscriber's full socket. What does
/// not fit in that time stays queued for the stream's own thread, which
/// waits up to `--write-timeout` for it. So a publish is never held up by a
/// subscriber that stopped reading for longer than one slice, and only
/// when its socket filled up during that very publish or was last tried
/// 100 ms ago or more (`connection::STUCK_RETRY`).
pub const WRITE_SLICE: Duration = Duration::from_millis(10);

/// Most bytes of pushed events queued for one stream and not yet taken by
/// its client: a stream further behind is ended with `reason=stalled`.
pub const MAX_OUTBOX_BYTES: usize = 1024 * 1024;

// The client side: `sse-server listen` and `sse-server publish`
// (`src/client/`). Crossing a size limit ends the command with exit code 3
// and a line on stderr that names it; the README has the same table.

/// Largest event a client reads: one line, or all the lines of one event so
/// far (its data and its raw text). A stream that sends more without a
/// blank line is dropped: "event larger than the client's limit".
pub const MAX_CLIENT_EVENT_BYTES: usize = 1024 * 1024;

/// Largest response head (status line and headers) a client reads.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;

/// Longest chunk-size line of a chunked body (RFC 9112 §7.1), extensions
/// included, and longest trailer line.
pub const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Most trailer bytes after the last chunk (RFC 9112 §7.1.2).
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Largest reply body `publish` reads and prints.
pub const MAX_REPLY_BODY_BYTES: usize = 64 * 1024;

/// Time a client waits for a TCP connection to be accepted.
pub const CLIENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a client waits for a complete response head, and `publish` for its
/// whole reply, once the request is sent.
pub const CLIENT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reconnection time a client uses until the server sends `retry:`
/// (WHATWG HTML §9.2.2 leaves the initial value to the user agent; ours, as
/// the server's `--retry` default).
pub const CLIENT_DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// Longest wait between reconnections, whatever `retry:` the server sent.
pub const CLIENT_MAX_RETRY: Duration = Duration::from_secs(60);

/// Default `--max-reconnects` of `listen`: reconnections in a row that bring
/// no event, before it gives up.
pub const CLIENT_DEFAULT_MAX_RECONNECTS: u32 = 100;

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

/// Cluster mode: longest a reconnecting stream waits for this instance's
/// reader to catch up with the id its client already saw on another
/// instance (see `Shared::lock_events_caught_up`). Past it the stream
/// starts anyway, and the events up to the client's id that the reader
/// delivers later are not sent to it again (`Connection::skip_through`).
pub const CATCH_UP_WAIT: Duration = Duration::from_millis(500);

/// Cluster mode: `Retry-After` (seconds) of the `503` a publisher gets
/// while Redis is unreachable.
pub const LOG_UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;
