//! A runtime: one registry, one event bus, the handle tables, and the
//! dispatch of every call.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::audit::{Audit, AuditKind, AuditRecord};
use crate::authz::{Authorization, CallSubject};
use crate::codec::{self, Format, Limits};
use crate::config::Settings;
use crate::domain::Domain;
use crate::error::{Code, HmsError, Result};
use crate::events::{EventBus, Filter, PushSink, Subscription};
use crate::handles::{HandleKind, HandleTable};
use crate::proto::hms::events::v1::{EventFilter, ServiceEvent, event::Payload};
use crate::proto::v1::{CallOptions, ServiceDescriptor};
use crate::registry::{
    HandlerCall, HostHandler, HostService, Implementation, InFlight, Method, Registry, Reply,
    Service,
};
use crate::security::{PUBLIC_METHODS, Principal};
use crate::transport::{PendingCall, RemoteFeed, Transport};

pub static RUNTIMES: HandleTable<Runtime> = HandleTable::new(HandleKind::Runtime);
pub static SERVICES: HandleTable<ServiceRegistration> = HandleTable::new(HandleKind::Service);
pub static SUBSCRIPTIONS: HandleTable<SubscriptionEntry> =
    HandleTable::new(HandleKind::Subscription);
pub static METHODS: HandleTable<ResolvedMethod> = HandleTable::new(HandleKind::Method);

/// What a built-in method sees of the call it serves: the call, and narrow
/// capabilities of its runtime (never the runtime itself, so a method can
/// neither free it nor reach its handles).
pub struct CallContext<'a> {
    pub method: &'a str,
    pub deadline: Option<Instant>,
    pub options: CallOptions,
    /// The runtime's configuration (limits, name, data_dir), read only.
    pub settings: &'a Settings,
    /// When the runtime started, for its uptime.
    pub started: Instant,
    /// The runtime's records.
    pub domain: &'a Domain,
    /// Where the method publishes its events.
    pub events: &'a EventBus,
    /// Service and method lookups.
    pub registry: &'a Registry,
    /// Nested calls (lifecycle hooks) through the runtime's dispatch.
    pub dispatch: &'a dyn Dispatch,
    /// The runtime's link to other runtimes, set when it has one
    /// (discovery). Passed unread, so a local call pays nothing for it.
    pub transport: &'a OnceLock<Transport>,
    /// The verified caller; `None` when the runtime verifies nothing or the
    /// call came without credentials where none are required.
    pub principal: Option<Arc<Principal>>,
    /// The runtime's policies, when it has some (ReloadPolicies).
    pub authorization: Option<&'a Authorization>,
    /// Where the call comes from: `LocalOnly` when it came in over the
    /// transport.
    pub(crate) reach: Reach<'a>,
    /// The runtime's audit log, when it keeps one.
    pub audit: Option<&'a Audit>,
}

impl CallContext<'_> {
    /// Appends `record` to the audit log (if the runtime keeps one), with
    /// this call's verified principal, method, trace id and transport
    /// filled in where the record leaves them empty.
    pub fn audit(&self, mut record: AuditRecord) -> Result<()> {
        let Some(audit) = self.audit else {
            return Ok(());
        };
        if record.principal.is_empty()
            && let Some(principal) = &self.principal
        {
            record.principal = principal.id.clone();
        }
        if record.method.is_empty() {
            record.method = self.method.to_owned();
        }
        if record.trace_id.is_empty() {
            record.trace_id = self.options.trace_id.clone();
        }
        record.remote |= self.reach.came_over_transport();
        audit.record(record)
    }
}

/// Calls made from inside a call: the runtime's dispatch, and nothing else
/// of the runtime.
pub trait Dispatch {
    /// As [`Runtime::call_with_options`].
    fn nested_call(
        &self,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
    ) -> Result<()>;

    /// Runs the blocking hook `hook_id` (calling `method`) in `runtime`,
    /// which registered it and shares this runtime's store, through the
    /// transport; the answer is appended to `out` (CBOR).
    fn remote_hook_call(
        &self,
        runtime: &str,
        hook_id: &str,
        method: &str,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
    ) -> Result<()>;
}

impl Dispatch for Arc<Runtime> {
    fn remote_hook_call(
        &self,
        runtime: &str,
        hook_id: &str,
        method: &str,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(transport) = self.transport.get() else {
            return Err(HmsError::new(
                Code::FailedPrecondition,
                format!(
                    "hook `{hook_id}` runs in runtime `{runtime}`, which shares this runtime's \
                     store, and this runtime has no transport to reach it; configure \
                     RuntimeConfig.nats on every runtime of the fleet (docs/deployment.md)"
                ),
            )
            .with_detail("runtime", runtime)
            .with_detail("hook_id", hook_id));
        };
        let _level = crate::workers::enter_call(method)?;
        let options = self.outgoing(&options);
        transport
            .send_hook(runtime, hook_id, method, Format::Cbor, request, &options)?
            .wait(self.limits(), out)
    }

