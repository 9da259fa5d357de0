//! The embedded store: records kept in memory, and with a `data_dir`
//! written through to an embedded SQLite database before a write returns.
//!
//! The in-memory tables answer every read; the database is the durable copy
//! loaded at start. A write is applied to the database in one transaction
//! first and to memory only once that committed, so memory never holds what
//! a crash would lose. One lock covers the whole store: a transaction holds
//! it from `begin` to `commit`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Bound;
use std::path::Path;

use parking_lot::{Mutex, MutexGuard};
use prost::Message;
use rusqlite::{Connection, params};

use super::{Access, ClaimScan, KnowledgeScan, Store, Transaction, Visit, Write};
use crate::error::{Code, HmsError, Result};
use crate::proto::hms::agent::lifecycle::v1::LifecycleEvent;
use crate::proto::hms::agent::v1::{Agent, KnowledgeEntry, Task};

#[derive(Default)]
struct Tables {
    /// By id; UUIDv7 ids sort by creation time.
    agents: BTreeMap<String, Agent>,
    tasks: BTreeMap<String, Task>,
    knowledge: BTreeMap<String, KnowledgeEntry>,
    /// (namespace, key) to id, ordered for queries.
    knowledge_keys: BTreeMap<(String, String), String>,
    /// Transitions of each agent, oldest first.
    history: HashMap<String, Vec<LifecycleEvent>>,
}

struct Database {
    connection: Connection,
    /// Held for the life of the runtime: a second runtime on the same folder
    /// fails to take it.
    _lock: File,
}

/// The status of a storage failure, by what the caller can do about it: a
/// full disk is RESOURCE_EXHAUSTED (free space, retry), a corrupt file is
/// DATA_LOSS, a busy or failing disk is UNAVAILABLE (retry), a folder the
/// process may not write is FAILED_PRECONDITION; anything else is INTERNAL.
fn storage_error(error: rusqlite::Error) -> HmsError {
    use rusqlite::ErrorCode as E;
    let (code, hint) = match error.sqlite_error_code() {
        Some(E::DiskFull) => (
            Code::ResourceExhausted,
            "the disk of data_dir is full; free space and retry (nothing was written)",
        ),
        Some(E::DatabaseCorrupt | E::NotADatabase) => (
            Code::DataLoss,
            "the database in data_dir is damaged; restore it from a backup",
        ),
        Some(E::DatabaseBusy | E::DatabaseLocked | E::SystemIoFailure) => (
            Code::Unavailable,
            "the database in data_dir cannot be reached now; retry",
        ),
        Some(E::ReadOnly | E::CannotOpen | E::PermissionDenied) => (
            Code::FailedPrecondition,
            "the process may not write the database in data_dir; fix its permissions",
        ),
        _ => (Code::Internal, "an unexpected storage failure"),
    };
    HmsError::new(code, format!("storage: {hint}: {error}"))
        .with_detail("sqlite_error", format!("{:?}", error.sqlite_error_code()))
        .with_origin("storage")
}

/// Opening a data_dir fails only with FAILED_PRECONDITION (the documented
/// status of hms_runtime_new for an unusable data_dir); the cause stays in
/// the message and in the `cause` detail.
fn unusable_data_dir(dir: &Path, error: HmsError) -> HmsError {
    // A database newer than this library keeps its status: the remedy is a
    // newer library, not another folder.
    if error.code == Code::Incompatible {
        return error.with_detail("data_dir", dir.display());
    }
    let cause = error.code;
    let mut unusable = HmsError::new(
        Code::FailedPrecondition,
        format!(
            "data_dir {} cannot be used: {}",
            dir.display(),
            error.message
        ),
    )
    .with_detail("data_dir", dir.display())
    .with_detail("cause", format!("{cause:?}"))
    .with_origin("storage");
    unusable.details.extend(error.details);
    unusable
}

