//! The NATS side of a runtime: one client on a small tokio runtime that
//! this module owns, the services it exports, remote calls, and the
//! runtime's events (their publisher and remote feeds live in `events.rs`).
//!
//! Threads: the tokio runtime has two workers named `hms-nats`, and exists
//! only when a transport is configured. Callers never run on it: a remote
//! call drives its request future on the caller's own thread, parked until
//! the client's connection task wakes it or its deadline passes (no task
//! and no extra thread hop per call, no caller blocking a worker), and
//! an exported call runs on a library handler thread (`workers::execute`),
//! so host handlers may block and may call back into the library; one of a
//! caller-thread-only service waits for its host's thread instead
//! (`host_thread.rs`, `hms_serve`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_nats::client::RequestErrorKind;
use async_nats::connection::State;
use async_nats::service::{Request as ServiceRequest, ServiceExt};
use async_nats::{Client, ConnectOptions, Event, HeaderMap, ServerAddr};
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::watch;

use super::events::{
    EventPublisher, RemoteFeed, Source, ensure_stream, feed_subject, replay, subscribe_live,
};
use super::{
    Auth, TransportSettings, announce, escape, headers, hook_subject, method_subject,
    nats_service_name, queue_group, unescape,
};
use crate::codec::{self, Format, Limits};
use crate::error::{Code, HmsError, Result};
use crate::events::{EventSink, Filter, Subscription};
use crate::proto::v1::{CallOptions, Credentials, MethodDescriptor, ServiceDescriptor, Status};
use crate::registry::Service;
use crate::runtime::Runtime;

mod host_thread;
use host_thread::HostQueue;
pub use host_thread::MAX_WAITING_CALLS;

/// Worker threads of the transport's tokio runtime: it only moves bytes
/// (handlers run elsewhere), so two are plenty.
const TOKIO_WORKERS: usize = 2;

/// How long `start` waits past the connect timeout for the connecting
/// task, which enforces the timeout itself: only a backstop.
const DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// Most exported calls of one runtime running at once; more are answered
/// RESOURCE_EXHAUSTED at once rather than starting a thread each.
pub const MAX_SERVED_CALLS: usize = 256;

/// Longest wait to stop the exported services and the tokio runtime in
/// `hms_runtime_free`, within the runtime's own shutdown bound.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// The NATS service through which a runtime runs its hooks for others.
const HOOKS_SERVICE: &str = "hms-hooks";

/// How long one step of stopping may wait: what is left until `until`, at
/// most [`STOP_TIMEOUT`].
fn stop_step(until: Instant) -> Duration {
    until
        .saturating_duration_since(Instant::now())
        .min(STOP_TIMEOUT)
}

/// How a remote request ended.
enum Outcome {
    Reply(std::result::Result<async_nats::Message, async_nats::RequestError>),
    ConnectionLost,
    /// The client's connection task is gone with the transport's runtime.
    ShutDown,
}

/// A remote request on its way: polled on the caller's thread.
type Request = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Wakes the thread it was made on, which parks while its request is on
/// its way (the client's connection task wakes it with the reply).
struct Unparker(std::thread::Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// How long a caller waiting for its reply polls it (yielding its core
/// to any other runnable thread in between) before it parks. A loopback
/// or LAN round trip takes well under this, so the reply usually finds the
/// caller awake: waking a parked thread costs tens of µs on an idle
/// (virtual) machine, most of a remote call there (docs/transport.md).
/// At most this much CPU per call; nothing on a single core.
const SPIN_BEFORE_PARKING: Duration = Duration::from_micros(150);

/// Whether waiting callers spin: only with a core left for the threads
/// that bring their reply.
fn spinning_helps() -> bool {
    static MANY_CORES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MANY_CORES
        .get_or_init(|| std::thread::available_parallelism().is_ok_and(|cores| cores.get() > 1))
}

thread_local! {
    static THIS_THREAD: Waker = Waker::from(Arc::new(Unparker(std::thread::current())));
}

/// Polls `future` on this thread until it finishes or `until` passes
/// (`None` then; it is polled at least once): for
/// [`SPIN_BEFORE_PARKING`] with yields in between, then parked until woken
/// or the time is up. The futures polled so are runtime-agnostic (channels
/// of the client, no tokio timer), so this works with or without a tokio
/// context, even after the transport's runtime is gone.
fn drive<F: Future + ?Sized>(mut future: Pin<&mut F>, until: Instant) -> Option<F::Output> {
    THIS_THREAD.with(|waker| {
        let mut context = Context::from_waker(waker);
        let spin_until = if spinning_helps() {
            Instant::now() + SPIN_BEFORE_PARKING
        } else {
            Instant::now()
        };
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return Some(output);
            }
            let now = Instant::now();
            let left = until.saturating_duration_since(now);
            if left.is_zero() {
                return None;
            }
            if now < spin_until {
                std::thread::yield_now();
                continue;
            }
            std::thread::park_timeout(left);
        }
    })
}

