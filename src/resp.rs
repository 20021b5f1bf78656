//! RESP2, the Redis serialization protocol: commands in, replies out.
//!
//! Spec: "Redis serialization protocol specification",
//! <https://redis.io/docs/latest/develop/reference/protocol-spec/>. We speak
//! RESP2 (the default; we never send `HELLO 3`), whose replies are:
//!
//! ```text
//! simple-string = "+" *( any byte but CR and LF ) CRLF        ; "+OK\r\n"
//! simple-error  = "-" *( any byte but CR and LF ) CRLF        ; "-ERR unknown command\r\n"
//! integer       = ":" [ "+" / "-" ] 1*DIGIT CRLF               ; ":1000\r\n"
//! bulk-string   = "$" length CRLF <length bytes> CRLF          ; "$5\r\nhello\r\n"
//! null-bulk     = "$-1" CRLF
//! array         = "*" count CRLF <count replies>               ; "*2\r\n:1\r\n:2\r\n"
//! null-array    = "*-1" CRLF
//! ```
//!
//! A command is always "an array of bulk strings" ([`encode_command`]).
//!
//! This module never touches a socket. Reading a reply is done in two steps,
//! as in mini-redis's `frame.rs`: [`check`] walks the bytes received so far
//! without allocating and says whether a whole reply is there ([`Check::Partial`]
//! when not yet, a [`RespError`] when the bytes can never become one);
//! only then does [`parse`] build the [`Value`]. Like `request.rs`, it keeps
//! "not enough bytes yet" apart from "invalid", so a broken or hostile server
//! is dropped at once instead of being waited on.
//!
//! Every length is checked against a limit before any byte of the body it
//! announces has to arrive, so a reply cannot make us buffer or allocate
//! without bound: `$999999999999\r\n` is an error as soon as its first line
//! is complete.

/// Longest line we wait for: a simple string, an error, an integer, or the
/// length line of a bulk string or array. Redis's own lines are short (an
/// error message is a sentence), so anything longer is a broken server.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest bulk string we accept, in bytes. Redis allows 512 MB; our events
/// are at most 64 KiB (`MAX_BODY_BYTES`), and an entry added from outside
/// may be bigger, but not this big.
///
/// Simplification: a stream entry with a field over this limit makes the
/// whole reply that carries it invalid, so the connection is dropped rather
/// than the entry skipped; a production client would discard the oversized
/// bulk while reading it.
pub const MAX_BULK_BYTES: usize = 4 * 1024 * 1024;

/// Most elements in one array. Our largest replies are `XRANGE`/`XREAD` with
/// a `COUNT` well below this, and an entry has a handful of fields.
pub const MAX_ARRAY_ELEMENTS: usize = 64 * 1024;

/// Deepest nesting of arrays. The deepest reply we ask for is `XREAD`:
/// streams → [key, entries] → entries → [id, fields] → fields, depth 5.
pub const MAX_DEPTH: usize = 8;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`: a short status text (lossy UTF-8; Redis sends ASCII).
    Simple(String),
    /// `-ERR …`: the server refused the command. The text starts with an
    /// error kind in capitals (`ERR`, `WRONGTYPE`, `NOAUTH`).
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$5\r\nhello`: binary-safe bytes.
    Bulk(Vec<u8>),
    /// `$-1`: "no value", e.g. a missing key.
    NullBulk,
    /// `*2\r\n…`: replies of any type, nested.
    Array(Vec<Value>),
    /// `*-1`: "no array", e.g. `XREAD BLOCK` that timed out.
    NullArray,
}

impl Value {
    /// The bytes of a bulk or simple string, `None` for anything else.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(bytes) => Some(bytes),
            Value::Simple(text) => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// The text of a bulk or simple string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }
}

/// The outcome of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A whole reply is there; it is the first `len` bytes.
    Complete { len: usize },
    /// Valid so far; more bytes are needed.
    Partial,
}

/// The outcome of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A whole reply, and how many bytes it took; anything after it is the
    /// start of the next reply.
    Complete { value: Value, len: usize },
    /// Valid so far; more bytes are needed.
    Partial,
}

