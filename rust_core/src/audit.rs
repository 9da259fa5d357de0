//! The audit log (docs/security.md, "Audit log"): one JSON record per line,
//! appended, each chained to the one before by a SHA-256 (or, with a key,
//! HMAC-SHA256) over the previous hash and its own canonical bytes, so that
//! an edited, removed, reordered or cut record breaks the chain there.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Code, HmsError, Result};
use crate::proto::hms::audit::v1::{Break, ReadResponse, Tamper, VerifyResponse};
use crate::proto::v1::SecurityConfig;

pub const DEFAULT_FILE_NAME: &str = "audit.log";
/// Shortest HMAC key accepted: the size of the hash.
pub const MIN_KEY_BYTES: usize = 32;
/// Most records one Read returns.
pub const MAX_READ_RECORDS: u32 = 1000;
/// An in-memory log (no data_dir) keeps at most this much; older records
/// are dropped whole, so it never grows without bound.
pub const MEMORY_LOG_BYTES: usize = 8 << 20;
/// The `prev` of the first record.
const GENESIS: [u8; 32] = [0; 32];
/// How far back a record may start, when the tail is read on start.
const TAIL_CHUNK: u64 = 64 * 1024;

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    AuthenticationFailure,
    AuthorizationDecision,
    LifecycleTransition,
    HookVeto,
    SecurityChange,
}

/// One audited event. The log adds its sequence number, time, runtime and
/// chain. Only names, ids and codes go here: never a request body or a
/// secret.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    pub kind: AuditKind,
    /// The verified principal; empty for an anonymous or failed caller.
    pub principal: String,
    /// The full method name of the call.
    pub method: String,
    /// What the call acts on, e.g. "agent:<id>".
    pub resource: String,
    /// "allow", "deny", "fail", "veto" or "change".
    pub decision: String,
    /// The HMS status code the call ends with (0 for OK).
    pub status: Code,
    pub trace_id: String,
    /// The call came in over the transport from another runtime.
    pub remote: bool,
    /// A few more names and ids (states, a hook's name, a verifier's file).
    pub details: BTreeMap<String, String>,
}

impl AuditRecord {
    pub fn new(kind: AuditKind, decision: &str, status: Code) -> AuditRecord {
        AuditRecord {
            kind,
            principal: String::new(),
            method: String::new(),
            resource: String::new(),
            decision: decision.to_owned(),
            status,
            trace_id: String::new(),
            remote: false,
            details: BTreeMap::new(),
        }
    }

    /// The record of one authorization decision, allow or deny.
    pub fn authorization_decision(
        principal: &str,
        method: &str,
        resource: &str,
        allowed: bool,
        trace_id: &str,
        remote: bool,
    ) -> AuditRecord {
        let (decision, status) = if allowed {
            ("allow", Code::Ok)
        } else {
            ("deny", Code::PermissionDenied)
        };
        AuditRecord {
            principal: principal.to_owned(),
            method: method.to_owned(),
            resource: resource.to_owned(),
            trace_id: trace_id.to_owned(),
            remote,
            ..AuditRecord::new(AuditKind::AuthorizationDecision, decision, status)
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl ToString) -> AuditRecord {
        self.details.insert(key.to_owned(), value.to_string());
        self
    }
}

/// `security.audit` with its defaults applied.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    pub hmac_key_file: Option<PathBuf>,
    pub file_name: String,
    pub fail_open: bool,
    pub sync_each_record: bool,
    /// The security configuration by its file and variable names (never a
    /// secret), recorded as a security change when the runtime starts.
    pub security_summary: BTreeMap<String, String>,
}

