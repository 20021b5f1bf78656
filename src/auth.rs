//! Subscriber tokens at the edge: the check before a stream registers, the
//! `POST /token/{userId}` reply, and the `sse-server token USER` command.
//!
//! The token format and its verification are pure and live in
//! [`crate::token`]; this module finds the token in a request, reads the
//! clock, and turns a refusal into a reply and a log line.
//!
//! Spec: RFC 6750 (Bearer tokens): §2.1 (`Authorization: Bearer`), §2.3
//! (the token in the query, for a browser's `EventSource`, which cannot set
//! headers), §3.1 (`401` with `WWW-Authenticate: Bearer
//! error="invalid_token"`), <https://www.rfc-editor.org/rfc/rfc6750>; RFC
//! 6749 §5.1 (`Cache-Control: no-store` on a reply that carries a token).
//!
//! Every refusal gets the same reply, so a client learns nothing about which
//! part of its token was wrong; the operator gets the reason in the log.
//! No token value is ever logged: the query string is logged with every
//! value but `lastEventId` redacted.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, ConfigError};
use crate::json;
use crate::limits::{DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL};
use crate::log;
use crate::registry::now_ms;
use crate::request::Request;
use crate::response::Reply;
use crate::route::{self, Route};
use crate::token::{self, Secret};

/// The body of every `401` for a stream (the same bytes, whatever failed).
pub const REFUSAL_BODY: &str = "a valid subscriber token is required";

/// Why a stream request was refused, and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// For the operator's log line only; never sent to the client.
    pub reason: &'static str,
    user_id: String,
    /// The request-target with query values redacted.
    target: String,
}

impl Refusal {
    /// The `401`, identical for every refusal.
    pub fn reply(&self) -> Reply {
        Reply::text(401, REFUSAL_BODY)
            .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
    }

    /// Logs the refusal once: `reject status=401 reason="token expired"
    /// user="alice" target="/sse/alice?token=[redacted]" conn=3 peer=…`.
    pub fn log(&self, connection_id: u64, peer: SocketAddr) {
        log!(
            "reject status=401 reason={} user={} target={} conn={connection_id} peer={peer}",
            json::Quoted(self.reason),
            json::Quoted(&self.user_id),
            json::Quoted(&self.target)
        );
    }
}

/// With a subscribe secret, a stream request (`GET` or `HEAD /sse/{user}`)
/// needs a valid token for that user; every other request, and every
/// request without a secret, passes.
pub fn check_stream(
    secret: Option<&Secret>,
    route: &Route,
    request: &Request,
) -> Result<(), Refusal> {
    check_stream_at(secret, route, request, now_secs())
}

/// [`check_stream`] at a given time (Unix seconds), for tests.
pub fn check_stream_at(
    secret: Option<&Secret>,
    route: &Route,
    request: &Request,
    now: u64,
) -> Result<(), Refusal> {
    let (Some(secret), Route::Stream { user_id, .. }) = (secret, route) else {
        return Ok(());
    };
    let refuse = |reason| Refusal {
        reason,
        user_id: user_id.clone(),
        target: redacted_target(&request.path, request.query.as_deref()),
    };
    let presented = presented_token(request).map_err(refuse)?;
    match token::verify(secret.as_bytes(), user_id, &presented, now) {
        Ok(_expires) => Ok(()),
        Err(error) => Err(refuse(error.reason())),
    }
}

/// The token a request carries: `?token=` (RFC 6750 §2.3), else
/// `Authorization: Bearer` (§2.1); the reason for the log when it has none,
/// or a query token that is not valid percent-encoded UTF-8.
fn presented_token(request: &Request) -> Result<String, &'static str> {
    match route::query_param(request.query.as_deref(), "token") {
        Ok(Some(token)) => Ok(token),
        Ok(None) => request.bearer_token().map(str::to_string).ok_or("no token"),
        Err(_) => Err("token is not valid percent-encoding"),
    }
}

/// The path and query for the log, each query value but `lastEventId`
/// replaced by `[redacted]`, so no token (under any name) reaches the log.
pub fn redacted_target(path: &str, query: Option<&str>) -> String {
    let Some(query) = query else {
        return path.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("lastEventId", _)) => pair.to_string(),
            Some((key, _)) => format!("{key}=[redacted]"),
            None => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// The reply to `POST /token/{userId}[?ttl=DUR]`: `{"token":"…","expires":N}`.
/// `guard` is the publish check (loopback, or the publish bearer token),
/// made by the caller; without a secret the route does not exist (`404`).
pub fn token_reply(
    guard: Result<(), Reply>,
    secret: Option<&Secret>,
    user_id: &str,
    query: Option<&str>,
) -> Reply {
    let Some(secret) = secret else {
        return Reply::text(404, "subscriber tokens are off (no subscribe secret)");
    };
    if let Err(reply) = guard {
        return reply;
    }
    let ttl = match route::query_param(query, "ttl") {
        Ok(None) => DEFAULT_TOKEN_TTL,
        Ok(Some(text)) => match parse_ttl(&text) {
            Ok(ttl) => ttl,
            Err(message) => return Reply::text(400, &message),
        },
        Err(_) => return Reply::text(400, "invalid percent-encoding"),
    };
    let expires = now_secs().saturating_add(ttl.as_secs());
    let token = token::mint(secret.as_bytes(), user_id, expires);
    // The token is base64url and digits: nothing in it needs JSON escaping.
    Reply::json(
        200,
        format!("{{\"token\":\"{token}\",\"expires\":{expires}}}"),
    )
    .with_header("Cache-Control", "no-store")
}

/// `sse-server token USER [--ttl DUR] [--subscribe-secret-file PATH]`:
/// prints a token for USER (the decoded userId, as in the frames). Errors
/// exit 2 with one line, like a bad flag.
pub fn token_main(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> ExitCode {
    match token_command(args, env, now_secs()) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sse-server token: {error}");
            ExitCode::from(2)
        }
    }
}

