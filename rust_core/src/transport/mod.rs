//! Remote calls over NATS (docs/transport.md): how HMS names map to NATS
//! subjects and service names, which headers a request and a reply carry,
//! and the transport settings of `hms.v1.NatsTransport`.
//!
//! The model is "local first, then remote": a call whose service is not
//! registered in this runtime goes to whichever runtime exports it through
//! NATS. Only a local miss ever reaches this module, so the local fast path
//! pays nothing for it.
//!
//! Everything here is plain data and text, so it compiles without the
//! `nats` feature too; the client itself lives in `nats.rs`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Code, HmsError, Result};
use crate::proto::v1::{EventStream, NatsTransport};

#[cfg(feature = "nats")]
mod events;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
pub use events::RemoteFeed;
#[cfg(feature = "nats")]
pub use nats::{MAX_WAITING_CALLS, PendingCall, Transport};

/// Without the `nats` feature no transport can exist: configuring one is
/// refused in [`TransportSettings::from_config`], so this type has no value
/// and every method on it is unreachable. It mirrors the API of the real
/// one, so the runtime has no `cfg` of its own.
#[cfg(not(feature = "nats"))]
pub enum Transport {}

#[cfg(not(feature = "nats"))]
impl Transport {
    pub fn start(
        _: TransportSettings,
        _: &str,
        _: std::sync::Weak<crate::runtime::Runtime>,
    ) -> Result<Self> {
        Err(HmsError::new(
            Code::Unimplemented,
            "this build of the HMS core has no NATS transport (cargo feature `nats`)",
        ))
    }
    pub fn identity(&self) -> &str {
        match *self {}
    }
    pub fn settings(&self) -> &TransportSettings {
        match *self {}
    }
    pub fn is_connected(&self) -> bool {
        match *self {}
    }
    pub fn export(&self, _: &std::sync::Arc<crate::registry::Service>) -> Result<()> {
        match *self {}
    }
    pub fn withdraw(
        &self,
        _: &std::sync::Arc<crate::registry::Service>,
        _: Option<std::time::Instant>,
    ) {
        match *self {}
    }
    pub fn exported(&self) -> Vec<String> {
        match *self {}
    }
    pub fn discover(&self, _: &str) -> Vec<crate::proto::v1::ServiceDescriptor> {
        match *self {}
    }
    pub fn shutdown(&self, _: std::time::Instant) {
        match *self {}
    }
    pub fn serve(
        &self,
        _: &std::sync::Arc<crate::runtime::Runtime>,
        _: Option<std::time::Duration>,
    ) -> Result<u32> {
        match *self {}
    }
    pub fn waiting_calls(&self) -> usize {
        match *self {}
    }
    pub fn event_publisher(&self) -> Option<std::sync::Arc<dyn crate::events::EventSink>> {
        match *self {}
    }
    pub fn feed(
        &self,
        _: &std::sync::Arc<crate::events::Subscription>,
        _: &crate::events::Filter,
        _: bool,
    ) -> Result<RemoteFeed> {
        match *self {}
    }
    pub fn send(
        &self,
        _: &str,
        _: &str,
        _: crate::codec::Format,
        _: &[u8],
        _: &crate::proto::v1::CallOptions,
    ) -> Result<PendingCall> {
        match *self {}
    }
    pub fn serve_hooks(&self) -> Result<()> {
        match *self {}
    }
    pub fn send_hook(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: crate::codec::Format,
        _: &[u8],
        _: &crate::proto::v1::CallOptions,
    ) -> Result<PendingCall> {
        match *self {}
    }
}

/// Without the `nats` feature there is no transport, so no remote feed.
#[cfg(not(feature = "nats"))]
pub enum RemoteFeed {}

/// Without the `nats` feature there is no transport, so no remote call.
#[cfg(not(feature = "nats"))]
pub enum PendingCall {}

#[cfg(not(feature = "nats"))]
impl PendingCall {
    pub fn wait(self, _: &crate::codec::Limits, _: &mut Vec<u8>) -> Result<()> {
        match self {}
    }
}

