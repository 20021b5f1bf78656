//! Command-line flags, parsed by hand, and their defaults.
//!
//! Every flag takes `--name value` or `--name=value`. A bad flag or value is
//! a [`ConfigError`]; `main.rs` prints it on one line and exits with 2.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::limits::{
    DEFAULT_HEARTBEAT, DEFAULT_HISTORY, DEFAULT_INTERVAL, DEFAULT_RETRY, DEFAULT_WRITE_TIMEOUT,
    MAX_SUBSCRIBE_SECRET_BYTES, MIN_PERIOD, MIN_SUBSCRIBE_SECRET_BYTES,
};
use crate::route::percent_decode;
use crate::token::Secret;

/// The default port, as in the original example.
pub const DEFAULT_PORT: u16 = 3000;

/// Redis's own default port, used when `--redis` names none.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

/// Default `--redis-prefix`: every key the server uses starts with it.
pub const DEFAULT_REDIS_PREFIX: &str = "sse";

/// Longest `--redis-prefix`, in bytes.
pub const MAX_REDIS_PREFIX_BYTES: usize = 64;

/// Everything the server can be told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on (`--bind`).
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one (`--port`, or `$PORT`).
    pub port: u16,
    /// Time between timer frames; `None` turns them off (`--interval 0`).
    pub interval: Option<Duration>,
    /// Idle time before a `: heartbeat` comment; `None` turns it off.
    pub heartbeat: Option<Duration>,
    /// Reconnection time sent as `retry:` (`--retry`).
    pub retry: Duration,
    /// Pushed events kept for replay (`--history`).
    pub history: usize,
    /// Most concurrent streams; `None` means "from the open-file limit".
    pub max_clients: Option<usize>,
    /// Longest a write to one client may block (`--write-timeout`).
    pub write_timeout: Duration,
    /// Bearer token publishers must send (`--publish-token` or
    /// `$SSE_PUBLISH_TOKEN`); without one, only loopback peers may publish.
    pub publish_token: Option<String>,
    /// Value of `Access-Control-Allow-Origin` (`--allow-origin`).
    pub allow_origin: Option<String>,
    /// Key that signs subscriber tokens (`--subscribe-secret-file` or
    /// `$SSE_SUBSCRIBE_SECRET`); with one, `GET /sse/{user}` needs a token.
    pub subscribe_secret: Option<Secret>,
    /// Log every tick too (`--verbose`).
    pub verbose: bool,
    /// Cluster mode: the Redis server holding the shared event log
    /// (`--redis` or `$SSE_REDIS_URL`). `None` keeps everything in process.
    pub redis: Option<RedisUrl>,
    /// First part of every Redis key (`--redis-prefix`), so several
    /// deployments can share one Redis.
    pub redis_prefix: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            interval: Some(DEFAULT_INTERVAL),
            heartbeat: Some(DEFAULT_HEARTBEAT),
            retry: DEFAULT_RETRY,
            history: DEFAULT_HISTORY,
            max_clients: None,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            publish_token: None,
            allow_origin: None,
            subscribe_secret: None,
            verbose: false,
            redis: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_string(),
        }
    }
}

/// What the command line asks for.
// Made once at start and moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    Help,
    Version,
}

/// A command line we cannot run; `Display` gives the one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The `--help` text, with the defaults.
pub const USAGE: &str = "\
sse-server: a Server-Sent Events server on the Rust standard library

