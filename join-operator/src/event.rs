//! The workload's records (`shared/workload.md`) and their CSV form.
//!
//! Parsing is hand-rolled on byte slices: the job's throughput target is
//! millions of events per second, so no field allocates except `device`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Join key: `(profile_id, title_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JoinKey {
    pub profile_id: i64,
    pub title_id: i64,
}

/// The join window: a play matches an impression of the same key iff
/// `i.ts_ms <= p.ts_ms <= i.ts_ms + JOIN_WINDOW_MS`.
pub const JOIN_WINDOW_MS: i64 = 1_800_000;

/// True iff a play at `play_ts` matches an impression at `impression_ts` of the same key.
pub fn in_window(impression_ts: i64, play_ts: i64) -> bool {
    impression_ts <= play_ts && play_ts <= impression_ts.saturating_add(JOIN_WINDOW_MS)
}

/// What every event of both streams has.
pub trait Event {
    fn ts_ms(&self) -> i64;
    fn key(&self) -> JoinKey;
    /// `impression_id` or `play_id`.
    fn id(&self) -> i64;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impression {
    pub impression_id: i64,
    pub profile_id: i64,
    pub title_id: i64,
    pub ts_ms: i64,
    pub row: i32,
    pub rank: i32,
    pub device: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Play {
    pub play_id: i64,
    pub profile_id: i64,
    pub title_id: i64,
    pub ts_ms: i64,
    pub duration_ms: i64,
}

/// One output row of the join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JoinedRow {
    pub play_id: i64,
    pub impression_id: i64,
    pub profile_id: i64,
    pub title_id: i64,
    pub play_ts_ms: i64,
    pub impression_ts_ms: i64,
}

impl JoinedRow {
    pub fn new(play: &Play, impression: &Impression) -> Self {
        JoinedRow {
            play_id: play.play_id,
            impression_id: impression.impression_id,
            profile_id: play.profile_id,
            title_id: play.title_id,
            play_ts_ms: play.ts_ms,
            impression_ts_ms: impression.ts_ms,
        }
    }
}

/// Which input stream an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Impression,
    Play,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Impression => "impression",
            Stream::Play => "play",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event went to the late side output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateReason {
    /// `ts_ms` below the join watermark at arrival (allowed lateness 0).
    BehindWatermark,
    /// `ts_ms` below the join watermark minus the allowed lateness.
    BeyondAllowedLateness,
}

impl LateReason {
    pub fn for_allowed_lateness(allowed_lateness_ms: i64) -> Self {
        if allowed_lateness_ms == 0 {
            LateReason::BehindWatermark
        } else {
            LateReason::BeyondAllowedLateness
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LateReason::BehindWatermark => "behind_watermark",
            LateReason::BeyondAllowedLateness => "beyond_allowed_lateness",
        }
    }
}

/// A row of the late side output (`DIR/late/*.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LateEvent {
    pub stream: Stream,
    pub event_id: i64,
    pub profile_id: i64,
    pub title_id: i64,
    pub ts_ms: i64,
    /// The join watermark when the event arrived.
    pub watermark_ms: i64,
    pub reason: LateReason,
}

impl LateEvent {
    pub fn new<E: Event>(stream: Stream, event: &E, watermark_ms: i64, reason: LateReason) -> Self {
        let key = event.key();
        LateEvent {
            stream,
            event_id: event.id(),
            profile_id: key.profile_id,
            title_id: key.title_id,
            ts_ms: event.ts_ms(),
            watermark_ms,
            reason,
        }
    }
}

impl Event for Impression {
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    fn key(&self) -> JoinKey {
        JoinKey {
            profile_id: self.profile_id,
            title_id: self.title_id,
        }
    }
    fn id(&self) -> i64 {
        self.impression_id
    }
}

impl Event for Play {
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    fn key(&self) -> JoinKey {
        JoinKey {
            profile_id: self.profile_id,
            title_id: self.title_id,
        }
    }
    fn id(&self) -> i64 {
        self.play_id
    }
}

