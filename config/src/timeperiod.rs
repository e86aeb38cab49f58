//! Nagios/Shinken time periods: parsing date ranges and answering "is this time valid, and
//! when is the next valid / invalid time" for a period, honouring `exclude` recursively.
//!
//! A `define timeperiod` has `timeperiod_name`, `alias`, `exclude`, and every other line is one
//! date range made of its key and value together. The forms are those of Nagios 4:
//!
//! | class (precedence, highest first) | examples                                              |
//! |-----------------------------------|-------------------------------------------------------|
//! | calendar date                     | `2014-01-01`, `2014-01-01 - 2014-02-01 / 3`, `2008-04-01 / 7` |
//! | specific month date               | `january 1`, `february -1`, `july 10 - august 15 / 2`, `april 10 - 15` |
//! | generic month date                | `day 1`, `day -1`, `day 1 - 15 / 5`, `day 20 - -1`    |
//! | offset weekday of specific month  | `thursday -1 november`, `monday 1 january - thursday 4 february` |
//! | offset weekday                    | `monday 3`, `monday 1 - friday -1`, `thursday 2 - 4`  |
//! | normal weekday                    | `monday`                                              |
//!
//! each followed by a mandatory comma-separated list of `HH:MM-HH:MM` (`24:00` allowed as an
//! end; `00:00-00:00` is an empty range, used to make a day invalid).
//!
//! Precedence (Nagios "Precedence in Time Periods"): for a given day, only the entries of the
//! highest class having at least one entry that matches that day give the valid times of that day;
//! so `december 25 00:00-00:00` makes Christmas invalid even in a period listing `monday`.
//!
//! Times are local: the `*_in` functions take any [`chrono::TimeZone`]; the plain ones use
//! [`chrono::Local`], as Nagios does.

use chrono::{DateTime, Datelike, Duration, Local, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Weekday};
use std::collections::HashMap;

/// Seconds in a (normal) day: the end of a `24:00` range.
const DAY: u32 = 86_400;
/// How far `next_valid` / `next_invalid` look ahead, in days (one year and a day, as Shinken).
const HORIZON_DAYS: i64 = 367;

/// One `HH:MM-HH:MM` range of a day, in seconds since local midnight: `start..end`, end
/// excluded, `0 <= start <= end <= 86400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeRange {
    pub start: u32,
    pub end: u32,
}

/// Which days a [`DateRange`] covers. Month numbers are 1-12; day numbers may be negative
/// (counted from the end of the month, -1 = last day); weekday offsets are 1..=5 or -5..=-1
/// (`-1` = last such weekday of the month).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateKind {
    /// `2014-01-01 [- 2014-02-01]`; `end` is `None` only for `2008-04-01 / 7` (every 7 days,
    /// for ever, as in Nagios).
    Calendar { start: NaiveDate, end: Option<NaiveDate> },
    /// `january 1`, `july 10 - august 15`, `april 10 - 15`.
    MonthDate {
        start_month: u32,
        start_day: i32,
        end_month: u32,
        end_day: i32,
    },
    /// `day 1 - 15`, `day -1`.
    MonthDay { start_day: i32, end_day: i32 },
    /// `thursday -1 november`, `monday 1 january - thursday 4 february`.
    MonthWeekDay {
        start_weekday: Weekday,
        start_offset: i32,
        start_month: u32,
        end_weekday: Weekday,
        end_offset: i32,
        end_month: u32,
    },
    /// `monday 3`, `monday 1 - friday -1`, `thursday 2 - 4`.
    WeekDayOffset {
        start_weekday: Weekday,
        start_offset: i32,
        end_weekday: Weekday,
        end_offset: i32,
    },
    /// `monday`.
    WeekDay(Weekday),
}

impl DateKind {
    /// Precedence class: 0 (calendar date, strongest) to 5 (normal weekday, weakest).
    pub fn class(&self) -> u8 {
        match self {
            DateKind::Calendar { .. } => 0,
            DateKind::MonthDate { .. } => 1,
            DateKind::MonthDay { .. } => 2,
            DateKind::MonthWeekDay { .. } => 3,
            DateKind::WeekDayOffset { .. } => 4,
            DateKind::WeekDay(_) => 5,
        }
    }
}

/// One parsed entry ("monday 09:00-17:00").
#[derive(Debug, Clone, PartialEq)]
pub struct DateRange {
    pub kind: DateKind,
    /// `/ N`: only every N-th day of the range, counted from its first day; 1 = every day.
    pub skip: u32,
    /// The times of each covered day, as written (not merged); may be all empty (`00:00-00:00`).
    pub times: Vec<TimeRange>,
}

impl DateRange {
    /// Precedence class of the entry (see [`DateKind::class`]).
    pub fn class(&self) -> u8 {
        self.kind.class()
    }