impl AuditSettings {
    /// `None` when the log is turned off.
    pub fn from_config(security: &SecurityConfig) -> Result<Option<AuditSettings>> {
        let config = security.audit.clone().unwrap_or_default();
        if config.enabled == Some(false) {
            return Ok(None);
        }
        let file_name = if config.file_name.is_empty() {
            DEFAULT_FILE_NAME.to_owned()
        } else {
            config.file_name
        };
        if file_name.contains(['/', '\\', '\0']) || file_name == "." || file_name == ".." {
            return Err(HmsError::invalid_argument(format!(
                "security.audit.file_name {file_name:?} is not a plain file name: the log lives \
                 in RuntimeConfig.data_dir"
            ))
            .with_detail("field", "security.audit.file_name"));
        }
        Ok(Some(AuditSettings {
            hmac_key_file: (!config.hmac_key_file.is_empty())
                .then(|| PathBuf::from(config.hmac_key_file)),
            file_name,
            fail_open: config.fail_open,
            sync_each_record: config.sync_each_record,
            security_summary: security_summary(security),
        }))
    }
}

/// Which verifiers and files a security configuration uses.
fn security_summary(security: &SecurityConfig) -> BTreeMap<String, String> {
    let mut summary = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        if !value.is_empty() {
            summary.insert(key.to_owned(), value);
        }
    };
    put(
        "require_authentication",
        security.require_authentication.to_string(),
    );
    put("api_tokens_file", security.api_tokens_file.clone());
    put("api_tokens_env", security.api_tokens_env.clone());
    if let Some(jwt) = &security.jwt {
        put("jwt.public_key_files", jwt.public_key_files.join(","));
        put("jwt.jwks_file", jwt.jwks_file.clone());
        put("jwt.issuer", jwt.issuer.clone());
        put("jwt.audiences", jwt.audiences.join(","));
    }
    if let Some(credentials) = &security.default_credentials {
        put(
            "default_credentials.principal",
            credentials.principal.clone(),
        );
    }
    if let Some(authorization) = &security.authorization {
        put(
            "authorization.policy_files",
            authorization.policy_files.join(","),
        );
    }
    if let Some(audit) = &security.audit {
        put("audit.hmac_key_file", audit.hmac_key_file.clone());
        put("audit.fail_open", audit.fail_open.to_string());
    }
    summary
}

/// How each record's hash is made.
pub enum Chain {
    Sha256,
    Hmac(Zeroizing<Vec<u8>>),
}

impl Chain {
    /// The chain of `key_file`: HMAC with its key, plain SHA-256 without one.
    pub fn from_key_file(key_file: Option<&Path>) -> Result<Chain> {
        let Some(path) = key_file else {
            return Ok(Chain::Sha256);
        };
        let key = Zeroizing::new(std::fs::read(path).map_err(|e| {
            HmsError::invalid_argument(format!(
                "cannot read the audit HMAC key file {}: {e}",
                path.display()
            ))
            .with_detail("field", "security.audit.hmac_key_file")
        })?);
        if key.len() < MIN_KEY_BYTES {
            return Err(HmsError::invalid_argument(format!(
                "the audit HMAC key file {} holds {} bytes; a key needs at least {MIN_KEY_BYTES}",
                path.display(),
                key.len()
            ))
            .with_detail("field", "security.audit.hmac_key_file"));
        }
        Ok(Chain::Hmac(key))
    }

    fn link(&self, prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
        match self {
            Chain::Sha256 => Sha256::new()
                .chain_update(prev)
                .chain_update(canonical)
                .finalize()
                .into(),
            Chain::Hmac(key) => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
                mac.update(prev);
                mac.update(canonical);
                mac.finalize().into_bytes().into()
            }
        }
    }
}

/// A record as it is stored, its fields in this order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    seq: u64,
    time: String,
    kind: AuditKind,
    runtime: String,
    transport: String,
    principal: String,
    method: String,
    resource: String,
    decision: String,
    status: i32,
    trace_id: String,
    details: BTreeMap<String, String>,
    prev: String,
    /// Read back, never serialised: `render` appends it after the
    /// canonical bytes it covers.
    #[serde(default, skip_serializing)]
    hash: Option<String>,
}

