//! Routing: from a method and a request-target to what the server should do.
//!
//! Pure, like `request.rs`: no sockets. The URL grammar is RFC 3986 (§2.1 for
//! percent-encoding), <https://www.rfc-editor.org/rfc/rfc3986>; method errors
//! follow RFC 9110 §15.5.6 (`405`, with an `Allow` header) and §15.6.2 (`501`).
//!
//! | method      | path               | route                          |
//! |-------------|--------------------|--------------------------------|
//! | GET, HEAD   | `/`                | the demo page                  |
//! | GET, HEAD   | `/sse/{userId}`    | an event stream for `userId`   |
//! | GET, HEAD   | `/users`           | JSON list of connected users   |
//! | POST        | `/send/{userId}`   | push the body to one user      |
//! | POST        | `/broadcast`       | push the body to everyone      |
//! | POST        | `/token/{userId}`  | mint a subscriber token        |

use crate::event::LastSeen;
use crate::limits::{MAX_EVENT_NAME_BYTES, MAX_USER_ID_BYTES};
use crate::request::Method;

/// What a request asks for, with its path parameters decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /sse/{userId}`: open an event stream. `head_only` for `HEAD`.
    Stream { user_id: String, head_only: bool },
    /// `POST /send/{userId}?event=NAME`.
    Send {
        user_id: String,
        event: Option<String>,
    },
    /// `POST /broadcast?event=NAME`.
    Broadcast { event: Option<String> },
    /// `GET /users`.
    Users { head_only: bool },
    /// `POST /token/{userId}?ttl=DUR`: a subscriber token (see `auth.rs`).
    Token { user_id: String },
    /// `GET /`.
    Demo { head_only: bool },
}

/// Why a request cannot be routed. [`RouteError::status`] maps each to its
/// status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// Occurs when no route has this path.
    NotFound,
    /// Occurs when the path exists but not for this method; `allow` lists
    /// the methods it has, for the `Allow` header.
    MethodNotAllowed { allow: &'static str },
    /// Occurs when the method is not one RFC 9110 defines (`get`, `BREW`).
    NotImplemented,
    /// Occurs when a `%` is not followed by two hex digits.
    BadPercentEncoding,
    /// Occurs when a userId is empty, over [`MAX_USER_ID_BYTES`], not UTF-8,
    /// holds a control character, or is a dot segment (`.` or `..`).
    BadUserId,
    /// Occurs when `?event=` is not 1–64 letters, digits, `-`, `_` or `.`.
    BadEventName,
    /// Occurs when `?event=` names one of [`RESERVED_EVENT_NAMES`].
    ReservedEventName,
}

impl RouteError {
    /// The status code the client gets for this error.
    pub fn status(self) -> u16 {
        match self {
            RouteError::NotFound => 404,
            RouteError::MethodNotAllowed { .. } => 405,
            RouteError::NotImplemented => 501,
            RouteError::BadPercentEncoding
            | RouteError::BadUserId
            | RouteError::BadEventName
            | RouteError::ReservedEventName => 400,
        }
    }

    /// A short lowercase reason, used in the log and the reply body.
    pub fn reason(self) -> &'static str {
        match self {
            RouteError::NotFound => "unknown path",
            RouteError::MethodNotAllowed { .. } => "method not allowed",
            RouteError::NotImplemented => "method not implemented",
            RouteError::BadPercentEncoding => "invalid percent-encoding",
            RouteError::BadUserId => "invalid userId",
            RouteError::BadEventName => "invalid event name",
            RouteError::ReservedEventName => "reserved event name",
        }
    }
}

const READ_ONLY: &str = "GET, HEAD";
const POST_ONLY: &str = "POST";