/// The work of [`token_main`], at time `now`: returns the token.
pub fn token_command(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
    now: u64,
) -> Result<String, ConfigError> {
    let usage = || ConfigError("usage: sse-server token USER [--ttl DUR]".into());
    let mut user_id = None;
    let mut ttl = DEFAULT_TOKEN_TTL;
    let mut secret = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match config::split_flag(&arg) {
            (flag, Some(value)) => (flag.to_string(), Some(value.to_string())),
            (_, None) => (arg, None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| ConfigError(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--ttl" => ttl = parse_ttl(&value()?).map_err(ConfigError)?,
            "--subscribe-secret-file" => secret = Some(config::read_secret_file(&value()?)?),
            other if other.starts_with('-') => {
                return Err(ConfigError(format!("unknown flag: {other}")))
            }
            _ if user_id.is_some() => return Err(usage()),
            _ => user_id = Some(flag),
        }
    }
    let user_id = user_id.ok_or_else(usage)?;
    if !route::is_valid_user_id(&user_id) {
        return Err(ConfigError(
            "USER must be 1-128 bytes, no control characters, not . or ..".into(),
        ));
    }
    let secret = match secret {
        Some(secret) => secret,
        None => config::secret_from_env(&env)?.ok_or_else(|| {
            ConfigError("no secret: set $SSE_SUBSCRIBE_SECRET or --subscribe-secret-file".into())
        })?,
    };
    Ok(token::mint(
        secret.as_bytes(),
        &user_id,
        now.saturating_add(ttl.as_secs()),
    ))
}

/// A token lifetime: a whole number of seconds, minutes or hours (`90s`,
/// `30m`, `1h`), from 1 s to [`MAX_TOKEN_TTL`].
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid ttl: {text} (1s to 24h, like 90s, 30m, 1h)");
    let digits_end = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        _ => None,
    };
    match seconds {
        Some(seconds) if (1..=MAX_TOKEN_TTL.as_secs()).contains(&seconds) => {
            Ok(Duration::from_secs(seconds))
        }
        _ => Err(bad()),
    }
}