/// The schema's versions, oldest first: a database at version N has had
/// the first N applied (SQLite's `user_version` holds N). A released
/// version never changes; a change is a new one at the end.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, body BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, body BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS knowledge (id TEXT PRIMARY KEY, body BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS lifecycle_events (
        agent_id TEXT NOT NULL, sequence INTEGER NOT NULL, body BLOB NOT NULL,
        PRIMARY KEY (agent_id, sequence));
"];

/// Brings the database to the latest version, in one transaction.
fn migrate(connection: &mut Connection) -> Result<()> {
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(storage_error)?;
    let latest = MIGRATIONS.len();
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > latest {
        return Err(super::newer_schema(
            "the SQLite database in data_dir",
            found,
            latest,
        ));
    }
    let tx = connection.transaction().map_err(storage_error)?;
    for migration in &MIGRATIONS[found..] {
        tx.execute_batch(migration).map_err(storage_error)?;
    }
    tx.pragma_update(None, "user_version", latest as i64)
        .map_err(storage_error)?;
    tx.commit().map_err(storage_error)
}

impl Database {
    /// Opens (or creates) the database in `dir` and loads every record.
    fn open(dir: &Path) -> Result<(Database, Tables)> {
        let precondition = |what: String| {
            HmsError::new(Code::FailedPrecondition, what)
                .with_detail("data_dir", dir.display())
                .with_origin("storage")
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| precondition(format!("cannot create data_dir {}: {e}", dir.display())))?;
        let lock = File::create(dir.join("hms.lock"))
            .map_err(|e| precondition(format!("cannot open the lock of {}: {e}", dir.display())))?;
        lock.try_lock().map_err(|_| {
            precondition(format!(
                "data_dir {} is in use by another runtime (in this or another process); \
                 free that runtime first or use another folder",
                dir.display()
            ))
        })?;
        let open = || {
            let mut connection =
                Connection::open(dir.join("hms.sqlite3")).map_err(storage_error)?;
            // WAL with FULL sync: a commit is on disk before the call returns.
            connection
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
                .map_err(storage_error)?;
            migrate(&mut connection)?;
            let database = Database {
                connection,
                _lock: lock,
            };
            let tables = database.load()?;
            Ok((database, tables))
        };
        open().map_err(|error| unusable_data_dir(dir, error))
    }

    fn load(&self) -> Result<Tables> {
        let mut tables = Tables::default();
        for agent in self.rows::<Agent>("SELECT body FROM agents")? {
            tables.agents.insert(agent.id.clone(), agent);
        }
        for task in self.rows::<Task>("SELECT body FROM tasks")? {
            tables.tasks.insert(task.id.clone(), task);
        }
        for entry in self.rows::<KnowledgeEntry>("SELECT body FROM knowledge")? {
            tables.knowledge_keys.insert(
                (entry.namespace.clone(), entry.key.clone()),
                entry.id.clone(),
            );
            tables.knowledge.insert(entry.id.clone(), entry);
        }
        let events = self.rows::<LifecycleEvent>(
            "SELECT body FROM lifecycle_events ORDER BY agent_id, sequence",
        )?;
        for event in events {
            tables
                .history
                .entry(event.agent_id.clone())
                .or_default()
                .push(event);
        }
        Ok(tables)
    }

    fn rows<M: Message + Default>(&self, sql: &str) -> Result<Vec<M>> {
        let mut statement = self.connection.prepare(sql).map_err(storage_error)?;
        let bodies = statement
            .query_map([], |row| row.get::<_, Vec<u8>>(0))
            .map_err(storage_error)?;
        bodies
            .map(|body| super::decode_stored(&body.map_err(storage_error)?))
            .collect()
    }

