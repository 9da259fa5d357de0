//! Where the records of the domain live, behind one interface: the
//! embedded store (memory, with a `data_dir` written through to SQLite) and
//! PostgreSQL, which several runtimes may share.
//!
//! The domain runs each call in one [`Transaction`]: it reads what it needs,
//! decides, queues its writes and commits them together, so a call that
//! fails has changed nothing. A write transaction locks what it reads (the
//! embedded store the whole store, PostgreSQL the rows), so two calls that
//! change the same record are serialized, whichever runtime makes them.

mod local;
#[cfg(feature = "postgres")]
mod postgres;

use crate::error::Result;
use crate::proto::hms::agent::lifecycle::v1::{LifecycleEvent, RegisterHookRequest};
use crate::proto::hms::agent::v1::{Agent, KnowledgeEntry, Task};

pub use local::LocalStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresSettings, PostgresStore};

/// One change to make durable.
pub enum Write {
    Agent(Agent),
    /// The agent and its history.
    DeleteAgent(String),
    Task(Task),
    Knowledge(KnowledgeEntry),
    DeleteKnowledge(String),
    Event(LifecycleEvent),
}

/// Whether a transaction will write: a write transaction locks each record
/// it reads until it commits or is dropped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    Read,
    Write,
}

/// What a knowledge scan may narrow by; the domain still checks every
/// entry it is given, so a store may ignore any of these.
pub struct KnowledgeScan<'a> {
    /// Start after this (namespace, key).
    pub after: Option<(&'a str, &'a str)>,
    /// Only this namespace when not empty.
    pub namespace: &'a str,
    /// Only entries carrying all of these tags.
    pub tags: &'a [String],
}

/// What a claim looks for; the domain checks every task it is given again,
/// so a store may narrow by these or not.
pub struct ClaimScan<'a> {
    /// Leases that ended before this (Unix microseconds) are over.
    pub now_micros: i64,
    /// Only tasks requiring none but these capabilities.
    pub capabilities: &'a [String],
    /// Only tasks carrying all of these labels.
    pub labels: &'a std::collections::BTreeMap<String, String>,
}

impl ClaimScan<'_> {
    /// Whether a worker with these capabilities and labels may run `task`.
    pub fn fits(&self, task: &Task) -> bool {
        task.required_capabilities
            .iter()
            .all(|c| self.capabilities.contains(c))
            && self
                .labels
                .iter()
                .all(|(k, v)| task.labels.get(k) == Some(v))
    }
}

/// Whether `task` may be claimed at `now_micros`: PENDING, or RUNNING under
/// a lease that ended.
pub fn claimable(task: &Task, now_micros: i64) -> bool {
    use crate::proto::hms::agent::v1::TaskStatus;
    task.status == TaskStatus::Pending as i32
        || (task.status == TaskStatus::Running as i32
            && !task.claimed_by.is_empty()
            && lease_end_micros(task).is_some_and(|end| end < now_micros))
}

/// A time in Unix microseconds, as leases are compared and stored.
pub fn micros(stamp: prost_types::Timestamp) -> i64 {
    stamp.seconds.saturating_mul(1_000_000) + i64::from(stamp.nanos / 1_000)
}

/// The end of a task's lease in Unix microseconds.
pub fn lease_end_micros(task: &Task) -> Option<i64> {
    task.lease_expires_at.map(micros)
}