    fn nested_call(
        &self,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        Runtime::call_with_options(
            self,
            method_name,
            format,
            request,
            options,
            out,
            Reach::Anywhere,
        )
    }
}

/// How a host service is registered (the flags of hms_service_register).
#[derive(Clone, Copy, Debug, Default)]
pub struct HostOptions {
    /// Its handler runs only on a host thread inside a library call.
    pub caller_thread_only: bool,
    /// Served on the runtime's transport from its registration on.
    pub export: bool,
}

/// A host service as its handle sees it.
pub struct ServiceRegistration {
    runtime: std::sync::Weak<Runtime>,
    service: Arc<Service>,
    host: Arc<HostService>,
}

/// A method looked up once (`hms_method` in C): calls through it skip the
/// name and the options.
pub struct ResolvedMethod {
    runtime: std::sync::Weak<Runtime>,
    /// `None` when the service was not registered here when the handle was
    /// made and the runtime has a transport: each call then looks the name
    /// up here first, then goes out to whichever runtime exports it.
    method: Option<Arc<Method>>,
    /// "package.Service/Method", for errors and handlers.
    full_name: String,
    pub format: Format,
}

/// A subscription as its handle sees it.
pub struct SubscriptionEntry {
    runtime: std::sync::Weak<Runtime>,
    pub subscription: Arc<Subscription>,
    /// Other runtimes' events coming in over NATS, when the filter asks for
    /// them; taken (and so stopped) by unsubscribe.
    remote: Mutex<Option<RemoteFeed>>,
}

pub struct Runtime {
    pub settings: Settings,
    pub domain: Domain,
    pub registry: Registry,
    pub events: EventBus,
    pub started: Instant,
    /// Handles of the host services and subscriptions this runtime owns.
    owned: Mutex<Vec<u64>>,
    closed: AtomicBool,
    /// Remote calls over NATS; never set without `settings.transport`, so a
    /// runtime without one starts nothing (no socket, no thread).
    transport: OnceLock<Transport>,
    /// Cedar policies deciding every call; `None` without
    /// `security.authorization`, and then every authenticated call runs.
    authorization: Option<Authorization>,
    /// The audit log (docs/security.md); `None` without one.
    pub audit: Option<Audit>,
}

impl Runtime {
    pub fn new(settings: Settings) -> Result<Arc<Runtime>> {
        let domain = Domain::open(
            &settings.store,
            settings.data_dir.as_deref(),
            settings.limits.max_message_bytes,
        )?;
        let registry = Registry::default();
        crate::services::register_builtins(&registry)?;
        let authorization = match settings
            .security
            .as_ref()
            .and_then(|s| s.authorization.as_ref())
        {
            Some(config) => {
                crate::authz::register_service(&registry)?;
                Some(Authorization::new(config, &registry, &settings.name)?)
            }
            None => None,
        };
        let audit = match &settings.audit {
            Some(audit_settings) => {
                let audit =
                    Audit::open(audit_settings, settings.data_dir.as_deref(), &settings.name)?;
                let mut started = AuditRecord::new(AuditKind::SecurityChange, "change", Code::Ok)
                    .with_detail("event", "runtime_started");
                started
                    .details
                    .extend(audit_settings.security_summary.clone());
                audit.record(started)?;
                Some(audit)
            }
            None => None,
        };
        let runtime = Arc::new(Runtime {
            audit,
            domain,
            events: EventBus::new(settings.event_queue_capacity),
            settings,
            registry,
            started: Instant::now(),
            owned: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            transport: OnceLock::new(),
            authorization,
        });
        runtime.start_transport()?;
        Ok(runtime)
    }

    fn start_transport(self: &Arc<Self>) -> Result<()> {
        let Some(settings) = self.settings.transport.clone() else {
            return Ok(());
        };
        let transport = Transport::start(settings, &self.settings.name, Arc::downgrade(self))?;
        let transport = self.transport.get_or_init(|| transport);
        self.events.set_origin(transport.identity());
        if self.domain.shares_store() {
            // Hooks live as long as their process: any listed under this
            // name are a previous one's.
            self.domain.forget_fleet_hooks(transport.identity())?;
            transport.serve_hooks()?;
        }
        if let Some(publisher) = transport.event_publisher() {
            self.events.set_sink(publisher);
        }
        for name in &transport.settings().remote_services {
            if let Some(service) = self.registry.get(name) {
                self.registry.remove(name, &service);
            }
        }
        for name in &transport.settings().export_services {
            // Built-in services are exported now; host services from
            // their registration on.
            if let Some(service) = self.registry.get(name) {
                transport.export(&service)?;
            }
        }
        Ok(())
    }

