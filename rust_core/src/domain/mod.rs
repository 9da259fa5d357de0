//! The HMS domain (DOMAIN.md): agents, tasks, knowledge and the agent
//! lifecycle with its hooks, over one store per runtime.

mod agents;
mod knowledge;
mod lifecycle;
mod paging;
mod store;
mod tasks;

use std::path::Path;

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Code, HmsError, Result};

pub use lifecycle::{Hooks, allowed_targets};

/// Sees the answer of a call before the change it reports is made. An
/// answer that cannot be delivered (over the size limit, not representable
/// in the caller's format, past the call's deadline) refuses the change, so
/// a call that fails has stored and published nothing. The answer admitted
/// is the one the change then returns.
pub trait Admit {
    fn admit<M: prost::Message + prost::Name>(&self, answer: &M) -> Result<()>;
}

/// Admits every answer: for changes made outside a call.
impl Admit for () {
    fn admit<M: prost::Message + prost::Name>(&self, _: &M) -> Result<()> {
        Ok(())
    }
}
use store::{Database, Tables, Write};

/// All records of one runtime.
pub struct Domain {
    state: Mutex<State>,
    hooks: Hooks,
    locks: lifecycle::AgentLocks,
    /// Weight a list page may hold: the size limit (see `paging::page`).
    page_weight: usize,
}

struct State {
    tables: Tables,
    database: Option<Database>,
}

impl State {
    /// Makes `writes` durable (a no-op in memory); call before changing `tables`.
    fn persist(&mut self, writes: &[Write<'_>]) -> Result<()> {
        match &mut self.database {
            Some(database) => database.commit(writes),
            None => Ok(()),
        }
    }
}

impl Domain {
    /// Opens the store; list pages stay within `max_message_bytes`.
    pub fn open(data_dir: Option<&Path>, max_message_bytes: usize) -> Result<Domain> {
        let (database, tables) = match data_dir {
            Some(dir) => {
                let (database, tables) = Database::open(dir)?;
                (Some(database), tables)
            }
            None => (None, Tables::default()),
        };
        Ok(Domain {
            state: Mutex::new(State { tables, database }),
            hooks: Hooks::default(),
            locks: lifecycle::AgentLocks::default(),
            page_weight: max_message_bytes,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The limit of one list page of `requested` records (0: the default).
    fn page_limit(&self, requested: u32) -> paging::PageLimit {
        paging::PageLimit {
            records: paging::page_size(requested),
            weight: self.page_weight,
        }
    }
}

fn now() -> prost_types::Timestamp {
    crate::events::now()
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(HmsError::invalid_argument(format!("`{field}` is required"))
            .with_detail("field", field));
    }
    Ok(value)
}

/// A Timestamp every format can carry: 0001-01-01 to 9999-12-31, nanos in range.
fn check_timestamp(stamp: Option<&prost_types::Timestamp>, field: &str) -> Result<()> {
    match stamp {
        Some(t) if !crate::codec::timestamp_is_valid(t.seconds, t.nanos.into()) => {
            Err(HmsError::invalid_argument(format!(
                "`{field}` must lie between 0001-01-01 and 9999-12-31 with nanos in 0..1e9"
            ))
            .with_detail("field", field))
        }
        _ => Ok(()),
    }
}

fn not_found(kind: &str, id: &str) -> HmsError {
    HmsError::not_found(format!("no {kind} with id `{id}`"))
        .with_detail("kind", kind)
        .with_detail("id", id)
}

/// ABORTED when a write names a revision that is not the current one.
fn check_revision(kind: &str, id: &str, expected: u64, current: u64) -> Result<()> {
    if expected != 0 && expected != current {
        return Err(HmsError::new(
            Code::Aborted,
            format!(
                "{kind} `{id}` is at revision {current}, not {expected}: read it again and retry"
            ),
        )
        .with_detail("kind", kind)
        .with_detail("id", id)
        .with_detail("current_revision", current)
        .with_detail("expected_revision", expected));
    }
    Ok(())
}