/// The words of a full-text query or of an indexed text: runs of letters
/// and digits, lowercased. Both stores index and search these words, never
/// their own tokenizers' view of the raw text, so they find the same entries.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// What full-text search sees of an entry, as words: its key, its text, and
/// its content when that is text (a `text/*` or JSON content type).
pub fn searchable_words(entry: &KnowledgeEntry) -> String {
    let content_is_text = entry.content_type.starts_with("text/")
        || entry.content_type.starts_with("application/json");
    let content = if content_is_text {
        std::str::from_utf8(&entry.content).unwrap_or_default()
    } else {
        ""
    };
    [entry.key.as_str(), entry.text.as_str(), content]
        .iter()
        .flat_map(|part| words(part))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a scan goes on after a record.
pub type Visit<'v, T> = &'v mut dyn FnMut(&T) -> bool;

/// The reads and writes of one call. Dropped without [`commit`], it
/// changes nothing.
///
/// [`commit`]: Transaction::commit
pub trait Transaction {
    fn agent(&mut self, id: &str) -> Result<Option<Agent>>;
    fn task(&mut self, id: &str) -> Result<Option<Task>>;
    fn knowledge(&mut self, id: &str) -> Result<Option<KnowledgeEntry>>;
    fn knowledge_at(&mut self, namespace: &str, key: &str) -> Result<Option<KnowledgeEntry>>;
    /// Agents in id order after `after`, until `visit` returns false.
    fn scan_agents(&mut self, after: Option<&str>, visit: Visit<'_, Agent>) -> Result<()>;
    /// Tasks in id order after `after`, until `visit` returns false.
    fn scan_tasks(&mut self, after: Option<&str>, visit: Visit<'_, Task>) -> Result<()>;
    /// Entries in (namespace, key) order, until `visit` returns false.
    fn scan_knowledge(
        &mut self,
        scan: &KnowledgeScan<'_>,
        visit: Visit<'_, KnowledgeEntry>,
    ) -> Result<()>;
    /// Entries holding every one of `words` (see [`words`]), most relevant
    /// first, then by (namespace, key), after skipping `skip` of them;
    /// until `visit` returns false.
    fn search_knowledge(
        &mut self,
        words: &[String],
        scan: &KnowledgeScan<'_>,
        skip: usize,
        visit: Visit<'_, KnowledgeEntry>,
    ) -> Result<()>;
    /// The transitions of an agent after `after_sequence`, oldest first,
    /// until `visit` returns false.
    fn scan_history(
        &mut self,
        agent_id: &str,
        after_sequence: u64,
        visit: Visit<'_, LifecycleEvent>,
    ) -> Result<()>;
    /// The tasks a claim may take (see [`claimable`]), most urgent first
    /// (priority high to low, then oldest), each locked as it is visited;
    /// tasks another transaction holds are skipped, not waited for.
    fn scan_claimable(&mut self, scan: &ClaimScan<'_>, visit: Visit<'_, Task>) -> Result<()>;
    /// The last transition of an agent.
    fn last_event(&mut self, agent_id: &str) -> Result<Option<LifecycleEvent>>;
    /// Queues a change, made by [`commit`](Transaction::commit).
    fn write(&mut self, write: Write) -> Result<()>;
    /// Makes every queued change durable at once, or none of them.
    fn commit(self: Box<Self>) -> Result<()>;
}

pub trait Store: Send + Sync {
    fn begin(&self, access: Access) -> Result<Box<dyn Transaction + '_>>;
    /// Keeps the other runtimes sharing this store from transitioning
    /// `agent_id` until the guard drops (within one runtime the domain's
    /// own agent locks do it).
    fn lock_transitions(&self, agent_id: &str) -> Result<Box<dyn Send + '_>>;
    /// Where runtimes sharing this store list their blocking hooks, so that
    /// each runs the others' for its own transitions; `None` for a store
    /// one runtime owns.
    fn fleet_hooks(&self) -> Option<&dyn FleetHooks> {
        None
    }
}

/// A blocking hook as the fleet knows it: which runtime runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetHook {
    pub runtime: String,
    pub id: String,
    /// As registered, with its name and timeout filled in.
    pub hook: RegisterHookRequest,
}

/// The blocking hooks of every runtime sharing a store.
pub trait FleetHooks: Send + Sync {
    fn add(&self, hook: &FleetHook) -> Result<()>;
    fn remove(&self, id: &str) -> Result<()>;
    /// Everything `runtime` registered (it closes, or starts again under the
    /// same name: hooks live only as long as the process that runs them).
    fn remove_runtime(&self, runtime: &str) -> Result<()>;
    /// Every hook, in the order the fleet registered them.
    fn list(&self) -> Result<Vec<FleetHook>>;
}

/// A record as stored; bytes that do not decode are DATA_LOSS.
fn decode_stored<M: prost::Message + Default>(body: &[u8]) -> Result<M> {
    M::decode(body).map_err(|e| {
        crate::error::HmsError::new(
            crate::error::Code::DataLoss,
            format!("a stored record is unreadable: {e}"),
        )
        .with_origin("storage")
    })
}

/// INCOMPATIBLE: a database whose schema a newer library wrote, which this
/// one must not change.
fn newer_schema(database: &str, found: usize, latest: usize) -> crate::error::HmsError {
    crate::error::HmsError::new(
        crate::error::Code::Incompatible,
        format!(
            "{database} is at schema version {found}, newer than this library's {latest}: \
             use a library at least as new as the one that wrote it"
        ),
    )
    .with_detail("schema_version", found)
    .with_detail("supported_schema_version", latest)
    .with_origin("storage")
}
