//! `stream-join gen`: the workload's two CSV files, deterministic from a seed.
//!
//! Events are first produced in event-time order, then each stream goes
//! through a reorder buffer keyed by `arrival = ts + U[0, D]`. Emitting in
//! arrival order bounds the disorder: for `e'` emitted before `e`,
//! `ts(e') <= arrival(e') <= arrival(e) <= ts(e) + D`, so every event is at
//! most `D` below the largest `ts` its stream has shown — never behind that
//! stream's watermark, hence never late. Late events are made on purpose by
//! moving a chosen event's `ts` well below the watermark when it is emitted.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::event::{CsvRecord, Impression, Play, JOIN_WINDOW_MS};

/// First event time of every generated workload (2023-11-14T22:13:20Z).
pub const START_TS_MS: i64 = 1_700_000_000_000;
/// Keys shown within this much event time can be shown again.
const REPEAT_HORIZON_MS: f64 = 3.0 * 3_600_000.0;
const DEVICES: [&str; 4] = ["tv", "mobile", "web", "tablet"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    /// `(impressions, plays)` of workload.md's table.
    pub fn counts(self) -> (u64, u64) {
        match self {
            Size::Small => (100_000, 20_000),
            Size::Medium => (10_000_000, 2_000_000),
            Size::Large => (100_000_000, 20_000_000),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    pub impressions: u64,
    pub plays: u64,
    pub out_of_order_ms: i64,
    /// Share of events of each stream made late on purpose, in `[0, 1]`.
    pub late_fraction: f64,
    /// Event-time span of the impressions; `None`: 8.64 ms per impression,
    /// at least two hours (medium = one day).
    pub span_ms: Option<i64>,
}

impl GenConfig {
    pub fn for_size(size: Size, seed: u64) -> Self {
        let (impressions, plays) = size.counts();
        GenConfig {
            seed,
            impressions,
            plays,
            out_of_order_ms: 5000,
            late_fraction: 0.0,
            span_ms: None,
        }
    }

    fn validate(&self) -> Result<(), GenError> {
        let bad = |m: String| Err(GenError::Config(m));
        if self.impressions == 0 {
            return bad("--impressions must be at least 1".into());
        }
        if self.plays > 2 * self.impressions {
            return bad(format!(
                "--plays {} exceeds twice the impressions ({}): at most one follow-up and one orphan play per impression",
                self.plays, self.impressions
            ));
        }
        if self.out_of_order_ms < 0 {
            return bad(format!(
                "--out-of-order-ms {} is negative",
                self.out_of_order_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.late_fraction) {
            return bad(format!(
                "--late-fraction {} is not within [0, 1]",
                self.late_fraction
            ));
        }
        if let Some(s) = self.span_ms {
            if s <= 0 {
                return bad(format!("--span-ms {s} must be positive"));
            }
        }
        Ok(())
    }

    fn span(&self) -> i64 {
        self.span_ms.unwrap_or_else(|| {
            let per_impression = (self.impressions as f64 * 8.64) as i64;
            per_impression.max(2 * 3_600_000)
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GenSummary {
    pub impressions: u64,
    pub plays: u64,
    pub late_impressions: u64,
    pub late_plays: u64,
    pub impressions_path: PathBuf,
    pub plays_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("gen: {0}")]
    Config(String),
    #[error("gen: {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Writes `impressions.csv` and `plays.csv` into `out_dir` (created if
/// missing). Files appear whole: written under a temporary name, then renamed.
pub fn generate(cfg: &GenConfig, out_dir: &Path) -> Result<GenSummary, GenError> {
    cfg.validate()?;
    let io_err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| GenError::Io { op, path, source }
    };
    fs::create_dir_all(out_dir).map_err(io_err("create", out_dir))?;
    let imp_path = out_dir.join("impressions.csv");
    let play_path = out_dir.join("plays.csv");
    let imp_tmp = out_dir.join(".impressions.csv.tmp");
    let play_tmp = out_dir.join(".plays.csv.tmp");
    let imp_file = File::create(&imp_tmp).map_err(io_err("create", &imp_tmp))?;
    let play_file = File::create(&play_tmp).map_err(io_err("create", &play_tmp))?;
    let mut summary = generate_to(cfg, imp_file, play_file).map_err(io_err("write", out_dir))?;
    fs::rename(&imp_tmp, &imp_path).map_err(io_err("rename", &imp_tmp))?;
    fs::rename(&play_tmp, &play_path).map_err(io_err("rename", &play_tmp))?;
    summary.impressions_path = imp_path;
    summary.plays_path = play_path;
    Ok(summary)
}

/// The generator on any two writers (header lines included).
pub fn generate_to<A: Write, B: Write>(
    cfg: &GenConfig,
    impressions: A,
    plays: B,
) -> io::Result<GenSummary> {
    cfg.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut g = Generator::new(cfg, impressions, plays)?;
    g.run()?;
    g.finish()
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ImpRec {
    id: i64,
    profile: i64,
    title: i64,
    ts: i64,
    row: i32,
    rank: i32,
    device: u8,
}

/// How many impressions fall within the repeat horizon.
fn recent_capacity(cfg: &GenConfig) -> usize {
    let per_ms = cfg.impressions as f64 / cfg.span() as f64;
    ((per_ms * REPEAT_HORIZON_MS) as usize).clamp(1, 4 << 20)
}

/// Field order matters: the derived `Ord` sorts pending plays by `(ts, id)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PlayRec {
    ts: i64,
    id: i64,
    profile: i64,
    title: i64,
    duration: i64,
}

trait Timed: Copy + Ord {
    fn set_ts(&mut self, ts: i64);
}

impl Timed for ImpRec {
    fn set_ts(&mut self, ts: i64) {
        self.ts = ts;
    }
}

impl Timed for PlayRec {
    fn set_ts(&mut self, ts: i64) {
        self.ts = ts;
    }
}

/// One output stream: the reorder buffer and what has been emitted.
struct StreamOut<T, W: Write> {
    reorder: BinaryHeap<Reverse<(i64, u64, T)>>,
    seq: u64,
    max_emitted: Option<i64>,
    emitted: u64,
    late: u64,
    line: Vec<u8>,
    writer: BufWriter<W>,
}

impl<T: Timed, W: Write> StreamOut<T, W> {
    fn new(writer: W, header: &str) -> io::Result<Self> {
        let mut writer = BufWriter::with_capacity(1 << 20, writer);
        writer.write_all(header.as_bytes())?;
        writer.write_all(b"\n")?;
        Ok(StreamOut {
            reorder: BinaryHeap::new(),
            seq: 0,
            max_emitted: None,
            emitted: 0,
            late: 0,
            line: Vec::with_capacity(128),
            writer,
        })
    }

    fn push(&mut self, arrival: i64, rec: T) {
        self.reorder.push(Reverse((arrival, self.seq, rec)));
        self.seq += 1;
    }

    /// Pops, in arrival order, everything that arrives no later than `now`.
    fn pop_due(&mut self, now: i64) -> Option<T> {
        match self.reorder.peek() {
            Some(Reverse((arrival, _, _))) if *arrival <= now => {
                self.reorder.pop().map(|Reverse((_, _, rec))| rec)
            }
            _ => None,
        }
    }
}

struct Generator<'c, A: Write, B: Write> {
    cfg: &'c GenConfig,
    rng: ChaCha8Rng,
    imps: StreamOut<ImpRec, A>,
    plays: StreamOut<PlayRec, B>,
    /// Plays created but whose event time has not come yet, by ts.
    pending: BinaryHeap<Reverse<PlayRec>>,
    recent_keys: Vec<(i64, i64)>,
    recent_cap: usize,
    recent_next: usize,
    next_play_id: i64,
    profiles: u64,
    titles: u64,
    impression: Impression,
    play_line: Vec<u8>,
}

impl<'c, A: Write, B: Write> Generator<'c, A, B> {
    fn new(cfg: &'c GenConfig, a: A, b: B) -> io::Result<Self> {
        Ok(Generator {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            imps: StreamOut::new(a, &Impression::header())?,
            plays: StreamOut::new(b, &Play::header())?,
            pending: BinaryHeap::new(),
            recent_keys: Vec::new(),
            recent_cap: recent_capacity(cfg),
            recent_next: 0,
            next_play_id: 1,
            profiles: (cfg.impressions / 8).max(10),
            titles: (cfg.impressions / 200).clamp(100, 100_000),
            impression: Impression {
                impression_id: 0,
                profile_id: 0,
                title_id: 0,
                ts_ms: 0,
                row: 0,
                rank: 0,
                device: String::new(),
            },
            play_line: Vec::with_capacity(128),
        })
    }

    fn run(&mut self) -> io::Result<()> {
        let n = self.cfg.impressions;
        let follow_total = (self.cfg.plays * 9 / 10).min(n);
        let orphan_total = self.cfg.plays - follow_total;
        let (mut follow_left, mut orphan_left) = (follow_total, orphan_total);
        let max_gap = ((2 * self.cfg.span()) as f64 / n as f64).round().max(1.0) as i64;
        let mut ts = START_TS_MS;
        for i in 0..n {
            ts += self.rng.gen_range(0..=max_gap);
            self.release_plays_until(ts)?;
            let key = self.pick_key();
            let rec = ImpRec {
                id: i as i64 + 1,
                profile: key.0,
                title: key.1,
                ts,
                row: self.rng.gen_range(0..40),
                rank: self.rng.gen_range(0..75),
                device: self.pick_device(),
            };
            let arrival = ts + self.rng.gen_range(0..=self.cfg.out_of_order_ms);
            self.imps.push(arrival, rec);
            self.emit_impressions(ts)?;
            // Selection sampling: exactly `follow_total` / `orphan_total` plays.
            let left = n - i;
            if self.rng.gen_range(0..left) < follow_left {
                follow_left -= 1;
                let delay = self.pick_delay();
                self.new_play(key, ts + delay);
            }
            if self.rng.gen_range(0..left) < orphan_left {
                orphan_left -= 1;
                let key = self.fresh_key();
                let delay = self.rng.gen_range(0..60_000);
                self.new_play(key, ts + delay);
            }
        }
        self.release_plays_until(i64::MAX)?;
        self.emit_impressions(i64::MAX)?;
        self.emit_plays(i64::MAX)
    }

    fn finish(self) -> io::Result<GenSummary> {
        let mut iw = self.imps.writer;
        let mut pw = self.plays.writer;
        iw.flush()?;
        pw.flush()?;
        Ok(GenSummary {
            impressions: self.imps.emitted,
            plays: self.plays.emitted,
            late_impressions: self.imps.late,
            late_plays: self.plays.late,
            ..GenSummary::default()
        })
    }

    /// Power-law index in `0..n`: low indexes are much more frequent.
    fn skewed(&mut self, n: u64, power: f64) -> i64 {
        let u: f64 = self.rng.gen();
        ((n as f64 * u.powf(power)) as u64).min(n - 1) as i64
    }

    fn fresh_key(&mut self) -> (i64, i64) {
        let profile = 1 + self.skewed(self.profiles, 2.0);
        let title = 1 + self.skewed(self.titles, 1.5);
        (profile, title)
    }

    /// Half the time a key shown in the last hours (sometimes within the
    /// join window, so that a play can match several impressions);
    /// otherwise a fresh, skewed one.
    fn pick_key(&mut self) -> (i64, i64) {
        if !self.recent_keys.is_empty() && self.rng.gen_bool(0.5) {
            // Repeats do not re-enter the pool: no rich-get-richer chains.
            return self.recent_keys[self.rng.gen_range(0..self.recent_keys.len())];
        }
        let key = self.fresh_key();
        if self.recent_keys.len() < self.recent_cap {
            self.recent_keys.push(key);
        } else {
            self.recent_keys[self.recent_next] = key;
            self.recent_next = (self.recent_next + 1) % self.recent_cap;
        }
        key
    }

    fn pick_device(&mut self) -> u8 {
        match self.rng.gen_range(0..100) {
            0..=44 => 0,
            45..=74 => 1,
            75..=89 => 2,
            _ => 3,
        }
    }

    /// Mostly within the window (skewed to short), a few on its exact
    /// boundaries, about 12% after it.
    fn pick_delay(&mut self) -> i64 {
        let r: f64 = self.rng.gen();
        if r < 0.01 {
            0
        } else if r < 0.02 {
            JOIN_WINDOW_MS
        } else if r < 0.03 {
            JOIN_WINDOW_MS + 1
        } else if r < 0.88 {
            let u: f64 = self.rng.gen();
            1 + (u * u * (JOIN_WINDOW_MS - 1) as f64) as i64
        } else {
            self.rng.gen_range(JOIN_WINDOW_MS + 2..=4 * JOIN_WINDOW_MS)
        }
    }

    fn new_play(&mut self, key: (i64, i64), ts: i64) {
        let rec = PlayRec {
            id: self.next_play_id,
            profile: key.0,
            title: key.1,
            ts,
            duration: self.rng.gen_range(10_000..7_200_000),
        };
        self.next_play_id += 1;
        self.pending.push(Reverse(rec));
    }

    /// Moves plays whose event time has come into the play reorder buffer.
    fn release_plays_until(&mut self, now: i64) -> io::Result<()> {
        while let Some(Reverse(p)) = self.pending.peek() {
            if p.ts > now {
                break;
            }
            let p = *p;
            self.pending.pop();
            let arrival = p.ts + self.rng.gen_range(0..=self.cfg.out_of_order_ms);
            self.plays.push(arrival, p);
            self.emit_plays(p.ts)?;
        }
        self.emit_plays(now.min(self.pending_floor()))
    }

    /// No play created from now on has `ts` below this.
    fn pending_floor(&self) -> i64 {
        self.pending.peek().map_or(i64::MAX, |Reverse(p)| p.ts)
    }

    /// With probability `late_fraction`, moves `ts` 10–60 s (plus `D`) below
    /// the largest ts the stream has shown. Returns true if it did.
    fn maybe_make_late<T: Timed>(&mut self, rec: &mut T, max_emitted: Option<i64>) -> bool {
        if self.cfg.late_fraction <= 0.0 || !self.rng.gen_bool(self.cfg.late_fraction) {
            return false;
        }
        let Some(max) = max_emitted else { return false };
        let late_ts = max - self.cfg.out_of_order_ms - self.rng.gen_range(10_000..=60_000);
        if late_ts < START_TS_MS {
            return false;
        }
        rec.set_ts(late_ts);
        true
    }

    fn emit_impressions(&mut self, now: i64) -> io::Result<()> {
        while let Some(mut rec) = self.imps.pop_due(now) {
            let late = self.maybe_make_late(&mut rec, self.imps.max_emitted);
            let imp = &mut self.impression;
            imp.impression_id = rec.id;
            imp.profile_id = rec.profile;
            imp.title_id = rec.title;
            imp.ts_ms = rec.ts;
            imp.row = rec.row;
            imp.rank = rec.rank;
            imp.device.clear();
            imp.device.push_str(DEVICES[usize::from(rec.device)]);
            let out = &mut self.imps;
            out.line.clear();
            imp.write_csv(&mut out.line);
            out.writer.write_all(&out.line)?;
            out.emitted += 1;
            if late {
                out.late += 1;
            } else {
                out.max_emitted = Some(out.max_emitted.map_or(rec.ts, |m| m.max(rec.ts)));
            }
        }
        Ok(())
    }

    fn emit_plays(&mut self, now: i64) -> io::Result<()> {
        while let Some(mut rec) = self.plays.pop_due(now) {
            let late = self.maybe_make_late(&mut rec, self.plays.max_emitted);
            let play = Play {
                play_id: rec.id,
                profile_id: rec.profile,
                title_id: rec.title,
                ts_ms: rec.ts,
                duration_ms: rec.duration,
            };
            self.play_line.clear();
            play.write_csv(&mut self.play_line);
            let out = &mut self.plays;
            out.writer.write_all(&self.play_line)?;
            out.emitted += 1;
            if late {
                out.late += 1;
            } else {
                out.max_emitted = Some(out.max_emitted.map_or(rec.ts, |m| m.max(rec.ts)));
            }
        }
        Ok(())
    }
}