    /// The runtime's link to other runtimes; `None` when none is configured.
    pub fn transport(&self) -> Option<&Transport> {
        self.transport.get()
    }

    pub fn limits(&self) -> &Limits {
        &self.settings.limits
    }

    /// Converts one message between formats (as [`codec::convert`]) under
    /// this runtime's settings: its size and depth limits and its JSON
    /// field names.
    pub fn convert(
        &self,
        type_name: &str,
        from: Format,
        bytes: &[u8],
        to: Format,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        codec::convert(type_name, from, bytes, to, self.limits(), out)
    }

    /// Runs one call; the response in `format` is appended to `out`.
    pub fn call(
        self: &Arc<Self>,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let limits = self.limits();
        limits.check_size(request.len(), "request")?;
        let options: CallOptions = if options.is_empty() {
            CallOptions::default()
        } else {
            codec::decode_typed(format, options, limits)?
        };
        self.call_checked(method_name, format, request, options, out, Reach::Anywhere)
    }

    /// [`Runtime::call`] with options the core made itself (hooks, and
    /// calls that came in through the transport), so they are not encoded
    /// only to be decoded again. A call that came in through the transport
    /// has `Reach::LocalOnly`: it runs here or fails, and never goes out to
    /// the network again (no ping-pong between two runtimes that both lack
    /// the service).
    pub(crate) fn call_with_options(
        self: &Arc<Self>,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
        reach: Reach<'_>,
    ) -> Result<()> {
        self.limits().check_size(request.len(), "request")?;
        self.call_checked(method_name, format, request, options, out, reach)
    }

    /// `hms_serve`: runs on this thread the exported calls waiting for this
    /// runtime's caller-thread-only services (see [`Transport::serve`]).
    pub fn serve(self: &Arc<Self>, timeout: Option<Duration>) -> Result<u32> {
        let Some(transport) = self.transport.get() else {
            return Err(HmsError::new(
                Code::FailedPrecondition,
                "hms_serve runs exported calls, and this runtime has no transport to receive \
                 them; configure one with RuntimeConfig.nats.servers (docs/transport.md)",
            ));
        };
        transport.serve(self, timeout)
    }

    /// Looks `method_name` up and runs it on a request whose size was
    /// checked: here when its service is registered here, else (with
    /// `Reach::Anywhere`) through the transport.
    fn call_checked(
        self: &Arc<Self>,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
        reach: Reach<'_>,
    ) -> Result<()> {
        match self.resolve(method_name) {
            Ok(method) => self.dispatch(&method, method_name, format, request, options, out, reach),
            Err(not_here) => match self.remote_for(method_name, &not_here, reach) {
                Some(transport) => {
                    self.call_remote(transport, method_name, format, request, options, out)
                }
                None => Err(not_here),
            },
        }
    }

    /// The transport to reach `method_name` through, after the local
    /// lookup failed with `not_here`: only when a transport is configured
    /// and the service (not just the method) is missing here. A service
    /// registered here answers for all of its methods.
    fn remote_for(
        &self,
        method_name: &str,
        not_here: &HmsError,
        reach: Reach<'_>,
    ) -> Option<&Transport> {
        if reach.came_over_transport() || not_here.code != Code::NotFound {
            return None;
        }
        let transport = self.transport.get()?;
        let (service, _) = crate::registry::split_method(method_name).ok()?;
        self.registry.get(service).is_none().then_some(transport)
    }

    fn call_remote(
        &self,
        transport: &Transport,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.send_remote_call(transport, method_name, format, request, &options)?
            .wait(self.limits(), out)
    }

    /// Sends a call to the runtime that exports `method_name`, within this
    /// thread's nesting bound, without waiting for its answer (the nesting
    /// does not travel, so waiting needs no level of its own).
    fn send_remote_call(
        &self,
        transport: &Transport,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: &CallOptions,
    ) -> Result<PendingCall> {
        let (service, method) = crate::registry::split_method(method_name)?;
        let _level = crate::workers::enter_call(method_name)?;
        let options = self.outgoing(options);
        transport.send(service, method, format, request, &options)
    }