    /// Does this entry cover local date `d` (whatever its times)?
    pub fn covers(&self, d: NaiveDate) -> bool {
        let skip = self.skip.max(1);
        let within = |s: NaiveDate, e: Option<NaiveDate>| -> bool {
            s <= d && e.is_none_or(|e| d <= e) && (skip == 1 || (d - s).num_days() % i64::from(skip) == 0)
        };
        match self.kind {
            DateKind::Calendar { start, end } => within(start, end),
            DateKind::WeekDay(w) => d.weekday() == w,
            DateKind::MonthDate {
                start_month,
                start_day,
                end_month,
                end_day,
            } => [d.year() - 1, d.year()].into_iter().any(|y| {
                let Some(s) = month_day(y, start_month, start_day, Bound::Start) else {
                    return false;
                };
                let e = match month_day(y, end_month, end_day, Bound::End) {
                    Some(e) if e >= s => Some(e),
                    _ => month_day(y + 1, end_month, end_day, Bound::End),
                };
                e.is_some_and(|e| within(s, Some(e)))
            }),
            DateKind::MonthDay { start_day, end_day } => {
                let (y, m) = (d.year(), d.month());
                [prev_month(y, m), (y, m)].into_iter().any(|(y, m)| {
                    let Some(s) = month_day(y, m, start_day, Bound::Start) else {
                        return false;
                    };
                    let e = match month_day(y, m, end_day, Bound::End) {
                        Some(e) if e >= s => Some(e),
                        _ => {
                            let (ny, nm) = next_month(y, m);
                            month_day(ny, nm, end_day, Bound::End)
                        }
                    };
                    e.is_some_and(|e| within(s, Some(e)))
                })
            }
            DateKind::MonthWeekDay {
                start_weekday,
                start_offset,
                start_month,
                end_weekday,
                end_offset,
                end_month,
            } => [d.year() - 1, d.year()].into_iter().any(|y| {
                let Some(s) = nth_weekday(y, start_month, start_weekday, start_offset) else {
                    return false;
                };
                let e = match nth_weekday(y, end_month, end_weekday, end_offset) {
                    Some(e) if e >= s => Some(e),
                    _ => nth_weekday(y + 1, end_month, end_weekday, end_offset),
                };
                e.is_some_and(|e| within(s, Some(e)))
            }),
            DateKind::WeekDayOffset {
                start_weekday,
                start_offset,
                end_weekday,
                end_offset,
            } => {
                let (y, m) = (d.year(), d.month());
                [prev_month(y, m), (y, m)].into_iter().any(|(y, m)| {
                    let Some(s) = nth_weekday(y, m, start_weekday, start_offset) else {
                        return false;
                    };
                    let e = match nth_weekday(y, m, end_weekday, end_offset) {
                        Some(e) if e >= s => Some(e),
                        _ => {
                            let (ny, nm) = next_month(y, m);
                            nth_weekday(ny, nm, end_weekday, end_offset)
                        }
                    };
                    e.is_some_and(|e| within(s, Some(e)))
                })
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Start,
    End,
}

fn prev_month(y: i32, m: u32) -> (i32, u32) {
    if m == 1 { (y - 1, 12) } else { (y, m - 1) }
}

fn next_month(y: i32, m: u32) -> (i32, u32) {
    if m == 12 { (y + 1, 1) } else { (y, m + 1) }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let (ny, nm) = next_month(y, m);
    match (NaiveDate::from_ymd_opt(y, m, 1), NaiveDate::from_ymd_opt(ny, nm, 1)) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 31,
    }
}

/// Day `n` of month `m` of year `y` (negative: from the end). A start beyond the month does not
/// exist that year (Nagios skips the range); an end beyond the month is clamped to its last day.
fn month_day(y: i32, m: u32, n: i32, bound: Bound) -> Option<NaiveDate> {
    let dim = days_in_month(y, m) as i32;
    let day = if n > 0 {
        if n <= dim {
            n
        } else if bound == Bound::End {
            dim
        } else {
            return None;
        }
    } else {
        dim + n + 1
    };
    if day < 1 {
        return None;
    }
    NaiveDate::from_ymd_opt(y, m, day as u32)
}

/// The `n`-th weekday `w` of month `m` of year `y` (negative: from the end), if it exists.
fn nth_weekday(y: i32, m: u32, w: Weekday, n: i32) -> Option<NaiveDate> {
    let dim = days_in_month(y, m) as i32;
    let wd = w.num_days_from_monday() as i32;
    let day = if n > 0 {
        let first = NaiveDate::from_ymd_opt(y, m, 1)?.weekday().num_days_from_monday() as i32;
        1 + (wd - first).rem_euclid(7) + 7 * (n - 1)
    } else if n < 0 {
        let last = NaiveDate::from_ymd_opt(y, m, dim as u32)?.weekday().num_days_from_monday() as i32;
        dim - (last - wd).rem_euclid(7) - 7 * (-n - 1)
    } else {
        return None;
    };
    if day < 1 || day > dim {
        return None;
    }
    NaiveDate::from_ymd_opt(y, m, day as u32)
}

// ---------------------------------------------------------------------------------------------
// Parsing

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("saturday", Weekday::Sat),
    ("sunday", Weekday::Sun),
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Days of each month at most (February of a leap year), to check `february 30`.
const MONTH_MAX_DAYS: [i32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn weekday_of(word: &str) -> Option<Weekday> {
    WEEKDAYS.iter().find(|(n, _)| *n == word).map(|(_, w)| *w)
}

fn month_of(word: &str) -> Option<u32> {
    MONTHS.iter().position(|n| *n == word).map(|i| i as u32 + 1)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Num(i32),
    Date(NaiveDate),
    Dash,
    Slash,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let digits_at = |i: usize| -> usize { b[i..].iter().take_while(|c| c.is_ascii_digit()).count() };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() {
            let n = b[i..].iter().take_while(|c| c.is_ascii_alphabetic()).count();
            toks.push(Tok::Word(s[i..i + n].to_string()));
            i += n;
        } else if c == b'/' {
            toks.push(Tok::Slash);
            i += 1;
        } else if c == b'-' {
            let after_number = matches!(toks.last(), Some(Tok::Num(_) | Tok::Date(_)));
            if !after_number && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                let n = digits_at(i + 1);
                toks.push(Tok::Num(-number(&s[i + 1..i + 1 + n])?));
                i += 1 + n;
            } else {
                toks.push(Tok::Dash);
                i += 1;
            }
        } else if c.is_ascii_digit() {
            let n = digits_at(i);
            // YYYY-MM-DD
            if n == 4 && b.get(i + 4) == Some(&b'-') {
                let m = digits_at(i + 5);
                if (1..=2).contains(&m) && b.get(i + 5 + m) == Some(&b'-') {
                    let d = digits_at(i + 6 + m);
                    if (1..=2).contains(&d) {
                        let end = i + 6 + m + d;
                        let text = &s[i..end];
                        let (y, mo, da) = (number(&s[i..i + 4])?, number(&s[i + 5..i + 5 + m])?, number(&s[i + 6 + m..end])?);
                        let date = NaiveDate::from_ymd_opt(y, mo as u32, da as u32).ok_or_else(|| format!("invalid date '{text}'"))?;
                        toks.push(Tok::Date(date));
                        i = end;
                        continue;
                    }
                }
            }
            toks.push(Tok::Num(number(&s[i..i + n])?));
            i += n;
        } else {
            return Err(format!("unexpected character '{}'", &s[i..].chars().next().unwrap_or('?')));
        }
    }
    Ok(toks)
}

fn number(s: &str) -> Result<i32, String> {
    s.parse::<i32>().map_err(|_| format!("number '{s}' is too large"))
}

/// One side of a date range, as written.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Date(NaiveDate),
    Weekday(Weekday),
    Day(i32),
    MonthDay(u32, i32),
    NthWeekday(Weekday, i32, Option<u32>),
    Num(i32),
}

fn parse_spec(toks: &[Tok]) -> Result<Spec, String> {
    let word = |w: &str| -> Result<(), String> {
        if w != "day" && weekday_of(w).is_none() && month_of(w).is_none() {
            Err(format!("unknown day or month name '{w}'"))
        } else {
            Ok(())
        }
    };
    match toks {
        [Tok::Date(d)] => Ok(Spec::Date(*d)),
        [Tok::Num(n)] => Ok(Spec::Num(*n)),
        [Tok::Word(w)] => {
            word(w)?;
            match weekday_of(w) {
                Some(wd) => Ok(Spec::Weekday(wd)),
                None if w == "day" => Err("'day' needs a day number (e.g. 'day 1')".into()),
                None => Err(format!("month '{w}' needs a day number (e.g. '{w} 1')")),
            }
        }
        [Tok::Word(w), Tok::Num(n)] => {
            word(w)?;
            if w == "day" {
                check_month_day(*n, None)?;
                Ok(Spec::Day(*n))
            } else if let Some(m) = month_of(w) {
                check_month_day(*n, Some(m))?;
                Ok(Spec::MonthDay(m, *n))
            } else {
                let wd = weekday_of(w).expect("checked by word()");
                check_offset(w, *n)?;
                Ok(Spec::NthWeekday(wd, *n, None))
            }
        }
        [Tok::Word(w), Tok::Num(n), Tok::Word(mw)] => {
            word(w)?;
            word(mw)?;
            let wd = weekday_of(w).ok_or_else(|| format!("'{w} {n} {mw}': expected a weekday before the offset"))?;
            let m = month_of(mw).ok_or_else(|| format!("'{w} {n} {mw}': expected a month after the offset"))?;
            check_offset(w, *n)?;
            Ok(Spec::NthWeekday(wd, *n, Some(m)))
        }
        [] => Err("missing date".into()),
        _ => {
            if let Some(Tok::Word(w)) = toks.iter().find(|t| matches!(t, Tok::Word(_))) {
                word(w)?;
            }
            Err("unrecognised date form".into())
        }
    }
}

fn check_month_day(n: i32, month: Option<u32>) -> Result<(), String> {
    let max = month.map_or(31, |m| MONTH_MAX_DAYS[m as usize - 1]);
    if n == 0 || n.abs() > max {
        let what = month.map_or("a month".to_string(), |m| MONTHS[m as usize - 1].to_string());
        return Err(format!(
            "day {n} does not exist in {what} (expected 1 to {max}, or -1 to -{max} from the end)"
        ));
    }
    Ok(())
}

fn check_offset(weekday: &str, n: i32) -> Result<(), String> {
    if n == 0 || n.abs() > 5 {
        return Err(format!(
            "'{weekday} {n}': the weekday offset must be 1 to 5, or -1 to -5 from the end of the month"
        ));
    }
    Ok(())
}

fn parse_time_of_day(s: &str, whole: &str) -> Result<u32, String> {
    let bad = || format!("invalid time '{s}' in '{whole}' (expected HH:MM, 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    if !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

/// Parses a comma-separated list of `HH:MM-HH:MM` (spaces allowed around the separators).
pub fn parse_timeranges(s: &str) -> Result<Vec<TimeRange>, String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("no time range (expected e.g. 09:00-17:00)".into());
    }
    compact
        .split(',')
        .map(|r| {
            if r.is_empty() {
                return Err(format!("empty time range in '{s}'"));
            }
            let (a, b) = r
                .split_once('-')
                .ok_or_else(|| format!("invalid time range '{r}' (expected HH:MM-HH:MM)"))?;
            let (start, end) = (parse_time_of_day(a, r)?, parse_time_of_day(b, r)?);
            if start > end {
                return Err(format!(
                    "time range '{r}' ends before it starts (ranges cannot cross midnight; \
                     split it as ..-24:00 and 00:00-.. on the next day)"
                ));
            }
            Ok(TimeRange { start, end })
        })
        .collect()
}

