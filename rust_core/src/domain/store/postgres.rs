//! The PostgreSQL store: every runtime pointed at one database serves the
//! same records.
//!
//! Each record is one row holding its protobuf bytes, beside the columns
//! queries need (knowledge's namespace, key and tags). Text keys use the
//! "C" collation so that rows sort by their bytes, exactly as the embedded
//! store sorts them, and page tokens mean the same on both. A write
//! transaction reads with `FOR UPDATE`: two runtimes changing one record
//! are serialized, and the second sees the first's revision. Transitions
//! of one agent are serialized across runtimes by an advisory lock.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};

use super::{
    Access, ClaimScan, FleetHook, FleetHooks, KnowledgeScan, Store, Transaction, Visit, Write,
    decode_stored,
};
use crate::error::{Code, HmsError, Result};
use crate::proto::hms::agent::lifecycle::v1::LifecycleEvent;
use crate::proto::hms::agent::v1::{Agent, KnowledgeEntry, Task};
use crate::proto::v1::PostgresStoreConfig;

pub const DEFAULT_POOL_SIZE: usize = 16;
pub const MAX_POOL_SIZE: u32 = 1024;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CONNECT_TIMEOUT_MS: u32 = 600_000;

/// Rows fetched per round trip of a scan.
const SCAN_CHUNK: i64 = 256;

/// A PostgreSQL database to keep the records in, checked and ready to
/// connect. The password is held by the client library's configuration and
/// never printed: `Debug` and every message name only the server.
#[derive(Clone)]
pub struct PostgresSettings {
    config: postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    pool_size: usize,
    connect_timeout: Duration,
    /// "host:port/database", for messages.
    server: String,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("server", &self.server)
            .field("tls", &self.tls.is_some())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, message: String) -> HmsError {
    HmsError::invalid_argument(message).with_detail("field", format!("store.postgres.{field}"))
}

fn environment(field: &str, name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        invalid(
            field,
            format!("the environment variable `{name}` named by store.postgres.{field} is not set"),
        )
    })
}

impl PostgresSettings {
    pub fn from_config(config: PostgresStoreConfig) -> Result<PostgresSettings> {
        let (url, from_env) = match (config.url.is_empty(), config.url_env.is_empty()) {
            (false, true) => (config.url.clone(), false),
            (true, false) => (environment("url_env", &config.url_env)?, true),
            _ => {
                return Err(invalid(
                    "url",
                    "give exactly one of store.postgres.url and store.postgres.url_env".into(),
                ));
            }
        };
        let field = if from_env { "url_env" } else { "url" };
        // The parser's message never repeats the URL, so no password leaks.
        let mut parsed: postgres::Config = url.parse().map_err(|e| {
            invalid(
                field,
                format!("store.postgres.{field} is not a PostgreSQL URL: {e}"),
            )
        })?;
        if !from_env && parsed.get_password().is_some() {
            return Err(invalid(
                "url",
                "store.postgres.url carries a password: move it to password_file or \
                 password_env, or give the whole URL through url_env"
                    .into(),
            ));
        }
        let password = match (
            config.password_file.is_empty(),
            config.password_env.is_empty(),
        ) {
            (true, true) => None,
            (false, true) => Some(read_password_file(&config.password_file)?),
            (true, false) => Some(environment("password_env", &config.password_env)?),
            (false, false) => {
                return Err(invalid(
                    "password_file",
                    "give at most one of store.postgres.password_file and password_env".into(),
                ));
            }
        };
        if let Some(password) = password {
            parsed.password(password);
        }
        let tls = match config.tls_ca_file.as_str() {
            "" => {
                if parsed.get_ssl_mode() == postgres::config::SslMode::Require {
                    return Err(invalid(
                        "tls_ca_file",
                        "the URL requires TLS: give store.postgres.tls_ca_file, the CA that \
                         signs the server's certificate"
                            .into(),
                    ));
                }
                parsed.ssl_mode(postgres::config::SslMode::Disable);
                None
            }
            ca_file => {
                parsed.ssl_mode(postgres::config::SslMode::Require);
                Some(Arc::new(tls_config(Path::new(ca_file))?))
            }
        };
        let pool_size = match config.pool_size {
            0 => DEFAULT_POOL_SIZE,
            n if n > MAX_POOL_SIZE => {
                return Err(invalid(
                    "pool_size",
                    format!("store.postgres.pool_size {n} is over the ceiling of {MAX_POOL_SIZE}"),
                ));
            }
            n => n as usize,
        };
        let connect_timeout = match config.connect_timeout_ms {
            0 => DEFAULT_CONNECT_TIMEOUT,
            n if n > MAX_CONNECT_TIMEOUT_MS => {
                return Err(invalid(
                    "connect_timeout_ms",
                    format!(
                        "store.postgres.connect_timeout_ms {n} is over the ceiling of {MAX_CONNECT_TIMEOUT_MS}"
                    ),
                ));
            }
            n => Duration::from_millis(n.into()),
        };
        parsed.connect_timeout(connect_timeout);
        // A server that vanishes without closing the socket is noticed.
        parsed.keepalives(true);
        parsed.keepalives_idle(Duration::from_secs(30));
        if parsed.get_application_name().is_none() {
            parsed.application_name("hms_ffi");
        }
        let host = match parsed.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = parsed.get_ports().first().copied().unwrap_or(5432);
        let database = parsed
            .get_dbname()
            .or(parsed.get_user())
            .unwrap_or_default()
            .to_owned();
        Ok(PostgresSettings {
            server: format!("{host}:{port}/{database}"),
            config: parsed,
            tls,
            pool_size,
            connect_timeout,
        })
    }

