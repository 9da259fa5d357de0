//! HMS FFI core: the HMS agent platform implemented once, behind the C ABI
//! declared in `include/hms_ffi.h`.
//!
//! Everything outside [`ffi`] is safe Rust; `ffi` only converts arguments,
//! calls into these modules and converts results.
#![deny(unsafe_code)]

pub mod codec;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod handles;
pub mod proto;
pub mod registry;
pub mod runtime;
pub mod schema;
pub mod services;

mod ffi;

/// Major version of the C ABI this library exports.
pub const ABI_VERSION_MAJOR: u32 = 1;
/// Minor version of the C ABI; additive changes bump it.
pub const ABI_VERSION_MINOR: u32 = 0;
/// Semantic version of the library, NUL-terminated for `hms_version()`.
pub const VERSION_NUL: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

pub use error::{Code, HmsError, Result};
