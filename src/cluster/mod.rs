//! Cluster mode: several instances share one event log, a Redis stream.
//!
//! ```text
//!  POST /send, /broadcast ─ XADD {prefix}:events MAXLEN ~ {history} * target … event … data …
//!        (any instance)        │ 202 only once Redis answered with the entry's id
//!                              ▼
//!                     ┌─ {prefix}:events ─┐   one Redis stream: the log, ids chosen by Redis
//!                     └───────────────────┘
//!        XREAD BLOCK from the last id │ (one reader thread per instance)
//!                                     ▼
//!                 publish::deliver ─▶ local streams' outboxes (as an in-process publish would)
//!
//!  reconnect with Last-Event-ID ─ XRANGE (id … newest delivered], gap from XINFO STREAM
//!  users ─ presence.rs: each instance's user set with a TTL; the count is their union
//! ```
//!
//! Spec: Redis Streams, <https://redis.io/docs/latest/develop/data-types/streams/>,
//! and the `XADD`, `XREAD`, `XRANGE` and `XINFO STREAM` command pages
//! (<https://redis.io/docs/latest/commands/xadd/> and so on). The stream's
//! schema and the reply shapes are in [`schema`].
//!
//! Redis work per event is one `XADD` plus one `XREAD` per instance, never
//! one per subscriber. The core talks to this module only through
//! `event_log::ExternalLog`; only `main` knows it exists.
//!
//! When Redis goes away: publishers get `503` (see `publish.rs`), streams
//! keep ticking with the last users count, and the reader reconnects with a
//! capped backoff and resumes after the last id it delivered, so every
//! event Redis acknowledged and still holds reaches every instance. One
//! `redis down` line when it goes, one `redis up` line when it is back.
//!
//! Simplification: with no persistence, an event Redis acknowledged in the
//! last moment before it died may not have been read by every instance yet,
//! and is lost with Redis. Running Redis with `appendonly yes` and
//! `appendfsync always` closes that window; a production system might also
//! have each instance deliver its own events at once.

pub mod presence;
pub mod schema;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::RedisUrl;
use crate::event::{EventId, LastSeen, StoredEvent, Target};
use crate::event_log::{ExternalLog, Unavailable};
use crate::history::{EventRing, Gap, Replay};
use crate::limits::MAX_HISTORY_BYTES;
use crate::log;
use crate::publish;
use crate::redis::{Connection, Pool, RedisError, COMMAND_TIMEOUT};
use crate::state::Shared;

use self::presence::Presence;
use self::schema::{Skipped, StreamInfo};

/// How long a start waits for Redis before giving up (exit 1).
pub const START_RETRY_LIMIT: Duration = Duration::from_secs(10);

/// How long one `XREAD BLOCK` waits for new entries before asking again.
/// Short enough that a shutdown is noticed soon.
pub const READ_BLOCK: Duration = Duration::from_millis(1000);

/// Most entries one `XREAD` returns; the rest come with the next.
pub const READ_COUNT: usize = 500;

/// Most entries one `XRANGE` page of a replay returns.
pub const REPLAY_PAGE_ENTRIES: usize = 200;

/// Most `XRANGE` pages one replay reads. With [`REPLAY_PAGE_ENTRIES`] that
/// is 20,000 entries; the stream is trimmed to about `--history` anyway. A
/// longer one is answered with a `gap` up to the newest id and no events.
pub const MAX_REPLAY_PAGES: usize = 100;

/// First pause of the reader after Redis failed; it doubles up to
/// [`RECONNECT_BACKOFF_MAX`].
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest pause of the reader between reconnection attempts.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The shared log, as one instance sees it.
#[derive(Debug)]
pub struct Cluster {
    /// Where Redis is; `Display` hides the password.
    url: RedisUrl,
    /// `{prefix}:events`.
    key: String,
    /// `--history`: the stream is trimmed to about this many entries.
    history: usize,
    /// Connections for publishers and replays.
    pool: Pool,
    health: Health,
    presence: Presence,
}

impl Cluster {
    /// Connects to Redis, retrying for up to [`START_RETRY_LIMIT`], and
    /// reads where the stream ends now: this instance delivers what comes
    /// after it. The error is one line naming the address (never the
    /// password).
    pub fn connect(
        url: RedisUrl,
        prefix: &str,
        history: usize,
    ) -> Result<(Arc<Cluster>, EventId), String> {
        let key = schema::events_key(prefix);
        let deadline = Instant::now() + START_RETRY_LIMIT;
        let mut backoff = RECONNECT_BACKOFF_MIN;
        let info = loop {
            let attempt = Connection::open(&url)
                .and_then(|mut connection| stream_info(&mut connection, &key));
            match attempt {
                Ok(info) => break info,
                // Redis may still be starting (scripts start both at once).
                Err(_) if Instant::now() + backoff < deadline => {
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                }
                Err(error) => {
                    return Err(format!(
                        "redis at {} unreachable for {}s: {error}",
                        url.address(),
                        START_RETRY_LIMIT.as_secs()
                    ))
                }
            }
        };
        let cluster = Cluster {
            pool: Pool::new(url.clone()),
            presence: Presence::new(prefix),
            health: Health::new(url.address()),
            url,
            key,
            history,
        };
        Ok((Arc::new(cluster), info.last_generated))
    }