    fn connect(&self) -> std::result::Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    tls.as_ref().clone(),
                )),
            None => self.config.connect(NoTls),
        }
    }
}

fn read_password_file(path: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(
            "password_file",
            format!("cannot read store.postgres.password_file {path}: {e}"),
        )
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn tls_config(ca_file: &Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let unusable = |why: String| {
        invalid(
            "tls_ca_file",
            format!("store.postgres.tls_ca_file {}: {why}", ca_file.display()),
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| unusable(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unusable(e.to_string()))?;
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(unusable("holds no usable certificate".into()));
    }
    // The provider of the build's one rustls crypto feature (ring).
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The status of a database failure, by what the caller can do about it.
fn database_error(server: &str, error: postgres::Error) -> HmsError {
    let (code, hint) = match error.code() {
        Some(state)
            if *state == SqlState::UNIQUE_VIOLATION
                || *state == SqlState::T_R_SERIALIZATION_FAILURE
                || *state == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            (
                Code::Aborted,
                "another call changed the same record at the same time; read it again and retry",
            )
        }
        Some(state) if *state == SqlState::DISK_FULL || *state == SqlState::OUT_OF_MEMORY => (
            Code::ResourceExhausted,
            "the database server is out of space or memory; nothing was written",
        ),
        Some(state)
            if *state == SqlState::INVALID_PASSWORD
                || *state == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *state == SqlState::INSUFFICIENT_PRIVILEGE
                || *state == SqlState::INVALID_CATALOG_NAME =>
        {
            (
                Code::FailedPrecondition,
                "the database refused this runtime: check store.postgres's user, password, \
                 database and grants",
            )
        }
        Some(state)
            if *state == SqlState::ADMIN_SHUTDOWN
                || *state == SqlState::CRASH_SHUTDOWN
                || *state == SqlState::CANNOT_CONNECT_NOW
                || *state == SqlState::TOO_MANY_CONNECTIONS
                || state.code().starts_with("08") =>
        {
            (
                Code::Unavailable,
                "the database cannot be reached now; retry (nothing of this call was written)",
            )
        }
        Some(_) => (Code::Internal, "an unexpected database failure"),
        None => (
            Code::Unavailable,
            "the database cannot be reached now; retry (nothing of this call was written)",
        ),
    };
    let mut converted = HmsError::new(code, format!("storage: {hint}: {error} ({server})"))
        .with_detail("server", server)
        .with_origin("storage");
    if let Some(state) = error.code() {
        converted = converted.with_detail("sqlstate", state.code());
    }
    converted
}

/// The schema's versions, oldest first; `hms_schema_version` holds one row
/// per version applied. A released version never changes.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE agents (id TEXT COLLATE "C" PRIMARY KEY, body BYTEA NOT NULL);
    CREATE TABLE tasks (
        id TEXT COLLATE "C" PRIMARY KEY,
        status INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        claimed_by TEXT NOT NULL,
        lease_expires_at BIGINT,
        required_capabilities TEXT[] NOT NULL,
        labels JSONB NOT NULL,
        body BYTEA NOT NULL);
    CREATE INDEX tasks_claimable ON tasks (priority DESC, id) WHERE status IN (1, 3);
    CREATE TABLE knowledge (
        id TEXT COLLATE "C" PRIMARY KEY,
        namespace TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        tags TEXT[] NOT NULL,
        searchable TEXT NOT NULL,
        search TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', searchable)) STORED,
        body BYTEA NOT NULL,
        UNIQUE (namespace, key));
    CREATE INDEX knowledge_tags ON knowledge USING GIN (tags);
    CREATE INDEX knowledge_search ON knowledge USING GIN (search);
    CREATE TABLE lifecycle_events (
        agent_id TEXT COLLATE "C" NOT NULL, sequence BIGINT NOT NULL, body BYTEA NOT NULL,
        PRIMARY KEY (agent_id, sequence));
"#,
    r#"
    CREATE TABLE lifecycle_hooks (
        registered BIGSERIAL NOT NULL,
        id TEXT COLLATE "C" PRIMARY KEY,
        runtime TEXT COLLATE "C" NOT NULL,
        body BYTEA NOT NULL);
    CREATE INDEX lifecycle_hooks_runtime ON lifecycle_hooks (runtime);
"#,
];

/// Taken while migrating, so runtimes starting together migrate once.
const MIGRATION_LOCK: i64 = 0x484d_535f_4d49_4752; // "HMS_MIGR"

pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects, and brings the schema to this library's version.
    pub fn open(settings: &PostgresSettings) -> Result<PostgresStore> {
        let store = PostgresStore {
            pool: Pool {
                settings: settings.clone(),
                state: Mutex::new(PoolState::default()),
                freed: Condvar::new(),
            },
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get()?;
        let server = self.pool.settings.server.clone();
        let run = |client: &mut Client| -> std::result::Result<Result<()>, postgres::Error> {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS hms_schema_version (version INTEGER PRIMARY KEY, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )?;
            let found: i32 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM hms_schema_version",
                    &[],
                )?
                .get(0);
            let found = usize::try_from(found).unwrap_or_default();
            let latest = MIGRATIONS.len();
            if found > latest {
                return Ok(Err(super::newer_schema(
                    &format!("the PostgreSQL database {server}"),
                    found,
                    latest,
                )));
            }
            for (index, migration) in MIGRATIONS.iter().enumerate().skip(found) {
                tx.batch_execute(migration)?;
                tx.execute(
                    "INSERT INTO hms_schema_version (version) VALUES ($1)",
                    &[&(index as i32 + 1)],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        };
        run(client.client()).map_err(|e| client.failed(e))?
    }
}

impl Store for PostgresStore {
    fn begin(&self, access: Access) -> Result<Box<dyn Transaction + '_>> {
        let mut client = self.pool.get()?;
        if access == Access::Write {
            client
                .client()
                .batch_execute("BEGIN")
                .map_err(|e| client.failed(e))?;
        }
        Ok(Box::new(PostgresTransaction {
            client,
            access,
            writes: Vec::new(),
        }))
    }

    fn lock_transitions(&self, agent_id: &str) -> Result<Box<dyn Send + '_>> {
        let mut client = self.pool.get()?;
        client
            .client()
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&agent_id],
            )
            .map_err(|e| client.failed(e))?;
        Ok(Box::new(TransitionLock {
            client,
            agent_id: agent_id.to_owned(),
        }))
    }

    fn fleet_hooks(&self) -> Option<&dyn FleetHooks> {
        Some(self)
    }
}