/// The transport of one runtime.
pub struct Transport {
    settings: TransportSettings,
    /// The runtime's name, or a generated id: `origin` of its statuses and
    /// `hms.runtime` of its announcements.
    identity: String,
    /// Taken by `shutdown`.
    tokio: Mutex<Option<tokio::runtime::Runtime>>,
    spawner: tokio::runtime::Handle,
    client: Client,
    /// False while the client is disconnected: pending calls end at once
    /// with UNAVAILABLE instead of waiting for their deadline.
    connected: watch::Receiver<bool>,
    /// Exported services that are announced now, by HMS service name.
    exports: Mutex<HashMap<String, Export>>,
    serving: Arc<Serving>,
    /// This runtime's events on their way to NATS, when it publishes them.
    publisher: Option<Arc<EventPublisher>>,
    publishing: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What an exported endpoint needs to run a call.
struct Serving {
    runtime: Weak<Runtime>,
    identity: String,
    client: Client,
    spawner: tokio::runtime::Handle,
    in_flight: AtomicUsize,
    /// Replies handed to the tokio runtime and not yet to the client:
    /// shutdown waits for them, or a call that ran would never be answered.
    unsent: Arc<AtomicUsize>,
    /// Exported calls waiting for the host's thread (caller-thread-only
    /// services).
    host_queue: HostQueue,
}

/// One exported service: its NATS service (announcements and stats) and
/// the tasks reading its endpoints.
struct Export {
    /// The registration it serves, so that unregistering an older one
    /// leaves a newer one's export alone.
    registration: Weak<Service>,
    announcement: async_nats::service::Service,
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// Set to true to make the readers unsubscribe and end.
    stop: watch::Sender<bool>,
}

impl Transport {
    /// Connects (waiting at most `connect_timeout`) and returns the
    /// transport; exports start with [`Transport::export`].
    pub fn start(settings: TransportSettings, name: &str, runtime: Weak<Runtime>) -> Result<Self> {
        let identity = if name.is_empty() {
            format!("hms-{}", uuid::Uuid::now_v7().simple())
        } else {
            name.to_owned()
        };
        let addresses = settings
            .servers
            .iter()
            .map(|url| {
                url.parse::<ServerAddr>().map_err(|e| {
                    HmsError::invalid_argument(format!("nats.servers: {url:?} is not a URL: {e}"))
                        .with_detail("field", "nats.servers")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (state_sender, connected) = watch::channel(true);
        let options = connect_options(&settings, &identity, state_sender)?;
        // Built once the settings are known to be usable, so an error
        // above leaves no threads behind.
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(TOKIO_WORKERS)
            .thread_name("hms-nats")
            .enable_all()
            .build()
            .map_err(|e| {
                HmsError::exhausted(format!("cannot start the NATS transport's threads: {e}"))
            })?;
        let spawner = tokio.handle().clone();
        let credentials_file = match &settings.auth {
            Auth::CredentialsFile(path) => Some(path.clone()),
            _ => None,
        };
        let connect_timeout = settings.connect_timeout;
        let servers = settings.servers.join(", ");
        let connecting = async move {
            let options = match credentials_file {
                Some(path) => options.credentials_file(&path).await.map_err(|e| {
                    HmsError::invalid_argument(format!(
                        "nats.credentials_file {}: {e}",
                        path.display()
                    ))
                    .with_detail("field", "nats.credentials_file")
                })?,
                None => options,
            };
            match tokio::time::timeout(connect_timeout, options.connect(addresses)).await {
                Ok(Ok(client)) => Ok(client),
                Ok(Err(e)) => Err(HmsError::new(
                    Code::Unavailable,
                    format!("cannot connect to the NATS servers {servers}: {e}"),
                )),
                Err(_) => Err(HmsError::new(
                    Code::Unavailable,
                    format!(
                        "no NATS server of {servers} answered within {} ms",
                        connect_timeout.as_millis()
                    ),
                )),
            }
        };
        // Spawned and awaited over a channel rather than `block_on`, which
        // panics when the host calls from inside a tokio runtime of its own.
        let (sender, receiver) = sync_channel(1);
        tokio.spawn(async move {
            let _ = sender.send(connecting.await);
        });
        let connected_client = receiver
            .recv_timeout(connect_timeout + DEADLINE_SLACK)
            .unwrap_or_else(|_| {
                Err(HmsError::new(
                    Code::Unavailable,
                    format!(
                        "no NATS server answered within {} ms",
                        connect_timeout.as_millis()
                    ),
                ))
            });
        let client = match connected_client {
            Ok(client) => client,
            Err(error) => {
                tokio.shutdown_background();
                return Err(error.with_origin("transport"));
            }
        };
        let serving = Arc::new(Serving {
            runtime,
            identity: identity.clone(),
            client: client.clone(),
            spawner: spawner.clone(),
            in_flight: AtomicUsize::new(0),
            unsent: Arc::new(AtomicUsize::new(0)),
            host_queue: HostQueue::default(),
        });
        let publisher = settings.publish_events.then(|| {
            Arc::new(EventPublisher::new(
                &settings.subject_prefix,
                &identity,
                settings.event_outbox_capacity,
            ))
        });
        let publishing = publisher
            .as_ref()
            .map(|publisher| spawner.spawn(publisher.clone().run(client.clone())));
        let transport = Transport {
            settings,
            identity,
            tokio: Mutex::new(Some(tokio)),
            spawner,
            client,
            connected,
            exports: Mutex::new(HashMap::new()),
            serving,
            publisher,
            publishing: Mutex::new(publishing),
        };
        if let Some(stream) = transport.settings.event_stream.clone() {
            let client = transport.client.clone();
            let prefix = transport.settings.subject_prefix.clone();
            transport
                .run(transport.settings.connect_timeout, async move {
                    ensure_stream(&client, &prefix, &stream).await
                })
                .unwrap_or_else(|| {
                    Err(HmsError::new(
                        Code::Unavailable,
                        "the NATS server did not answer about the event stream in time",
                    )
                    .with_origin("transport"))
                })?;
        }
        Ok(transport)
    }

    /// Where the runtime's events go, when it publishes them.
    pub fn event_publisher(&self) -> Option<Arc<dyn EventSink>> {
        self.publisher
            .clone()
            .map(|publisher| publisher as Arc<dyn EventSink>)
    }

    /// Starts bringing other runtimes' events into `subscription`: live, or
    /// replayed from the event stream and then live. Returns once NATS
    /// knows the subscription, so events published after it are delivered.
    /// With `own_events`, this runtime's own events come through NATS too.
    pub fn feed(
        &self,
        subscription: &Arc<Subscription>,
        filter: &Filter,
        own_events: bool,
    ) -> Result<RemoteFeed> {
        let subject = feed_subject(&self.settings.subject_prefix, filter);
        let client = self.client.clone();
        let wait = self.settings.connect_timeout;
        let source = if filter.replays() {
            let Some(stream) = self.settings.event_stream.clone() else {
                return Err(HmsError::new(
                    Code::FailedPrecondition,
                    "EventFilter.replay_from_sequence and replay_from_time replay the event \
                     stream, and this runtime configures none (NatsTransport.event_stream)",
                )
                .with_detail("field", "replay_from_sequence"));
            };
            let filter = filter.clone();
            self.run(wait, async move {
                replay(&client, &stream, subject, &filter)
                    .await
                    .map(|messages| Source::Replay(Box::new(messages)))
            })
        } else {
            let connected = self.is_connected();
            self.run(wait, async move {
                let subscriber = subscribe_live(&client, subject).await?;
                if connected {
                    round_trip(&client).await;
                }
                Ok(Source::Live(subscriber))
            })
        };
        let source = source.unwrap_or_else(|| {
            Err(HmsError::new(
                Code::Unavailable,
                "the NATS server did not take the event subscription in time",
            )
            .with_origin("transport"))
        })?;
        Ok(RemoteFeed::start(
            &self.spawner,
            source,
            subscription.clone(),
            if own_events {
                String::new()
            } else {
                self.identity.clone()
            },
        ))
    }

    /// The runtime's name, or the id generated for it.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    /// Whether the client is connected to a server now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Runs `future` on the transport's runtime and waits for it at most
    /// `timeout`; `None` when it did not finish (or the runtime is gone).
    fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (sender, receiver) = sync_channel(1);
        self.spawner.spawn(async move {
            let _ = sender.send(future.await);
        });
        receiver.recv_timeout(timeout).ok()
    }

    // ------------------------------------------------------------ calling

    /// Sends the request of `service/method` (in whichever runtime exports
    /// it) and returns at once, so that many calls can be in flight (a
    /// batch); [`PendingCall::wait`] takes the answer.
    pub fn send(
        &self,
        service: &str,
        method: &str,
        format: Format,
        request: &[u8],
        options: &CallOptions,
    ) -> Result<PendingCall> {
        let subject = method_subject(&self.settings.subject_prefix, service, method);
        self.send_to(subject, service, method, None, format, request, options)
    }

    /// Sends the request of the blocking hook `hook_id` (of method
    /// `method_name`) to `runtime`, which registered it, as [`Transport::send`].
    pub fn send_hook(
        &self,
        runtime: &str,
        hook_id: &str,
        method_name: &str,
        format: Format,
        request: &[u8],
        options: &CallOptions,
    ) -> Result<PendingCall> {
        let (service, method) = crate::registry::split_method(method_name)?;
        let subject = hook_subject(&self.settings.subject_prefix, runtime);
        let hook = HookTarget {
            runtime: runtime.to_owned(),
            hook_id: hook_id.to_owned(),
        };
        self.send_to(
            subject,
            service,
            method,
            Some(hook),
            format,
            request,
            options,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn send_to(
        &self,
        subject: String,
        service: &str,
        method: &str,
        hook: Option<HookTarget>,
        format: Format,
        request: &[u8],
        options: &CallOptions,
    ) -> Result<PendingCall> {
        let full_name = format!("{service}/{method}");
        let fail = |error: HmsError| failed_at(error, &subject);
        if !self.is_connected() {
            return Err(fail(HmsError::new(
                Code::Unavailable,
                format!(
                    "`{full_name}` is not served in this runtime, and the NATS connection is down \
                     (the client reconnects by itself; retry later)"
                ),
            )));
        }
        let budget = match options.deadline_ms {
            0 => self.settings.request_timeout,
            ms => Duration::from_millis(ms.into()),
        };
        let deadline = Instant::now() + budget;
        let mut headers = request_headers(format, budget, options)?;
        if let Some(hook) = &hook {
            headers.insert(headers::HOOK_ID, hook.hook_id.as_str());
        }
        let max_payload = self.client.server_info().max_payload;
        let size = request.len() + wire_len(&headers);
        if size > max_payload {
            return Err(fail(
                HmsError::exhausted(format!(
                    "the request to `{full_name}` takes {size} bytes with its headers, over the \
                     NATS server's max_payload of {max_payload} bytes"
                ))
                .with_detail("size", size)
                .with_detail("max_payload", max_payload),
            ));
        }
        let client = self.client.clone();
        let mut connected = self.connected.clone();
        let request = async_nats::Request::new()
            .payload(Bytes::copy_from_slice(request))
            .headers(headers)
            // No tokio timer: the caller's thread keeps the deadline.
            .timeout(None);
        let request_subject = subject.clone();
        let mut request: Request = Box::pin(async move {
            let outcome = tokio::select! {
                biased;
                reply = client.send_request(request_subject, request) => Outcome::Reply(reply),
                lost = connected.wait_for(|up| !*up) => match lost {
                    Ok(_) => Outcome::ConnectionLost,
                    Err(_) => Outcome::ShutDown,
                },
            };
            match outcome {
                Outcome::Reply(Err(error))
                    if error.kind() == RequestErrorKind::Other
                        && connected.has_changed().is_err() =>
                {
                    Outcome::ShutDown
                }
                outcome => outcome,
            }
        });
        // One poll hands the request to the client's connection task, so
        // it leaves now and many can be in flight (a batch).
        let answer = match drive(request.as_mut(), Instant::now()) {
            Some(outcome) => Answer::Here(outcome),
            None => Answer::Coming(request),
        };
        Ok(PendingCall {
            answer,
            client: self.client.clone(),
            discovery_timeout: self.settings.discovery_timeout,
            deadline,
            budget,
            service: service.to_owned(),
            method: method.to_owned(),
            full_name,
            subject,
            format,
            max_payload,
            hook,
        })
    }

    // ---------------------------------------------------------- exporting

    /// Answers the other runtimes sharing this one's store when they ask it
    /// to run one of its blocking hooks, on [`hook_subject`] (a NATS service
    /// of its own, so its calls are counted like the exports').
    pub fn serve_hooks(&self) -> Result<()> {
        let client = self.client.clone();
        let serving = self.serving.clone();
        let subject = hook_subject(&self.settings.subject_prefix, &self.identity);
        let starting = async move {
            let announcement = client
                .service_builder()
                .description("blocking lifecycle hooks of one HMS runtime")
                .queue_group(subject.clone())
                .start(HOOKS_SERVICE, env!("CARGO_PKG_VERSION"))
                .await?;
            let mut endpoint = announcement
                .endpoint_builder()
                .name("RunHook")
                .add(subject)
                .await?;
            tokio::spawn(async move {
                // Kept alive while its endpoint serves.
                let _announcement = announcement;
                while let Some(request) = endpoint.next().await {
                    serving.accept_hook(request);
                }
            });
            Ok::<(), async_nats::Error>(())
        };
        match self.run(self.settings.connect_timeout, starting) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(HmsError::new(
                Code::Unavailable,
                format!("cannot serve this runtime's hooks on NATS: {e}"),
            )
            .with_origin("transport")),
            None => Err(HmsError::new(
                Code::Unavailable,
                "the NATS server did not take this runtime's hook subscription in time",
            )
            .with_origin("transport")),
        }
    }

    /// Serves `service` on NATS (announced, one endpoint per method);
    /// replaces an export of an older registration under the same name.
    pub fn export(&self, service: &Arc<Service>) -> Result<()> {
        let name = service.descriptor.name.clone();
        if let Some(old) = self.exports.lock().remove(&name) {
            self.stop_export(old, Instant::now() + STOP_TIMEOUT);
        }
        let prefix = self.settings.subject_prefix.clone();
        let descriptor = service.descriptor.clone();
        let client = self.client.clone();
        let serving = self.serving.clone();
        let (stop, stopped) = watch::channel(false);
        let starting = async move {
            let mut metadata = HashMap::new();
            metadata.insert(announce::SERVICE.to_owned(), descriptor.name.clone());
            metadata.insert(announce::RUNTIME.to_owned(), serving.identity.clone());
            metadata.insert(
                announce::SERVICE_VERSION.to_owned(),
                descriptor.version.clone(),
            );
            let announcement = client
                .service_builder()
                .description(&descriptor.description)
                .metadata(metadata)
                .queue_group(queue_group(&prefix, &descriptor.name))
                .start(
                    nats_service_name(&descriptor.name),
                    env!("CARGO_PKG_VERSION"),
                )
                .await?;
            let mut readers = Vec::new();
            for method in &descriptor.methods {
                let mut metadata = HashMap::new();
                metadata.insert(announce::INPUT_TYPE.to_owned(), method.input_type.clone());
                metadata.insert(announce::OUTPUT_TYPE.to_owned(), method.output_type.clone());
                let endpoint = announcement
                    .endpoint_builder()
                    .name(&method.name)
                    .metadata(metadata)
                    .add(method_subject(&prefix, &descriptor.name, &method.name))
                    .await?;
                let full_name = format!("{}/{}", descriptor.name, method.name);
                readers.push(tokio::spawn(serve_endpoint(
                    endpoint,
                    serving.clone(),
                    full_name,
                    stopped.clone(),
                )));
            }
            // The server knows the subscriptions before the registration
            // returns, so a call made right after it finds them. While
            // disconnected they are sent on reconnect instead.
            round_trip(&client).await;
            Ok::<_, async_nats::Error>((announcement, readers))
        };
        let (announcement, readers) = self
            .run(self.settings.connect_timeout, starting)
            .ok_or_else(|| {
                HmsError::new(
                    Code::Unavailable,
                    format!("exporting `{name}` on NATS did not finish in time"),
                )
            })?
            .map_err(|e| {
                HmsError::new(
                    Code::Unavailable,
                    format!("cannot export `{name}` on NATS: {e}"),
                )
                .with_origin("transport")
            })?;
        self.exports.lock().insert(
            name,
            Export {
                registration: Arc::downgrade(service),
                announcement,
                readers,
                stop,
            },
        );
        Ok(())
    }

    /// Stops serving `service` if its export serves this registration,
    /// waiting for the server at most until `until` (and one second).
    pub fn withdraw(&self, service: &Arc<Service>, until: Option<Instant>) {
        let export = {
            let mut exports = self.exports.lock();
            match exports.get(&service.descriptor.name) {
                Some(export)
                    if std::ptr::eq(export.registration.as_ptr(), Arc::as_ptr(service)) =>
                {
                    exports.remove(&service.descriptor.name)
                }
                _ => None,
            }
        };
        if let Some(export) = export {
            let bound = Instant::now() + STOP_TIMEOUT;
            self.stop_export(export, until.map_or(bound, |until| until.min(bound)));
        }
        // Its readers have stopped, so no call of it can be queued after this.
        self.serving.fail_waiting_for(service);
    }

    /// Stops answering for `export` and announcing it, waiting until
    /// `until` at most (never more than [`STOP_TIMEOUT`]). The flush that
    /// makes the server forget it at once is skipped while disconnected:
    /// it would only wait, and the server forgets a lost connection's
    /// subscriptions anyway.
    fn stop_export(&self, export: Export, until: Instant) {
        let Export {
            announcement,
            readers,
            stop,
            ..
        } = export;
        stop.send_replace(true);
        let client = self.client.clone();
        let connected = self.is_connected();
        let wait = stop_step(until);
        let stopping = async move {
            for reader in readers {
                let _ = reader.await;
            }
            let _ = announcement.stop().await;
            if connected {
                round_trip(&client).await;
            }
        };
        // Past the bound it goes on in the background (or ends with the
        // tokio runtime at shutdown).
        let _ = self.run(wait, stopping);
    }

    /// Names of the services exported now, sorted.
    pub fn exported(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exports.lock().keys().cloned().collect();
        names.sort();
        names
    }

    // ---------------------------------------------------------- discovery

    /// The HMS services other runtimes (and this one) announce on NATS,
    /// whose names start with `prefix`, with `origin` "remote" and the
    /// runtimes serving them in `served_by`. Waits `discovery_timeout` for
    /// answers; an unreachable server gives an empty list.
    pub fn discover(&self, name_prefix: &str) -> Vec<ServiceDescriptor> {
        if !self.is_connected() {
            return Vec::new();
        }
        let client = self.client.clone();
        let window = self.settings.discovery_timeout;
        let collecting = async move {
            let inbox = client.new_inbox();
            let Ok(mut answers) = client.subscribe(inbox.clone()).await else {
                return Vec::new();
            };
            if client
                .publish_with_reply("$SRV.INFO", inbox, Bytes::new())
                .await
                .is_err()
            {
                return Vec::new();
            }
            let _ = client.flush().await;
            let mut infos = Vec::new();
            let until = tokio::time::Instant::now() + window;
            while let Ok(Some(message)) = tokio::time::timeout_at(until, answers.next()).await {
                if let Ok(info) =
                    serde_json::from_slice::<async_nats::service::Info>(&message.payload)
                {
                    infos.push(info);
                }
            }
            infos
        };
        let infos = self
            .run(window + STOP_TIMEOUT, collecting)
            .unwrap_or_default();
        services_of(infos, &self.settings.subject_prefix, name_prefix)
    }

    // ----------------------------------------------------------- shutdown

    /// Stops every export, lets the exported calls in flight finish and
    /// their replies reach the server, then stops the tokio runtime, waiting
    /// at most until `until` (and never more than a second for each step):
    /// calls pending then fail with UNAVAILABLE.
    pub fn shutdown(&self, until: Instant) {
        // The runtime's last events (its services unregistered) go out
        // before the connection closes.
        if let Some(publisher) = &self.publisher {
            publisher.close();
        }
        if let Some(publishing) = self.publishing.lock().take() {
            let wait = stop_step(until);
            let _ = self.run(wait, publishing);
        }
        let exports: Vec<Export> = self.exports.lock().drain().map(|(_, e)| e).collect();
        for export in exports {
            self.stop_export(export, until);
        }
        self.serving.close_host_queue();
        self.drain(until);
        if let Some(tokio) = self.tokio.lock().take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // A host calling from inside its own tokio runtime, where
                // blocking would panic: the threads end in the background.
                tokio.shutdown_background();
            } else {
                tokio.shutdown_timeout(stop_step(until));
            }
        }
    }
}

impl Transport {
    /// Waits until `until` (at most [`STOP_TIMEOUT`]) for the exported
    /// calls still running and their replies, then flushes the replies to
    /// the server. Skipped while disconnected: nothing can be sent then.
    fn drain(&self, until: Instant) {
        if !self.is_connected() {
            return;
        }
        let serving = self.serving.clone();
        let client = self.client.clone();
        let wait = stop_step(until);
        let draining = async move {
            while serving.in_flight.load(Ordering::Acquire) > 0
                || serving.unsent.load(Ordering::Acquire) > 0
            {
                tokio::time::sleep(DRAIN_POLL).await;
            }
            let _ = client.flush().await;
        };
        let _ = self.run(wait, draining);
    }
}

/// How often a draining shutdown looks at the calls still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(2);

impl Drop for Transport {
    fn drop(&mut self) {
        // A runtime dropped without hms_runtime_free (Rust callers): its
        // threads end in the background, without blocking the dropper.
        if let Some(tokio) = self.tokio.get_mut().take() {
            tokio.shutdown_background();
        }
    }
}

/// An error of the caller's side of a remote call to `subject`.
/// A status the remote runtime answered (its origin set) comes back
/// unchanged, details included; what this side decided names the subject it
/// tried, with origin `transport`.
fn failed_at(error: HmsError, subject: &str) -> HmsError {
    if !error.origin.is_empty() {
        return error;
    }
    error
        .with_detail("subject", subject)
        .with_origin("transport")
}

/// Which runtime runs a hook call, and the hook there.
struct HookTarget {
    runtime: String,
    hook_id: String,
}

/// A remote call sent by [`Transport::send`], its answer to come.
pub struct PendingCall {
    /// Set for a hook call ([`Transport::send_hook`]).
    hook: Option<HookTarget>,
    answer: Answer,
    /// Asks, on no responders, whether the service is served at all.
    client: Client,
    discovery_timeout: Duration,
    deadline: Instant,
    budget: Duration,
    service: String,
    method: String,
    full_name: String,
    subject: String,
    format: Format,
    max_payload: usize,
}

/// The answer of a [`PendingCall`]: known when sending already ended the
/// request (an error), else still coming.
enum Answer {
    Here(Outcome),
    Coming(Request),
}

impl PendingCall {
    /// Waits for the answer (never past the call's deadline); it is
    /// appended to `out` in the call's format.
    pub fn wait(self, limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
        let PendingCall {
            answer,
            client,
            discovery_timeout,
            deadline,
            budget,
            service,
            method,
            full_name,
            subject,
            format,
            max_payload,
            hook,
        } = self;
        let (service, method) = (service.as_str(), method.as_str());
        let fail = |error: HmsError| failed_at(error, &subject);
        let outcome = match answer {
            Answer::Here(outcome) => outcome,
            Answer::Coming(mut request) => match drive(request.as_mut(), deadline) {
                Some(outcome) => outcome,
                None => return Err(fail(deadline_exceeded(&full_name, budget))),
            },
        };
        let reply = match outcome {
            Outcome::ShutDown => {
                return Err(fail(HmsError::new(
                    Code::Unavailable,
                    "the NATS transport of this runtime is shut down",
                )));
            }
            Outcome::ConnectionLost => {
                return Err(fail(HmsError::new(
                    Code::Unavailable,
                    format!(
                        "the NATS connection was lost while `{full_name}` was pending; it may \
                         or may not have run (request/reply is at most once)"
                    ),
                )));
            }
            Outcome::Reply(Ok(reply)) => reply,
            Outcome::Reply(Err(error))
                if error.kind() == RequestErrorKind::NoResponders
                    && let Some(hook) = &hook =>
            {
                return Err(fail(super::hook_gone(
                    &hook.runtime,
                    &hook.hook_id,
                    "its runtime does not answer on NATS (it stopped or lost its connection)",
                )));
            }
            // No responders: is the whole service missing, or only this
            // method of it? Only this error path pays for the question.
            Outcome::Reply(Err(error))
                if error.kind() == RequestErrorKind::NoResponders
                    && service_answers_ping(&client, service, discovery_timeout, deadline) =>
            {
                return Err(fail(
                    HmsError::not_found(format!(
                        "service `{service}` is served on NATS, but not its method `{method}`"
                    ))
                    .with_detail("service", service)
                    .with_detail("method", method),
                ));
            }
            Outcome::Reply(Err(error)) => {
                return Err(fail(match error.kind() {
                    RequestErrorKind::NoResponders => HmsError::new(
                        Code::Unavailable,
                        format!(
                            "no runtime serves `{full_name}`: it is not registered here, and \
                             nobody exports it on NATS"
                        ),
                    )
                    .with_detail("service", service),
                    RequestErrorKind::TimedOut => deadline_exceeded(&full_name, budget),
                    RequestErrorKind::MaxPayloadExceeded => HmsError::exhausted(format!(
                        "the request to `{full_name}` is over the NATS server's max_payload of \
                         {max_payload} bytes: {error}"
                    ))
                    .with_detail("max_payload", max_payload),
                    _ => HmsError::new(
                        Code::Unavailable,
                        format!("the request to `{full_name}` failed on NATS: {error}"),
                    ),
                }));
            }
        };
        read_reply(&reply, format, limits, &full_name, out).map_err(fail)
    }
}

/// Whether some runtime announces `service` on NATS: it answers a ping
/// within `window`, and before `deadline`.
fn service_answers_ping(
    client: &Client,
    service: &str,
    window: Duration,
    deadline: Instant,
) -> bool {
    let until = deadline.min(Instant::now() + window);
    let ping = format!("$SRV.PING.{}", nats_service_name(service));
    let question = client.send_request(ping, async_nats::Request::new().timeout(None));
    matches!(drive(std::pin::pin!(question), until), Some(Ok(_)))
}

fn connect_options(
    settings: &TransportSettings,
    identity: &str,
    state: watch::Sender<bool>,
) -> Result<ConnectOptions> {
    let state = Arc::new(state);
    let name = if settings.connection_name.is_empty() {
        identity.to_owned()
    } else {
        settings.connection_name.clone()
    };
    let mut options = ConnectOptions::new()
        .name(name)
        .connection_timeout(settings.connect_timeout)
        .request_timeout(Some(settings.request_timeout))
        // Reconnect for ever, quickly at first: a restarted server must be
        // found again without the host doing anything.
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64).saturating_mul(100).min(2_000))
        })
        .event_callback(move |event| {
            let state = state.clone();
            async move {
                match event {
                    Event::Connected => {
                        state.send_replace(true);
                    }
                    Event::Disconnected | Event::Closed => {
                        state.send_replace(false);
                    }
                    _ => {}
                }
            }
        });
    options = match &settings.auth {
        Auth::None | Auth::CredentialsFile(_) => options,
        Auth::Token(token) => options.token(token.clone()),
        Auth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        Auth::NkeySeedFile(path) => {
            let seed = std::fs::read_to_string(path).map_err(|e| {
                HmsError::invalid_argument(format!("nats.nkey_seed_file {}: {e}", path.display()))
                    .with_detail("field", "nats.nkey_seed_file")
            })?;
            options.nkey(seed.trim().to_owned())
        }
    };
    if let Some(ca) = &settings.ca_file {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &settings.client_cert {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(options)
}

fn deadline_exceeded(full_name: &str, budget: Duration) -> HmsError {
    HmsError::new(
        Code::DeadlineExceeded,
        format!(
            "`{full_name}` did not answer over NATS within its deadline of {} ms; it may or may \
             not have run",
            budget.as_millis()
        ),
    )
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Protobuf => "protobuf",
        Format::Cbor => "cbor",
        Format::Json => "json",
    }
}