    /// Applies `writes` in one transaction.
    fn commit(&mut self, writes: &[Write]) -> Result<()> {
        let tx = self.connection.transaction().map_err(storage_error)?;
        for write in writes {
            match write {
                Write::Agent(agent) => tx.execute(
                    "INSERT OR REPLACE INTO agents (id, body) VALUES (?1, ?2)",
                    params![agent.id, agent.encode_to_vec()],
                ),
                Write::DeleteAgent(id) => tx
                    .execute("DELETE FROM agents WHERE id = ?1", params![id])
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM lifecycle_events WHERE agent_id = ?1",
                            params![id],
                        )
                    }),
                Write::Task(task) => tx.execute(
                    "INSERT OR REPLACE INTO tasks (id, body) VALUES (?1, ?2)",
                    params![task.id, task.encode_to_vec()],
                ),
                Write::Knowledge(entry) => tx.execute(
                    "INSERT OR REPLACE INTO knowledge (id, body) VALUES (?1, ?2)",
                    params![entry.id, entry.encode_to_vec()],
                ),
                Write::DeleteKnowledge(id) => {
                    tx.execute("DELETE FROM knowledge WHERE id = ?1", params![id])
                }
                Write::Event(event) => tx.execute(
                    "INSERT INTO lifecycle_events (agent_id, sequence, body) VALUES (?1, ?2, ?3)",
                    params![event.agent_id, event.sequence as i64, event.encode_to_vec()],
                ),
            }
            .map_err(storage_error)?;
        }
        tx.commit().map_err(storage_error)
    }
}

/// Full-text search of the embedded store: an FTS5 index in an in-memory
/// SQLite database, built from the records at start and kept in step by
/// every commit. It is derived data: nothing to migrate, nothing to lose;
/// if it ever fails to take a change it is rebuilt before the next search.
struct SearchIndex {
    connection: Connection,
    stale: bool,
}

impl SearchIndex {
    fn build(tables: &Tables) -> Result<SearchIndex> {
        let connection = Connection::open_in_memory().map_err(storage_error)?;
        let mut index = SearchIndex {
            connection,
            stale: false,
        };
        index.rebuild(tables)?;
        Ok(index)
    }

    fn rebuild(&mut self, tables: &Tables) -> Result<()> {
        // The words are already split and lowercased (super::words); keeping
        // accents matches PostgreSQL's 'simple' configuration.
        self.connection
            .execute_batch(
                "DROP TABLE IF EXISTS search;
                 CREATE VIRTUAL TABLE search USING fts5(
                     id UNINDEXED, words, tokenize = 'unicode61 remove_diacritics 0');",
            )
            .map_err(storage_error)?;
        let tx = self.connection.transaction().map_err(storage_error)?;
        for entry in tables.knowledge.values() {
            tx.execute(
                "INSERT INTO search (id, words) VALUES (?1, ?2)",
                params![entry.id, super::searchable_words(entry)],
            )
            .map_err(storage_error)?;
        }
        tx.commit().map_err(storage_error)?;
        self.stale = false;
        Ok(())
    }

    fn put(&mut self, entry: &KnowledgeEntry) {
        let words = super::searchable_words(entry);
        let changed = self
            .connection
            .execute("DELETE FROM search WHERE id = ?1", params![entry.id])
            .and_then(|_| {
                self.connection.execute(
                    "INSERT INTO search (id, words) VALUES (?1, ?2)",
                    params![entry.id, words],
                )
            });
        self.stale |= changed.is_err();
    }

    fn delete(&mut self, id: &str) {
        let changed = self
            .connection
            .execute("DELETE FROM search WHERE id = ?1", params![id]);
        self.stale |= changed.is_err();
    }

