//! Built-in services. Each one's method list comes from its `.proto`
//! service definition, so listings and the schema never disagree.

pub mod audit;
mod domain;
#[cfg(feature = "fault-injection")]
mod faults;
mod registry;
mod system;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use prost::Message;

use crate::codec::{self, Format, Limits};
use crate::domain::Admit;
use crate::error::{Code, HmsError, Result};
use crate::proto::v1::{MethodDescriptor, ServiceDescriptor};
use crate::registry::{BuiltinFn, Implementation, Method, Registry, Service};
use crate::runtime::CallContext;
use crate::schema;

/// The answer of a built-in call, written into the caller's buffer in the
/// caller's format: under the size limit and before the call's deadline, or
/// not at all.
pub struct Answer<'a> {
    out: RefCell<&'a mut Vec<u8>>,
    start: usize,
    format: Format,
    limits: &'a Limits,
    deadline: Option<Instant>,
    method: &'a str,
    written: Cell<bool>,
}

impl<'a> Answer<'a> {
    fn new(context: &'a CallContext<'a>, format: Format, out: &'a mut Vec<u8>) -> Answer<'a> {
        Answer {
            start: out.len(),
            out: RefCell::new(out),
            format,
            limits: &context.settings.limits,
            deadline: context.deadline,
            method: context.method,
            written: Cell::new(false),
        }
    }

    /// Ends the call with `response` unless a change admitted it already.
    fn finish<M: Message + prost::Name>(&self, response: &M) -> Result<()> {
        if self.written.get() {
            return Ok(());
        }
        self.admit(response)
    }

    /// Takes back what was written: the call failed after all.
    fn discard(&self) {
        self.out.borrow_mut().truncate(self.start);
    }
}

impl Admit for Answer<'_> {
    fn admit<M: Message + prost::Name>(&self, answer: &M) -> Result<()> {
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() > deadline)
        {
            return Err(HmsError::new(
                Code::DeadlineExceeded,
                format!("`{}` did not finish before its deadline", self.method),
            ));
        }
        let mut out = self.out.borrow_mut();
        out.truncate(self.start);
        // On failure the call fails, and `unary` discards what was written.
        codec::encode_typed_within(answer, self.format, self.limits, &mut out)?;
        self.written.set(true);
        Ok(())
    }
}

/// Wraps a typed Rust function as a method of any format. The function may
/// admit its answer before it changes anything (see [`Admit`]); otherwise
/// its result is the answer. Either way the answer must fit the size limit
/// and come before the call's deadline, or the call fails.
pub fn unary<Req, Resp, F>(function: F) -> BuiltinFn
where
    Req: Message + Default + prost::Name,
    Resp: Message + prost::Name,
    F: Fn(&CallContext<'_>, &Answer<'_>, Req) -> Result<Resp> + Send + Sync + 'static,
{
    Arc::new(move |context, format, request, out| {
        let request: Req = codec::decode_typed(format, request, &context.settings.limits)?;
        let answer = Answer::new(context, format, out);
        function(context, &answer, request)
            .and_then(|response| answer.finish(&response))
            .inspect_err(|_| answer.discard())
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
        served_by: Vec::new(),
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
    audit::register(registry)?;
    registry::register(registry)?;
    #[cfg(feature = "fault-injection")]
    faults::register(registry)?;
    domain::register(registry)
}
