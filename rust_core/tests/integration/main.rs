//! The core's integration tests, one file per area, built as one test
//! binary so the crate is linked once rather than once per file.

mod common;

mod abi_version;
mod agents;
mod audit;
mod authorization;
mod call_context;
mod codec;
mod dispatch;
mod events;
mod fast_paths;
#[cfg(all(feature = "nats", feature = "postgres"))]
mod fleet;
mod formats;
mod host_services;
mod knowledge;
mod lifecycle;
#[cfg(feature = "nats")]
mod nats_identity;
#[cfg(not(feature = "nats"))]
mod no_transport;
mod postgres_fixture;
#[cfg(feature = "postgres")]
mod postgres_store;
#[cfg(feature = "nats")]
mod remote;
#[cfg(feature = "nats")]
mod remote_caller_thread;
#[cfg(feature = "nats")]
mod remote_events;
mod security;
mod storage;
mod task_queue;
mod tasks;
mod wire_values;
