//! The serialization-proxy headers at the start of a keyed-state stream
//! (KeyedBackendSerializationProxy) and an operator-state stream
//! (OperatorBackendSerializationProxy): the states and their serializers.

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use crate::serializer::{read_framed, Serializer};

/// How far past an unknown serializer snapshot we look for the next state.
const RESYNC_WINDOW: usize = 256 * 1024;

#[derive(Clone, Debug, PartialEq)]
pub enum StateKind {
    Value,
    List,
    Map,
    Reducing,
    Aggregating,
    /// A priority queue of timers (`_timer_state/...`).
    Timers,
    Operator,
    Broadcast,
    Other(String),
}

impl StateKind {
    pub fn name(&self) -> &str {
        match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::Reducing => "reducing",
            StateKind::Aggregating => "aggregating",
            StateKind::Timers => "timers",
            StateKind::Operator => "operator-list",
            StateKind::Broadcast => "broadcast",
            StateKind::Other(s) => s,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StateMeta {
    pub name: String,
    pub kind: StateKind,
    pub options: Vec<(String, String)>,
    /// (role, serializer), role = VALUE_SERIALIZER, NAMESPACE_SERIALIZER, ...
    pub serializers: Vec<(String, Serializer)>,
}

impl StateMeta {
    pub fn serializer(&self, role: &str) -> Option<&Serializer> {
        self.serializers
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, s)| s)
    }

    pub fn value_serializer(&self) -> Option<&Serializer> {
        self.serializer("VALUE_SERIALIZER")
    }

    pub fn namespace_serializer(&self) -> Option<&Serializer> {
        self.serializer("NAMESPACE_SERIALIZER")
    }

    pub fn has_ttl(&self) -> bool {
        let ttl = |s: &Serializer| matches!(s, Serializer::Ttl(_));
        match self.value_serializer() {
            Some(Serializer::List(e)) => ttl(e),
            Some(Serializer::Map(_, v)) => ttl(v),
            Some(s) => ttl(s),
            None => false,
        }
    }

