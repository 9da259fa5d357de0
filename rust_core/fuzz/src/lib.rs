//! Shared by the fuzz targets: the C ABI as a host sees it, and the
//! invariants every target checks (ABI.md: never crash the host, documented
//! status codes only, limits enforced, outputs untouched on failure).
//!
//! A panic anywhere in the core aborts the fuzzer (libfuzzer-sys installs an
//! aborting panic hook before the core's `catch_unwind` can turn it into
//! `HMS_PANIC`), so every panic is reported with its stack, even one the
//! ABI guard would have caught.

use hms_ffi::Code;
use hms_ffi::codec::{self, Format, JsonNames, Limits};
use hms_ffi::proto::v1::Status;

// The hms_ffi rlib exports the C functions too; a host's view of them is
// declared here rather than through the crate's private `ffi` module so the
// targets cross the real ABI (guard, buffer reuse, error encoding).
#[repr(C)]
pub struct HmsBuf {
    pub data: *mut u8,
    pub len: usize,
    pub cap: usize,
}

unsafe extern "C" {
    pub fn hms_buf_free(buf: *mut HmsBuf);
    pub fn hms_runtime_new(
        format: i32,
        config: *const u8,
        config_len: usize,
        out: *mut u64,
        err: *mut HmsBuf,
    ) -> i32;
    pub fn hms_runtime_free(rt: u64) -> i32;
    pub fn hms_call(
        rt: u64,
        method: *const u8,
        method_len: usize,
        format: i32,
        request: *const u8,
        request_len: usize,
        options: *const u8,
        options_len: usize,
        response: *mut HmsBuf,
        err: *mut HmsBuf,
    ) -> i32;
    pub fn hms_convert(
        type_name: *const u8,
        type_name_len: usize,
        from_format: i32,
        data: *const u8,
        data_len: usize,
        to_format: i32,
        out: *mut HmsBuf,
        err: *mut HmsBuf,
    ) -> i32;
    pub fn hms_method_resolve(
        rt: u64,
        method: *const u8,
        method_len: usize,
        format: i32,
        out: *mut u64,
        err: *mut HmsBuf,
    ) -> i32;
    pub fn hms_method_free(method: u64) -> i32;
    pub fn hms_call_batch(
        batch: *const u8,
        batch_len: usize,
        results: *mut HmsBuf,
        err: *mut HmsBuf,
    ) -> i32;
}

/// An `hms_buf` owned by the target, freed through the ABI on drop.
pub struct Buf(pub HmsBuf);

impl Buf {
    pub fn new() -> Buf {
        Buf(HmsBuf {
            data: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        })
    }

    pub fn ptr(&mut self) -> *mut HmsBuf {
        &mut self.0
    }

    pub fn bytes(&self) -> &[u8] {
        if self.0.data.is_null() {
            assert_eq!(self.0.len, 0, "an hms_buf with NULL data has a length");
            return &[];
        }
        assert!(self.0.len <= self.0.cap, "hms_buf len > cap");
        // SAFETY: the library filled this buffer: `len` bytes at `data`.
        unsafe { std::slice::from_raw_parts(self.0.data, self.0.len) }
    }
}

impl Default for Buf {
    fn default() -> Self {
        Buf::new()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: zeroed or filled by the library, never freed before.
        unsafe { hms_buf_free(&mut self.0) }
    }
}

/// Runtime limit of the targets that can configure one: small, so that the
/// size assertions bite with inputs the fuzzer can reach (-max_len).
pub const SMALL_LIMIT: usize = 4096;

/// The limit `hms_convert` applies (not configurable): the ABI default.
pub const DEFAULT_LIMIT: usize = 4 * 1024 * 1024;

/// The limits fuzzed input is decoded under: [`SMALL_LIMIT`], depth 64.
pub const SMALL_LIMITS: Limits = Limits {
    max_message_bytes: SMALL_LIMIT,
    max_depth: 64,
    json_names: JsonNames::Proto,
};

/// Limits for decoding the core's own output again, which may be larger
/// than the input (every output is checked against its limit separately).
pub const OUTPUT_LIMITS: Limits = Limits {
    max_message_bytes: usize::MAX,
    max_depth: 64,
    json_names: JsonNames::Proto,
};

