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
                    Ok(ListServicesResponse {
                        services: context.registry.list(&request.name_prefix),
                    })
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