fn format_of(name: &str) -> Option<Format> {
    match name {
        "protobuf" => Some(Format::Protobuf),
        "cbor" => Some(Format::Cbor),
        "json" => Some(Format::Json),
        _ => None,
    }
}

/// The headers of a request (see `super::headers`).
fn request_headers(format: Format, budget: Duration, options: &CallOptions) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    map.insert(headers::FORMAT, format_name(format));
    map.insert(
        headers::DEADLINE_MS,
        budget.as_millis().to_string().as_str(),
    );
    if !options.trace_id.is_empty() {
        map.insert(headers::TRACE_ID, escape(&options.trace_id).as_str());
    }
    for (key, value) in &options.metadata {
        let name = format!("{}{}", headers::META_PREFIX, escape(key));
        map.insert(name.as_str(), escape(value).as_str());
    }
    if let Some(credentials) = &options.credentials {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials.encode_to_vec());
        map.insert(headers::CREDENTIALS, encoded.as_str());
    }
    Ok(map)
}

/// Bytes `headers` take on the wire ("NATS/1.0\r\n", "name: value\r\n"
/// each, "\r\n"), to compare a message with the server's max_payload.
fn wire_len(headers: &HeaderMap) -> usize {
    let mut size = "NATS/1.0\r\n\r\n".len();
    for (name, values) in headers.iter() {
        for value in values {
            let name: &str = name.as_ref();
            size += name.len() + 2 + value.as_str().len() + 2;
        }
    }
    size
}

