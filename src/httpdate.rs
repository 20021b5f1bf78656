//! The `Date` header's value: an IMF-fixdate, formatted by hand.
//!
//! Spec: RFC 9110 §5.6.7 (the format) and §6.6.1 (when to send it),
//! <https://www.rfc-editor.org/rfc/rfc9110>.
//!
//! ```text
//! IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT
//! day-name     = %s"Mon" / %s"Tue" / %s"Wed" / %s"Thu" / %s"Fri" / %s"Sat" / %s"Sun"
//! date1        = day SP month SP year     ; e.g., 02 Jun 1982
//! time-of-day  = hour ":" minute ":" second
//! GMT          = %s"GMT"
//! ```
//!
//! For example `Sun, 06 Nov 1994 08:49:37 GMT`: always 29 bytes, so it is
//! written into a fixed array and no reply allocates for it. §6.6.1 says an
//! origin server with a clock MUST send `Date` on its 2xx, 3xx and 4xx
//! responses (and MAY on others; we send it on all of them).
//!
//! The calendar arithmetic is Howard Hinnant's `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html>), explained step
//! by step below. Pure: the caller passes the time in, so tests pin it.

use std::time::{SystemTime, UNIX_EPOCH};

/// The length of every IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_BYTES: usize = 29;

const SECONDS_PER_DAY: u64 = 86_400;
/// Days from 0000-03-01, where [`civil_from_days`] starts counting, to
/// 1970-01-01.
const DAYS_FROM_ERA_START_TO_1970: u64 = 719_468;
/// Days in 400 Gregorian years (400 × 365 + 97 leap days): the calendar
/// repeats after each such "era".
const DAYS_PER_ERA: u64 = 146_097;
const DAY_NAMES: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The IMF-fixdate of `time`. A time before 1970 (a clock set very wrong)
/// is shown as the epoch itself: the header must still be well-formed.
pub fn format(time: SystemTime) -> [u8; HTTP_DATE_BYTES] {
    let unix_seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    format_unix(unix_seconds)
}

/// The IMF-fixdate of a count of seconds since 1970-01-01 00:00:00 UTC.
/// Leap seconds do not exist in Unix time, so every day has 86 400 of them.
/// Simplification: years past 9999 would need a fifth digit; the format
/// has four, so they are clamped to the last second of 9999.
pub fn format_unix(unix_seconds: u64) -> [u8; HTTP_DATE_BYTES] {
    const LAST_SECOND_OF_9999: u64 = 253_402_300_799;
    let unix_seconds = unix_seconds.min(LAST_SECOND_OF_9999);
    let days = unix_seconds / SECONDS_PER_DAY;
    let second_of_day = unix_seconds % SECONDS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday, the first entry of DAY_NAMES.
    let day_name = DAY_NAMES[(days % 7) as usize];

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(day_name);
    write_digits(&mut out[5..7], u64::from(day));
    out[8..11].copy_from_slice(MONTH_NAMES[usize::from(month - 1)]);
    write_digits(&mut out[12..16], year);
    write_digits(&mut out[17..19], second_of_day / 3600);
    write_digits(&mut out[20..22], second_of_day / 60 % 60);
    write_digits(&mut out[23..25], second_of_day % 60);
    out
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (which is
/// all a `u64` of Unix seconds can reach, so no negative branch).
/// Returns (year, month 1–12, day 1–31).
///
/// The trick is to start the year on 1 March, so the leap day is the last
/// day of its year and every month before it has a fixed length.
fn civil_from_days(days_since_1970: u64) -> (u64, u8, u8) {
    // 1. Shift the origin to 0000-03-01, 719 468 days before 1970-01-01.
    let days = days_since_1970 + DAYS_FROM_ERA_START_TO_1970;

    // 2. Gregorian dates repeat every 400 years ("eras") of 146 097 days.
    //    day_of_era is in 0..=146_096.
    let era = days / DAYS_PER_ERA;
    let day_of_era = days - era * DAYS_PER_ERA;

    // 3. The year within the era, 0..=399. Every 4 years add a leap day,
    //    except every 100th, except every 400th: take those days out to get
    //    years of exactly 365 days, then divide. 1460 is the days in 4 years
    //    less one, 36 524 the days in 100 years, 146 096 the era's last day.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;

    // 4. The day within that March-based year, 0..=365.
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);

    // 5. The month counted from March = 0, 0..=11. From March the months
    //    run 31, 30, 31, 30, 31 days, twice over, then January has 31 and
    //    February whatever is left: every 5 months take 153 days, which
    //    (5 * d + 2) / 153 inverts exactly. Then the day of the month, 1..=31.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;

    // 6. Back to January = 1. January and February belong to the next
    //    calendar year, since our year began in March.
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month as u8, day as u8)
}

/// Writes `value` as exactly `out.len()` decimal digits, zero-padded.
fn write_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[track_caller]
    fn check(unix_seconds: u64, expected: &str) {
        let formatted = format_unix(unix_seconds);
        assert_eq!(std::str::from_utf8(&formatted).expect("ascii"), expected);
    }

    #[test]
    fn the_epoch_is_a_thursday() {
        check(0, "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn the_example_of_rfc_9110() {
        check(784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn the_last_second_of_a_year_and_the_first_of_the_next() {
        check(946_684_799, "Fri, 31 Dec 1999 23:59:59 GMT");
        check(946_684_800, "Sat, 01 Jan 2000 00:00:00 GMT");
        check(1_735_689_599, "Tue, 31 Dec 2024 23:59:59 GMT");
        check(1_735_689_600, "Wed, 01 Jan 2025 00:00:00 GMT");
    }

    #[test]
    fn leap_days_of_years_divisible_by_4_and_by_400() {
        check(951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT");
        check(951_868_800, "Wed, 01 Mar 2000 00:00:00 GMT");
        check(1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT");
        check(1_709_251_199, "Thu, 29 Feb 2024 23:59:59 GMT");
        check(1_709_251_200, "Fri, 01 Mar 2024 00:00:00 GMT");
    }

    #[test]
    fn a_year_divisible_by_100_but_not_400_has_no_leap_day() {
        // 2100: 28 Feb is followed by 1 Mar. (1900 is before the epoch.)
        check(4_107_456_000, "Sun, 28 Feb 2100 00:00:00 GMT");
        check(4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT");
    }

    #[test]
    fn the_last_day_of_a_leap_year_is_day_366() {
        check(1_735_603_200, "Tue, 31 Dec 2024 00:00:00 GMT");
        check(978_220_800, "Sun, 31 Dec 2000 00:00:00 GMT");
    }

    #[test]
    fn a_recent_date() {
        check(1_764_509_000, "Sun, 30 Nov 2025 13:23:20 GMT");
    }

    #[test]
    fn the_largest_four_digit_year_and_beyond() {
        check(253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT");
        check(u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn a_system_time_before_the_epoch_shows_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(&format(before), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn every_day_for_a_thousand_years_follows_the_previous_one() {
        // Walks day by day from 1970 to 2970 and checks that the calendar
        // date advances by exactly one day each time: an independent check
        // of month lengths and leap years against the rules themselves.
        let days_in_month = |year: u64, month: u8| match month {
            4 | 6 | 9 | 11 => 30,
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            _ => 31,
        };
        let mut expected = (1970u64, 1u8, 1u8);
        for days in 0..365_243 {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            let (year, month, day) = expected;
            expected = if day < days_in_month(year, month) {
                (year, month, day + 1)
            } else if month < 12 {
                (year, month + 1, 1)
            } else {
                (year + 1, 1, 1)
            };
        }
    }
}
