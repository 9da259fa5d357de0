//! The PostgreSQL store against a real server (common::postgres): several
//! runtimes sharing one database, the schema's versions, the server going
//! away and coming back, and configurations that must be refused. The
//! domain's own behaviour on this store is the domain suite, run again with
//! HMS_TEST_STORE=postgres (scripts/test.sh).

use std::sync::Arc;
use std::thread;

use hms_ffi::config::Settings;
use hms_ffi::domain::StoreSettings;
use hms_ffi::proto::hms::agent::lifecycle::v1::LifecycleState;
use hms_ffi::proto::hms::agent::v1::{
    KnowledgeEntry, PutKnowledgeRequest, QueryKnowledgeRequest, QueryKnowledgeResponse,
    UpdateAgentRequest,
};
use hms_ffi::proto::v1::{PostgresStoreConfig, StoreConfig};
use hms_ffi::runtime::Runtime;
use hms_ffi::{Code, HmsError};

use crate::common::postgres::{self as server, TestDatabase};
use crate::common::*;

/// A runtime on `database`.
fn runtime_on(database: &TestDatabase) -> Result<Arc<Runtime>, HmsError> {
    Runtime::new(settings_on(store_config(database)))
}

fn settings_on(config: PostgresStoreConfig) -> Settings {
    Settings {
        store: StoreSettings::from_config(StoreConfig {
            postgres: Some(config),
        })
        .expect("a valid store config"),
        ..Settings::default()
    }
}

fn store_config(database: &TestDatabase) -> PostgresStoreConfig {
    PostgresStoreConfig {
        url: database.url_without_password.clone(),
        password_file: database.password_file.display().to_string(),
        connect_timeout_ms: 2_000,
        ..Default::default()
    }
}

fn put(
    rt: &Arc<Runtime>,
    namespace: &str,
    key: &str,
    text: &str,
) -> Result<KnowledgeEntry, HmsError> {
    call(
        rt,
        &format!("{KNOWLEDGE}/PutKnowledge"),
        &PutKnowledgeRequest {
            entry: Some(KnowledgeEntry {
                namespace: namespace.into(),
                key: key.into(),
                text: text.into(),
                ..Default::default()
            }),
        },
    )
}

#[test]
fn two_runtimes_on_one_database_serve_the_same_records() {
    let database = server::fresh_database();
    let first = runtime_on(&database).unwrap();
    let second = runtime_on(&database).unwrap();
    let agent = create_agent(&first, "shared");
    assert_eq!(get_agent(&second, &agent.id).unwrap(), agent);
    transition(&second, &agent.id, LifecycleState::Active, false).unwrap();
    transition(&first, &agent.id, LifecycleState::Paused, false).unwrap();
    let seen_by_first = history(&first, &agent.id);
    assert_eq!(seen_by_first, history(&second, &agent.id));
    assert_chained(&seen_by_first);
    assert_eq!(seen_by_first.len(), 2);
    put(&second, "docs", "a", "written by the second").unwrap();
    let found: QueryKnowledgeResponse = call(
        &first,
        &format!("{KNOWLEDGE}/QueryKnowledge"),
        &QueryKnowledgeRequest {
            namespace: "docs".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].text, "written by the second");
}

#[test]
fn a_stale_revision_from_another_runtime_is_aborted() {
    let database = server::fresh_database();
    let first = runtime_on(&database).unwrap();
    let second = runtime_on(&database).unwrap();
    let agent = create_agent(&first, "contested");
    let update = |rt: &Arc<Runtime>, name: &str| {
        call::<_, hms_ffi::proto::hms::agent::v1::Agent>(
            rt,
            &format!("{AGENTS}/UpdateAgent"),
            &UpdateAgentRequest {
                agent: Some(hms_ffi::proto::hms::agent::v1::Agent {
                    id: agent.id.clone(),
                    name: name.into(),
                    revision: agent.revision,
                    ..Default::default()
                }),
                update_mask: None,
            },
        )
    };
    assert_eq!(update(&first, "first wins").unwrap().revision, 2);
    let error = expect_code(update(&second, "second is stale"), Code::Aborted);
    assert!(error.message.contains("revision 2"), "{}", error.message);
    assert_eq!(get_agent(&second, &agent.id).unwrap().name, "first wins");
}