fn header<'a>(map: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    map?.get(name).map(|value| value.as_str())
}

/// The `Nats-Request-Info` headers of a request under any spelling of the
/// name: nats-server replaces the one spelled as it writes it, and leaves a
/// sender's `nats-request-info` beside it, so each one counts.
pub(super) fn request_info(map: Option<&HeaderMap>) -> Vec<&str> {
    let Some(map) = map else {
        return Vec::new();
    };
    map.iter()
        .filter(|(name, _)| {
            let name: &str = name.as_ref();
            name.eq_ignore_ascii_case(crate::security::NATS_REQUEST_INFO)
        })
        .flat_map(|(_, values)| values.iter().map(|value| value.as_str()))
        .collect()
}

/// The call a request asks for: its format and its options.
fn call_of(map: Option<&HeaderMap>) -> Result<(Format, CallOptions)> {
    let format = match header(map, headers::FORMAT) {
        None => Format::Protobuf,
        Some(name) => format_of(name).ok_or_else(|| {
            HmsError::invalid_argument(format!(
                "header {} is {name:?}; give protobuf, cbor or json",
                headers::FORMAT
            ))
        })?,
    };
    let mut options = CallOptions::default();
    if let Some(ms) = header(map, headers::DEADLINE_MS) {
        options.deadline_ms = ms.trim().parse().map_err(|_| {
            HmsError::invalid_argument(format!(
                "header {} is {ms:?}, not a number of milliseconds",
                headers::DEADLINE_MS
            ))
        })?;
        // A request whose deadline is spent on the way still gets one:
        // 0 would mean "no deadline" to the dispatch.
        options.deadline_ms = options.deadline_ms.max(1);
    }
    if let Some(trace) = header(map, headers::TRACE_ID) {
        options.trace_id = unescape(trace).unwrap_or_else(|| trace.to_owned());
    }
    if let Some(credentials) = header(map, headers::CREDENTIALS) {
        // The errors say where, not what: the header holds a secret.
        let bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .map_err(|_| {
                    HmsError::decode(format!("header {} is not base64", headers::CREDENTIALS))
                })?,
        );
        options.credentials = Some(Credentials::decode(bytes.as_slice()).map_err(|_| {
            HmsError::decode(format!(
                "header {} is not an hms.v1.Credentials",
                headers::CREDENTIALS
            ))
        })?);
    }
    if let Some(map) = map {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            let Some(key) = name.strip_prefix(headers::META_PREFIX) else {
                continue;
            };
            let (Some(key), Some(value)) = (
                unescape(key),
                values.first().and_then(|v| unescape(v.as_str())),
            ) else {
                return Err(HmsError::decode(format!(
                    "metadata header {name} is not percent-encoded UTF-8"
                )));
            };
            options.metadata.insert(key, value);
        }
    }
    Ok((format, options))
}