    /// `options` as they leave for another runtime: with this runtime's
    /// default credentials when they carry none.
    fn outgoing<'o>(&self, options: &'o CallOptions) -> std::borrow::Cow<'o, CallOptions> {
        match &self.settings.security {
            Some(security) => security.outgoing(options),
            None => std::borrow::Cow::Borrowed(options),
        }
    }

    fn resolve(&self, method_name: &str) -> Result<Arc<Method>> {
        if method_name.is_empty() {
            return Err(HmsError::invalid_argument(
                "method is empty: give \"package.Service/Method\"",
            ));
        }
        self.registry.method(method_name).map_err(|not_found| {
            // Registered names are dotted identifiers, so a name with a
            // control character is never found: say it is malformed, and
            // keep the scan off the path of calls that succeed.
            match method_name.find(|c: char| c.is_control()) {
                Some(at) => HmsError::invalid_argument(format!(
                    "method {method_name:?} has a control character at byte {at}: \
                     give \"package.Service/Method\""
                ))
                .with_detail("method", method_name.escape_default().to_string()),
                None => not_found.with_origin("registry"),
            }
        })
    }

    /// Runs `method`, found already, on a request whose size was checked
    /// (also an exported call of a caller-thread-only service, with the
    /// method found when it arrived, when the host's thread serves it), for
    /// the caller its credentials name.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        method: &Method,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: CallOptions,
        out: &mut Vec<u8>,
        reach: Reach<'_>,
    ) -> Result<()> {
        let principal = self
            .authenticate(method_name, &options, reach)
            .map_err(|e| e.with_origin(method_name))?;
        self.authorize(
            principal.as_ref(),
            method,
            method_name,
            format,
            request,
            reach,
            &options.trace_id,
        )
        .map_err(|e| e.with_origin(method_name))?;
        let _level = crate::workers::enter_call(method_name)?;
        let deadline = (options.deadline_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(options.deadline_ms as u64));
        let context = CallContext {
            method: method_name,
            deadline,
            options,
            settings: &self.settings,
            started: self.started,
            domain: &self.domain,
            events: &self.events,
            registry: &self.registry,
            dispatch: self,
            transport: &self.transport,
            principal,
            authorization: self.authorization.as_ref(),
            reach,
            audit: self.audit.as_ref(),
        };
        let result = match &method.implementation {
            Implementation::Builtin(function) => function(&context, format, request, out),
            Implementation::Host(host) => {
                self.call_host(context, method, host, format, request, out)
            }
        };
        result.map_err(|e| e.with_origin(method_name))
    }

    /// The verified principal of a call: the runtime's default credentials
    /// stand in for missing ones only for its own host's calls, never for
    /// calls that came in through the transport.
    fn authenticate(
        &self,
        method_name: &str,
        options: &CallOptions,
        reach: Reach<'_>,
    ) -> Result<Option<Arc<Principal>>> {
        let Some(security) = &self.settings.security else {
            return Ok(None);
        };
        let credentials = match reach {
            Reach::Anywhere => security.credentials_of(options),
            Reach::LocalOnly(_) => options.credentials.as_ref(),
        };
        security
            .authenticate(method_name, credentials)
            .and_then(|principal| {
                if let Reach::LocalOnly(stamps) = reach {
                    security.check_nats_identity(method_name, principal.as_deref(), stamps)?;
                }
                Ok(principal)
            })
            .map_err(
                |error| match self.audit_failure(method_name, options, reach, &error) {
                    Ok(()) => error,
                    Err(unrecorded) => unrecorded,
                },
            )
    }

    /// Records a failed authentication; a log that cannot take it fails the
    /// call with its own error (UNAVAILABLE) unless it fails open.
    fn audit_failure(
        &self,
        method_name: &str,
        options: &CallOptions,
        reach: Reach<'_>,
        error: &HmsError,
    ) -> Result<()> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let mut record = AuditRecord {
            method: method_name.to_owned(),
            trace_id: options.trace_id.clone(),
            remote: reach.came_over_transport(),
            ..AuditRecord::new(AuditKind::AuthenticationFailure, "deny", error.code)
        };
        for detail in ["reason", "nats_account", "nats_user"] {
            if let Some(value) = error.details.get(detail) {
                record = record.with_detail(detail, value);
            }
        }
        // What the caller claimed, unverified: who tried, never what with.
        if let Some(claimed) = options
            .credentials
            .as_ref()
            .filter(|c| !c.principal.is_empty())
        {
            record = record.with_detail("claimed_principal", &claimed.principal);
        }
        audit.record(record)
    }

    /// Refuses a call its principal may not make, when the runtime has
    /// policies; the public methods are never refused. Every decision is
    /// recorded in the audit log before it is enforced.
    #[allow(clippy::too_many_arguments)]
    fn authorize(
        &self,
        principal: Option<&Arc<Principal>>,
        method: &Method,
        method_name: &str,
        format: Format,
        request: &[u8],
        reach: Reach<'_>,
        trace_id: &str,
    ) -> Result<()> {
        let Some(authorization) = &self.authorization else {
            return Ok(());
        };
        if PUBLIC_METHODS.contains(&method_name) {
            return Ok(());
        }
        let decision = authorization.decide(&CallSubject {
            principal,
            method_name,
            method,
            format,
            request,
            remote: reach.came_over_transport(),
            domain: &self.domain,
            limits: self.limits(),
        })?;
        if let Some(audit) = &self.audit {
            let record = AuditRecord::authorization_decision(
                principal.map_or("", |p| p.id.as_str()),
                method_name,
                &format!(
                    "{}:{}",
                    decision.resource_type.to_lowercase(),
                    decision.resource_id
                ),
                decision.allowed,
                trace_id,
                reach.came_over_transport(),
            )
            .with_detail("policies", decision.policies.join(","));
            audit.record(record)?;
        }
        decision.enforce()
    }

    fn call_host(
        &self,
        context: CallContext<'_>,
        method: &Method,
        host: &Arc<HostService>,
        format: Format,
        request: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let limits = self.limits();
        let mut converted = Vec::new();
        codec::transcode(
            method.input.as_ref(),
            format,
            request,
            host.format,
            limits,
            &mut converted,
        )?;
        let mut in_flight = host.enter(context.method)?;
        // The handler's view of the call moves into its Reply: the options
        // are not needed after this point.
        let call = HandlerCall {
            method: context.method.to_owned(),
            deadline: context.deadline,
            metadata: context.options.metadata,
            trace_id: context.options.trace_id,
            principal: context.principal,
        };
        let outcome = match context.deadline {
            Some(deadline) if !host.caller_thread_only => run_on_worker(
                in_flight,
                host.clone(),
                method.c_name.clone(),
                converted,
                deadline,
                call,
            )?,
            _ => {
                if host.caller_thread_only && crate::workers::on_library_thread() {
                    return Err(HmsError::new(
                        Code::Unavailable,
                        format!(
                            "`{}` is registered caller-thread only, and this call runs on a library thread; \
                             call it from the thread of its host",
                            context.method
                        ),
                    ));
                }
                in_flight.run_here();
                let mut reply = Reply::new(call);
                host.handler
                    .invoke(&mut reply, &method.c_name, host.format, &converted);
                if context.deadline.is_some_and(|d| Instant::now() > d) {
                    return Err(deadline_exceeded(context.method));
                }
                drop(in_flight);
                reply.take()
            }
        };
        let answer = outcome.ok_or_else(|| {
            HmsError::new(
                Code::HandlerError,
                format!(
                    "the handler of `{}` returned without answering",
                    context.method
                ),
            )
        })??;
        limits.check_size(answer.len(), "reply")?;
        codec::transcode(
            method.output.as_ref(),
            host.format,
            &answer,
            format,
            limits,
            out,
        )
        .map_err(|e| {
            HmsError::new(
                Code::HandlerError,
                format!(
                    "the handler of `{}` replied garbage: {}",
                    context.method, e.message
                ),
            )
            .with_detail("cause", format!("{:?}", e.code))
        })
    }

    /// Registers a host service; `options.export` also serves it on the
    /// transport until it is unregistered, as if `nats.export_services`
    /// named it.
    pub fn register_service(
        self: &Arc<Self>,
        descriptor: ServiceDescriptor,
        format: Format,
        options: HostOptions,
        handler: Box<dyn HostHandler>,
    ) -> Result<u64> {
        let resolved = crate::registry::validate_descriptor(&descriptor)?;
        let transport = self.transport.get();
        if options.export {
            check_exportable(&descriptor.name, transport.is_some())?;
        }
        let host = Arc::new(HostService::new(
            handler,
            format,
            options.caller_thread_only,
        ));
        let mut methods = HashMap::new();
        for (method_descriptor, input, output) in resolved {
            methods.insert(
                method_descriptor.name.clone(),
                Arc::new(Method::new(
                    &method_descriptor.name,
                    input,
                    output,
                    Implementation::Host(host.clone()),
                )?),
            );
        }
        let mut descriptor = descriptor;
        descriptor.origin = "host".into();
        let event = service_event(&descriptor);
        let name = descriptor.name.clone();
        let service = self.registry.insert(Service {
            descriptor,
            methods,
        })?;
        let handle = SERVICES.insert(Arc::new(ServiceRegistration {
            runtime: Arc::downgrade(self),
            service: service.clone(),
            host,
        }));
        self.adopt(handle, unregister_service)?;
        if let Some(transport) = transport
            && (options.export || transport.settings().exports(&name))
            && let Err(error) = transport.export(&service)
        {
            let _ = unregister_service(handle);
            return Err(error);
        }
        self.events.publish(
            "registry.service_registered",
            &name,
            "",
            Payload::Service(event),
        );
        Ok(handle)
    }

    pub fn subscribe(
        self: &Arc<Self>,
        format: Format,
        filter: &[u8],
        sink: Option<PushSink>,
    ) -> Result<u64> {
        let filter: EventFilter = codec::decode_typed(format, filter, self.limits())?;
        let filter = Filter::from_proto(filter)?;
        let transport = match self.transport.get() {
            Some(transport) if filter.wants_remote() => Some(transport),
            None if filter.wants_remote() => {
                return Err(HmsError::new(
                    Code::FailedPrecondition,
                    "EventFilter.include_remote, origins and replay_from_* take other runtimes' \
                     events over NATS, and this runtime has no transport (RuntimeConfig.nats)",
                )
                .with_detail("field", "include_remote"));
            }
            _ => None,
        };
        // In a fleet, one agent's history is made by several runtimes, and
        // only the NATS server puts all of their events in one order.
        let own_from_feed = transport.is_some_and(|t| {
            t.settings().publish_events
                && self.domain.shares_store()
                && filter.proto().include_remote
        });
        let subscription = self
            .events
            .subscribe(filter.clone(), format, sink, own_from_feed)?;
        let remote = match transport
            .map(|t| t.feed(&subscription, &filter, own_from_feed))
            .transpose()
        {
            Ok(remote) => remote,
            Err(error) => {
                self.events.unsubscribe(&subscription, None);
                return Err(error);
            }
        };
        let handle = SUBSCRIPTIONS.insert(Arc::new(SubscriptionEntry {
            runtime: Arc::downgrade(self),
            subscription,
            remote: Mutex::new(remote),
        }));
        self.adopt(handle, unsubscribe)?;
        Ok(handle)
    }

    /// Looks `method_name` up once; calls through the handle skip the name.
    /// A method whose service is not registered here, in a runtime with a
    /// transport, gets a handle too: its calls go out to whichever runtime
    /// exports it (and fail UNAVAILABLE while none does).
    pub fn resolve_method(self: &Arc<Self>, method_name: &str, format: Format) -> Result<u64> {
        let method = match self.resolve(method_name) {
            Ok(method) => Some(method),
            Err(not_here) => match self.remote_for(method_name, &not_here, Reach::Anywhere) {
                Some(_) => None,
                None => return Err(not_here),
            },
        };
        let handle = METHODS.insert(Arc::new(ResolvedMethod {
            runtime: Arc::downgrade(self),
            method,
            full_name: method_name
                .strip_prefix('/')
                .unwrap_or(method_name)
                .to_owned(),
            format,
        }));
        self.adopt(handle, free_method)?;
        Ok(handle)
    }

    /// Records `handle` as owned by this runtime, so freeing the runtime
    /// frees it. A runtime being freed has taken its list already: `release`
    /// frees the handle at once and the caller gets INVALID_HANDLE, so no
    /// handle outlives its runtime. `closed` only changes under the `owned`
    /// lock, which makes the check and the push one step.
    fn adopt(&self, handle: u64, release: fn(u64) -> Result<()>) -> Result<()> {
        let mut owned = self.owned.lock();
        if self.closed.load(Ordering::Acquire) {
            drop(owned);
            let _ = release(handle);
            return Err(HmsError::invalid_handle(HandleKind::Runtime.name())
                .with_detail("reason", "the runtime was freed meanwhile"));
        }
        owned.push(handle);
        Ok(())
    }

    fn disown(&self, handle: u64) {
        self.owned.lock().retain(|h| *h != handle);
    }

    /// Unregisters every host service, closes every subscription and frees
    /// every method handle, waiting for handlers and push callbacks still
    /// running at most `settings.shutdown_timeout` in all. Those still
    /// running then are abandoned: they finish on their own threads, their
    /// answers go nowhere, and nothing they use is freed under them.
    pub fn close(&self) {
        let owned = {
            let mut owned = self.owned.lock();
            if self.closed.swap(true, Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *owned)
        };
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        let until = Some(deadline);
        for handle in owned {
            let _ = unregister_service_until(handle, until);
            let _ = unsubscribe_until(handle, until);
            let _ = free_method(handle);
        }
        if let Some(transport) = self.transport.get() {
            // Before the transport stops answering for them; a failure
            // leaves rows the next start under this name removes, and other
            // runtimes skip meanwhile (nobody answers for them).
            let _ = self.domain.forget_fleet_hooks(transport.identity());
            transport.shutdown(deadline);
        }
        self.events.close(until);
    }
}