/// Several runtimes and threads moving the same agents: every history is
/// gapless and chained, revisions count every transition, nothing is lost.
#[test]
fn transitions_of_one_agent_from_many_runtimes_never_interleave() {
    use LifecycleState as S;
    let database = server::fresh_database();
    let runtimes: Vec<_> = (0..3).map(|_| runtime_on(&database).unwrap()).collect();
    let agents: Vec<_> = (0..4)
        .map(|i| active_agent(&runtimes[0], &format!("agent-{i}")).id)
        .collect();
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            let rt = runtimes[worker % runtimes.len()].clone();
            let agents = agents.clone();
            thread::spawn(move || {
                let mut made = 0;
                for round in 0..40 {
                    let agent = &agents[(worker + round) % agents.len()];
                    // ACTIVE <-> PAUSED: whichever way the agent is now.
                    let to = match get_state(&rt, agent).unwrap().state {
                        s if s == S::Active as i32 => S::Paused,
                        _ => S::Active,
                    };
                    match transition(&rt, agent, to, false) {
                        Ok(_) => made += 1,
                        // Another worker moved it first: the table refuses.
                        Err(e) => assert_eq!(e.code, Code::FailedPrecondition, "{e:?}"),
                    }
                }
                made
            })
        })
        .collect();
    let made: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let mut recorded = 0;
    for agent in &agents {
        let events = history(&runtimes[1], agent);
        assert_chained(&events);
        let current = get_agent(&runtimes[2], agent).unwrap();
        assert_eq!(current.state, events.last().unwrap().new_state);
        // Created at 1, then one revision per transition.
        assert_eq!(current.revision, 1 + events.len() as u64);
        recorded += events.len() - 1;
    }
    assert_eq!(recorded, made, "every transition made is recorded once");
}

#[test]
fn racing_puts_of_one_new_key_store_one_entry() {
    let database = server::fresh_database();
    let runtimes: Vec<_> = (0..2).map(|_| runtime_on(&database).unwrap()).collect();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let rt = runtimes[i % 2].clone();
            thread::spawn(move || put(&rt, "race", "key", &format!("racer {i}")))
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.join().unwrap() {
            Ok(entry) => created += usize::from(entry.revision == 1),
            Err(e) => assert_eq!(e.code, Code::Aborted, "{e:?}"),
        }
    }
    assert_eq!(created, 1, "exactly one racer created the entry");
    let found: QueryKnowledgeResponse = call(
        &runtimes[0],
        &format!("{KNOWLEDGE}/QueryKnowledge"),
        &QueryKnowledgeRequest {
            namespace: "race".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(found.entries.len(), 1);
}

#[test]
fn runtimes_starting_together_migrate_once() {
    let database = server::fresh_database();
    let starters: Vec<_> = (0..4)
        .map(|_| {
            let config = store_config(&database);
            thread::spawn(move || Runtime::new(settings_on(config)).map(|_| ()))
        })
        .collect();
    for starter in starters {
        starter.join().unwrap().expect("every runtime starts");
    }
    let mut client = database.client();
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM hms_schema_version ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2], "each version applied once");
}

#[test]
fn a_database_newer_than_the_library_is_incompatible() {
    let database = server::fresh_database();
    drop(runtime_on(&database).unwrap());
    database
        .client()
        .execute("INSERT INTO hms_schema_version (version) VALUES (99)", &[])
        .unwrap();
    let error = expect_code(runtime_on(&database), Code::Incompatible);
    assert!(
        error.message.contains("schema version 99"),
        "{}",
        error.message
    );
}

#[test]
fn a_password_in_the_url_is_refused_without_repeating_it() {
    let config = PostgresStoreConfig {
        url: "postgres://hms:s3cret-pw@127.0.0.1:5432/db".into(),
        ..Default::default()
    };
    let error = expect_code(
        StoreSettings::from_config(StoreConfig {
            postgres: Some(config),
        }),
        Code::InvalidArgument,
    );
    assert!(error.message.contains("password_file"), "{}", error.message);
    assert!(!format!("{error:?}").contains("s3cret-pw"));
}