usage: sse-server [options]
       sse-server listen URL [options]           read an event stream (sse-server listen --help)
       sse-server publish URL [options] DATA|-   send one event (sse-server publish --help)

  --bind ADDR            address to listen on (default 127.0.0.1; ::1 for IPv6)
  --port PORT            port to listen on, 0 for a free one (default 3000, or $PORT)
  --interval DUR         time between timer frames, 0 for none, at least 10ms (default 3s)
  --heartbeat DUR        comment after this much silence, 0 for none, at least 10ms (default 15s)
  --retry DUR            reconnection time sent as retry: (default 3s, plus up to 1s jitter)
  --history N            pushed events kept for Last-Event-ID replay (default 1000)
  --max-clients N        most concurrent streams (default: open-file limit minus 64)
  --write-timeout DUR    drop a client that cannot take a frame in this time (default 5s)
  --publish-token TOKEN  require `Authorization: Bearer TOKEN` to publish
                         (default: $SSE_PUBLISH_TOKEN; without a token only loopback may publish)
  --allow-origin ORIGIN  send Access-Control-Allow-Origin: ORIGIN on /sse, /users, /metrics
  --subscribe-secret-file PATH
                         sign subscriber tokens with this file's bytes (at least 32); then
                         GET /sse/USER needs ?token= (default: $SSE_SUBSCRIBE_SECRET)
  --redis URL            cluster mode: share events through Redis at
                         redis://[[user]:password@]host[:port][/db] (default: $SSE_REDIS_URL)
  --redis-prefix P       first part of every Redis key (default sse)
  --verbose              log every tick too
  --help                 print this help
  --version              print the version

DUR is a number with a unit: 500ms, 3s, 1m.

usage: sse-server token USER [--ttl DUR] [--subscribe-secret-file PATH]
  prints a subscriber token for USER, valid for --ttl (default 1h, at most 24h)
";

/// Parses the arguments after the program name. `env` looks up environment
/// variables (`PORT`, `SSE_PUBLISH_TOKEN`), so tests can pass their own.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, ConfigError> {
    let mut config = Config::default();
    if let Some(port) = env("PORT") {
        config.port = parse_number("$PORT", &port)?;
    }
    config.publish_token = env("SSE_PUBLISH_TOKEN").filter(|token| !token.is_empty());
    if let Some(url) = env("SSE_REDIS_URL").filter(|url| !url.is_empty()) {
        config.redis = Some(parse_redis_url("$SSE_REDIS_URL", &url)?);
    }

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match split_flag(&arg) {
            (flag, Some(value)) => (flag.to_string(), Some(value.to_string())),
            (_, None) => (arg, None),
        };
        let no_value = || match inline_value {
            Some(_) => Err(ConfigError(format!("{flag} takes no value"))),
            None => Ok(()),
        };
        match flag.as_str() {
            "--help" | "-h" => return no_value().map(|()| Command::Help),
            "--version" | "-V" => return no_value().map(|()| Command::Version),
            "--verbose" | "-v" => {
                no_value()?;
                config.verbose = true;
            }
            _ => {
                // The value is taken only once the flag is known, so an
                // unknown flag is reported as such.
                let mut value = || match inline_value.clone() {
                    Some(value) => Ok(value),
                    None => args
                        .next()
                        .ok_or_else(|| ConfigError(format!("{flag} needs a value"))),
                };
                apply_flag(&mut config, &flag, &mut value)?;
            }
        }
    }
    // The flag beats the environment, as for the port.
    if config.subscribe_secret.is_none() {
        config.subscribe_secret = secret_from_env(&env)?;
    }
    Ok(Command::Run(config))
}

/// Applies one flag that takes a value; `value` fetches it.
fn apply_flag(
    config: &mut Config,
    flag: &str,
    value: &mut dyn FnMut() -> Result<String, ConfigError>,
) -> Result<(), ConfigError> {
    match flag {
        "--bind" => {
            let value = value()?;
            config.bind = value
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| ConfigError(format!("--bind: not an IP address: {value}")))?;
        }
        "--port" => config.port = parse_number(flag, &value()?)?,
        "--interval" => config.interval = parse_period(flag, &value()?)?,
        "--heartbeat" => config.heartbeat = parse_period(flag, &value()?)?,
        "--retry" => config.retry = parse_duration(flag, &value()?)?,
        "--history" => config.history = parse_number(flag, &value()?)?,
        "--max-clients" => config.max_clients = Some(parse_number(flag, &value()?)?),
        "--write-timeout" => {
            config.write_timeout = non_zero(parse_duration(flag, &value()?)?)
                .ok_or_else(|| ConfigError("--write-timeout: must be more than 0".into()))?;
        }
        "--publish-token" => config.publish_token = Some(parse_header_value(flag, &value()?)?),
        "--allow-origin" => config.allow_origin = Some(parse_header_value(flag, &value()?)?),
        "--subscribe-secret-file" => config.subscribe_secret = Some(read_secret_file(&value()?)?),
        "--subscribe-secret" => {
            return Err(ConfigError(
                "--subscribe-secret: a secret on the command line shows in ps; \
                 use --subscribe-secret-file PATH or $SSE_SUBSCRIBE_SECRET"
                    .into(),
            ))
        }
        "--redis" => config.redis = Some(parse_redis_url(flag, &value()?)?),
        "--redis-prefix" => config.redis_prefix = parse_redis_prefix(flag, &value()?)?,
        _ => return Err(ConfigError(format!("unknown flag: {flag} (see --help)"))),
    }
    Ok(())
}