/// Refuses an export the runtime could never serve: without a transport
/// there is nothing to serve on. (A caller-thread-only service is served
/// by its host's thread through `hms_serve`.)
fn check_exportable(service: &str, has_transport: bool) -> Result<()> {
    if !has_transport {
        return Err(HmsError::new(
            Code::FailedPrecondition,
            format!(
                "cannot export `{service}`: this runtime has no transport; \
                 configure one with RuntimeConfig.nats.servers (docs/transport.md)"
            ),
        )
        .with_detail("service", service));
    }
    Ok(())
}

fn service_event(descriptor: &ServiceDescriptor) -> ServiceEvent {
    ServiceEvent {
        name: descriptor.name.clone(),
        version: descriptor.version.clone(),
        methods: descriptor.methods.iter().map(|m| m.name.clone()).collect(),
    }
}

fn deadline_exceeded(method: &str) -> HmsError {
    HmsError::new(
        Code::DeadlineExceeded,
        format!("`{method}` did not answer before its deadline"),
    )
}

/// Runs a handler on a library thread so the caller can stop waiting at the
/// deadline; a late answer is dropped.
fn run_on_worker(
    mut in_flight: InFlight,
    host: Arc<HostService>,
    method: CString,
    request: Vec<u8>,
    deadline: Instant,
    call: HandlerCall,
) -> Result<Option<Result<Vec<u8>>>> {
    let full_name = call.method.clone();
    host.admit_deadline_call(&full_name)?;
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    // Who gave up first: the caller (at its deadline) or nobody. The
    // handler's thread, once back, learns it was abandoned and says so.
    let fate = Arc::new(AtomicU8::new(RUNNING));
    let worker_fate = fate.clone();
    let worker_host = host.clone();
    crate::workers::execute(move || {
        in_flight.run_here();
        let mut reply = Reply::new(call);
        worker_host
            .handler
            .invoke(&mut reply, &method, worker_host.format, &request);
        drop(in_flight);
        let _ = sender.send(reply.take());
        if worker_fate.swap(RETURNED, Ordering::AcqRel) == ABANDONED {
            worker_host.abandoned_call_returned();
        }
    })?;
    let wait = deadline.saturating_duration_since(Instant::now());
    receiver.recv_timeout(wait).map_err(|_| {
        if fate
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            host.abandon_call();
        }
        deadline_exceeded(&full_name)
    })
}

