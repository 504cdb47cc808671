//! When `purchasing.digest` is sent: an interval ("every 6h") or a
//! calendar time in UTC ("Mondays 08:00 UTC", "daily 07:30 UTC",
//! "weekly"). Pure: the slot after an instant, nothing else. Intervals
//! are counted from the Unix epoch, so every process on one database
//! finds the same slots and can claim each one once.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};

/// The longest interval (a year), like every other duration setting.
const MAX_INTERVAL_SECS: i64 = 365 * 24 * 60 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every so many seconds, at the multiples of it since the epoch.
    Every { secs: i64 },
    /// Every day at a time (UTC).
    Daily { at: NaiveTime },
    /// Every week on a day at a time (UTC).
    Weekly { day: Weekday, at: NaiveTime },
}

/// A schedule that cannot be read; the text says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a schedule ({problem}); write \"every 6h\" (s, m, h, d, w), \
     \"daily 07:30 UTC\", \"Mondays 08:00 UTC\" or \"weekly\" (Mondays 08:00 UTC)"
)]
pub struct ScheduleError {
    pub text: String,
    pub problem: String,
}

impl Schedule {
    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Schedule::Every { secs } => {
                let next = (t.timestamp().div_euclid(secs) + 1) * secs;
                Utc.timestamp_opt(next, 0).single().unwrap_or(t)
            }
            Schedule::Daily { at } => {
                let today = t.date_naive().and_time(at).and_utc();
                if today > t {
                    today
                } else {
                    today + Duration::days(1)
                }
            }
            Schedule::Weekly { day, at } => {
                let ahead = (7 + day.num_days_from_monday() as i64
                    - t.weekday().num_days_from_monday() as i64)
                    % 7;
                let candidate = (t.date_naive() + Duration::days(ahead))
                    .and_time(at)
                    .and_utc();
                if candidate > t {
                    candidate
                } else {
                    candidate + Duration::days(7)
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every { secs } => write!(f, "every {secs}s"),
            Schedule::Daily { at } => write!(f, "daily {} UTC", at.format("%H:%M")),
            Schedule::Weekly { day, at } => {
                write!(f, "{}s {} UTC", day_name(*day), at.format("%H:%M"))
            }
        }
    }
}

fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn weekday(word: &str) -> Option<Weekday> {
    let word = word.to_ascii_lowercase();
    let word = word.strip_suffix('s').unwrap_or(&word);
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .find(|d| day_name(*d).eq_ignore_ascii_case(word))
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        let refuse = |problem: &str| ScheduleError {
            text: text.to_owned(),
            problem: problem.to_owned(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let time = |word: Option<&&str>, zone: Option<&&str>| -> Result<NaiveTime, ScheduleError> {
            if zone.is_some_and(|z| !z.eq_ignore_ascii_case("UTC")) {
                return Err(refuse("times are in UTC only"));
            }
            let word = word.ok_or_else(|| refuse("a time HH:MM is missing"))?;
            NaiveTime::parse_from_str(word, "%H:%M")
                .map_err(|_| refuse(&format!("{word:?} is not a time HH:MM")))
        };
        match words.as_slice() {
            [] => Err(refuse("it is empty")),
            [w] if w.eq_ignore_ascii_case("weekly") => Ok(Schedule::Weekly {
                day: Weekday::Mon,
                at: NaiveTime::from_hms_opt(8, 0, 0).expect("a time"),
            }),
            [w, amount @ ..] if w.eq_ignore_ascii_case("every") => {
                let spec: String = amount.concat();
                let digits = spec.trim_end_matches(|c: char| c.is_ascii_alphabetic());
                let unit = &spec[digits.len()..];
                let n: i64 = digits
                    .parse()
                    .map_err(|_| refuse("an interval is a whole number and a unit"))?;
                let scale = match unit.to_ascii_lowercase().as_str() {
                    "s" | "sec" | "secs" | "second" | "seconds" => 1,
                    "m" | "min" | "mins" | "minute" | "minutes" => 60,
                    "h" | "hour" | "hours" => 3600,
                    "d" | "day" | "days" => 86_400,
                    "w" | "week" | "weeks" => 7 * 86_400,
                    _ => return Err(refuse(&format!("unknown unit {unit:?}"))),
                };
                let secs = n
                    .checked_mul(scale)
                    .filter(|s| (1..=MAX_INTERVAL_SECS).contains(s))
                    .ok_or_else(|| refuse("an interval is from 1 second to a year"))?;
                Ok(Schedule::Every { secs })
            }
            [w, rest @ ..] if w.eq_ignore_ascii_case("daily") && rest.len() <= 2 => {
                Ok(Schedule::Daily {
                    at: time(rest.first(), rest.get(1))?,
                })
            }
            [w, rest @ ..] if rest.len() <= 2 => match weekday(w) {
                Some(day) => Ok(Schedule::Weekly {
                    day,
                    at: time(rest.first(), rest.get(1))?,
                }),
                None => Err(refuse(&format!("{w:?} is not a day of the week"))),
            },
            _ => Err(refuse("too many words")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn calendar_schedules_find_the_next_slot_after_an_instant() {
        let monday: Schedule = "Mondays 08:00 UTC".parse().unwrap();
        assert_eq!(monday, "weekly".parse().unwrap());
        // 2026-12-02 is a Wednesday.
        assert_eq!(
            monday.next_after(at("2026-12-02T10:00:00Z")),
            at("2026-12-07T08:00:00Z")
        );
        assert_eq!(
            monday.next_after(at("2026-12-07T07:59:59Z")),
            at("2026-12-07T08:00:00Z")
        );
        assert_eq!(
            monday.next_after(at("2026-12-07T08:00:00Z")),
            at("2026-12-14T08:00:00Z")
        );
        let daily: Schedule = "daily 07:30".parse().unwrap();
        assert_eq!(
            daily.next_after(at("2026-12-02T10:00:00Z")),
            at("2026-12-03T07:30:00Z")
        );
        let every: Schedule = "every 6h".parse().unwrap();
        assert_eq!(every, Schedule::Every { secs: 21_600 });
        assert_eq!(
            every.next_after(at("2026-12-02T10:00:00Z")),
            at("2026-12-02T12:00:00Z")
        );
        assert_eq!("every 2 seconds".parse(), Ok(Schedule::Every { secs: 2 }));
    }

    #[test]
    fn bad_schedules_are_refused_saying_why() {
        for (text, problem) in [
            ("", "empty"),
            ("Mondayz 08:00 UTC", "not a day"),
            ("Mondays 8h", "not a time"),
            ("Mondays 08:00 CET", "UTC only"),
            ("every 0s", "1 second"),
            ("every 5 fortnights", "unknown unit"),
            ("every soon", "whole number"),
        ] {
            let err = text.parse::<Schedule>().unwrap_err();
            assert!(err.to_string().contains(problem), "{text}: {err}");
        }
    }
}
