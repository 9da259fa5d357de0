//! A build without the `nats` feature (a wasm build, say): configuring a
//! transport is refused clearly, and everything else works as before.

use hms_ffi::Code;
use hms_ffi::config::Settings;
use hms_ffi::proto::v1::{NatsTransport, RuntimeConfig};

use crate::common::expect_code;

#[test]
fn configuring_a_transport_is_unimplemented() {
    let error = expect_code(
        Settings::from_config(RuntimeConfig {
            nats: Some(NatsTransport {
                servers: vec!["nats://127.0.0.1:4222".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        Code::Unimplemented,
    );
    assert!(error.message.contains("nats"), "{}", error.message);
    // No servers: no transport, as in every build.
    let settings = Settings::from_config(RuntimeConfig {
        nats: Some(NatsTransport::default()),
        ..Default::default()
    })
    .unwrap();
    assert!(settings.transport.is_none());
}
