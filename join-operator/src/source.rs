//! Resumable event sources, the order in which the job interleaves the two
//! streams, and the watermark rule — one definition shared by the streaming
//! job and the batch oracle, so "late" means the same thing in both.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::{CsvRecord, Event, FieldError, Impression, Play, Stream};

/// Errors of reading a source; each names the file and, for bad data, the
/// line and column.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: {op}: {source}", .path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{}: header is {found:?}, expected {expected:?}", .path.display())]
    Header {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{}: line {line}, {error}", .path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        error: FieldError,
    },
    #[error("{}: cannot resume at byte offset {offset}: {reason}", .path.display())]
    BadOffset {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// A stream of events read in arrival order, resumable from `offset()`.
pub trait Source: Send {
    type Event;
    /// Appends up to `max` events to `out`; returns how many (0 = end of input).
    fn next_batch(&mut self, max: usize, out: &mut Vec<Self::Event>) -> Result<usize, SourceError>;
    /// Position just after the last event returned; opening the source again
    /// at this position yields exactly the events not returned yet.
    fn offset(&self) -> u64;
}

const READ_CHUNK: usize = 1 << 20;

/// A CSV file with a header line, read with a resumable byte offset.
pub struct CsvSource<E> {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
    /// 1-based number of the line at `buf[start]`.
    line: u64,
    _event: PhantomData<fn() -> E>,
}

impl<E: CsvRecord> CsvSource<E> {
    /// Opens `path`, checks its header and positions at `start_offset`
    /// (0 = first event). A non-zero offset must be one that `offset()` returned.
    pub fn open(path: impl AsRef<Path>, start_offset: u64) -> Result<Self, SourceError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| SourceError::Io {
            path: path.clone(),
            op: "open",
            source,
        })?;
        let mut src = CsvSource {
            path,
            file,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            line: 1,
            _event: PhantomData,
        };
        src.check_header()?;
        if start_offset > src.offset {
            src.seek_to(start_offset)?;
        } else if start_offset != 0 && start_offset != src.offset {
            return Err(src.bad_offset(start_offset, "inside the header line"));
        }
        Ok(src)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, op: &'static str, source: io::Error) -> SourceError {
        SourceError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn bad_offset(&self, offset: u64, reason: &str) -> SourceError {
        SourceError::BadOffset {
            path: self.path.clone(),
            offset,
            reason: reason.to_owned(),
        }
    }

    fn check_header(&mut self) -> Result<(), SourceError> {
        let expected = E::header();
        let found = match self.next_line()? {
            Some(line) => {
                let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
                String::from_utf8_lossy(line).into_owned()
            }
            None => String::new(),
        };
        if found != expected {
            return Err(SourceError::Header {
                path: self.path.clone(),
                expected,
                found,
            });
        }
        Ok(())
    }

    /// Seeks to a line start after the header; counts the lines before it so
    /// that errors keep naming true line numbers.
    fn seek_to(&mut self, target: u64) -> Result<(), SourceError> {
        let len = self
            .file
            .metadata()
            .map_err(|e| self.io_err("stat", e))?
            .len();
        if target > len {
            return Err(self.bad_offset(target, &format!("past the end of the file ({len} bytes)")));
        }
        self.file
            .seek(SeekFrom::Start(self.offset))
            .map_err(|e| self.io_err("seek", e))?;
        let mut remaining = target - self.offset;
        let mut lines = 0u64;
        let mut last = b'\n';
        let mut chunk = vec![0u8; READ_CHUNK];
        while remaining > 0 {
            let want = remaining.min(chunk.len() as u64) as usize;
            let n = self
                .file
                .read(&mut chunk[..want])
                .map_err(|e| self.io_err("read", e))?;
            if n == 0 {
                return Err(self.bad_offset(target, "file shrank while seeking"));
            }
            lines += memchr::memchr_iter(b'\n', &chunk[..n]).count() as u64;
            last = chunk[n - 1];
            remaining -= n as u64;
        }
        if last != b'\n' {
            return Err(self.bad_offset(target, "not at the start of a line"));
        }
        self.line += lines;
        self.offset = target;
        self.start = 0;
        self.end = 0;
        self.eof = false;
        Ok(())
    }

    /// Refills the buffer, keeping the unread tail; grows it for long lines.
    fn fill(&mut self) -> Result<(), SourceError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err("read", e)),
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(())
    }

    /// Next non-consumed line without its terminator (`\n` or `\r\n`);
    /// advances offset and line number.
    fn next_line(&mut self) -> Result<Option<&[u8]>, SourceError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let s = self.start;
                self.start += i + 1;
                self.offset += (i + 1) as u64;
                self.line += 1;
                let line = &self.buf[s..s + i];
                return Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                // A last line without a terminator.
                let (s, e) = (self.start, self.end);
                self.offset += (e - s) as u64;
                self.start = e;
                self.line += 1;
                let line = &self.buf[s..e];
                return Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)));
            }
            self.fill()?;
        }
    }
}

