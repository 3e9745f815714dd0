//! Entry points for the fuzz targets (flink-state/fuzz) and the hostile
//! bytes test: each feeds untrusted bytes to a decoder and must return,
//! never panic nor allocate beyond the input's size.

use crate::bytes::Reader;
use crate::entry::EntryDecoder;
use crate::header::{KeyedHeader, OperatorHeader};
use crate::keygroup;
use crate::metadata::Metadata;
use crate::serializer::{read_framed, Serializer, SqlType};

/// A real keyed-state header (job A's keyed-avro-state): 7 states with
/// Avro, map, list, TTL and timer serializers.
const KEYED_HEADER: &[u8] = include_bytes!("fuzz-keyed-header.bin");

/// `_metadata` bytes.
pub fn metadata(data: &[u8]) -> usize {
    Metadata::parse(data).map_or(0, |m| m.operators.len())
}

/// State headers and serializer snapshots.
pub fn headers(data: &[u8]) -> usize {
    let a = KeyedHeader::parse(data, Some(data.len())).map_or(0, |h| h.states.len());
    let b = OperatorHeader::parse(data).map_or(0, |h| h.states.len());
    let c = read_framed(&mut Reader::new(data)).is_ok() as usize;
    a + b + c
}

/// A key-group block and heap block decoded with a real header, every
/// entry through its state's decoder; and raw row data.
pub fn key_group(data: &[u8]) -> usize {
    let Ok(header) = KeyedHeader::parse(KEYED_HEADER, Some(KEYED_HEADER.len())) else {
        return 0;
    };
    let decoders: Vec<_> = header
        .states
        .iter()
        .map(|s| EntryDecoder::new(&header.key, s, 128).ok())
        .collect();
    let mut n = 0;
    let _ = keygroup::for_each_entry(data, |id, k, v| {
        if let Some(Some(d)) = decoders.get(id as usize) {
            n += d.decode(k, v).is_ok() as usize;
        }
        Ok(())
    });
    let _ = keygroup::for_each_heap_entry(&header, 1, data, |_| {
        n += 1;
        Ok(())
    });
    let _ = keygroup::decompress(data);
    let types = [
        "VARCHAR",
        "BIGINT",
        "TIMESTAMP_WITH_LOCAL_TIME_ZONE",
        "DECIMAL",
    ]
    .map(|r| SqlType {
        root: r.into(),
        precision: Some(3),
        scale: Some(2),
    });
    let _ = crate::value::decode(&Serializer::RowData(types.to_vec()), &mut Reader::new(data));
    n
}

/// An SST file: footer, index, blocks, checksums, entries.
pub fn sst(data: &[u8]) -> usize {
    match crate::sst::SstFile::open(Box::new(data.to_vec())) {
        Ok(f) => f.entries().take(100_000).filter(|e| e.is_ok()).count(),
        Err(_) => 0,
    }
}
