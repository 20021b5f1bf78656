//! A randomized test of the request parser: mutated valid requests never
//! make `request::parse` (or `route::route` after it) panic, and every
//! answer is one it documents.
//!
//! Deterministic: a small std-only PRNG with a fixed seed. To explore other
//! inputs or replay a failure, set `FUZZ_SEED` (decimal or `0x…` hex) and
//! `FUZZ_ITERATIONS`; every failure message names the seed, the iteration
//! and the input.

use std::panic::{self, AssertUnwindSafe};

use sse_server::limits::{MAX_HEADER_COUNT, MAX_HEAD_BYTES};
use sse_server::request::{parse, Method, Parse, Request, RequestError, Version};
use sse_server::route;

const DEFAULT_SEED: u64 = 0x5EED_F022;
const DEFAULT_ITERATIONS: u64 = 200_000;

/// Valid requests to start from, each a complete head (some with a body).
const CORPUS: &[&[u8]] = &[
    b"GET /sse/alice HTTP/1.1\r\nHost: localhost:3000\r\nAccept: text/event-stream\r\n\r\n",
    b"GET /sse/%C3%A9l%C3%A8ve?lastEventId=42 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 41\r\n\r\n",
    b"HEAD /sse/bob HTTP/1.0\r\n\r\n",
    b"GET /users HTTP/1.1\nHost: x\n\n",
    b"\r\nGET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
    b"POST /send/bob?event=chat.v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
    b"GET http://example.com:8080/sse/a%2Fb?x=1&lastEventId=7#frag HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"DELETE /users HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tabs:\t v \t\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\nHost: x\r\nX-Obs-Text: caf\xe9\r\n\r\n",
];

/// Bytes and fragments the mutator likes to insert: the parser's
/// delimiters and the edges of its grammar.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b"\x00",
    b"%",
    b"%zz",
    b"%FF",
    b"?",
    b"#",
    b"/",
    b"..",
    b"*",
    b"http://",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"HTTP/1.",
    b"\r\n\r\n",
    b"\x7f",
    b"\xff",
    b"\xc3",
    b"Host: x\r\n",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b" folded\r\n",
    b"GET ",
    b"/sse/",
    b"=",
];

/// splitmix64: tiny, fast, and good enough to drive a mutator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Reads a `u64` from the environment, decimal or `0x` hex.
fn env_u64(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
}

/// Mutated corpus entries never panic the parser or the router, and every
/// result is `Partial`, a sane `Complete`, or a documented error.
#[test]
fn mutated_requests_never_panic_and_results_are_sane() {
    let seed = env_u64("FUZZ_SEED", DEFAULT_SEED);
    let iterations = env_u64("FUZZ_ITERATIONS", DEFAULT_ITERATIONS);
    let mut rng = Rng(seed);
    let mut outcomes = [0u64; 3]; // partial, complete, error
    for iteration in 0..iterations {
        let mut input = CORPUS[rng.below(CORPUS.len())].to_vec();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut input);
        }
        let checked = panic::catch_unwind(AssertUnwindSafe(|| check_input(&input)));
        match checked {
            Ok(Ok(kind)) => outcomes[kind] += 1,
            Ok(Err(problem)) => fail(seed, iteration, &input, &problem),
            Err(payload) => fail(seed, iteration, &input, &panic_message(payload)),
        }
    }
    eprintln!(
        "fuzz: seed={seed:#x} iterations={iterations} partial={} complete={} error={}",
        outcomes[0], outcomes[1], outcomes[2]
    );
    // The mutator must reach all three outcomes, or it tests too little.
    if iterations >= 10_000 {
        assert!(outcomes.iter().all(|&count| count > 0), "{outcomes:?}");
    }
}

/// Incremental arrival never produces a spurious error: every prefix of a
/// valid request is `Partial` until the head is complete, then `Complete`
/// with the same head.
#[test]
fn every_prefix_of_a_valid_request_is_partial_or_complete() {
    for full in CORPUS {
        let Ok(Parse::Complete { request, head_len }) = parse(full) else {
            panic!(
                "corpus entry is not valid: {:?}",
                String::from_utf8_lossy(full)
            );
        };
        for end in 0..=full.len() {
            let prefix = &full[..end];
            match parse(prefix) {
                Ok(Parse::Partial) if end < head_len => {}
                Ok(Parse::Complete {
                    request: seen,
                    head_len: seen_len,
                }) if end >= head_len => {
                    assert_eq!((&seen, seen_len), (&request, head_len));
                }
                other => panic!(
                    "prefix {:?} of {:?} (head_len {head_len}) gave {other:?}",
                    String::from_utf8_lossy(prefix),
                    String::from_utf8_lossy(full)
                ),
            }
        }
    }
}

