//! Cluster mode end to end: a real `redis-server` on a free port and two
//! or three instances of the real binary sharing it. Each test starts its
//! own Redis, so they run in parallel. Skipped (with one loud line) where
//! `redis-server` is not installed, unless `CI=true`.

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::redis::{free_port, RedisServer};
use common::{json_string, Server};
use sse_server::resp::Value;

/// Longest a test waits for the cluster-wide users count to change:
/// presence refreshes every 2 s and a dead instance's set lives 4 s.
const USERS_TIMEOUT: Duration = Duration::from_secs(10);

/// An instance on `redis`, with quick ticks.
fn instance(redis: &RedisServer) -> Server {
    Server::start(&["--redis", &redis.url(), "--interval", "200ms"])
}

/// `POST` an event; returns (status, the id from the JSON reply or "").
fn publish(server: &Server, path: &str, body: &str) -> (u16, String) {
    let (status, _, reply) = server.post(path, body);
    let id = if status == 202 {
        json_string(&reply, "id")
    } else {
        String::new()
    };
    (status, id)
}

/// The stream's entries as (id, [field, value, …]) text.
fn entries(redis: &RedisServer) -> Vec<(String, Vec<String>)> {
    let Value::Array(entries) = redis.command(&["XRANGE", "sse:events", "-", "+"]) else {
        panic!("xrange is an array");
    };
    entries
        .iter()
        .map(|entry| {
            let Value::Array(parts) = entry else {
                panic!("entry is an array")
            };
            let Value::Array(fields) = &parts[1] else {
                panic!("fields are an array")
            };
            let fields = fields
                .iter()
                .map(|field| field.as_str().unwrap_or("?").to_string())
                .collect();
            (parts[0].as_str().unwrap_or("?").to_string(), fields)
        })
        .collect()
}

/// Polls `GET /users` on `server` until `users` is `expected`.
#[track_caller]
fn assert_users_become(server: &Server, expected: u64) {
    assert!(
        server.wait_for_users(expected, USERS_TIMEOUT),
        "users never became {expected}: {:?}",
        server.counts()
    );
}

/// A publish on instance A reaches a subscriber of instance B, with the id
/// Redis gave the entry, and the entry holds the documented fields.
#[test]
fn a_publish_on_one_instance_reaches_a_subscriber_on_another() {
    let Some(redis) =
        RedisServer::start("a_publish_on_one_instance_reaches_a_subscriber_on_another")
    else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let mut bob = b.open_stream("bob");
    bob.next_tick();
    let (status, id) = publish(&a, "/send/bob?event=chat", "hello\nworld");
    assert_eq!(status, 202);
    assert_eq!(
        bob.next_pushed_raw(),
        format!("id: {id}\nevent: chat\ndata: hello\ndata: world\n\n")
    );
    let stored = entries(&redis);
    assert_eq!(
        stored,
        [(
            id.clone(),
            [
                "target",
                "user:bob",
                "event",
                "chat",
                "data",
                "hello\nworld"
            ]
            .map(String::from)
            .to_vec()
        )]
    );
    common::event_id(&id); // a Redis stream id: ms-seq
    let (status, broadcast_id) = publish(&b, "/broadcast", "to all");
    assert_eq!(status, 202);
    assert_eq!(
        bob.next_pushed_raw(),
        format!("id: {broadcast_id}\ndata: to all\n\n")
    );
    a.assert_no_panic();
    b.assert_no_panic();
}

/// A client that reconnects to the other instance with Last-Event-ID gets
/// exactly what it missed, in order, from XRANGE.
#[test]
fn replay_after_reconnecting_to_another_instance() {
    let Some(redis) = RedisServer::start("replay_after_reconnecting_to_another_instance") else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let mut carol = a.open_stream("carol");
    carol.next_tick();
    let (_, first) = publish(&b, "/send/carol", "one");
    assert_eq!(
        carol.next_pushed_raw(),
        format!("id: {first}\ndata: one\n\n")
    );
    drop(carol);
    let (_, second) = publish(&a, "/send/carol", "two");
    let (_, _other) = publish(&a, "/send/dave", "not for carol");
    let (_, third) = publish(&b, "/broadcast?event=news", "three");
    let mut again = b.open_stream_with("/sse/carol", &format!("Last-Event-ID: {first}\r\n"));
    assert_eq!(
        again.next_pushed_raw(),
        format!("id: {second}\ndata: two\n\n")
    );
    assert_eq!(
        again.next_pushed_raw(),
        format!("id: {third}\nevent: news\ndata: three\n\n")
    );
    // Live again: a new event comes after the replay, once.
    let (_, fourth) = publish(&a, "/send/carol", "four");
    assert_eq!(
        again.next_pushed_raw(),
        format!("id: {fourth}\ndata: four\n\n")
    );
}