/// Where a call may be served.
#[derive(Clone, Copy)]
pub(crate) enum Reach<'a> {
    /// Here, else through the transport (every call made by a host).
    Anywhere,
    /// Here only (a call that came in through the transport), with the
    /// `Nats-Request-Info` headers it arrived with, under any spelling
    /// (`security.require_nats_identity` reads them).
    LocalOnly(&'a [&'a str]),
}

impl Reach<'_> {
    /// Only calls that came in through the transport are limited to here.
    pub(crate) fn came_over_transport(self) -> bool {
        matches!(self, Reach::LocalOnly(_))
    }
}

const RUNNING: u8 = 0;
const ABANDONED: u8 = 1;
const RETURNED: u8 = 2;

/// Creates a runtime and returns its handle.
pub fn create(settings: Settings) -> Result<u64> {
    let runtime = Runtime::new(settings)?;
    Ok(RUNTIMES.insert(runtime))
}

pub fn runtime(handle: u64) -> Result<Arc<Runtime>> {
    RUNTIMES
        .get(handle)
        .ok_or_else(|| HmsError::invalid_handle(HandleKind::Runtime.name()))
}

pub fn free(handle: u64) -> Result<()> {
    let runtime = RUNTIMES
        .remove(handle)
        .ok_or_else(|| HmsError::invalid_handle(HandleKind::Runtime.name()))?;
    runtime.close();
    Ok(())
}