/// What is wrong with one field of a CSV line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("missing (line has too few fields)")]
    Missing,
    #[error("not an integer: {0:?}")]
    NotAnInteger(String),
    #[error("integer out of range: {0:?}")]
    OutOfRange(String),
    #[error("empty")]
    Empty,
    #[error("not valid UTF-8")]
    InvalidUtf8,
    #[error("unknown value {0:?}")]
    UnknownValue(String),
    #[error("unexpected extra field(s) after the last column")]
    TooManyFields,
}

/// A field that failed to parse: 1-based column number and its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column} ({name}): {problem}")]
pub struct FieldError {
    pub column: usize,
    pub name: &'static str,
    pub problem: FieldProblem,
}

/// A record with a fixed CSV header, parsed from and written to one line.
pub trait CsvRecord: Sized {
    /// Column names in order.
    const COLUMNS: &'static [&'static str];
    /// Parses one line without its line terminator.
    fn parse_csv(line: &[u8]) -> Result<Self, FieldError>;
    /// Appends the line, with a trailing `\n`.
    fn write_csv(&self, out: &mut Vec<u8>);

    /// The header line, without `\n`.
    fn header() -> String {
        Self::COLUMNS.join(",")
    }
}

/// Splits a line into fields, remembering the column for errors.
struct Fields<'a> {
    rest: Option<&'a [u8]>,
    column: usize,
    names: &'static [&'static str],
}

impl<'a> Fields<'a> {
    fn new(line: &'a [u8], names: &'static [&'static str]) -> Self {
        Fields {
            rest: Some(line),
            column: 0,
            names,
        }
    }

    fn error(&self, problem: FieldProblem) -> FieldError {
        let idx = self.column.saturating_sub(1);
        FieldError {
            column: self.column,
            name: self.names.get(idx).copied().unwrap_or("?"),
            problem,
        }
    }

    fn next_field(&mut self) -> Result<&'a [u8], FieldError> {
        self.column += 1;
        let rest = match self.rest {
            Some(r) => r,
            None => return Err(self.error(FieldProblem::Missing)),
        };
        match memchr::memchr(b',', rest) {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Ok(&rest[..i])
            }
            None => {
                self.rest = None;
                Ok(rest)
            }
        }
    }

    fn i64(&mut self) -> Result<i64, FieldError> {
        let field = self.next_field()?;
        parse_i64(field).map_err(|p| self.error(p))
    }

    fn i32(&mut self) -> Result<i32, FieldError> {
        let field = self.next_field()?;
        let v = parse_i64(field).map_err(|p| self.error(p))?;
        i32::try_from(v).map_err(|_| self.error(FieldProblem::OutOfRange(lossy(field))))
    }

    fn str(&mut self) -> Result<&'a str, FieldError> {
        let field = self.next_field()?;
        if field.is_empty() {
            return Err(self.error(FieldProblem::Empty));
        }
        std::str::from_utf8(field).map_err(|_| self.error(FieldProblem::InvalidUtf8))
    }

    fn finish(mut self) -> Result<(), FieldError> {
        if self.rest.is_some() {
            self.column += 1;
            return Err(self.error(FieldProblem::TooManyFields));
        }
        Ok(())
    }
}

fn lossy(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned()
}

/// Decimal i64 with an optional leading `-`; nothing else accepted.
fn parse_i64(field: &[u8]) -> Result<i64, FieldProblem> {
    let (negative, digits) = match field.split_first() {
        None => return Err(FieldProblem::Empty),
        Some((b'-', rest)) => (true, rest),
        Some(_) => (false, field),
    };
    if digits.is_empty() {
        return Err(FieldProblem::NotAnInteger(lossy(field)));
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut acc: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(FieldProblem::NotAnInteger(lossy(field)));
        }
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_sub(i64::from(d)))
            .ok_or_else(|| FieldProblem::OutOfRange(lossy(field)))?;
    }
    if negative {
        Ok(acc)
    } else {
        acc.checked_neg()
            .ok_or_else(|| FieldProblem::OutOfRange(lossy(field)))
    }
}

fn put_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
}

fn put_ints<const N: usize>(out: &mut Vec<u8>, values: [i64; N]) {
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_int(out, v);
    }
}