/// The subscribe secret from `$SSE_SUBSCRIBE_SECRET`, if set. Set but
/// empty or short is an error, not "no secret": a server that was meant to
/// check tokens must not start open.
pub fn secret_from_env(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    env("SSE_SUBSCRIBE_SECRET")
        .map(|text| checked_secret("$SSE_SUBSCRIBE_SECRET", text.into_bytes()))
        .transpose()
}

/// Reads the subscribe secret from a file: its bytes, without trailing line
/// breaks (so `openssl rand -hex 32 > FILE` works as it stands).
pub fn read_secret_file(path: &str) -> Result<Secret, ConfigError> {
    let flag = "--subscribe-secret-file";
    let cannot =
        |error: std::io::Error| ConfigError(format!("{flag}: cannot read {path}: {error}"));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_SUBSCRIBE_SECRET_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(cannot)?;
    if bytes.len() > MAX_SUBSCRIBE_SECRET_BYTES {
        return Err(ConfigError(format!(
            "{flag}: {path} is over {MAX_SUBSCRIBE_SECRET_BYTES} bytes, not a secret"
        )));
    }
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    checked_secret(flag, bytes)
}

fn checked_secret(source: &str, bytes: Vec<u8>) -> Result<Secret, ConfigError> {
    let length = bytes.len();
    Secret::new(bytes).ok_or_else(|| {
        ConfigError(format!(
            "{source}: the secret is {length} bytes, it needs at least {MIN_SUBSCRIBE_SECRET_BYTES}"
        ))
    })
}

/// Splits `--name=value` into its two halves; other arguments pass whole.
/// The subcommands (`listen`, `publish`) split their flags the same way.
pub fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
        _ => (arg, None),
    }
}

/// Parses `500ms`, `3s`, `1m` (and `0`, with or without a unit).
pub fn parse_duration(flag: &str, value: &str) -> Result<Duration, ConfigError> {
    let digits_end = value
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let bad = || {
        ConfigError(format!(
            "{flag}: not a duration (like 500ms, 3s, 1m): {value}"
        ))
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let milliseconds = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60_000),
        "" if number == 0 => Some(0),
        _ => None,
    };
    milliseconds.map(Duration::from_millis).ok_or_else(bad)
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError(format!("{flag}: not a valid number: {value}")))
}

/// A period: `0` for none, else at least [`MIN_PERIOD`].
fn parse_period(flag: &str, value: &str) -> Result<Option<Duration>, ConfigError> {
    let period = non_zero(parse_duration(flag, value)?);
    match period {
        Some(period) if period < MIN_PERIOD => Err(ConfigError(format!(
            "{flag}: at least {}ms (or 0 for none): the timer cannot serve shorter periods",
            MIN_PERIOD.as_millis()
        ))),
        _ => Ok(period),
    }
}

fn non_zero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// A value that ends up in a header must not be able to break the header
/// apart: printable ASCII only.
fn parse_header_value(flag: &str, value: &str) -> Result<String, ConfigError> {
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(value.to_string())
    } else {
        Err(ConfigError(format!(
            "{flag}: must be printable ASCII without spaces"
        )))
    }
}

