//! When a stream's timer frames are due, and how to wake up for them on
//! time with one socket wait per frame. Pure: instants in, durations out.
//!
//! **Each stream has its own phase.** The original example calls
//! `setInterval` per request, so every connection ticks on its own clock.
//! Ticking every stream at the same instant instead (one server-wide
//! schedule) wakes thousands of threads together on a few cores: each tick
//! becomes a storm in which frames, new connections, broadcasts and closes
//! wait for CPU. So each stream's ticks fall at `start + phase + k *
//! interval`, with its phase drawn at random within the interval. A client
//! can rely on a frame every interval, on its stream's own schedule that
//! never drifts, the first within one interval of connecting; streams are
//! not aligned with each other.
//!
//! **Waking on time.** A thread waits for its next frame in `peek` with a
//! socket read timeout, so that a disconnect wakes it at once. Linux serves
//! socket timeouts from its timer wheel, which rounds every expiry up to
//! the wheel's granularity at that distance, up to about 1/8 of the wait
//! (measured here, `HZ=250`: a 50 ms timeout fires 5–10 ms late, a 1 s one
//! up to 36 ms late, a 3 s one up to 125 ms late). So:
//! - intervals up to [`PRECISE_INTERVALS_OVER`] (1 s) take one socket wait
//!   per frame and are written within the timer's granularity (up to about
//!   36 ms late at 1 s): splitting the wait would cost a second wakeup per
//!   frame, about a third more CPU per frame;
//! - longer intervals (the default is 3 s) split the wait: sleep 7/8 of
//!   it, wake early, and repeat until the rest is under [`FINE_WAIT`],
//!   which fires within a few ms (see [`socket_part`]): about three
//!   wakeups per 3 s frame, and frames a few ms from their time. Every part
//!   is a socket wait, so a disconnect is still seen at once.

use std::time::{Duration, Instant};

/// Intervals longer than this get precise frames (see the module doc).
pub const PRECISE_INTERVALS_OVER: Duration = Duration::from_secs(1);

/// A wait this short fires within the timer wheel's finest level (a few ms).
pub const FINE_WAIT: Duration = Duration::from_millis(200);

/// How much of the `remaining` time until a frame is due to wait in one
/// go: all of it for intervals up to [`PRECISE_INTERVALS_OVER`] and for
/// short rests; 7/8 of it otherwise, so the timer, at most 1/8 late, wakes
/// the thread before the frame is due.
pub fn socket_part(remaining: Duration, interval: Duration) -> Duration {
    if interval > PRECISE_INTERVALS_OVER && remaining > FINE_WAIT {
        remaining - remaining / 8
    } else {
        remaining
    }
}

/// A stream's timer-frame schedule: `start + phase + k * interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickSchedule {
    interval: Duration,
    /// The next frame's due time.
    next: Instant,
}

impl TickSchedule {
    /// The schedule of a stream opened at `now` whose ticks are offset by
    /// `phase` (taken modulo the interval) from the server's `start`.
    pub fn new(start: Instant, interval: Duration, phase: Duration, now: Instant) -> TickSchedule {
        let interval = interval.max(Duration::from_nanos(1));
        let phase = Duration::from_nanos(nanos(phase) % nanos(interval));
        let mut schedule = TickSchedule {
            interval,
            next: start + phase,
        };
        schedule.advance_past(now);
        schedule
    }

    /// When the next frame is due.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// Moves to the first due time after `now`. A frame that is late by more
    /// than one interval (the machine was overloaded) is skipped, not sent
    /// twice in a row.
    pub fn advance_past(&mut self, now: Instant) {
        if self.next > now {
            return;
        }
        let behind = nanos(now - self.next);
        let steps = behind / nanos(self.interval) + 1;
        let jump = u64::try_from(u128::from(steps) * u128::from(nanos(self.interval)));
        self.next += Duration::from_nanos(jump.unwrap_or(u64::MAX / 2));
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// The due time, in ms after `start`, of a schedule made at `now_ms`.
    #[track_caller]
    fn check_first(interval_ms: u64, phase_ms: u64, now_ms: u64, expected_ms: u64) {
        let start = Instant::now();
        let schedule = TickSchedule::new(start, ms(interval_ms), ms(phase_ms), start + ms(now_ms));
        assert_eq!(schedule.next() - start, ms(expected_ms));
    }

    #[test]
    fn the_first_frame_is_due_within_one_interval_on_the_streams_phase() {
        check_first(1000, 0, 0, 1000);
        check_first(1000, 0, 1, 1000);
        check_first(1000, 250, 0, 250);
        check_first(1000, 250, 250, 1250);
        check_first(1000, 250, 2600, 3250);
        check_first(1000, 1250, 0, 250);
        check_first(3000, 10, 2999, 3010);
    }

    #[test]
    fn only_waits_for_intervals_over_a_second_are_split() {
        assert_eq!(socket_part(ms(1000), ms(1000)), ms(1000));
        assert_eq!(socket_part(ms(400), ms(500)), ms(400));
        assert_eq!(socket_part(ms(3000), ms(3000)), ms(2625));
        assert_eq!(socket_part(ms(400), ms(3000)), ms(350));
        assert_eq!(socket_part(ms(150), ms(3000)), ms(150));
    }

    #[test]
    fn the_schedule_never_drifts_and_skips_what_is_over_an_interval_late() {
        let start = Instant::now();
        let mut schedule = TickSchedule::new(start, ms(1000), ms(300), start);
        assert_eq!(schedule.next() - start, ms(300));
        schedule.advance_past(start + ms(340)); // sent 40 ms late
        assert_eq!(schedule.next() - start, ms(1300));
        schedule.advance_past(start + ms(1300)); // sent exactly on time
        assert_eq!(schedule.next() - start, ms(2300));
        schedule.advance_past(start + ms(3900)); // overloaded: 3300 is skipped
        assert_eq!(schedule.next() - start, ms(4300));
        schedule.advance_past(start + ms(100)); // not due yet: unchanged
        assert_eq!(schedule.next() - start, ms(4300));
    }
}
