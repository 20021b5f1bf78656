//! `GET /metrics` against a real server: every scrape is read by a strict
//! parser of the Prometheus text format 0.0.4, and the counters must move
//! exactly as the test's own requests predict.
//!
//! Spec: <https://prometheus.io/docs/instrumenting/exposition_formats/>,
//! "Text format details". The parser below is stricter than Prometheus
//! itself where the format says "must" or "should": one uninterrupted group
//! per metric, `TYPE` before samples, one `HELP` and one `TYPE` per name,
//! unique label sets, histogram buckets in increasing `le` order,
//! cumulative, ending in `+Inf` equal to `_count`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, find, split_response, Server};

const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The strict parser.

/// One metric family: its `# TYPE`, `# HELP` and samples, in order.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: Option<String>,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A parsed scrape: families by name, in the order they came.
#[derive(Debug, Default)]
struct Exposition {
    families: Vec<(String, Family)>,
}

impl Exposition {
    /// The value of the sample written `name{a="x",b="y"}` (labels in the
    /// order the server writes them); panics when it is missing.
    #[track_caller]
    fn value(&self, key: &str) -> f64 {
        self.samples()
            .find(|(written, _)| written == key)
            .map(|(_, value)| value)
            .unwrap_or_else(|| panic!("no sample {key}"))
    }

    /// Every sample as (`name{labels}`, value).
    fn samples(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        self.families.iter().flat_map(|(_, family)| {
            family.samples.iter().map(|sample| {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(name, value)| format!("{name}=\"{value}\""))
                    .collect();
                let key = if labels.is_empty() {
                    sample.name.clone()
                } else {
                    format!("{}{{{}}}", sample.name, labels.join(","))
                };
                (key, sample.value)
            })
        })
    }

    /// (name, type) of every family.
    fn kinds(&self) -> Vec<(String, String)> {
        self.families
            .iter()
            .map(|(name, family)| (name.clone(), family.kind.clone()))
            .collect()
    }
}

const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

/// Parses a whole scrape, or says which line breaks which rule.
fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the last line must end with a line feed".into());
    }
    let mut exposition = Exposition::default();
    let mut closed: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    // Not `lines()`: it would take a `\r` before a `\n` away unseen.
    for (index, line) in text[..text.len() - 1].split('\n').enumerate() {
        let number = index + 1;
        let fail = |message: String| format!("line {number}: {message}: {line:?}");
        if line.contains('\r') {
            return Err(fail("carriage return".into()));
        }
        if line.trim().is_empty() {
            continue;
        }
        let family_name = if let Some(rest) = line.strip_prefix("# ") {
            let Some((name, kind_or_help)) = parse_comment(rest).map_err(fail)? else {
                continue; // a plain comment
            };
            let family = open_family(&mut exposition, &mut closed, &name).map_err(fail)?;
            if !family.samples.is_empty() {
                return Err(fail("HELP or TYPE after the family's samples".into()));
            }
            match kind_or_help {
                Comment::Type(kind) if family.kind.is_empty() => family.kind = kind,
                Comment::Type(_) => return Err(fail("second TYPE line".into())),
                Comment::Help(help) if family.help.is_none() => family.help = Some(help),
                Comment::Help(_) => return Err(fail("second HELP line".into())),
            }
            name
        } else if line.starts_with('#') {
            continue; // `#` followed by anything but a space and a token
        } else {
            let sample = parse_sample(line).map_err(fail)?;
            let key = format!("{}{:?}", sample.name, sample.labels);
            if !seen.insert(key) {
                return Err(fail("same name and labels twice".into()));
            }
            let family_name = family_of(&exposition, &sample.name).map_err(fail)?;
            let family = open_family(&mut exposition, &mut closed, &family_name).map_err(fail)?;
            family.samples.push(sample);
            family_name
        };
        // Whatever came before this family is finished.
        for (name, _) in &exposition.families {
            if *name != family_name {
                closed.insert(name.clone());
            }
        }
    }
    for (name, family) in &exposition.families {
        check_family(name, family)?;
    }
    Ok(exposition)
}