impl<E: CsvRecord> Source for CsvSource<E> {
    type Event = E;

    fn next_batch(&mut self, max: usize, out: &mut Vec<E>) -> Result<usize, SourceError> {
        let mut n = 0;
        while n < max {
            let line = match self.next_line()? {
                Some(l) => l,
                None => break,
            };
            if line.is_empty() {
                continue;
            }
            match E::parse_csv(line) {
                Ok(e) => out.push(e),
                Err(error) => {
                    return Err(SourceError::Parse {
                        path: self.path.clone(),
                        line: self.line - 1,
                        error,
                    })
                }
            }
            n += 1;
        }
        Ok(n)
    }

    fn offset(&self) -> u64 {
        self.offset
    }
}

/// The interleaving rule of the job: take the event whose stream head has the
/// smaller `ts_ms`; ties go to impressions; an exhausted stream yields to the
/// other. `None` when both are exhausted.
pub fn merge_order(impression_head_ts: Option<i64>, play_head_ts: Option<i64>) -> Option<Stream> {
    match (impression_head_ts, play_head_ts) {
        (Some(i), Some(p)) if i <= p => Some(Stream::Impression),
        (Some(_), Some(_)) => Some(Stream::Play),
        (Some(_), None) => Some(Stream::Impression),
        (None, Some(_)) => Some(Stream::Play),
        (None, None) => None,
    }
}

/// Per-stream watermarks (`max ts seen - D`) and the join watermark (their
/// minimum). Before a stream's first event its watermark is `i64::MIN`; once
/// it is exhausted it no longer holds the join back (`i64::MAX`), as a
/// finished source does in Flink. Serializable: goes into checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    pub out_of_order_ms: i64,
    pub max_impression_ts: Option<i64>,
    pub max_play_ts: Option<i64>,
    pub impressions_done: bool,
    pub plays_done: bool,
}

impl Watermarks {
    pub fn new(out_of_order_ms: i64) -> Self {
        Watermarks {
            out_of_order_ms,
            max_impression_ts: None,
            max_play_ts: None,
            impressions_done: false,
            plays_done: false,
        }
    }

    pub fn stream_watermark(&self, stream: Stream) -> i64 {
        let (max, done) = match stream {
            Stream::Impression => (self.max_impression_ts, self.impressions_done),
            Stream::Play => (self.max_play_ts, self.plays_done),
        };
        if done {
            return i64::MAX;
        }
        max.map_or(i64::MIN, |m| m.saturating_sub(self.out_of_order_ms))
    }

    pub fn join_watermark(&self) -> i64 {
        self.stream_watermark(Stream::Impression)
            .min(self.stream_watermark(Stream::Play))
    }

    /// True iff an event at `ts_ms` arriving now is dropped as late.
    pub fn is_late(&self, ts_ms: i64, allowed_lateness_ms: i64) -> bool {
        ts_ms < self.join_watermark().saturating_sub(allowed_lateness_ms)
    }

    pub fn observe(&mut self, stream: Stream, ts_ms: i64) {
        let max = match stream {
            Stream::Impression => &mut self.max_impression_ts,
            Stream::Play => &mut self.max_play_ts,
        };
        *max = Some(max.map_or(ts_ms, |m| m.max(ts_ms)));
    }

    pub fn finish(&mut self, stream: Stream) {
        match stream {
            Stream::Impression => self.impressions_done = true,
            Stream::Play => self.plays_done = true,
        }
    }
}

/// An event of either stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrived {
    Impression(Impression),
    Play(Play),
}

impl Arrived {
    pub fn stream(&self) -> Stream {
        match self {
            Arrived::Impression(_) => Stream::Impression,
            Arrived::Play(_) => Stream::Play,
        }
    }

    pub fn ts_ms(&self) -> i64 {
        match self {
            Arrived::Impression(i) => i.ts_ms(),
            Arrived::Play(p) => p.ts_ms(),
        }
    }
}

/// An event as the join sees it: with the join watermark just before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub event: Arrived,
    pub join_watermark: i64,
}

