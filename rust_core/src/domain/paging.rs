//! Page tokens: opaque to callers, the key of the last record returned.

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

/// A page being filled from a scan: records are offered in order until it
/// is full. It ends at `limit.records` records or before its weight would
/// pass `limit.weight`; it holds at least one record.
pub struct Page<T> {
    limit: PageLimit,
    pub items: Vec<T>,
    weight: usize,
    /// Whether a record was left out: the page is full and more follow.
    pub more: bool,
}

impl<T: Clone> Page<T> {
    pub fn new(limit: PageLimit) -> Page<T> {
        Page {
            limit,
            items: Vec::new(),
            weight: 0,
            more: false,
        }
    }

    /// Takes a copy of `record` if the page has room for `weight` more;
    /// false once it is full, which ends the scan.
    pub fn take(&mut self, record: &T, weight: usize) -> bool {
        self.weight = self.weight.saturating_add(weight);
        if self.items.len() == self.limit.records
            || (!self.items.is_empty() && self.weight > self.limit.weight)
        {
            self.more = true;
            return false;
        }
        self.items.push(record.clone());
        true
    }

    /// The token of the next page (the key of the last record taken), or
    /// empty on the last page.
    pub fn next_token(&self, key_of: impl Fn(&T) -> String) -> String {
        match (self.more, self.items.last()) {
            (true, Some(last)) => encode_token(&key_of(last)),
            _ => String::new(),
        }
    }
}
