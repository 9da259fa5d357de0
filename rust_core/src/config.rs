//! Runtime configuration: `hms.v1.RuntimeConfig` with its defaults applied
//! and its bounds checked.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditSettings;
use crate::codec::{self, Format, JsonNames, Limits, MAX_DEPTH_CEILING};
use crate::domain::StoreSettings;
use crate::error::{HmsError, Result};
use crate::proto::v1::{JsonNames as ConfigJsonNames, RuntimeConfig};
use crate::security::Security;
use crate::transport::TransportSettings;

/// Largest accepted `max_message_bytes`: 1 GiB.
pub const MAX_MESSAGE_BYTES_CEILING: u64 = 1 << 30;
pub const DEFAULT_EVENT_QUEUE_CAPACITY: usize = 1024;
pub const MAX_EVENT_QUEUE_CAPACITY: u32 = 1 << 20;
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_SHUTDOWN_TIMEOUT_MS: u32 = 600_000;

#[derive(Clone, Debug)]
pub struct Settings {
    pub limits: Limits,
    pub data_dir: Option<PathBuf>,
    pub event_queue_capacity: usize,
    pub name: String,
    /// Longest `hms_runtime_free` waits for running handlers.
    pub shutdown_timeout: Duration,
    /// Remote calls over NATS; `None`: every call stays in this process and
    /// nothing of the transport is started.
    pub transport: Option<TransportSettings>,
    /// Authentication of calls; `None`: nothing is verified.
    pub security: Option<Arc<Security>>,
    /// The audit log; `None`: nothing is recorded (no security configured,
    /// or `security.audit.enabled` false).
    pub audit: Option<AuditSettings>,
    /// Where the domain's records live.
    pub store: StoreSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            data_dir: None,
            event_queue_capacity: DEFAULT_EVENT_QUEUE_CAPACITY,
            name: String::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            transport: None,
            security: None,
            audit: None,
            store: StoreSettings::Embedded,
        }
    }
}

impl Settings {
    /// Decodes a RuntimeConfig (empty means defaults) under default limits.
    pub fn decode(format: Format, bytes: &[u8]) -> Result<Settings> {
        if bytes.is_empty() {
            return Ok(Settings::default());
        }
        let config: RuntimeConfig = codec::decode_typed(format, bytes, &Limits::default())?;
        Settings::from_config(config)
    }

    pub fn from_config(config: RuntimeConfig) -> Result<Settings> {
        let mut settings = Settings::default();
        if let Some(bytes) = configured(
            config.max_message_bytes,
            MAX_MESSAGE_BYTES_CEILING,
            "max_message_bytes",
        )? {
            settings.limits.max_message_bytes = bytes as usize;
        }
        if let Some(depth) = configured(config.max_depth, MAX_DEPTH_CEILING, "max_depth")? {
            settings.limits.max_depth = depth;
        }
        if let Some(capacity) = configured(
            config.event_queue_capacity,
            MAX_EVENT_QUEUE_CAPACITY,
            "event_queue_capacity",
        )? {
            settings.event_queue_capacity = capacity as usize;
        }
        if !config.data_dir.is_empty() {
            settings.data_dir = Some(PathBuf::from(config.data_dir));
        }
        if let Some(ms) = configured(
            config.shutdown_timeout_ms,
            MAX_SHUTDOWN_TIMEOUT_MS,
            "shutdown_timeout_ms",
        )? {
            settings.shutdown_timeout = Duration::from_millis(ms.into());
        }
        settings.limits.json_names = match ConfigJsonNames::try_from(config.json_names) {
            Ok(ConfigJsonNames::Unspecified | ConfigJsonNames::Proto) => JsonNames::Proto,
            Ok(ConfigJsonNames::LowerCamelCase) => JsonNames::LowerCamelCase,
            Err(_) => {
                return Err(HmsError::invalid_argument(format!(
                    "json_names {} is not a hms.v1.JsonNames value",
                    config.json_names
                ))
                .with_detail("field", "json_names"));
            }
        };
        if let Some(nats) = config.nats {
            settings.transport = TransportSettings::from_config(nats)?;
        }
        if let Some(security) = config.security {
            settings.audit = AuditSettings::from_config(&security)?;
            settings.security = Some(Arc::new(Security::from_config(security)?));
        }
        if let Some(store) = config.store {
            settings.store = StoreSettings::from_config(store)?;
        }
        settings.name = config.name;
        Ok(settings)
    }
}

/// A configured value: `None` for 0 (keep the default), refused over its ceiling.
fn configured<T: Copy + Default + PartialOrd + std::fmt::Display>(
    value: T,
    ceiling: T,
    field: &str,
) -> Result<Option<T>> {
    if value == T::default() {
        return Ok(None);
    }
    if value > ceiling {
        return Err(HmsError::invalid_argument(format!(
            "{field} {value} is over the ceiling of {ceiling}"
        ))
        .with_detail("field", field));
    }
    Ok(Some(value))
}