pub const DEFAULT_SUBJECT_PREFIX: &str = "hms";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_millis(250);
/// Events waiting to be published when `event_outbox_capacity` is 0.
pub const DEFAULT_EVENT_OUTBOX_CAPACITY: usize = 4096;
pub const MAX_EVENT_OUTBOX_CAPACITY: u32 = 1 << 20;
/// Ceiling of every configured timeout: ten minutes.
pub const MAX_TIMEOUT_MS: u32 = 600_000;

/// Headers of a request. NATS header names are case-sensitive on the wire;
/// these are written exactly like this.
pub mod headers {
    /// The format of the payload (and of a Status in the reply):
    /// "protobuf", "cbor" or "json".
    pub const FORMAT: &str = "Hms-Format";
    /// Milliseconds left of the caller's deadline when the request left.
    pub const DEADLINE_MS: &str = "Hms-Deadline-Ms";
    /// `CallOptions.trace_id`.
    pub const TRACE_ID: &str = "Hms-Trace-Id";
    /// `CallOptions.metadata`: one header per entry, `Hms-Meta-<key>`, key
    /// and value percent-encoded (see [`super::escape`]).
    pub const META_PREFIX: &str = "Hms-Meta-";
    /// `CallOptions.credentials`: the protobuf encoding of
    /// `hms.v1.Credentials`, base64 (standard alphabet, padded). Carried
    /// opaque; nothing verifies it yet.
    pub const CREDENTIALS: &str = "Hms-Credentials";
    /// In every reply: "0" with the answer as the payload, or a status code
    /// with an `hms.v1.Status` in the request's format as the payload.
    pub const STATUS: &str = "Hms-Status";
    /// On a request to run a blocking hook: the hook's id in the runtime
    /// that registered it.
    pub const HOOK_ID: &str = "Hms-Hook-Id";
}

/// The subject on which `runtime` runs its blocking hooks for the other
/// runtimes sharing its store: `<prefix>.hook.<runtime>`.
pub fn hook_subject(prefix: &str, runtime: &str) -> String {
    format!("{prefix}.hook.{}", subject_token(runtime))
}

/// The `reason` detail of [`hook_gone`].
const HOOK_GONE: &str = "hook_gone";

/// Another runtime's blocking hook cannot run because it is no longer
/// there: its runtime stopped (or lost its NATS connection), or it was
/// unregistered. `why` says which.
pub fn hook_gone(runtime: &str, hook_id: &str, why: &str) -> HmsError {
    HmsError::new(
        Code::Unavailable,
        format!("hook `{hook_id}` of runtime `{runtime}` did not run: {why}"),
    )
    .with_detail("reason", HOOK_GONE)
    .with_detail("runtime", runtime)
    .with_detail("hook_id", hook_id)
}

pub fn is_hook_gone(error: &HmsError) -> bool {
    error.details.get("reason").map(String::as_str) == Some(HOOK_GONE)
}

/// Metadata keys of the NATS service announcements (`$SRV.INFO`).
pub mod announce {
    /// The HMS service name, dotted ("hms.agent.v1.AgentService").
    pub const SERVICE: &str = "hms.service";
    /// The name (or generated id) of the runtime that serves it.
    pub const RUNTIME: &str = "hms.runtime";
    /// `ServiceDescriptor.version` as registered (free-form, while the NATS
    /// service version must be semver: it is the library's version).
    pub const SERVICE_VERSION: &str = "hms.service_version";
    /// Endpoint metadata: the method's input and output message types.
    pub const INPUT_TYPE: &str = "hms.input_type";
    pub const OUTPUT_TYPE: &str = "hms.output_type";
}

/// The subject of one method: `<prefix>.svc.<service>.<Method>`. Service
/// names are dotted identifiers and method names identifiers, so each part
/// is a valid subject token and the last token is always the method.
pub fn method_subject(prefix: &str, service: &str, method: &str) -> String {
    format!("{prefix}.svc.{service}.{method}")
}

/// The NATS service name of an HMS service: dots become dashes
/// ("hms.agent.v1.AgentService" → "hms-agent-v1-AgentService"). NATS
/// allows only `[A-Za-z0-9_-]` there; HMS names never hold a dash, so the
/// mapping is one to one.
pub fn nats_service_name(service: &str) -> String {
    service.replace('.', "-")
}

