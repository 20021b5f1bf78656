//! `sse-server listen URL`: read an event stream the way a browser's
//! `EventSource` does, and print one line per event.
//!
//! Spec: WHATWG HTML §9.2.2 (the request: `Accept: text/event-stream`,
//! `Cache-Control: no-cache`), §9.2.3 (the processing model: when to
//! reconnect and when to give up), §9.2.4 (`Last-Event-ID`), §9.2.6 (the
//! parser, in `eventstream.rs`),
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html>.
//!
//! The life of a listen, as §9.2.3 has it:
//! - A response with status 200 and a `text/event-stream` content type is
//!   "announced": the connection is open and its body goes to the parser.
//! - When the stream ends (the server closes, or the network fails), the
//!   client "reestablishes the connection": waits the reconnection time
//!   (the last `retry:`), then sends the same request with `Last-Event-ID`.
//! - Any other status, or another content type, "fails the connection":
//!   no reconnection. `204 No Content` is how a server says "stop".
//!
//! Where we differ from a browser, on purpose, because a script runs us:
//! - A first connection that cannot be made ends the command at once (exit
//!   3); a browser would keep retrying.
//! - `--max-reconnects` bounds the reconnections in a row that bring no
//!   event; a browser has no bound.
//! - `--count` and `--timeout` end the command; stdout gets only events,
//!   stderr one line per connect, reconnect and give-up.
//!
//! Simplification: redirects are not followed (a 3xx fails the connection,
//! where fetch would follow it), and there is no TLS. Nor is there an idle
//! timeout, as in a browser: a stream that goes silent without closing is
//! waited for until `--timeout` (a production client would reconnect after
//! a few missed heartbeats).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::http::{self, Framing, Url};
use super::transport::{self, Response, TransportError};
use super::Exit;
use crate::config::parse_duration;
use crate::config::split_flag;
use crate::eventstream::{Event, Output, Parser};
use crate::json::Quoted;
use crate::limits::{
    CLIENT_DEFAULT_MAX_RECONNECTS, CLIENT_DEFAULT_RETRY, CLIENT_MAX_RETRY, CLIENT_RESPONSE_TIMEOUT,
};

/// The `listen --help` text.
pub const USAGE: &str = "\
sse-server listen: read an event stream, print one line per event, reconnect like EventSource

usage: sse-server listen URL [options]

  --count N            exit 0 after N printed events
  --timeout DUR        give up after DUR: exit 1 if --count events have not come
                       (without --count: stop after DUR and exit 0)
  --event NAME         print only events of this type (repeatable; the default type is message)
  --format FORMAT      json (default): {\"id\":…,\"event\":…,\"data\":…} per line
                       data: the data only;  raw: the event's lines as received, then a blank line
  --last-event-id ID   send Last-Event-ID: ID on the first request too
  --max-reconnects K   give up after K reconnections in a row that bring no event (default 100;
                       0 never reconnects)
  --help               print this help

URL is http:// only. DUR is a number with a unit: 500ms, 3s, 1m.
Exit codes: 0 done, 1 timed out, 2 bad usage, 3 could not connect, refused, or gave up.
";

/// How each event is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"id":"…","event":"…","data":"…"}`: the id is the last event id
    /// (`""` if none yet), the event type `message` unless named.
    Json,
    /// The data, then a line feed.
    Data,
    /// The event's lines as received (LF endings), then a blank line.
    Raw,
}

/// What `listen` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub url: Url,
    pub format: Format,
    /// Event types to print; empty prints all.
    pub events: Vec<String>,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
    pub last_event_id: Option<String>,
    pub max_reconnects: u32,
}

/// The command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
}

/// Runs `sse-server listen` with the arguments after `listen`.
pub fn main(args: &[String]) -> ExitCode {
    let exit = match parse_args(args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            Exit::Done
        }
        Ok(Command::Run(options)) => run(&options, &mut io::stdout(), &mut io::stderr()),
        Err(message) => {
            eprintln!("listen: {message} (see sse-server listen --help)");
            Exit::Usage
        }
    };
    exit.into()
}

/// Parses `URL [--flag value | --flag=value]...`.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut url = None;
    let mut options = Options {
        // Replaced by the URL argument below; flags may come before it.
        url: Url {
            host: String::new(),
            port: 0,
            authority: String::new(),
            target: String::new(),
        },
        format: Format::Json,
        events: Vec::new(),
        count: None,
        timeout: None,
        last_event_id: None,
        max_reconnects: CLIENT_DEFAULT_MAX_RECONNECTS,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg);
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help);
        }
        if !flag.starts_with('-') {
            if url
                .replace(http::parse_url(arg).map_err(|error| error.to_string())?)
                .is_some()
            {
                return Err(format!("more than one URL: {arg}"));
            }
            continue;
        }
        let mut value = || match inline {
            Some(value) => Ok(value.to_string()),
            None => args.next().cloned().ok_or(format!("{flag} needs a value")),
        };
        apply_flag(&mut options, flag, &mut value)?;
    }
    options.url = url.ok_or("a URL is required")?;
    Ok(Command::Run(options))
}

