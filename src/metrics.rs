//! What `GET /metrics` reports: counters every thread bumps with one atomic
//! add, and the Prometheus text format they are written in.
//!
//! Spec: Prometheus "Exposition formats", text format version 0.0.4,
//! <https://prometheus.io/docs/instrumenting/exposition_formats/>. One
//! sample or comment per line, each line ending in `\n`:
//!
//! ```text
//! # HELP metric_name docstring          (docstring: `\` and line feed escaped as `\\`, `\n`)
//! # TYPE metric_name counter|gauge|histogram|summary|untyped
//! metric_name [ "{" label_name "=" `"` label_value `"` { "," … } [ "," ] "}" ] value [ timestamp ]
//!
//! metric_name = [a-zA-Z_:][a-zA-Z0-9_:]*     label_name = [a-zA-Z_][a-zA-Z0-9_]*
//! label_value: any UTF-8, with `\`, `"` and line feed escaped as `\\`, `\"`, `\n`
//! ```
//!
//! All lines of a metric come as one group, `HELP` and `TYPE` first. A
//! histogram `x` is written as `x_bucket{le="…"}` lines, cumulative and in
//! increasing order of `le`, the last one `le="+Inf"` and equal to
//! `x_count`; then `x_sum` and `x_count`.
//!
//! The hot path: counting a frame, a byte count, a close or a reject is one
//! `fetch_add`, observing a histogram two (its bucket and its sum). No lock,
//! no allocation. `Relaxed` is enough because no counter guards other
//! memory: a scrape may see one counter a moment ahead of another, as any
//! scrape of a live server does. A histogram keeps each bucket's own count
//! and adds them up when written, so its `+Inf` bucket always equals its
//! `_count`, even in a scrape taken in the middle of an observation.
//!
//! Gauges (open streams, users, threads) are not kept here: they already
//! exist elsewhere (the registry's counts, the live-thread map) and are
//! read at scrape time, see [`Gauges`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::end_reason::EndReason;

/// `Content-Type` of a scrape: the text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Statuses a publish request can be answered with; any other lands in
/// `status="other"`. `202` is the one accepted outcome.
pub const PUBLISH_STATUSES: [u16; 9] = [202, 400, 401, 403, 408, 411, 413, 417, 503];

/// Statuses of the `reject` log lines; any other lands in `status="other"`.
/// `200` is a stream request over `--max-clients` (see `stream.rs`).
pub const REJECT_STATUSES: [u16; 15] = [
    200, 400, 401, 403, 404, 405, 408, 411, 413, 414, 417, 431, 501, 503, 505,
];

