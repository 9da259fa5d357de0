//! The process-wide pool of message types: the built-in schemas plus every
//! FileDescriptorSet a host registers.

use std::sync::LazyLock;

use parking_lot::RwLock;
use prost::Message;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::error::{HmsError, Result};
use crate::proto::DESCRIPTOR_SET;

static POOL: LazyLock<RwLock<DescriptorPool>> = LazyLock::new(|| {
    let pool = DescriptorPool::decode(DESCRIPTOR_SET).expect("built-in descriptors are valid");
    RwLock::new(pool)
});

/// The descriptor of a message type, by full name ("hms.sys.v1.EchoRequest").
pub fn message_descriptor(name: &str) -> Result<MessageDescriptor> {
    let name = name.strip_prefix('.').unwrap_or(name);
    POOL.read().get_message_by_name(name).ok_or_else(|| {
        HmsError::not_found(format!(
            "unknown message type `{name}`: register its schema first (hms_schema_register)"
        ))
        .with_detail("type", name)
    })
}

/// Adds the files of a protobuf-encoded FileDescriptorSet; files already
/// known with the same content are skipped.
pub fn register(bytes: &[u8]) -> Result<usize> {
    let set = FileDescriptorSet::decode(bytes)
        .map_err(|e| HmsError::decode(format!("not a FileDescriptorSet: {e}")))?;
    let mut pool = POOL.write();
    let mut candidate = pool.clone();
    let mut added = 0;
    for file in set.file {
        let name = file.name().to_owned();
        if let Some(known) = candidate.get_file_by_name(&name) {
            if normalized(known.file_descriptor_proto().clone()) == normalized(file.clone()) {
                continue;
            }
            return Err(HmsError::invalid_argument(format!(
                "schema file `{name}` is already registered with different content"
            ))
            .with_detail("file", name));
        }
        candidate.add_file_descriptor_proto(file).map_err(|e| {
            HmsError::invalid_argument(format!("schema file `{name}` is invalid: {e}"))
                .with_detail("file", name.clone())
        })?;
        added += 1;
    }
    *pool = candidate;
    Ok(added)
}

/// The descriptor of a service of the pool ("hms.sys.v1.System").
pub fn service_descriptor(name: &str) -> Result<prost_reflect::ServiceDescriptor> {
    POOL.read().get_service_by_name(name).ok_or_else(|| {
        HmsError::not_found(format!("unknown service schema `{name}`")).with_detail("service", name)
    })
}

/// A file as compared for "same content": the pool fills in `json_name`
/// when it adds a file, which compilers may or may not have written.
fn normalized(mut file: FileDescriptorProto) -> FileDescriptorProto {
    fn clear(message: &mut DescriptorProto) {
        for field in message.field.iter_mut().chain(message.extension.iter_mut()) {
            field.json_name = None;
        }
        message.nested_type.iter_mut().for_each(clear);
    }
    file.message_type.iter_mut().for_each(clear);
    for field in &mut file.extension {
        field.json_name = None;
    }
    file.source_code_info = None;
    file
}
