//! `hms.registry.v1.Registry`: what a runtime can call.

use crate::error::{HmsError, Result};
use crate::proto::hms::registry::v1::{
    DescribeServiceRequest, DescribeServiceResponse, ListServicesRequest, ListServicesResponse,
};
use crate::registry::Registry;

use super::{register_builtin, unary};

pub fn register(registry: &Registry) -> Result<()> {
    register_builtin(
        registry,
        "hms.registry.v1.Registry",
        "Lists and describes the services of the runtime",
        vec![
            (
                "ListServices",
                unary(|context, _, request: ListServicesRequest| {
                    let mut services = context.registry.list(&request.name_prefix);
                    // Remote services that are not registered here too
                    // (a local one answers every call of its name).
                    if let Some(transport) = context.transport.get() {
                        let remote = transport.discover(&request.name_prefix);
                        services.extend(
                            remote
                                .into_iter()
                                .filter(|s| context.registry.get(&s.name).is_none()),
                        );
                        services.sort_by(|a, b| a.name.cmp(&b.name));
                    }
                    Ok(ListServicesResponse { services })
                }),
            ),
            (
                "DescribeService",
                unary(|context, _, request: DescribeServiceRequest| {
                    let service = context.registry.get(&request.name).ok_or_else(|| {
                        HmsError::not_found(format!("no service named `{}`", request.name))
                            .with_detail("service", &request.name)
                    })?;
                    Ok(DescribeServiceResponse {
                        service: Some(service.descriptor.clone()),
                    })
                }),
            ),
        ],
    )
}
