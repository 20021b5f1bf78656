//! The hand-written Redis client against a real `redis-server`: the reply
//! shapes of the commands cluster mode uses, `AUTH` and `SELECT` from the
//! URL. Skipped (loudly) where `redis-server` is not installed, unless
//! `CI=true`.

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use sse_server::config::parse_redis_url;
use sse_server::redis::{Connection, RedisError};
use sse_server::resp::Value;

fn bulk(text: &str) -> Value {
    Value::Bulk(text.as_bytes().to_vec())
}

/// The value after `name` in a flat [name, value, …] reply (XINFO STREAM).
fn field<'a>(reply: &'a Value, name: &str) -> &'a Value {
    let Value::Array(items) = reply else {
        panic!("not an array: {reply:?}")
    };
    let position = items
        .iter()
        .position(|item| item.as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {reply:?}"));
    &items[position + 1]
}

/// XADD answers the new id; XRANGE answers [[id, [field, value, …]], …].
#[test]
fn stream_commands_have_the_reply_shapes_we_parse() {
    let Some(redis) = RedisServer::start("stream_commands_have_the_reply_shapes_we_parse") else {
        return;
    };
    let mut connection = redis.connect();
    assert_eq!(
        connection.command(&["PING"]).expect("ping"),
        Value::Simple("PONG".into())
    );
    let id = connection
        .command(&["XADD", "t:events", "*", "target", "all", "data", "a\nb"])
        .expect("xadd");
    let id = id.as_str().expect("an id").to_string();
    common::event_id(&id); // a Redis stream id: ms-seq
    let range = connection
        .command(&["XRANGE", "t:events", "-", "+"])
        .expect("xrange");
    let expected_entry = Value::Array(vec![
        bulk(&id),
        Value::Array(vec![
            bulk("target"),
            bulk("all"),
            bulk("data"),
            bulk("a\nb"),
        ]),
    ]);
    assert_eq!(range, Value::Array(vec![expected_entry]));
}

/// XREAD BLOCK that times out answers a null array in RESP2.
#[test]
fn xread_block_timeout_is_a_null_array() {
    let Some(redis) = RedisServer::start("xread_block_timeout_is_a_null_array") else {
        return;
    };
    let mut connection = redis.connect();
    let started = Instant::now();
    let reply = connection
        .command_within(
            &["XREAD", "BLOCK", "100", "STREAMS", "t:events", "$"],
            Duration::from_secs(2),
        )
        .expect("xread");
    assert_eq!(reply, Value::NullArray);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

/// Trimming with MAXLEN moves `recorded-first-entry-id` but leaves
/// `max-deleted-entry-id` at 0-0 on Redis 7: why gap detection uses the first.
#[test]
fn trimming_moves_the_first_entry_not_max_deleted() {
    let Some(redis) = RedisServer::start("trimming_moves_the_first_entry_not_max_deleted") else {
        return;
    };
    let mut connection = redis.connect();
    let mut ids = Vec::new();
    for index in 0..5 {
        let id = connection
            .command(&["XADD", "t:events", "*", "data", &index.to_string()])
            .expect("xadd");
        ids.push(id.as_str().expect("id").to_string());
    }
    connection
        .command(&["XTRIM", "t:events", "MAXLEN", "2"])
        .expect("xtrim");
    let info = connection
        .command(&["XINFO", "STREAM", "t:events"])
        .expect("xinfo");
    assert_eq!(field(&info, "recorded-first-entry-id"), &bulk(&ids[3]));
    assert_eq!(field(&info, "max-deleted-entry-id"), &bulk("0-0"));
}

/// A URL with a password sends AUTH; a wrong one is refused without
/// repeating it; a database number sends SELECT.
#[test]
fn auth_and_select_follow_the_url() {
    let Some(redis) = RedisServer::start_with(
        "auth_and_select_follow_the_url",
        &["--requirepass", "s3cret"],
    ) else {
        return;
    };
    let url = |text: &str| parse_redis_url("--redis", text).expect("a valid url");
    let port = redis.port;
    let mut in_db_3 =
        Connection::open(&url(&format!("redis://:s3cret@127.0.0.1:{port}/3"))).expect("auth");
    in_db_3.command(&["SET", "k", "v"]).expect("set");
    let mut in_db_0 =
        Connection::open(&url(&format!("redis://:s3cret@127.0.0.1:{port}"))).expect("auth");
    assert_eq!(
        in_db_0.command(&["GET", "k"]).expect("get"),
        Value::NullBulk
    );
    assert_eq!(in_db_3.command(&["GET", "k"]).expect("get"), bulk("v"));

    let wrong = Connection::open(&url(&format!("redis://:nope@127.0.0.1:{port}")));
    let Err(RedisError::Server(message)) = wrong else {
        panic!("a wrong password must be refused");
    };
    assert!(message.starts_with("WRONGPASS"), "{message}");
    assert!(!message.contains("nope"), "{message}");

    let mut anonymous = Connection::open(&url(&format!("redis://127.0.0.1:{port}"))).expect("tcp");
    let Err(RedisError::Server(message)) = anonymous.command(&["GET", "k"]) else {
        panic!("no password must be refused");
    };
    assert!(message.starts_with("NOAUTH"), "{message}");
}
