//! Feeds byte streams to the event-stream parser (`src/eventstream.rs`) in
//! the pieces it is given, and prints what comes out: the Rust half of the
//! differential test `scripts/clients/parser-diff.mjs`, which feeds the same
//! pieces to the npm `eventsource-parser` package and compares.
//!
//! ```text
//! printf 'C 646174613a20610a0a\nE\n' | cargo run --example eventstream_dump
//! {"id":"","event":"message","data":"a"}
//! END
//! ```
//!
//! Input, one command per line: `C HEX` feeds the bytes HEX encodes (one
//! read); `E` ends the stream (a new one starts after it). Output: one JSON
//! line per event (`id` is the last event ID string, as `listen` prints it)
//! or per valid `retry:` (`{"retry":N}`), and `END` after each stream. A
//! stream that breaks the parser's size limit prints `{"error":"…"}`.

use std::io::{self, BufRead, Write};

use sse_server::eventstream::{Output, Parser};
use sse_server::json::Quoted;

fn main() -> io::Result<()> {
    let stdin = io::stdin().lock();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let mut parser = Parser::new("");
    let mut outputs = Vec::new();
    let mut failed = false;
    for line in stdin.lines() {
        let line = line?;
        if line == "E" {
            parser = Parser::new("");
            failed = false;
            writeln!(stdout, "END")?;
            continue;
        }
        let Some(hex) = line.strip_prefix("C ") else {
            return Err(io::Error::other(format!("bad command: {line:?}")));
        };
        let bytes = decode_hex(hex).ok_or_else(|| io::Error::other("bad hex"))?;
        if failed {
            continue;
        }
        if let Err(error) = parser.feed(&bytes, &mut outputs) {
            writeln!(stdout, "{{\"error\":{}}}", Quoted(error.reason()))?;
            failed = true;
        }
        for output in outputs.drain(..) {
            match output {
                Output::Event(event) => event.write_json_line(&mut stdout)?,
                Output::Retry(milliseconds) => writeln!(stdout, "{{\"retry\":{milliseconds}}}")?,
            }
        }
    }
    stdout.flush()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(hex.get(index..index + 2)?, 16).ok())
        .collect()
}