/// The answer of a reply, or the error it carries. Anything that does not
/// follow the protocol is DECODE_ERROR: whoever answered is not an HMS
/// runtime (or a broken one), and its bytes are not passed on as an answer.
fn read_reply(
    reply: &async_nats::Message,
    format: Format,
    limits: &Limits,
    full_name: &str,
    out: &mut Vec<u8>,
) -> Result<()> {
    let garbled = |problem: String| {
        HmsError::decode(format!(
            "the reply to `{full_name}` is not an HMS reply: {problem}"
        ))
    };
    let Some(status) = header(reply.headers.as_ref(), headers::STATUS) else {
        return Err(garbled(format!("it has no {} header", headers::STATUS)));
    };
    let code = status
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(Code::from_i32)
        .ok_or_else(|| {
            garbled(format!(
                "its {} header is {status:?}, not a status code",
                headers::STATUS
            ))
        })?;
    let size = reply.payload.len();
    if size > limits.max_message_bytes {
        return Err(HmsError::exhausted(format!(
            "the reply to `{full_name}` is {size} bytes, over this runtime's max_message_bytes \
             of {}",
            limits.max_message_bytes
        ))
        .with_detail("size", size)
        .with_detail("max_message_bytes", limits.max_message_bytes));
    }
    if code == Code::Ok {
        out.extend_from_slice(&reply.payload);
        return Ok(());
    }
    let status: Status = codec::decode_typed(format, &reply.payload, limits)
        .map_err(|e| garbled(format!("its status does not decode: {}", e.message)))?;
    if status.code != code.as_i32() {
        return Err(garbled(format!(
            "its {} header says {} and its status {}",
            headers::STATUS,
            code.as_i32(),
            status.code
        )));
    }
    let mut error = HmsError::from_status(status);
    if error.origin.is_empty() {
        error.origin = "remote".to_owned();
    }
    Err(error)
}