    /// The ids of the entries holding every word, with their bm25 rank.
    fn search(&mut self, words: &[String], tables: &Tables) -> Result<Vec<(String, f64)>> {
        if self.stale {
            self.rebuild(tables)?;
        }
        // Each word quoted: a phrase of one word, never FTS5 syntax.
        let query = words
            .iter()
            .map(|word| format!("\"{word}\""))
            .collect::<Vec<_>>()
            .join(" ");
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, bm25(search) FROM search WHERE search MATCH ?1")
            .map_err(storage_error)?;
        let rows = statement
            .query_map(params![query], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(storage_error)?;
        rows.map(|row| row.map_err(storage_error)).collect()
    }
}

/// The embedded store: memory, durable in SQLite with a `data_dir`.
pub struct LocalStore {
    state: Mutex<State>,
}

struct State {
    tables: Tables,
    database: Option<Database>,
    search: SearchIndex,
}

impl LocalStore {
    /// In memory without `data_dir`; otherwise the database in it, loaded.
    pub fn open(data_dir: Option<&Path>) -> Result<LocalStore> {
        let (database, tables) = match data_dir {
            Some(dir) => {
                let (database, tables) = Database::open(dir)?;
                (Some(database), tables)
            }
            None => (None, Tables::default()),
        };
        let search = SearchIndex::build(&tables)?;
        Ok(LocalStore {
            state: Mutex::new(State {
                tables,
                database,
                search,
            }),
        })
    }
}

impl Store for LocalStore {
    fn begin(&self, _: Access) -> Result<Box<dyn Transaction + '_>> {
        Ok(Box::new(LocalTransaction {
            state: self.state.lock(),
            writes: Vec::new(),
        }))
    }

    /// One runtime owns the store: nobody else transitions its agents.
    fn lock_transitions(&self, _: &str) -> Result<Box<dyn Send + '_>> {
        Ok(Box::new(()))
    }
}

struct LocalTransaction<'a> {
    state: MutexGuard<'a, State>,
    writes: Vec<Write>,
}

/// Visits the values of `map` after `after`, until `visit` returns false.
fn scan<K: Ord, V>(map: &BTreeMap<K, V>, after: Option<K>, visit: Visit<'_, V>) {
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    for value in map.range((lower, Bound::Unbounded)).map(|(_, v)| v) {
        if !visit(value) {
            break;
        }
    }
}