/// Applies one random mutation.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    let len = input.len();
    match rng.below(10) {
        // Flip one bit.
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        // Overwrite one byte with any value.
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.next() as u8;
        }
        // Insert a random byte.
        2 => {
            let at = rng.below(len + 1);
            input.insert(at, rng.next() as u8);
        }
        // Insert a grammar token.
        3 | 4 => {
            let at = rng.below(len + 1);
            let token = TOKENS[rng.below(TOKENS.len())];
            input.splice(at..at, token.iter().copied());
        }
        // Delete a range.
        5 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(8)).min(len);
            input.drain(start..end);
        }
        // Duplicate a range, now and then many times (to cross the limits).
        6 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(40)).min(len);
            let copies = if rng.chance(50) {
                300
            } else {
                1 + rng.below(3)
            };
            let piece: Vec<u8> = input[start..end].repeat(copies);
            input.splice(end..end, piece);
        }
        // Truncate.
        7 if len > 0 => input.truncate(rng.below(len)),
        // Splice: a prefix of this input and a suffix of another request.
        8 => {
            let other = CORPUS[rng.below(CORPUS.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        // Swap two bytes.
        _ if len > 1 => {
            let (a, b) = (rng.below(len), rng.below(len));
            input.swap(a, b);
        }
        _ => input.push(rng.next() as u8),
    }
    // Keep inputs a size the limits care about, so iterations stay cheap.
    input.truncate(3 * MAX_HEAD_BYTES);
}

/// Parses `input` and checks the result; routes complete requests.
/// Returns 0 for partial, 1 for complete, 2 for an error.
fn check_input(input: &[u8]) -> Result<usize, String> {
    match parse(input) {
        Ok(Parse::Partial) => {
            if input.len() > MAX_HEAD_BYTES {
                return Err(format!("partial at {} bytes, over the limit", input.len()));
            }
            Ok(0)
        }
        Ok(Parse::Complete { request, head_len }) => {
            check_complete(input, &request, head_len)?;
            let again = parse(&input[..head_len]);
            let same = matches!(&again, Ok(Parse::Complete { request: r, head_len: n })
                if *r == request && *n == head_len);
            if !same {
                return Err(format!("the head alone parses differently: {again:?}"));
            }
            // Incremental arrival: shorter prefixes of a valid head are
            // never errors.
            for end in [
                head_len - 1,
                head_len.saturating_sub(2),
                head_len / 2,
                head_len / 3,
            ] {
                let shorter = parse(&input[..end]);
                if shorter != Ok(Parse::Partial) {
                    return Err(format!("prefix of {end} bytes gave {shorter:?}"));
                }
            }
            check_route(&request)?;
            Ok(1)
        }
        Err(error) => {
            check_error(error)?;
            // An error is final: more bytes never make the head valid.
            let mut longer = input.to_vec();
            longer.extend_from_slice(b"\r\n\r\n");
            if let Ok(later) = parse(&longer) {
                return Err(format!(
                    "{error:?}, but with an empty line appended: {later:?}"
                ));
            }
            Ok(2)
        }
    }
}

fn check_complete(input: &[u8], request: &Request, head_len: usize) -> Result<(), String> {
    let problem = |what: &str| Err(format!("{what}: {request:?} head_len={head_len}"));
    if head_len == 0 || head_len > input.len() || head_len > MAX_HEAD_BYTES {
        return problem("head_len out of range");
    }
    let head = &input[..head_len];
    if !(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n")) {
        return problem("head does not end with an empty line");
    }
    let method = request.method.as_str();
    let is_token = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
    };
    if !is_token(method) {
        return problem("method is not a token");
    }
    let known = matches!(request.method, Method::Get | Method::Head | Method::Post);
    if known != ["GET", "HEAD", "POST"].contains(&method) {
        return problem("method misclassified");
    }
    if !request.path.starts_with('/') || request.path.contains(['?', '#']) {
        return problem("path is not an absolute path");
    }
    let graphic = |text: &str| text.bytes().all(|byte| byte.is_ascii_graphic());
    if !graphic(&request.path) || !request.query.as_deref().map_or(true, graphic) {
        return problem("target holds bytes a URI cannot");
    }
    if request
        .query
        .as_deref()
        .is_some_and(|query| query.contains('#'))
    {
        return problem("query holds a fragment");
    }
    if !matches!(request.version, Version::Http10 | Version::Http11) {
        return problem("unexpected version");
    }
    if request.headers.len() > MAX_HEADER_COUNT {
        return problem("too many headers accepted");
    }
    for header in &request.headers {
        if !is_token(&header.name) {
            return problem("header name is not a token");
        }
        let value = &header.value;
        let bad_char = value.chars().any(|c| c != '\t' && (c < ' ' || c == '\x7f'));
        let untrimmed = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
        if bad_char || untrimmed {
            return problem("header value not clean");
        }
    }
    Ok(())
}

/// The router never panics on a parsed request, and what it accepts is
/// well-formed.
fn check_route(request: &Request) -> Result<(), String> {
    let query = request.query.as_deref();
    let _ = route::last_event_id(request.header("Last-Event-ID"), query);
    match route::route(&request.method, &request.path, query) {
        Ok(route::Route::Stream { user_id, .. }) | Ok(route::Route::Send { user_id, .. }) => {
            let valid = !user_id.is_empty()
                && user_id.len() <= 128
                && !user_id.chars().any(char::is_control)
                && user_id != "."
                && user_id != "..";
            if valid {
                Ok(())
            } else {
                Err(format!("router accepted userId {user_id:?}"))
            }
        }
        Ok(_) => Ok(()),
        Err(error) => {
            if [400, 404, 405, 501].contains(&error.status()) {
                Ok(())
            } else {
                Err(format!(
                    "route error {error:?} has status {}",
                    error.status()
                ))
            }
        }
    }
}

fn check_error(error: RequestError) -> Result<(), String> {
    let reason = error.reason();
    if ![400, 414, 431, 505].contains(&error.status()) {
        return Err(format!("{error:?} has status {}", error.status()));
    }
    if reason.is_empty() || reason != reason.to_lowercase() || reason.ends_with('.') {
        return Err(format!("{error:?} has reason {reason:?}"));
    }
    Ok(())
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        format!("panicked: {text}")
    } else if let Some(text) = payload.downcast_ref::<String>() {
        format!("panicked: {text}")
    } else {
        "panicked".to_string()
    }
}

fn fail(seed: u64, iteration: u64, input: &[u8], problem: &str) -> ! {
    panic!(
        "{problem}\n  seed: FUZZ_SEED={seed:#x} (iteration {iteration})\n  input ({} bytes): {:?}",
        input.len(),
        String::from_utf8_lossy(input)
    );
}