/// The current Unix time in seconds (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{parse, Parse};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    /// python3: a token for alice under SECRET, expiring at 1700000000.
    const ALICE: &str = "1700000000.BKulQHZ1mfIStLGNu_S7orEIQ89YWuwqUS060L54auM";
    const NOW: u64 = 1699999000;

    fn secret() -> Secret {
        Secret::new(SECRET.to_vec()).expect("test setup")
    }

    fn request(target: &str, headers: &str) -> Request {
        let head = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        match parse(head.as_bytes()) {
            Ok(Parse::Complete { request, .. }) => request,
            other => panic!("not a complete request: {other:?}"),
        }
    }

    /// Checks a stream request for alice; `expected` is the log reason.
    #[track_caller]
    fn check(target: &str, headers: &str, expected: Result<(), &str>) {
        let route = Route::Stream {
            user_id: "alice".into(),
            head_only: false,
        };
        let request = request(target, headers);
        let actual = check_stream_at(Some(&secret()), &route, &request, NOW);
        if let Err(refusal) = &actual {
            let reply = refusal.reply();
            assert_eq!(reply.status, 401);
            assert_eq!(reply.body, format!("{REFUSAL_BODY}\n").into_bytes());
            assert!(!refusal.target.contains("BKul"), "{}", refusal.target);
        }
        assert_eq!(
            actual.map_err(|refusal| refusal.reason),
            expected,
            "{target}"
        );
    }

    /// A good token passes by query or by header; every bad one is refused
    /// with the same reply and its own log reason.
    #[test]
    fn stream_requests_need_a_token() {
        check(&format!("/sse/alice?token={ALICE}"), "", Ok(()));
        check(
            &format!("/sse/alice?lastEventId=3&token={ALICE}"),
            "",
            Ok(()),
        );
        check(
            "/sse/alice",
            &format!("Authorization: Bearer {ALICE}\r\n"),
            Ok(()),
        );
        check(
            "/sse/alice",
            &format!("authorization: bearer {ALICE}\r\n"),
            Ok(()),
        );
        check("/sse/alice", "", Err("no token"));
        check(
            "/sse/alice",
            "Authorization: Basic YTpi\r\n",
            Err("no token"),
        );
        check("/sse/alice?token=", "", Err("empty token"));
        check(
            "/sse/alice?token=%zz",
            "",
            Err("token is not valid percent-encoding"),
        );
        check("/sse/alice?token=1700000000", "", Err("token has no dot"));
        let bob = "1700000000.tMmhn3oQbwGKaxRxMoCeNYkmHDbKJAaf5o6oUkOCggM";
        check(
            &format!("/sse/alice?token={bob}"),
            "",
            Err("token mac does not match (other user or secret)"),
        );
        // The query wins over the header, whatever the header holds.
        check(
            &format!("/sse/alice?token={bob}"),
            &format!("Authorization: Bearer {ALICE}\r\n"),
            Err("token mac does not match (other user or secret)"),
        );
    }

    /// Without a secret, or for other routes, nothing is checked.
    #[test]
    fn only_streams_under_a_secret_are_checked() {
        let stream = Route::Stream {
            user_id: "alice".into(),
            head_only: true,
        };
        let request = request("/sse/alice", "");
        assert_eq!(check_stream_at(None, &stream, &request, NOW), Ok(()));
        let users = Route::Users { head_only: false };
        assert_eq!(
            check_stream_at(Some(&secret()), &users, &request, NOW),
            Ok(())
        );
        assert!(check_stream_at(Some(&secret()), &stream, &request, NOW).is_err());
    }

    #[test]
    fn the_log_target_has_no_token() {
        assert_eq!(redacted_target("/sse/a", None), "/sse/a");
        assert_eq!(
            redacted_target("/sse/a", Some("token=1.abc&lastEventId=7&x")),
            "/sse/a?token=[redacted]&lastEventId=7&x"
        );
        assert_eq!(
            redacted_target("/sse/a", Some("access_token=1.abc&token=2.def")),
            "/sse/a?access_token=[redacted]&token=[redacted]"
        );
    }

    #[test]
    fn token_replies() {
        let loopback = || Ok(());
        let off = token_reply(loopback(), None, "alice", None);
        assert_eq!(off.status, 404);
        let forbidden = Err(Reply::text(403, "publishing is only allowed from loopback"));
        assert_eq!(
            token_reply(forbidden, Some(&secret()), "alice", None).status,
            403
        );
        let reply = token_reply(loopback(), Some(&secret()), "alice", Some("ttl=90s"));
        assert_eq!(reply.status, 200);
        let body = String::from_utf8(reply.body).expect("utf-8");
        let (token, expires) = body
            .strip_prefix("{\"token\":\"")
            .and_then(|rest| rest.strip_suffix('}'))
            .and_then(|rest| rest.split_once("\",\"expires\":"))
            .expect("the token JSON shape");
        let expires: u64 = expires.parse().expect("a number");
        let now = now_secs();
        assert!((now + 89..=now + 91).contains(&expires), "{expires}");
        assert_eq!(
            token::verify(SECRET, "alice", token, now),
            Ok(expires),
            "{token}"
        );
        let too_long = token_reply(loopback(), Some(&secret()), "alice", Some("ttl=25h"));
        assert_eq!(too_long.status, 400);
    }

    #[test]
    fn ttl_values() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86400)));
        for bad in [
            "",
            "0s",
            "25h",
            "1441m",
            "1",
            "1d",
            "500ms",
            "-1h",
            "99999999999999999999h",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn token_command_mints_from_the_environment() {
        let args = |list: &[&str]| list.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
        let env = |name: &str| {
            (name == "SSE_SUBSCRIBE_SECRET").then(|| String::from_utf8_lossy(SECRET).into())
        };
        let minted = token_command(args(&["alice", "--ttl", "1000s"]), env, 1699999000);
        assert_eq!(minted.as_deref(), Ok(ALICE));
        let minted = token_command(args(&["--ttl=1000s", "alice"]), env, 1699999000);
        assert_eq!(minted.as_deref(), Ok(ALICE));
        let default_ttl = token_command(args(&["alice"]), env, 1000).expect("a token");
        assert!(default_ttl.starts_with("4600."), "{default_ttl}");
        let no_secret = token_command(args(&["alice"]), |_| None, 1000);
        assert!(no_secret.is_err());
        assert!(token_command(args(&[]), env, 1000).is_err());
        assert!(token_command(args(&["a", "b"]), env, 1000).is_err());
        assert!(token_command(args(&[".."]), env, 1000).is_err());
        assert!(token_command(args(&["a", "--ttl", "48h"]), env, 1000).is_err());
        assert!(token_command(args(&["a", "--nope"]), env, 1000).is_err());
    }
}
