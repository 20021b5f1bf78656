//! `sse-server publish URL [--to USER] [--event NAME] DATA|-`: one `POST
//! /send/USER` or `POST /broadcast`, and its reply on stdout.
//!
//! Spec: RFC 9112 §6 (the body and its `Content-Length`), RFC 6750 §2.1
//! (`Authorization: Bearer`).
//!
//! The token comes from `$SSE_PUBLISH_TOKEN`, never from a flag, so it does
//! not show in `ps` or the shell history. The reply is printed as it came:
//! our server answers `{"id":"…","delivered":N}`, and the id is opaque.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use super::http::{self, Framing, Url};
use super::transport::{self, TransportError};
use super::Exit;
use crate::config::split_flag;
use crate::limits::{CLIENT_RESPONSE_TIMEOUT, MAX_BODY_BYTES, MAX_REPLY_BODY_BYTES};

/// The `publish --help` text.
pub const USAGE: &str = "\
sse-server publish: send one event to a user, or to everyone

usage: sse-server publish URL [--to USER] [--event NAME] DATA
       ... | sse-server publish URL [--to USER] [--event NAME] -

  URL            the server, e.g. http://127.0.0.1:3000
  --to USER      POST /send/USER (default: POST /broadcast, to everyone)
  --event NAME   the event type (?event=NAME; letters, digits, . _ -)
  DATA           the event's data; - reads it from stdin (one final line break is dropped)
  --help         print this help

Sends Authorization: Bearer $SSE_PUBLISH_TOKEN when that is set.
Prints the server's reply, e.g. {\"id\":\"1764509000123-0\",\"delivered\":1}.
Exit codes: 0 accepted (202), 2 bad usage, 3 could not connect or not accepted (status and body on stderr).
";

/// What `publish` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub url: Url,
    pub to: Option<String>,
    pub event: Option<String>,
    /// The data, or `None` for `-` (read stdin).
    pub data: Option<String>,
}

/// The command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
}

/// Runs `sse-server publish` with the arguments after `publish`.
pub fn main(args: &[String]) -> ExitCode {
    let token = std::env::var("SSE_PUBLISH_TOKEN")
        .ok()
        .filter(|token| !token.is_empty());
    // The token goes into a header line: nothing that could break it.
    if token
        .as_deref()
        .is_some_and(|token| !token.bytes().all(|byte| byte.is_ascii_graphic()))
    {
        eprintln!("publish: $SSE_PUBLISH_TOKEN must be printable ASCII without spaces");
        return Exit::Usage.into();
    }
    let exit = match parse_args(args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            Exit::Done
        }
        Ok(Command::Run(options)) => match body(&options, &mut io::stdin().lock()) {
            Ok(body) => send(&options, &body, token.as_deref()),
            Err(message) => {
                eprintln!("publish: {message}");
                Exit::Usage
            }
        },
        Err(message) => {
            eprintln!("publish: {message} (see sse-server publish --help)");
            Exit::Usage
        }
    };
    exit.into()
}

/// Parses `URL [--to USER] [--event NAME] DATA|-`, flags in any order.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut positional = Vec::new();
    let mut to = None;
    let mut event = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg);
        let mut value = || match inline {
            Some(value) => Ok(value.to_string()),
            None => args.next().cloned().ok_or(format!("{flag} needs a value")),
        };
        match flag {
            "--help" | "-h" => return Ok(Command::Help),
            "--to" => to = Some(non_empty(flag, value()?)?),
            "--event" => event = Some(non_empty(flag, value()?)?),
            "-" => positional.push(arg.clone()),
            _ if flag.starts_with('-') => return Err(format!("unknown flag: {flag}")),
            _ => positional.push(arg.clone()),
        }
    }
    let [url, data] = <[String; 2]>::try_from(positional)
        .map_err(|_| "expected a URL and the data (or - for stdin)".to_string())?;
    let url = http::parse_url(&url).map_err(|error| error.to_string())?;
    let data = (data != "-").then_some(data);
    Ok(Command::Run(Options {
        url,
        to,
        event,
        data,
    }))
}

fn non_empty(flag: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        Err(format!("{flag}: must not be empty"))
    } else {
        Ok(value)
    }
}

/// The body: the data argument, or stdin (at most the server's body limit)
/// without its final line break, as the shell's `$(…)` drops it.
pub fn body(options: &Options, stdin: &mut dyn Read) -> Result<Vec<u8>, String> {
    if let Some(data) = &options.data {
        return Ok(data.as_bytes().to_vec());
    }
    let mut body = Vec::new();
    stdin
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|error| format!("reading stdin: {error}"))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(format!(
            "stdin holds more than {MAX_BODY_BYTES} bytes, the server's body limit"
        ));
    }
    if body.ends_with(b"\n") {
        body.pop();
        if body.ends_with(b"\r") {
            body.pop();
        }
    }
    Ok(body)
}

