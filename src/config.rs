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
use crate::token::Secret;

/// The default port, as in the original example.
pub const DEFAULT_PORT: u16 = 3000;

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
        }
    }
}

/// What the command line asks for.
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

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg, None),
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
}