impl PostgresStore {
    /// Runs one statement outside any transaction.
    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let mut client = self.pool.get()?;
        let rows = client.client().query(sql, params);
        rows.map_err(|e| client.failed(e))
    }
}

impl FleetHooks for PostgresStore {
    fn add(&self, hook: &FleetHook) -> Result<()> {
        self.execute(
            "INSERT INTO lifecycle_hooks (id, runtime, body) VALUES ($1, $2, $3)",
            &[
                &hook.id,
                &hook.runtime,
                &prost::Message::encode_to_vec(&hook.hook),
            ],
        )
        .map(drop)
    }

    fn remove(&self, id: &str) -> Result<()> {
        self.execute("DELETE FROM lifecycle_hooks WHERE id = $1", &[&id])
            .map(drop)
    }

    fn remove_runtime(&self, runtime: &str) -> Result<()> {
        self.execute(
            "DELETE FROM lifecycle_hooks WHERE runtime = $1",
            &[&runtime],
        )
        .map(drop)
    }

    fn list(&self) -> Result<Vec<FleetHook>> {
        self.execute(
            "SELECT id, runtime, body FROM lifecycle_hooks ORDER BY registered",
            &[],
        )?
        .iter()
        .map(|row| {
            Ok(FleetHook {
                id: row.get(0),
                runtime: row.get(1),
                hook: decode_stored(row.get::<_, &[u8]>(2))?,
            })
        })
        .collect()
    }
}

