//! A real `nats-server` for the transport tests: started on a free
//! loopback port, stopped (killed and reaped) when dropped.
//!
//! Nothing is skipped without it: a machine lacking the binary fails the
//! test with the command that installs it.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a started server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct NatsServer {
    port: u16,
    jetstream: Option<tempfile::TempDir>,
    /// More command-line options, e.g. the server's authentication.
    options: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// A server with core NATS only.
    pub fn start() -> NatsServer {
        NatsServer::launch(false, &[])
    }

    /// A server with JetStream, its store in a temporary folder.
    pub fn start_with_jetstream() -> NatsServer {
        NatsServer::launch(true, &[])
    }

    /// A server with core NATS and these command-line `options`
    /// (e.g. `["--auth", "token"]`).
    pub fn start_with(options: &[&str]) -> NatsServer {
        NatsServer::launch(false, options)
    }

    fn launch(jetstream: bool, options: &[&str]) -> NatsServer {
        let port = free_port();
        let store = jetstream.then(|| tempfile::tempdir().expect("a temporary folder"));
        let mut server = NatsServer {
            port,
            jetstream: store,
            options: options.iter().map(|o| o.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would) and waits until its port is shut.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after `stop`).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let mut command = Command::new("nats-server");
        command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(store) = &self.jetstream {
            let store: PathBuf = store.path().into();
            command.arg("-js").arg("-sd").arg(store);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "nats-server is not installed, and the transport tests need a real one: \
                 apt-get install nats-server"
            ),
            Err(error) => panic!("cannot start nats-server: {error}"),
        };
        self.child = Some(child);
        let until = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nats-server on port {} exited at start: {status}",
                    self.port
                );
            }
            assert!(
                Instant::now() < until,
                "nats-server on port {} did not accept connections within {READY_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A plain NATS client for the tests that play another party.
#[cfg(feature = "nats")]
pub fn plain_client(server: &NatsServer) -> (tokio::runtime::Runtime, async_nats::Client) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = tokio
        .block_on(async_nats::connect(server.url()))
        .expect("a plain client connects");
    (tokio, client)
}