/// Where the Redis server is and how to log in: the parts of
/// `redis://[[user]:password@]host[:port][/db]`.
///
/// Spec: the `redis` URI scheme as registered with IANA,
/// <https://www.iana.org/assignments/uri-schemes/prov/redis>, on RFC 3986
/// §3 (`scheme "://" [ userinfo "@" ] host [ ":" port ] [ "/" db ]`).
/// `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// A name or an IP address (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
    /// For `AUTH user password` (Redis 6 ACLs); `None` means `AUTH password`.
    pub username: Option<String>,
    /// Percent-decoded; `None` means no `AUTH` at all.
    pub password: Option<String>,
    /// The database `SELECT`ed after connecting (0 is the default).
    pub db: u32,
}

impl RedisUrl {
    /// `host:port`, as `TcpStream::connect` takes it (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for RedisUrl {
    /// The URL with the password replaced by `***`, for logs.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("redis://")?;
        if self.username.is_some() || self.password.is_some() {
            let user = self.username.as_deref().unwrap_or("");
            let password = if self.password.is_some() { "***" } else { "" };
            write!(formatter, "{user}:{password}@")?;
        }
        write!(formatter, "{}/{}", self.address(), self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "RedisUrl({self})")
    }
}

/// Parses `redis://[[user]:password@]host[:port][/db]`. The error never
/// repeats the URL, which may hold a password.
pub fn parse_redis_url(flag: &str, url: &str) -> Result<RedisUrl, ConfigError> {
    let bad = |reason: &str| ConfigError(format!("{flag}: {reason}"));
    let scheme_end = url.find("://").ok_or_else(|| bad("not a redis:// URL"))?;
    match &url[..scheme_end] {
        scheme if scheme.eq_ignore_ascii_case("redis") => {}
        scheme if scheme.eq_ignore_ascii_case("rediss") => {
            return Err(bad("rediss:// (TLS) is not supported, use redis://"))
        }
        _ => return Err(bad("not a redis:// URL")),
    }
    let rest = &url[scheme_end + 3..];
    if rest.contains(['?', '#']) {
        return Err(bad("query and fragment are not supported"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    // The host cannot hold an `@`, so the last one ends the userinfo (and
    // a password may hold an unencoded `@`).
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => parse_userinfo(userinfo).map_err(bad)?,
    };
    let (host, port) = parse_host_port(host_port).map_err(bad)?;
    let db = match path {
        "" => 0,
        digits if digits.bytes().all(|byte| byte.is_ascii_digit()) => digits
            .parse()
            .map_err(|_| bad("database is not a number"))?,
        _ => return Err(bad("database is not a number")),
    };
    Ok(RedisUrl {
        host,
        port,
        username,
        password,
        db,
    })
}

/// `[user]:password`, each percent-decoded (RFC 3986 §3.2.1).
fn parse_userinfo(userinfo: &str) -> Result<(Option<String>, Option<String>), &'static str> {
    let Some((user, password)) = userinfo.split_once(':') else {
        return Err("credentials must be user:password@ or :password@");
    };
    let decode = |text: &str| {
        percent_decode(text, false)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or("bad percent-encoding in the credentials")
    };
    if password.is_empty() {
        return Err("empty password");
    }
    let username = Some(decode(user)?).filter(|user| !user.is_empty());
    Ok((username, Some(decode(password)?)))
}

/// `host[:port]`, where host is a name, an IPv4 address or `[IPv6]`.
fn parse_host_port(host_port: &str) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unclosed [ in the host")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("not an IPv6 address in [ ]");
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("bad host")?)),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.contains(':')
            || host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b".-_".contains(&byte)));
    if !host_ok {
        return Err("missing or bad host");
    }
    let port = match port {
        None => DEFAULT_REDIS_PORT,
        Some(port) if port.bytes().all(|byte| byte.is_ascii_digit()) => match port.parse() {
            Ok(port) if port > 0 => port,
            _ => return Err("port is not a number from 1 to 65535"),
        },
        Some(_) => return Err("port is not a number from 1 to 65535"),
    };
    Ok((host.to_string(), port))
}