/// Holds an agent's advisory lock on its own connection; a connection that
/// breaks releases it on the server.
struct TransitionLock<'a> {
    client: Pooled<'a>,
    agent_id: String,
}

impl Drop for TransitionLock<'_> {
    fn drop(&mut self) {
        let released = self.client.client().execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&self.agent_id],
        );
        if released.is_err() {
            // Closing the connection is what releases the lock then.
            self.client.broken = true;
        }
    }
}

/// The next claimable task, most urgent then oldest, after what `after`
/// says. The capability and label checks sit inside one CASE on purpose:
/// before the table has statistics (a fresh database, until autovacuum
/// analyzes it), PostgreSQL would take `<@` and `@>` for very selective
/// and sort every claimable task instead of walking `tasks_claimable` in
/// order (measured: 29 ms against 0.05 ms per claim with 10,000 tasks).
fn claim_sql(after: &str) -> String {
    format!(
        "SELECT priority, id, body FROM tasks \
         WHERE (status = 1 OR (status = 3 AND claimed_by <> '' AND lease_expires_at < $1)) \
         AND CASE WHEN required_capabilities <@ $2 THEN labels @> $3 ELSE false END {after} \
         ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
}

/// Visits the records of one chunk of a scan (their bytes in column
/// `body`); whether the scan goes on: `visit` wants more and the chunk was
/// full, so more rows may follow.
fn visit_chunk<M: prost::Message + Default>(
    rows: &[Row],
    body: usize,
    visit: Visit<'_, M>,
) -> Result<bool> {
    for row in rows {
        if !visit(&decode_stored(row.get::<_, &[u8]>(body))?) {
            return Ok(false);
        }
    }
    Ok(rows.len() as i64 == SCAN_CHUNK)
}

struct PostgresTransaction<'a> {
    client: Pooled<'a>,
    access: Access,
    writes: Vec<Write>,
}