impl Entry {
    /// The record's line (no newline) and hash under `chain`, from its
    /// canonical bytes: its JSON without the hash.
    fn render(&self, prev: &[u8; 32], chain: &Chain) -> (Vec<u8>, [u8; 32]) {
        let mut line = serde_json::to_vec(self).expect("an audit entry always serialises");
        let hash = chain.link(prev, &line);
        line.pop();
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(hex(&hash).as_bytes());
        line.extend_from_slice(b"\"}");
        (line, hash)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    crate::security::hex_decode(text)?.try_into().ok()
}

/// A runtime's audit log.
pub struct Audit {
    runtime: String,
    chain: Chain,
    fail_open: bool,
    sync_each_record: bool,
    sink: Mutex<Sink>,
}

struct Sink {
    seq: u64,
    prev: [u8; 32],
    target: Target,
}

enum Target {
    File {
        file: File,
        path: PathBuf,
        /// Its length after the last record written, to cut a write that
        /// failed halfway back off.
        len: u64,
    },
    Memory {
        bytes: Vec<u8>,
        /// The offset of `bytes[0]` in the log: records dropped before it.
        base: u64,
        /// The hash before the first record kept, to verify from there.
        anchor: [u8; 32],
    },
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("path", &self.path())
            .field("hmac", &matches!(self.chain, Chain::Hmac(_)))
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Opens (or continues) the log in `data_dir`, in memory without one.
    /// A log whose last record is cut short or does not verify is refused:
    /// continuing it would fork the chain silently.
    pub fn open(settings: &AuditSettings, data_dir: Option<&Path>, runtime: &str) -> Result<Audit> {
        let chain = Chain::from_key_file(settings.hmac_key_file.as_deref())?;
        let (seq, prev, target) = match data_dir {
            None => (
                0,
                GENESIS,
                Target::Memory {
                    bytes: Vec::new(),
                    base: 0,
                    anchor: GENESIS,
                },
            ),
            Some(dir) => {
                let path = dir.join(&settings.file_name);
                let (file, len, seq, prev) = open_log(&path, &chain)?;
                (seq, prev, Target::File { file, path, len })
            }
        };
        Ok(Audit {
            runtime: runtime.to_owned(),
            chain,
            fail_open: settings.fail_open,
            sync_each_record: settings.sync_each_record,
            sink: Mutex::new(Sink { seq, prev, target }),
        })
    }

    /// The log's file; `None` in memory.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.sink.lock().target {
            Target::File { path, .. } => Some(path.clone()),
            Target::Memory { .. } => None,
        }
    }

    /// Appends `record` with one write before returning. A write that
    /// fails fails the call HMS_UNAVAILABLE, naming the log and the OS
    /// error, unless the log is configured to fail open.
    pub fn record(&self, record: AuditRecord) -> Result<()> {
        let mut sink = self.sink.lock();
        let entry = Entry {
            seq: sink.seq + 1,
            time: crate::events::now().to_string(),
            kind: record.kind,
            runtime: self.runtime.clone(),
            transport: if record.remote { "remote" } else { "local" }.to_owned(),
            principal: record.principal,
            method: record.method,
            resource: record.resource,
            decision: record.decision,
            status: record.status.as_i32(),
            trace_id: record.trace_id,
            details: record.details,
            prev: hex(&sink.prev),
            hash: None,
        };
        let (mut line, hash) = entry.render(&sink.prev, &self.chain);
        line.push(b'\n');
        let sync = self.sync_each_record;
        let (written, error) = sink.target.append(&line, sync);
        if written {
            sink.seq += 1;
            sink.prev = hash;
        }
        match error {
            Some(error) if !self.fail_open => {
                let log = match &sink.target {
                    Target::File { path, .. } => path.display().to_string(),
                    Target::Memory { .. } => "in memory".to_owned(),
                };
                Err(HmsError::new(
                    Code::Unavailable,
                    format!(
                        "cannot write the audit log {log}: {error}; the call is refused \
                         (security.audit.fail_open lets calls go on unrecorded)"
                    ),
                )
                .with_detail("audit_log", log)
                .with_origin("audit"))
            }
            _ => Ok(()),
        }
    }

    /// Checks this runtime's own log.
    pub fn verify(&self) -> Result<VerifyResponse> {
        let sink = self.sink.lock();
        match &sink.target {
            Target::File { path, .. } => {
                let path = path.clone();
                drop(sink);
                verify_file(&path, &self.chain)
            }
            Target::Memory { bytes, anchor, .. } => Ok(verify_bytes(bytes, &self.chain, *anchor)),
        }
    }

    /// Complete records of this runtime's own log from `offset` on.
    pub fn read(&self, offset: u64, max_records: u32) -> Result<ReadResponse> {
        let sink = self.sink.lock();
        match &sink.target {
            Target::File { path, .. } => {
                let path = path.clone();
                drop(sink);
                read_file(&path, offset, max_records)
            }
            Target::Memory { bytes, base, .. } => {
                let start = offset.saturating_sub(*base) as usize;
                if start > bytes.len() {
                    return Err(offset_error(offset, *base + bytes.len() as u64));
                }
                let (records, used) = complete_lines(&bytes[start..], max_records)?;
                Ok(ReadResponse {
                    records,
                    next_offset: base + (start + used) as u64,
                })
            }
        }
    }
}