#[test]
fn store_configs_that_cannot_work_are_refused() {
    let refused = |config: PostgresStoreConfig| {
        expect_code(
            StoreSettings::from_config(StoreConfig {
                postgres: Some(config),
            }),
            Code::InvalidArgument,
        )
        .message
    };
    let both = refused(PostgresStoreConfig {
        url: "postgres://hms@127.0.0.1/db".into(),
        url_env: "DATABASE_URL".into(),
        ..Default::default()
    });
    assert!(both.contains("exactly one"), "{both}");
    let neither = refused(PostgresStoreConfig::default());
    assert!(neither.contains("exactly one"), "{neither}");
    let unset = refused(PostgresStoreConfig {
        url_env: "HMS_TEST_NO_SUCH_VARIABLE".into(),
        ..Default::default()
    });
    assert!(unset.contains("HMS_TEST_NO_SUCH_VARIABLE"), "{unset}");
    let tls = refused(PostgresStoreConfig {
        url: "postgres://hms@127.0.0.1/db?sslmode=require".into(),
        ..Default::default()
    });
    assert!(tls.contains("tls_ca_file"), "{tls}");
    let pool = refused(PostgresStoreConfig {
        url: "postgres://hms@127.0.0.1/db".into(),
        pool_size: 5000,
        ..Default::default()
    });
    assert!(pool.contains("pool_size"), "{pool}");
    let missing_file = refused(PostgresStoreConfig {
        url: "postgres://hms@127.0.0.1/db".into(),
        password_file: "/nonexistent/password".into(),
        ..Default::default()
    });
    assert!(
        missing_file.contains("/nonexistent/password"),
        "{missing_file}"
    );
}

#[test]
fn a_wrong_password_is_a_failed_precondition() {
    let database = server::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let config = PostgresStoreConfig {
        password_file: wrong.display().to_string(),
        ..store_config(&database)
    };
    let error = expect_code(Runtime::new(settings_on(config)), Code::FailedPrecondition);
    assert!(error.message.contains("password"), "{}", error.message);
    assert!(!error.message.contains("not-the-password"));
}

#[test]
fn a_server_nobody_listens_on_is_unavailable_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = PostgresStoreConfig {
        url: format!("postgres://hms@127.0.0.1:{port}/db"),
        connect_timeout_ms: 500,
        ..Default::default()
    };
    let error = expect_code(Runtime::new(settings_on(config)), Code::Unavailable);
    assert!(
        error.message.contains(&format!("127.0.0.1:{port}/db")),
        "{}",
        error.message
    );
}

/// The server stops mid-run: calls fail UNAVAILABLE while it is down, the
/// same runtime serves again once it is back, and nothing committed is lost.
#[test]
fn calls_fail_unavailable_while_the_server_is_down_and_recover_after() {
    let own = server::PostgresServer::start();
    let database = own.fresh_database();
    let rt = runtime_on(&database).unwrap();
    let kept = create_agent(&rt, "committed before the stop");
    own.stop();
    let error = expect_code(
        call::<_, hms_ffi::proto::hms::agent::v1::Agent>(
            &rt,
            &format!("{AGENTS}/GetAgent"),
            &hms_ffi::proto::hms::agent::v1::GetAgentRequest {
                id: kept.id.clone(),
            },
        ),
        Code::Unavailable,
    );
    assert!(error.message.contains("retry"), "{}", error.message);
    let refused = err_of(put(&rt, "down", "k", "never stored"));
    assert_eq!(refused.code, Code::Unavailable, "{refused:?}");
    own.start_again();
    assert_eq!(get_agent(&rt, &kept.id).unwrap(), kept);
    let after = create_agent(&rt, "made after the restart");
    assert_eq!(get_agent(&rt, &after.id).unwrap(), after);
    let found: QueryKnowledgeResponse = call(
        &rt,
        &format!("{KNOWLEDGE}/QueryKnowledge"),
        &QueryKnowledgeRequest {
            namespace: "down".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(found.entries.is_empty(), "the refused put stored nothing");
}

#[test]
fn workers_of_several_runtimes_never_claim_the_same_task() {
    let database = server::fresh_database();
    let runtimes: Vec<_> = (0..3).map(|_| runtime_on(&database).unwrap()).collect();
    crate::task_queue::assert_workers_share_the_queue(&runtimes);
}