/// Parses one entry from the key and value of a timeperiod line (key "day", value
/// "1 - 15 00:00-24:00"). Names are case-insensitive. The error names what is wrong.
pub fn parse_daterange(key: &str, value: &str) -> Result<DateRange, String> {
    let entry = format!("{} {}", key.trim(), value.trim()).trim().to_ascii_lowercase();
    let ctx = |e: String| format!("invalid timeperiod entry '{entry}': {e}");
    // The time list starts at the first word containing ':'.
    let mut split = entry.len();
    let mut pos = 0;
    for chunk in entry.split_whitespace() {
        let at = pos + entry[pos..].find(chunk).unwrap_or(0);
        if chunk.contains(':') {
            split = at;
            break;
        }
        pos = at + chunk.len();
    }
    let (date_part, time_part) = entry.split_at(split);
    let kind_skip = parse_date_part(date_part).map_err(ctx)?;
    if time_part.trim().is_empty() {
        return Err(ctx("no time ranges (Nagios requires them, e.g. '00:00-24:00')".into()));
    }
    let times = parse_timeranges(time_part).map_err(ctx)?;
    let (kind, skip) = kind_skip;
    Ok(DateRange { kind, skip, times })
}

fn parse_date_part(s: &str) -> Result<(DateKind, u32), String> {
    let toks = tokenize(s)?;
    let (range, skip) = match toks.iter().position(|t| *t == Tok::Slash) {
        None => (&toks[..], None),
        Some(i) => match &toks[i + 1..] {
            [Tok::Num(n)] if *n >= 1 => (&toks[..i], Some(*n as u32)),
            [Tok::Num(n)] => return Err(format!("skip interval '/ {n}' must be at least 1")),
            _ => return Err("'/' must be followed by a skip interval (a number)".into()),
        },
    };
    let dashes: Vec<usize> = range.iter().enumerate().filter(|(_, t)| **t == Tok::Dash).map(|(i, _)| i).collect();
    let (start, end) = match dashes.as_slice() {
        [] => (parse_spec(range)?, None),
        [i] => (parse_spec(&range[..*i])?, Some(parse_spec(&range[i + 1..])?)),
        _ => return Err("more than one '-' between dates".into()),
    };
    let kind = match (start, end) {
        (Spec::Date(s), None) => DateKind::Calendar {
            start: s,
            // `2008-04-01 / 7`: every 7 days from that date on (Nagios).
            end: if skip.is_some_and(|k| k > 1) { None } else { Some(s) },
        },
        (Spec::Date(s), Some(Spec::Date(e))) => {
            if e < s {
                return Err(format!("end date {e} is before start date {s}"));
            }
            DateKind::Calendar { start: s, end: Some(e) }
        }
        (Spec::Weekday(w), None) => {
            if skip.is_some() {
                return Err("a skip interval needs a range of dates, not a plain weekday".into());
            }
            DateKind::WeekDay(w)
        }
        (Spec::Day(a), None) => DateKind::MonthDay { start_day: a, end_day: a },
        (Spec::Day(a), Some(Spec::Num(b) | Spec::Day(b))) => {
            check_month_day(b, None)?;
            DateKind::MonthDay { start_day: a, end_day: b }
        }
        (Spec::MonthDay(m, a), None) => DateKind::MonthDate {
            start_month: m,
            start_day: a,
            end_month: m,
            end_day: a,
        },
        (Spec::MonthDay(m, a), Some(Spec::Num(b))) => {
            check_month_day(b, Some(m))?;
            DateKind::MonthDate {
                start_month: m,
                start_day: a,
                end_month: m,
                end_day: b,
            }
        }
        (Spec::MonthDay(m, a), Some(Spec::MonthDay(m2, b))) => DateKind::MonthDate {
            start_month: m,
            start_day: a,
            end_month: m2,
            end_day: b,
        },
        (Spec::NthWeekday(w, n, None), None) => DateKind::WeekDayOffset {
            start_weekday: w,
            start_offset: n,
            end_weekday: w,
            end_offset: n,
        },
        (Spec::NthWeekday(w, n, None), Some(Spec::Num(k))) => {
            check_offset(WEEKDAYS[w.num_days_from_monday() as usize].0, k)?;
            DateKind::WeekDayOffset {
                start_weekday: w,
                start_offset: n,
                end_weekday: w,
                end_offset: k,
            }
        }
        (Spec::NthWeekday(w, n, None), Some(Spec::NthWeekday(w2, k, None))) => DateKind::WeekDayOffset {
            start_weekday: w,
            start_offset: n,
            end_weekday: w2,
            end_offset: k,
        },
        (Spec::NthWeekday(w, n, Some(m)), None) => DateKind::MonthWeekDay {
            start_weekday: w,
            start_offset: n,
            start_month: m,
            end_weekday: w,
            end_offset: n,
            end_month: m,
        },
        (Spec::NthWeekday(w, n, Some(m)), Some(Spec::NthWeekday(w2, k, Some(m2)))) => DateKind::MonthWeekDay {
            start_weekday: w,
            start_offset: n,
            start_month: m,
            end_weekday: w2,
            end_offset: k,
            end_month: m2,
        },
        (Spec::Num(_), _) => return Err("a range cannot start with a bare number".into()),
        (_, Some(_)) => {
            return Err("the start and end of the range are of different kinds".into());
        }
    };
    Ok((kind, skip.unwrap_or(1)))
}

// ---------------------------------------------------------------------------------------------
// Periods

/// A timeperiod as defined: its entries and the names it excludes.
#[derive(Debug, Clone, PartialEq)]
pub struct TimePeriodDef {
    pub name: String,
    pub ranges: Vec<DateRange>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone)]
struct Period {
    def: TimePeriodDef,
    /// Indices of excluded periods; unknown names and edges closing a loop are dropped.
    excludes: Vec<usize>,
}

/// All timeperiods of a configuration, resolved by name, ready to answer time questions.
#[derive(Debug, Clone, Default)]
pub struct Timeperiods {
    periods: Vec<Period>,
    by_name: HashMap<String, usize>,
}

/// Sorted, disjoint, non-empty ranges of one day.
type DaySet = Vec<(u32, u32)>;