/// Reads the requests of one endpoint until `stop` turns true, then
/// unsubscribes.
async fn serve_endpoint(
    mut endpoint: async_nats::service::endpoint::Endpoint,
    serving: Arc<Serving>,
    full_name: String,
    mut stop: watch::Receiver<bool>,
) {
    let full_name: Arc<str> = full_name.into();
    loop {
        tokio::select! {
            request = endpoint.next() => match request {
                Some(request) => serving.accept(request, full_name.clone()),
                None => return,
            },
            // Only ever set to true, so any change means stop.
            _ = stop.changed() => {
                let _ = endpoint.stop().await;
                return;
            }
        }
    }
}

/// Longest [`round_trip`] waits for the server.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);

/// Returns once the server has handled everything this client sent before
/// (a flush only hands it to the socket): a message to itself comes back
/// after the server processed what preceded it on the connection.
async fn round_trip(client: &Client) {
    let inbox = client.new_inbox();
    let Ok(mut echo) = client.subscribe(inbox.clone()).await else {
        return;
    };
    if client.publish(inbox, Bytes::new()).await.is_ok() {
        let _ = tokio::time::timeout(ROUND_TRIP_TIMEOUT, echo.next()).await;
    }
}

impl Serving {
    /// Runs the blocking hook a request names, as an exported call of its
    /// method: only a hook's method is reachable this way, never another
    /// method of this runtime that it does not export.
    fn accept_hook(self: &Arc<Self>, request: ServiceRequest) {
        let hook_id = header(request.message.headers.as_ref(), headers::HOOK_ID).unwrap_or("");
        let method = self
            .runtime
            .upgrade()
            .and_then(|runtime| runtime.domain.blocking_hook_method(hook_id));
        match method {
            Some(method) => self.accept(request, method.into()),
            None => {
                let gone = super::hook_gone(&self.identity, hook_id, "it is not registered there");
                self.respond(request, Err(gone), Format::Cbor);
            }
        }
    }