/// Finds the route for a method, a percent-encoded path and query.
pub fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    if let Method::Unknown(_) = method {
        return Err(RouteError::NotImplemented);
    }
    // The path starts with `/` (request.rs checks), so skip the empty
    // segment before it and look at up to three more.
    let mut segments = path.split('/').skip(1);
    match (segments.next(), segments.next(), segments.next()) {
        (Some(""), None, None) => read_only(method, |head_only| Route::Demo { head_only }),
        (Some("users"), None, None) => read_only(method, |head_only| Route::Users { head_only }),
        (Some("sse"), Some(user_id), None) => {
            let user_id = parse_user_id(user_id)?;
            read_only(method, |head_only| Route::Stream { user_id, head_only })
        }
        (Some("send"), Some(user_id), None) => {
            let user_id = parse_user_id(user_id)?;
            let event = parse_event_name(query)?;
            post_only(method, Route::Send { user_id, event })
        }
        (Some("token"), Some(user_id), None) => {
            let user_id = parse_user_id(user_id)?;
            post_only(method, Route::Token { user_id })
        }
        (Some("broadcast"), None, None) => {
            let event = parse_event_name(query)?;
            post_only(method, Route::Broadcast { event })
        }
        _ => Err(RouteError::NotFound),
    }
}

fn read_only(method: &Method, route: impl FnOnce(bool) -> Route) -> Result<Route, RouteError> {
    match method {
        Method::Get => Ok(route(false)),
        Method::Head => Ok(route(true)),
        _ => Err(RouteError::MethodNotAllowed { allow: READ_ONLY }),
    }
}

fn post_only(method: &Method, route: Route) -> Result<Route, RouteError> {
    match method {
        Method::Post => Ok(route),
        _ => Err(RouteError::MethodNotAllowed { allow: POST_ONLY }),
    }
}

/// Decodes and checks a userId path segment: 1–128 bytes of UTF-8 without
/// control characters, and not `.` or `..` (which browsers and proxies
/// normalise away, so no client could address such a user reliably).
pub fn parse_user_id(segment: &str) -> Result<String, RouteError> {
    let bytes = percent_decode(segment, false)?;
    let user_id = String::from_utf8(bytes).map_err(|_| RouteError::BadUserId)?;
    if is_valid_user_id(&user_id) {
        Ok(user_id)
    } else {
        Err(RouteError::BadUserId)
    }
}

/// The rule for a decoded userId (see [`parse_user_id`]).
pub fn is_valid_user_id(user_id: &str) -> bool {
    !user_id.is_empty()
        && user_id.len() <= MAX_USER_ID_BYTES
        && !user_id.chars().any(char::is_control)
        && user_id != "."
        && user_id != ".."
}

/// The `event` query parameter, if present: 1–64 characters from
/// `[A-Za-z0-9._-]`, so it can never carry a line break into the stream.
fn parse_event_name(query: Option<&str>) -> Result<Option<String>, RouteError> {
    let Some(name) = query_param(query, "event")? else {
        return Ok(None);
    };
    let valid = !name.is_empty()
        && name.len() <= MAX_EVENT_NAME_BYTES
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
    if !valid {
        Err(RouteError::BadEventName)
    } else if RESERVED_EVENT_NAMES.contains(&name.as_str()) {
        Err(RouteError::ReservedEventName)
    } else {
        Ok(Some(name))
    }
}

/// Event types a publisher may not use: `gap` and `shutdown` are the
/// server's own signals (the demo page acts on them), and `open` and
/// `error` are the events `EventSource` itself fires (WHATWG §9.2.2), so a
/// pushed one would reach the page's `onopen`/`onerror` handlers.
pub const RESERVED_EVENT_NAMES: [&str; 4] = ["gap", "shutdown", "open", "error"];

/// The id to resume after: the `Last-Event-ID` header a reconnecting browser
/// sends (WHATWG HTML §9.2.4), else `?lastEventId=ID`, which a page can put
/// on a brand-new `EventSource` (browsers cannot set headers on it). `None`
/// when the client sent neither; an id that is not ours is
/// [`LastSeen::Unreadable`] (it gets a `gap` and all history holds).
pub fn last_event_id(header: Option<&str>, query: Option<&str>) -> Option<LastSeen> {
    let header = header.map(|value| value.trim_matches([' ', '\t']));
    if let Some(value) = header.filter(|value| !value.is_empty()) {
        return Some(LastSeen::parse(value));
    }
    match query_param(query, "lastEventId") {
        Ok(Some(value)) => Some(LastSeen::parse(&value)),
        Ok(None) => None,
        Err(_) => Some(LastSeen::Unreadable),
    }
}