impl Target {
    /// Whether `line` is now in the log, and what went wrong if anything.
    fn append(&mut self, line: &[u8], sync: bool) -> (bool, Option<std::io::Error>) {
        match self {
            Target::File { file, len, .. } => {
                if let Err(error) = file.write_all(line) {
                    // A write cut short would glue the next record onto a
                    // torn one; what is not taken back shows as a cut record.
                    let _ = file.set_len(*len);
                    return (false, Some(error));
                }
                *len += line.len() as u64;
                let synced = if sync { file.sync_data().err() } else { None };
                (true, synced)
            }
            Target::Memory {
                bytes,
                base,
                anchor,
            } => {
                if bytes.len() + line.len() > MEMORY_LOG_BYTES {
                    drop_oldest_half(bytes, base, anchor);
                }
                bytes.extend_from_slice(line);
                (true, None)
            }
        }
    }
}

/// Drops the older half of an in-memory log, whole records only, keeping
/// the hash the first kept record chains to.
fn drop_oldest_half(bytes: &mut Vec<u8>, base: &mut u64, anchor: &mut [u8; 32]) {
    let half = bytes.len() / 2;
    let Some(cut) = bytes[half..].iter().position(|b| *b == b'\n') else {
        return;
    };
    let cut = half + cut + 1;
    let last_dropped = bytes[..cut - 1]
        .rsplit(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    if let Some(hash) = serde_json::from_slice::<Entry>(last_dropped)
        .ok()
        .and_then(|e| e.hash)
        .and_then(|h| unhex32(&h))
    {
        *anchor = hash;
    }
    bytes.drain(..cut);
    *base += cut as u64;
}

fn log_error(path: &Path, action: &str, error: std::io::Error) -> HmsError {
    HmsError::new(
        Code::Unavailable,
        format!("cannot {action} the audit log {}: {error}", path.display()),
    )
    .with_detail("audit_log", path.display().to_string())
    .with_origin("audit")
}

/// Opens `path` for appending, with the sequence number and hash of its
/// last record. No second runtime writes to it: the store holds the
/// data_dir's lock.
fn open_log(path: &Path, chain: &Chain) -> Result<(File, u64, u64, [u8; 32])> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| log_error(path, "open", e))?;
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| log_error(path, "read", e))?;
    if len == 0 {
        return Ok((file, 0, 0, GENESIS));
    }
    let (last, line) = last_line(&mut file, len).map_err(|e| log_error(path, "read", e))?;
    let refuse = |why: String| {
        HmsError::new(
            Code::DataLoss,
            format!(
                "the audit log {} {why}; it is not continued, so its chain is never forked \
                 silently: check it with `hms audit verify {}` and move it aside to start a new log",
                path.display(),
                path.display()
            ),
        )
        .with_detail("audit_log", path.display().to_string())
        .with_detail("line", line)
    };
    let Some(last) = last else {
        return Err(refuse(format!(
            "ends in a record cut short (line {line} has no newline)"
        )));
    };
    let entry = serde_json::from_slice::<Entry>(&last).map_err(|e| {
        refuse(format!(
            "ends in a line that is not a record (line {line}: {e})"
        ))
    })?;
    match unhex32(&entry.prev).map(|prev| entry.render(&prev, chain)) {
        Some((rendered, hash)) if rendered == last => Ok((file, len, entry.seq, hash)),
        _ => Err(refuse(format!(
            "ends in a record (line {line}) whose hash does not verify{}",
            match chain {
                Chain::Hmac(_) => " with the configured HMAC key (security.audit.hmac_key_file)",
                Chain::Sha256 => " (was it written with an HMAC key?)",
            }
        ))),
    }
}