impl Transaction for LocalTransaction<'_> {
    fn agent(&mut self, id: &str) -> Result<Option<Agent>> {
        Ok(self.state.tables.agents.get(id).cloned())
    }

    fn task(&mut self, id: &str) -> Result<Option<Task>> {
        Ok(self.state.tables.tasks.get(id).cloned())
    }

    fn knowledge(&mut self, id: &str) -> Result<Option<KnowledgeEntry>> {
        Ok(self.state.tables.knowledge.get(id).cloned())
    }

    fn knowledge_at(&mut self, namespace: &str, key: &str) -> Result<Option<KnowledgeEntry>> {
        let tables = &self.state.tables;
        Ok(tables
            .knowledge_keys
            .get(&(namespace.to_owned(), key.to_owned()))
            .and_then(|id| tables.knowledge.get(id))
            .cloned())
    }

    fn scan_agents(&mut self, after: Option<&str>, visit: Visit<'_, Agent>) -> Result<()> {
        scan(&self.state.tables.agents, after.map(str::to_owned), visit);
        Ok(())
    }

    fn scan_tasks(&mut self, after: Option<&str>, visit: Visit<'_, Task>) -> Result<()> {
        scan(&self.state.tables.tasks, after.map(str::to_owned), visit);
        Ok(())
    }

    fn scan_knowledge(
        &mut self,
        knowledge_scan: &KnowledgeScan<'_>,
        visit: Visit<'_, KnowledgeEntry>,
    ) -> Result<()> {
        let tables = &self.state.tables;
        let namespace = knowledge_scan.namespace;
        // Within one namespace the scan starts at it (no key is empty, so
        // (namespace, "") is before its first entry) and ends with it.
        let after = match knowledge_scan.after {
            Some((after_namespace, key)) => Some((after_namespace.to_owned(), key.to_owned())),
            None if !namespace.is_empty() => Some((namespace.to_owned(), String::new())),
            None => None,
        };
        scan(&tables.knowledge_keys, after, &mut |id| {
            let Some(entry) = tables.knowledge.get(id) else {
                return true;
            };
            if !namespace.is_empty() && entry.namespace != namespace {
                return false;
            }
            !knowledge_scan.tags.iter().all(|t| entry.tags.contains(t)) || visit(entry)
        });
        Ok(())
    }

    fn search_knowledge(
        &mut self,
        words: &[String],
        _: &KnowledgeScan<'_>,
        skip: usize,
        visit: Visit<'_, KnowledgeEntry>,
    ) -> Result<()> {
        let state = &mut *self.state;
        let tables = &state.tables;
        let mut found: Vec<(f64, &KnowledgeEntry)> = state
            .search
            .search(words, tables)?
            .into_iter()
            .filter_map(|(id, rank)| Some((rank, tables.knowledge.get(&id)?)))
            .collect();
        // bm25 is lower for a better match.
        found.sort_by(|(a_rank, a), (b_rank, b)| {
            a_rank
                .total_cmp(b_rank)
                .then_with(|| (&a.namespace, &a.key).cmp(&(&b.namespace, &b.key)))
        });
        for (_, entry) in found.into_iter().skip(skip) {
            if !visit(entry) {
                break;
            }
        }
        Ok(())
    }

    fn scan_history(
        &mut self,
        agent_id: &str,
        after_sequence: u64,
        visit: Visit<'_, LifecycleEvent>,
    ) -> Result<()> {
        let events = self.state.tables.history.get(agent_id);
        for event in events.into_iter().flatten() {
            if event.sequence > after_sequence && !visit(event) {
                break;
            }
        }
        Ok(())
    }

    fn scan_claimable(&mut self, scan: &ClaimScan<'_>, visit: Visit<'_, Task>) -> Result<()> {
        // The whole store is locked: no task is held by anyone else.
        let mut ready: Vec<&Task> = self
            .state
            .tables
            .tasks
            .values()
            .filter(|task| super::claimable(task, scan.now_micros) && scan.fits(task))
            .collect();
        ready.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));
        for task in ready {
            if !visit(task) {
                break;
            }
        }
        Ok(())
    }

    fn last_event(&mut self, agent_id: &str) -> Result<Option<LifecycleEvent>> {
        Ok(self
            .state
            .tables
            .history
            .get(agent_id)
            .and_then(|events| events.last())
            .cloned())
    }

    fn write(&mut self, write: Write) -> Result<()> {
        self.writes.push(write);
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let LocalTransaction { mut state, writes } = *self;
        if let Some(database) = &mut state.database {
            database.commit(&writes)?;
        }
        let state = &mut *state;
        let tables = &mut state.tables;
        for write in writes {
            match write {
                Write::Agent(agent) => {
                    tables.agents.insert(agent.id.clone(), agent);
                }
                Write::DeleteAgent(id) => {
                    tables.agents.remove(&id);
                    tables.history.remove(&id);
                }
                Write::Task(task) => {
                    tables.tasks.insert(task.id.clone(), task);
                }
                Write::Knowledge(entry) => {
                    state.search.put(&entry);
                    tables.knowledge_keys.insert(
                        (entry.namespace.clone(), entry.key.clone()),
                        entry.id.clone(),
                    );
                    tables.knowledge.insert(entry.id.clone(), entry);
                }
                Write::DeleteKnowledge(id) => {
                    state.search.delete(&id);
                    if let Some(entry) = tables.knowledge.remove(&id) {
                        tables.knowledge_keys.remove(&(entry.namespace, entry.key));
                    }
                }
                Write::Event(event) => {
                    tables
                        .history
                        .entry(event.agent_id.clone())
                        .or_default()
                        .push(event);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_resource_exhausted_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut database, _) = Database::open(dir.path()).unwrap();
        // SQLite reports SQLITE_FULL once the file may grow no more: a full
        // disk without filling one.
        let pages: i64 = database
            .connection
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        database
            .connection
            .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
            .unwrap();
        let entry = KnowledgeEntry {
            id: "big".into(),
            text: "x".repeat(1 << 20),
            ..Default::default()
        };
        let error = database
            .commit(&[Write::Knowledge(entry)])
            .expect_err("a write past the last page fails");
        assert_eq!(error.code, Code::ResourceExhausted, "{error:?}");
        assert!(error.message.contains("full"), "{}", error.message);
        drop(database);
        let (_, tables) = Database::open(dir.path()).unwrap();
        assert!(tables.knowledge.is_empty(), "the failed write left nothing");
    }
}
