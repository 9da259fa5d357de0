//! Compiles include/proto/hms/** with protox (pure Rust, so no protoc is
//! needed), generates prost types, and saves the FileDescriptorSet that
//! drives the descriptor-based codecs at run time.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../include/proto");
    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rerun-if-changed={}", proto_root.display());
    println!("cargo:rerun-if-env-changed=HMS_FFI_TEST_ABI_MAJOR");
    println!("cargo:rerun-if-env-changed=HMS_FFI_TEST_ABI_MINOR");
    set_soname()?;

    let descriptors = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("hms_descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    prost_build::Config::new()
        .enable_type_names()
        // Ordered maps: encoding a message twice gives the same bytes.
        .btree_map(["."])
        .bytes(["."])
        // Its Debug is written by hand (src/proto.rs) so a token never
        // reaches a log or an error.
        .skip_debug(["hms.v1.Credentials"])
        .compile_fds(descriptors)?;
    Ok(())
}

/// Gives the Linux shared library the soname `libhms_ffi.so.<major>`, so a
/// program linked today records that name and keeps loading every later
/// 1.x, while an incompatible 2.0 installs beside it instead of replacing it.
/// The major is the crate's (the ABI major); `make install` lays out the
/// matching `libhms_ffi.so.<version>` and its symlinks.
fn set_soname() -> Result<(), std::env::VarError> {
    if std::env::var("CARGO_CFG_TARGET_OS")? == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR")?;
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhms_ffi.so.{major}");
    }
    Ok(())
}

fn collect_protos(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