/// Why bytes can never become a valid reply. Every one of them means the
/// connection is out of step with the server and must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespError {
    /// Occurs when a reply starts with a byte that is not a RESP2 type
    /// (`+ - : $ *`), including the RESP3 types we never ask for.
    UnknownType(u8),
    /// Occurs when a line ends in LF without CR, or holds a CR that is not
    /// followed by LF.
    BadLineEnding,
    /// Occurs when a line is longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// Occurs when an integer is not `[+-]DIGITS` or does not fit an `i64`.
    BadInteger,
    /// Occurs when a bulk or array length is not `-1` or a non-negative
    /// number.
    BadLength,
    /// Occurs when a bulk string announces more than [`MAX_BULK_BYTES`].
    BulkTooLarge,
    /// Occurs when an array announces more than [`MAX_ARRAY_ELEMENTS`].
    ArrayTooLarge,
    /// Occurs when arrays nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Occurs when a bulk string's bytes are not followed by CRLF.
    BadBulkEnd,
}

impl RespError {
    /// A short lowercase reason, for the log.
    pub fn reason(self) -> &'static str {
        match self {
            RespError::UnknownType(_) => "unknown reply type",
            RespError::BadLineEnding => "line not ended by crlf",
            RespError::LineTooLong => "line too long",
            RespError::BadInteger => "malformed integer",
            RespError::BadLength => "malformed length",
            RespError::BulkTooLarge => "bulk string too large",
            RespError::ArrayTooLarge => "array too large",
            RespError::TooDeep => "arrays nested too deep",
            RespError::BadBulkEnd => "bulk string not ended by crlf",
        }
    }
}

/// Encodes a command as the server expects it: an array of bulk strings
/// (spec, "Sending commands to a Redis server").
/// `["GET", "k"]` → `*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let body: usize = args.iter().map(|arg| arg.as_ref().len() + 16).sum();
    let mut out = Vec::with_capacity(body + 16);
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Says whether `buf` starts with a whole reply, without allocating.
pub fn check(buf: &[u8]) -> Result<Check, RespError> {
    Ok(match skip_value(buf, 0, 0)? {
        Some(end) => Check::Complete { len: end },
        None => Check::Partial,
    })
}

/// Parses the reply at the start of `buf`: [`check`] first, then building
/// the value, so nothing is allocated for a reply that is not all there.
pub fn parse(buf: &[u8]) -> Result<Parse, RespError> {
    let Check::Complete { len } = check(buf)? else {
        return Ok(Parse::Partial);
    };
    let mut cursor = 0;
    let value = read_value(buf, &mut cursor)?;
    debug_assert_eq!(cursor, len);
    Ok(Parse::Complete { value, len })
}

