//! `hms.audit.v1.Audit`: verifies and reads audit logs for the `hms audit`
//! commands. It reads host paths, so it serves only its own host: a call
//! that came in over the transport is refused (and the transport refuses to
//! export it).

use std::path::Path;

use crate::audit::{self, Chain};
use crate::error::{Code, HmsError, Result};
use crate::proto::hms::audit::v1::{ReadRequest, VerifyRequest};
use crate::registry::Registry;
use crate::runtime::CallContext;

use super::{register_builtin, unary};

pub const SERVICE: &str = "hms.audit.v1.Audit";

fn local_only(context: &CallContext<'_>) -> Result<()> {
    if context.reach.came_over_transport() {
        return Err(HmsError::new(
            Code::PermissionDenied,
            format!(
                "`{}` reads files of the host it runs on and serves only that host, never a \
                 call from another runtime",
                context.method
            ),
        ));
    }
    Ok(())
}

/// This runtime's own log, for a request that names no path.
fn own_log<'a>(context: &CallContext<'a>) -> Result<&'a crate::audit::Audit> {
    context.audit.ok_or_else(|| {
        HmsError::new(
            Code::FailedPrecondition,
            "this runtime keeps no audit log (RuntimeConfig.security.audit): name a log file",
        )
        .with_detail("field", "path")
    })
}

pub fn register(registry: &Registry) -> Result<()> {
    register_builtin(
        registry,
        SERVICE,
        "Verifies and reads audit logs of this host",
        vec![
            (
                "Verify",
                unary(|context, _, request: VerifyRequest| {
                    local_only(context)?;
                    if request.path.is_empty() {
                        return own_log(context)?.verify();
                    }
                    let key_file = Some(Path::new(&request.hmac_key_file))
                        .filter(|p| !p.as_os_str().is_empty());
                    let chain = Chain::from_key_file(key_file)
                        .map_err(|e| e.with_detail("field", "hmac_key_file"))?;
                    audit::verify_file(Path::new(&request.path), &chain)
                }),
            ),
            (
                "Read",
                unary(|context, _, request: ReadRequest| {
                    local_only(context)?;
                    if request.path.is_empty() {
                        return own_log(context)?.read(request.offset, request.max_records);
                    }
                    audit::read_file(
                        Path::new(&request.path),
                        request.offset,
                        request.max_records,
                    )
                }),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use crate::codec::Format;
    use crate::config::Settings;
    use crate::error::Code;
    use crate::proto::v1::CallOptions;
    use crate::runtime::{Reach, Runtime};

    #[test]
    fn calls_that_came_in_over_the_transport_are_refused() {
        let rt = Runtime::new(Settings::default()).unwrap();
        for method in ["Verify", "Read"] {
            let name = format!("{}/{method}", super::SERVICE);
            let call = |reach| {
                rt.call_with_options(
                    &name,
                    Format::Protobuf,
                    &[],
                    CallOptions::default(),
                    &mut Vec::new(),
                    reach,
                )
                .unwrap_err()
            };
            let error = call(Reach::LocalOnly(&[]));
            assert_eq!(error.code, Code::PermissionDenied, "{error:?}");
            assert!(error.message.contains("serves only that host"), "{error:?}");
            // The same call from this runtime's own host is served: it
            // fails only because this runtime keeps no log.
            let local = call(Reach::Anywhere);
            assert_eq!(local.code, Code::FailedPrecondition, "{local:?}");
        }
    }
}