/// `hms_service_unregister`: waits for every call in flight.
pub fn unregister_service(handle: u64) -> Result<()> {
    unregister_service_until(handle, None)
}

fn unregister_service_until(handle: u64, until: Option<Instant>) -> Result<()> {
    let registration = SERVICES
        .remove(handle)
        .ok_or_else(|| HmsError::invalid_handle(HandleKind::Service.name()))?;
    let name = registration.service.descriptor.name.clone();
    let runtime = registration.runtime.upgrade();
    if let Some(runtime) = &runtime {
        runtime.registry.remove(&name, &registration.service);
        runtime.disown(handle);
        // No new remote call reaches it from here on; those running finish.
        if let Some(transport) = runtime.transport.get() {
            transport.withdraw(&registration.service, until);
        }
    }
    registration.host.close_and_wait(until);
    if let Some(runtime) = runtime {
        let event = service_event(&registration.service.descriptor);
        runtime.events.publish(
            "registry.service_unregistered",
            &name,
            "",
            Payload::Service(event),
        );
    }
    Ok(())
}

pub fn method(handle: u64) -> Result<Arc<ResolvedMethod>> {
    METHODS
        .get(handle)
        .ok_or_else(|| HmsError::invalid_handle(HandleKind::Method.name()))
}

/// Resolves `method_name` in the runtime `rt` (see [`Runtime::resolve_method`]).
pub fn resolve_method(rt: u64, method_name: &str, format: Format) -> Result<u64> {
    runtime(rt)?.resolve_method(method_name, format)
}

