//! Users across instances: each instance keeps the set of its users in
//! Redis with a TTL, and counts the union of every instance's set.
//!
//! ```text
//! {prefix}:presence:{instance}      SET of userIds, PEXPIRE PRESENCE_TTL, rewritten every refresh
//! {prefix}:instances                HASH instance → when its set expires (ms), to find the sets
//! {prefix}:presence-count:{instance}  scratch key for SUNIONSTORE, deleted at once
//! ```
//!
//! Spec: `SADD`, `PEXPIRE`, `HSET`, `HGETALL`, `SUNIONSTORE`, `MULTI`/`EXEC`
//! (<https://redis.io/docs/latest/commands/sunionstore/> and so on).
//!
//! A user with one tab on each instance is in two sets and counted once.
//! An instance that dies (`kill -9`) stops refreshing; its set expires
//! after [`PRESENCE_TTL`] and drops out of the next count, so within
//! `PRESENCE_TTL + PRESENCE_REFRESH` = 3 refresh periods, 6 s.
//!
//! The count runs on its own thread, every [`PRESENCE_REFRESH`] and soon
//! after local users come or go (at most every [`PRESENCE_MIN_GAP`]); ticks
//! read the last count from an atomic, never Redis.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::RedisUrl;
use crate::redis::{Connection, Pool, RedisError};
use crate::registry::now_ms;
use crate::resp::Value;
use crate::state::Shared;

use super::Health;

/// Time between two refreshes of this instance's set and of the count.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(2);

/// Life of an instance's set after its last refresh: two refresh periods,
/// so one late refresh does not make its users vanish.
pub const PRESENCE_TTL: Duration = Duration::from_secs(4);

/// Shortest time between two refreshes, however often users come and go.
pub const PRESENCE_MIN_GAP: Duration = Duration::from_millis(200);

/// Instances whose set expired this long ago are removed from the hash.
pub const FORGET_INSTANCE_AFTER: Duration = Duration::from_secs(3600);

/// `usize::MAX` in [`Presence::count`] means "not counted yet".
const NOT_COUNTED: usize = usize::MAX;

/// This instance's part in the cluster-wide users count.
#[derive(Debug)]
pub struct Presence {
    instance: String,
    /// `{prefix}:presence:`, which every instance's set key starts with.
    sets_prefix: String,
    set_key: String,
    instances_key: String,
    scratch_key: String,
    count: AtomicUsize,
    /// Set when local users changed since the last refresh.
    changed: Mutex<bool>,
    wake: Condvar,
}

