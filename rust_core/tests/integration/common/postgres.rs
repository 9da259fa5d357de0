//! Real PostgreSQL servers for the store tests, made by
//! `scripts/postgres.sh`: a cluster in a temporary folder, on a free
//! loopback port, password authentication, run as an unprivileged user when
//! the tests run as root.
//!
//! Most tests share one server per test process ([`shared`]), started on
//! first use, and isolate themselves with a [`fresh_database`] each. A test
//! that stops or restarts its server makes one of its own
//! ([`PostgresServer::start`]), so the other tests running beside it never
//! see the shared one go down.
//!
//! Every server is started with `--watch <this process> --discard`: when the
//! test process exits, however it exits, the server is stopped and its folder
//! deleted (the shared one lives in a static, which is never dropped).
//!
//! Nothing is skipped without PostgreSQL: a machine lacking it fails the
//! test with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The superuser the script makes, in every URL.
const SUPERUSER: &str = "hms";

/// `scripts/postgres.sh`'s exit status when PostgreSQL is not installed.
const EXIT_NOT_INSTALLED: i32 = 3;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh")
}

/// One PostgreSQL server; its data and port outlive a stop and a start.
pub struct PostgresServer {
    dir: PathBuf,
    password: String,
    port: u16,
    shared: bool,
}

/// A database of its own for one test.
pub struct TestDatabase {
    /// `postgres://hms:<password>@127.0.0.1:<port>/<name>`
    pub url: String,
    pub name: String,
    /// The same URL without the password, and the file holding it: the
    /// form `store.postgres` takes (url, password_file).
    pub url_without_password: String,
    pub password_file: PathBuf,
}

impl TestDatabase {
    /// A plain client connected to this database.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url)
    }

    /// The store of a runtime on this database.
    pub fn store_settings(&self) -> hms_ffi::domain::StoreSettings {
        let config = hms_ffi::proto::v1::StoreConfig {
            postgres: Some(hms_ffi::proto::v1::PostgresStoreConfig {
                url: self.url_without_password.clone(),
                password_file: self.password_file.display().to_string(),
                ..Default::default()
            }),
        };
        hms_ffi::domain::StoreSettings::from_config(config).expect("the test store's config")
    }
}

/// The server this test process shares, started on first use.
pub fn shared() -> &'static PostgresServer {
    static SHARED: OnceLock<PostgresServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut server = PostgresServer::start();
        server.shared = true;
        server
    })
}

/// A new, empty database on the shared server.
pub fn fresh_database() -> TestDatabase {
    shared().fresh_database()
}

/// The shared server's URL as its superuser, on the `postgres` database.
pub fn admin_url() -> String {
    shared().admin_url()
}

impl PostgresServer {
    /// A server of the caller's own, in a new temporary folder; stopped and
    /// deleted when dropped.
    pub fn start() -> PostgresServer {
        let dir = tempfile::Builder::new()
            .prefix("hms-postgres-")
            .tempdir()
            .expect("a temporary folder")
            .keep();
        let (password, port) = parse_url(&start_in(&dir));
        PostgresServer {
            dir,
            password,
            port,
            shared: false,
        }
    }

    /// `postgres://hms:<password>@127.0.0.1:<port>/postgres`
    pub fn admin_url(&self) -> String {
        self.url(&self.password, "postgres")
    }

    /// The port the server listens on, the same across stops and starts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` with `password`, right or (for the tests of
    /// authentication) wrong.
    pub fn url(&self, password: &str, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// A new, empty database, named uniquely in this process.
    pub fn fresh_database(&self) -> TestDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "hms_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        connect(&self.admin_url())
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|error| panic!("CREATE DATABASE {name}: {error}"));
        TestDatabase {
            url: self.url(&self.password, &name),
            url_without_password: format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port),
            password_file: self.dir.join("password"),
            name,
        }
    }

    /// Shuts the server down (fast: open connections are closed).
    pub fn stop(&self) {
        self.refuse_if_shared("stop");
        run(&["stop", path_str(&self.dir)]);
    }

    /// Starts the server again after [`stop`](Self::stop): same port, same data.
    pub fn start_again(&self) {
        self.refuse_if_shared("start");
        let url = start_in(&self.dir);
        assert_eq!(url, self.admin_url(), "a restarted server keeps its URL");
    }

    /// [`stop`](Self::stop), then [`start_again`](Self::start_again).
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    fn refuse_if_shared(&self, what: &str) {
        assert!(
            !self.shared,
            "do not {what} the shared PostgreSQL server: the tests running beside this one \
             use it; make a server of your own with PostgresServer::start()"
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // The watchdog would do the same at exit; a test that makes many
        // servers should not pile them up until then.
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", path_str(&self.dir)])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain client on `url`, failing the test when it cannot connect.
pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary folders have UTF-8 paths")
}

/// Starts (or starts again) the server in `dir`, watched by this process
/// and deleted once it exits; the server's admin URL.
fn start_in(dir: &Path) -> String {
    let watch = std::process::id().to_string();
    run(&["start", "--watch", &watch, "--discard", path_str(dir)])
}

/// The password and port of the script's
/// `postgres://hms:<password>@127.0.0.1:<port>/postgres`.
fn parse_url(url: &str) -> (String, u16) {
    let parts = url
        .strip_prefix(&format!("postgres://{SUPERUSER}:"))
        .and_then(|rest| rest.strip_suffix("/postgres"))
        .and_then(|rest| rest.split_once("@127.0.0.1:"));
    match parts {
        Some((password, port)) => match port.parse() {
            Ok(port) => (password.to_owned(), port),
            Err(_) => panic!("scripts/postgres.sh printed a URL with a bad port: {url}"),
        },
        None => panic!("scripts/postgres.sh printed no URL of its own form: {url:?}"),
    }
}

/// Runs `scripts/postgres.sh` with `args`; its one line of output.
fn run(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run bash {}: {error}", script().display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => String::from_utf8(output.stdout)
            .expect("the script prints UTF-8")
            .trim()
            .to_owned(),
        Some(EXIT_NOT_INSTALLED) => panic!(
            "PostgreSQL is not installed, and the store tests need a real server: \
             run `bash scripts/setup.sh` (as root it installs the Debian package postgresql)\n\
             {stderr}"
        ),
        _ => panic!(
            "scripts/postgres.sh {args:?} failed ({}):\n{stderr}",
            output.status
        ),
    }
}
