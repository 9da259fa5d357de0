//! Types generated from `include/proto/hms/**` by build.rs.
#![allow(clippy::all, missing_docs)]

pub mod hms {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/hms.v1.rs"));
    }
    pub mod sys {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/hms.sys.v1.rs"));
        }
    }
    pub mod registry {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/hms.registry.v1.rs"));
        }
    }
    pub mod agent {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/hms.agent.v1.rs"));
        }
        pub mod lifecycle {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/hms.agent.lifecycle.v1.rs"));
            }
        }
    }
    pub mod audit {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/hms.audit.v1.rs"));
        }
    }
    pub mod security {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/hms.security.v1.rs"));
        }
    }
    pub mod events {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/hms.events.v1.rs"));
        }
    }
}

/// The FileDescriptorSet of every schema above, google.protobuf imports included.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hms_descriptors.bin"));

pub use hms::v1;

impl std::fmt::Debug for v1::Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("scheme", &self.scheme)
            .field("token", &crate::security::REDACTED)
            .field("principal", &self.principal)
            .finish()
    }
}

impl Drop for v1::Credentials {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}
