//! The header, Cargo.toml and the library agree on versions, status codes
//! and formats.

use crate::common;

use std::collections::BTreeMap;

use hms_ffi::Code;
use hms_ffi::codec::Format;
use hms_ffi::proto::hms::sys::v1::{VersionRequest, VersionResponse};

unsafe extern "C" {
    safe fn hms_abi_version() -> u32;
    safe fn hms_version() -> *const std::ffi::c_char;
}

fn read(relative: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `#define HMS_* <integer>` of the header.
fn header_defines() -> BTreeMap<String, i64> {
    let mut defines = BTreeMap::new();
    for line in read("../include/hms_ffi.h").lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        if !name.starts_with("HMS_") {
            continue;
        }
        let value = value.trim_end_matches(['u', 'U']);
        if let Ok(number) = value.parse::<i64>() {
            assert!(
                defines.insert(name.to_owned(), number).is_none(),
                "{name} is defined twice"
            );
        }
    }
    defines
}

/// `abi-major` / `abi-minor` of `[package.metadata.hms]` in Cargo.toml.
fn cargo_abi() -> (u32, u32) {
    let manifest = read("Cargo.toml");
    let mut in_section = false;
    let (mut major, mut minor) = (None, None);
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[package.metadata.hms]";
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value: u32 = value.trim().parse().expect("an integer");
            match key.trim() {
                "abi-major" => major = Some(value),
                "abi-minor" => minor = Some(value),
                _ => {}
            }
        }
    }
    (
        major.expect("[package.metadata.hms] abi-major"),
        minor.expect("[package.metadata.hms] abi-minor"),
    )
}

/// HMS_INVALID_ARGUMENT -> InvalidArgument, the name of the Code variant.
fn camel(macro_suffix: &str) -> String {
    macro_suffix
        .split('_')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn is_status_macro(name: &str) -> bool {
    !(name.starts_with("HMS_ABI_VERSION_")
        || name.starts_with("HMS_FORMAT_")
        || name.starts_with("HMS_SERVICE_")
        || name.starts_with("HMS_BATCH_"))
}

#[test]
fn header_cargo_toml_and_library_agree_on_the_abi_version() {
    let defines = header_defines();
    let header = (
        defines["HMS_ABI_VERSION_MAJOR"] as u32,
        defines["HMS_ABI_VERSION_MINOR"] as u32,
    );
    assert_eq!(header, cargo_abi(), "header vs Cargo.toml");
    assert_eq!(
        header,
        (hms_ffi::ABI_VERSION_MAJOR, hms_ffi::ABI_VERSION_MINOR),
        "header vs hms_ffi::ABI_VERSION_*"
    );
    assert_eq!(
        hms_abi_version(),
        (header.0 << 16) | header.1,
        "hms_abi_version()"
    );
}

#[test]
fn library_version_matches_the_crate_version() {
    assert_eq!(
        hms_ffi::VERSION_NUL,
        format!("{}\0", env!("CARGO_PKG_VERSION"))
    );
    // SAFETY: hms_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(hms_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));

    let rt = common::new_runtime();
    let response: VersionResponse =
        common::call(&rt, "hms.sys.v1.System/Version", &VersionRequest {}).unwrap();
    assert_eq!(response.library_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(response.abi_major, hms_ffi::ABI_VERSION_MAJOR);
    assert_eq!(response.abi_minor, hms_ffi::ABI_VERSION_MINOR);
}

#[test]
fn every_status_macro_is_a_code_with_the_same_value() {
    let defines = header_defines();
    let mut seen = 0;
    for (name, value) in defines.iter().filter(|(n, _)| is_status_macro(n)) {
        let variant = camel(name.strip_prefix("HMS_").unwrap());
        let code = Code::from_i32(*value as i32)
            .unwrap_or_else(|| panic!("{name} = {value} is not a hms_ffi::Code"));
        assert_eq!(
            format!("{code:?}"),
            variant,
            "{name} = {value} is Code::{code:?} in Rust"
        );
        assert_eq!(code.as_i32() as i64, *value);
        seen += 1;
    }
    assert_eq!(seen, Code::ALL.len(), "status macros vs Code::ALL");
}

#[test]
fn every_code_has_a_status_macro_with_the_same_value() {
    let defines = header_defines();
    for code in Code::ALL {
        let name = format!("{code:?}");
        let macro_name = defines
            .keys()
            .filter(|n| is_status_macro(n))
            .find(|n| camel(n.strip_prefix("HMS_").unwrap()) == name)
            .unwrap_or_else(|| panic!("Code::{name} has no HMS_* macro in the header"));
        assert_eq!(
            defines[macro_name], code as i32 as i64,
            "{macro_name} vs Code::{name}"
        );
        assert_eq!(Code::from_i32(code as i32), Some(code));
    }
    let mut values: Vec<i32> = Code::ALL.iter().map(|c| *c as i32).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), Code::ALL.len(), "codes are distinct");
    assert_eq!(Code::from_i32(17), None);
    assert_eq!(Code::from_i32(-1), None);
}

#[test]
fn status_codes_follow_grpc_then_the_bridge() {
    // 0..16 are gRPC's canonical codes, in gRPC's order.
    let grpc = [
        "Ok",
        "Cancelled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    for (value, name) in grpc.iter().enumerate() {
        let code = Code::from_i32(value as i32).unwrap();
        assert_eq!(format!("{code:?}"), *name);
    }
    for (value, name) in [
        (100, "InvalidHandle"),
        (101, "DecodeError"),
        (102, "HandlerError"),
        (103, "Incompatible"),
        (104, "Panic"),
    ] {
        assert_eq!(format!("{:?}", Code::from_i32(value).unwrap()), name);
    }
}

#[test]
fn format_macros_equal_codec_formats() {
    let defines = header_defines();
    let formats: BTreeMap<&str, i64> = defines
        .iter()
        .filter(|(n, _)| n.starts_with("HMS_FORMAT_"))
        .map(|(n, v)| (n.as_str(), *v))
        .collect();
    assert_eq!(formats.len(), 3, "{formats:?}");
    for (name, format) in [
        ("HMS_FORMAT_PROTOBUF", Format::Protobuf),
        ("HMS_FORMAT_CBOR", Format::Cbor),
        ("HMS_FORMAT_JSON", Format::Json),
    ] {
        assert_eq!(formats[name], format as i32 as i64, "{name}");
        assert_eq!(Format::from_i32(formats[name] as i32).unwrap(), format);
    }
    for bad in [0, 4, -1, 100] {
        let error = Format::from_i32(bad).unwrap_err();
        assert_eq!(error.code, Code::InvalidArgument);
    }
}

#[test]
fn service_flag_macros_are_zero_and_one() {
    let defines = header_defines();
    assert_eq!(defines["HMS_SERVICE_DEFAULT"], 0);
    assert_eq!(defines["HMS_SERVICE_CALLER_THREAD"], 1);
}