/// Calls the method of `handle` in its format, without options; the
/// response is appended to `out`.
pub fn call_method(handle: u64, request: &[u8], out: &mut Vec<u8>) -> Result<()> {
    method(handle)?.call(request, out)
}

pub fn free_method(handle: u64) -> Result<()> {
    let entry = METHODS
        .remove(handle)
        .ok_or_else(|| HmsError::invalid_handle(HandleKind::Method.name()))?;
    if let Some(runtime) = entry.runtime.upgrade() {
        runtime.disown(handle);
    }
    Ok(())
}

/// A call of a batch sent to another runtime, its answer to come.
pub struct RemoteAnswer {
    pending: PendingCall,
    limits: Limits,
}

impl RemoteAnswer {
    /// Waits for the answer (never past the call's deadline), appended to
    /// `out`.
    pub fn wait(self, out: &mut Vec<u8>) -> Result<()> {
        self.pending.wait(&self.limits, out)
    }
}

impl ResolvedMethod {
    /// Sends the call to the runtime that exports the method when it is
    /// not served here, without waiting for the answer: `None` when the
    /// call runs (or fails) here, through [`ResolvedMethod::call`].
    pub fn send_remote(&self, request: &[u8]) -> Option<Result<RemoteAnswer>> {
        if self.method.as_ref().is_some_and(|m| !m.is_retired()) {
            return None;
        }
        let runtime = self.runtime.upgrade()?;
        let not_here = runtime.resolve(&self.full_name).err()?;
        let transport = runtime.remote_for(&self.full_name, &not_here, Reach::Anywhere)?;
        let sent = (|| {
            let limits = *runtime.limits();
            limits.check_size(request.len(), "request")?;
            let pending = runtime.send_remote_call(
                transport,
                &self.full_name,
                self.format,
                request,
                &CallOptions::default(),
            )?;
            Ok(RemoteAnswer { pending, limits })
        })();
        Some(sent)
    }

    /// Runs the method on `request`; the response is appended to `out`.
    pub fn call(&self, request: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let runtime = self
            .runtime
            .upgrade()
            .ok_or_else(|| HmsError::invalid_handle(HandleKind::Runtime.name()))?;
        runtime.limits().check_size(request.len(), "request")?;
        match &self.method {
            Some(method) if !method.is_retired() => runtime.dispatch(
                method,
                &self.full_name,
                self.format,
                request,
                CallOptions::default(),
                out,
                Reach::Anywhere,
            ),
            // A handle names the method, not one registration of its
            // service: once that service is gone (or when it was remote
            // from the start), the name is looked up again, so the call
            // answers what hms_call would (NOT_FOUND, the service
            // registered anew, or the runtime that exports it).
            _ => runtime.call_checked(
                &self.full_name,
                self.format,
                request,
                CallOptions::default(),
                out,
                Reach::Anywhere,
            ),
        }
    }
}

pub fn subscription(handle: u64) -> Result<Arc<SubscriptionEntry>> {
    SUBSCRIPTIONS
        .get(handle)
        .ok_or_else(|| HmsError::invalid_handle(HandleKind::Subscription.name()))
}

/// `hms_unsubscribe`: waits for a push callback that is running.
pub fn unsubscribe(handle: u64) -> Result<()> {
    unsubscribe_until(handle, None)
}

fn unsubscribe_until(handle: u64, until: Option<Instant>) -> Result<()> {
    let entry = SUBSCRIPTIONS
        .remove(handle)
        .ok_or_else(|| HmsError::invalid_handle(HandleKind::Subscription.name()))?;
    // Stops the remote feed (unsubscribes on NATS).
    *entry.remote.lock() = None;
    match entry.runtime.upgrade() {
        Some(runtime) => {
            runtime.disown(handle);
            runtime.events.unsubscribe(&entry.subscription, until);
        }
        None => {
            entry.subscription.close(until);
        }
    }
    Ok(())
}
