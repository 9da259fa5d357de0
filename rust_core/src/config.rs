//! Runtime configuration: `hms.v1.RuntimeConfig` with its defaults applied
//! and its bounds checked.

use std::path::PathBuf;

use crate::codec::{self, Format, Limits, MAX_DEPTH_CEILING};
use crate::error::{HmsError, Result};
use crate::proto::v1::RuntimeConfig;

/// Largest accepted `max_message_bytes`: 1 GiB.
pub const MAX_MESSAGE_BYTES_CEILING: u64 = 1 << 30;
pub const DEFAULT_EVENT_QUEUE_CAPACITY: usize = 1024;
pub const MAX_EVENT_QUEUE_CAPACITY: u32 = 1 << 20;

#[derive(Clone, Debug)]
pub struct Settings {
    pub limits: Limits,
    pub data_dir: Option<PathBuf>,
    pub event_queue_capacity: usize,
    pub name: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            data_dir: None,
            event_queue_capacity: DEFAULT_EVENT_QUEUE_CAPACITY,
            name: String::new(),
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
        if config.max_message_bytes != 0 {
            if config.max_message_bytes > MAX_MESSAGE_BYTES_CEILING {
                return Err(HmsError::invalid_argument(format!(
                    "max_message_bytes {} is over the ceiling of {MAX_MESSAGE_BYTES_CEILING}",
                    config.max_message_bytes
                ))
                .with_detail("field", "max_message_bytes"));
            }
            settings.limits.max_message_bytes = config.max_message_bytes as usize;
        }
        if config.max_depth != 0 {
            if config.max_depth > MAX_DEPTH_CEILING {
                return Err(HmsError::invalid_argument(format!(
                    "max_depth {} is over the ceiling of {MAX_DEPTH_CEILING}",
                    config.max_depth
                ))
                .with_detail("field", "max_depth"));
            }
            settings.limits.max_depth = config.max_depth;
        }
        if config.event_queue_capacity != 0 {
            if config.event_queue_capacity > MAX_EVENT_QUEUE_CAPACITY {
                return Err(HmsError::invalid_argument(format!(
                    "event_queue_capacity {} is over the ceiling of {MAX_EVENT_QUEUE_CAPACITY}",
                    config.event_queue_capacity
                ))
                .with_detail("field", "event_queue_capacity"));
            }
            settings.event_queue_capacity = config.event_queue_capacity as usize;
        }
        if !config.data_dir.is_empty() {
            settings.data_dir = Some(PathBuf::from(config.data_dir));
        }
        settings.name = config.name;
        Ok(settings)
    }
}