impl PostgresTransaction<'_> {
    fn rows(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let rows = self.client.client().query(sql, params);
        rows.map_err(|e| self.client.failed(e))
    }

    /// What a point read appends: a write transaction locks what it reads.
    fn lock_clause(&self) -> &'static str {
        if self.access == Access::Write {
            " FOR UPDATE"
        } else {
            ""
        }
    }

    /// The record of `table` with `id`, locked when this transaction writes.
    fn one<M: prost::Message + Default>(&mut self, table: &str, id: &str) -> Result<Option<M>> {
        let lock = self.lock_clause();
        let sql = format!("SELECT body FROM {table} WHERE id = $1{lock}");
        self.rows(&sql, &[&id])?
            .first()
            .map(|row| decode_stored(row.get::<_, &[u8]>(0)))
            .transpose()
    }

    /// Visits the records of `table` in id order after `after`.
    fn scan_by_id<M: prost::Message + Default>(
        &mut self,
        table: &str,
        after: Option<&str>,
        visit: Visit<'_, M>,
    ) -> Result<()> {
        let sql = format!("SELECT id, body FROM {table} WHERE id > $1 ORDER BY id LIMIT $2");
        let mut after = after.unwrap_or_default().to_owned();
        loop {
            let rows = self.rows(&sql, &[&after, &SCAN_CHUNK])?;
            if !visit_chunk(&rows, 1, visit)? {
                return Ok(());
            }
            after = rows[rows.len() - 1].get(0);
        }
    }

    fn apply(&mut self, write: &Write) -> std::result::Result<(), postgres::Error> {
        use prost::Message as _;
        let client = self.client.client();
        match write {
            Write::Agent(agent) => client.execute(
                "INSERT INTO agents (id, body) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                &[&agent.id, &agent.encode_to_vec()],
            ),
            Write::DeleteAgent(id) => {
                client.execute("DELETE FROM lifecycle_events WHERE agent_id = $1", &[id])?;
                client.execute("DELETE FROM agents WHERE id = $1", &[id])
            }
            Write::Task(task) => client.execute(
                "INSERT INTO tasks (id, status, priority, claimed_by, lease_expires_at, \
                 required_capabilities, labels, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                 priority = excluded.priority, claimed_by = excluded.claimed_by, \
                 lease_expires_at = excluded.lease_expires_at, \
                 required_capabilities = excluded.required_capabilities, \
                 labels = excluded.labels, body = excluded.body",
                &[
                    &task.id,
                    &task.status,
                    &task.priority,
                    &task.claimed_by,
                    &super::lease_end_micros(task),
                    &task.required_capabilities,
                    &serde_json::to_value(&task.labels).unwrap_or_default(),
                    &task.encode_to_vec(),
                ],
            ),
            Write::Knowledge(entry) => client.execute(
                "INSERT INTO knowledge (id, namespace, key, tags, searchable, body) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET tags = excluded.tags, \
                 searchable = excluded.searchable, body = excluded.body",
                &[
                    &entry.id,
                    &entry.namespace,
                    &entry.key,
                    &entry.tags,
                    &super::searchable_words(entry),
                    &entry.encode_to_vec(),
                ],
            ),
            Write::DeleteKnowledge(id) => {
                client.execute("DELETE FROM knowledge WHERE id = $1", &[id])
            }
            Write::Event(event) => client.execute(
                "INSERT INTO lifecycle_events (agent_id, sequence, body) VALUES ($1, $2, $3)",
                &[
                    &event.agent_id,
                    &(event.sequence as i64),
                    &event.encode_to_vec(),
                ],
            ),
        }
        .map(|_| ())
    }
}

