//! `hms.test.v1.Faults` (feature `fault-injection`, test builds only):
//! methods that panic inside the core on purpose.
//!
//! `Panic` panics before answering. `PanicWhileAnswering` first grows the
//! caller's response buffer (so its memory moves) and then panics, which is
//! the case where a careless boundary would leave the caller's `hms_buf`
//! pointing at freed memory. Both take and return any value (untyped).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::proto::v1::{MethodDescriptor, ServiceDescriptor};
use crate::registry::{BuiltinFn, Implementation, Method, Registry, Service};

pub const SERVICE: &str = "hms.test.v1.Faults";

/// Bytes written before `PanicWhileAnswering` panics: more than any reused
/// buffer of a test holds, so the memory is reallocated first.
const BYTES_BEFORE_PANIC: usize = 1 << 20;

pub fn register(registry: &Registry) -> Result<()> {
    let panics: BuiltinFn =
        Arc::new(|context, _, _, _| panic!("fault injected by {} on purpose", context.method));
    let panics_while_answering: BuiltinFn = Arc::new(|context, _, _, out| {
        out.resize(out.len() + BYTES_BEFORE_PANIC, 0xAB);
        panic!(
            "fault injected by {} after writing {BYTES_BEFORE_PANIC} bytes",
            context.method
        )
    });
    let mut methods = HashMap::new();
    let mut descriptor = ServiceDescriptor {
        name: SERVICE.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        methods: Vec::new(),
        origin: "builtin".into(),
        description: "Test builds only: methods that panic inside the core".into(),
        served_by: Vec::new(),
    };
    for (name, function) in [
        ("Panic", panics),
        ("PanicWhileAnswering", panics_while_answering),
    ] {
        descriptor.methods.push(MethodDescriptor {
            name: name.to_owned(),
            ..Default::default()
        });
        methods.insert(
            name.to_owned(),
            Arc::new(Method::new(
                name,
                None,
                None,
                Implementation::Builtin(function),
            )?),
        );
    }
    registry.insert(Service {
        descriptor,
        methods,
    })?;
    Ok(())
}
