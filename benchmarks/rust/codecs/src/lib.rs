//! Fixtures and helpers for the codec benchmarks (benches/codecs.rs):
//!
//! - the benchmark Agent (`agent.json`, about 1 KiB; benchmarks/python/run.py
//!   reads the same file for its codec comparators);
//! - the same CBOR data item through minicbor and ciborium, so the core's
//!   own CBOR codec (rust_core/src/codec/cbor.rs) is measured against both;
//! - the reader of criterion's samples that writes
//!   benchmarks/out/rust-codecs.json in the format of benchmarks/CASES.md.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use hms_ffi::codec::{self, Format, Limits, Value};
use hms_ffi::proto::hms::agent::v1::Agent;
use serde::{Deserialize, Serialize};

/// The benchmark Agent in the protobuf JSON mapping.
pub const AGENT_JSON: &str = include_str!("../agent.json");

/// The benchmark Agent, decoded by the core from `agent.json`.
pub fn agent() -> Agent {
    codec::decode_typed(Format::Json, AGENT_JSON.as_bytes(), &Limits::default())
        .expect("agent.json is a valid hms.agent.v1.Agent")
}

/// The Agent as the core's CBOR data item (what `encode_typed` writes in
/// CBOR, decoded again): the input of the CBOR library comparison.
pub fn agent_value() -> Value {
    let mut bytes = Vec::new();
    codec::encode_typed(&agent(), Format::Cbor, &mut bytes).expect("the Agent encodes in CBOR");
    codec::cbor::decode(&bytes, 64).expect("the core decodes its own CBOR")
}

// ---------------------------------------------------------------- minicbor

/// Encodes `value` with minicbor's encoder, items in the order given (the
/// core's encoder also sorts map keys; `agent_value` has them sorted
/// already, so both write the same bytes).
pub fn minicbor_encode(
    value: &Value,
    e: &mut minicbor::Encoder<&mut Vec<u8>>,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    match value {
        Value::Null => e.null()?,
        Value::Bool(b) => e.bool(*b)?,
        Value::Integer(n) => {
            let int = minicbor::data::Int::try_from(*n)
                .map_err(|_| minicbor::encode::Error::message("integer out of CBOR range"))?;
            e.int(int)?
        }
        Value::Float(f) => e.f64(*f)?,
        Value::Text(text) => e.str(text)?,
        Value::Bytes(bytes) => e.bytes(bytes)?,
        Value::Array(items) => {
            e.array(items.len() as u64)?;
            for item in items {
                minicbor_encode(item, e)?;
            }
            e
        }
        Value::Map(entries) => {
            e.map(entries.len() as u64)?;
            for (key, value) in entries {
                minicbor_encode(key, e)?;
                minicbor_encode(value, e)?;
            }
            e
        }
    };
    Ok(())
}

/// Decodes one item with minicbor's decoder into the core's data model
/// (definite lengths only, as the core's encoder writes them).
pub fn minicbor_decode(d: &mut minicbor::Decoder<'_>) -> Result<Value, minicbor::decode::Error> {
    use minicbor::data::Type;
    Ok(match d.datatype()? {
        Type::Null => {
            d.null()?;
            Value::Null
        }
        Type::Bool => Value::Bool(d.bool()?),
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::Integer(d.u64()?.into()),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            Value::Integer(i128::from(d.int()?))
        }
        Type::F16 | Type::F32 => Value::Float(d.f32()?.into()),
        Type::F64 => Value::Float(d.f64()?),
        Type::String => Value::Text(d.str()?.to_owned()),
        Type::Bytes => Value::Bytes(d.bytes()?.to_vec()),
        Type::Array => {
            let len = d.array()?.unwrap_or(0);
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                items.push(minicbor_decode(d)?);
            }
            Value::Array(items)
        }
        Type::Map => {
            let len = d.map()?.unwrap_or(0);
            let mut entries = Vec::with_capacity(len as usize);
            for _ in 0..len {
                let key = minicbor_decode(d)?;
                entries.push((key, minicbor_decode(d)?));
            }
            Value::Map(entries)
        }
        other => {
            return Err(minicbor::decode::Error::message(format!(
                "{other} is not used by the benchmark"
            )));
        }
    })
}

// ---------------------------------------------------------------- ciborium