/// The last line of a file of `len` bytes, without its newline (`None`
/// when it has none: cut short), and its line number.
fn last_line(file: &mut File, len: u64) -> std::io::Result<(Option<Vec<u8>>, u64)> {
    let mut tail = Vec::new();
    let mut start = len;
    loop {
        let from = start.saturating_sub(TAIL_CHUNK);
        let mut chunk = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if start == 0 || body.contains(&b'\n') {
            break;
        }
    }
    let complete = tail.ends_with(b"\n");
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let begins = body
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    let line = body[begins..].to_vec();
    // The line number needs the whole file; counted only on start.
    file.seek(SeekFrom::Start(0))?;
    let mut newlines = 0u64;
    let mut buffer = vec![0; 1 << 16];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        newlines += buffer[..read].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let line_number = if complete { newlines } else { newlines + 1 };
    Ok((complete.then_some(line), line_number))
}

/// Checks the log at `path` under `chain`.
pub fn verify_file(path: &Path, chain: &Chain) -> Result<VerifyResponse> {
    let bytes = std::fs::read(path).map_err(|e| log_error(path, "read", e))?;
    Ok(verify_bytes(&bytes, chain, GENESIS))
}

/// Checks a whole log whose first record chains to `anchor`.
pub fn verify_bytes(bytes: &[u8], chain: &Chain, anchor: [u8; 32]) -> VerifyResponse {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // Text after the last newline is a record cut short; none is "".
    let cut = lines.pop().filter(|rest| !rest.is_empty());
    let parsed: Vec<Option<Entry>> = lines
        .iter()
        .map(|line| serde_json::from_slice(line).ok())
        .collect();
    let mut response = VerifyResponse::default();
    let mut prev = anchor;
    let mut expected = parsed
        .first()
        .and_then(|e| e.as_ref())
        .filter(|_| anchor != GENESIS)
        .map_or(1, |e| e.seq);
    let broken = |tamper: Tamper, line: usize, sequence: u64, message: String| Break {
        sequence,
        line: line as u64 + 1,
        tamper: tamper as i32,
        message,
    };
    for (index, (raw, entry)) in lines.iter().zip(&parsed).enumerate() {
        let Some(entry) = entry else {
            let tamper = if raw.ends_with(b"}") {
                Tamper::Edited
            } else {
                Tamper::Truncated
            };
            response.first_break = Some(broken(
                tamper,
                index,
                expected,
                "the line is not an audit record".into(),
            ));
            return response;
        };
        if let Some(problem) = check_own_hash(raw, entry, chain) {
            response.first_break = Some(broken(Tamper::Edited, index, expected, problem));
            return response;
        }
        if entry.seq != expected {
            let later = parsed[index + 1..]
                .iter()
                .flatten()
                .any(|e| e.seq == expected);
            let (tamper, message) = if entry.seq < expected || later {
                (
                    Tamper::Reordered,
                    format!(
                        "record {} stands where record {expected} belongs",
                        entry.seq
                    ),
                )
            } else {
                let missing = if entry.seq - 1 == expected {
                    format!("record {expected} is")
                } else {
                    format!("records {expected} to {} are", entry.seq - 1)
                };
                (
                    Tamper::Removed,
                    format!("{missing} missing before record {}", entry.seq),
                )
            };
            response.first_break = Some(broken(tamper, index, expected, message));
            return response;
        }
        if entry.prev != hex(&prev) {
            response.first_break = Some(broken(
                Tamper::Edited,
                index,
                expected,
                format!(
                    "its prev is not the hash of record {}: this record or the one before was \
                     rewritten",
                    expected - 1
                ),
            ));
            return response;
        }
        prev = entry.hash.as_deref().and_then(unhex32).unwrap_or_default();
        response.records += 1;
        response.last_sequence = entry.seq;
        response.last_hash = hex(&prev);
        expected += 1;
    }
    if cut.is_some() {
        response.first_break = Some(broken(
            Tamper::Truncated,
            lines.len(),
            expected,
            "the last record is cut short (no newline)".into(),
        ));
    }
    response
}

