//! Built-in services. Each one's method list comes from its `.proto`
//! service definition, so listings and the schema never disagree.

mod domain;
mod registry;
mod system;

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use crate::codec;
use crate::error::{HmsError, Result};
use crate::proto::v1::{MethodDescriptor, ServiceDescriptor};
use crate::registry::{BuiltinFn, Implementation, Method, Registry, Service};
use crate::runtime::CallContext;
use crate::schema;

/// Wraps a typed Rust function as a method of any format.
pub fn unary<Req, Resp, F>(function: F) -> BuiltinFn
where
    Req: Message + Default + prost::Name,
    Resp: Message + prost::Name,
    F: Fn(&CallContext<'_>, Req) -> Result<Resp> + Send + Sync + 'static,
{
    Arc::new(move |context, format, request, out| {
        let request: Req = codec::decode_typed(format, request, context.runtime.limits())?;
        let response = function(context, request)?;
        // The runtime's JSON names and size limit apply to the response.
        let start = out.len();
        codec::encode_typed_within(&response, format, context.runtime.limits(), out)
            .inspect_err(|_| out.truncate(start))
    })
}

/// Registers `service_name` (a service of the built-in schemas) with one
/// implementation per method of its definition.
pub fn register_builtin(
    registry: &Registry,
    service_name: &str,
    description: &str,
    implementations: Vec<(&str, BuiltinFn)>,
) -> Result<()> {
    let service_desc = schema::service_descriptor(service_name)?;
    let mut by_name: HashMap<&str, BuiltinFn> = implementations.into_iter().collect();
    let mut methods = HashMap::new();
    let mut descriptor = ServiceDescriptor {
        name: service_name.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        methods: Vec::new(),
        origin: "builtin".into(),
        description: description.to_owned(),
    };
    for method in service_desc.methods() {
        let implementation = by_name.remove(method.name()).ok_or_else(|| {
            HmsError::new(
                crate::Code::Internal,
                format!(
                    "built-in method {service_name}/{} has no implementation",
                    method.name()
                ),
            )
        })?;
        descriptor.methods.push(MethodDescriptor {
            name: method.name().to_owned(),
            input_type: method.input().full_name().to_owned(),
            output_type: method.output().full_name().to_owned(),
        });
        methods.insert(
            method.name().to_owned(),
            Arc::new(Method::new(
                method.name(),
                Some(method.input()),
                Some(method.output()),
                Implementation::Builtin(implementation),
            )?),
        );
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(HmsError::new(
            crate::Code::Internal,
            format!("{service_name} implements `{extra}`, which its schema does not declare"),
        ));
    }
    registry.insert(Service {
        descriptor,
        methods,
    })?;
    Ok(())
}

pub fn register_builtins(registry: &Registry) -> Result<()> {
    system::register(registry)?;
    registry::register(registry)?;
    domain::register(registry)
}