impl Presence {
    pub fn new(prefix: &str) -> Presence {
        // Unique enough on one machine and across machines: the process id
        // and the start time in ms.
        let instance = format!("{}-{}", std::process::id(), now_ms());
        let sets_prefix = format!("{prefix}:presence:");
        Presence {
            set_key: format!("{sets_prefix}{instance}"),
            sets_prefix,
            instances_key: format!("{prefix}:instances"),
            scratch_key: format!("{prefix}:presence-count:{instance}"),
            instance,
            count: AtomicUsize::new(NOT_COUNTED),
            changed: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The last cluster-wide count, `None` before the first.
    pub fn count(&self) -> Option<usize> {
        let count = self.count.load(Ordering::Relaxed);
        (count != NOT_COUNTED).then_some(count)
    }

    /// Local users came or went: refresh soon. Never blocks for long.
    pub fn changed(&self) {
        *self.changed.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_one();
    }

    /// The presence thread: refresh, wait, repeat, until shutdown.
    pub fn run(&self, url: &RedisUrl, health: &Health, shared: &Shared) {
        // A pool of one: a connection that died with Redis is replaced at
        // once, and only when a new one fails too is Redis down.
        let connection = Pool::new(url.clone());
        while !shared.is_shutting_down() {
            let started = Instant::now();
            match connection.with_connection(|open| self.refresh(open, shared)) {
                Ok(count) => {
                    self.count.store(count, Ordering::Relaxed);
                    health.up();
                }
                // Keep the last count: streams go on ticking with it.
                Err(error) => health.down(&error),
            }
            self.wait_for_next(started);
        }
    }

    /// Deletes this instance's set and its entry in the instances hash.
    pub fn leave(&self, connection: &mut Connection) -> Result<(), RedisError> {
        connection.command(&["DEL", &self.set_key])?;
        connection.command(&["HDEL", &self.instances_key, &self.instance])?;
        Ok(())
    }

    /// Sleeps at least [`PRESENCE_MIN_GAP`] and at most [`PRESENCE_REFRESH`]
    /// after `started`, waking early when local users changed.
    fn wait_for_next(&self, started: Instant) {
        std::thread::sleep(PRESENCE_MIN_GAP.saturating_sub(started.elapsed()));
        let deadline = started + PRESENCE_REFRESH;
        let mut changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner);
        while !*changed {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            changed = self
                .wake
                .wait_timeout(changed, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *changed = false;
    }

    /// Rewrites this instance's set, then counts the union of all sets.
    fn refresh(&self, connection: &mut Connection, shared: &Shared) -> Result<usize, RedisError> {
        let users: Vec<String> = shared
            .registry
            .summary()
            .into_iter()
            .map(|user| user.user_id)
            .collect();
        let now = now_ms();
        let expires = now + PRESENCE_TTL.as_millis() as u64;
        // MULTI/EXEC: other instances never see our set half rewritten.
        connection.command(&["MULTI"])?;
        connection.command(&["DEL", &self.set_key])?;
        if !users.is_empty() {
            let mut sadd: Vec<&str> = Vec::with_capacity(users.len() + 2);
            sadd.extend(["SADD", &self.set_key]);
            sadd.extend(users.iter().map(String::as_str));
            connection.command(&sadd)?;
            let ttl = PRESENCE_TTL.as_millis().to_string();
            connection.command(&["PEXPIRE", &self.set_key, &ttl])?;
        }
        let expires_text = expires.to_string();
        connection.command(&["HSET", &self.instances_key, &self.instance, &expires_text])?;
        connection.command(&["EXEC"])?;
        let instances = self.live_instances(connection, now)?;
        let mut union: Vec<String> = vec!["SUNIONSTORE".into(), self.scratch_key.clone()];
        union.extend(instances);
        let count = match connection.command(&union)? {
            Value::Integer(count) => usize::try_from(count).unwrap_or(0),
            _ => {
                return Err(RedisError::UnexpectedReply(
                    "sunionstore did not answer a count",
                ))
            }
        };
        connection.command(&["DEL", &self.scratch_key])?;
        Ok(count)
    }

    /// The set keys of every instance in the hash (ours included), after
    /// removing instances gone for [`FORGET_INSTANCE_AFTER`]. Sets that
    /// expired are simply missing, and `SUNIONSTORE` counts them as empty.
    fn live_instances(
        &self,
        connection: &mut Connection,
        now: u64,
    ) -> Result<Vec<String>, RedisError> {
        let Value::Array(pairs) = connection.command(&["HGETALL", &self.instances_key])? else {
            return Err(RedisError::UnexpectedReply(
                "hgetall did not answer an array",
            ));
        };
        let forget_before = now.saturating_sub(FORGET_INSTANCE_AFTER.as_millis() as u64);
        let mut keys = Vec::new();
        for pair in pairs.chunks_exact(2) {
            let (Some(instance), Some(expires)) = (pair[0].as_str(), pair[1].as_str()) else {
                continue;
            };
            match expires.parse::<u64>() {
                Ok(expires) if expires < forget_before => {
                    connection.command(&["HDEL", &self.instances_key, instance])?;
                }
                _ => keys.push(format!("{}{instance}", self.sets_prefix)),
            }
        }
        if keys.is_empty() {
            keys.push(self.set_key.clone());
        }
        Ok(keys)
    }
}
