//! The README's tables that mirror code are checked against the code, so
//! they cannot drift apart: the limits table against `src/limits.rs`, the
//! flags block against `--help`, the close reasons against `EndReason`.

use std::collections::BTreeMap;
use std::time::Duration;

use sse_server::config::USAGE;
use sse_server::connection::EndReason;

const README: &str = include_str!("../README.md");
const LIMITS_SOURCE: &str = include_str!("../src/limits.rs");

/// The rows of the first table after `heading`: each row's cells, trimmed.
fn table_after(heading: &str) -> Vec<Vec<String>> {
    let start = README
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the README"));
    README[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // the header row and its separator
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

/// Every `pub const NAME: TYPE = VALUE;` of `src/limits.rs`, with its value
/// written the way the README writes it.
fn limits_in_source() -> BTreeMap<String, String> {
    let mut limits = BTreeMap::new();
    let mut rest = LIMITS_SOURCE;
    while let Some(start) = rest.find("pub const ") {
        rest = &rest[start + "pub const ".len()..];
        let end = rest.find(';').expect("a const ends with ;");
        let declaration = &rest[..end];
        let (name, typed) = declaration.split_once(':').expect("NAME: TYPE");
        let (kind, value) = typed.split_once('=').expect("TYPE = VALUE");
        let shown = show(name.trim(), kind.trim(), value.trim());
        limits.insert(name.trim().to_string(), shown);
        rest = &rest[end..];
    }
    limits
}

/// A value as the README shows it: `8 KiB`, `16 MiB`, `1 h`, `10 s`, `500 ms`, `64`.
fn show(name: &str, kind: &str, value: &str) -> String {
    if kind == "Duration" {
        return show_duration(duration(value));
    }
    let number = product(value);
    if name.ends_with("_BYTES") {
        return match number {
            n if n % (1024 * 1024) == 0 => format!("{} MiB", n / (1024 * 1024)),
            n if n % 1024 == 0 => format!("{} KiB", n / 1024),
            n => format!("{n} bytes"),
        };
    }
    if name.ends_with("_MS") {
        return format!("{number} ms");
    }
    if name.ends_with("_SECS") {
        return format!("{number} s");
    }
    number.to_string()
}

fn show_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() == 0 && secs >= 3600 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if duration.as_millis() % 1000 == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// `Duration::from_secs(N)` or `Duration::from_millis(N)`.
fn duration(value: &str) -> Duration {
    let inner = |prefix: &str| {
        value
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .map(product)
    };
    if let Some(secs) = inner("Duration::from_secs(") {
        Duration::from_secs(secs)
    } else if let Some(millis) = inner("Duration::from_millis(") {
        Duration::from_millis(millis)
    } else {
        panic!("teach tests/readme.rs to read {value:?}")
    }
}

/// `8 * 1024`, `1_000`: a product of integer literals.
fn product(value: &str) -> u64 {
    value
        .split('*')
        .map(|factor| {
            factor
                .trim()
                .replace('_', "")
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("teach tests/readme.rs to read {value:?}"))
        })
        .product()
}

/// The limits tables (the server's and the client commands') list every
/// constant of `src/limits.rs` with its value.
#[test]
fn limits_table_matches_limits_rs() {
    let in_source = limits_in_source();
    let server_side = table_after("## Limits and timeouts");
    let client_side = table_after("The client side (`sse-server listen`");
    let in_readme: BTreeMap<String, String> = server_side
        .into_iter()
        .chain(client_side)
        .map(|row| (row[0].trim_matches('`').to_string(), row[1].clone()))
        .collect();
    assert!(in_source.len() > 20, "read only {in_source:?}");
    assert_eq!(in_readme, in_source);
}

/// The flags block is the flag lines of `--help`.
#[test]
fn flags_block_matches_help() {
    let start = README.find("## Flags").expect("a Flags section");
    let block: Vec<&str> = README[start..]
        .lines()
        .skip_while(|line| !line.starts_with("```"))
        .skip(1)
        .take_while(|line| !line.starts_with("```"))
        .filter(|line| line.starts_with("  "))
        .collect();
    let help: Vec<&str> = USAGE
        .lines()
        .filter(|line| line.starts_with("  "))
        .filter(|line| !line.contains("--help") && !line.contains("--version"))
        .collect();
    assert_eq!(block, help);
}

/// The close reasons table has every `EndReason`, in order.
#[test]
fn close_reasons_match_end_reason() {
    let in_readme: Vec<String> = table_after("Close reasons")
        .into_iter()
        .map(|row| row[0].trim_matches('`').to_string())
        .collect();
    let in_code: Vec<&str> = EndReason::ALL
        .iter()
        .map(|reason| reason.as_str())
        .collect();
    assert_eq!(in_readme, in_code);
}
