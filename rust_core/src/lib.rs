//! HMS FFI core: the HMS agent platform implemented once, behind the C ABI
//! declared in `include/hms_ffi.h`.
//!
//! Everything outside [`ffi`] is safe Rust; `ffi` only converts arguments,
//! calls into these modules and converts results.
#![deny(unsafe_code)]

pub mod audit;
pub mod authz;
pub mod batch;
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
pub mod security;
pub mod services;
pub mod transport;
pub mod workers;

mod ffi;

/// Major version of the C ABI this library exports.
pub const ABI_VERSION_MAJOR: u32 = abi_version_part(option_env!("HMS_FFI_TEST_ABI_MAJOR"), 1);
/// Minor version of the C ABI; additive changes bump it.
pub const ABI_VERSION_MINOR: u32 = abi_version_part(option_env!("HMS_FFI_TEST_ABI_MINOR"), 4);

/// The real version part, unless a test build (built with
/// HMS_FFI_TEST_ABI_MAJOR/MINOR set, into its own target dir) pretends to be
/// another version so that every binding's refusal can be tested.
const fn abi_version_part(test_override: Option<&str>, real: u32) -> u32 {
    let Some(text) = test_override else {
        return real;
    };
    let bytes = text.as_bytes();
    let mut value = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        assert!(
            bytes[i].is_ascii_digit(),
            "HMS_FFI_TEST_ABI_* must be a number"
        );
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}
/// Semantic version of the library, NUL-terminated for `hms_version()`.
pub const VERSION_NUL: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

pub use error::{Code, HmsError, Result};