/// The untyped path `hms_convert` takes with an empty type name, from
/// `from` to `to` (the other of CBOR and JSON): decode under small limits
/// (only a decode error or a limit may refuse it), re-encode in `from`
/// (within the limit, decoding again to the same bytes where output is
/// stable), and transcode to `to` (within the limit, decodable again).
pub fn untyped_round_trip(from: Format, to: Format, data: &[u8]) {
    let value = match codec::decode_value(from, data, &SMALL_LIMITS) {
        Ok(value) => value,
        Err(error) => {
            // ABI.md 8: a hostile payload is a decode error or a limit.
            let code = check_code(&format!("{from:?} decode"), error.code.as_i32());
            assert!(
                matches!(code, Code::DecodeError | Code::ResourceExhausted),
                "{from:?} decode failed with {code:?}: {}",
                error.message
            );
            return;
        }
    };
    let mut same = Vec::new();
    codec::encode_value(&value, from, &mut same).expect("every value encodes");
    check_output(
        &format!("{from:?} -> {from:?}"),
        same.len(),
        data.len(),
        SMALL_LIMIT,
    );
    let again =
        codec::decode_value(from, &same, &OUTPUT_LIMITS).expect("the core's own output decodes");
    let mut same_again = Vec::new();
    codec::encode_value(&again, from, &mut same_again).expect("every value encodes");
    if from != Format::Json || json_stability_checked(&same) {
        assert_eq!(same, same_again, "{from:?} output is not stable");
    }

    let mut other = Vec::new();
    let what = format!("{from:?} -> {to:?}");
    match codec::transcode(None, from, data, to, &SMALL_LIMITS, &mut other) {
        Ok(()) => {
            check_output(&what, other.len(), data.len(), SMALL_LIMIT);
            codec::decode_value(to, &other, &OUTPUT_LIMITS).expect("the core's own output decodes");
        }
        Err(error) => {
            check_code(&what, error.code.as_i32());
        }
    }
}

/// Fixed (kept as the switch for a new open bug of this shape): converted output (transcode, and
/// the answers of built-in methods) is not checked against
/// `max_message_bytes`, so CBOR `[null, null, ...]` becomes JSON four times
/// its size, and protobuf enums or timestamps become JSON strings ~30 times
/// theirs. While it is open, outputs over the limit are tolerated up to a
/// linear expansion of the input ([`expansion_bound`]); anything beyond
/// that (a blow-up) still fails. Set to `false` when the fix lands.
pub const KNOWN_ISSUE_UNBOUNDED_OUTPUT: bool = false;

/// Largest output a linear re-encoding of `input_len` bytes can have.
pub fn expansion_bound(input_len: usize) -> usize {
    64 * input_len + 4096
}

/// Asserts an output respects `limit` (see [`KNOWN_ISSUE_UNBOUNDED_OUTPUT`]).
pub fn check_output(what: &str, output_len: usize, input_len: usize, limit: usize) {
    if output_len <= limit {
        return;
    }
    if KNOWN_ISSUE_UNBOUNDED_OUTPUT && output_len <= expansion_bound(input_len) {
        return;
    }
    panic!(
        "{what}: output of {output_len} bytes from {input_len} input bytes is over the \
         limit of {limit} bytes"
    );
}

/// Asserts `rc` is a status code of hms_ffi.h and not HMS_PANIC.
pub fn check_code(what: &str, rc: i32) -> Code {
    let Some(code) = Code::from_i32(rc) else {
        panic!("{what}: status {rc} is not one of hms_ffi.h");
    };
    assert_ne!(code, Code::Panic, "{what}: HMS_PANIC");
    code
}

