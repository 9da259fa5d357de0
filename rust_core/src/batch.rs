//! Batches: many calls through method handles in one crossing.
//!
//! Both frames are flat little-endian u64 arrays followed by a payload area
//! (see `hms_call_batch` in the header), so hosts build and split them with
//! their packing routines instead of a parser loop:
//!
//! ```text
//! batch frame:   count, method[count], end[count], payloads
//! result frame:  count, code[count],   end[count], payloads
//! ```

use std::sync::Arc;

use crate::codec::{self, Format};
use crate::error::{Code, HmsError, Result};
use crate::runtime::{self, RemoteAnswer, ResolvedMethod};

/// Most calls one batch may hold (`HMS_BATCH_MAX_CALLS`).
pub const MAX_CALLS: u64 = 1 << 20;
/// Answers past this size stop a batch (`HMS_BATCH_MAX_RESULT_BYTES`).
pub const MAX_RESULT_BYTES: usize = 256 << 20;

const WORD: usize = 8;

/// A batch frame whose layout has been checked; nothing has run yet.
struct BatchFrame<'a> {
    count: usize,
    words: &'a [u8],
    payloads: &'a [u8],
}

impl<'a> BatchFrame<'a> {
    fn parse(frame: &'a [u8]) -> Result<BatchFrame<'a>> {
        let Some(count) = frame.get(..WORD).map(read_word) else {
            return Err(malformed(format!(
                "a batch frame starts with its call count (8 bytes); got {} bytes",
                frame.len()
            )));
        };
        if count > MAX_CALLS {
            return Err(HmsError::exhausted(format!(
                "a batch holds at most {MAX_CALLS} calls; this one declares {count}: split it"
            ))
            .with_detail("count", count));
        }
        let count = count as usize;
        let header = WORD * (1 + 2 * count);
        if frame.len() < header {
            return Err(malformed(format!(
                "a batch frame of {count} calls needs a {header}-byte header; got {} bytes",
                frame.len()
            )));
        }
        let parsed = BatchFrame {
            count,
            words: &frame[WORD..header],
            payloads: &frame[header..],
        };
        let mut start = 0;
        for index in 0..count {
            let end = parsed.end(index);
            if end < start || end > parsed.payloads.len() as u64 {
                return Err(malformed(format!(
                    "end[{index}] = {end} must lie between the previous end ({start}) and the \
                     payload area's length ({})",
                    parsed.payloads.len()
                ))
                .with_detail("index", index));
            }
            start = end;
        }
        if start != parsed.payloads.len() as u64 {
            return Err(malformed(format!(
                "the last end ({start}) must equal the payload area's length ({})",
                parsed.payloads.len()
            )));
        }
        Ok(parsed)
    }

    fn method(&self, index: usize) -> u64 {
        read_word(&self.words[index * WORD..])
    }

    fn end(&self, index: usize) -> u64 {
        read_word(&self.words[(self.count + index) * WORD..])
    }

    fn request(&self, index: usize) -> &'a [u8] {
        let start = if index == 0 { 0 } else { self.end(index - 1) };
        &self.payloads[start as usize..self.end(index) as usize]
    }
}

fn read_word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..WORD].try_into().expect("eight bytes"))
}

fn malformed(message: String) -> HmsError {
    HmsError::invalid_argument(format!("malformed batch frame: {message}"))
}

/// The entry for `handle`, looked up again only when it differs from the
/// previous call's.
fn lookup(current: &mut Option<(u64, Arc<ResolvedMethod>)>, handle: u64) {
    if current.as_ref().is_none_or(|(h, _)| *h != handle) {
        *current = runtime::method(handle).ok().map(|entry| (handle, entry));
    }
}

/// Sends every remote call of `frame` at once, so that they are all in
/// flight while the local ones run: the answer of call `i` is at `[i]`,
/// `None` for calls that run here. Empty when no call goes out.
fn send_remote_calls(frame: &BatchFrame<'_>) -> Vec<Option<Result<RemoteAnswer>>> {
    let mut sent = Vec::new();
    let mut current: Option<(u64, Arc<ResolvedMethod>)> = None;
    for index in 0..frame.count {
        lookup(&mut current, frame.method(index));
        let Some((_, entry)) = &current else {
            continue;
        };
        if let Some(answer) = entry.send_remote(frame.request(index)) {
            if sent.is_empty() {
                sent.resize_with(frame.count, || None);
            }
            sent[index] = Some(answer);
        }
    }
    sent
}

/// Runs every call of `frame` and appends the result frame to `out`:
/// remote calls are all sent first (many in flight), then the answers are
/// written in order, the local calls running in their turn. Fails, before
/// running anything, only when the frame itself is bad.
pub fn run(frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let frame = BatchFrame::parse(frame)?;
    let mut remote = send_remote_calls(&frame);
    let base = out.len();
    let header = WORD * (1 + 2 * frame.count);
    // Answers are usually about as large as their requests: one allocation
    // up front rather than a growth every few calls.
    out.reserve(header + frame.payloads.len());
    out.resize(base + header, 0);
    out[base..base + WORD].copy_from_slice(&(frame.count as u64).to_le_bytes());
    let area = base + header;
    // Consecutive calls usually share a handle: look it up once per run.
    let mut current: Option<(u64, Arc<ResolvedMethod>)> = None;
    for index in 0..frame.count {
        lookup(&mut current, frame.method(index));
        let entry = current.as_ref().map(|(_, entry)| entry);
        let sent = remote.get_mut(index).and_then(Option::take);
        let start = out.len();
        let outcome = if start - area > MAX_RESULT_BYTES {
            let fate = if sent.is_some() {
                "which was sent to another runtime before, its answer dropped"
            } else {
                "which did not run"
            };
            Err(HmsError::exhausted(format!(
                "the answers of this batch passed {MAX_RESULT_BYTES} bytes before call {index}, \
                 {fate}: split the batch"
            ))
            .with_detail("index", index))
        } else {
            match (sent, entry) {
                (Some(answer), _) => answer.and_then(|answer| answer.wait(out)),
                (None, Some(entry)) => entry.call(frame.request(index), out),
                (None, None) => Err(HmsError::invalid_handle(
                    crate::handles::HandleKind::Method.name(),
                )),
            }
        };
        let code = match outcome {
            Ok(()) => Code::Ok,
            Err(error) => {
                out.truncate(start);
                let format = entry.map_or(Format::Json, |entry| entry.format);
                let _ = codec::encode_typed(&error.to_status(), format, out);
                error.code
            }
        };
        let code_at = base + WORD * (1 + index);
        out[code_at..code_at + WORD].copy_from_slice(&(code.as_i32() as u64).to_le_bytes());
        let end_at = base + WORD * (1 + frame.count + index);
        let end = (out.len() - area) as u64;
        out[end_at..end_at + WORD].copy_from_slice(&end.to_le_bytes());
    }
    Ok(())
}
