//! The HMS domain (DOMAIN.md): agents, tasks, knowledge and the agent
//! lifecycle with its hooks, over a store it does not know the kind of
//! (`store`): embedded, or PostgreSQL shared with other runtimes.

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
#[cfg(feature = "postgres")]
pub use store::PostgresSettings;
use store::{Access, Store, Transaction, Write};

/// All records of one runtime.
pub struct Domain {
    store: Box<dyn Store>,
    hooks: Hooks,
    locks: lifecycle::AgentLocks,
    order: PublishOrder,
    /// Weight a list page may hold: the size limit (see `paging::page`).
    page_weight: usize,
}

/// Which store a runtime keeps its records in (`RuntimeConfig.store`).
#[derive(Clone, Debug, Default)]
pub enum StoreSettings {
    /// In memory, or in SQLite in `data_dir`.
    #[default]
    Embedded,
    #[cfg(feature = "postgres")]
    Postgres(Box<PostgresSettings>),
}

impl StoreSettings {
    pub fn from_config(config: crate::proto::v1::StoreConfig) -> Result<StoreSettings> {
        match config.postgres {
            None => Ok(StoreSettings::Embedded),
            #[cfg(feature = "postgres")]
            Some(postgres) => Ok(StoreSettings::Postgres(Box::new(
                PostgresSettings::from_config(postgres)?,
            ))),
            #[cfg(not(feature = "postgres"))]
            Some(_) => Err(HmsError::new(
                Code::FailedPrecondition,
                "this build of hms_ffi has no PostgreSQL store (feature `postgres`): \
                 remove store.postgres or use a build with it",
            )
            .with_detail("field", "store.postgres")),
        }
    }
}

/// Keeps the events of each record in the order of its changes: a change
/// holds its record's stripe from before it reads until it has published.
struct PublishOrder {
    stripes: [Mutex<()>; 64],
}

impl PublishOrder {
    fn new() -> PublishOrder {
        PublishOrder {
            stripes: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    fn stripe(&self, id: &str) -> &Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(id);
        &self.stripes[(hash % self.stripes.len() as u64) as usize]
    }

    fn hold(&self, id: &str) -> MutexGuard<'_, ()> {
        self.stripe(id).lock()
    }

    fn try_hold(&self, id: &str) -> Option<MutexGuard<'_, ()>> {
        self.stripe(id).try_lock()
    }
}

impl Domain {
    /// Opens the store (with `Embedded`, the one in `data_dir`); list pages
    /// stay within `max_message_bytes`.
    pub fn open(
        store: &StoreSettings,
        data_dir: Option<&Path>,
        max_message_bytes: usize,
    ) -> Result<Domain> {
        let store: Box<dyn Store> = match store {
            StoreSettings::Embedded => Box::new(store::LocalStore::open(data_dir)?),
            #[cfg(feature = "postgres")]
            StoreSettings::Postgres(settings) => Box::new(store::PostgresStore::open(settings)?),
        };
        Ok(Domain {
            store,
            hooks: Hooks::default(),
            locks: lifecycle::AgentLocks::default(),
            order: PublishOrder::new(),
            page_weight: max_message_bytes,
        })
    }

    fn read(&self) -> Result<Box<dyn Transaction + '_>> {
        self.store.begin(Access::Read)
    }

    fn write(&self) -> Result<Box<dyn Transaction + '_>> {
        self.store.begin(Access::Write)
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