fn apply_flag(
    options: &mut Options,
    flag: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
) -> Result<(), String> {
    match flag {
        "--count" => match value()?.parse() {
            Ok(count) if count > 0 => options.count = Some(count),
            _ => return Err("--count: must be a number above 0".into()),
        },
        "--timeout" => {
            let timeout = parse_duration(flag, &value()?).map_err(|error| error.to_string())?;
            if timeout.is_zero() {
                return Err("--timeout: must be more than 0".into());
            }
            options.timeout = Some(timeout);
        }
        "--event" => {
            let name = value()?;
            if name.is_empty() {
                return Err("--event: needs a name".into());
            }
            options.events.push(name);
        }
        "--format" => {
            options.format = match value()?.as_str() {
                "json" => Format::Json,
                "data" => Format::Data,
                "raw" => Format::Raw,
                other => return Err(format!("--format: json, data or raw, not {other}")),
            }
        }
        "--last-event-id" => {
            let id = value()?;
            // It goes into a header line: no line breaks, no NUL (§9.2.6
            // would ignore such an id anyway).
            if id.contains(['\r', '\n', '\0']) {
                return Err("--last-event-id: no line breaks or NUL".into());
            }
            options.last_event_id = Some(id);
        }
        "--max-reconnects" => {
            options.max_reconnects = value()?
                .parse()
                .map_err(|_| "--max-reconnects: not a valid number".to_string())?;
        }
        _ => return Err(format!("unknown flag: {flag}")),
    }
    Ok(())
}

/// Listens until done; `out` gets the events, `status` the status lines.
pub fn run(options: &Options, out: &mut dyn Write, status: &mut dyn Write) -> Exit {
    let mut listener = Listener {
        options,
        out,
        status,
        printed: 0,
        parser: Parser::new(options.last_event_id.as_deref().unwrap_or("")),
        retry: CLIENT_DEFAULT_RETRY,
        started: Instant::now(),
        deadline: options.timeout.map(|timeout| Instant::now() + timeout),
    };
    let mut reconnects_without_event = 0;
    let mut first = true;
    // Bounded: every round either brings an event or counts towards
    // --max-reconnects, and every wait is bounded by --timeout if set.
    loop {
        let (why, got_event) = match listener.connect_and_read(first) {
            Ending::Stop(exit) => return exit,
            Ending::Reconnect { why, got_event } => (why, got_event),
        };
        first = false;
        if got_event {
            reconnects_without_event = 0;
        }
        if reconnects_without_event >= options.max_reconnects {
            listener.say(format!(
                "giving up: {why}; {} reconnections in a row brought no event (--max-reconnects)",
                options.max_reconnects
            ));
            return Exit::Failed;
        }
        reconnects_without_event += 1;
        listener.say(format!(
            "{why}; reconnecting in {} ms",
            listener.retry.as_millis()
        ));
        if let Err(exit) = listener.wait_retry() {
            return exit;
        }
    }
}

/// How one connection ended.
enum Ending {
    /// Reestablish the connection (§9.2.3); `got_event` if it brought one.
    Reconnect { why: String, got_event: bool },
    /// The command is over.
    Stop(Exit),
}

/// The state a listen carries across connections.
struct Listener<'a> {
    options: &'a Options,
    out: &'a mut dyn Write,
    status: &'a mut dyn Write,
    printed: u64,
    /// The stream parser. It outlives each connection: `Parser::end` drops
    /// what a connection left unfinished and keeps the event source's last
    /// event ID string (§9.2.4), sent as `Last-Event-ID` on every
    /// reconnection.
    parser: Parser,
    /// The reconnection time: the last `retry:`, capped.
    retry: Duration,
    started: Instant,
    deadline: Option<Instant>,
}