/// The end of the value starting at `start`, or `None` if it is not all
/// there yet. Recursion is bounded by [`MAX_DEPTH`].
fn skip_value(buf: &[u8], start: usize, depth: usize) -> Result<Option<usize>, RespError> {
    let Some(&kind) = buf.get(start) else {
        return Ok(None);
    };
    if !b"+-:$*".contains(&kind) {
        return Err(RespError::UnknownType(kind));
    }
    let Some((line, after_line)) = line_at(buf, start + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' | b'-' => Ok(Some(after_line)),
        b':' => parse_integer(line).map(|_| Some(after_line)),
        b'$' => match parse_length(line, MAX_BULK_BYTES, RespError::BulkTooLarge)? {
            None => Ok(Some(after_line)),
            Some(length) => skip_bulk_body(buf, after_line, length),
        },
        b'*' => {
            let Some(count) = parse_length(line, MAX_ARRAY_ELEMENTS, RespError::ArrayTooLarge)?
            else {
                return Ok(Some(after_line));
            };
            if count > 0 && depth + 1 >= MAX_DEPTH {
                return Err(RespError::TooDeep);
            }
            let mut position = after_line;
            for _ in 0..count {
                match skip_value(buf, position, depth + 1)? {
                    Some(end) => position = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(position))
        }
        other => Err(RespError::UnknownType(other)),
    }
}

/// A bulk string's `length` bytes and their CRLF, starting at `start`.
fn skip_bulk_body(buf: &[u8], start: usize, length: usize) -> Result<Option<usize>, RespError> {
    let end = start + length + 2;
    if buf.len() < end {
        // The part of the CRLF that has arrived must already be right.
        let arrived = buf.len().saturating_sub(start + length);
        if arrived > 0 && !b"\r\n".starts_with(&buf[start + length..]) {
            return Err(RespError::BadBulkEnd);
        }
        return Ok(None);
    }
    if &buf[start + length..end] != b"\r\n" {
        return Err(RespError::BadBulkEnd);
    }
    Ok(Some(end))
}

/// Builds the value at `*cursor`, which [`check`] has already walked, and
/// moves the cursor past it.
fn read_value(buf: &[u8], cursor: &mut usize) -> Result<Value, RespError> {
    let kind = buf[*cursor];
    let (line, after_line) = line_at(buf, *cursor + 1)?.ok_or(RespError::BadLineEnding)?;
    *cursor = after_line;
    Ok(match kind {
        b'+' => Value::Simple(String::from_utf8_lossy(line).into_owned()),
        b'-' => Value::Error(String::from_utf8_lossy(line).into_owned()),
        b':' => Value::Integer(parse_integer(line)?),
        b'$' => match parse_length(line, MAX_BULK_BYTES, RespError::BulkTooLarge)? {
            None => Value::NullBulk,
            Some(length) => {
                let bytes = buf[after_line..after_line + length].to_vec();
                *cursor = after_line + length + 2;
                Value::Bulk(bytes)
            }
        },
        b'*' => match parse_length(line, MAX_ARRAY_ELEMENTS, RespError::ArrayTooLarge)? {
            None => Value::NullArray,
            Some(count) => {
                // `check` saw all `count` elements, so this capacity is
                // backed by bytes that really arrived.
                let mut elements = Vec::with_capacity(count);
                for _ in 0..count {
                    elements.push(read_value(buf, cursor)?);
                }
                Value::Array(elements)
            }
        },
        other => return Err(RespError::UnknownType(other)),
    })
}

/// The line starting at `start` without its CRLF, and the position after
/// the CRLF; `None` while the CRLF has not arrived.
fn line_at(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(start..).unwrap_or(&[]);
    let Some(lf) = rest.iter().position(|&byte| byte == b'\n') else {
        if rest.len() > MAX_LINE_BYTES {
            return Err(RespError::LineTooLong);
        }
        // A CR is allowed only as the last byte, the first half of a CRLF.
        let body = rest.strip_suffix(b"\r").unwrap_or(rest);
        if body.contains(&b'\r') {
            return Err(RespError::BadLineEnding);
        }
        return Ok(None);
    };
    if lf > MAX_LINE_BYTES {
        return Err(RespError::LineTooLong);
    }
    let Some(line) = rest[..lf].strip_suffix(b"\r") else {
        return Err(RespError::BadLineEnding);
    };
    if line.contains(&b'\r') {
        return Err(RespError::BadLineEnding);
    }
    Ok(Some((line, start + lf + 1)))
}

/// `[+-]DIGITS` as an `i64`.
fn parse_integer(line: &[u8]) -> Result<i64, RespError> {
    let digits = line.strip_prefix(b"-").or(line.strip_prefix(b"+"));
    let digits = digits.unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RespError::BadInteger);
    }
    // All ASCII, so `from_utf8` cannot fail; `parse` catches overflow.
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.trim_start_matches('+').parse().ok())
        .ok_or(RespError::BadInteger)
}