/// A key prefix: 1 to [`MAX_REDIS_PREFIX_BYTES`] of letters, digits, and
/// `_ - . :`, so keys stay readable in `redis-cli`.
fn parse_redis_prefix(flag: &str, value: &str) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_REDIS_PREFIX_BYTES
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_-.:".contains(&byte));
    if ok {
        Ok(value.to_string())
    } else {
        Err(ConfigError(format!(
            "{flag}: 1 to {MAX_REDIS_PREFIX_BYTES} letters, digits, or _ - . :"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, ConfigError> {
        parse_args(args.iter().map(|arg| arg.to_string()), |_| None)
    }

    #[track_caller]
    fn check_config(args: &[&str], expected: Config) {
        assert_eq!(parse(args), Ok(Command::Run(expected)));
    }

    #[track_caller]
    fn check_error(args: &[&str], expected: &str) {
        assert_eq!(parse(args), Err(ConfigError(expected.to_string())));
    }

    #[test]
    fn no_flags_gives_the_defaults() {
        check_config(&[], Config::default());
    }

    #[test]
    fn flags_with_space_or_equals() {
        let expected = Config {
            bind: "::1".parse().expect("test setup"),
            port: 0,
            interval: Some(Duration::from_millis(50)),
            verbose: true,
            ..Config::default()
        };
        check_config(
            &[
                "--bind",
                "::1",
                "--port=0",
                "--interval",
                "50ms",
                "--verbose",
            ],
            expected,
        );
    }

    #[test]
    fn zero_turns_interval_and_heartbeat_off() {
        let expected = Config {
            interval: None,
            heartbeat: None,
            ..Config::default()
        };
        check_config(&["--interval", "0", "--heartbeat", "0s"], expected);
    }

    #[test]
    fn durations() {
        let ok = |value| parse_duration("--x", value);
        assert_eq!(ok("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(ok("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(ok("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(ok("0"), Ok(Duration::ZERO));
        for bad in ["", "3", "s", "1h", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(ok(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn bad_flags_and_values_are_errors() {
        check_error(&["--nope"], "unknown flag: --nope (see --help)");
        check_error(&["--port"], "--port needs a value");
        check_error(&["--port", "70000"], "--port: not a valid number: 70000");
        check_error(
            &["--interval", "5ms"],
            "--interval: at least 10ms (or 0 for none): the timer cannot serve shorter periods",
        );
        check_error(
            &["--heartbeat=1ms"],
            "--heartbeat: at least 10ms (or 0 for none): the timer cannot serve shorter periods",
        );
        check_error(
            &["--bind", "localhost"],
            "--bind: not an IP address: localhost",
        );
        check_error(
            &["--interval", "3"],
            "--interval: not a duration (like 500ms, 3s, 1m): 3",
        );
        check_error(
            &["--write-timeout", "0"],
            "--write-timeout: must be more than 0",
        );
        check_error(
            &["--allow-origin", "a\r\nX: y"],
            "--allow-origin: must be printable ASCII without spaces",
        );
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["--port", "1", "--version"]), Ok(Command::Version));
    }

    #[test]
    fn environment_gives_port_and_token() {
        let env = |name: &str| match name {
            "PORT" => Some("8080".to_string()),
            "SSE_PUBLISH_TOKEN" => Some("s3cret".to_string()),
            _ => None,
        };
        let Ok(Command::Run(config)) = parse_args(Vec::new(), env) else {
            panic!("expected a config");
        };
        assert_eq!(config.port, 8080);
        assert_eq!(config.publish_token.as_deref(), Some("s3cret"));
    }

    /// A scratch file with `contents`, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> TempFile {
            let path = std::env::temp_dir().join(format!("sse-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).expect("test setup");
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().expect("test setup")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn secret_of(args: &[&str], env_secret: Option<&str>) -> Result<Option<Secret>, ConfigError> {
        let env = |name: &str| {
            (name == "SSE_SUBSCRIBE_SECRET")
                .then(|| env_secret.map(String::from))
                .flatten()
        };
        match parse_args(args.iter().map(|arg| arg.to_string()), env)? {
            Command::Run(config) => Ok(config.subscribe_secret),
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn subscribe_secret_from_file_or_environment() {
        let long = "k".repeat(32);
        let expected = Ok(Secret::new(long.clone().into_bytes()));
        assert_eq!(secret_of(&[], None), Ok(None));
        assert_eq!(secret_of(&[], Some(&long)), expected);
        let file = TempFile::new("secret-ok", format!("{long}\r\n").as_bytes());
        let from_file = secret_of(&["--subscribe-secret-file", file.path()], None);
        assert_eq!(from_file, expected);
        // The file beats a short (otherwise fatal) environment variable.
        let both = secret_of(&["--subscribe-secret-file", file.path()], Some("short"));
        assert_eq!(both, expected);
    }

    #[test]
    fn bad_subscribe_secrets_are_errors() {
        let short = |source: &str, length: usize| {
            Err(ConfigError(format!(
                "{source}: the secret is {length} bytes, it needs at least 32"
            )))
        };
        assert_eq!(secret_of(&[], Some("")), short("$SSE_SUBSCRIBE_SECRET", 0));
        let thirty_one = "k".repeat(31);
        assert_eq!(
            secret_of(&[], Some(&thirty_one)),
            short("$SSE_SUBSCRIBE_SECRET", 31)
        );
        let file = TempFile::new("secret-short", format!("{thirty_one}\n").as_bytes());
        assert_eq!(
            secret_of(&["--subscribe-secret-file", file.path()], None),
            short("--subscribe-secret-file", 31)
        );
        let huge = TempFile::new("secret-huge", &[b'k'; MAX_SUBSCRIBE_SECRET_BYTES + 1]);
        let Err(ConfigError(message)) = secret_of(&["--subscribe-secret-file", huge.path()], None)
        else {
            panic!("a huge file is not a secret");
        };
        assert!(
            message.ends_with("is over 4096 bytes, not a secret"),
            "{message}"
        );
        let Err(ConfigError(message)) =
            secret_of(&["--subscribe-secret-file", "/nonexistent/secret"], None)
        else {
            panic!("a missing file is an error");
        };
        assert!(
            message.starts_with("--subscribe-secret-file: cannot read /nonexistent/secret: "),
            "{message}"
        );
        let Err(ConfigError(message)) = secret_of(&["--subscribe-secret", &"k".repeat(40)], None)
        else {
            panic!("a secret flag is refused");
        };
        assert!(message.contains("shows in ps"), "{message}");
    }

    #[test]
    fn flag_beats_environment() {
        let env = |name: &str| (name == "PORT").then(|| "8080".to_string());
        let args = ["--port", "9"].map(String::from);
        let Ok(Command::Run(config)) = parse_args(args, env) else {
            panic!("expected a config");
        };
        assert_eq!(config.port, 9);
    }

    fn url(
        host: &str,
        port: u16,
        username: Option<&str>,
        password: Option<&str>,
        db: u32,
    ) -> RedisUrl {
        RedisUrl {
            host: host.to_string(),
            port,
            username: username.map(String::from),
            password: password.map(String::from),
            db,
        }
    }

    #[track_caller]
    fn check_url(input: &str, expected: Result<RedisUrl, &str>) {
        let actual = parse_redis_url("--redis", input).map_err(|error| error.0);
        let expected = expected.map_err(|reason| format!("--redis: {reason}"));
        assert_eq!(actual, expected, "url: {input}");
    }

    #[test]
    fn redis_urls() {
        check_url(
            "redis://127.0.0.1",
            Ok(url("127.0.0.1", 6379, None, None, 0)),
        );
        check_url(
            "redis://localhost:7000",
            Ok(url("localhost", 7000, None, None, 0)),
        );
        check_url("REDIS://h/3", Ok(url("h", 6379, None, None, 3)));
        check_url("redis://h:1/", Ok(url("h", 1, None, None, 0)));
        check_url("redis://:pw@h", Ok(url("h", 6379, None, Some("pw"), 0)));
        check_url(
            "redis://alice:s%40cret@h:6380/2",
            Ok(url("h", 6380, Some("alice"), Some("s@cret"), 2)),
        );
        check_url("redis://:a@b@h", Ok(url("h", 6379, None, Some("a@b"), 0)));
        check_url("redis://[::1]:7000", Ok(url("::1", 7000, None, None, 0)));
        check_url("redis://[::1]", Ok(url("::1", 6379, None, None, 0)));
    }

    #[test]
    fn bad_redis_urls_say_why_without_the_password() {
        check_url("http://h", Err("not a redis:// URL"));
        check_url("h:6379", Err("not a redis:// URL"));
        check_url(
            "rediss://h",
            Err("rediss:// (TLS) is not supported, use redis://"),
        );
        check_url("redis://", Err("missing or bad host"));
        check_url("redis://:pw@", Err("missing or bad host"));
        check_url("redis://h h", Err("missing or bad host"));
        check_url("redis://h:0", Err("port is not a number from 1 to 65535"));
        check_url(
            "redis://h:70000",
            Err("port is not a number from 1 to 65535"),
        );
        check_url("redis://h:+80", Err("port is not a number from 1 to 65535"));
        check_url("redis://h:", Err("port is not a number from 1 to 65535"));
        check_url("redis://h/x", Err("database is not a number"));
        check_url("redis://h/1/2", Err("database is not a number"));
        check_url("redis://h/99999999999", Err("database is not a number"));
        check_url(
            "redis://h?db=1",
            Err("query and fragment are not supported"),
        );
        check_url(
            "redis://secret@h",
            Err("credentials must be user:password@ or :password@"),
        );
        check_url("redis://user:@h", Err("empty password"));
        check_url(
            "redis://:%zz@h",
            Err("bad percent-encoding in the credentials"),
        );
        check_url("redis://[::1", Err("unclosed [ in the host"));
        check_url("redis://[nope]:1", Err("not an IPv6 address in [ ]"));
    }

    #[test]
    fn redis_passwords_never_show() {
        let with_password = url("h", 6379, Some("alice"), Some("s3cret"), 1);
        assert_eq!(with_password.to_string(), "redis://alice:***@h:6379/1");
        assert!(!format!("{with_password:?}").contains("s3cret"));
        assert_eq!(
            url("::1", 1, None, None, 0).to_string(),
            "redis://[::1]:1/0"
        );
        let error = parse_redis_url("--redis", "redis://:s3cret@h:0").expect_err("bad port");
        assert!(!error.0.contains("s3cret"));
    }

    #[test]
    fn redis_flags_and_environment() {
        let env = |name: &str| (name == "SSE_REDIS_URL").then(|| "redis://e:1".to_string());
        let Ok(Command::Run(config)) = parse_args(Vec::new(), env) else {
            panic!("expected a config");
        };
        assert_eq!(config.redis, Some(url("e", 1, None, None, 0)));
        assert_eq!(config.redis_prefix, "sse");
        let args = ["--redis", "redis://f:2", "--redis-prefix=app1"].map(String::from);
        let Ok(Command::Run(config)) = parse_args(args, env) else {
            panic!("expected a config");
        };
        assert_eq!(config.redis, Some(url("f", 2, None, None, 0)));
        assert_eq!(config.redis_prefix, "app1");
        check_error(
            &["--redis-prefix", "a b"],
            "--redis-prefix: 1 to 64 letters, digits, or _ - . :",
        );
        let bad_env = |name: &str| (name == "SSE_REDIS_URL").then(|| "redis://h:x".to_string());
        assert_eq!(
            parse_args(Vec::new(), bad_env),
            Err(ConfigError(
                "$SSE_REDIS_URL: port is not a number from 1 to 65535".into()
            ))
        );
    }
}