/// Upper bounds (`le`) of the publish latency histogram: 100 µs to 2 s.
pub const PUBLISH_LATENCY_BOUNDS: [Duration; 14] = [
    Duration::from_micros(100),
    Duration::from_micros(200),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Upper bounds (`le`) of the tick lateness histogram: 1 ms to 2 s.
pub const TICK_LATENESS_BOUNDS: [Duration; 11] = [
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Every counter and histogram of the server; one per server, in `Shared`.
#[derive(Debug)]
pub struct Metrics {
    /// Timer frames written in full.
    timer_frames: AtomicU64,
    /// Pushed events written in full to a stream, live or replayed.
    pushed_frames: AtomicU64,
    /// Bytes written to event streams.
    stream_bytes: AtomicU64,
    /// Publish requests answered, by [`PUBLISH_STATUSES`] index; the last
    /// slot is any other status.
    publishes: [AtomicU64; PUBLISH_STATUSES.len() + 1],
    /// `reject` log lines, by [`REJECT_STATUSES`] index; the last slot is
    /// any other status.
    rejects: [AtomicU64; REJECT_STATUSES.len() + 1],
    /// Streams ended, by [`EndReason`] (its index in `EndReason::ALL`).
    closes: [AtomicU64; EndReason::ALL.len()],
    /// Time from a publish's start until its event is queued and flushed.
    publish_latency: Histogram<{ PUBLISH_LATENCY_BOUNDS.len() }>,
    /// How late each timer frame is written, against its due time.
    tick_lateness: Histogram<{ TICK_LATENESS_BOUNDS.len() }>,
}

/// The gauges, read by the caller at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Event streams open now.
    pub streams: usize,
    /// Distinct users with an open stream.
    pub users: usize,
    /// Connection threads alive, the scrape's own included.
    pub threads: usize,
}

/// A histogram with fixed upper bounds and one atomic count per bucket.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: &'static [Duration; N],
    /// `counts[i]`: observations in `(bounds[i - 1], bounds[i]]`.
    counts: [AtomicU64; N],
    /// Observations above every bound (only the `+Inf` bucket has them).
    over: AtomicU64,
    /// Sum of all observations, in nanoseconds (u64: 584 years of them).
    sum_ns: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            timer_frames: AtomicU64::new(0),
            pushed_frames: AtomicU64::new(0),
            stream_bytes: AtomicU64::new(0),
            publishes: Default::default(),
            rejects: Default::default(),
            closes: Default::default(),
            publish_latency: Histogram::new(&PUBLISH_LATENCY_BOUNDS),
            tick_lateness: Histogram::new(&TICK_LATENESS_BOUNDS),
        }
    }

    /// A timer frame was written in full.
    pub fn count_timer_frame(&self) {
        self.timer_frames.fetch_add(1, Relaxed);
    }

    /// A pushed event was written in full (live or replayed).
    pub fn count_pushed_frame(&self) {
        self.pushed_frames.fetch_add(1, Relaxed);
    }

    /// `count` bytes went to an event stream's socket.
    pub fn count_stream_bytes(&self, count: usize) {
        self.stream_bytes.fetch_add(count as u64, Relaxed);
    }

    /// A publish request was answered with `status`.
    pub fn count_publish(&self, status: u16) {
        self.publishes[slot(&PUBLISH_STATUSES, status)].fetch_add(1, Relaxed);
    }

    /// A `reject status=…` line was logged.
    pub fn count_reject(&self, status: u16) {
        self.rejects[slot(&REJECT_STATUSES, status)].fetch_add(1, Relaxed);
    }

    /// A stream ended (and logged its `close` line).
    pub fn count_close(&self, reason: EndReason) {
        self.closes[reason as usize].fetch_add(1, Relaxed);
    }

    /// A publish took `took` from its start until its event was queued on
    /// every target and flushed.
    pub fn observe_publish_latency(&self, took: Duration) {
        self.publish_latency.observe(took);
    }

    /// A timer frame was written `late` after its due time.
    pub fn observe_tick_lateness(&self, late: Duration) {
        self.tick_lateness.observe(late);
    }

    /// The whole scrape, in the text format.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let gauge = |out: &mut String, name, help, value: usize| {
            write_family(out, name, "gauge", help);
            write_sample(out, name, &[], value as u64);
        };
        gauge(
            &mut out,
            "sse_open_streams",
            "Event streams open now.",
            gauges.streams,
        );
        gauge(
            &mut out,
            "sse_users",
            "Distinct users with at least one open stream.",
            gauges.users,
        );
        gauge(
            &mut out,
            "sse_connection_threads",
            "Connection threads alive now (streams and plain requests, this scrape included).",
            gauges.threads,
        );
        let counter = |out: &mut String, name, help, value: &AtomicU64| {
            write_family(out, name, "counter", help);
            write_sample(out, name, &[], value.load(Relaxed));
        };
        counter(
            &mut out,
            "sse_timer_frames_total",
            "Timer frames written in full.",
            &self.timer_frames,
        );
        counter(
            &mut out,
            "sse_pushed_frames_total",
            "Pushed events written in full to a stream, live or replayed.",
            &self.pushed_frames,
        );
        counter(
            &mut out,
            "sse_stream_bytes_total",
            "Bytes written to event streams (heads, frames, comments; not plain replies).",
            &self.stream_bytes,
        );
        self.write_publishes(&mut out);
        self.write_rejects(&mut out);
        self.write_closes(&mut out);
        self.publish_latency.write(
            &mut out,
            "sse_publish_latency_seconds",
            "Time from a publish's start until its event was queued on every target and flushed.",
        );
        self.tick_lateness.write(
            &mut out,
            "sse_tick_lateness_seconds",
            "How late each timer frame was written, against its due time.",
        );
        out
    }

    fn write_publishes(&self, out: &mut String) {
        let name = "sse_publishes_total";
        write_family(
            out,
            name,
            "counter",
            "Publish requests answered, by outcome and status.",
        );
        for (index, count) in self.publishes.iter().enumerate() {
            let status = status_label(&PUBLISH_STATUSES, index);
            let outcome = if status == "202" {
                "accepted"
            } else {
                "rejected"
            };
            let labels = [("outcome", outcome), ("status", status.as_str())];
            write_sample(out, name, &labels, count.load(Relaxed));
        }
    }

    fn write_rejects(&self, out: &mut String) {
        let name = "sse_rejects_total";
        write_family(
            out,
            name,
            "counter",
            "Requests refused (reject log lines), by status.",
        );
        for (index, count) in self.rejects.iter().enumerate() {
            let status = status_label(&REJECT_STATUSES, index);
            write_sample(out, name, &[("status", &status)], count.load(Relaxed));
        }
    }

    fn write_closes(&self, out: &mut String) {
        let name = "sse_closes_total";
        write_family(out, name, "counter", "Streams ended, by close reason.");
        for (reason, count) in EndReason::ALL.iter().zip(&self.closes) {
            write_sample(
                out,
                name,
                &[("reason", reason.as_str())],
                count.load(Relaxed),
            );
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [Duration; N]) -> Histogram<N> {
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Two atomic adds: the value's bucket, and the sum.
    fn observe(&self, value: Duration) {
        // `le` is "less than or equal": a value on a bound is in its bucket.
        match self.bounds.iter().position(|bound| value <= *bound) {
            Some(index) => self.counts[index].fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(nanos, Relaxed);
    }

    /// `HELP`, `TYPE`, the cumulative buckets, `_sum` and `_count`.
    fn write(&self, out: &mut String, name: &str, help: &str) {
        write_family(out, name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let le = seconds(u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX));
            write_sample(out, &bucket, &[("le", &le)], cumulative);
        }
        cumulative += self.over.load(Relaxed);
        write_sample(out, &bucket, &[("le", "+Inf")], cumulative);
        let sum = seconds(self.sum_ns.load(Relaxed));
        let _ = writeln!(out, "{name}_sum {sum}");
        write_sample(out, &format!("{name}_count"), &[], cumulative);
    }
}

/// Where `status` is counted: its index in `statuses`, or the last slot.
fn slot(statuses: &[u16], status: u16) -> usize {
    statuses
        .iter()
        .position(|known| *known == status)
        .unwrap_or(statuses.len())
}

/// The `status` label of slot `index`: the code, or `other`.
fn status_label(statuses: &[u16], index: usize) -> String {
    statuses
        .get(index)
        .map_or_else(|| "other".to_string(), u16::to_string)
}

/// `# HELP name help` and `# TYPE name kind`.
fn write_family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    for character in help.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    let _ = writeln!(out, "\n# TYPE {name} {kind}");
}