/// When the entries a client needs were trimmed, it gets the `gap` event
/// (found with XINFO STREAM's recorded-first-entry-id), then what is left.
#[test]
fn gap_after_trimming() {
    let Some(redis) = RedisServer::start("gap_after_trimming") else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let mut watching_b = b.open_stream("watcher");
    watching_b.next_tick();
    let (_, first) = publish(&a, "/broadcast", "one");
    let (_, _second) = publish(&a, "/broadcast", "two");
    let (_, third) = publish(&a, "/broadcast", "three");
    // B has delivered all three before the trim (a client never waits for
    // B's reader in this test).
    for _ in 0..3 {
        watching_b.next_pushed_raw();
    }
    // Exact trimming (no `~`), down to the newest entry.
    redis.command(&["XTRIM", "sse:events", "MAXLEN", "1"]);
    let mut late = b.open_stream_with("/sse/erin", &format!("Last-Event-ID: {first}\r\n"));
    let gap = late.next_pushed_raw();
    assert!(
        gap.contains("event: gap\n") && gap.contains(&format!("\"after\":\"{first}\"")),
        "{gap}"
    );
    assert_eq!(
        late.next_pushed_raw(),
        format!("id: {third}\ndata: three\n\n")
    );
    // A client whose id is still in the stream gets no gap.
    let mut current = a.open_stream_with("/sse/erin", &format!("Last-Event-ID: {third}\r\n"));
    let (_, fourth) = publish(&b, "/broadcast", "four");
    assert_eq!(
        current.next_pushed_raw(),
        format!("id: {fourth}\ndata: four\n\n")
    );
}