/// A bulk or array length: `None` for the null `-1`, the number if it is
/// at most `max`, `too_large` if it is more.
fn parse_length(line: &[u8], max: usize, too_large: RespError) -> Result<Option<usize>, RespError> {
    if line == b"-1" {
        return Ok(None);
    }
    if line.is_empty() || !line.iter().all(u8::is_ascii_digit) {
        return Err(RespError::BadLength);
    }
    // Too many digits to fit is as much "too large" as a big number.
    match std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
    {
        Some(length) if length <= max => Ok(Some(length)),
        _ => Err(too_large),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::Bulk(text.as_bytes().to_vec())
    }

    /// Parses `input` and compares with `expected`: the value and the length
    /// it took, `Partial`, or the error.
    #[track_caller]
    fn check_parse(input: &[u8], expected: Result<Parse, RespError>) {
        assert_eq!(
            parse(input),
            expected,
            "input: {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[track_caller]
    fn complete(input: &[u8], value: Value) {
        check_parse(
            input,
            Ok(Parse::Complete {
                value,
                len: input.len(),
            }),
        );
    }

    #[test]
    fn every_reply_type() {
        complete(b"+OK\r\n", Value::Simple("OK".into()));
        complete(b"+\r\n", Value::Simple(String::new()));
        complete(
            b"-ERR unknown command 'x'\r\n",
            Value::Error("ERR unknown command 'x'".into()),
        );
        complete(b":1000\r\n", Value::Integer(1000));
        complete(b":-7\r\n", Value::Integer(-7));
        complete(b":+7\r\n", Value::Integer(7));
        complete(b":0\r\n", Value::Integer(0));
        complete(b"$5\r\nhello\r\n", bulk("hello"));
        complete(b"$0\r\n\r\n", bulk(""));
        complete(b"$-1\r\n", Value::NullBulk);
        complete(b"*0\r\n", Value::Array(vec![]));
        complete(b"*-1\r\n", Value::NullArray);
        complete(
            b"*3\r\n:1\r\n$-1\r\n+x\r\n",
            Value::Array(vec![
                Value::Integer(1),
                Value::NullBulk,
                Value::Simple("x".into()),
            ]),
        );
    }

    #[test]
    fn bulk_strings_are_binary_safe() {
        complete(
            b"$6\r\na\r\nb\0\xff\r\n",
            Value::Bulk(b"a\r\nb\0\xff".to_vec()),
        );
    }

    #[test]
    fn nested_arrays_as_xread_sends_them() {
        // XREAD reply: [[key, [[id, [field, value, …]]]]]
        let input = b"*1\r\n*2\r\n$10\r\nsse:events\r\n*1\r\n*2\r\n$15\r\n1764509000123-0\r\n*2\r\n$6\r\ntarget\r\n$3\r\nall\r\n";
        let fields = Value::Array(vec![bulk("target"), bulk("all")]);
        let entry = Value::Array(vec![bulk("1764509000123-0"), fields]);
        let stream = Value::Array(vec![bulk("sse:events"), Value::Array(vec![entry])]);
        complete(input, Value::Array(vec![stream]));
    }

    #[test]
    fn bytes_after_a_reply_are_not_part_of_it() {
        check_parse(
            b"+OK\r\n:1\r\n",
            Ok(Parse::Complete {
                value: Value::Simple("OK".into()),
                len: 5,
            }),
        );
    }

    #[test]
    fn every_prefix_of_a_valid_reply_is_partial() {
        let input: &[u8] = b"*2\r\n$3\r\nabc\r\n*2\r\n:12\r\n-ERR x\r\n";
        for end in 0..input.len() {
            check_parse(&input[..end], Ok(Parse::Partial));
        }
        assert!(matches!(parse(input), Ok(Parse::Complete { .. })));
    }

    #[test]
    fn unknown_types_are_rejected_at_once() {
        check_parse(b"%1\r\n", Err(RespError::UnknownType(b'%')));
        check_parse(b"_\r\n", Err(RespError::UnknownType(b'_')));
        check_parse(b"HTTP/1.1 400", Err(RespError::UnknownType(b'H')));
        check_parse(b"*1\r\n#t\r\n", Err(RespError::UnknownType(b'#')));
    }

    #[test]
    fn line_endings_must_be_crlf() {
        check_parse(b"+OK\n", Err(RespError::BadLineEnding));
        check_parse(b"+O\rK\r\n", Err(RespError::BadLineEnding));
        check_parse(b"+O\rK", Err(RespError::BadLineEnding));
        check_parse(b"$3\r\nabcd\r\n", Err(RespError::BadBulkEnd));
        check_parse(b"$3\r\nabcX", Err(RespError::BadBulkEnd));
        check_parse(b"$3\r\nabc\rX", Err(RespError::BadBulkEnd));
    }

    #[test]
    fn malformed_numbers_are_rejected() {
        check_parse(b":\r\n", Err(RespError::BadInteger));
        check_parse(b":1a\r\n", Err(RespError::BadInteger));
        check_parse(b":--1\r\n", Err(RespError::BadInteger));
        check_parse(b":99999999999999999999\r\n", Err(RespError::BadInteger));
        check_parse(b"$-2\r\n", Err(RespError::BadLength));
        check_parse(b"$x\r\n", Err(RespError::BadLength));
        check_parse(b"$\r\n", Err(RespError::BadLength));
        check_parse(b"*+1\r\n", Err(RespError::BadLength));
        check_parse(b"*-0\r\n", Err(RespError::BadLength));
    }

    #[test]
    fn oversized_lengths_are_rejected_before_their_bytes_arrive() {
        let too_big = format!("${}\r\n", MAX_BULK_BYTES + 1);
        check_parse(too_big.as_bytes(), Err(RespError::BulkTooLarge));
        check_parse(
            b"$99999999999999999999999\r\n",
            Err(RespError::BulkTooLarge),
        );
        let too_many = format!("*{}\r\n", MAX_ARRAY_ELEMENTS + 1);
        check_parse(too_many.as_bytes(), Err(RespError::ArrayTooLarge));
        // At the limit it is fine, and only waits for the bytes.
        let at_limit = format!("${MAX_BULK_BYTES}\r\n");
        check_parse(at_limit.as_bytes(), Ok(Parse::Partial));
    }

    #[test]
    fn a_line_that_never_ends_is_rejected() {
        let endless = format!("+{}", "a".repeat(MAX_LINE_BYTES + 1));
        check_parse(endless.as_bytes(), Err(RespError::LineTooLong));
        let long = format!("-{}\r\n", "a".repeat(MAX_LINE_BYTES + 1));
        check_parse(long.as_bytes(), Err(RespError::LineTooLong));
        let length_line = format!("${}", "1".repeat(MAX_LINE_BYTES + 1));
        check_parse(length_line.as_bytes(), Err(RespError::LineTooLong));
    }

    #[test]
    fn nesting_is_limited() {
        let at_limit = format!("{}:1\r\n", "*1\r\n".repeat(MAX_DEPTH - 1));
        assert!(matches!(
            parse(at_limit.as_bytes()),
            Ok(Parse::Complete { .. })
        ));
        let too_deep = format!("{}:1\r\n", "*1\r\n".repeat(MAX_DEPTH));
        check_parse(too_deep.as_bytes(), Err(RespError::TooDeep));
        // Empty arrays hold nothing, so they may sit at the deepest level.
        let empty_at_limit = format!("{}*0\r\n", "*1\r\n".repeat(MAX_DEPTH - 1));
        assert!(matches!(
            parse(empty_at_limit.as_bytes()),
            Ok(Parse::Complete { .. })
        ));
    }

    #[test]
    fn check_reports_the_length_without_building() {
        assert_eq!(check(b"$2\r\nab\r\n+x"), Ok(Check::Complete { len: 8 }));
        assert_eq!(check(b"$2\r\nab\r"), Ok(Check::Partial));
        assert_eq!(check(b""), Ok(Check::Partial));
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(encode_command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            encode_command(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
        let binary: [&[u8]; 2] = [b"ECHO", b"a\r\nb"];
        assert_eq!(
            encode_command(&binary),
            b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n"
        );
    }

    #[test]
    fn an_encoded_command_parses_back() {
        let encoded = encode_command(&["XADD", "sse:events", "*", "data", "line1\nline2"]);
        let expected = Value::Array(
            ["XADD", "sse:events", "*", "data", "line1\nline2"]
                .into_iter()
                .map(bulk)
                .collect(),
        );
        complete(&encoded, expected);
    }

    #[test]
    fn value_accessors() {
        assert_eq!(bulk("a").as_str(), Some("a"));
        assert_eq!(Value::Simple("OK".into()).as_str(), Some("OK"));
        assert_eq!(Value::Bulk(vec![0xff]).as_str(), None);
        assert_eq!(Value::Integer(1).as_bytes(), None);
    }
}