    /// Runs one request on a library thread (or queues it for the host's
    /// thread) and sends its reply.
    fn accept(self: &Arc<Self>, request: ServiceRequest, full_name: Arc<str>) {
        if request.message.reply.is_none() {
            // A publish without a reply subject asks for nothing.
            return;
        }
        let (format, options) = match call_of(request.message.headers.as_ref()) {
            Ok(call) => call,
            Err(error) => {
                let format = header(request.message.headers.as_ref(), headers::FORMAT)
                    .and_then(format_of)
                    .unwrap_or(Format::Json);
                self.respond(request, Err(error), format);
                return;
            }
        };
        if let Some(target) = self.host_thread_target(&full_name) {
            self.wait_for_host(request, target, full_name, format, options);
            return;
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_SERVED_CALLS {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            let busy = HmsError::exhausted(format!(
                "runtime {} is running {MAX_SERVED_CALLS} remote calls already",
                self.identity
            ));
            self.respond(request, Err(busy), format);
            return;
        }
        let serving = self.clone();
        let job = move || {
            let mut out = Vec::new();
            let stamps = request_info(request.message.headers.as_ref());
            let result = match serving.runtime.upgrade() {
                Some(runtime) => runtime.call_with_options(
                    &full_name,
                    format,
                    &request.message.payload,
                    options,
                    &mut out,
                    crate::runtime::Reach::LocalOnly(&stamps),
                ),
                None => Err(HmsError::new(
                    Code::Unavailable,
                    "the runtime serving this call is being freed",
                )),
            };
            // Counted as unsent before it stops counting as in flight, so a
            // draining shutdown never sees both at zero in between.
            serving.respond(request, result.map(|()| out), format);
            serving.in_flight.fetch_sub(1, Ordering::AcqRel);
        };
        if crate::workers::execute(job).is_err() {
            // No thread could start: the job went with the error, request
            // and all, so the caller sees its deadline pass.
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Sends the reply of `request`: the answer with `Hms-Status: 0`, or
    /// the error as an `hms.v1.Status` in `format` with its code.
    fn respond(&self, request: ServiceRequest, result: Result<Vec<u8>>, format: Format) {
        let max_payload = self.client.server_info().max_payload;
        let result = result.and_then(|answer| {
            if answer.len() + REPLY_HEADER_BYTES > max_payload {
                Err(HmsError::exhausted(format!(
                    "the answer is {} bytes, over the NATS server's max_payload of {max_payload} \
                     bytes",
                    answer.len()
                ))
                .with_detail("size", answer.len())
                .with_detail("max_payload", max_payload))
            } else {
                Ok(answer)
            }
        });
        let (code, body) = match result {
            Ok(answer) => (Code::Ok, answer),
            Err(error) => {
                let mut status = error.to_status();
                // Whatever raised it inside, the caller learns which
                // runtime answered.
                status.origin = self.identity.clone();
                let mut body = Vec::new();
                let _ = codec::encode_typed(&status, format, &mut body);
                (error.code, body)
            }
        };
        let mut map = HeaderMap::new();
        map.insert(headers::STATUS, code.as_i32().to_string().as_str());
        self.unsent.fetch_add(1, Ordering::AcqRel);
        let unsent = self.unsent.clone();
        self.spawner.spawn(async move {
            let _ = request.respond_with_headers(Ok(body.into()), map).await;
            unsent.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Most bytes the headers of a reply take ("Hms-Status: <code>").
const REPLY_HEADER_BYTES: usize = 64;

/// The HMS services among `$SRV.INFO` answers, merged by name.
fn services_of(
    infos: Vec<async_nats::service::Info>,
    subject_prefix: &str,
    name_prefix: &str,
) -> Vec<ServiceDescriptor> {
    let subjects = format!("{subject_prefix}.svc.");
    let mut by_name: BTreeMap<String, (ServiceDescriptor, BTreeSet<String>)> = BTreeMap::new();
    for info in infos {
        let Some(name) = info.metadata.get(announce::SERVICE) else {
            continue;
        };
        if !name.starts_with(name_prefix)
            || !info
                .endpoints
                .iter()
                .all(|e| e.subject.starts_with(&subjects))
        {
            continue;
        }
        let (_, runtimes) = by_name.entry(name.clone()).or_insert_with(|| {
            let mut methods: Vec<MethodDescriptor> = info
                .endpoints
                .iter()
                .map(|endpoint| MethodDescriptor {
                    name: endpoint.name.clone(),
                    input_type: endpoint
                        .metadata
                        .get(announce::INPUT_TYPE)
                        .cloned()
                        .unwrap_or_default(),
                    output_type: endpoint
                        .metadata
                        .get(announce::OUTPUT_TYPE)
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect();
            methods.sort_by(|a, b| a.name.cmp(&b.name));
            let descriptor = ServiceDescriptor {
                name: name.clone(),
                version: info
                    .metadata
                    .get(announce::SERVICE_VERSION)
                    .cloned()
                    .unwrap_or_else(|| info.version.clone()),
                methods,
                origin: "remote".to_owned(),
                description: info.description.clone(),
                served_by: Vec::new(),
            };
            (descriptor, BTreeSet::new())
        });
        runtimes.insert(
            info.metadata
                .get(announce::RUNTIME)
                .cloned()
                .unwrap_or_else(|| info.id.clone()),
        );
    }
    by_name
        .into_values()
        .map(|(mut descriptor, runtimes)| {
            descriptor.served_by = runtimes.into_iter().collect();
            descriptor
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_round_trip() {
        let mut options = CallOptions {
            deadline_ms: 1234,
            trace_id: "trace 1".into(),
            credentials: Some(Credentials {
                scheme: "bearer".into(),
                token: "t:o\r\nk".into(),
                principal: String::new(),
            }),
            ..Default::default()
        };
        options
            .metadata
            .insert("user id".into(), "ü: value\r\n".into());
        let map = request_headers(Format::Cbor, Duration::from_millis(1234), &options).unwrap();
        let (format, decoded) = call_of(Some(&map)).unwrap();
        assert_eq!(format, Format::Cbor);
        assert_eq!(decoded, options);
    }

    #[test]
    fn a_request_without_headers_is_protobuf_without_deadline() {
        let (format, options) = call_of(None).unwrap();
        assert_eq!(format, Format::Protobuf);
        assert_eq!(options, CallOptions::default());
    }
}