/// Checks one ABI call: documented code, outputs untouched on failure (all
/// start empty here), and on failure an `hms.v1.Status` in `err` (in
/// `err_format`, JSON when that is not a format) carrying the same code.
pub fn check_call(what: &str, rc: i32, err_format: i32, outputs: &[&Buf], err: &Buf) -> Code {
    let code = check_code(what, rc);
    if code == Code::Ok {
        assert!(err.bytes().is_empty(), "{what}: OK with an error written");
        return code;
    }
    for out in outputs {
        assert!(
            out.bytes().is_empty(),
            "{what}: failed with {code:?} but wrote {} output bytes",
            out.bytes().len()
        );
    }
    let format = Format::from_i32(err_format).unwrap_or(Format::Json);
    let status: Status = codec::decode_typed(format, err.bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("{what}: the error buffer is not an hms.v1.Status: {e:?}"));
    assert_eq!(
        status.code, rc,
        "{what}: Status.code differs from the return code"
    );
    code
}

/// Message types the typed targets decode: the examples of the brief plus
/// every type with golden vectors (seed_corpus.py uses the same order).
pub const TYPES: &[&str] = &[
    "hms.agent.v1.Agent",
    "hms.v1.CallOptions",
    "hms.v1.RuntimeConfig",
    "hms.v1.Status",
    "hms.agent.v1.Task",
    "hms.agent.v1.KnowledgeEntry",
    "hms.agent.v1.ListAgentsRequest",
    "hms.agent.v1.UpdateAgentRequest",
    "hms.agent.lifecycle.v1.LifecycleEvent",
    "hms.events.v1.Event",
    "hms.sys.v1.EchoRequest",
];

/// A format number from a fuzz byte: mostly valid, sometimes not (0, 4),
/// so the argument checks run too.
pub fn raw_format(byte: u8) -> i32 {
    match byte % 8 {
        0 => 0,
        7 => 4,
        n => i32::from((n - 1) % 3 + 1),
    }
}

/// A valid format from a fuzz byte.
pub fn format(byte: u8) -> Format {
    match byte % 3 {
        0 => Format::Protobuf,
        1 => Format::Cbor,
        _ => Format::Json,
    }
}

