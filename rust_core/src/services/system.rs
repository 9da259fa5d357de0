//! `hms.sys.v1.System`: Echo, Health, Version.

use crate::error::Result;
use crate::proto::hms::sys::v1::{
    EchoRequest, EchoResponse, HealthRequest, HealthResponse, VersionRequest, VersionResponse,
    health_response::ServingStatus,
};
use crate::registry::Registry;

use super::{register_builtin, unary};

pub fn register(registry: &Registry) -> Result<()> {
    register_builtin(
        registry,
        "hms.sys.v1.System",
        "Echo, health and version of the runtime",
        vec![
            (
                "Echo",
                unary(|_, _, request: EchoRequest| {
                    Ok(EchoResponse {
                        payload: request.payload,
                        text: request.text,
                    })
                }),
            ),
            (
                "Health",
                unary(|context, _, _: HealthRequest| {
                    Ok(HealthResponse {
                        status: ServingStatus::Serving as i32,
                        runtime_name: context.settings.name.clone(),
                        uptime_ms: context.started.elapsed().as_millis() as u64,
                        services: context.registry.len() as u32,
                        subscriptions: context.events.subscriber_count() as u32,
                        storage: if context.settings.data_dir.is_some() {
                            "sqlite"
                        } else {
                            "memory"
                        }
                        .into(),
                        abandoned_handler_threads: crate::workers::abandoned_threads()
                            .try_into()
                            .unwrap_or(u32::MAX),
                    })
                }),
            ),
            (
                "Version",
                unary(|_, _, _: VersionRequest| {
                    Ok(VersionResponse {
                        library_version: env!("CARGO_PKG_VERSION").into(),
                        abi_major: crate::ABI_VERSION_MAJOR,
                        abi_minor: crate::ABI_VERSION_MINOR,
                        formats: vec!["protobuf".into(), "cbor".into(), "json".into()],
                    })
                }),
            ),
        ],
    )
}