/// The first value of `name` in an `application/x-www-form-urlencoded`
/// query, decoded (`+` is a space there).
pub fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, RouteError> {
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            let bytes = percent_decode(value, true)?;
            return String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| RouteError::BadPercentEncoding);
        }
    }
    Ok(None)
}

/// RFC 3986 §2.1: `%` followed by two hex digits stands for that byte.
/// With `plus_is_space`, `+` decodes to a space (form encoding, for queries).
pub fn percent_decode(input: &str, plus_is_space: bool) -> Result<Vec<u8>, RouteError> {
    let mut output = Vec::with_capacity(input.len());
    let mut bytes = input.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let high = bytes.next().and_then(hex_value);
                let low = bytes.next().and_then(hex_value);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(RouteError::BadPercentEncoding);
                };
                output.push(high << 4 | low);
            }
            b'+' if plus_is_space => output.push(b' '),
            _ => output.push(byte),
        }
    }
    Ok(output)
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(method: Method, target: &str, expected: Result<Route, RouteError>) {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        assert_eq!(route(&method, path, query), expected, "target: {target}");
    }

    fn stream(user_id: &str) -> Result<Route, RouteError> {
        Ok(Route::Stream {
            user_id: user_id.to_string(),
            head_only: false,
        })
    }

    #[test]
    fn stream_routes_decode_the_user_id() {
        check(Method::Get, "/sse/alice", stream("alice"));
        check(Method::Get, "/sse/alice?x=1", stream("alice"));
        check(Method::Get, "/sse/a%22b", stream("a\"b"));
        check(Method::Get, "/sse/a%5Cb", stream("a\\b"));
        check(Method::Get, "/sse/%C3%A9l%C3%A8ve", stream("élève"));
        check(Method::Get, "/sse/a+b", stream("a+b"));
        check(Method::Get, "/sse/a%2Fb", stream("a/b"));
        check(Method::Get, "/sse/...", stream("..."));
    }

    #[test]
    fn head_on_a_stream_is_head_only() {
        let expected = Ok(Route::Stream {
            user_id: "a".to_string(),
            head_only: true,
        });
        check(Method::Head, "/sse/a", expected);
    }

    #[test]
    fn bad_user_ids_are_rejected() {
        check(Method::Get, "/sse/", Err(RouteError::BadUserId));
        check(Method::Get, "/sse/a%0Ab", Err(RouteError::BadUserId));
        check(Method::Get, "/sse/a%00", Err(RouteError::BadUserId));
        check(Method::Get, "/sse/%C2%85", Err(RouteError::BadUserId));
        check(Method::Get, "/sse/%FF", Err(RouteError::BadUserId));
        check(Method::Get, "/sse/..", Err(RouteError::BadUserId));
        check(Method::Get, "/sse/%2E", Err(RouteError::BadUserId));
        check(Method::Get, "/sse/%zz", Err(RouteError::BadPercentEncoding));
        check(Method::Get, "/sse/a%2", Err(RouteError::BadPercentEncoding));
        let longest = "x".repeat(MAX_USER_ID_BYTES);
        check(Method::Get, &format!("/sse/{longest}"), stream(&longest));
        check(
            Method::Get,
            &format!("/sse/{longest}x"),
            Err(RouteError::BadUserId),
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        check(Method::Get, "/sse", Err(RouteError::NotFound));
        check(Method::Get, "/sse/a/b", Err(RouteError::NotFound));
        check(Method::Get, "/sse/../users", Err(RouteError::NotFound));
        check(Method::Get, "/nope", Err(RouteError::NotFound));
        check(Method::Get, "/users/", Err(RouteError::NotFound));
    }

    #[test]
    fn wrong_methods_are_not_allowed() {
        let read_only = Err(RouteError::MethodNotAllowed { allow: READ_ONLY });
        check(Method::Post, "/sse/a", read_only.clone());
        check(Method::OtherStandard("PUT".into()), "/users", read_only);
        let post_only = Err(RouteError::MethodNotAllowed { allow: POST_ONLY });
        check(Method::Get, "/broadcast", post_only.clone());
        check(Method::Get, "/send/a", post_only.clone());
        check(Method::Get, "/token/a", post_only);
        check(
            Method::Unknown("get".into()),
            "/sse/a",
            Err(RouteError::NotImplemented),
        );
    }

    #[test]
    fn publish_routes_take_an_event_name() {
        check(
            Method::Post,
            "/send/bob?event=chat.v1",
            Ok(Route::Send {
                user_id: "bob".into(),
                event: Some("chat.v1".into()),
            }),
        );
        check(
            Method::Post,
            "/broadcast",
            Ok(Route::Broadcast { event: None }),
        );
        check(
            Method::Post,
            "/broadcast?event=",
            Err(RouteError::BadEventName),
        );
        check(
            Method::Post,
            "/broadcast?event=a%0Ab",
            Err(RouteError::BadEventName),
        );
        check(
            Method::Post,
            "/broadcast?event=a b",
            Err(RouteError::BadEventName),
        );
        let too_long = "e".repeat(MAX_EVENT_NAME_BYTES + 1);
        check(
            Method::Post,
            &format!("/broadcast?event={too_long}"),
            Err(RouteError::BadEventName),
        );
        for reserved in RESERVED_EVENT_NAMES {
            check(
                Method::Post,
                &format!("/broadcast?event={reserved}"),
                Err(RouteError::ReservedEventName),
            );
        }
        check(
            Method::Post,
            "/send/bob?event=Gap",
            Ok(Route::Send {
                user_id: "bob".into(),
                event: Some("Gap".into()),
            }),
        );
    }

    #[test]
    fn token_route_decodes_the_user_id() {
        let token = |user_id: &str| {
            Ok(Route::Token {
                user_id: user_id.to_string(),
            })
        };
        check(Method::Post, "/token/alice", token("alice"));
        check(
            Method::Post,
            "/token/%C3%A9l%C3%A8ve?ttl=5m",
            token("élève"),
        );
        check(Method::Post, "/token/", Err(RouteError::BadUserId));
        check(Method::Post, "/token/a/b", Err(RouteError::NotFound));
    }

    #[test]
    fn last_event_id_prefers_the_header() {
        let id = |ms, seq| Some(LastSeen::Id(crate::event::EventId::new(ms, seq)));
        assert_eq!(
            last_event_id(Some("7-1"), Some("lastEventId=3-0")),
            id(7, 1)
        );
        assert_eq!(last_event_id(None, Some("a=1&lastEventId=3-2")), id(3, 2));
        assert_eq!(
            last_event_id(Some("abc"), Some("lastEventId=3")),
            Some(LastSeen::Unreadable)
        );
        assert_eq!(last_event_id(Some(" 9 "), None), id(9, 0));
        assert_eq!(last_event_id(Some(""), Some("lastEventId=4")), id(4, 0));
        assert_eq!(
            last_event_id(None, Some("lastEventId=x")),
            Some(LastSeen::Unreadable)
        );
        assert_eq!(
            last_event_id(None, Some("lastEventId=%zz")),
            Some(LastSeen::Unreadable)
        );
        assert_eq!(last_event_id(None, None), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2b", false), Ok(b"a b+".to_vec()));
        assert_eq!(percent_decode("a+b", true), Ok(b"a b".to_vec()));
        assert_eq!(
            percent_decode("%", false),
            Err(RouteError::BadPercentEncoding)
        );
        assert_eq!(
            percent_decode("%g0", false),
            Err(RouteError::BadPercentEncoding)
        );
    }
}