    /// The first serializer class of this state that we cannot decode.
    pub fn unknown_class(&self) -> Option<&str> {
        self.serializers.iter().find_map(|(_, s)| s.unknown_class())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeyedHeader {
    pub version: i32,
    pub compressed: bool,
    pub key: Serializer,
    pub states: Vec<StateMeta>,
    /// Byte offset where the key-group data starts.
    pub end: usize,
}

impl KeyedHeader {
    /// Parses the header. `end`, when known (the first key-group offset, or
    /// the whole stream for native snapshots), lets us step over a
    /// serializer snapshot we do not know.
    pub fn parse(bytes: &[u8], end: Option<usize>) -> Result<KeyedHeader> {
        let mut r = Reader::new(bytes);
        let at = r.pos();
        let version = r.i32("keyed header version")?;
        if !(5..=6).contains(&version) {
            return Err(FlinkError::Unsupported(format!(
                "keyed state header version {version} (5 and 6 are read)"
            )));
        }
        let compressed = r.bool("key-group compression")?;
        let key = match read_framed(&mut r)? {
            Serializer::Unknown(class) => {
                // The states are still listed; none can be decoded.
                let mut h = scan_for_states(bytes, r.pos(), end)?;
                h.version = version;
                h.compressed = compressed;
                h.key = Serializer::Unknown(class);
                return Ok(h);
            }
            k => k,
        };
        let n = r.i16("state count")?;
        let n = r.check_count(n as i64, 12, at, "state count")?;
        let states = read_states(bytes, &mut r, n, end)?;
        Ok(KeyedHeader {
            version,
            compressed,
            key,
            states,
            end: r.pos(),
        })
    }

    pub fn state_names(&self) -> String {
        self.states
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// After an unknown key serializer: find the i16 state count followed by
/// states that parse without another unknown class.
fn scan_for_states(bytes: &[u8], from: usize, end: Option<usize>) -> Result<KeyedHeader> {
    let limit = bytes.len().min(from.saturating_add(RESYNC_WINDOW));
    for p in from..limit {
        let mut r = Reader::at(bytes, p);
        let Ok(n) = r.i16("state count") else { break };
        if n <= 0 || !plausible_state_start(bytes, p + 2) {
            continue;
        }
        if let Ok(states) = read_states_strict(&mut r, n as usize) {
            if end.is_none_or(|e| r.pos() == e) {
                return Ok(KeyedHeader {
                    version: 0,
                    compressed: false,
                    key: Serializer::Unknown(String::new()),
                    states,
                    end: r.pos(),
                });
            }
        }
    }
    Err(FlinkError::malformed(
        "keyed header",
        from,
        "unknown key serializer, and no state list found after it",
    ))
}

fn read_states<'a>(
    bytes: &'a [u8],
    r: &mut Reader<'a>,
    n: usize,
    end: Option<usize>,
) -> Result<Vec<StateMeta>> {
    let mut states = Vec::with_capacity(n);
    while states.len() < n {
        let meta = read_state_meta(r)?;
        let unknown = meta
            .serializers
            .last()
            .and_then(|(_, s)| s.unknown_class().map(str::to_string));
        states.push(meta);
        if unknown.is_some() {
            let left = n - states.len();
            let (rest, pos) = resync(bytes, r.pos(), left, end)?;
            states.extend(rest);
            *r = Reader::at(bytes, pos);
        }
    }
    Ok(states)
}

/// Finds the position after an unknown snapshot where the `left` remaining
/// states parse (with known serializers only) and end where the header
/// must end.
fn resync(
    bytes: &[u8],
    from: usize,
    left: usize,
    end: Option<usize>,
) -> Result<(Vec<StateMeta>, usize)> {
    if left == 0 {
        if let Some(e) = end {
            return Ok((Vec::new(), e));
        }
    }
    let limit = bytes.len().min(from.saturating_add(RESYNC_WINDOW));
    for p in from..=limit {
        if !plausible_state_start(bytes, p) {
            continue;
        }
        let mut r = Reader::at(bytes, p);
        if let Ok(states) = read_states_strict(&mut r, left) {
            if end.is_none_or(|e| r.pos() == e) {
                return Ok((states, r.pos()));
            }
        }
    }
    Err(FlinkError::malformed(
        "keyed header",
        from,
        "an unknown serializer snapshot hides where the next state starts",
    ))
}

/// A cheap test before a full parse when searching for a state: a UTF
/// name, a backend type 0-3 and a small option count must follow. Keeps
/// the search linear in practice on hostile input.
fn plausible_state_start(bytes: &[u8], p: usize) -> bool {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|w| i32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let Some(len) = bytes
        .get(p..p + 2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as usize)
    else {
        return false;
    };
    let at = p + 2 + len;
    matches!(word(at), Some(0..=3)) && matches!(word(at + 4), Some(0..=64))
}

fn read_states_strict(r: &mut Reader, n: usize) -> Result<Vec<StateMeta>> {
    let mut v = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let m = read_state_meta(r)?;
        if m.unknown_class().is_some() {
            return Err(FlinkError::malformed(
                "state",
                r.pos(),
                "unknown serializer",
            ));
        }
        v.push(m);
    }
    Ok(v)
}

/// StateMetaInfoSnapshot: name, backend state type, options, serializers.
/// Stops after the first serializer it cannot decode (recorded as Unknown).
pub fn read_state_meta(r: &mut Reader) -> Result<StateMeta> {
    let name = r.utf("state name")?;
    let at = r.pos();
    let backend_type = r.i32("backend state type")?;
    let n = r.count(4, "state options")?;
    let mut options = Vec::with_capacity(n);
    for _ in 0..n {
        options.push((r.utf("option key")?, r.utf("option value")?));
    }
    let kind = state_kind(backend_type, &options).ok_or_else(|| {
        FlinkError::malformed("state", at, format!("backend state type {backend_type}"))
    })?;
    let n = r.count(6, "state serializers")?;
    let mut serializers = Vec::with_capacity(n);
    for _ in 0..n {
        let role = r.utf("serializer role")?;
        let s = read_framed(r)?;
        let stop = s.unknown_class().is_some();
        serializers.push((role, s));
        if stop {
            break;
        }
    }
    Ok(StateMeta {
        name,
        kind,
        options,
        serializers,
    })
}

fn state_kind(backend_type: i32, options: &[(String, String)]) -> Option<StateKind> {
    let opt = |k: &str| {
        options
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    Some(match backend_type {
        0 => match opt("KEYED_STATE_TYPE").unwrap_or("") {
            "VALUE" => StateKind::Value,
            "LIST" => StateKind::List,
            "MAP" => StateKind::Map,
            "REDUCING" => StateKind::Reducing,
            "AGGREGATING" => StateKind::Aggregating,
            other => StateKind::Other(other.to_lowercase()),
        },
        1 => StateKind::Operator,
        2 => StateKind::Broadcast,
        3 => StateKind::Timers,
        _ => return None,
    })
}

/// The operator (non-keyed) state header.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorHeader {
    pub compressed: bool,
    pub states: Vec<StateMeta>,
    pub broadcast: Vec<StateMeta>,
    pub end: usize,
}

impl OperatorHeader {
    pub fn parse(bytes: &[u8]) -> Result<OperatorHeader> {
        let mut r = Reader::new(bytes);
        let version = r.i32("operator header version")?;
        if !(5..=6).contains(&version) {
            return Err(FlinkError::Unsupported(format!(
                "operator state header version {version} (5 and 6 are read)"
            )));
        }
        // The compression flag was added in version 6.
        let compressed = version >= 6 && r.bool("operator state compression")?;
        let states = read_operator_metas(&mut r)?;
        let broadcast = read_operator_metas(&mut r)?;
        Ok(OperatorHeader {
            compressed,
            states,
            broadcast,
            end: r.pos(),
        })
    }
}

fn read_operator_metas(r: &mut Reader) -> Result<Vec<StateMeta>> {
    let at = r.pos();
    let n = r.i16("operator state count")?;
    let n = r.check_count(n as i64, 12, at, "operator state count")?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let m = read_state_meta(r)?;
        if let Some(c) = m.unknown_class() {
            // Operator state is small and rare: no resync, a clear error.
            return Err(FlinkError::UnknownSerializer {
                operator: String::new(),
                state: m.name.clone(),
                class: c.to_string(),
            });
        }
        v.push(m);
    }
    Ok(v)
}