/// Reads a fuzz input front to back; past the end it yields zeros and
/// empty slices, so every input is a valid (if short) program.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    pub fn u16(&mut self) -> usize {
        usize::from(u16::from_le_bytes([self.byte(), self.byte()]))
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every built-in method (services/*.rs), so the call targets reach each
/// handler without guessing names; selectors past the end use a name from
/// the input instead.
pub const METHODS: &[&str] = &[
    "hms.sys.v1.System/Echo",
    "hms.sys.v1.System/Health",
    "hms.sys.v1.System/Version",
    "hms.registry.v1.Registry/ListServices",
    "hms.registry.v1.Registry/DescribeService",
    "hms.agent.v1.AgentService/CreateAgent",
    "hms.agent.v1.AgentService/GetAgent",
    "hms.agent.v1.AgentService/ListAgents",
    "hms.agent.v1.AgentService/UpdateAgent",
    "hms.agent.v1.AgentService/DeleteAgent",
    "hms.agent.v1.TaskService/SubmitTask",
    "hms.agent.v1.TaskService/GetTask",
    "hms.agent.v1.TaskService/ListTasks",
    "hms.agent.v1.TaskService/AssignTask",
    "hms.agent.v1.TaskService/StartTask",
    "hms.agent.v1.TaskService/CompleteTask",
    "hms.agent.v1.TaskService/FailTask",
    "hms.agent.v1.TaskService/CancelTask",
    "hms.agent.v1.KnowledgeService/PutKnowledge",
    "hms.agent.v1.KnowledgeService/GetKnowledge",
    "hms.agent.v1.KnowledgeService/QueryKnowledge",
    "hms.agent.v1.KnowledgeService/DeleteKnowledge",
    "hms.agent.lifecycle.v1.LifecycleService/GetState",
    "hms.agent.lifecycle.v1.LifecycleService/Transition",
    "hms.agent.lifecycle.v1.LifecycleService/GetHistory",
    "hms.agent.lifecycle.v1.LifecycleService/RegisterHook",
    "hms.agent.lifecycle.v1.LifecycleService/UnregisterHook",
];

/// A fresh runtime with the [`SMALL_LIMIT`] (in memory: no data_dir), so
/// no state leaks from one input to the next.
pub fn small_runtime() -> u64 {
    let config = format!("{{\"maxMessageBytes\":\"{SMALL_LIMIT}\"}}");
    let mut rt = 0u64;
    let mut err = Buf::new();
    // SAFETY: valid pointers for the duration of the call.
    let rc = unsafe { hms_runtime_new(3, config.as_ptr(), config.len(), &mut rt, err.ptr()) };
    assert_eq!(
        rc,
        0,
        "hms_runtime_new: {}",
        String::from_utf8_lossy(err.bytes())
    );
    rt
}

/// Frees a runtime of [`small_runtime`]; a second free is a stale handle.
pub fn free_runtime(rt: u64) {
    // SAFETY: plain handle calls.
    unsafe {
        assert_eq!(hms_runtime_free(rt), 0, "hms_runtime_free");
        assert_eq!(hms_runtime_free(rt), 100, "a second hms_runtime_free");
    }
}

/// Fixed (serde_json `float_roundtrip`); found by json_value: JSON
/// numbers are not parsed to the nearest double (serde_json without its
/// `float_roundtrip` feature is off by an ulp), so `5e-72` decodes to the
/// double printed `5.000000000000001e-72`, which decodes to another one
/// printed `...002e-72`: the core's JSON output does not round-trip, and
/// JSON input converts to slightly wrong protobuf/CBOR doubles. While it is
/// open, the JSON stability checks skip outputs holding a float literal.
pub const KNOWN_ISSUE_JSON_FLOAT_PARSE: bool = false;

/// True when JSON text has a number with a fraction or an exponent outside
/// strings (the shape of [`KNOWN_ISSUE_JSON_FLOAT_PARSE`]).
pub fn json_has_float_literal(json: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    let mut previous_digit = false;
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'.' | b'e' | b'E' if previous_digit => return true,
            _ => {}
        }
        previous_digit = byte.is_ascii_digit();
    }
    false
}

/// Whether a JSON stability check applies to `json` (see
/// [`KNOWN_ISSUE_JSON_FLOAT_PARSE`]).
pub fn json_stability_checked(json: &[u8]) -> bool {
    !(KNOWN_ISSUE_JSON_FLOAT_PARSE && json_has_float_literal(json))
}

/// Fixed (groups are opaque records in codec/canonical.rs); found by
/// typed_decode (regressions/typed_decode/pb-map-order-with-group):
/// protobuf output sorts map entries only when the encoding has no group
/// (codec/canonical.rs gives up on wire types 3/4 and keeps prost-reflect's
/// hash-map order), so a message with a map and an unknown group field
/// encodes in an order that changes from one decode to the next. While it
/// is open, the protobuf stability check skips outputs holding a group.
pub const KNOWN_ISSUE_PB_GROUP_MAP_ORDER: bool = false;

/// True when protobuf `bytes`, or any length-delimited value in them that
/// parses as protobuf, holds a group (wire type 3). Over-approximates (a
/// string may parse as records), which only widens the skip a little.
pub fn pb_has_group(bytes: &[u8], depth: u32) -> bool {
    fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut at = 0;
    while at < bytes.len() {
        let Some(tag) = varint(bytes, &mut at) else {
            return false;
        };
        match tag & 7 {
            0 if varint(bytes, &mut at).is_some() => {}
            1 => at += 8,
            2 => {
                let Some(len) = varint(bytes, &mut at).and_then(|n| usize::try_from(n).ok()) else {
                    return false;
                };
                let Some(value) = at.checked_add(len).and_then(|end| bytes.get(at..end)) else {
                    return false;
                };
                if depth > 0 && pb_has_group(value, depth - 1) {
                    return true;
                }
                at += len;
            }
            3 | 4 => return true,
            5 => at += 4,
            _ => return false,
        }
    }
    false
}

/// Whether a protobuf stability check applies to `bytes` (see
/// [`KNOWN_ISSUE_PB_GROUP_MAP_ORDER`]).
pub fn pb_stability_checked(bytes: &[u8]) -> bool {
    !(KNOWN_ISSUE_PB_GROUP_MAP_ORDER && pb_has_group(bytes, 100))
}
