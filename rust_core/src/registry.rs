//! Services and their methods: built-in ones in Rust, host ones behind a
//! callback, all found by full method name.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};
use prost_reflect::MessageDescriptor;
use rustc_hash::FxHashMap;

use crate::codec::{self, Format, Limits};
use crate::error::{Code, HmsError, Result};
use crate::proto::v1::{CallContext, MethodDescriptor, ServiceDescriptor, Status};
use crate::runtime;
use crate::security::Principal;

/// A method implemented in Rust: decodes `request` in `format`, appends the
/// response in the same format to `out`.
pub type BuiltinFn =
    Arc<dyn Fn(&runtime::CallContext<'_>, Format, &[u8], &mut Vec<u8>) -> Result<()> + Send + Sync>;

/// The host side of a service: a binding's callback behind the C ABI.
pub trait HostHandler: Send + Sync {
    /// Runs the handler of `method`; it answers through `reply`.
    /// `method` is the short method name.
    fn invoke(&self, reply: &mut Reply, method: &CStr, format: Format, request: &[u8]);
}

/// What a host handler may read of the call it serves: owned by its
/// `Reply`, so it lives exactly as long as the handler may use the reply,
/// on whichever thread runs it.
#[derive(Debug, Default, Clone)]
pub struct HandlerCall {
    /// "package.Service/Method".
    pub method: String,
    pub deadline: Option<Instant>,
    pub metadata: BTreeMap<String, String>,
    pub trace_id: String,
    /// The verified caller, when the runtime authenticates calls.
    pub principal: Option<Arc<Principal>>,
}

impl HandlerCall {
    /// The `hms.v1.CallContext` of this call, as of now.
    pub fn to_proto(&self) -> CallContext {
        CallContext {
            method: self.method.clone(),
            metadata: self.metadata.clone(),
            trace_id: self.trace_id.clone(),
            remaining_ms: self.deadline.map(|d| millis_until(d) as u64),
            principal: self
                .principal
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default(),
            roles: self
                .principal
                .as_ref()
                .map(|p| p.roles.clone())
                .unwrap_or_default(),
            principal_attributes: self
                .principal
                .as_ref()
                .map(|p| p.attributes.clone())
                .unwrap_or_default(),
        }
    }
}

fn millis_until(deadline: Instant) -> i64 {
    deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .min(i64::MAX as u128) as i64
}

/// Where a host handler leaves its answer (`hms_reply` in C).
#[derive(Debug, Default)]
pub struct Reply {
    outcome: Option<Result<Vec<u8>>>,
    call: HandlerCall,
}

impl Reply {
    pub fn new(call: HandlerCall) -> Reply {
        Reply {
            outcome: None,
            call,
        }
    }

    /// Writes the call's `hms.v1.CallContext` in `format` to `out`.
    pub fn context(&self, format: Format, out: &mut Vec<u8>) -> Result<()> {
        codec::encode_typed(&self.call.to_proto(), format, out)
    }

    fn answer(&mut self, outcome: Result<Vec<u8>>) -> Result<()> {
        if self.outcome.is_some() {
            return Err(already_answered());
        }
        self.outcome = Some(outcome);
        Ok(())
    }

    pub fn set(&mut self, data: &[u8]) -> Result<()> {
        self.answer(Ok(data.to_vec()))
    }

    pub fn error(&mut self, code: i32, mut message: String) -> Result<()> {
        let code = match Code::from_i32(code) {
            Some(Code::Ok) | None => Code::Unknown,
            Some(code) => code,
        };
        truncate_message(&mut message);
        self.answer(Err(HmsError::new(code, message)))
    }

    /// Answers with the error of an encoded `hms.v1.Status`: its code (HMS_OK
    /// and unknown codes become UNKNOWN), message (cut as in `error`),
    /// details and origin (empty: the method's full name, set by dispatch).
    /// A status that does not decode leaves the reply unanswered.
    pub fn status(&mut self, format: Format, status: &[u8]) -> Result<()> {
        if self.outcome.is_some() {
            return Err(already_answered());
        }
        let status: Status = codec::decode_typed(format, status, &Limits::default())
            .map_err(|e| e.with_origin("hms_reply_status"))?;
        let mut error = HmsError::from_status(status);
        truncate_message(&mut error.message);
        bound_details(&mut error.details);
        self.answer(Err(error))
    }

    /// Milliseconds before the deadline: -1 without one, 0 once passed.
    pub fn remaining_ms(&self) -> i64 {
        self.call.deadline.map_or(-1, millis_until)
    }

    pub fn take(self) -> Option<Result<Vec<u8>>> {
        self.outcome
    }
}

fn already_answered() -> HmsError {
    HmsError::new(Code::FailedPrecondition, "this call was answered already")
}

/// Longest error text a handler's reply keeps. A handler that passes on
/// the error of a nested call inside its own text would otherwise double
/// it (quotes escaped again) at every level of a chain.
pub const MAX_HANDLER_MESSAGE_BYTES: usize = 16 * 1024;

fn truncate_message(message: &mut String) {
    if message.len() <= MAX_HANDLER_MESSAGE_BYTES {
        return;
    }
    let mut end = MAX_HANDLER_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = message.len() - end;
    message.truncate(end);
    message.push_str(&format!(" [{dropped} more bytes dropped]"));
}

/// Most bytes (keys plus values) of details a handler's status keeps, for
/// the same reason as [`MAX_HANDLER_MESSAGE_BYTES`]: a chain of handlers
/// passing details on must not grow every error buffer on the way.
pub const MAX_HANDLER_DETAILS_BYTES: usize = 16 * 1024;

/// The detail that counts what [`bound_details`] left out.
pub const DROPPED_DETAILS_KEY: &str = "hms.details_dropped";

/// Keeps details, in key order, while they fit [`MAX_HANDLER_DETAILS_BYTES`];
/// the count of the others goes in [`DROPPED_DETAILS_KEY`].
fn bound_details(details: &mut BTreeMap<String, String>) {
    let mut used = 0usize;
    let mut dropped = 0usize;
    details.retain(|key, value| {
        used = used.saturating_add(key.len() + value.len());
        let keep = used <= MAX_HANDLER_DETAILS_BYTES;
        dropped += usize::from(!keep);
        keep
    });
    if dropped > 0 {
        details.insert(DROPPED_DETAILS_KEY.to_owned(), dropped.to_string());
    }
}

/// A registered host service: its handler, and the calls running in it.
pub struct HostService {
    pub handler: Box<dyn HostHandler>,
    pub format: Format,
    pub caller_thread_only: bool,
    in_flight: Mutex<usize>,
    idle: Condvar,
    closed: AtomicBool,
    /// Library threads still inside this service's handler after their
    /// caller's deadline passed.
    abandoned: std::sync::atomic::AtomicUsize,
}

/// Most threads one service may leave running past their callers'
/// deadlines before its deadline calls are refused: one hung handler must
/// not use up the process-wide allowance of every other service.
pub const MAX_ABANDONED_PER_SERVICE: usize = 8;

thread_local! {
    /// The host services whose handlers run on this thread, innermost last
    /// (by address): unregistering one from inside its own handler must not
    /// wait for that handler.
    static ACTIVE_SERVICES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn service_key(service: &HostService) -> usize {
    service as *const HostService as usize
}

fn enter_service(service: &HostService) {
    ACTIVE_SERVICES.with(|active| active.borrow_mut().push(service_key(service)));
}

fn leave_service(service: &HostService) {
    let key = service_key(service);
    ACTIVE_SERVICES.with(|active| {
        let mut active = active.borrow_mut();
        if let Some(at) = active.iter().rposition(|k| *k == key) {
            active.remove(at);
        }
    });
}

/// How many handlers of `service` run on this thread.
fn frames_in_service(service: &HostService) -> usize {
    let key = service_key(service);
    ACTIVE_SERVICES.with(|active| active.borrow().iter().filter(|k| **k == key).count())
}

/// Counts one call in flight until dropped.
pub struct InFlight {
    service: Arc<HostService>,
    /// Whether the thread that runs the handler recorded it (see `run_here`).
    recorded: bool,
}

impl InFlight {
    /// Records that the handler runs on the current thread, so that
    /// unregistering the service from inside it does not wait for itself.
    /// Called on the thread that runs the handler, which also drops `self`.
    pub fn run_here(&mut self) {
        enter_service(&self.service);
        self.recorded = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.recorded {
            leave_service(&self.service);
        }
        let mut count = self.service.in_flight.lock();
        *count -= 1;
        if *count == 0 {
            self.service.idle.notify_all();
        }
    }
}

impl HostService {
    pub fn new(
        handler: Box<dyn HostHandler>,
        format: Format,
        caller_thread_only: bool,
    ) -> HostService {
        HostService {
            handler,
            format,
            caller_thread_only,
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
            closed: AtomicBool::new(false),
            abandoned: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Refuses a deadline call (which needs a library thread) while too many
    /// threads are still stuck in handlers nobody waits for.
    pub fn admit_deadline_call(&self, method: &str) -> Result<()> {
        let mine = self.abandoned.load(Ordering::Acquire);
        let all = crate::workers::abandoned_threads();
        if mine >= MAX_ABANDONED_PER_SERVICE || all >= crate::workers::MAX_ABANDONED_THREADS {
            return Err(HmsError::exhausted(format!(
                "`{method}` has a deadline, but {mine} calls of its service (at most \
                 {MAX_ABANDONED_PER_SERVICE}) and {all} of this process (at most {}) are still \
                 running in handlers after their deadline passed; they must return first",
                crate::workers::MAX_ABANDONED_THREADS
            ))
            .with_detail("abandoned_in_service", mine)
            .with_detail("abandoned_in_process", all));
        }
        Ok(())
    }

    /// A library thread's call of this service outlived its caller's deadline.
    pub fn abandon_call(&self) {
        self.abandoned.fetch_add(1, Ordering::AcqRel);
        crate::workers::abandon_thread();
    }

    /// An abandoned call's handler returned at last.
    pub fn abandoned_call_returned(&self) {
        self.abandoned.fetch_sub(1, Ordering::AcqRel);
        crate::workers::abandoned_thread_returned();
    }

    pub fn enter(self: &Arc<Self>, name: &str) -> Result<InFlight> {
        let mut count = self.in_flight.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(HmsError::new(
                Code::Unavailable,
                format!("service `{name}` is being unregistered"),
            ));
        }
        *count += 1;
        Ok(InFlight {
            service: self.clone(),
            recorded: false,
        })
    }

    /// Whether the service was unregistered (or is being unregistered).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses new calls, then waits for the calls in flight, except those
    /// running on this thread (a handler unregistering its own service),
    /// until `until` if given. Returns how many calls were still running
    /// when it stopped waiting (0: none). Those finish later on their own
    /// threads; every object they touch is reference-counted, so nothing is
    /// freed under them and their answers go to their own callers.
    pub fn close_and_wait(&self, until: Option<Instant>) -> usize {
        self.closed.store(true, Ordering::Release);
        let own = frames_in_service(self);
        let mut count = self.in_flight.lock();
        while *count > own {
            match until {
                None => self.idle.wait(&mut count),
                Some(until) => {
                    if self.idle.wait_until(&mut count, until).timed_out() {
                        return count.saturating_sub(own);
                    }
                }
            }
        }
        0
    }
}

pub enum Implementation {
    Builtin(BuiltinFn),
    Host(Arc<HostService>),
}

pub struct Method {
    pub name: String,
    /// `name` NUL-terminated, as host handlers receive it.
    pub c_name: CString,
    pub input: Option<MessageDescriptor>,
    pub output: Option<MessageDescriptor>,
    pub implementation: Implementation,
}

impl Method {
    /// Whether the service of this method was unregistered: a method handle
    /// then looks its name up again.
    pub fn is_retired(&self) -> bool {
        matches!(&self.implementation, Implementation::Host(host) if host.is_closed())
    }

    pub fn new(
        name: &str,
        input: Option<MessageDescriptor>,
        output: Option<MessageDescriptor>,
        implementation: Implementation,
    ) -> Result<Method> {
        let c_name = CString::new(name).map_err(|_| {
            HmsError::invalid_argument(format!("method name `{name}` contains NUL"))
        })?;
        Ok(Method {
            name: name.to_owned(),
            c_name,
            input,
            output,
            implementation,
        })
    }
}

pub struct Service {
    pub descriptor: ServiceDescriptor,
    pub methods: HashMap<String, Arc<Method>>,
}

impl Service {
    pub fn is_host(&self) -> bool {
        self.descriptor.origin == "host"
    }
}

/// The services of one runtime, by full name.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    services: HashMap<String, Arc<Service>>,
    /// Every method by full name ("pkg.Service/Method"): one hash lookup per
    /// call on the hot path.
    methods: FxHashMap<String, Arc<Method>>,
}

fn full_method_name(service: &str, method: &str) -> String {
    format!("{service}/{method}")
}

/// Splits "package.Service/Method" (a leading '/' is allowed, as in gRPC).
pub fn split_method(full: &str) -> Result<(&str, &str)> {
    let trimmed = full.strip_prefix('/').unwrap_or(full);
    match trimmed.rsplit_once('/') {
        Some((service, method)) if !service.is_empty() && !method.is_empty() => {
            Ok((service, method))
        }
        _ => Err(HmsError::invalid_argument(format!(
            "method `{full}` is not a full name like \"package.Service/Method\""
        ))
        .with_detail("method", full)),
    }
}

impl Registry {
    pub fn insert(&self, service: Service) -> Result<Arc<Service>> {
        let mut inner = self.inner.write();
        let name = service.descriptor.name.clone();
        if inner.services.contains_key(&name) {
            return Err(HmsError::new(
                Code::AlreadyExists,
                format!("a service named `{name}` is registered already"),
            )
            .with_detail("service", name));
        }
        for (method_name, method) in &service.methods {
            inner
                .methods
                .insert(full_method_name(&name, method_name), method.clone());
        }
        let service = Arc::new(service);
        inner.services.insert(name, service.clone());
        Ok(service)
    }

    /// Removes `name` if it is still `expected`.
    pub fn remove(&self, name: &str, expected: &Arc<Service>) -> bool {
        let mut inner = self.inner.write();
        match inner.services.get(name) {
            Some(current) if Arc::ptr_eq(current, expected) => {
                inner.services.remove(name);
                for method_name in expected.methods.keys() {
                    inner.methods.remove(&full_method_name(name, method_name));
                }
                true
            }
            _ => false,
        }
    }

    pub fn method(&self, full: &str) -> Result<Arc<Method>> {
        let key = full.strip_prefix('/').unwrap_or(full);
        let inner = self.inner.read();
        if let Some(method) = inner.methods.get(key) {
            return Ok(method.clone());
        }
        // Not found: work out which part is missing for the error.
        let (service_name, method_name) = split_method(full)?;
        if !inner.services.contains_key(service_name) {
            return Err(
                HmsError::not_found(format!("no service named `{service_name}`"))
                    .with_detail("service", service_name),
            );
        }
        Err(HmsError::not_found(format!(
            "service `{service_name}` has no method `{method_name}`"
        ))
        .with_detail("service", service_name)
        .with_detail("method", method_name))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Service>> {
        self.inner.read().services.get(name).cloned()
    }

    /// Descriptors of every service whose name starts with `prefix`, by name.
    pub fn list(&self, prefix: &str) -> Vec<ServiceDescriptor> {
        let mut list: Vec<ServiceDescriptor> = self
            .inner
            .read()
            .services
            .values()
            .filter(|s| s.descriptor.name.starts_with(prefix))
            .map(|s| s.descriptor.clone())
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    pub fn len(&self) -> usize {
        self.inner.read().services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A host method with its input and output types resolved (`None`: untyped).
pub type ResolvedMethod = (
    MethodDescriptor,
    Option<MessageDescriptor>,
    Option<MessageDescriptor>,
);

/// Checks a service descriptor from a host and resolves its types.
pub fn validate_descriptor(descriptor: &ServiceDescriptor) -> Result<Vec<ResolvedMethod>> {
    let name = &descriptor.name;
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !part.starts_with(|c: char| c.is_ascii_digit())
            })
    };
    if !valid_name(name) {
        return Err(HmsError::invalid_argument(format!(
            "service name `{name}` is not a dotted identifier like \"demo.v1.Greeter\""
        ))
        .with_detail("service", name));
    }
    if descriptor.methods.is_empty() {
        return Err(
            HmsError::invalid_argument(format!("service `{name}` declares no methods"))
                .with_detail("service", name),
        );
    }
    let mut seen = std::collections::HashSet::new();
    descriptor
        .methods
        .iter()
        .map(|method| {
            if !valid_name(&method.name) || method.name.contains('.') {
                return Err(HmsError::invalid_argument(format!(
                    "method name `{}` of `{name}` is not an identifier",
                    method.name
                ))
                .with_detail("method", &method.name));
            }
            if !seen.insert(method.name.clone()) {
                return Err(HmsError::invalid_argument(format!(
                    "method `{}` of `{name}` is declared twice",
                    method.name
                ))
                .with_detail("method", &method.name));
            }
            if method.input_type.is_empty() != method.output_type.is_empty() {
                return Err(HmsError::invalid_argument(format!(
                    "method `{}` of `{name}` names only one of input_type and output_type: give both or neither",
                    method.name
                ))
                .with_detail("method", &method.name));
            }
            let resolve = |type_name: &str| {
                if type_name.is_empty() {
                    Ok(None)
                } else {
                    crate::schema::message_descriptor(type_name).map(Some)
                }
            };
            Ok((method.clone(), resolve(&method.input_type)?, resolve(&method.output_type)?))
        })
        .collect()
}
