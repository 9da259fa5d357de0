//! Status codes and the error type every layer returns.

use std::collections::BTreeMap;
use std::fmt;

use crate::proto::v1::Status;

/// The status codes of `hms_ffi.h`: gRPC's canonical codes, then the bridge's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
    InvalidHandle = 100,
    DecodeError = 101,
    HandlerError = 102,
    Incompatible = 103,
    Panic = 104,
}

impl Code {
    pub const ALL: [Code; 22] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
        Code::InvalidHandle,
        Code::DecodeError,
        Code::HandlerError,
        Code::Incompatible,
        Code::Panic,
    ];

    /// The code of a number, `None` for numbers the ABI does not define.
    pub fn from_i32(value: i32) -> Option<Code> {
        Code::ALL.into_iter().find(|code| *code as i32 == value)
    }

    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// An error with everything `hms.v1.Status` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmsError {
    pub code: Code,
    pub message: String,
    pub details: BTreeMap<String, String>,
    pub origin: String,
}

pub type Result<T, E = HmsError> = std::result::Result<T, E>;

impl HmsError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        HmsError {
            code,
            message: message.into(),
            details: BTreeMap::new(),
            origin: String::new(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(Code::DecodeError, message)
    }

    pub fn exhausted(message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, message)
    }

    pub fn invalid_handle(kind: &str) -> Self {
        Self::new(
            Code::InvalidHandle,
            format!("not a live {kind} handle (zero, unknown, already freed, or of another kind)"),
        )
    }

    /// Adds one machine-readable fact to `details`.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.details.insert(key.into(), value.to_string());
        self
    }

    /// Sets `origin` unless an inner layer set it already.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        if self.origin.is_empty() {
            self.origin = origin.into();
        }
        self
    }

    pub fn to_status(&self) -> Status {
        Status {
            code: self.code.as_i32(),
            message: self.message.clone(),
            details: self
                .details
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            origin: self.origin.clone(),
        }
    }

    /// The error a handler reported as a Status; unknown codes become `Unknown`.
    pub fn from_status(status: Status) -> Self {
        let code = match Code::from_i32(status.code) {
            Some(Code::Ok) | None => Code::Unknown,
            Some(code) => code,
        };
        HmsError {
            code,
            message: status.message,
            details: status.details.into_iter().collect(),
            origin: status.origin,
        }
    }
}

impl fmt::Display for HmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for HmsError {}