enum Comment {
    Help(String),
    Type(String),
}

/// `HELP name docstring` or `TYPE name kind`; `None` for other comments.
fn parse_comment(rest: &str) -> Result<Option<(String, Comment)>, String> {
    let (token, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    match token {
        "HELP" => {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            check_metric_name(name)?;
            Ok(Some((
                name.to_string(),
                Comment::Help(unescape(help, false)?),
            )))
        }
        "TYPE" => {
            let tokens: Vec<&str> = rest.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
            let [name, kind] = tokens[..] else {
                return Err("TYPE takes exactly a name and a type".into());
            };
            check_metric_name(name)?;
            if !KINDS.contains(&kind) {
                return Err(format!("unknown type {kind:?}"));
            }
            Ok(Some((name.to_string(), Comment::Type(kind.to_string()))))
        }
        _ => Ok(None),
    }
}

/// The family a line of `name` belongs to; it must have been declared.
fn open_family<'a>(
    exposition: &'a mut Exposition,
    closed: &mut HashSet<String>,
    name: &str,
) -> Result<&'a mut Family, String> {
    if closed.contains(name) {
        return Err(format!("{name}: its lines are not one uninterrupted group"));
    }
    if let Some(index) = exposition.families.iter().position(|(n, _)| n == name) {
        return Ok(&mut exposition.families[index].1);
    }
    exposition
        .families
        .push((name.to_string(), Family::default()));
    Ok(&mut exposition.families.last_mut().expect("just pushed").1)
}

/// Which declared family a sample name belongs to: itself, or, for a
/// histogram or summary `x`, `x_bucket`, `x_sum` and `x_count`.
fn family_of(exposition: &Exposition, sample_name: &str) -> Result<String, String> {
    for (name, family) in &exposition.families {
        let suffixes: &[&str] = match family.kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        if suffixes
            .iter()
            .any(|suffix| format!("{name}{suffix}") == sample_name)
        {
            if family.kind.is_empty() {
                return Err(format!("{name}: sample before its TYPE line"));
            }
            return Ok(name.clone());
        }
    }
    Err(format!("{sample_name}: no TYPE line declares it"))
}

/// `name[{labels}] value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let tokens: Vec<&str> = rest.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
    let (value, timestamp) = match tokens[..] {
        [value] => (value, None),
        [value, timestamp] => (value, Some(timestamp)),
        _ => return Err("expected a value and an optional timestamp".into()),
    };
    if !rest.starts_with([' ', '\t']) {
        return Err("no blank before the value".into());
    }
    if let Some(timestamp) = timestamp {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("timestamp {timestamp:?} is not an int64"))?;
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// `label="value",…}`; returns what follows the `}`.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (name, after_name) = rest.split_once("=\"").ok_or("label without =\"")?;
        check_label_name(name)?;
        if labels.iter().any(|(existing, _)| existing == name) {
            return Err(format!("label {name} twice"));
        }
        // The value ends at the first `"` that is not escaped.
        let mut end = None;
        let mut escaped = false;
        for (index, byte) in after_name.bytes().enumerate() {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    end = Some(index);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("unterminated label value")?;
        labels.push((name.to_string(), unescape(&after_name[..end], true)?));
        rest = &after_name[end + 1..];
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma;
        } else if !rest.starts_with('}') {
            return Err("labels must be separated by commas".into());
        }
    }
}

