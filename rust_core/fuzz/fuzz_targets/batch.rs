//! `hms_call_batch` through the C ABI. A fresh runtime (4 KiB limit) with
//! method handles for several (method, format) pairs; the frame's method
//! words pick from those handles and from invalid ones (0, stale, wrong
//! kind). With the low bit of the mode byte set, the frame is repaired into
//! a well-formed one (count below 9, ends in order) so calls run; otherwise
//! it goes in raw, for the frame parser. The result frame must be
//! well-formed: same count, documented codes, ends in order, each failed
//! call's payload an hms.v1.Status with its code, answers within limits.
//!
//! Input: [mode] frame...
#![no_main]

use hms_ffi::codec::{self, Format, Limits};
use hms_ffi::proto::v1::Status;
use hms_ffi_fuzz::{
    Buf, Input, SMALL_LIMIT, check_call, check_code, check_output, free_runtime, hms_call_batch,
    hms_method_free, hms_method_resolve, small_runtime,
};
use libfuzzer_sys::fuzz_target;

const WORD: usize = 8;

/// (method, format) pairs resolved into handles for each input.
const RESOLVED: &[(&str, i32)] = &[
    ("hms.sys.v1.System/Echo", 1),
    ("hms.sys.v1.System/Echo", 2),
    ("hms.sys.v1.System/Echo", 3),
    ("hms.sys.v1.System/Health", 3),
    ("hms.agent.v1.AgentService/CreateAgent", 2),
    ("hms.agent.v1.AgentService/GetAgent", 3),
    ("hms.agent.v1.AgentService/ListAgents", 1),
    ("hms.agent.v1.KnowledgeService/PutKnowledge", 3),
    ("hms.registry.v1.Registry/DescribeService", 2),
    // Freed right away: the stale handle.
    ("hms.sys.v1.System/Version", 3),
];

fn word(bytes: &[u8], index: usize) -> u64 {
    u64::from_le_bytes(bytes[index * WORD..(index + 1) * WORD].try_into().unwrap())
}

fn set_word(bytes: &mut [u8], index: usize, value: u64) {
    bytes[index * WORD..(index + 1) * WORD].copy_from_slice(&value.to_le_bytes());
}

/// Makes `frame` well-formed: a count below 9, method words mapped onto
/// `handles`, ends clamped into order with the last one at the end.
fn repair(frame: &[u8], handles: &[u64]) -> Vec<u8> {
    let mut frame = frame.to_vec();
    if frame.len() < WORD {
        frame.resize(WORD, 0);
    }
    let count = (word(&frame, 0) % 9) as usize;
    set_word(&mut frame, 0, count as u64);
    let header = WORD * (1 + 2 * count);
    if frame.len() < header {
        frame.resize(header, 0);
    }
    let area = (frame.len() - header) as u64;
    let mut previous = 0;
    for index in 0..count {
        let method = handles[(word(&frame, 1 + index) % handles.len() as u64) as usize];
        set_word(&mut frame, 1 + index, method);
        let end = if index + 1 == count {
            area
        } else {
            (word(&frame, 1 + count + index) % (area + 1)).max(previous)
        };
        set_word(&mut frame, 1 + count + index, end);
        previous = end;
    }
    frame
}

fuzz_target!(|data: &[u8]| {
    let rt = small_runtime();
    let mut handles = Vec::new();
    for (method, format) in RESOLVED {
        let mut handle = 0u64;
        let mut err = Buf::new();
        // SAFETY: valid pointers and lengths for the duration of the call.
        let rc = unsafe {
            hms_method_resolve(
                rt,
                method.as_ptr(),
                method.len(),
                *format,
                &mut handle,
                err.ptr(),
            )
        };
        assert_eq!(rc, 0, "hms_method_resolve({method})");
        handles.push(handle);
    }
    // A freed method handle (stale), 0 (never valid), a runtime handle
    // (wrong kind) and one never issued.
    let stale = handles.pop().expect("resolved above");
    // SAFETY: a plain handle call.
    unsafe { assert_eq!(hms_method_free(stale), 0) };
    let invalid = [0, stale, rt, u64::MAX];
    let table: Vec<u64> = handles.iter().chain(&invalid).copied().collect();

    let mut input = Input(data);
    let mode = input.byte();
    let raw = input.rest();
    let frame = if mode & 1 == 1 {
        repair(raw, &table)
    } else {
        raw.to_vec()
    };

    let mut results = Buf::new();
    let mut err = Buf::new();
    // SAFETY: valid pointers and lengths for the duration of the call.
    let rc = unsafe { hms_call_batch(frame.as_ptr(), frame.len(), results.ptr(), err.ptr()) };
    if check_call("hms_call_batch", rc, 3, &[&results], &err) as i32 == 0 {
        check_results(&frame, results.bytes(), &handles);
    }

    for handle in &handles {
        // SAFETY: plain handle calls.
        unsafe { assert_eq!(hms_method_free(*handle), 0) };
    }
    free_runtime(rt);
});

/// Checks the result frame of a batch `frame` that ran.
fn check_results(frame: &[u8], results: &[u8], handles: &[u64]) {
    let count = word(frame, 0) as usize;
    let header = WORD * (1 + 2 * count);
    assert!(
        results.len() >= header,
        "result frame shorter than its header"
    );
    assert_eq!(word(results, 0) as usize, count, "result count differs");
    let area = &results[header..];
    let mut start = 0usize;
    for index in 0..count {
        let code = check_code("batch call", word(results, 1 + index) as i32);
        let end = word(results, 1 + count + index) as usize;
        assert!(
            start <= end && end <= area.len(),
            "result end[{index}] out of order"
        );
        let answer = &area[start..end];
        let request_start = if index == 0 {
            0
        } else {
            word(frame, count + index) as usize
        };
        let request_len = word(frame, 1 + count + index) as usize - request_start;
        let handle = word(frame, 1 + index);
        let format = handles
            .iter()
            .position(|h| *h == handle)
            .map_or(3, |i| RESOLVED[i].1);
        let what = format!("batch call {index} (handle {handle:#x}, format {format})");
        if code as i32 == 0 {
            check_output(&what, answer.len(), request_len, SMALL_LIMIT);
        } else {
            let format = Format::from_i32(format).expect("a valid format");
            let status: Status = codec::decode_typed(format, answer, &Limits::default())
                .unwrap_or_else(|e| panic!("{what}: failed but its answer is no Status: {e:?}"));
            assert_eq!(status.code, code as i32, "{what}: Status.code differs");
        }
        start = end;
    }
    assert_eq!(
        start,
        area.len(),
        "the last result end is not the frame's end"
    );
}
