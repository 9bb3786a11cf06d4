//! Where the copy's chunks ended, kept for the verification (see [`CopyBoundaries`]): its first pass cuts the key
//! range there instead of walking the original again. The copy writes them; engine/verify reads them.

use mysql_async::Value;

/// Rows per verification chunk for a copy's chunk size.
pub fn chunk_rows(chunk_size: u64) -> u64 {
    (chunk_size * 50).clamp(1_000, 100_000)
}

/// Keys the copy ended its chunks at, one kept every [`chunk_rows`] rows copied, per copy slice (its checkpoint
/// row): the verification's first pass takes them as its chunk boundaries instead of walking the original's key
/// again (any increasing keys cut the key range into chunks that cover it). Only a copy whose ranges were made by
/// this process's setup counts: a resumed copy's earlier chunks are not known.
#[derive(Debug, Default)]
pub struct CopyBoundaries {
    fresh: bool,
    slices: std::collections::HashMap<String, SliceBoundaries>,
}

#[derive(Debug, Default)]
struct SliceBoundaries {
    keys: Vec<Vec<Value>>,
    rows_since: u64,
}

impl CopyBoundaries {
    /// Setup made the copy ranges (`fresh`) or read them from a checkpoint: what was noted before is forgotten.
    pub fn start(&mut self, fresh: bool) {
        *self = CopyBoundaries { fresh, slices: Default::default() };
    }

    /// A slice's copy begins.
    pub fn begin(&mut self, slice: &str) {
        self.slices.entry(slice.to_string()).or_default();
    }

    /// A chunk of `rows` rows ending at `end` committed; a boundary is kept once `every` rows went by.
    pub fn note(&mut self, slice: &str, end: &[Value], rows: u64, every: u64) {
        if let Some(s) = self.slices.get_mut(slice) {
            s.rows_since += rows;
            if s.rows_since >= every {
                s.keys.push(end.to_vec());
                s.rows_since = 0;
            }
        }
    }

    /// The boundaries of `slices` (named in key order), or None unless the ranges are fresh and every slice's
    /// copy ran here.
    pub fn of(&self, slices: &[String]) -> Option<Vec<Vec<Value>>> {
        if !self.fresh {
            return None;
        }
        let mut out = Vec::new();
        for name in slices {
            out.extend(self.slices.get(name)?.keys.iter().cloned());
        }
        Some(out)
    }
}