/// Why `raw` is not the record `entry` under `chain`, if it is not.
fn check_own_hash(raw: &[u8], entry: &Entry, chain: &Chain) -> Option<String> {
    let Some(prev) = unhex32(&entry.prev) else {
        return Some("its prev is not a SHA-256 in hex".into());
    };
    if entry.render(&prev, chain).0 == raw {
        return None;
    }
    if matches!(chain, Chain::Hmac(_)) && entry.render(&prev, &Chain::Sha256).0 == raw {
        return Some(
            "its hash is a plain SHA-256, not the HMAC of the key: the chain was recomputed \
             without the key"
                .into(),
        );
    }
    Some(
        match chain {
            Chain::Hmac(_) => "its bytes are not the ones its HMAC covers (edited, or another key)",
            Chain::Sha256 => {
                "its bytes are not the ones its hash covers (edited, or written with an HMAC key)"
            }
        }
        .into(),
    )
}

fn offset_error(offset: u64, end: u64) -> HmsError {
    HmsError::new(
        Code::OutOfRange,
        format!("offset {offset} is past the end of the audit log ({end} bytes): was it replaced?"),
    )
    .with_detail("field", "offset")
}

/// Complete records of the log at `path` from byte `offset` on.
pub fn read_file(path: &Path, offset: u64, max_records: u32) -> Result<ReadResponse> {
    let mut file = File::open(path).map_err(|e| log_error(path, "read", e))?;
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| log_error(path, "read", e))?;
    if offset > len {
        return Err(offset_error(offset, len));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| log_error(path, "read", e))?;
    let mut bytes = Vec::new();
    file.take(READ_CHUNK)
        .read_to_end(&mut bytes)
        .map_err(|e| log_error(path, "read", e))?;
    let (records, used) = complete_lines(&bytes, max_records)?;
    if records.is_empty() && bytes.len() as u64 == READ_CHUNK {
        return Err(HmsError::new(
            Code::OutOfRange,
            format!(
                "the record at offset {offset} of {} is over {READ_CHUNK} bytes: not a record \
                 this runtime writes",
                path.display()
            ),
        ));
    }
    Ok(ReadResponse {
        records,
        next_offset: offset + used as u64,
    })
}

/// Most bytes one Read takes from a file.
const READ_CHUNK: u64 = 1 << 20;

/// The complete lines at the start of `bytes` (at most `max_records`), and
/// how many bytes they take with their newlines.
fn complete_lines(bytes: &[u8], max_records: u32) -> Result<(Vec<String>, usize)> {
    let most = match max_records {
        0 => MAX_READ_RECORDS,
        n => n.min(MAX_READ_RECORDS),
    } as usize;
    let mut records = Vec::new();
    let mut used = 0;
    while records.len() < most {
        let Some(end) = bytes[used..].iter().position(|b| *b == b'\n') else {
            break;
        };
        let line = &bytes[used..used + end];
        records.push(String::from_utf8_lossy(line).into_owned());
        used += end + 1;
    }
    Ok((records, used))
}