impl Transaction for PostgresTransaction<'_> {
    fn agent(&mut self, id: &str) -> Result<Option<Agent>> {
        self.one("agents", id)
    }

    fn task(&mut self, id: &str) -> Result<Option<Task>> {
        self.one("tasks", id)
    }

    fn knowledge(&mut self, id: &str) -> Result<Option<KnowledgeEntry>> {
        self.one("knowledge", id)
    }

    fn knowledge_at(&mut self, namespace: &str, key: &str) -> Result<Option<KnowledgeEntry>> {
        let lock = self.lock_clause();
        let sql = format!("SELECT body FROM knowledge WHERE namespace = $1 AND key = $2{lock}");
        self.rows(&sql, &[&namespace, &key])?
            .first()
            .map(|row| decode_stored(row.get::<_, &[u8]>(0)))
            .transpose()
    }

    fn scan_agents(&mut self, after: Option<&str>, visit: Visit<'_, Agent>) -> Result<()> {
        self.scan_by_id("agents", after, visit)
    }

    fn scan_tasks(&mut self, after: Option<&str>, visit: Visit<'_, Task>) -> Result<()> {
        self.scan_by_id("tasks", after, visit)
    }

    fn scan_knowledge(
        &mut self,
        scan: &KnowledgeScan<'_>,
        visit: Visit<'_, KnowledgeEntry>,
    ) -> Result<()> {
        // Namespace and key are never empty, so ('', '') is before them all.
        let (mut namespace, mut key) =
            scan.after.map_or((String::new(), String::new()), |(n, k)| {
                (n.to_owned(), k.to_owned())
            });
        loop {
            let rows = self.rows(
                "SELECT namespace, key, body FROM knowledge \
                 WHERE (namespace, key) > ($1, $2) AND ($3 = '' OR namespace = $3) AND tags @> $4 \
                 ORDER BY namespace, key LIMIT $5",
                &[&namespace, &key, &scan.namespace, &scan.tags, &SCAN_CHUNK],
            )?;
            if !visit_chunk(&rows, 2, visit)? {
                return Ok(());
            }
            let last = &rows[rows.len() - 1];
            namespace = last.get(0);
            key = last.get(1);
        }
    }

    fn search_knowledge(
        &mut self,
        words: &[String],
        scan: &KnowledgeScan<'_>,
        skip: usize,
        visit: Visit<'_, KnowledgeEntry>,
    ) -> Result<()> {
        // The words are letters and digits only: safe as tsquery lexemes.
        let query = words.join(" & ");
        let mut offset = i64::try_from(skip).unwrap_or(i64::MAX);
        loop {
            let rows = self.rows(
                "SELECT body FROM knowledge, to_tsquery('simple', $1) AS query \
                 WHERE search @@ query AND ($2 = '' OR namespace = $2) AND tags @> $3 \
                 ORDER BY ts_rank(search, query) DESC, namespace, key OFFSET $4 LIMIT $5",
                &[&query, &scan.namespace, &scan.tags, &offset, &SCAN_CHUNK],
            )?;
            if !visit_chunk(&rows, 0, visit)? {
                return Ok(());
            }
            offset += SCAN_CHUNK;
        }
    }

    fn scan_history(
        &mut self,
        agent_id: &str,
        after_sequence: u64,
        visit: Visit<'_, LifecycleEvent>,
    ) -> Result<()> {
        let mut after = i64::try_from(after_sequence).unwrap_or(i64::MAX);
        loop {
            let rows = self.rows(
                "SELECT sequence, body FROM lifecycle_events \
                 WHERE agent_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
                &[&agent_id, &after, &SCAN_CHUNK],
            )?;
            if !visit_chunk(&rows, 1, visit)? {
                return Ok(());
            }
            after = rows[rows.len() - 1].get(0);
        }
    }

    fn scan_claimable(&mut self, scan: &ClaimScan<'_>, visit: Visit<'_, Task>) -> Result<()> {
        let labels = serde_json::to_value(scan.labels).unwrap_or_default();
        // One at a time: each row returned stays locked until this
        // transaction ends, so a worker locks only the task it takes.
        let mut after: Option<(i32, String)> = None;
        loop {
            let first = [
                &scan.now_micros as &(dyn ToSql + Sync),
                &scan.capabilities,
                &labels,
            ];
            let rows = match &after {
                None => self.rows(&claim_sql(""), &first)?,
                Some((priority, id)) => {
                    let mut params = first.to_vec();
                    params.extend([priority as &(dyn ToSql + Sync), id]);
                    self.rows(
                        &claim_sql("AND priority <= $4 AND (priority < $4 OR id > $5)"),
                        &params,
                    )?
                }
            };
            let Some(row) = rows.first() else {
                return Ok(());
            };
            if !visit(&decode_stored(row.get::<_, &[u8]>(2))?) {
                return Ok(());
            }
            after = Some((row.get(0), row.get(1)));
        }
    }

    fn last_event(&mut self, agent_id: &str) -> Result<Option<LifecycleEvent>> {
        self.rows(
            "SELECT body FROM lifecycle_events WHERE agent_id = $1 ORDER BY sequence DESC LIMIT 1",
            &[&agent_id],
        )?
        .first()
        .map(|row| decode_stored(row.get::<_, &[u8]>(0)))
        .transpose()
    }

    fn write(&mut self, write: Write) -> Result<()> {
        if self.access != Access::Write {
            return Err(HmsError::new(
                Code::Internal,
                "a read transaction was asked to write",
            ));
        }
        self.writes.push(write);
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.access == Access::Read {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.writes);
        for write in &writes {
            self.apply(write).map_err(|e| self.client.failed(e))?;
        }
        self.client
            .client()
            .batch_execute("COMMIT")
            .map_err(|e| self.client.failed(e))?;
        self.access = Access::Read;
        Ok(())
    }
}

