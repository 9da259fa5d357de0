//! The PostgreSQL fixture the store tests stand on: databases that do not
//! see each other, data that survives a restart, a server that takes no
//! wrong password, listens on loopback only and never runs as root.

use postgres::error::SqlState;

use crate::common::postgres::{PostgresServer, admin_url, connect, fresh_database, shared};

#[test]
fn two_fresh_databases_are_distinct_and_usable() {
    let first = fresh_database();
    let second = fresh_database();
    assert_ne!(first.name, second.name);
    assert_ne!(first.url, second.url);

    let mut client = first.client();
    client
        .batch_execute("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
        .unwrap();
    client
        .execute("INSERT INTO notes VALUES ($1, $2)", &[&1i32, &"first"])
        .unwrap();
    let row = client
        .query_one(
            "SELECT body, current_database() FROM notes WHERE id = 1",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "first");
    assert_eq!(row.get::<_, String>(1), first.name);

    let mut other = second.client();
    let name: String = other
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, second.name);
    let error = other.query("SELECT * FROM notes", &[]).unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::UNDEFINED_TABLE), "{error}");
}

#[test]
fn stop_then_start_again_keeps_committed_data_and_the_port() {
    let server = PostgresServer::start();
    let database = server.fresh_database();
    database
        .client()
        .batch_execute(
            "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 100)",
        )
        .unwrap();
    let port = server.port();

    server.stop();
    let refused = postgres::Client::connect(&database.url, postgres::NoTls);
    assert!(refused.is_err(), "a stopped server accepts no connection");

    server.start_again();
    assert_eq!(server.port(), port);
    let count: i64 = database
        .client()
        .query_one("SELECT count(*) FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 100);

    server.restart();
    let fresh = server.fresh_database();
    fresh.client().batch_execute("SELECT 1").unwrap();
}

#[test]
fn a_wrong_or_missing_password_is_refused() {
    let server = shared();
    let error = postgres::Client::connect(&server.url("wrong", "postgres"), postgres::NoTls)
        .err()
        .expect("a wrong password is refused");
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error}");

    let no_password = format!("postgres://hms@127.0.0.1:{}/postgres", server.port());
    assert!(
        postgres::Client::connect(&no_password, postgres::NoTls).is_err(),
        "a login without a password is refused"
    );

    connect(&admin_url()).batch_execute("SELECT 1").unwrap();
}

#[test]
fn the_server_listens_on_loopback_only_syncs_and_is_not_root() {
    let mut client = connect(&admin_url());
    let setting = |client: &mut postgres::Client, name: &str| -> String {
        client
            .query_one("SELECT current_setting($1)", &[&name])
            .unwrap()
            .get(0)
    };
    assert_eq!(setting(&mut client, "listen_addresses"), "127.0.0.1");
    assert_eq!(setting(&mut client, "unix_socket_directories"), "");
    assert_eq!(setting(&mut client, "fsync"), "on");
    assert_eq!(setting(&mut client, "password_encryption"), "scram-sha-256");

    // The backend serving this connection is a process of this machine.
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let status = std::fs::read_to_string(format!("/proc/{backend}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .expect("a Uid line");
    assert_ne!(uid, "0", "PostgreSQL runs unprivileged");
}

#[test]
fn a_dropped_server_is_stopped() {
    let server = PostgresServer::start();
    let url = server.admin_url();
    connect(&url).batch_execute("SELECT 1").unwrap();
    drop(server);
    assert!(postgres::Client::connect(&url, postgres::NoTls).is_err());
}

#[test]
#[should_panic(expected = "do not stop the shared PostgreSQL server")]
fn the_shared_server_cannot_be_stopped() {
    shared().stop();
}