impl Listener<'_> {
    /// One connection: request, check the response, read events until the
    /// stream ends.
    fn connect_and_read(&mut self, first: bool) -> Ending {
        let url = &self.options.url;
        let mut deadline = Instant::now() + CLIENT_RESPONSE_TIMEOUT;
        if let Some(user_deadline) = self.deadline {
            deadline = deadline.min(user_deadline);
        }
        let request = http::stream_request(url, Some(self.parser.last_event_id()));
        let response = match transport::exchange(url, &request, deadline) {
            Ok(response) => response,
            Err(TransportError::TimedOut) if self.deadline_passed() => {
                return Ending::Stop(self.timed_out())
            }
            Err(error @ TransportError::Connect(_)) if first => {
                self.say(format!("giving up: {error} ({}:{})", url.host, url.port));
                return Ending::Stop(Exit::Failed);
            }
            Err(error) => {
                return Ending::Reconnect {
                    why: error.to_string(),
                    got_event: false,
                }
            }
        };
        let framing = match self.announce(&response) {
            Ok(framing) => framing,
            Err(exit) => return Ending::Stop(exit),
        };
        self.read_events(response, framing)
    }

    /// §9.2.3: "announce the connection" for a 200 `text/event-stream`,
    /// "fail the connection" for anything else.
    fn announce(&mut self, response: &Response) -> Result<Framing, Exit> {
        let head = &response.head;
        if head.status == 204 {
            // "HTTP 204 No Content … can be used to prevent the user agent
            // from trying to reconnect."
            self.say("stopping: the server answered 204 No Content".to_string());
            return Err(match self.options.count {
                Some(count) if self.printed < count => Exit::Failed,
                _ => Exit::Done,
            });
        }
        if head.status != 200 {
            self.say(format!(
                "giving up: the server answered {} {}",
                head.status, head.reason
            ));
            return Err(Exit::Failed);
        }
        if !head.is_event_stream() {
            let content_type = head.header("Content-Type").unwrap_or("(none)").to_string();
            self.say(format!(
                "giving up: the content type is {}, not text/event-stream",
                Quoted(&content_type)
            ));
            return Err(Exit::Failed);
        }
        let framing = head.framing().map_err(|error| {
            self.say(format!("giving up: {}", error.reason()));
            Exit::Failed
        })?;
        match self.parser.last_event_id() {
            "" => self.say(format!("connected to {}", self.url_text())),
            id => self.say(format!(
                "connected to {} with Last-Event-ID: {id}",
                self.url_text()
            )),
        }
        Ok(framing)
    }

    /// Reads the body into the parser and prints each event, until the
    /// stream ends or the command is done.
    fn read_events(&mut self, response: Response, mut framing: Framing) -> Ending {
        let Response {
            mut stream,
            body_start,
            ..
        } = response;
        let mut got_event = false;
        let mut buffer = vec![0u8; 16 * 1024];
        let mut received = body_start.len();
        let mut ended = self.consume(&body_start, &mut framing, &mut got_event);
        // Bounded by the stream itself: it runs until the server ends it,
        // the network fails, or --count/--timeout end the command.
        let why = loop {
            match ended {
                Err(ending) => return ending,
                Ok(true) => break "the response body ended".to_string(),
                Ok(false) => {}
            }
            let count = match transport::read_by(&mut stream, &mut buffer, self.deadline) {
                Ok(0) => break "the server closed the stream".to_string(),
                Ok(count) => count,
                Err(error) if transport::is_timeout(&error) => {
                    return Ending::Stop(self.timed_out())
                }
                Err(error) => break format!("the connection failed: {error}"),
            };
            received += count;
            ended = self.consume(&buffer[..count], &mut framing, &mut got_event);
        };
        // "Once the end of the file is reached, any pending data must be
        // discarded."
        let dropped = self.parser.end();
        let why = match (dropped, received) {
            (true, _) => format!("{why} (an incomplete event was dropped)"),
            (false, 0) => format!("{why} before sending anything"),
            _ => why,
        };
        Ending::Reconnect { why, got_event }
    }

    /// Decodes and parses `bytes`; `Ok(true)` once the body is complete.
    fn consume(
        &mut self,
        bytes: &[u8],
        framing: &mut Framing,
        got_event: &mut bool,
    ) -> Result<bool, Ending> {
        let mut body = Vec::with_capacity(bytes.len());
        let complete = framing.decode(bytes, &mut body).map_err(|error| {
            self.say(format!("giving up: {}", error.reason()));
            Ending::Stop(Exit::Failed)
        })?;
        let mut outputs = Vec::new();
        let parsed = self.parser.feed(&body, &mut outputs);
        // Events before a parse error still count.
        for output in outputs {
            match output {
                Output::Retry(milliseconds) => {
                    self.retry = Duration::from_millis(milliseconds).min(CLIENT_MAX_RETRY);
                }
                Output::Event(event) => {
                    *got_event = true;
                    if let Some(exit) = self.print(&event) {
                        return Err(Ending::Stop(exit));
                    }
                }
            }
        }
        if let Err(error) = parsed {
            self.say(format!("giving up: {}", error.reason()));
            return Err(Ending::Stop(Exit::Failed));
        }
        Ok(complete)
    }

    /// Prints one event if it passes the filter; `Some` once the command
    /// is done (`--count` reached, or stdout closed).
    fn print(&mut self, event: &Event) -> Option<Exit> {
        let events = &self.options.events;
        if !events.is_empty() && !events.contains(&event.event_type) {
            return None;
        }
        let written = match self.options.format {
            Format::Json => event.write_json_line(self.out),
            Format::Data => writeln!(self.out, "{}", event.data),
            Format::Raw => self.out.write_all(event.raw.as_bytes()),
        };
        if written.and_then(|()| self.out.flush()).is_err() {
            // Whoever read our stdout left (`listen … | head -n 1`): done.
            return Some(Exit::Done);
        }
        self.printed += 1;
        (Some(self.printed) == self.options.count).then_some(Exit::Done)
    }

    /// Sleeps the reconnection time, or until the deadline.
    fn wait_retry(&mut self) -> Result<(), Exit> {
        let wait = self.retry;
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= wait {
                std::thread::sleep(left);
                return Err(self.timed_out());
            }
        }
        std::thread::sleep(wait);
        Ok(())
    }

    fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// `--timeout` passed: exit 1 if `--count` events had not come, else 0.
    fn timed_out(&mut self) -> Exit {
        let elapsed = self.started.elapsed().as_millis();
        match self.options.count {
            Some(count) => {
                self.say(format!(
                    "timed out after {elapsed} ms with {} of {count} events",
                    self.printed
                ));
                Exit::TimedOut
            }
            None => {
                self.say(format!(
                    "stopping after {elapsed} ms (--timeout) with {} events",
                    self.printed
                ));
                Exit::Done
            }
        }
    }

    fn url_text(&self) -> String {
        let url = &self.options.url;
        format!("http://{}{}", url.authority, url.target)
    }

    /// One status line on stderr.
    fn say(&mut self, message: String) {
        let _ = writeln!(self.status, "listen: {message}");
        let _ = self.status.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[track_caller]
    fn check_error(list: &[&str], expected: &str) {
        assert_eq!(parse_args(&args(list)), Err(expected.to_string()));
    }

    #[test]
    fn flags_with_space_or_equals() {
        let Ok(Command::Run(options)) = parse_args(&args(&[
            "--count=2",
            "http://127.0.0.1:1/sse/a",
            "--timeout",
            "5s",
            "--event",
            "chat",
            "--event=gap",
            "--format",
            "raw",
            "--last-event-id",
            "1764509000123-0",
            "--max-reconnects=0",
        ])) else {
            panic!("expected options");
        };
        assert_eq!(options.count, Some(2));
        assert_eq!(options.timeout, Some(Duration::from_secs(5)));
        assert_eq!(options.events, ["chat", "gap"]);
        assert_eq!(options.format, Format::Raw);
        assert_eq!(options.last_event_id.as_deref(), Some("1764509000123-0"));
        assert_eq!(options.max_reconnects, 0);
        assert_eq!(options.url.target, "/sse/a");
    }

    #[test]
    fn defaults() {
        let Ok(Command::Run(options)) = parse_args(&args(&["http://h/"])) else {
            panic!("expected options");
        };
        assert_eq!(options.format, Format::Json);
        assert_eq!(options.count, None);
        assert_eq!(options.max_reconnects, CLIENT_DEFAULT_MAX_RECONNECTS);
    }

    #[test]
    fn bad_command_lines() {
        check_error(&[], "a URL is required");
        check_error(&["http://a/", "http://b/"], "more than one URL: http://b/");
        check_error(&["http://a/", "--nope"], "unknown flag: --nope");
        check_error(&["http://a/", "--count"], "--count needs a value");
        check_error(
            &["http://a/", "--count", "0"],
            "--count: must be a number above 0",
        );
        check_error(
            &["http://a/", "--timeout", "0"],
            "--timeout: must be more than 0",
        );
        check_error(
            &["http://a/", "--timeout", "5"],
            "--timeout: not a duration (like 500ms, 3s, 1m): 5",
        );
        check_error(
            &["http://a/", "--format", "xml"],
            "--format: json, data or raw, not xml",
        );
        check_error(
            &["http://a/", "--last-event-id", "a\r\nX: y"],
            "--last-event-id: no line breaks or NUL",
        );
        assert!(parse_args(&args(&["https://a/"]))
            .is_err_and(|message| message.starts_with("https is not supported")));
    }

    #[test]
    fn help() {
        assert_eq!(parse_args(&args(&["--help"])), Ok(Command::Help));
    }
}