/// The queue group every exporter of `service` joins, so that N runtimes
/// exporting it share its calls: `<prefix>.<service>`.
pub fn queue_group(prefix: &str, service: &str) -> String {
    format!("{prefix}.{service}")
}

/// The subject of one event: `<prefix>.evt.<origin>.<agent>.<kind>`, the
/// origin and agent as one token each ([`subject_token`]), the kind as its
/// own dotted tokens ("task.submitted"), so that NATS wildcards select by
/// origin, agent and kind: `hms.evt.*.<agent>.>`, `hms.evt.*.*.task.>`.
pub fn event_subject(prefix: &str, origin: &str, agent_id: &str, kind: &str) -> String {
    format!(
        "{prefix}.evt.{}.{}.{kind}",
        subject_token(origin),
        subject_token(agent_id)
    )
}

/// The subject that selects the events of `origin` (every runtime when
/// `None`) about `agent_id` (every agent or none when `None`).
pub fn events_subject(prefix: &str, origin: Option<&str>, agent_id: Option<&str>) -> String {
    let token = |value: Option<&str>| value.map_or_else(|| "*".to_owned(), subject_token);
    format!("{prefix}.evt.{}.{}.>", token(origin), token(agent_id))
}

/// `text` as one subject token: [`escape`] with dots escaped too, "_" for
/// the empty text (an event about no agent), and a text that is "_" itself
/// escaped so the two never meet.
pub fn subject_token(text: &str) -> String {
    match text {
        "" => "_".to_owned(),
        "_" => "%5F".to_owned(),
        text => escape(text).replace('.', "%2E"),
    }
}

/// The event stream's name when `EventStream.name` is empty: "HMS_EVENTS"
/// for the default prefix.
pub fn default_stream_name(prefix: &str) -> String {
    format!("{}_EVENTS", prefix.to_uppercase().replace(['.', '-'], "_"))
}

/// Percent-encodes every byte of `text` outside `[A-Za-z0-9_.~-]`: header
/// names allow only printable ASCII without ':', values no CR or LF, and
/// metadata may hold anything.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'~' | b'-') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Reverses [`escape`]; `None` for a malformed escape or bytes that are not
/// UTF-8.
pub fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// How the client proves who it is to the NATS server.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Token(String),
    UserPassword { user: String, password: String },
    NkeySeedFile(PathBuf),
    CredentialsFile(PathBuf),
}

/// Never prints a secret: settings are Debug, and may end up in a log.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::UserPassword { user, .. } => write!(f, "UserPassword({user}, <redacted>)"),
            Auth::NkeySeedFile(path) => write!(f, "NkeySeedFile({})", path.display()),
            Auth::CredentialsFile(path) => write!(f, "CredentialsFile({})", path.display()),
        }
    }
}

/// `hms.v1.NatsTransport`, checked, with its defaults applied.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    pub servers: Vec<String>,
    pub connection_name: String,
    pub auth: Auth,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub discovery_timeout: Duration,
    pub export_services: Vec<String>,
    /// Built-in services left out of the registry, reached remotely.
    pub remote_services: Vec<String>,
    pub subject_prefix: String,
    /// Publish this runtime's events to NATS.
    pub publish_events: bool,
    pub event_outbox_capacity: usize,
    /// Where events are kept for replay; `None`: no JetStream.
    pub event_stream: Option<EventStreamSettings>,
}

/// `hms.v1.EventStream`, checked, with its defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventStreamSettings {
    pub name: String,
    /// `None`: events are kept until other limits of the stream apply.
    pub max_age: Option<Duration>,
}

impl EventStreamSettings {
    fn from_config(config: EventStream, prefix: &str) -> Result<EventStreamSettings> {
        let name = if config.name.is_empty() {
            default_stream_name(prefix)
        } else {
            config.name
        };
        let name_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok || name.len() > 255 {
            return Err(invalid(
                "nats.event_stream.name",
                format!("{name:?} is not a stream name of [A-Za-z0-9_-] (at most 255)"),
            ));
        }
        Ok(EventStreamSettings {
            name,
            max_age: (config.max_age_seconds > 0)
                .then(|| Duration::from_secs(config.max_age_seconds)),
        })
    }
}

