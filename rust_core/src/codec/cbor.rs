//! A CBOR data model with a bounded decoder and an RFC 8949 core
//! deterministic encoder.
//!
//! The decoder never trusts a declared length: a byte string, array or map
//! that claims more items than bytes remain fails before anything is
//! allocated, and nesting deeper than the limit fails with
//! `RESOURCE_EXHAUSTED` before the stack can grow with it.

use crate::error::{HmsError, Result};

/// One CBOR data item. Bignums (tags 2 and 3) read as the integer they
/// stand for; other tags are accepted on input and dropped; undefined reads
/// as null.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every CBOR integer fits: -2^64 ..= 2^64-1.
    Integer(i128),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }
}

/// Decodes exactly one item filling all of `bytes`.
pub fn decode(bytes: &[u8], max_depth: u32) -> Result<Value> {
    let mut decoder = Decoder {
        buf: bytes,
        pos: 0,
        max_depth,
    };
    let value = decoder.item(0)?;
    if decoder.pos != bytes.len() {
        return Err(HmsError::decode(format!(
            "CBOR: {} trailing bytes after the first item",
            bytes.len() - decoder.pos
        )));
    }
    Ok(value)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: u32,
}

const BREAK: u8 = 0xff;
const TAG_POSITIVE_BIGNUM: u64 = 2;
const TAG_NEGATIVE_BIGNUM: u64 = 3;

/// The map keys seen so far, by their deterministic encoding: equal keys
/// encode to equal bytes whatever encoding the input used.
#[derive(Default)]
struct KeySet(std::collections::HashSet<Vec<u8>>);

impl KeySet {
    fn insert(&mut self, key: &Value) -> bool {
        let mut bytes = Vec::new();
        encode(key, &mut bytes);
        self.0.insert(bytes)
    }
}

