//! Page tokens: opaque to callers, the key of the last record returned.

use std::collections::BTreeMap;
use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{HmsError, Result};

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

/// 0 means the default; larger than the maximum is clamped to it.
pub fn page_size(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

pub fn encode_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

pub fn decode_token(token: &str) -> Result<Option<String>> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| {
            HmsError::invalid_argument("page_token is not one this service returned")
                .with_detail("field", "page_token")
        })
}

/// What one record may cost a page in any format beyond its protobuf bytes
/// twice over (field names, timestamps as text, quotes, base64).
const RECORD_OVERHEAD_BYTES: usize = 512;

/// The page weight of a record of `encoded_len` protobuf bytes: twice its
/// size plus [`RECORD_OVERHEAD_BYTES`] bounds its JSON and CBOR forms too,
/// so a page whose weight is under the size limit fits it in every format,
/// and a large record ends a page instead of failing it.
pub fn record_weight(encoded_len: usize) -> usize {
    encoded_len
        .saturating_mul(2)
        .saturating_add(RECORD_OVERHEAD_BYTES)
}

/// How many records, and how much weight (the size limit), one page may hold.
pub struct PageLimit {
    pub records: usize,
    pub weight: usize,
}

/// One page of the values of `map` after `start_after` that `keep` accepts,
/// and the token of the next page (empty on the last); see [`fill_page`].
pub fn page<K: Ord + Clone, V: Clone>(
    map: &BTreeMap<K, V>,
    start_after: Option<K>,
    limit: PageLimit,
    keep: impl Fn(&V) -> bool,
    weight_of: impl Fn(&V) -> usize,
    token_of: impl Fn(&K) -> String,
) -> (Vec<V>, String) {
    let lower = match start_after {
        Some(key) => Bound::Excluded(key),
        None => Bound::Unbounded,
    };
    let candidates = map
        .range((lower, Bound::Unbounded))
        .filter(|(_, value)| keep(value));
    let (items, more) = fill_page(candidates, limit, |(_, value)| weight_of(value));
    let next = match (more, items.last()) {
        (true, Some((key, _))) => encode_token(&token_of(key)),
        _ => String::new(),
    };
    (
        items.into_iter().map(|(_, value)| value.clone()).collect(),
        next,
    )
}

/// The first records of `candidates` that make one page, and whether more
/// follow. A page ends at `limit.records` records or before its weight
/// (`weight_of`) would pass `limit.weight`; it holds at least one record.
pub fn fill_page<T>(
    candidates: impl Iterator<Item = T>,
    limit: PageLimit,
    weight_of: impl Fn(&T) -> usize,
) -> (Vec<T>, bool) {
    let mut items = Vec::new();
    let mut weight = 0usize;
    for candidate in candidates {
        weight = weight.saturating_add(weight_of(&candidate));
        if items.len() == limit.records || (!items.is_empty() && weight > limit.weight) {
            return (items, true);
        }
        items.push(candidate);
    }
    (items, false)
}