impl CsvRecord for Impression {
    const COLUMNS: &'static [&'static str] = &[
        "impression_id",
        "profile_id",
        "title_id",
        "ts_ms",
        "row",
        "rank",
        "device",
    ];

    fn parse_csv(line: &[u8]) -> Result<Self, FieldError> {
        let mut f = Fields::new(line, Self::COLUMNS);
        let impression_id = f.i64()?;
        let profile_id = f.i64()?;
        let title_id = f.i64()?;
        let ts_ms = f.i64()?;
        let row = f.i32()?;
        let rank = f.i32()?;
        let device = f.str()?.to_owned();
        f.finish()?;
        Ok(Impression {
            impression_id,
            profile_id,
            title_id,
            ts_ms,
            row,
            rank,
            device,
        })
    }

    fn write_csv(&self, out: &mut Vec<u8>) {
        put_ints(
            out,
            [
                self.impression_id,
                self.profile_id,
                self.title_id,
                self.ts_ms,
            ],
        );
        out.push(b',');
        put_int(out, self.row);
        out.push(b',');
        put_int(out, self.rank);
        out.push(b',');
        out.extend_from_slice(self.device.as_bytes());
        out.push(b'\n');
    }
}

impl CsvRecord for Play {
    const COLUMNS: &'static [&'static str] =
        &["play_id", "profile_id", "title_id", "ts_ms", "duration_ms"];

    fn parse_csv(line: &[u8]) -> Result<Self, FieldError> {
        let mut f = Fields::new(line, Self::COLUMNS);
        let play = Play {
            play_id: f.i64()?,
            profile_id: f.i64()?,
            title_id: f.i64()?,
            ts_ms: f.i64()?,
            duration_ms: f.i64()?,
        };
        f.finish()?;
        Ok(play)
    }

    fn write_csv(&self, out: &mut Vec<u8>) {
        put_ints(
            out,
            [
                self.play_id,
                self.profile_id,
                self.title_id,
                self.ts_ms,
                self.duration_ms,
            ],
        );
        out.push(b'\n');
    }
}

impl CsvRecord for JoinedRow {
    const COLUMNS: &'static [&'static str] = &[
        "play_id",
        "impression_id",
        "profile_id",
        "title_id",
        "play_ts_ms",
        "impression_ts_ms",
    ];

    fn parse_csv(line: &[u8]) -> Result<Self, FieldError> {
        let mut f = Fields::new(line, Self::COLUMNS);
        let row = JoinedRow {
            play_id: f.i64()?,
            impression_id: f.i64()?,
            profile_id: f.i64()?,
            title_id: f.i64()?,
            play_ts_ms: f.i64()?,
            impression_ts_ms: f.i64()?,
        };
        f.finish()?;
        Ok(row)
    }

    fn write_csv(&self, out: &mut Vec<u8>) {
        put_ints(
            out,
            [
                self.play_id,
                self.impression_id,
                self.profile_id,
                self.title_id,
                self.play_ts_ms,
                self.impression_ts_ms,
            ],
        );
        out.push(b'\n');
    }
}