fn normalize(mut v: DaySet) -> DaySet {
    v.retain(|(a, b)| a < b);
    v.sort_unstable();
    let mut out: DaySet = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn subtract(a: &DaySet, b: &DaySet) -> DaySet {
    let mut out = Vec::new();
    for &(mut s, e) in a {
        for &(bs, be) in b {
            if be <= s || bs >= e {
                continue;
            }
            if bs > s {
                out.push((s, bs));
            }
            s = s.max(be);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

impl Timeperiods {
    /// Resolves the definitions by name. Unknown names in `exclude` are ignored (the validator
    /// reports them), and so is an exclude that would close a loop. If a name is defined twice,
    /// the first definition is kept.
    pub fn new(defs: Vec<TimePeriodDef>) -> Self {
        let mut by_name = HashMap::new();
        let mut periods = Vec::new();
        for def in defs {
            if by_name.contains_key(&def.name) {
                continue;
            }
            by_name.insert(def.name.clone(), periods.len());
            periods.push(Period { def, excludes: Vec::new() });
        }
        let edges: Vec<Vec<usize>> = periods
            .iter()
            .map(|p| {
                let mut v: Vec<usize> = p.def.exclude.iter().filter_map(|n| by_name.get(n.trim()).copied()).collect();
                v.dedup();
                v
            })
            .collect();
        // Depth-first search; an edge to a period on the current path closes a loop: drop it.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark = vec![Mark::New; periods.len()];
        let mut kept: Vec<Vec<usize>> = vec![Vec::new(); periods.len()];
        for root in 0..periods.len() {
            if mark[root] != Mark::New {
                continue;
            }
            mark[root] = Mark::Open;
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&to) = edges[node].get(*next) {
                    *next += 1;
                    match mark[to] {
                        Mark::Open => {} // loop: ignore this exclude
                        Mark::Done => kept[node].push(to),
                        Mark::New => {
                            kept[node].push(to);
                            mark[to] = Mark::Open;
                            stack.push((to, 0));
                        }
                    }
                } else {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        for (p, k) in periods.iter_mut().zip(kept) {
            p.excludes = k;
        }
        Timeperiods { periods, by_name }
    }

    /// Is a period of that name defined?
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The definition of a period.
    pub fn get(&self, name: &str) -> Option<&TimePeriodDef> {
        self.by_name.get(name).map(|&i| &self.periods[i].def)
    }

    /// Is Unix time `t` inside period `name` (local time)? Unknown period: true.
    pub fn is_valid(&self, name: &str, t: i64) -> bool {
        self.is_valid_in(&Local, name, t)
    }

    /// The first Unix second >= t inside the period (local time), or None within ~1 year.
    pub fn next_valid(&self, name: &str, t: i64) -> Option<i64> {
        self.next_valid_in(&Local, name, t)
    }

    /// The first Unix second >= t outside the period (local time), or None within ~1 year.
    pub fn next_invalid(&self, name: &str, t: i64) -> Option<i64> {
        self.next_invalid_in(&Local, name, t)
    }

    /// [`Timeperiods::is_valid`] in time zone `tz`.
    pub fn is_valid_in<Tz: TimeZone>(&self, tz: &Tz, name: &str, t: i64) -> bool {
        let Some(&idx) = self.by_name.get(name) else {
            return true;
        };
        let Some(local) = to_local(tz, t) else {
            return false;
        };
        let secs = local.num_seconds_from_midnight();
        self.day_set(idx, local.date()).iter().any(|&(a, b)| a <= secs && secs < b)
    }

    /// [`Timeperiods::next_valid`] in time zone `tz`.
    pub fn next_valid_in<Tz: TimeZone>(&self, tz: &Tz, name: &str, t: i64) -> Option<i64> {
        let Some(&idx) = self.by_name.get(name) else {
            return Some(t);
        };
        let first = to_local(tz, t)?.date();
        for day in first.iter_days().take(HORIZON_DAYS as usize) {
            for (a, b) in self.day_set(idx, day) {
                let end = local_ts(tz, day, b)?;
                if end > t {
                    return Some(local_ts(tz, day, a)?.max(t));
                }
            }
        }
        None
    }

    /// [`Timeperiods::next_invalid`] in time zone `tz`.
    pub fn next_invalid_in<Tz: TimeZone>(&self, tz: &Tz, name: &str, t: i64) -> Option<i64> {
        let idx = *self.by_name.get(name)?;
        let first = to_local(tz, t)?.date();
        let mut cur = t;
        for day in first.iter_days().take(HORIZON_DAYS as usize) {
            for (a, b) in self.day_set(idx, day) {
                let end = local_ts(tz, day, b)?;
                if end <= cur {
                    continue;
                }
                if local_ts(tz, day, a)? > cur {
                    return Some(cur);
                }
                cur = end;
            }
            if cur < local_ts(tz, day, DAY)? {
                return Some(cur);
            }
        }
        None
    }

    /// The valid ranges of local date `d` for period `idx`, excludes applied.
    fn day_set(&self, idx: usize, d: NaiveDate) -> DaySet {
        let p = &self.periods[idx];
        let mut best = u8::MAX;
        let mut times: DaySet = Vec::new();
        for r in &p.def.ranges {
            let class = r.class();
            if class > best || !r.covers(d) {
                continue;
            }
            if class < best {
                best = class;
                times.clear();
            }
            times.extend(r.times.iter().map(|t| (t.start, t.end)));
        }
        let mut set = normalize(times);
        for &e in &p.excludes {
            if set.is_empty() {
                break;
            }
            set = subtract(&set, &self.day_set(e, d));
        }
        set
    }
}

fn to_local<Tz: TimeZone>(tz: &Tz, t: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(t, 0).map(|u| u.with_timezone(tz).naive_local())
}

/// The Unix time of `secs` seconds after local midnight of `day` (86400 = next midnight). A
/// local time that does not exist (DST gap) is read with the offset in force before the gap,
/// like `mktime`; an ambiguous one (DST overlap) is the earliest.
fn local_ts<Tz: TimeZone>(tz: &Tz, day: NaiveDate, secs: u32) -> Option<i64> {
    let naive = day.and_hms_opt(0, 0, 0)? + Duration::seconds(i64::from(secs));
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(x) => Some(x.timestamp()),
        LocalResult::Ambiguous(a, _) => Some(a.timestamp()),
        LocalResult::None => {
            let before = tz.from_local_datetime(&(naive - Duration::hours(3))).earliest()?;
            let off = i64::from(before.offset().fix().local_minus_utc());
            Some(naive.and_utc().timestamp() - off)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn at<Tz: TimeZone>(tz: &Tz, y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        tz.with_ymd_and_hms(y, m, d, h, mi, s).unwrap().timestamp()
    }

    fn u(y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
        at(&Utc, y, m, d, h, mi, 0)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn tr(a: &str, b: &str) -> TimeRange {
        let p = |s: &str| {
            let (h, m) = s.split_once(':').unwrap();
            h.parse::<u32>().unwrap() * 3600 + m.parse::<u32>().unwrap() * 60
        };
        TimeRange { start: p(a), end: p(b) }
    }

    /// Builds a definition from "key value" lines (the key is the first word).
    fn def(name: &str, lines: &[&str], exclude: &[&str]) -> TimePeriodDef {
        TimePeriodDef {
            name: name.into(),
            ranges: lines
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                    parse_daterange(k, v).unwrap_or_else(|e| panic!("{l}: {e}"))
                })
                .collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    const WEEK: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

    fn all_day(name: &str, exclude: &[&str]) -> TimePeriodDef {
        let lines: Vec<String> = WEEK.iter().map(|d| format!("{d} 00:00-24:00")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        def(name, &lines, exclude)
    }

    fn workhours(name: &str, exclude: &[&str]) -> TimePeriodDef {
        let lines: Vec<String> = WEEK[..5].iter().map(|d| format!("{d} 09:00-17:00")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        def(name, &lines, exclude)
    }

    fn kind(key: &str, value: &str) -> (DateKind, u32) {
        let r = parse_daterange(key, value).unwrap_or_else(|e| panic!("{key} {value}: {e}"));
        (r.kind, r.skip)
    }

    fn err(key: &str, value: &str) -> String {
        match parse_daterange(key, value) {
            Ok(r) => panic!("'{key} {value}' should not parse, got {r:?}"),
            Err(e) => e,
        }
    }

    // ----- parsing -----

    #[test]
    fn parses_weekday_with_several_ranges() {
        let r = parse_daterange("monday", "09:00-17:00,18:00-20:00").unwrap();
        assert_eq!(r.kind, DateKind::WeekDay(Weekday::Mon));
        assert_eq!(r.skip, 1);
        assert_eq!(r.times, vec![tr("09:00", "17:00"), tr("18:00", "20:00")]);
        assert_eq!(
            r.times[0],
            TimeRange {
                start: 32_400,
                end: 61_200
            }
        );
        // Case and spaces around separators are tolerated; 24:00 is the end of the day.
        let r = parse_daterange("Sunday", " 9:00 - 12:00 , 13:00-24:00 ").unwrap();
        assert_eq!(r.kind, DateKind::WeekDay(Weekday::Sun));
        assert_eq!(r.times, vec![tr("09:00", "12:00"), tr("13:00", "24:00")]);
        assert_eq!(r.times[1].end, 86_400);
        // 00:00-00:00 is an empty range (Nagios: "exclude this day").
        let r = parse_daterange("december", "25 00:00-00:00").unwrap();
        assert_eq!(r.times, vec![TimeRange { start: 0, end: 0 }]);
    }

    #[test]
    fn parses_month_day_forms() {
        let md = |a, b| DateKind::MonthDay { start_day: a, end_day: b };
        assert_eq!(kind("day", "1 - 15 00:00-24:00"), (md(1, 15), 1));
        assert_eq!(kind("day", "1-15 00:00-24:00"), (md(1, 15), 1));
        assert_eq!(kind("day", "-1 00:00-24:00"), (md(-1, -1), 1));
        assert_eq!(kind("day", "2 00:00-24:00"), (md(2, 2), 1));
        assert_eq!(kind("day", "20 - -1 00:00-24:00"), (md(20, -1), 1));
        assert_eq!(kind("day", "1 - 15 / 3 00:00-24:00"), (md(1, 15), 3));
        assert_eq!(kind("day", "4 - day 6 / 2 00:00-24:00"), (md(4, 6), 2));
    }

    #[test]
    fn parses_month_date_forms() {
        let m = |sm, sd, em, ed| DateKind::MonthDate {
            start_month: sm,
            start_day: sd,
            end_month: em,
            end_day: ed,
        };
        assert_eq!(kind("january", "1 00:00-24:00"), (m(1, 1, 1, 1), 1));
        assert_eq!(kind("february", "-1 00:00-24:00"), (m(2, -1, 2, -1), 1));
        assert_eq!(kind("february", "29 00:00-24:00"), (m(2, 29, 2, 29), 1));
        assert_eq!(kind("april", "10 - 15 00:00-24:00"), (m(4, 10, 4, 15), 1));
        assert_eq!(kind("april", "10 - may 15 00:00-24:00"), (m(4, 10, 5, 15), 1));
        assert_eq!(kind("july", "10 - august 15 / 2 00:00-24:00"), (m(7, 10, 8, 15), 2));
        assert_eq!(kind("july", "10 - 15 / 2 00:00-24:00"), (m(7, 10, 7, 15), 2));
    }

    #[test]
    fn parses_weekday_offset_forms() {
        use Weekday::*;
        let wo = |sw, so, ew, eo| DateKind::WeekDayOffset {
            start_weekday: sw,
            start_offset: so,
            end_weekday: ew,
            end_offset: eo,
        };
        let mwd = |sw, so, sm, ew, eo, em| DateKind::MonthWeekDay {
            start_weekday: sw,
            start_offset: so,
            start_month: sm,
            end_weekday: ew,
            end_offset: eo,
            end_month: em,
        };
        assert_eq!(kind("monday", "3 00:00-24:00"), (wo(Mon, 3, Mon, 3), 1));
        assert_eq!(kind("friday", "-2 00:00-24:00"), (wo(Fri, -2, Fri, -2), 1));
        assert_eq!(kind("monday", "1 - friday -1 09:00-17:00"), (wo(Mon, 1, Fri, -1), 1));
        assert_eq!(kind("thursday", "2 - 4 00:00-24:00"), (wo(Thu, 2, Thu, 4), 1));
        assert_eq!(kind("monday", "3 - thursday 4 / 2 00:00-24:00"), (wo(Mon, 3, Thu, 4), 2));
        assert_eq!(kind("thursday", "-1 november 00:00-24:00"), (mwd(Thu, -1, 11, Thu, -1, 11), 1));
        assert_eq!(
            kind("monday", "1 january - thursday 4 february 00:00-24:00"),
            (mwd(Mon, 1, 1, Thu, 4, 2), 1)
        );
        assert_eq!(
            kind("tuesday", "1 april - friday 2 october / 3 00:00-24:00"),
            (mwd(Tue, 1, 4, Fri, 2, 10), 3)
        );
    }

    #[test]
    fn parses_calendar_forms() {
        let cal = |s, e| DateKind::Calendar { start: s, end: e };
        let d = date(2014, 1, 1);
        assert_eq!(kind("2014-01-01", "00:00-24:00"), (cal(d, Some(d)), 1));
        assert_eq!(
            kind("2014-01-01", "- 2014-02-01 / 3 00:00-24:00"),
            (cal(d, Some(date(2014, 2, 1))), 3)
        );
        assert_eq!(kind("2014-01-01", "- 2014-02-01 00:00-24:00"), (cal(d, Some(date(2014, 2, 1))), 1));
        // A single date with a skip runs for ever (Nagios).
        assert_eq!(kind("2007-01-01", "/ 7 00:00-24:00"), (cal(date(2007, 1, 1), None), 7));
        let r = parse_daterange("1999-01-28", "08:00-12:00,14:00-18:00").unwrap();
        assert_eq!(r.times, vec![tr("08:00", "12:00"), tr("14:00", "18:00")]);
        assert_eq!(r.class(), 0);
    }

    #[test]
    fn rejects_garbage_with_clear_messages() {
        let e = err("mondey", "09:00-17:00");
        assert!(e.contains("unknown day or month name 'mondey'"), "{e}");
        let e = err("monday", "25:00-26:00");
        assert!(e.contains("invalid time '25:00'"), "{e}");
        let e = err("day", "40 00:00-24:00");
        assert!(e.contains("day 40 does not exist"), "{e}");
        let e = err("monday", "09:00");
        assert!(e.contains("'09:00'") && e.contains("HH:MM-HH:MM"), "{e}");
        let e = err("monday", "");
        assert!(e.contains("no time ranges"), "{e}");
        let e = err("day", "1 - 15");
        assert!(e.contains("no time ranges"), "{e}");
        let e = err("february", "30 00:00-24:00");
        assert!(e.contains("day 30 does not exist in february"), "{e}");
        let e = err("monday", "6 00:00-24:00");
        assert!(e.contains("weekday offset"), "{e}");
        let e = err("monday", "17:00-09:00");
        assert!(e.contains("ends before it starts"), "{e}");
        let e = err("monday", "09:60-10:00");
        assert!(e.contains("'09:60'"), "{e}");
        let e = err("monday", "24:30-24:30");
        assert!(e.contains("'24:30'"), "{e}");
        let e = err("2014-02-30", "00:00-24:00");
        assert!(e.contains("invalid date '2014-02-30'"), "{e}");
        let e = err("2014-02-01", "- 2014-01-01 00:00-24:00");
        assert!(e.contains("before start date"), "{e}");
        let e = err("monday", "1 january - thursday 4 00:00-24:00");
        assert!(e.contains("different kinds"), "{e}");
        let e = err("day", "1 / 0 00:00-24:00");
        assert!(e.contains("at least 1"), "{e}");
        let e = err("monday", "/ 2 00:00-24:00");
        assert!(e.contains("skip"), "{e}");
        let e = err("january", "00:00-24:00");
        assert!(e.contains("needs a day number"), "{e}");
        let e = err("monday", "09:00-17:00;18:00-19:00");
        assert!(e.contains("invalid time"), "{e}");
        let e = err("day", "1 - 2 - 3 00:00-24:00");
        assert!(e.contains("more than one '-'"), "{e}");
        // Every message names the entry.
        assert!(err("mondey", "09:00-17:00").contains("'mondey 09:00-17:00'"));
    }

    // ----- validity -----

    #[test]
    fn always_valid_24x7_and_unknown_period() {
        let tps = Timeperiods::new(vec![all_day("24x7", &[])]);
        assert!(tps.contains("24x7"));
        assert!(!tps.contains("nope"));
        for t in [u(2024, 1, 1, 0, 0), u(2024, 1, 1, 23, 59) + 59, u(2024, 6, 15, 12, 0)] {
            assert!(tps.is_valid_in(&Utc, "24x7", t));
            assert_eq!(tps.next_valid_in(&Utc, "24x7", t), Some(t));
            // Continuous across every midnight: never invalid within the horizon.
            assert_eq!(tps.next_invalid_in(&Utc, "24x7", t), None);
        }
        // Unknown periods are always valid.
        assert!(tps.is_valid_in(&Utc, "nope", 1_700_000_000));
        assert_eq!(tps.next_valid_in(&Utc, "nope", 1_700_000_000), Some(1_700_000_000));
        assert_eq!(tps.next_invalid_in(&Utc, "nope", 1_700_000_000), None);
        // Local-time variants agree with the generic ones in Local.
        let t = 1_700_000_000;
        assert_eq!(tps.is_valid("24x7", t), tps.is_valid_in(&Local, "24x7", t));
        assert_eq!(tps.next_valid("nope", t), Some(t));
        assert_eq!(tps.next_invalid("24x7", t), None);
    }

    #[test]
    fn workhours_validity_and_next_times() {
        let tps = Timeperiods::new(vec![workhours("workhours", &[])]);
        let w = "workhours";
        // 2024-01-01 is a Monday.
        assert_eq!(u(2024, 1, 1, 0, 0), 1_704_067_200);
        assert!(!tps.is_valid_in(&Utc, w, u(2024, 1, 1, 9, 0) - 1));
        assert!(tps.is_valid_in(&Utc, w, u(2024, 1, 1, 9, 0)));
        assert!(tps.is_valid_in(&Utc, w, u(2024, 1, 1, 17, 0) - 1));
        assert!(!tps.is_valid_in(&Utc, w, u(2024, 1, 1, 17, 0)));
        assert_eq!(tps.next_valid_in(&Utc, w, u(2024, 1, 1, 8, 0)), Some(u(2024, 1, 1, 9, 0)));
        assert_eq!(tps.next_valid_in(&Utc, w, u(2024, 1, 1, 10, 30)), Some(u(2024, 1, 1, 10, 30)));
        assert_eq!(tps.next_valid_in(&Utc, w, u(2024, 1, 1, 18, 0)), Some(u(2024, 1, 2, 9, 0)));
        // Friday evening and Saturday: next is Monday 09:00.
        assert_eq!(tps.next_valid_in(&Utc, w, u(2024, 1, 5, 17, 0)), Some(u(2024, 1, 8, 9, 0)));
        assert_eq!(tps.next_valid_in(&Utc, w, u(2024, 1, 6, 12, 0)), Some(1_704_704_400));
        assert_eq!(tps.next_invalid_in(&Utc, w, u(2024, 1, 1, 10, 0)), Some(u(2024, 1, 1, 17, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, w, u(2024, 1, 1, 8, 0)), Some(u(2024, 1, 1, 8, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, w, u(2024, 1, 6, 8, 0)), Some(u(2024, 1, 6, 8, 0)));
    }

    #[test]
    fn weekday_only_period_on_saturday_in_fixed_offsets() {
        let tps = Timeperiods::new(vec![workhours("workhours", &[])]);
        let east = FixedOffset::east_opt(2 * 3600).unwrap();
        let west = FixedOffset::west_opt(5 * 3600).unwrap();
        // Saturday 2024-01-06 12:00 local -> Monday 2024-01-08 09:00 local.
        let t = at(&east, 2024, 1, 6, 12, 0, 0);
        let monday9 = tps.next_valid_in(&east, "workhours", t);
        assert_eq!(monday9, Some(u(2024, 1, 8, 7, 0)));
        assert_eq!(monday9, Some(1_704_697_200));
        assert!(tps.is_valid_in(&east, "workhours", 1_704_697_200));
        assert!(!tps.is_valid_in(&Utc, "workhours", 1_704_697_200));
        let t = at(&west, 2024, 1, 6, 12, 0, 0);
        assert_eq!(tps.next_valid_in(&west, "workhours", t), Some(u(2024, 1, 8, 14, 0)));
        assert_eq!(
            tps.next_invalid_in(&west, "workhours", u(2024, 1, 8, 15, 0)),
            Some(u(2024, 1, 8, 22, 0))
        );
        // Friday 23:30 UTC is already Saturday 01:30 in +02:00.
        assert!(!tps.is_valid_in(&east, "workhours", u(2024, 1, 5, 23, 30)));
    }

    #[test]
    fn continuous_across_midnight() {
        let tps = Timeperiods::new(vec![def("night", &["monday 22:00-24:00", "tuesday 00:00-02:00,02:00-03:00"], &[])]);
        assert!(tps.is_valid_in(&Utc, "night", u(2024, 1, 1, 23, 59) + 59));
        assert!(tps.is_valid_in(&Utc, "night", u(2024, 1, 2, 0, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, "night", u(2024, 1, 1, 23, 0)), Some(u(2024, 1, 2, 3, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "night", u(2024, 1, 2, 3, 0)), Some(u(2024, 1, 8, 22, 0)));
        // Also in a zone with an offset.
        let tz = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        assert_eq!(
            tps.next_invalid_in(&tz, "night", at(&tz, 2024, 1, 1, 23, 0, 0)),
            Some(at(&tz, 2024, 1, 2, 3, 0, 0))
        );
    }

    #[test]
    fn last_day_of_month() {
        let tps = Timeperiods::new(vec![def("last", &["day -1 00:00-24:00"], &[])]);
        let l = "last";
        // Leap year: February 29.
        assert_eq!(tps.next_valid_in(&Utc, l, u(2024, 2, 10, 0, 0)), Some(u(2024, 2, 29, 0, 0)));
        assert!(!tps.is_valid_in(&Utc, l, u(2024, 2, 28, 12, 0)));
        assert!(tps.is_valid_in(&Utc, l, u(2024, 2, 29, 12, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, l, u(2024, 2, 29, 5, 0)), Some(u(2024, 3, 1, 0, 0)));
        // Not a leap year: February 28.
        assert_eq!(tps.next_valid_in(&Utc, l, u(2023, 2, 10, 0, 0)), Some(u(2023, 2, 28, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, l, u(2024, 4, 1, 0, 0)), Some(u(2024, 4, 30, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, l, u(2024, 12, 31, 23, 0)), Some(u(2024, 12, 31, 23, 0)));
        // "day 20 - -1": the end of every month; "day 31" skips short months.
        let tps = Timeperiods::new(vec![
            def("end", &["day 20 - -1 00:00-24:00"], &[]),
            def("d31", &["day 31 10:00-11:00"], &[]),
        ]);
        assert_eq!(tps.next_invalid_in(&Utc, "end", u(2024, 2, 25, 0, 0)), Some(u(2024, 3, 1, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "end", u(2024, 3, 1, 0, 0)), Some(u(2024, 3, 20, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "d31", u(2024, 4, 1, 0, 0)), Some(u(2024, 5, 31, 10, 0)));
    }

    #[test]
    fn last_thursday_of_november() {
        let tps = Timeperiods::new(vec![def("thanksgiving", &["thursday -1 november 00:00-24:00"], &[])]);
        let n = "thanksgiving";
        assert_eq!(tps.next_valid_in(&Utc, n, u(2024, 1, 1, 0, 0)), Some(u(2024, 11, 28, 0, 0)));
        assert!(!tps.is_valid_in(&Utc, n, u(2024, 11, 21, 12, 0)));
        assert!(tps.is_valid_in(&Utc, n, u(2024, 11, 28, 12, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, n, u(2024, 11, 28, 12, 0)), Some(u(2024, 11, 29, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, n, u(2024, 11, 29, 0, 0)), Some(u(2025, 11, 27, 0, 0)));
        // And the fourth Thursday (US Thanksgiving), and the 3rd Monday of every month.
        let tps = Timeperiods::new(vec![
            def("t4", &["thursday 4 november 00:00-24:00"], &[]),
            def("m3", &["monday 3 00:00-24:00"], &[]),
        ]);
        assert_eq!(tps.next_valid_in(&Utc, "t4", u(2023, 1, 1, 0, 0)), Some(u(2023, 11, 23, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "m3", u(2024, 1, 16, 0, 0)), Some(u(2024, 2, 19, 0, 0)));
    }

    #[test]
    fn weekday_offset_ranges() {
        // From the first Monday to the last Friday of each month, and a range over months.
        let tps = Timeperiods::new(vec![
            def("mf", &["monday 1 - friday -1 00:00-24:00"], &[]),
            def("q", &["monday 1 january - thursday 4 february 00:00-24:00"], &[]),
        ]);
        // March 2024: first Monday is the 4th, last Friday the 29th.
        assert!(!tps.is_valid_in(&Utc, "mf", u(2024, 3, 3, 12, 0)));
        assert!(tps.is_valid_in(&Utc, "mf", u(2024, 3, 4, 0, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, "mf", u(2024, 3, 10, 0, 0)), Some(u(2024, 3, 30, 0, 0)));
        // 2024: first Monday of January is the 1st, fourth Thursday of February is the 22nd.
        assert!(tps.is_valid_in(&Utc, "q", u(2024, 1, 1, 0, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, "q", u(2024, 1, 10, 0, 0)), Some(u(2024, 2, 23, 0, 0)));
    }

    #[test]
    fn calendar_dates_with_skip() {
        let tps = Timeperiods::new(vec![
            def("every3", &["2024-01-01 - 2024-01-31 / 3 10:00-12:00"], &[]),
            def("weekly", &["2024-01-01 / 7 00:00-24:00"], &[]),
            def("once", &["2024-07-14 08:00-09:00"], &[]),
        ]);
        let e = "every3";
        assert!(tps.is_valid_in(&Utc, e, u(2024, 1, 4, 11, 0)));
        assert!(!tps.is_valid_in(&Utc, e, u(2024, 1, 5, 11, 0)));
        assert_eq!(tps.next_valid_in(&Utc, e, u(2024, 1, 2, 0, 0)), Some(u(2024, 1, 4, 10, 0)));
        assert_eq!(tps.next_valid_in(&Utc, e, u(2024, 1, 29, 0, 0)), Some(u(2024, 1, 31, 10, 0)));
        assert_eq!(tps.next_valid_in(&Utc, e, u(2024, 1, 31, 13, 0)), None);
        assert_eq!(tps.next_valid_in(&Utc, e, u(2023, 12, 1, 0, 0)), Some(u(2024, 1, 1, 10, 0)));
        // Open-ended: every 7 days from 2024-01-01 on.
        let w = "weekly";
        assert!(!tps.is_valid_in(&Utc, w, u(2023, 12, 25, 12, 0)));
        assert_eq!(tps.next_valid_in(&Utc, w, u(2023, 12, 20, 0, 0)), Some(u(2024, 1, 1, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, w, u(2024, 3, 5, 0, 0)), Some(u(2024, 3, 11, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, w, u(2030, 1, 1, 0, 0)), Some(u(2030, 1, 7, 0, 0)));
        // A single date: found within the horizon, not beyond.
        assert_eq!(tps.next_valid_in(&Utc, "once", u(2023, 8, 1, 0, 0)), Some(u(2024, 7, 14, 8, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "once", u(2023, 7, 1, 0, 0)), None);
        assert_eq!(tps.next_valid_in(&Utc, "once", u(2024, 7, 14, 9, 0)), None);
    }

    #[test]
    fn month_date_ranges_spanning_months_and_years() {
        let tps = Timeperiods::new(vec![
            def("summer", &["july 10 - august 15 00:00-24:00"], &[]),
            def("summer2", &["july 10 - august 15 / 2 00:00-24:00"], &[]),
            def("winter", &["november 15 - february 10 00:00-24:00"], &[]),
            def("feb", &["february -1 12:00-13:00"], &[]),
        ]);
        let s = "summer";
        assert!(!tps.is_valid_in(&Utc, s, u(2024, 7, 10, 0, 0) - 1));
        assert!(tps.is_valid_in(&Utc, s, u(2024, 7, 10, 0, 0)));
        assert!(tps.is_valid_in(&Utc, s, u(2024, 7, 31, 23, 59)));
        assert!(tps.is_valid_in(&Utc, s, u(2024, 8, 15, 23, 59)));
        assert!(!tps.is_valid_in(&Utc, s, u(2024, 8, 16, 0, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, s, u(2024, 7, 20, 0, 0)), Some(u(2024, 8, 16, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, s, u(2024, 8, 16, 0, 0)), Some(u(2025, 7, 10, 0, 0)));
        // Every other day from July 10: July 10, 12, ... 30, August 1, 3, ...
        assert!(tps.is_valid_in(&Utc, "summer2", u(2024, 7, 30, 12, 0)));
        assert!(!tps.is_valid_in(&Utc, "summer2", u(2024, 7, 31, 12, 0)));
        assert!(tps.is_valid_in(&Utc, "summer2", u(2024, 8, 1, 12, 0)));
        assert_eq!(
            tps.next_invalid_in(&Utc, "summer2", u(2024, 8, 1, 12, 0)),
            Some(u(2024, 8, 2, 0, 0))
        );
        // Over the new year.
        assert!(!tps.is_valid_in(&Utc, "winter", u(2024, 11, 14, 12, 0)));
        assert!(tps.is_valid_in(&Utc, "winter", u(2024, 12, 31, 12, 0)));
        assert!(tps.is_valid_in(&Utc, "winter", u(2025, 1, 5, 12, 0)));
        assert!(!tps.is_valid_in(&Utc, "winter", u(2025, 2, 11, 12, 0)));
        assert_eq!(
            tps.next_invalid_in(&Utc, "winter", u(2024, 12, 1, 0, 0)),
            Some(u(2025, 2, 11, 0, 0))
        );
        assert_eq!(tps.next_valid_in(&Utc, "feb", u(2024, 1, 1, 0, 0)), Some(u(2024, 2, 29, 12, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "feb", u(2025, 1, 1, 0, 0)), Some(u(2025, 2, 28, 12, 0)));
    }

    fn holidays() -> TimePeriodDef {
        def(
            "us-holidays",
            &[
                "january 1 00:00-24:00",
                "thursday -1 november 00:00-24:00",
                "december 25 00:00-24:00",
            ],
            &[],
        )
    }

    #[test]
    fn exclusion_removes_holidays() {
        let tps = Timeperiods::new(vec![all_day("24x7", &["us-holidays", "unknown"]), holidays()]);
        let p = "24x7";
        assert!(tps.is_valid_in(&Utc, p, u(2024, 12, 24, 23, 59) + 59));
        assert!(!tps.is_valid_in(&Utc, p, u(2024, 12, 25, 0, 0)));
        assert!(!tps.is_valid_in(&Utc, p, u(2024, 12, 25, 12, 0)));
        assert_eq!(tps.next_valid_in(&Utc, p, u(2024, 12, 25, 8, 0)), Some(u(2024, 12, 26, 0, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, p, u(2024, 12, 20, 0, 0)), Some(u(2024, 12, 25, 0, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, p, u(2024, 11, 1, 0, 0)), Some(u(2024, 11, 28, 0, 0)));
        // Dec 31 -> Jan 1 is a holiday; valid again Jan 2.
        assert_eq!(tps.next_invalid_in(&Utc, p, u(2024, 12, 31, 10, 0)), Some(u(2025, 1, 1, 0, 0)));
        assert_eq!(tps.next_valid_in(&Utc, p, u(2025, 1, 1, 10, 0)), Some(u(2025, 1, 2, 0, 0)));
    }

    #[test]
    fn nested_excludes_apply_recursively() {
        // A = always, minus B; B = workhours minus Christmas. So Christmas workhours stay in A.
        let tps = Timeperiods::new(vec![
            all_day("A", &["B"]),
            workhours("B", &["C"]),
            def("C", &["december 25 00:00-24:00"], &[]),
        ]);
        // 2024-12-25 is a Wednesday.
        assert!(!tps.is_valid_in(&Utc, "B", u(2024, 12, 25, 10, 0)));
        assert!(tps.is_valid_in(&Utc, "A", u(2024, 12, 25, 10, 0)));
        assert!(!tps.is_valid_in(&Utc, "A", u(2024, 12, 24, 10, 0)));
        assert!(tps.is_valid_in(&Utc, "A", u(2024, 12, 24, 17, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "A", u(2024, 12, 24, 10, 0)), Some(u(2024, 12, 24, 17, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, "A", u(2024, 12, 24, 17, 0)), Some(u(2024, 12, 26, 9, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "B", u(2024, 12, 24, 18, 0)), Some(u(2024, 12, 26, 9, 0)));
    }

    #[test]
    fn exclude_loops_terminate() {
        let tps = Timeperiods::new(vec![
            all_day("A", &["B"]),
            workhours("B", &["A"]),
            def("self", &["monday 10:00-11:00"], &["self"]),
            all_day("X", &["Y"]),
            all_day("Y", &["Z"]),
            all_day("Z", &["X"]),
        ]);
        // The edge closing the loop (B -> A) is ignored: A = always minus workhours.
        assert!(!tps.is_valid_in(&Utc, "A", u(2024, 1, 1, 10, 0)));
        assert!(tps.is_valid_in(&Utc, "B", u(2024, 1, 1, 10, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "A", u(2024, 1, 1, 10, 0)), Some(u(2024, 1, 1, 17, 0)));
        assert!(tps.is_valid_in(&Utc, "self", u(2024, 1, 1, 10, 30)));
        // X excludes Y which excludes Z (Z -> X dropped): Z valid, Y never, X always.
        assert!(tps.is_valid_in(&Utc, "X", u(2024, 1, 1, 10, 0)));
        assert!(!tps.is_valid_in(&Utc, "Y", u(2024, 1, 1, 10, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "Y", u(2024, 1, 1, 10, 0)), None);
        assert_eq!(tps.next_invalid_in(&Utc, "X", u(2024, 1, 1, 10, 0)), None);
        assert_eq!(tps.next_invalid_in(&Utc, "Y", u(2024, 1, 1, 10, 0)), Some(u(2024, 1, 1, 10, 0)));
    }

    #[test]
    fn exceptions_override_weekdays() {
        let mut wh = workhours("wh", &[]);
        wh.ranges.push(parse_daterange("december", "25 00:00-00:00").unwrap());
        let mut mixed = workhours("mixed", &[]);
        for (k, v) in [
            ("2024-12-24", "10:00-12:00"),
            ("december", "24 08:00-09:00"),
            ("monday", "1 10:00-11:00"),
        ] {
            mixed.ranges.push(parse_daterange(k, v).unwrap());
        }
        let days = def("days", &["day 1 - 10 08:00-09:00", "day 5 10:00-11:00"], &[]);
        let tps = Timeperiods::new(vec![wh, mixed, days]);
        // An empty exception makes Christmas (a Wednesday) invalid all day.
        assert!(!tps.is_valid_in(&Utc, "wh", u(2024, 12, 25, 10, 0)));
        assert!(tps.is_valid_in(&Utc, "wh", u(2024, 12, 24, 10, 0)));
        assert_eq!(tps.next_valid_in(&Utc, "wh", u(2024, 12, 25, 8, 0)), Some(u(2024, 12, 26, 9, 0)));
        assert_eq!(
            tps.next_invalid_in(&Utc, "wh", u(2024, 12, 24, 10, 0)),
            Some(u(2024, 12, 24, 17, 0))
        );
        // Calendar date beats month date beats weekday.
        let m = "mixed";
        assert!(!tps.is_valid_in(&Utc, m, u(2024, 12, 24, 8, 30)));
        assert!(!tps.is_valid_in(&Utc, m, u(2024, 12, 24, 9, 30)));
        assert!(tps.is_valid_in(&Utc, m, u(2024, 12, 24, 11, 0)));
        assert_eq!(tps.next_valid_in(&Utc, m, u(2024, 12, 24, 8, 0)), Some(u(2024, 12, 24, 10, 0)));
        // 2025-12-24 (a Wednesday): only the month date applies.
        assert!(tps.is_valid_in(&Utc, m, u(2025, 12, 24, 8, 30)));
        assert!(!tps.is_valid_in(&Utc, m, u(2025, 12, 24, 11, 0)));
        assert_eq!(tps.next_invalid_in(&Utc, m, u(2025, 12, 24, 8, 30)), Some(u(2025, 12, 24, 9, 0)));
        // The first Monday of a month beats the plain Monday.
        assert!(!tps.is_valid_in(&Utc, m, u(2024, 1, 1, 9, 30)));
        assert!(tps.is_valid_in(&Utc, m, u(2024, 1, 1, 10, 30)));
        assert!(tps.is_valid_in(&Utc, m, u(2024, 1, 8, 9, 30)));
        // Entries of the same class add up.
        assert!(tps.is_valid_in(&Utc, "days", u(2024, 1, 5, 8, 30)));
        assert!(tps.is_valid_in(&Utc, "days", u(2024, 1, 5, 10, 30)));
        assert!(!tps.is_valid_in(&Utc, "days", u(2024, 1, 4, 10, 30)));
    }

    #[test]
    fn empty_period_is_never_valid() {
        let tps = Timeperiods::new(vec![def("none", &[], &[])]);
        let t = u(2024, 1, 1, 0, 0);
        assert!(!tps.is_valid_in(&Utc, "none", t));
        assert_eq!(tps.next_valid_in(&Utc, "none", t), None);
        assert_eq!(tps.next_invalid_in(&Utc, "none", t), Some(t));
        assert_eq!(tps.get("none").map(|d| d.name.as_str()), Some("none"));
    }

    /// A zone at +01:00 that moves to +02:00 from 2024-03-31 01:00 UTC to 2024-10-27 01:00 UTC
    /// (the European rule), to test daylight saving changes deterministically.
    #[derive(Debug, Clone, Copy)]
    struct Cet;

    impl Cet {
        fn offset_at_utc(utc: &NaiveDateTime) -> FixedOffset {
            let start = date(2024, 3, 31).and_hms_opt(1, 0, 0).unwrap();
            let end = date(2024, 10, 27).and_hms_opt(1, 0, 0).unwrap();
            let h = if *utc >= start && *utc < end { 2 } else { 1 };
            FixedOffset::east_opt(h * 3600).unwrap()
        }
    }

    impl TimeZone for Cet {
        type Offset = FixedOffset;
        fn from_offset(_: &FixedOffset) -> Self {
            Cet
        }
        fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<FixedOffset> {
            self.offset_from_local_datetime(&local.and_hms_opt(0, 0, 0).unwrap())
        }
        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
            let fits = |h: i32| {
                let off = FixedOffset::east_opt(h * 3600).unwrap();
                let utc = *local - Duration::hours(i64::from(h));
                (Self::offset_at_utc(&utc) == off).then_some(off)
            };
            match (fits(1), fits(2)) {
                (Some(a), Some(b)) => LocalResult::Ambiguous(b, a),
                (Some(a), None) | (None, Some(a)) => LocalResult::Single(a),
                (None, None) => LocalResult::None,
            }
        }
        fn offset_from_utc_date(&self, utc: &NaiveDate) -> FixedOffset {
            Self::offset_at_utc(&utc.and_hms_opt(0, 0, 0).unwrap())
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            Self::offset_at_utc(utc)
        }
    }

    #[test]
    fn daylight_saving_changes() {
        let tps = Timeperiods::new(vec![
            all_day("24x7", &[]),
            workhours("wh", &[]),
            def("gap", &["sunday 02:30-04:00"], &[]),
            def("sun", &["sunday 00:00-24:00"], &[]),
        ]);
        // Spring forward (Sunday 2024-03-31, 02:00 -> 03:00 local).
        assert_eq!(tps.next_invalid_in(&Cet, "24x7", u(2024, 3, 30, 12, 0)), None);
        assert_eq!(tps.next_valid_in(&Cet, "wh", u(2024, 3, 30, 12, 0)), Some(u(2024, 4, 1, 7, 0)));
        // 02:30 does not exist that day: the range starts when the clock shows 03:30 (as mktime).
        assert_eq!(tps.next_valid_in(&Cet, "gap", u(2024, 3, 30, 23, 0)), Some(u(2024, 3, 31, 1, 30)));
        assert!(tps.is_valid_in(&Cet, "gap", u(2024, 3, 31, 1, 30)));
        assert!(!tps.is_valid_in(&Cet, "gap", u(2024, 3, 31, 2, 0)));
        // A 23-hour Sunday, then a 25-hour one in October.
        assert_eq!(tps.next_invalid_in(&Cet, "sun", u(2024, 3, 31, 10, 0)), Some(u(2024, 3, 31, 22, 0)));
        assert_eq!(
            tps.next_invalid_in(&Cet, "sun", u(2024, 10, 27, 10, 0)),
            Some(u(2024, 10, 27, 23, 0))
        );
        assert_eq!(tps.next_valid_in(&Cet, "sun", u(2024, 10, 26, 12, 0)), Some(u(2024, 10, 26, 22, 0)));
        // Fall back: Monday 09:00 is at +01:00 again.
        assert_eq!(tps.next_valid_in(&Cet, "wh", u(2024, 10, 26, 12, 0)), Some(u(2024, 10, 28, 8, 0)));
    }

    #[test]
    fn covers_helpers() {
        let r = parse_daterange("day", "-1 00:00-24:00").unwrap();
        assert!(r.covers(date(2024, 2, 29)));
        assert!(!r.covers(date(2024, 2, 28)));
        assert!(r.covers(date(2023, 2, 28)));
        assert_eq!(nth_weekday(2024, 11, Weekday::Thu, -1), Some(date(2024, 11, 28)));
        assert_eq!(nth_weekday(2024, 11, Weekday::Thu, 5), None);
        assert_eq!(nth_weekday(2024, 2, Weekday::Thu, 5), Some(date(2024, 2, 29)));
    }

    #[test]
    fn many_next_valid_calls_are_fast_enough() {
        let tps = Timeperiods::new(vec![workhours("wh", &["us-holidays"]), holidays()]);
        let start = u(2024, 1, 1, 0, 0);
        let mut acc = 0i64;
        for i in 0..20_000 {
            acc += tps.next_valid_in(&Utc, "wh", start + i * 613).unwrap();
        }
        assert!(acc > 0);
    }
}