/// The same item as ciborium's own data model.
pub fn to_ciborium(value: &Value) -> ciborium::Value {
    match value {
        Value::Null => ciborium::Value::Null,
        Value::Bool(b) => ciborium::Value::Bool(*b),
        Value::Integer(n) => ciborium::Value::Integer(
            ciborium::value::Integer::try_from(*n).expect("benchmark integers fit"),
        ),
        Value::Float(f) => ciborium::Value::Float(*f),
        Value::Text(text) => ciborium::Value::Text(text.clone()),
        Value::Bytes(bytes) => ciborium::Value::Bytes(bytes.clone()),
        Value::Array(items) => ciborium::Value::Array(items.iter().map(to_ciborium).collect()),
        Value::Map(entries) => ciborium::Value::Map(
            entries
                .iter()
                .map(|(k, v)| (to_ciborium(k), to_ciborium(v)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------- results

/// One case of a result file (benchmarks/CASES.md).
#[derive(Debug, Serialize)]
pub struct Case {
    pub id: String,
    pub label: String,
    pub median_ns: f64,
    pub q1_ns: f64,
    pub q3_ns: f64,
    pub rounds: usize,
    pub iterations: u64,
    pub baseline: Option<String>,
}

/// A result file (benchmarks/CASES.md).
#[derive(Debug, Serialize)]
pub struct ResultFile {
    pub language: String,
    pub version: String,
    pub notes: Vec<String>,
    pub cases: Vec<Case>,
    pub memory: Vec<serde_json::Value>,
}

/// criterion's `new/sample.json`: per sample, iterations and total ns.
#[derive(Debug, Deserialize)]
struct Sample {
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// Quantile `q` (0..=1) of sorted `values`, interpolated linearly between
/// closest ranks (Python's `statistics.quantiles(method="inclusive")`).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "no samples");
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A case from criterion's samples of benchmark `id` under `criterion_dir`:
/// each sample is one round (its time per iteration); median and quartiles
/// over the rounds; `iterations` is the mean per round.
pub fn case_from_criterion(
    criterion_dir: &Path,
    id: &str,
    label: &str,
    baseline: Option<&str>,
) -> Result<Case, String> {
    let path = criterion_dir.join(id).join("new").join("sample.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let sample: Sample =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    if sample.iters.is_empty() || sample.iters.len() != sample.times.len() {
        return Err(format!("{}: no samples", path.display()));
    }
    let mut per_iter: Vec<f64> = sample
        .iters
        .iter()
        .zip(&sample.times)
        .map(|(n, t)| t / n)
        .collect();
    per_iter.sort_by(f64::total_cmp);
    let total: f64 = sample.iters.iter().sum();
    Ok(Case {
        id: id.to_owned(),
        label: label.to_owned(),
        median_ns: quantile(&per_iter, 0.5),
        q1_ns: quantile(&per_iter, 0.25),
        q3_ns: quantile(&per_iter, 0.75),
        rounds: per_iter.len(),
        iterations: (total / per_iter.len() as f64).round() as u64,
        baseline: baseline.map(str::to_owned),
    })
}

/// Where criterion keeps its data: `$CRITERION_HOME`, or this workspace's
/// target/criterion (criterion's own default for `cargo bench` here).
pub fn criterion_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
        PathBuf::from,
    )
}

/// benchmarks/out, or `$HMS_BENCH_OUT`.
pub fn out_dir() -> PathBuf {
    std::env::var_os("HMS_BENCH_OUT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out"),
        PathBuf::from,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_is_about_one_kib() {
        let mut bytes = Vec::new();
        codec::encode_typed(&agent(), Format::Protobuf, &mut bytes).unwrap();
        assert!((900..=1200).contains(&bytes.len()), "{} bytes", bytes.len());
    }

    #[test]
    fn minicbor_and_ciborium_write_the_core_bytes_and_read_them_back() {
        let value = agent_value();
        let mut core = Vec::new();
        codec::cbor::encode(&value, &mut core);

        let mut mini = Vec::new();
        minicbor_encode(&value, &mut minicbor::Encoder::new(&mut mini)).unwrap();
        assert_eq!(mini, core);
        let back = minicbor_decode(&mut minicbor::Decoder::new(&core)).unwrap();
        assert_eq!(back, value);

        let mut cib = Vec::new();
        ciborium::into_writer(&to_ciborium(&value), &mut cib).unwrap();
        assert_eq!(cib, core);
        let back: ciborium::Value = ciborium::from_reader(core.as_slice()).unwrap();
        assert_eq!(back, to_ciborium(&value));
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
    }
}