/// A map key as an error message shows it.
pub fn describe_key(key: &Value) -> String {
    match key {
        Value::Text(text) => format!("{text:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        other => format!("of type {}", other.kind_name()),
    }
}

impl Decoder<'_> {
    fn fail(&self, what: impl std::fmt::Display) -> HmsError {
        HmsError::decode(format!("CBOR at byte {}: {what}", self.pos))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.fail("unexpected end of input"))?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: u64) -> Result<&[u8]> {
        if len > self.remaining() as u64 {
            return Err(self.fail(format!(
                "declares {len} bytes but only {} remain",
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// The argument of an initial byte; `None` for indefinite length.
    fn argument(&mut self, info: u8) -> Result<Option<u64>> {
        let value = match info {
            0..=23 => info as u64,
            24 => self.byte()? as u64,
            25 => u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as u64,
            26 => u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64,
            27 => u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")),
            31 => return Ok(None),
            _ => return Err(self.fail(format!("reserved additional information {info}"))),
        };
        Ok(Some(value))
    }

    fn enter(&self, depth: u32) -> Result<u32> {
        let depth = depth + 1;
        if depth > self.max_depth {
            return Err(HmsError::exhausted(format!(
                "CBOR nesting deeper than the limit of {}",
                self.max_depth
            ))
            .with_detail("max_depth", self.max_depth));
        }
        Ok(depth)
    }

    /// Items of a declared count must each take at least `min_bytes` bytes.
    fn check_count(&self, count: u64, min_bytes: u64) -> Result<usize> {
        match count.checked_mul(min_bytes) {
            Some(needed) if needed <= self.remaining() as u64 => Ok(count as usize),
            _ => Err(self.fail(format!(
                "declares {count} items but only {} bytes remain",
                self.remaining()
            ))),
        }
    }

    fn item(&mut self, depth: u32) -> Result<Value> {
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        match major {
            0 => {
                let n = self.definite(info)?;
                Ok(Value::Integer(n as i128))
            }
            1 => {
                let n = self.definite(info)?;
                Ok(Value::Integer(-1 - n as i128))
            }
            2 => Ok(Value::Bytes(self.string_bytes(2, info)?)),
            3 => {
                let bytes = self.string_bytes(3, info)?;
                // Each chunk was checked on its own; the whole is then valid too.
                Ok(Value::Text(
                    String::from_utf8(bytes).expect("every chunk is valid UTF-8"),
                ))
            }
            4 => {
                let depth = self.enter(depth)?;
                let mut items = Vec::new();
                match self.argument(info)? {
                    Some(count) => {
                        let count = self.check_count(count, 1)?;
                        items.reserve(count);
                        for _ in 0..count {
                            items.push(self.item(depth)?);
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            items.push(self.item(depth)?);
                        }
                    }
                }
                Ok(Value::Array(items))
            }
            5 => {
                let depth = self.enter(depth)?;
                let mut entries = Vec::new();
                let mut seen = KeySet::default();
                let declared = self.argument(info)?;
                if let Some(count) = declared {
                    entries.reserve(self.check_count(count, 2)?);
                }
                while match declared {
                    Some(count) => (entries.len() as u64) < count,
                    None => !self.at_break()?,
                } {
                    let at = self.pos;
                    let key = self.item(depth)?;
                    if !seen.insert(&key) {
                        return Err(HmsError::decode(format!(
                            "CBOR at byte {at}: duplicate map key {}",
                            describe_key(&key)
                        ))
                        .with_detail("key", describe_key(&key)));
                    }
                    entries.push((key, self.item(depth)?));
                }
                Ok(Value::Map(entries))
            }
            6 => {
                let tag = self.definite(info)?;
                let depth = self.enter(depth)?;
                let content = self.item(depth)?;
                match tag {
                    TAG_POSITIVE_BIGNUM | TAG_NEGATIVE_BIGNUM => {
                        self.bignum(tag == TAG_NEGATIVE_BIGNUM, content)
                    }
                    _ => Ok(content),
                }
            }
            _ => self.simple(info),
        }
    }

    /// The integer a bignum stands for. Values carry integers of the CBOR
    /// integer range (-2^64 ..= 2^64-1) only, so a bignum beyond it is
    /// refused rather than silently turned into something else.
    fn bignum(&self, negative: bool, content: Value) -> Result<Value> {
        let Value::Bytes(magnitude) = content else {
            return Err(self.fail(format!(
                "a bignum tag must hold a byte string, not {}",
                content.kind_name()
            )));
        };
        let significant = match magnitude.iter().position(|&b| b != 0) {
            Some(first) => &magnitude[first..],
            None => &[][..],
        };
        if significant.len() > 8 {
            return Err(self.fail(format!(
                "bignum of {} significant bytes is beyond the 64-bit integer range",
                significant.len()
            )));
        }
        let n = significant
            .iter()
            .fold(0u64, |n, &byte| (n << 8) | byte as u64) as i128;
        Ok(Value::Integer(if negative { -1 - n } else { n }))
    }

    fn definite(&mut self, info: u8) -> Result<u64> {
        self.argument(info)?
            .ok_or_else(|| self.fail("indefinite length where a number is required"))
    }

    fn at_break(&mut self) -> Result<bool> {
        match self.buf.get(self.pos) {
            Some(&BREAK) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(self.fail("unexpected end of input inside an indefinite item")),
        }
    }

    fn string_bytes(&mut self, major: u8, info: u8) -> Result<Vec<u8>> {
        match self.argument(info)? {
            Some(len) => {
                let bytes = self.take(len)?;
                if major == 3 && std::str::from_utf8(bytes).is_err() {
                    return Err(self.fail("text string is not valid UTF-8"));
                }
                Ok(bytes.to_vec())
            }
            None => {
                let mut out = Vec::new();
                while !self.at_break()? {
                    let chunk = self.byte()?;
                    if chunk >> 5 != major || chunk & 0x1f == 31 {
                        return Err(self.fail("bad chunk inside an indefinite-length string"));
                    }
                    let len = self.definite(chunk & 0x1f)?;
                    let bytes = self.take(len)?;
                    // RFC 8949 3.2.3: every chunk of a text string is
                    // well-formed UTF-8 by itself; a character split
                    // across chunks is malformed.
                    if major == 3 && std::str::from_utf8(bytes).is_err() {
                        return Err(self.fail("text string chunk is not valid UTF-8"));
                    }
                    out.extend_from_slice(bytes);
                }
                Ok(out)
            }
        }
    }

    fn simple(&mut self, info: u8) -> Result<Value> {
        match info {
            20 => Ok(Value::Bool(false)),
            21 => Ok(Value::Bool(true)),
            22 | 23 => Ok(Value::Null),
            25 => {
                let bits = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes"));
                Ok(Value::Float(half_to_f64(bits)))
            }
            26 => {
                let bits = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes"));
                Ok(Value::Float(f32::from_bits(bits) as f64))
            }
            27 => {
                let bits = u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                Ok(Value::Float(f64::from_bits(bits)))
            }
            31 => Err(self.fail("unexpected break")),
            _ => Err(self.fail(format!("unsupported simple value {info}"))),
        }
    }
}

fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let mantissa = (bits & 0x3ff) as f64;
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + mantissa / 1024.0) * 2f64.powi(exponent - 15),
    };
    sign * magnitude
}

/// The half-precision bits of `x` when the conversion loses nothing.
fn f32_to_half_exact(x: f32) -> Option<u16> {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    match exponent {
        0xff => (mantissa == 0).then_some(sign | 0x7c00),
        0 => (mantissa == 0).then_some(sign),
        _ => {
            let unbiased = exponent - 127;
            if (-14..=15).contains(&unbiased) {
                (mantissa & 0x1fff == 0)
                    .then(|| sign | (((unbiased + 15) as u16) << 10) | (mantissa >> 13) as u16)
            } else if (-24..-14).contains(&unbiased) {
                let full = 0x80_0000 | mantissa;
                let shift = -(unbiased + 1) as u32;
                (full & ((1 << shift) - 1) == 0).then(|| sign | (full >> shift) as u16)
            } else {
                None
            }
        }
    }
}

/// Encodes `value` in RFC 8949 core deterministic form: shortest integer
/// and float encodings, definite lengths, map keys sorted by their encoded
/// bytes.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Integer(n) if *n >= 0 => write_head(out, 0, *n as u64),
        Value::Integer(n) => write_head(out, 1, (-1 - *n) as u64),
        Value::Float(f) => write_float(out, *f),
        Value::Text(text) => {
            write_head(out, 3, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        Value::Bytes(bytes) => {
            write_head(out, 2, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        Value::Array(items) => {
            write_head(out, 4, items.len() as u64);
            for item in items {
                encode(item, out);
            }
        }
        Value::Map(entries) => {
            write_head(out, 5, entries.len() as u64);
            let mut keyed: Vec<(Vec<u8>, &Value)> = entries
                .iter()
                .map(|(key, value)| {
                    let mut key_bytes = Vec::new();
                    encode(key, &mut key_bytes);
                    (key_bytes, value)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            for (key_bytes, value) in keyed {
                out.extend_from_slice(&key_bytes);
                encode(value, out);
            }
        }
    }
}

pub fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    if n < 24 {
        out.push(major | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[major | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(major | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(major | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(&[0xf9, 0x7e, 0x00]);
        return;
    }
    let single = f as f32;
    if single as f64 != f {
        out.push(0xfb);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    } else if let Some(half) = f32_to_half_exact(single) {
        out.push(0xf9);
        out.extend_from_slice(&half.to_be_bytes());
    } else {
        out.push(0xfa);
        out.extend_from_slice(&single.to_bits().to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&value, &mut out);
        assert_eq!(decode(&out, 64).unwrap(), value);
        out
    }

    #[test]
    fn rfc8949_appendix_a_examples() {
        assert_eq!(round_trip(Value::Integer(0)), [0x00]);
        assert_eq!(round_trip(Value::Integer(24)), [0x18, 0x18]);
        assert_eq!(round_trip(Value::Integer(-1000)), [0x39, 0x03, 0xe7]);
        assert_eq!(
            round_trip(Value::Integer(u64::MAX as i128)),
            [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            round_trip(Value::Integer(-(u64::MAX as i128) - 1)),
            [0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(round_trip(Value::Float(1.5)), [0xf9, 0x3e, 0x00]);
        assert_eq!(round_trip(Value::Float(65504.0)), [0xf9, 0x7b, 0xff]);
        assert_eq!(
            round_trip(Value::Float(5.960464477539063e-8)),
            [0xf9, 0x00, 0x01]
        );
        assert_eq!(
            round_trip(Value::Float(100000.0)),
            [0xfa, 0x47, 0xc3, 0x50, 0x00]
        );
        assert_eq!(
            round_trip(Value::Float(1.1)),
            [0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]
        );
        assert_eq!(
            round_trip(Value::Float(f64::NEG_INFINITY)),
            [0xf9, 0xfc, 0x00]
        );
        assert_eq!(round_trip(Value::Text("ü".into())), [0x62, 0xc3, 0xbc]);
    }

    #[test]
    fn map_keys_sort_by_encoded_bytes() {
        let map = Value::Map(vec![
            (Value::Text("bb".into()), Value::Integer(1)),
            (Value::Text("a".into()), Value::Integer(2)),
            (Value::Integer(10), Value::Integer(3)),
        ]);
        let mut out = Vec::new();
        encode(&map, &mut out);
        assert_eq!(
            out,
            [0xa3, 0x0a, 0x03, 0x61, b'a', 0x02, 0x62, b'b', b'b', 0x01]
        );
    }

    #[test]
    fn indefinite_and_tagged_items_decode() {
        let bytes = [
            0x9f, 0x01, 0x5f, 0x41, 0xaa, 0x41, 0xbb, 0xff, 0xc1, 0x02, 0xff,
        ];
        assert_eq!(
            decode(&bytes, 64).unwrap(),
            Value::Array(vec![
                Value::Integer(1),
                Value::Bytes(vec![0xaa, 0xbb]),
                Value::Integer(2)
            ])
        );
    }

    #[test]
    fn hostile_input_fails_without_allocating() {
        let huge_bytes = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            decode(&huge_bytes, 64).unwrap_err().code,
            crate::Code::DecodeError
        );
        let huge_array = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            decode(&huge_array, 64).unwrap_err().code,
            crate::Code::DecodeError
        );
        let deep = vec![0x81; 100_000];
        assert_eq!(
            decode(&deep, 64).unwrap_err().code,
            crate::Code::ResourceExhausted
        );
        assert_eq!(
            decode(&[0x62, 0xff, 0xfe], 64).unwrap_err().code,
            crate::Code::DecodeError
        );
        assert_eq!(
            decode(&[0x01, 0x02], 64).unwrap_err().code,
            crate::Code::DecodeError
        );
        assert_eq!(decode(&[], 64).unwrap_err().code, crate::Code::DecodeError);
        assert_eq!(
            decode(&[0x1c], 64).unwrap_err().code,
            crate::Code::DecodeError
        );
    }
}