/// `name{label="value",…} count`.
fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (label, value)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            write_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value with `\`, `"` and line feed escaped, as the format asks.
fn write_label_value(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

/// Nanoseconds as exact decimal seconds, without a float's rounding:
/// `1500000` → `0.0015`, `2000000000` → `2`.
fn seconds(nanos: u64) -> String {
    let whole = nanos / 1_000_000_000;
    let fraction = nanos % 1_000_000_000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_seconds(nanos: u64, expected: &str) {
        assert_eq!(seconds(nanos), expected, "{nanos} ns");
    }

    #[test]
    fn seconds_are_exact_decimals() {
        check_seconds(0, "0");
        check_seconds(1, "0.000000001");
        check_seconds(100_000, "0.0001");
        check_seconds(1_500_000, "0.0015");
        check_seconds(1_000_000_000, "1");
        check_seconds(2_250_000_000, "2.25");
        check_seconds(u64::MAX, "18446744073.709551615");
    }

    #[track_caller]
    fn check_sample(name: &str, labels: &[(&str, &str)], value: u64, expected: &str) {
        let mut out = String::new();
        write_sample(&mut out, name, labels, value);
        assert_eq!(out, expected);
    }

    #[test]
    fn label_values_are_escaped() {
        check_sample("a", &[], 0, "a 0\n");
        check_sample("a", &[("l", "x")], 7, "a{l=\"x\"} 7\n");
        check_sample("a", &[("l", "x"), ("m", "y")], 1, "a{l=\"x\",m=\"y\"} 1\n");
        check_sample(
            "a",
            &[("l", "q\"b\\n\nz")],
            1,
            "a{l=\"q\\\"b\\\\n\\nz\"} 1\n",
        );
    }

    #[test]
    fn help_text_escapes_backslash_and_line_feed_only() {
        let mut out = String::new();
        write_family(&mut out, "a", "counter", "x \"y\" \\ z\nw");
        assert_eq!(out, "# HELP a x \"y\" \\\\ z\\nw\n# TYPE a counter\n");
    }

    #[test]
    fn statuses_have_slots_and_unknown_ones_share_the_last() {
        assert_eq!(slot(&REJECT_STATUSES, 200), 0);
        assert_eq!(slot(&REJECT_STATUSES, 505), 14);
        assert_eq!(slot(&REJECT_STATUSES, 418), 15);
        assert_eq!(status_label(&REJECT_STATUSES, 15), "other");
    }

    #[test]
    fn close_reasons_index_their_own_slot() {
        for (index, reason) in EndReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index, "{reason:?}");
        }
    }

    #[test]
    fn a_histogram_is_cumulative_and_a_bound_belongs_to_its_bucket() {
        const BOUNDS: [Duration; 2] = [Duration::from_millis(1), Duration::from_millis(5)];
        let histogram = Histogram::new(&BOUNDS);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(9));
        let mut out = String::new();
        histogram.write(&mut out, "x_seconds", "X.");
        assert_eq!(
            out,
            "# HELP x_seconds X.\n\
             # TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.001\"} 2\n\
             x_seconds_bucket{le=\"0.005\"} 3\n\
             x_seconds_bucket{le=\"+Inf\"} 4\n\
             x_seconds_sum 9.0045\n\
             x_seconds_count 4\n"
        );
    }

    /// The whole scrape of a server that served one stream, one publish and
    /// one 404, line by line.
    #[test]
    fn a_scrape_is_written_exactly() {
        let metrics = Metrics::new();
        metrics.count_timer_frame();
        metrics.count_timer_frame();
        metrics.count_pushed_frame();
        metrics.count_stream_bytes(300);
        metrics.count_stream_bytes(55);
        metrics.count_publish(202);
        metrics.count_publish(401);
        metrics.count_publish(418);
        metrics.count_reject(404);
        metrics.count_reject(401);
        metrics.count_close(EndReason::Eof);
        metrics.count_close(EndReason::Panic);
        metrics.observe_publish_latency(Duration::from_micros(150));
        metrics.observe_tick_lateness(Duration::from_millis(3));
        metrics.observe_tick_lateness(Duration::from_secs(3));
        let gauges = Gauges {
            streams: 3,
            users: 2,
            threads: 4,
        };
        let expected = r#"# HELP sse_open_streams Event streams open now.
# TYPE sse_open_streams gauge
sse_open_streams 3
# HELP sse_users Distinct users with at least one open stream.
# TYPE sse_users gauge
sse_users 2
# HELP sse_connection_threads Connection threads alive now (streams and plain requests, this scrape included).
# TYPE sse_connection_threads gauge
sse_connection_threads 4
# HELP sse_timer_frames_total Timer frames written in full.
# TYPE sse_timer_frames_total counter
sse_timer_frames_total 2
# HELP sse_pushed_frames_total Pushed events written in full to a stream, live or replayed.
# TYPE sse_pushed_frames_total counter
sse_pushed_frames_total 1
# HELP sse_stream_bytes_total Bytes written to event streams (heads, frames, comments; not plain replies).
# TYPE sse_stream_bytes_total counter
sse_stream_bytes_total 355
# HELP sse_publishes_total Publish requests answered, by outcome and status.
# TYPE sse_publishes_total counter
sse_publishes_total{outcome="accepted",status="202"} 1
sse_publishes_total{outcome="rejected",status="400"} 0
sse_publishes_total{outcome="rejected",status="401"} 1
sse_publishes_total{outcome="rejected",status="403"} 0
sse_publishes_total{outcome="rejected",status="408"} 0
sse_publishes_total{outcome="rejected",status="411"} 0
sse_publishes_total{outcome="rejected",status="413"} 0
sse_publishes_total{outcome="rejected",status="417"} 0
sse_publishes_total{outcome="rejected",status="503"} 0
sse_publishes_total{outcome="rejected",status="other"} 1
# HELP sse_rejects_total Requests refused (reject log lines), by status.
# TYPE sse_rejects_total counter
sse_rejects_total{status="200"} 0
sse_rejects_total{status="400"} 0
sse_rejects_total{status="401"} 1
sse_rejects_total{status="403"} 0
sse_rejects_total{status="404"} 1
sse_rejects_total{status="405"} 0
sse_rejects_total{status="408"} 0
sse_rejects_total{status="411"} 0
sse_rejects_total{status="413"} 0
sse_rejects_total{status="414"} 0
sse_rejects_total{status="417"} 0
sse_rejects_total{status="431"} 0
sse_rejects_total{status="501"} 0
sse_rejects_total{status="503"} 0
sse_rejects_total{status="505"} 0
sse_rejects_total{status="other"} 0
# HELP sse_closes_total Streams ended, by close reason.
# TYPE sse_closes_total counter
sse_closes_total{reason="eof"} 1
sse_closes_total{reason="reset"} 0
sse_closes_total{reason="write-error"} 0
sse_closes_total{reason="stalled"} 0
sse_closes_total{reason="client-data"} 0
sse_closes_total{reason="read-error"} 0
sse_closes_total{reason="shutdown"} 0
sse_closes_total{reason="panic"} 1
# HELP sse_publish_latency_seconds Time from a publish's start until its event was queued on every target and flushed.
# TYPE sse_publish_latency_seconds histogram
sse_publish_latency_seconds_bucket{le="0.0001"} 0
sse_publish_latency_seconds_bucket{le="0.0002"} 1
sse_publish_latency_seconds_bucket{le="0.0005"} 1
sse_publish_latency_seconds_bucket{le="0.001"} 1
sse_publish_latency_seconds_bucket{le="0.002"} 1
sse_publish_latency_seconds_bucket{le="0.005"} 1
sse_publish_latency_seconds_bucket{le="0.01"} 1
sse_publish_latency_seconds_bucket{le="0.02"} 1
sse_publish_latency_seconds_bucket{le="0.05"} 1
sse_publish_latency_seconds_bucket{le="0.1"} 1
sse_publish_latency_seconds_bucket{le="0.2"} 1
sse_publish_latency_seconds_bucket{le="0.5"} 1
sse_publish_latency_seconds_bucket{le="1"} 1
sse_publish_latency_seconds_bucket{le="2"} 1
sse_publish_latency_seconds_bucket{le="+Inf"} 1
sse_publish_latency_seconds_sum 0.00015
sse_publish_latency_seconds_count 1
# HELP sse_tick_lateness_seconds How late each timer frame was written, against its due time.
# TYPE sse_tick_lateness_seconds histogram
sse_tick_lateness_seconds_bucket{le="0.001"} 0
sse_tick_lateness_seconds_bucket{le="0.002"} 0
sse_tick_lateness_seconds_bucket{le="0.005"} 1
sse_tick_lateness_seconds_bucket{le="0.01"} 1
sse_tick_lateness_seconds_bucket{le="0.02"} 1
sse_tick_lateness_seconds_bucket{le="0.05"} 1
sse_tick_lateness_seconds_bucket{le="0.1"} 1
sse_tick_lateness_seconds_bucket{le="0.2"} 1
sse_tick_lateness_seconds_bucket{le="0.5"} 1
sse_tick_lateness_seconds_bucket{le="1"} 1
sse_tick_lateness_seconds_bucket{le="2"} 1
sse_tick_lateness_seconds_bucket{le="+Inf"} 2
sse_tick_lateness_seconds_sum 3.003
sse_tick_lateness_seconds_count 2
"#;
        let actual = metrics.render(gauges);
        // Line by line first, so a failure names the first line that differs.
        for (number, (actual, expected)) in actual.lines().zip(expected.lines()).enumerate() {
            assert_eq!(actual, expected, "line {}", number + 1);
        }
        assert_eq!(actual, expected);
    }
}