    /// Starts the reader and presence threads, which run until shutdown.
    pub fn start(self: &Arc<Self>, shared: &Arc<Shared>, start: EventId) -> std::io::Result<()> {
        log!(
            "cluster redis={} key={} instance={} from={start}",
            self.url,
            self.key,
            self.presence.instance()
        );
        let (cluster, state) = (Arc::clone(self), Arc::clone(shared));
        thread::Builder::new()
            .name("redis-reader".into())
            .spawn(move || cluster.read_forever(&state, start))?;
        let (cluster, state) = (Arc::clone(self), Arc::clone(shared));
        thread::Builder::new()
            .name("redis-presence".into())
            .spawn(move || cluster.presence.run(&cluster.url, &cluster.health, &state))?;
        Ok(())
    }

    /// Removes this instance's presence (after a graceful shutdown), so its
    /// users leave the count now rather than when their set expires.
    pub fn leave(&self) {
        let left = self
            .pool
            .with_connection(|connection| self.presence.leave(connection));
        if let Err(error) = left {
            log!(
                "presence not removed error={}",
                crate::json::Quoted(&error.to_string())
            );
        }
    }

    /// The reader: `XREAD BLOCK` after the last id delivered, each entry to
    /// the local streams; on failure, reconnect with a capped backoff and
    /// resume after the same id. Ends at shutdown.
    fn read_forever(&self, shared: &Shared, mut last: EventId) {
        // A pool of one: a connection that died with Redis is replaced at
        // once, and only when a new one fails too is Redis down.
        let connection = Pool::new(self.url.clone());
        let mut backoff = RECONNECT_BACKOFF_MIN;
        while !shared.is_shutting_down() {
            match connection.with_connection(|open| self.read_once(open, shared, &mut last)) {
                Ok(()) => {
                    self.health.up();
                    backoff = RECONNECT_BACKOFF_MIN;
                }
                Err(error) => {
                    self.health.down(&error);
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                }
            }
        }
    }