/// Undoes `\\`, `\n` and (in label values) `\"`; any other escape is an error.
fn unescape(text: &str, quote_allowed: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(character) = chars.next() {
        if character != '\\' {
            if character == '"' && quote_allowed {
                return Err("unescaped double quote".into());
            }
            out.push(character);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote_allowed => out.push('"'),
            other => return Err(format!("invalid escape \\{other:?}")),
        }
    }
    Ok(out)
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn check_metric_name(name: &str) -> Result<(), String> {
    check_identifier(name, true).map_err(|_| format!("invalid metric name {name:?}"))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
fn check_label_name(name: &str) -> Result<(), String> {
    check_identifier(name, false).map_err(|_| format!("invalid label name {name:?}"))
}

fn check_identifier(name: &str, colon: bool) -> Result<(), ()> {
    let allowed =
        |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || (colon && byte == b':');
    match name.as_bytes() {
        [first, rest @ ..] if !first.is_ascii_digit() && allowed(*first) => rest
            .iter()
            .all(|byte| allowed(*byte))
            .then_some(())
            .ok_or(()),
        _ => Err(()),
    }
}

/// A float as Go's `ParseFloat` reads it: decimal digits with an optional
/// sign, point and exponent, or `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Result<f64, String> {
    let invalid = || format!("invalid value {text:?}");
    match text {
        "NaN" => return Ok(f64::NAN),
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(invalid());
    }
    if let Some(exponent) = exponent {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        if exponent.is_empty() || !digits(exponent) {
            return Err(invalid());
        }
    }
    text.parse().map_err(|_| invalid())
}

/// One histogram series (one set of labels besides `le`).
#[derive(Default)]
struct Series {
    /// (`le`, count) in the order written.
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// The rules for a whole family: a type, counters not negative, and for
/// a histogram, per label set, increasing `le`, cumulative counts, a last
/// `+Inf` bucket equal to `_count`, and a `_sum`.
fn check_family(name: &str, family: &Family) -> Result<(), String> {
    if family.kind.is_empty() {
        return Err(format!("{name}: HELP without TYPE"));
    }
    if family.kind == "counter" && family.samples.iter().any(|s| s.value < 0.0) {
        return Err(format!("{name}: a counter below zero"));
    }
    if family.kind != "histogram" {
        return Ok(());
    }
    // Group by the labels other than `le`.
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for sample in &family.samples {
        let others: Vec<_> = sample.labels.iter().filter(|(l, _)| l != "le").collect();
        let entry = series.entry(format!("{others:?}")).or_default();
        if sample.name.ends_with("_bucket") {
            let le = sample
                .labels
                .iter()
                .find(|(label, _)| label == "le")
                .ok_or(format!("{name}: a bucket without le"))?;
            entry.buckets.push((parse_value(&le.1)?, sample.value));
        } else if sample.name.ends_with("_sum") {
            entry.sum = Some(sample.value);
        } else {
            entry.count = Some(sample.value);
        }
    }
    for (
        labels,
        Series {
            buckets,
            sum,
            count,
        },
    ) in series
    {
        let fail = |message: &str| Err(format!("{name}{labels}: {message}"));
        if !buckets.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            return fail("le not increasing");
        }
        if !buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1) {
            return fail("buckets not cumulative");
        }
        let Some(&(last_le, last_count)) = buckets.last() else {
            return fail("no buckets");
        };
        if last_le != f64::INFINITY {
            return fail("no +Inf bucket");
        }
        match (sum, count) {
            (Some(_), Some(count)) if count == last_count => {}
            (Some(_), Some(_)) => return fail("+Inf bucket differs from _count"),
            _ => return fail("_sum or _count missing"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The parser can say no: each rule, broken once.

#[track_caller]
fn check_invalid(text: &str, expected: &str) {
    match parse(text) {
        Ok(parsed) => panic!("accepted {text:?} as {parsed:?}"),
        Err(error) => assert!(error.contains(expected), "{error:?} for {text:?}"),
    }
}

/// The example of the format's own documentation parses.
#[test]
fn the_spec_example_parses() {
    let text = "# HELP http_requests_total The total number of HTTP requests.\n\
        # TYPE http_requests_total counter\n\
        http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
        http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
        \n\
        # Escaping in label values:\n\
        # TYPE msdos_file_access_time_seconds gauge\n\
        msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
        # TYPE something_weird untyped\n\
        something_weird{problem=\"division by zero\"} +Inf -3982045\n\
        # HELP h A histogram.\n\
        # TYPE h histogram\n\
        h_bucket{le=\"0.05\"} 24054\n\
        h_bucket{le=\"1\"} 33444\n\
        h_bucket{le=\"+Inf\"} 144320\n\
        h_sum 53423\n\
        h_count 144320\n";
    let parsed = parse(text).expect("valid");
    assert_eq!(
        parsed.value("msdos_file_access_time_seconds{path=\"C:\\DIR\\FILE.TXT\",error=\"Cannot find file:\n\"FILE.TXT\"\"}"),
        1.458255915e9
    );
    assert_eq!(parsed.value("h_count"), 144320.0);
}

/// Every rule of the grammar and of histograms, broken once.
#[test]
fn the_parser_rejects_each_broken_rule() {
    let typed = |body: &str| format!("# TYPE a counter\n{body}");
    check_invalid("# TYPE a counter\na 1", "line feed");
    check_invalid("# TYPE a counter\r\na 1\n", "carriage return");
    check_invalid("a 1\n", "no TYPE line");
    check_invalid(&typed("b 1\n"), "no TYPE line");
    check_invalid("# TYPE 1a counter\n", "invalid metric name");
    check_invalid("# TYPE a-b counter\n", "invalid metric name");
    check_invalid("# TYPE a counters\n", "unknown type");
    check_invalid("# TYPE a counter extra\n", "exactly a name and a type");
    check_invalid("# TYPE a counter\n# TYPE a counter\n", "second TYPE");
    check_invalid("# HELP a x\n# HELP a y\n# TYPE a counter\n", "second HELP");
    check_invalid("# HELP a x\n", "HELP without TYPE");
    check_invalid("# HELP a x\\t\n# TYPE a counter\n", "invalid escape");
    check_invalid(&typed("a 1\n# HELP a late\n"), "after the family's samples");
    check_invalid(&typed("a{1l=\"x\"} 1\n"), "invalid label name");
    check_invalid(&typed("a{l=\"x\",l=\"y\"} 1\n"), "label l twice");
    check_invalid(&typed("a{l=\"x\"\"} 1\n"), "separated by commas");
    check_invalid(&typed("a{l=\"x\\q\"} 1\n"), "invalid escape");
    check_invalid(&typed("a{l=\"x} 1\n"), "unterminated");
    check_invalid(&typed("a{l=x} 1\n"), "=\"");
    check_invalid(&typed("a{l=\"x\"}1\n"), "no blank");
    check_invalid(&typed("a 1.2.3\n"), "invalid value");
    check_invalid(&typed("a 0x10\n"), "invalid value");
    check_invalid(&typed("a inf\n"), "invalid value");
    check_invalid(&typed("a\n"), "a value");
    check_invalid(&typed("a 1 2 3\n"), "a value");
    check_invalid(&typed("a 1 1.5\n"), "timestamp");
    check_invalid(&typed("a -1\n"), "below zero");
    check_invalid(&typed("a{l=\"x\"} 1\na{l=\"x\"} 2\n"), "twice");
    check_invalid(
        "# TYPE a counter\na{l=\"x\"} 1\n# TYPE b gauge\nb 1\na{l=\"y\"} 1\n",
        "uninterrupted",
    );
    let histogram = |body: &str| format!("# TYPE h histogram\n{body}");
    check_invalid(
        &histogram("h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n"),
        "differs from _count",
    );
    check_invalid(
        &histogram("h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n"),
        "not cumulative",
    );
    check_invalid(
        &histogram("h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n"),
        "le not increasing",
    );
    check_invalid(
        &histogram("h_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n"),
        "no +Inf",
    );
    check_invalid(
        &histogram("h_bucket{le=\"+Inf\"} 1\nh_count 1\n"),
        "_sum or _count missing",
    );
    check_invalid(&histogram("h_bucket 1\n"), "without le");
    check_invalid(&histogram("h 1\n"), "no TYPE line");
}

// ---------------------------------------------------------------------------
// A real server.

/// `GET /metrics`: checks the status and content type, parses strictly.
#[track_caller]
fn scrape(server: &Server) -> Exposition {
    let (status, head, body) = server.get("/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    parse(&body).unwrap_or_else(|error| panic!("{error}\n{body}"))
}

/// Scrapes until `check` holds (thread gauges settle a moment after a
/// plain request's thread ends); returns that scrape.
#[track_caller]
fn scrape_until(server: &Server, check: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = scrape(server);
        if check(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A raw stream that keeps every byte it received, to compare with the
/// server's byte counter.
struct Counted {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Counted {
    fn open(server: &Server, user: &str) -> Counted {
        Counted::open_with(server, user, "")
    }

    /// Opens a stream with extra header lines (each ending in `\r\n`).
    fn open_with(server: &Server, user: &str, extra_headers: &str) -> Counted {
        let mut stream = connect(server.addr);
        let request = format!("GET /sse/{user} HTTP/1.1\r\nHost: test\r\n{extra_headers}\r\n");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut counted = Counted {
            stream,
            received: Vec::new(),
        };
        // The head, `:`, `retry:` and the id-only block: three blank lines.
        counted.read_until(|bytes| count(bytes, b"\n\n") >= 3);
        counted
    }

    /// Reads until `done` holds for all bytes received so far.
    #[track_caller]
    fn read_until(&mut self, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut chunk = [0u8; 4096];
        while !done(&self.received) {
            assert!(Instant::now() < deadline, "{:?}", self.text());
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => panic!("stream ended: {:?}", self.text()),
                Ok(count) => self.received.extend_from_slice(&chunk[..count]),
            }
        }
    }

    /// Reads until `data: {text}\n\n` has arrived `times` times in all.
    fn read_pushed(&mut self, text: &str, times: usize) {
        let needle = format!("data: {text}\n\n");
        self.read_until(|bytes| count(bytes, needle.as_bytes()) == times);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    let mut rest = haystack;
    let mut found = 0;
    while let Some(index) = find(rest, needle) {
        found += 1;
        rest = &rest[index + needle.len()..];
    }
    found
}

/// Every counter of a fresh server, with the test's requests, moves exactly
/// as predicted: streams and users, pushed frames and their bytes, publish
/// outcomes, rejects by status, closes by reason.
#[test]
fn counters_move_exactly_as_the_requests_predict() {
    // No timer frames and no heartbeats: every byte a stream gets is one
    // the test asked for.
    let server = Server::start(&["--interval", "0", "--heartbeat", "0"]);
    let first = scrape_until(&server, |s| s.value("sse_connection_threads") == 1.0);
    for (key, value) in first.samples() {
        let expected = if key == "sse_connection_threads" {
            1.0
        } else {
            0.0
        };
        assert_eq!(value, expected, "{key} in a fresh server");
    }

    let mut amy_1 = Counted::open(&server, "amy");
    let mut amy_2 = Counted::open(&server, "amy");
    let mut bob = Counted::open(&server, "bob");
    let open = scrape_until(&server, |s| s.value("sse_connection_threads") == 4.0);
    assert_eq!(open.value("sse_open_streams"), 3.0);
    assert_eq!(open.value("sse_users"), 2.0);
    assert_eq!(open.value("sse_connection_threads"), 4.0);

    assert_eq!(server.post("/send/amy", "hi amy").0, 202);
    assert_eq!(server.post("/broadcast", "hi all").0, 202);
    amy_1.read_pushed("hi all", 1);
    amy_2.read_pushed("hi all", 1);
    bob.read_pushed("hi all", 1);
    amy_1.read_pushed("hi amy", 1);
    amy_2.read_pushed("hi amy", 1);
    assert_eq!(server.post("/broadcast", "").0, 400);
    assert_eq!(server.get("/nope").0, 404);
    assert_eq!(server.post("/metrics", "x").0, 405);

    // Every stream has read all that was written to it: nothing else is.
    let bytes = amy_1.received.len() + amy_2.received.len() + bob.received.len();
    drop(bob);
    drop(amy_2);
    server
        .wait_for_log_count("close user=", 2, WAIT)
        .expect("two closes logged");
    let last = scrape_until(&server, |s| s.value("sse_connection_threads") == 2.0);
    let expected: &[(&str, f64)] = &[
        ("sse_open_streams", 1.0),
        ("sse_users", 1.0),
        ("sse_connection_threads", 2.0),
        ("sse_timer_frames_total", 0.0),
        ("sse_pushed_frames_total", 5.0),
        (
            "sse_publishes_total{outcome=\"accepted\",status=\"202\"}",
            2.0,
        ),
        (
            "sse_publishes_total{outcome=\"rejected\",status=\"400\"}",
            1.0,
        ),
        ("sse_rejects_total{status=\"400\"}", 1.0),
        ("sse_rejects_total{status=\"404\"}", 1.0),
        ("sse_rejects_total{status=\"405\"}", 1.0),
        ("sse_closes_total{reason=\"eof\"}", 2.0),
        ("sse_stream_bytes_total", bytes as f64),
        ("sse_publish_latency_seconds_count", 2.0),
        ("sse_tick_lateness_seconds_count", 0.0),
    ];
    for (key, value) in last.samples() {
        let expected_value = expected
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value);
        match expected_value {
            Some(expected_value) => assert_eq!(value, expected_value, "{key}"),
            // Every other sample is 0, but for the publish latency's sum
            // and buckets, checked below.
            None if key.starts_with("sse_publish_latency_seconds") => {}
            None => assert_eq!(value, 0.0, "{key}"),
        }
    }
    assert_eq!(
        last.value("sse_publish_latency_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert!(last.value("sse_publish_latency_seconds_sum") > 0.0);
}

/// Every timer frame written is counted once in the frame counter and once
/// in the lateness histogram, and nothing moves once the stream is closed.
#[test]
fn every_timer_frame_is_counted_and_timed() {
    let server = Server::start(&["--interval", "20ms"]);
    let mut stream = Counted::open(&server, "ticker");
    stream.read_until(|bytes| count(bytes, b"data: {\"userId\"") >= 5);
    drop(stream);
    server
        .wait_for_log("close user=\"ticker\"", WAIT)
        .expect("close logged");
    let first = scrape(&server);
    let frames = first.value("sse_timer_frames_total");
    assert!(frames >= 5.0, "{frames}");
    assert_eq!(first.value("sse_tick_lateness_seconds_count"), frames);
    assert_eq!(
        first.value("sse_tick_lateness_seconds_bucket{le=\"+Inf\"}"),
        frames
    );
    assert_eq!(first.value("sse_closes_total{reason=\"eof\"}"), 1.0);
    assert_eq!(first.value("sse_open_streams"), 0.0);
    thread::sleep(Duration::from_millis(100));
    let second = scrape(&server);
    assert_eq!(second.value("sse_timer_frames_total"), frames);
    assert_eq!(
        second.value("sse_tick_lateness_seconds_sum"),
        first.value("sse_tick_lateness_seconds_sum")
    );
}

/// Events replayed after a reconnection count as pushed frames too.
#[test]
fn replayed_events_count_as_pushed_frames() {
    let server = Server::start(&["--interval", "0", "--heartbeat", "0"]);
    let first = Counted::open(&server, "r");
    let text = first.text();
    let newest = text
        .rsplit("id: ")
        .next()
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("no id-only block in {text:?}"))
        .to_string();
    drop(first);
    server
        .wait_for_log("close user=\"r\"", WAIT)
        .expect("closed");
    assert_eq!(server.post("/send/r", "one").0, 202);
    assert_eq!(server.post("/send/r", "two").0, 202);
    let mut again = Counted::open_with(&server, "r", &format!("Last-Event-ID: {newest}\r\n"));
    again.read_pushed("two", 1);
    // A frame is counted once its write returned, which may be a moment
    // after the client read it.
    let scrape = scrape_until(&server, |scrape| {
        scrape.value("sse_pushed_frames_total") >= 2.0
    });
    assert_eq!(scrape.value("sse_pushed_frames_total"), 2.0);
    assert_eq!(
        scrape.value("sse_publishes_total{outcome=\"accepted\",status=\"202\"}"),
        2.0
    );
}

/// `/metrics` is guarded like `/users`: the CORS header of
/// `--allow-origin`, a bodiless `HEAD`, and `503` when the server is full.
#[test]
fn metrics_is_guarded_like_users() {
    let server = Server::start(&[
        "--allow-origin",
        "https://app.example",
        "--max-clients",
        "1",
    ]);
    let (status, head, _) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("\r\nAccess-Control-Allow-Origin: https://app.example"),
        "{head}"
    );
    let raw = server.exchange(b"HEAD /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("Content-Length: "), "{head}");
    assert_eq!(body, "");

    let _stream = Counted::open(&server, "a");
    // Idle connections that have not sent a request hold threads too.
    let idle: Vec<_> = (0..40).map(|_| server.connect()).collect();
    let deadline = Instant::now() + WAIT;
    let mut answer = server.get("/metrics");
    while answer.0 != 503 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        answer = server.get("/metrics");
    }
    assert_eq!(answer.0, 503, "{answer:?}");
    assert!(answer.1.contains("Retry-After: 5"), "{}", answer.1);
    drop(idle);
    let deadline = Instant::now() + WAIT;
    while server.get("/metrics").0 != 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let scrape = scrape(&server);
    assert!(scrape.value("sse_rejects_total{status=\"503\"}") >= 1.0);
    assert_eq!(scrape.value("sse_open_streams"), 1.0);
}

/// With a publish token, a publish without it is counted as rejected with
/// `401`, and one with it as accepted.
#[test]
fn publish_outcomes_are_counted_by_status() {
    let server = Server::start(&["--publish-token", "sesame"]);
    assert_eq!(server.post("/broadcast", "no token").0, 401);
    let raw = server.exchange(
        b"POST /broadcast HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer sesame\r\n\
          Content-Length: 2\r\n\r\nok",
    );
    assert_eq!(split_response(&raw).0, 202);
    let scrape = scrape(&server);
    assert_eq!(
        scrape.value("sse_publishes_total{outcome=\"rejected\",status=\"401\"}"),
        1.0
    );
    assert_eq!(
        scrape.value("sse_publishes_total{outcome=\"accepted\",status=\"202\"}"),
        1.0
    );
    assert_eq!(scrape.value("sse_rejects_total{status=\"401\"}"), 1.0);
    assert_eq!(scrape.value("sse_publish_latency_seconds_count"), 1.0);
}

/// A stream refused for want of a subscriber token is a reject like any
/// other: one `reject` line, one count.
#[test]
fn refused_streams_are_counted_as_rejects() {
    let secret = "s".repeat(32);
    let server = Server::start_with_env(&[], &[("SSE_SUBSCRIBE_SECRET", secret.as_str())]);
    assert_eq!(server.get("/sse/alice").0, 401);
    server
        .wait_for_log("reject status=401", WAIT)
        .expect("refusal logged");
    let scrape = scrape(&server);
    assert_eq!(scrape.value("sse_rejects_total{status=\"401\"}"), 1.0);
}

/// The families, in order, with their types: what the README's table lists.
#[test]
fn a_scrape_has_every_family_with_its_type() {
    let server = Server::start(&[]);
    let kinds = scrape(&server).kinds();
    let expected = [
        ("sse_open_streams", "gauge"),
        ("sse_users", "gauge"),
        ("sse_connection_threads", "gauge"),
        ("sse_timer_frames_total", "counter"),
        ("sse_pushed_frames_total", "counter"),
        ("sse_stream_bytes_total", "counter"),
        ("sse_publishes_total", "counter"),
        ("sse_rejects_total", "counter"),
        ("sse_closes_total", "counter"),
        ("sse_publish_latency_seconds", "histogram"),
        ("sse_tick_lateness_seconds", "histogram"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect();
    assert_eq!(kinds, expected);
}