impl Drop for PostgresTransaction<'_> {
    fn drop(&mut self) {
        // Still open: the call failed before it committed.
        if self.access == Access::Write && self.client.client().batch_execute("ROLLBACK").is_err() {
            self.client.broken = true;
        }
    }
}

/// Connections to the database, opened on demand up to the pool size.
struct Pool {
    settings: PostgresSettings,
    state: Mutex<PoolState>,
    freed: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Client>,
    /// Connections open, idle or lent.
    open: usize,
}

impl Pool {
    /// A connection: an idle one, a new one while under the pool size, or
    /// the first one returned within the connect timeout.
    fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + self.settings.connect_timeout;
        let mut state = self.state.lock();
        loop {
            if let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Pooled::new(self, client));
            }
            if state.open < self.settings.pool_size {
                state.open += 1;
                drop(state);
                return match self.settings.connect() {
                    Ok(client) => Ok(Pooled::new(self, client)),
                    Err(error) => {
                        self.state.lock().open -= 1;
                        self.freed.notify_one();
                        Err(database_error(&self.settings.server, error))
                    }
                };
            }
            if self.freed.wait_until(&mut state, deadline).timed_out() {
                return Err(HmsError::new(
                    Code::Unavailable,
                    format!(
                        "storage: all {} connections to {} stayed busy for {} ms; retry, \
                         or raise store.postgres.pool_size",
                        self.settings.pool_size,
                        self.settings.server,
                        self.settings.connect_timeout.as_millis()
                    ),
                )
                .with_detail("server", &self.settings.server)
                .with_detail("pool_size", self.settings.pool_size)
                .with_origin("storage"));
            }
        }
    }
}

/// A lent connection, returned to the pool when dropped unless it broke.
struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    broken: bool,
}

impl<'a> Pooled<'a> {
    fn new(pool: &'a Pool, client: Client) -> Pooled<'a> {
        Pooled {
            pool,
            client: Some(client),
            broken: false,
        }
    }

    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("held until dropped")
    }

    /// Converts a failure. A connection that failed below SQL (closed,
    /// timed out, unreadable) is not lent again; after an SQL error it is
    /// sound, and its transaction is rolled back.
    fn failed(&mut self, error: postgres::Error) -> HmsError {
        if error.as_db_error().is_none() {
            self.broken = true;
        }
        database_error(&self.pool.settings.server, error)
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let client = self.client.take().expect("held until dropped");
        let mut state = self.pool.state.lock();
        if self.broken || client.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(client);
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}
