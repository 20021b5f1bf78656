//! Command-line flags, parsed by hand, and their defaults.
//!
//! Every flag takes `--name value` or `--name=value`. A bad flag or value is
//! a [`ConfigError`]; `main.rs` prints it on one line and exits with 2.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::limits::{
    DEFAULT_HEARTBEAT, DEFAULT_HISTORY, DEFAULT_INTERVAL, DEFAULT_RETRY, DEFAULT_WRITE_TIMEOUT,
    MIN_PERIOD,
};

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
  --verbose              log every tick too
  --help                 print this help
  --version              print the version

DUR is a number with a unit: 500ms, 3s, 1m.
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
        _ => return Err(ConfigError(format!("unknown flag: {flag} (see --help)"))),
    }
    Ok(())
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