impl TransportSettings {
    /// `None` when no server is configured: no transport at all.
    pub fn from_config(config: NatsTransport) -> Result<Option<TransportSettings>> {
        if config.servers.is_empty() {
            let configured_anyway = !config.export_services.is_empty()
                || !config.remote_services.is_empty()
                || !config.token.is_empty()
                || !config.user.is_empty()
                || !config.credentials_file.is_empty()
                || !config.nkey_seed_file.is_empty()
                || config.publish_events
                || config.event_stream.is_some();
            if configured_anyway {
                return Err(invalid("nats.servers", "names no server").with_detail(
                    "hint",
                    "give at least one URL, e.g. \"nats://127.0.0.1:4222\"",
                ));
            }
            return Ok(None);
        }
        if !cfg!(feature = "nats") {
            return Err(HmsError::new(
                Code::Unimplemented,
                "this build of the HMS core has no NATS transport (cargo feature `nats`)",
            )
            .with_detail("field", "nats"));
        }
        let auth = auth_of(&config)?;
        let client_cert = match (config.cert_file.is_empty(), config.key_file.is_empty()) {
            (true, true) => None,
            (false, false) => Some((config.cert_file.into(), config.key_file.into())),
            _ => {
                return Err(invalid(
                    "nats.cert_file",
                    "and nats.key_file come together: give both or neither",
                ));
            }
        };
        let subject_prefix = if config.subject_prefix.is_empty() {
            DEFAULT_SUBJECT_PREFIX.to_owned()
        } else {
            config.subject_prefix
        };
        let token_ok = |token: &str| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !subject_prefix.split('.').all(token_ok) {
            return Err(invalid(
                "nats.subject_prefix",
                format!("{subject_prefix:?} is not dotted tokens of [A-Za-z0-9_-]"),
            ));
        }
        let export_services = service_names(config.export_services, "nats.export_services")?;
        let remote_services = service_names(config.remote_services, "nats.remote_services")?;
        if export_services
            .iter()
            .any(|name| name == crate::services::audit::SERVICE)
        {
            return Err(invalid(
                "nats.export_services",
                format!(
                    "names {:?}, which reads this host's files and is never exported",
                    crate::services::audit::SERVICE
                ),
            ));
        }
        if let Some(both) = export_services
            .iter()
            .find(|name| remote_services.binary_search(name).is_ok())
        {
            return Err(invalid(
                "nats.remote_services",
                format!("names {both:?}, which nats.export_services exports from here"),
            ));
        }
        if config.event_outbox_capacity > MAX_EVENT_OUTBOX_CAPACITY {
            return Err(invalid(
                "nats.event_outbox_capacity",
                format!(
                    "{} is over the ceiling of {MAX_EVENT_OUTBOX_CAPACITY}",
                    config.event_outbox_capacity
                ),
            ));
        }
        let event_stream = config
            .event_stream
            .map(|stream| EventStreamSettings::from_config(stream, &subject_prefix))
            .transpose()?;
        Ok(Some(TransportSettings {
            publish_events: config.publish_events,
            event_outbox_capacity: match config.event_outbox_capacity {
                0 => DEFAULT_EVENT_OUTBOX_CAPACITY,
                capacity => capacity as usize,
            },
            event_stream,
            servers: config.servers,
            connection_name: config.connection_name,
            auth,
            ca_file: (!config.ca_file.is_empty()).then(|| config.ca_file.into()),
            client_cert,
            connect_timeout: timeout(
                config.connect_timeout_ms,
                DEFAULT_CONNECT_TIMEOUT,
                "nats.connect_timeout_ms",
            )?,
            request_timeout: timeout(
                config.request_timeout_ms,
                DEFAULT_REQUEST_TIMEOUT,
                "nats.request_timeout_ms",
            )?,
            discovery_timeout: timeout(
                config.discovery_timeout_ms,
                DEFAULT_DISCOVERY_TIMEOUT,
                "nats.discovery_timeout_ms",
            )?,
            export_services,
            remote_services,
            subject_prefix,
        }))
    }