/// `users` counts users on every instance, a user with a tab on each
/// counts once, and an instance killed with -9 drops out of the count.
#[test]
fn users_are_counted_cluster_wide_and_a_dead_instance_drops_out() {
    let Some(redis) =
        RedisServer::start("users_are_counted_cluster_wide_and_a_dead_instance_drops_out")
    else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let _alice_on_a = a.open_stream("alice");
    let _alice_on_b = b.open_stream("alice");
    let mut bob_on_b = b.open_stream("bob");
    assert_users_become(&a, 2);
    assert_users_become(&b, 2);
    // The tick frames carry the same count.
    let deadline = Instant::now() + USERS_TIMEOUT;
    while !bob_on_b.next_tick().contains("\"users\":2,") {
        assert!(Instant::now() < deadline, "ticks never said users 2");
    }
    let status = Command::new("kill")
        .args(["-9", &b.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert_users_become(&a, 1);
}

/// Redis killed with -9 and restarted empty: publishes in between get 503
/// with Retry-After and a JSON error, streams keep ticking, the instances
/// log one `redis down` and one `redis up`, and every event that got a 202
/// reaches the subscriber. A client replaying from before the restart gets
/// a gap.
#[test]
fn redis_killed_and_restarted_loses_no_acknowledged_event() {
    let Some(mut redis) =
        RedisServer::start("redis_killed_and_restarted_loses_no_acknowledged_event")
    else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let mut frank = b.open_stream("frank");
    frank.next_tick();
    let (status, before) = publish(&a, "/send/frank", "before");
    assert_eq!(status, 202);
    assert_eq!(
        frank.next_pushed_raw(),
        format!("id: {before}\ndata: before\n\n")
    );

    redis.kill();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while refused < 3 && Instant::now() < deadline {
        let (status, head, body) = a.post("/send/frank", "while down");
        if status == 503 {
            assert!(head.contains("Retry-After: "), "{head}");
            assert!(body.contains("\"error\""), "{body}");
            refused += 1;
        } else {
            assert_eq!(status, 202, "{body}");
            acknowledged.push(json_string(&body, "id"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(refused, 3, "publishes while Redis is down get 503");
    // Streams keep ticking without Redis.
    frank.next_tick();
    frank.next_tick();

    redis.restart();
    assert!(a
        .wait_for_log("redis up", Duration::from_secs(10))
        .is_some());
    assert!(b
        .wait_for_log("redis up", Duration::from_secs(10))
        .is_some());
    for server in [&a, &b] {
        let changes: Vec<String> = server
            .log_lines()
            .into_iter()
            .filter(|line| line.starts_with("redis down ") || line.starts_with("redis up "))
            .collect();
        assert_eq!(changes.len(), 2, "one down, one up: {changes:?}");
        assert!(
            changes[0].starts_with("redis down address=127.0.0.1:"),
            "{changes:?}"
        );
    }
    let mut after = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while after.is_empty() {
        assert!(Instant::now() < deadline, "publishes never recovered");
        let (status, id) = publish(&a, "/send/frank", "after");
        if status == 202 {
            after = id;
        } else {
            thread::sleep(Duration::from_millis(100));
        }
    }
    for id in &acknowledged {
        assert_eq!(
            frank.next_pushed_raw(),
            format!("id: {id}\ndata: while down\n\n")
        );
    }
    assert_eq!(
        frank.next_pushed_raw(),
        format!("id: {after}\ndata: after\n\n")
    );

    // Replaying from before the restart: the new log does not have it.
    let mut replayed = a.open_stream_with("/sse/frank", &format!("Last-Event-ID: {before}\r\n"));
    let gap = replayed.next_pushed_raw();
    assert!(gap.contains("event: gap\n"), "{gap}");
    assert_eq!(
        replayed.next_pushed_raw(),
        format!("id: {after}\ndata: after\n\n")
    );
    a.assert_no_panic();
    b.assert_no_panic();
}

/// Any program can publish: an entry added with `redis-cli XADD` reaches
/// every subscriber; a malformed one is logged and skipped.
#[test]
fn entries_from_outside_are_delivered_and_malformed_ones_skipped() {
    let Some(redis) =
        RedisServer::start("entries_from_outside_are_delivered_and_malformed_ones_skipped")
    else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let mut on_a = a.open_stream("gina");
    let mut on_b = b.open_stream("henry");
    on_a.next_tick();
    on_b.next_tick();
    let add = |fields: &[&str]| -> String {
        let mut args = vec!["-p".to_string(), redis.port.to_string()];
        args.extend(["XADD", "sse:events", "*"].map(String::from));
        args.extend(fields.iter().map(|field| field.to_string()));
        let output = Command::new("redis-cli")
            .args(&args)
            .stderr(Stdio::inherit())
            .output();
        match output {
            Ok(output) if output.status.success() => {
                String::from_utf8_lossy(&output.stdout).trim().to_string()
            }
            // No redis-cli (redis-tools): the same command through our client.
            _ => {
                let mut command = vec!["XADD", "sse:events", "*"];
                command.extend(fields);
                redis.command(&command).as_str().expect("an id").to_string()
            }
        }
    };
    let bad_target = add(&["target", "nobody", "data", "x"]);
    let no_data = add(&["target", "all", "event", "message"]);
    let bad_event = add(&["target", "all", "event", "a b", "data", "x"]);
    let good = add(&["target", "all", "event", "message", "data", "hello"]);
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(
            client.next_pushed_raw(),
            format!("id: {good}\ndata: hello\n\n")
        );
    }
    for server in [&a, &b] {
        for (id, reason) in [
            (&bad_target, "bad target"),
            (&no_data, "no data field"),
            (&bad_event, "bad event name"),
        ] {
            let line = format!("redis skip id={id} reason=\"{reason}\"");
            assert!(
                server.wait_for_log(&line, Duration::from_secs(2)).is_some(),
                "{line}"
            );
        }
        server.assert_no_panic();
    }
}

/// Redis unreachable at start: the server retries for about 10 s, then
/// exits 1 with one line naming the address, and never says "listening".
#[test]
fn redis_unreachable_at_start_exits_1_naming_the_address() {
    let port = free_port();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sse-server"))
        .args([
            "--port",
            "0",
            "--redis",
            &format!("redis://:s3cret@127.0.0.1:{port}"),
        ])
        .env_remove("SSE_REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run sse-server");
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(15),
        "{elapsed:?}"
    );
}

/// A bad `--redis` URL exits 2 with one line that says why.
#[test]
fn a_bad_redis_url_exits_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_sse-server"))
        .args(["--redis", "redis://:pw@host:99999"])
        .output()
        .expect("run sse-server");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "sse-server: --redis: port is not a number from 1 to 65535"
    );
}

/// A graceful shutdown (SIGTERM, feature `ctrlc`) removes the instance's
/// presence at once, so its users leave the count without waiting for the
/// TTL.
#[cfg(all(unix, feature = "ctrlc"))]
#[test]
fn a_graceful_shutdown_removes_the_instance_presence() {
    let Some(redis) = RedisServer::start("a_graceful_shutdown_removes_the_instance_presence")
    else {
        return;
    };
    let (a, mut b) = (instance(&redis), instance(&redis));
    let _ivy = b.open_stream("ivy");
    assert_users_become(&a, 1);
    let line = b
        .wait_for_log("cluster redis=", Duration::from_secs(1))
        .expect("cluster line");
    let instance = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("instance="))
        .expect("instance=")
        .to_string();
    let set = format!("sse:presence:{instance}");
    assert_eq!(redis.command(&["EXISTS", &set]), Value::Integer(1));
    b.terminate();
    assert_eq!(b.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(redis.command(&["EXISTS", &set]), Value::Integer(0));
    let gone = redis.command(&["HEXISTS", "sse:instances", &instance]);
    assert_eq!(gone, Value::Integer(0));
    assert_users_become(&a, 0);
}