    /// One `XREAD` and the delivery of what it returned.
    fn read_once(
        &self,
        connection: &mut Connection,
        shared: &Shared,
        last: &mut EventId,
    ) -> Result<(), RedisError> {
        let (block_ms, count, after) = (
            READ_BLOCK.as_millis().to_string(),
            READ_COUNT.to_string(),
            last.to_string(),
        );
        let command = [
            "XREAD", "COUNT", &count, "BLOCK", &block_ms, "STREAMS", &self.key, &after,
        ];
        let reply = connection.command_within(&command, READ_BLOCK + COMMAND_TIMEOUT)?;
        let entries = schema::parse_read(&reply)?;
        for entry in entries {
            match entry {
                Ok(entry) => {
                    *last = entry.id;
                    publish::deliver(shared, &entry.into_stored());
                }
                Err(skipped) => {
                    log_skipped(&skipped);
                    if let Some(id) = skipped.id {
                        *last = (*last).max(id);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the replay's entries page by page, then `XINFO STREAM`
    /// (after, so a trim during the reads shows as a gap, never as a
    /// silent hole). What it keeps is bounded like in-process history: at
    /// most [`MAX_HISTORY_BYTES`] of encoded events, the newest ones; older
    /// ones dropped for the budget, or everything when the stream is longer
    /// than [`MAX_REPLAY_PAGES`] pages, are reported as lost.
    fn read_replay(
        &self,
        connection: &mut Connection,
        user_id: &str,
        after: Option<EventId>,
        newest: EventId,
    ) -> Result<ReplayRead, RedisError> {
        let mut kept = EventRing::new(usize::MAX, MAX_HISTORY_BYTES);
        let mut first_read = None;
        let mut cursor = after;
        let (end, page) = (newest.to_string(), REPLAY_PAGE_ENTRIES.to_string());
        let mut complete = false;
        for _ in 0..MAX_REPLAY_PAGES {
            // `(id` is an exclusive start (XRANGE, Redis 6.2+); `-` the very first.
            let start = cursor.map_or("-".to_string(), |id| format!("({id}"));
            let reply = connection.command(&["XRANGE", &self.key, &start, &end, "COUNT", &page])?;
            let entries = schema::parse_range(&reply)?;
            let full_page = entries.len() == REPLAY_PAGE_ENTRIES;
            for entry in entries {
                let id = match &entry {
                    Ok(entry) => Some(entry.id),
                    Err(skipped) => skipped.id,
                };
                first_read = first_read.or(id);
                cursor = id.or(cursor);
                if let Ok(entry) = entry {
                    if entry.target.includes(user_id) {
                        kept.keep(entry.into_stored());
                    }
                }
            }
            if !full_page {
                complete = true;
                break;
            }
        }
        let info = stream_info(connection, &self.key)?;
        // Longer than we read: what we did not read is lost to this client,
        // and what we read is older than it, so it is dropped too.
        let (dropped_up_to, events) = match complete {
            true => (kept.evicted_up_to(), kept.into_vec()),
            false => (Some(newest), Vec::new()),
        };
        Ok(ReplayRead {
            events,
            first_read,
            dropped_up_to,
            info,
        })
    }
}

/// What a replay read from Redis.
#[derive(Debug)]
struct ReplayRead {
    /// The events for the user, oldest first, within the byte budget.
    events: Vec<Arc<StoredEvent>>,
    /// The first entry read at all (for the user or not).
    first_read: Option<EventId>,
    /// The newest event left out for the budget or the page cap.
    dropped_up_to: Option<EventId>,
    info: StreamInfo,
}

impl ExternalLog for Cluster {
    fn append(
        &self,
        target: &Target,
        event: Option<&str>,
        data: &str,
    ) -> Result<EventId, Unavailable> {
        if !self.health.is_up() {
            return Err(Unavailable {
                reason: "redis down".to_string(),
            });
        }
        let command = schema::xadd_command(&self.key, self.history, target, event, data);
        let result = self.pool.with_connection(|connection| {
            let reply = connection.command(&command)?;
            reply
                .as_str()
                .and_then(EventId::parse)
                .ok_or(RedisError::UnexpectedReply("xadd did not answer an id"))
        });
        result.map_err(|error| {
            if !error.keeps_connection() {
                self.health.down(&error);
                self.pool.clear();
            }
            Unavailable {
                reason: error.to_string(),
            }
        })
    }

    fn replay(&self, user_id: &str, last_seen: LastSeen, newest: EventId) -> Replay {
        let after = match last_seen {
            LastSeen::Id(id) => Some(id),
            LastSeen::Unreadable => None,
        };
        if after.is_some_and(|after| after >= newest) {
            return Replay::default();
        }
        let result = self
            .pool
            .with_connection(|connection| self.read_replay(connection, user_id, after, newest));
        match result {
            Ok(read) => {
                // The gap reaches up to what Redis no longer had, or what
                // the replay left out, whichever is newer.
                let to = schema::replay_gap(after, read.info, read.first_read, newest)
                    .map(|gap| gap.to)
                    .max(read.dropped_up_to);
                Replay {
                    gap: to.map(|to| Gap { after, to }),
                    events: read.events,
                }
            }
            // Whatever we could not read is reported as lost: never a hang,
            // never a silent skip.
            Err(error) => {
                log!(
                    "replay failed user={} error={}",
                    crate::json::Quoted(user_id),
                    crate::json::Quoted(&error.to_string())
                );
                if !error.keeps_connection() {
                    self.health.down(&error);
                }
                Replay {
                    gap: Some(Gap { after, to: newest }),
                    events: Vec::new(),
                }
            }
        }
    }

    fn user_count(&self) -> Option<usize> {
        self.presence.count()
    }

    fn users_changed(&self) {
        self.presence.changed();
    }
}

/// `XINFO STREAM`; a stream that does not exist (yet, or after Redis
/// restarted empty) is empty.
fn stream_info(connection: &mut Connection, key: &str) -> Result<StreamInfo, RedisError> {
    match connection.command(&["XINFO", "STREAM", key]) {
        Ok(reply) => Ok(schema::parse_stream_info(&reply)?),
        Err(RedisError::Server(message)) if message.contains("no such key") => {
            Ok(StreamInfo::EMPTY)
        }
        Err(error) => Err(error),
    }
}

/// `redis skip id=… reason=…`: an entry that is not an event.
fn log_skipped(skipped: &Skipped) {
    let id = skipped
        .id
        .map_or_else(|| "?".to_string(), |id| id.to_string());
    log!(
        "redis skip id={id} reason={}",
        crate::json::Quoted(skipped.error.reason())
    );
}

/// Whether Redis answers, with one log line per change (not per retry).
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    /// `host:port`, for the log lines.
    address: String,
}

impl Health {
    fn new(address: String) -> Health {
        Health {
            up: AtomicBool::new(true),
            address,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Something failed talking to Redis.
    pub fn down(&self, error: &RedisError) {
        if self.up.swap(false, Ordering::AcqRel) {
            log!(
                "redis down address={} error={}",
                self.address,
                crate::json::Quoted(&error.to_string())
            );
        }
    }

    /// Talking to Redis worked.
    pub fn up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            log!("redis up address={}", self.address);
        }
    }
}