impl Arrival {
    /// The late rule of workload.md: `ts_ms` below the join watermark (minus
    /// the allowed lateness) at arrival.
    pub fn is_late(&self, allowed_lateness_ms: i64) -> bool {
        self.event.ts_ms() < self.join_watermark.saturating_sub(allowed_lateness_ms)
    }
}

/// Where each source stands after the last event `MergedSources` yielded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MergeOffsets {
    pub impressions: u64,
    pub plays: u64,
}

struct Head<S: Source> {
    source: S,
    next: Vec<S::Event>,
    consumed: u64,
    exhausted: bool,
}

impl<S: Source> Head<S>
where
    S::Event: Event,
{
    fn new(source: S) -> Self {
        let consumed = source.offset();
        Head {
            source,
            next: Vec::with_capacity(1),
            consumed,
            exhausted: false,
        }
    }

    fn peek_ts(&mut self) -> Result<Option<i64>, SourceError> {
        if self.next.is_empty()
            && !self.exhausted
            && self.source.next_batch(1, &mut self.next)? == 0
        {
            self.exhausted = true;
        }
        Ok(self.next.first().map(Event::ts_ms))
    }

    fn take(&mut self) -> Option<S::Event> {
        let e = self.next.pop()?;
        self.consumed = self.source.offset();
        Some(e)
    }
}

/// Both streams merged by [`merge_order`], with the watermarks advanced
/// event by event. Restore with the checkpointed offsets and watermarks.
pub struct MergedSources<I: Source<Event = Impression>, P: Source<Event = Play>> {
    impressions: Head<I>,
    plays: Head<P>,
    watermarks: Watermarks,
}

impl<I: Source<Event = Impression>, P: Source<Event = Play>> MergedSources<I, P> {
    pub fn new(impressions: I, plays: P, watermarks: Watermarks) -> Self {
        MergedSources {
            impressions: Head::new(impressions),
            plays: Head::new(plays),
            watermarks,
        }
    }

    /// The next event in merge order, or `None` at the end of both streams.
    pub fn next_arrival(&mut self) -> Result<Option<Arrival>, SourceError> {
        let i = self.impressions.peek_ts()?;
        if i.is_none() {
            self.watermarks.finish(Stream::Impression);
        }
        let p = self.plays.peek_ts()?;
        if p.is_none() {
            self.watermarks.finish(Stream::Play);
        }
        let join_watermark = self.watermarks.join_watermark();
        let event = match merge_order(i, p) {
            Some(Stream::Impression) => self.impressions.take().map(Arrived::Impression),
            Some(Stream::Play) => self.plays.take().map(Arrived::Play),
            None => None,
        };
        Ok(event.map(|event| {
            self.watermarks.observe(event.stream(), event.ts_ms());
            Arrival {
                event,
                join_watermark,
            }
        }))
    }

    /// Offsets to resume at: the events not yielded yet.
    pub fn offsets(&self) -> MergeOffsets {
        MergeOffsets {
            impressions: self.impressions.consumed,
            plays: self.plays.consumed,
        }
    }

    pub fn watermarks(&self) -> &Watermarks {
        &self.watermarks
    }
}

impl MergedSources<CsvSource<Impression>, CsvSource<Play>> {
    /// Opens both CSV files at the given offsets.
    pub fn open_csv(
        impressions: &Path,
        plays: &Path,
        offsets: MergeOffsets,
        watermarks: Watermarks,
    ) -> Result<Self, SourceError> {
        Ok(Self::new(
            CsvSource::open(impressions, offsets.impressions)?,
            CsvSource::open(plays, offsets.plays)?,
            watermarks,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_order_rule() {
        assert_eq!(merge_order(Some(5), Some(5)), Some(Stream::Impression));
        assert_eq!(merge_order(Some(6), Some(5)), Some(Stream::Play));
        assert_eq!(merge_order(None, Some(5)), Some(Stream::Play));
        assert_eq!(merge_order(Some(1), None), Some(Stream::Impression));
        assert_eq!(merge_order(None, None), None);
    }

    #[test]
    fn watermark_rule() {
        let mut w = Watermarks::new(100);
        assert_eq!(w.join_watermark(), i64::MIN);
        w.observe(Stream::Impression, 1000);
        assert_eq!(w.join_watermark(), i64::MIN, "plays not seen yet");
        w.observe(Stream::Play, 700);
        assert_eq!(w.join_watermark(), 600);
        assert!(w.is_late(599, 0));
        assert!(!w.is_late(600, 0));
        assert!(!w.is_late(599, 1));
        w.finish(Stream::Play);
        assert_eq!(w.join_watermark(), 900);
        w.finish(Stream::Impression);
        assert_eq!(w.join_watermark(), i64::MAX);
    }
}