    pub fn exports(&self, service: &str) -> bool {
        self.export_services
            .binary_search_by(|s| s.as_str().cmp(service))
            .is_ok()
    }
}

/// `names`, checked to be service names, sorted and without repeats.
fn service_names(mut names: Vec<String>, field: &str) -> Result<Vec<String>> {
    if let Some(bad) = names.iter().find(|name| !is_dotted_identifier(name)) {
        return Err(invalid(
            field,
            format!("{bad:?} is not a service name like \"demo.v1.Greeter\""),
        ));
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn auth_of(config: &NatsTransport) -> Result<Auth> {
    let mut given = Vec::new();
    if !config.token.is_empty() {
        given.push(Auth::Token(config.token.clone()));
    }
    if !config.user.is_empty() || !config.password.is_empty() {
        if config.user.is_empty() {
            return Err(invalid("nats.user", "is empty while nats.password is set"));
        }
        given.push(Auth::UserPassword {
            user: config.user.clone(),
            password: config.password.clone(),
        });
    }
    if !config.nkey_seed_file.is_empty() {
        given.push(Auth::NkeySeedFile(config.nkey_seed_file.clone().into()));
    }
    if !config.credentials_file.is_empty() {
        given.push(Auth::CredentialsFile(
            config.credentials_file.clone().into(),
        ));
    }
    match given.len() {
        0 => Ok(Auth::None),
        1 => Ok(given.remove(0)),
        _ => Err(invalid(
            "nats",
            "configures more than one way to authenticate: give one of token, \
             user/password, nkey_seed_file and credentials_file",
        )),
    }
}

fn timeout(ms: u32, default: Duration, field: &str) -> Result<Duration> {
    match ms {
        0 => Ok(default),
        ms if ms > MAX_TIMEOUT_MS => Err(invalid(
            field,
            format!("{ms} is over the ceiling of {MAX_TIMEOUT_MS}"),
        )),
        ms => Ok(Duration::from_millis(ms.into())),
    }
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> HmsError {
    HmsError::invalid_argument(format!("{field} {problem}")).with_detail("field", field)
}

fn is_dotted_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_one_to_one() {
        assert_eq!(
            method_subject("hms", "hms.agent.v1.AgentService", "CreateAgent"),
            "hms.svc.hms.agent.v1.AgentService.CreateAgent"
        );
        assert_eq!(
            nats_service_name("hms.agent.v1.AgentService"),
            "hms-agent-v1-AgentService"
        );
        assert_eq!(queue_group("hms", "demo.v1.Echo"), "hms.demo.v1.Echo");
    }

    #[test]
    fn event_subjects_keep_origin_and_agent_in_one_token_each() {
        assert_eq!(
            event_subject("hms", "node a.1", "", "task.submitted"),
            "hms.evt.node%20a%2E1._.task.submitted"
        );
        assert_eq!(
            event_subject("hms", "a", "_", "lagged"),
            "hms.evt.a.%5F.lagged"
        );
        assert_eq!(
            events_subject("hms", None, Some("ag-1")),
            "hms.evt.*.ag-1.>"
        );
        assert_eq!(events_subject("x.y", Some("a"), None), "x.y.evt.a.*.>");
        assert_eq!(default_stream_name("hms"), "HMS_EVENTS");
        assert_eq!(default_stream_name("my.app-1"), "MY_APP_1_EVENTS");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let auth = Auth::UserPassword {
            user: "alice".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::Token("s3cret".into())).contains("s3cret"));
    }

    #[test]
    fn escaping_round_trips_anything() {
        for text in ["plain", "with space", "a:b\r\n%", "ü€", ""] {
            let escaped = escape(text);
            assert!(escaped.bytes().all(|b| b.is_ascii_graphic() && b != b':'));
            assert_eq!(unescape(&escaped).as_deref(), Some(text));
        }
        assert_eq!(unescape("%4"), None);
        assert_eq!(unescape("%ZZ"), None);
        assert_eq!(unescape("%FF"), None);
    }
}