/// The request-target: `/send/USER` or `/broadcast`, then `?event=NAME`.
pub fn target(options: &Options) -> String {
    let mut target = match &options.to {
        Some(user) => options
            .url
            .with_path(&format!("/send/{}", http::percent_encode(user))),
        None => options.url.with_path("/broadcast"),
    };
    if let Some(event) = &options.event {
        target.push_str("?event=");
        target.push_str(&http::percent_encode(event));
    }
    target
}

/// Sends the request and prints the reply.
fn send(options: &Options, body: &[u8], token: Option<&str>) -> Exit {
    let url = &options.url;
    let mut request = http::post_request(url, &target(options), body.len(), token);
    request.extend_from_slice(body);
    let deadline = Instant::now() + CLIENT_RESPONSE_TIMEOUT;
    let (status, reason, reply) = match transport::exchange(url, &request, deadline)
        .and_then(|response| read_reply(response, deadline))
    {
        Ok(reply) => reply,
        Err(error) => {
            eprintln!("publish: {error} ({}:{})", url.host, url.port);
            return Exit::Failed;
        }
    };
    let reply = String::from_utf8_lossy(&reply);
    if status == 202 {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{}", reply.trim_end());
        let _ = stdout.flush();
        Exit::Done
    } else {
        eprintln!(
            "publish: the server answered {status} {reason}: {}",
            reply.trim_end()
        );
        Exit::Failed
    }
}

/// Reads the reply body (by its framing, at most [`MAX_REPLY_BODY_BYTES`]).
fn read_reply(
    response: transport::Response,
    deadline: Instant,
) -> Result<(u16, String, Vec<u8>), TransportError> {
    let transport::Response {
        mut stream,
        head,
        body_start,
    } = response;
    let mut framing = head.framing().map_err(TransportError::Response)?;
    let mut reply = Vec::new();
    let mut complete = decode(&mut framing, &body_start, &mut reply)?;
    let mut chunk = [0u8; 4096];
    // Bounded by the deadline and by MAX_REPLY_BODY_BYTES.
    while !complete && reply.len() <= MAX_REPLY_BODY_BYTES {
        match transport::read_by(&mut stream, &mut chunk, Some(deadline)) {
            Ok(0) => break,
            Ok(count) => complete = decode(&mut framing, &chunk[..count], &mut reply)?,
            Err(error) if transport::is_timeout(&error) => return Err(TransportError::TimedOut),
            // A reset after a complete reply is the server closing: keep
            // what arrived.
            Err(_) => break,
        }
    }
    reply.truncate(MAX_REPLY_BODY_BYTES);
    Ok((head.status, head.reason, reply))
}

fn decode(framing: &mut Framing, bytes: &[u8], out: &mut Vec<u8>) -> Result<bool, TransportError> {
    framing.decode(bytes, out).map_err(TransportError::Response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Command, String> {
        let args: Vec<String> = list.iter().map(|arg| arg.to_string()).collect();
        parse_args(&args)
    }

    fn options(list: &[&str]) -> Options {
        match parse(list) {
            Ok(Command::Run(options)) => options,
            other => panic!("expected options, got {other:?}"),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(target(&options(&["http://h:1", "hi"])), "/broadcast");
        assert_eq!(
            target(&options(&[
                "http://h:1/",
                "--to",
                "a b",
                "--event=note",
                "hi"
            ])),
            "/send/a%20b?event=note"
        );
    }

    #[test]
    fn data_or_stdin() {
        assert_eq!(
            options(&["http://h", "hello"]).data.as_deref(),
            Some("hello")
        );
        let from_stdin = options(&["http://h", "-", "--to", "x"]);
        assert_eq!(from_stdin.data, None);
        assert_eq!(
            body(&from_stdin, &mut &b"line 1\nline 2\n"[..]),
            Ok(b"line 1\nline 2".to_vec())
        );
        assert_eq!(
            body(&from_stdin, &mut &b"crlf\r\n"[..]),
            Ok(b"crlf".to_vec())
        );
        assert_eq!(
            body(&from_stdin, &mut &b"two\n\n"[..]),
            Ok(b"two\n".to_vec())
        );
        let too_big = vec![b'x'; MAX_BODY_BYTES + 1];
        assert!(body(&from_stdin, &mut &too_big[..]).is_err());
    }

    #[test]
    fn bad_command_lines() {
        let expected = Err("expected a URL and the data (or - for stdin)".to_string());
        assert_eq!(parse(&["http://h"]), expected);
        assert_eq!(parse(&["http://h", "a", "b"]), expected);
        assert_eq!(
            parse(&["http://h", "--nope", "a"]),
            Err("unknown flag: --nope".into())
        );
        assert_eq!(
            parse(&["http://h", "a", "--to"]),
            Err("--to needs a value".into())
        );
        assert_eq!(
            parse(&["http://h", "a", "--to="]),
            Err("--to: must not be empty".into())
        );
        assert!(parse(&["https://h", "a"]).is_err_and(|message| message.starts_with("https")));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
    }
}