impl CsvRecord for LateEvent {
    const COLUMNS: &'static [&'static str] = &[
        "stream",
        "event_id",
        "profile_id",
        "title_id",
        "ts_ms",
        "watermark_ms",
        "reason",
    ];

    fn parse_csv(line: &[u8]) -> Result<Self, FieldError> {
        let mut f = Fields::new(line, Self::COLUMNS);
        let stream = match f.str()? {
            "impression" => Stream::Impression,
            "play" => Stream::Play,
            other => return Err(f.error(FieldProblem::UnknownValue(other.to_owned()))),
        };
        let event_id = f.i64()?;
        let profile_id = f.i64()?;
        let title_id = f.i64()?;
        let ts_ms = f.i64()?;
        let watermark_ms = f.i64()?;
        let reason = match f.str()? {
            "behind_watermark" => LateReason::BehindWatermark,
            "beyond_allowed_lateness" => LateReason::BeyondAllowedLateness,
            other => return Err(f.error(FieldProblem::UnknownValue(other.to_owned()))),
        };
        f.finish()?;
        Ok(LateEvent {
            stream,
            event_id,
            profile_id,
            title_id,
            ts_ms,
            watermark_ms,
            reason,
        })
    }

    fn write_csv(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.stream.as_str().as_bytes());
        out.push(b',');
        put_ints(
            out,
            [
                self.event_id,
                self.profile_id,
                self.title_id,
                self.ts_ms,
                self.watermark_ms,
            ],
        );
        out.push(b',');
        out.extend_from_slice(self.reason.as_str().as_bytes());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip<R: CsvRecord + PartialEq + fmt::Debug>(r: &R) {
        let mut buf = Vec::new();
        r.write_csv(&mut buf);
        assert_eq!(buf.last(), Some(&b'\n'));
        let parsed = R::parse_csv(&buf[..buf.len() - 1]).unwrap();
        assert_eq!(&parsed, r);
    }

    #[test]
    fn headers_match_workload() {
        assert_eq!(
            JoinedRow::header(),
            "play_id,impression_id,profile_id,title_id,play_ts_ms,impression_ts_ms"
        );
        assert_eq!(
            Impression::header(),
            "impression_id,profile_id,title_id,ts_ms,row,rank,device"
        );
        assert_eq!(
            Play::header(),
            "play_id,profile_id,title_id,ts_ms,duration_ms"
        );
    }

    #[test]
    fn parse_i64_edges() {
        assert_eq!(parse_i64(b"0"), Ok(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        assert!(matches!(
            parse_i64(b"9223372036854775808"),
            Err(FieldProblem::OutOfRange(_))
        ));
        assert!(matches!(
            parse_i64(b"-"),
            Err(FieldProblem::NotAnInteger(_))
        ));
        assert!(matches!(
            parse_i64(b"+1"),
            Err(FieldProblem::NotAnInteger(_))
        ));
        assert!(matches!(
            parse_i64(b"1 "),
            Err(FieldProblem::NotAnInteger(_))
        ));
        assert_eq!(parse_i64(b""), Err(FieldProblem::Empty));
    }

    #[test]
    fn errors_name_the_column() {
        let e = Impression::parse_csv(b"1,2,3,x4,5,6,tv").unwrap_err();
        assert_eq!((e.column, e.name), (4, "ts_ms"));
        let e = Impression::parse_csv(b"1,2,3,4,5,6").unwrap_err();
        assert_eq!(
            (e.column, e.name, e.problem),
            (7, "device", FieldProblem::Missing)
        );
        let e = Play::parse_csv(b"1,2,3,4,5,6").unwrap_err();
        assert_eq!((e.column, e.problem), (6, FieldProblem::TooManyFields));
        let e = Impression::parse_csv(b"1,2,3,4,5,99999999999,tv").unwrap_err();
        assert_eq!(e.name, "rank");
        assert!(matches!(e.problem, FieldProblem::OutOfRange(_)));
    }

    proptest! {
        #[test]
        fn impression_round_trips(id: i64, p: i64, t: i64, ts: i64, row: i32, rank: i32,
                                  device in "[a-z_]{1,12}") {
            round_trip(&Impression { impression_id: id, profile_id: p, title_id: t, ts_ms: ts,
                                     row, rank, device });
        }

        #[test]
        fn play_and_row_round_trip(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64) {
            round_trip(&Play { play_id: a, profile_id: b, title_id: c, ts_ms: d, duration_ms: e });
            round_trip(&JoinedRow { play_id: a, impression_id: b, profile_id: c, title_id: d,
                                    play_ts_ms: e, impression_ts_ms: f });
            round_trip(&LateEvent { stream: Stream::Play, event_id: a, profile_id: b, title_id: c,
                                    ts_ms: d, watermark_ms: e, reason: LateReason::BehindWatermark });
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Impression::parse_csv(&bytes);
            let _ = Play::parse_csv(&bytes);
            let _ = JoinedRow::parse_csv(&bytes);
            let _ = LateEvent::parse_csv(&bytes);
        }
    }
}
