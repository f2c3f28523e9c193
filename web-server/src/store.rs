//! The host store: hosts, our client identities per (host, client id) and their pairing state.
//!
//! Behind [`HostStore`] so that a shared store (Redis, Postgres) can replace the SQLite file when
//! several gateways serve one fleet. Methods return boxed futures so the trait is object-safe
//! (`Arc<dyn HostStore>`). [`SqliteStore`] runs its statements inline: each is a sub-millisecond
//! operation on a local file, serialised by one connection.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::store_key::{row_aad, StoreKey, ENCRYPTED_PREFIX};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored value is invalid.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The referenced host does not exist.
    #[error("no host with id {0}")]
    NoSuchHost(i64),
    /// The store's lock was poisoned by a panic elsewhere.
    #[error("store lock poisoned")]
    Poisoned,
    /// A private key is encrypted but this store was opened without a key.
    #[error("the store holds encrypted private keys: open it with its store key")]
    KeyRequired,
    /// A private key did not decrypt: the wrong store key, or a value altered or moved.
    #[error("private key of host {host_id} client {client_id:?}: {source}")]
    Decrypt {
        /// Host id of the row.
        host_id: i64,
        /// Client id of the row.
        client_id: String,
        /// The cause.
        source: crate::store_key::DecryptError,
    },
    /// The shared store (Redis) failed or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Setting up the database file's mode failed.
    #[error("database file: {0}")]
    Io(#[from] std::io::Error),
}

/// A boxed store future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A Moonlight host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    /// Store id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Host name or IP literal.
    pub address: String,
    /// NVHTTP port.
    pub http_port: u16,
    /// HTTPS port, if known.
    pub https_port: Option<u16>,
    /// MAC for Wake-on-LAN.
    pub mac: Option<String>,
    /// The host certificate pinned at pairing (PEM); `None` = never paired.
    pub server_cert_pem: Option<String>,
    /// When it was added (Unix seconds).
    pub added_at: i64,
    /// Wolf's HTTP API (a Unix socket path or `http://host:port`), if the host has one: lets the
    /// gateway submit PINs and unpair clients without NVHTTP.
    pub wolf_api: Option<String>,
}

/// A host to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHost {
    /// Display name.
    pub name: String,
    /// Host name or IP literal.
    pub address: String,
    /// NVHTTP port.
    pub http_port: u16,
    /// HTTPS port, if known.
    pub https_port: Option<u16>,
    /// MAC for Wake-on-LAN.
    pub mac: Option<String>,
    /// Wolf's HTTP API (a Unix socket path or `http://host:port`), if the host has one.
    pub wolf_api: Option<String>,
}

/// Pairing state of one of our client identities with one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairingState {
    /// Never paired (or unpaired).
    Unpaired,
    /// A PIN pairing is running.
    Pairing,
    /// Paired: the host accepts this identity.
    Paired,
    /// The last pairing failed.
    Failed,
}

impl PairingState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PairingState::Unpaired => "unpaired",
            PairingState::Pairing => "pairing",
            PairingState::Paired => "paired",
            PairingState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "unpaired" => PairingState::Unpaired,
            "pairing" => PairingState::Pairing,
            "paired" => PairingState::Paired,
            "failed" => PairingState::Failed,
            other => return Err(StoreError::Corrupt(format!("pairing state {other:?}"))),
        })
    }
}

/// Our client identity toward one host. `key_pem` is a secret: redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentityRecord {
    /// Host id.
    pub host_id: i64,
    /// Client id (the browser's `client_unique_id`, or [`crate::api::GATEWAY_CLIENT_ID`]).
    pub client_id: String,
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (secret).
    pub key_pem: String,
    /// Pairing state.
    pub pairing: PairingState,
    /// Last change (Unix seconds).
    pub updated_at: i64,
}

impl fmt::Debug for ClientIdentityRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentityRecord")
            .field("host_id", &self.host_id)
            .field("client_id", &self.client_id)
            .field("cert_pem_len", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .field("pairing", &self.pairing)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// One stored identity without its key (for listing and expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentitySummary {
    /// Host id.
    pub host_id: i64,
    /// Client id.
    pub client_id: String,
    /// Pairing state.
    pub pairing: PairingState,
    /// When it was first stored (Unix seconds).
    pub created_at: i64,
    /// When a stream or pairing last used it (Unix seconds).
    pub last_used: i64,
}

/// Persistent hosts and identities.
pub trait HostStore: crate::users::UserStore + Send + Sync {
    /// All hosts, by id.
    fn list_hosts(&self) -> StoreFuture<'_, Vec<HostRecord>>;
    /// One host.
    fn get_host(&self, id: i64) -> StoreFuture<'_, Option<HostRecord>>;
    /// Adds a host.
    fn add_host(&self, host: NewHost) -> StoreFuture<'_, HostRecord>;
    /// Removes a host and its identities; `false` if it did not exist.
    fn remove_host(&self, id: i64) -> StoreFuture<'_, bool>;
    /// Pins (or clears) the host certificate.
    fn set_server_cert(&self, id: i64, cert_pem: Option<String>) -> StoreFuture<'_, ()>;
    /// Our identity for (host, client).
    fn get_identity(
        &self,
        host_id: i64,
        client_id: &str,
    ) -> StoreFuture<'_, Option<ClientIdentityRecord>>;
    /// Inserts or replaces our identity for (host, client).
    fn put_identity(&self, record: ClientIdentityRecord) -> StoreFuture<'_, ()>;
    /// Inserts `record` unless (host, client) already has an identity; returns the stored one
    /// (so two racing first uses agree on one identity).
    fn insert_identity_if_absent(
        &self,
        record: ClientIdentityRecord,
    ) -> StoreFuture<'_, ClientIdentityRecord>;
    /// Updates the pairing state; `false` if no such identity.
    fn set_pairing_state(
        &self,
        host_id: i64,
        client_id: &str,
        state: PairingState,
    ) -> StoreFuture<'_, bool>;
    /// Records that a stream or pairing used the identity at `at` (Unix seconds); `false` if no
    /// such identity.
    fn touch_identity(&self, host_id: i64, client_id: &str, at: i64) -> StoreFuture<'_, bool>;
    /// Every stored identity (no keys), by host then client id.
    fn list_identities(&self) -> StoreFuture<'_, Vec<IdentitySummary>>;
    /// Removes the identity; `false` if there was none.
    fn remove_identity(&self, host_id: i64, client_id: &str) -> StoreFuture<'_, bool>;
}

/// Schema migrations, applied in order at open; `PRAGMA user_version` counts the applied ones.
const MIGRATIONS: &[&str] = &[
    // 1: hosts and identities.
    "CREATE TABLE hosts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        http_port INTEGER NOT NULL,
        https_port INTEGER,
        mac TEXT,
        server_cert_pem TEXT,
        added_at INTEGER NOT NULL
    );
    CREATE TABLE client_identities (
        host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        cert_pem TEXT NOT NULL,
        key_pem TEXT NOT NULL,
        pairing TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (host_id, client_id)
    );",
    // 2: the host's Wolf API endpoint (nullable: most hosts have none).
    "ALTER TABLE hosts ADD COLUMN wolf_api TEXT;",
    // 3: identity lifecycle: creation and last use, so idle identities can expire.
    "ALTER TABLE client_identities ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE client_identities ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
    UPDATE client_identities SET created_at = updated_at, last_used = updated_at;",
    // 4: named users and their sign-in sessions (only the token's hash).
    "CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        hosts TEXT,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE user_sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX user_sessions_by_user ON user_sessions(user_name);",
];

/// Unix seconds now (0 before 1970).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The SQLite store (SQLite compiled in; no system library).
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Encrypts private keys at rest; `None` only for tools and tests that want plaintext.
    key: Option<StoreKey>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn port(v: i64) -> Result<u16, StoreError> {
    u16::try_from(v).map_err(|_| StoreError::Corrupt(format!("port {v}")))
}

fn host_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(HostRecord, i64, Option<i64>)> {
    Ok((
        HostRecord {
            id: row.get(0)?,
            name: row.get(1)?,
            address: row.get(2)?,
            http_port: 0,
            https_port: None,
            mac: row.get(5)?,
            server_cert_pem: row.get(6)?,
            added_at: row.get(7)?,
            wolf_api: row.get(8)?,
        },
        row.get(3)?,
        row.get(4)?,
    ))
}

fn finish_host(
    (mut h, http, https): (HostRecord, i64, Option<i64>),
) -> Result<HostRecord, StoreError> {
    h.http_port = port(http)?;
    h.https_port = https.map(port).transpose()?;
    Ok(h)
}

const HOST_COLUMNS: &str =
    "id, name, address, http_port, https_port, mac, server_cert_pem, added_at, wolf_api";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations. Private
    /// keys are stored as given (tools and tests); the server uses [`SqliteStore::open_with_key`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::secure_files(path)?;
        let store = Self::init(Connection::open(path)?, None)?;
        Self::secure_files(path)?;
        Ok(store)
    }

    /// Opens the database at `path` with private keys encrypted under `key`; plaintext keys left
    /// by an earlier version are encrypted now. The database, `-wal` and `-shm` files are 0600.
    pub fn open_with_key(path: &Path, key: StoreKey) -> Result<Self, StoreError> {
        Self::secure_files(path)?;
        let store = Self::init(Connection::open(path)?, Some(key))?;
        let migrated = store.encrypt_plaintext_keys()?;
        if migrated > 0 {
            tracing::info!(migrated, "encrypted plaintext private keys in the store");
        }
        Self::secure_files(path)?;
        Ok(store)
    }

    /// The main file is created 0600 before SQLite opens it (SQLite gives its `-wal`/`-shm` the
    /// main file's mode); existing files with wider modes are tightened.
    fn secure_files(path: &Path) -> Result<(), StoreError> {
        crate::datadir::ensure_private_file(path)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            crate::datadir::tighten_path(Path::new(&p), crate::datadir::FILE_MODE)?;
        }
        Ok(())
    }

    /// An in-memory database (for tools; tests use real files).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// Encrypts every plaintext `key_pem`; returns how many.
    fn encrypt_plaintext_keys(&self) -> Result<usize, StoreError> {
        let Some(key) = &self.key else { return Ok(0) };
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let rows: Vec<(i64, String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT host_id, client_id, key_pem FROM client_identities
                 WHERE substr(key_pem, 1, 5) != ?1",
            )?;
            let rows = stmt.query_map([ENCRYPTED_PREFIX], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (host_id, client_id, plain) in &rows {
            tx.execute(
                "UPDATE client_identities SET key_pem = ?3 WHERE host_id = ?1 AND client_id = ?2",
                params![
                    host_id,
                    client_id,
                    key.seal(plain, &row_aad(*host_id, client_id))
                ],
            )?;
        }
        tx.commit()?;
        // Old plaintext pages may linger in the WAL and in free pages: checkpoint and vacuum so
        // no plaintext key stays in the files.
        if !rows.is_empty() {
            conn.execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )?;
        }
        Ok(rows.len())
    }

    fn seal_key(&self, host_id: i64, client_id: &str, key_pem: &str) -> String {
        match &self.key {
            Some(k) => k.seal(key_pem, &row_aad(host_id, client_id)),
            None => key_pem.to_string(),
        }
    }

    fn unseal_key(
        &self,
        host_id: i64,
        client_id: &str,
        stored: String,
    ) -> Result<String, StoreError> {
        if !stored.starts_with(ENCRYPTED_PREFIX) {
            return Ok(stored);
        }
        let key = self.key.as_ref().ok_or(StoreError::KeyRequired)?;
        key.open(&stored, &row_aad(host_id, client_id))
            .map_err(|source| StoreError::Decrypt {
                host_id,
                client_id: client_id.to_string(),
                source,
            })
    }

    fn init(mut conn: Connection, key: Option<StoreKey>) -> Result<Self, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let applied = usize::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("user_version {version}")))?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "database schema version {applied} is newer than this moongate ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        // Deleted rows (revoked or expired identities) are overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            key,
        })
    }

    /// The schema version (number of applied migrations).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&conn)
    }

    pub(crate) fn ready<T: Send + 'static>(r: Result<T, StoreError>) -> StoreFuture<'static, T> {
        Box::pin(std::future::ready(r))
    }
}

impl HostStore for SqliteStore {
    fn list_hosts(&self) -> StoreFuture<'_, Vec<HostRecord>> {
        Self::ready(self.with(|c| {
            let mut stmt = c.prepare(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY id"))?;
            let rows = stmt.query_map([], host_from_row)?;
            rows.map(|r| finish_host(r?)).collect()
        }))
    }

    fn get_host(&self, id: i64) -> StoreFuture<'_, Option<HostRecord>> {
        Self::ready(self.with(|c| {
            c.query_row(
                &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = ?1"),
                [id],
                host_from_row,
            )
            .optional()?
            .map(finish_host)
            .transpose()
        }))
    }

    fn add_host(&self, host: NewHost) -> StoreFuture<'_, HostRecord> {
        Self::ready(self.with(|c| {
            let added_at = now_unix();
            c.execute(
                "INSERT INTO hosts (name, address, http_port, https_port, mac, added_at, wolf_api)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    host.name,
                    host.address,
                    host.http_port,
                    host.https_port,
                    host.mac,
                    added_at,
                    host.wolf_api
                ],
            )?;
            Ok(HostRecord {
                id: c.last_insert_rowid(),
                name: host.name,
                address: host.address,
                http_port: host.http_port,
                https_port: host.https_port,
                mac: host.mac,
                server_cert_pem: None,
                added_at,
                wolf_api: host.wolf_api,
            })
        }))
    }

    fn remove_host(&self, id: i64) -> StoreFuture<'_, bool> {
        Self::ready(self.with(|c| Ok(c.execute("DELETE FROM hosts WHERE id = ?1", [id])? > 0)))
    }

    fn set_server_cert(&self, id: i64, cert_pem: Option<String>) -> StoreFuture<'_, ()> {
        Self::ready(self.with(|c| {
            let n = c.execute(
                "UPDATE hosts SET server_cert_pem = ?2 WHERE id = ?1",
                params![id, cert_pem],
            )?;
            if n == 0 {
                Err(StoreError::NoSuchHost(id))
            } else {
                Ok(())
            }
        }))
    }

    fn get_identity(
        &self,
        host_id: i64,
        client_id: &str,
    ) -> StoreFuture<'_, Option<ClientIdentityRecord>> {
        Self::ready(self.with(|c| {
            let row = c
                .query_row(
                    "SELECT cert_pem, key_pem, pairing, updated_at FROM client_identities
                     WHERE host_id = ?1 AND client_id = ?2",
                    params![host_id, client_id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(cert_pem, key_pem, pairing, updated_at)| {
                Ok(ClientIdentityRecord {
                    host_id,
                    client_id: client_id.to_string(),
                    cert_pem,
                    key_pem: self.unseal_key(host_id, client_id, key_pem)?,
                    pairing: PairingState::parse(&pairing)?,
                    updated_at,
                })
            })
            .transpose()
        }))
    }

    fn put_identity(&self, record: ClientIdentityRecord) -> StoreFuture<'_, ()> {
        Self::ready(self.with(|c| {
            let now = now_unix();
            let result = c.execute(
                "INSERT INTO client_identities
                 (host_id, client_id, cert_pem, key_pem, pairing, updated_at, created_at, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)
                 ON CONFLICT (host_id, client_id) DO UPDATE SET cert_pem = ?3, key_pem = ?4,
                   pairing = ?5, updated_at = ?6, last_used = ?6",
                params![
                    record.host_id,
                    record.client_id,
                    record.cert_pem,
                    self.seal_key(record.host_id, &record.client_id, &record.key_pem),
                    record.pairing.as_str(),
                    now
                ],
            );
            match result {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::NoSuchHost(record.host_id))
                }
                Err(e) => Err(e.into()),
            }
        }))
    }

    fn insert_identity_if_absent(
        &self,
        record: ClientIdentityRecord,
    ) -> StoreFuture<'_, ClientIdentityRecord> {
        let result = self.with(|c| {
            let inserted = c.execute(
                "INSERT OR IGNORE INTO client_identities
                 (host_id, client_id, cert_pem, key_pem, pairing, updated_at, created_at, last_used)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6
                 WHERE EXISTS (SELECT 1 FROM hosts WHERE id = ?1)",
                params![
                    record.host_id,
                    record.client_id,
                    record.cert_pem,
                    self.seal_key(record.host_id, &record.client_id, &record.key_pem),
                    record.pairing.as_str(),
                    now_unix()
                ],
            )?;
            Ok(inserted)
        });
        Box::pin(async move {
            result?;
            self.get_identity(record.host_id, &record.client_id)
                .await?
                .ok_or(StoreError::NoSuchHost(record.host_id))
        })
    }

    fn set_pairing_state(
        &self,
        host_id: i64,
        client_id: &str,
        state: PairingState,
    ) -> StoreFuture<'_, bool> {
        Self::ready(self.with(|c| {
            Ok(c.execute(
                "UPDATE client_identities SET pairing = ?3, updated_at = ?4
                 WHERE host_id = ?1 AND client_id = ?2",
                params![host_id, client_id, state.as_str(), now_unix()],
            )? > 0)
        }))
    }

    fn touch_identity(&self, host_id: i64, client_id: &str, at: i64) -> StoreFuture<'_, bool> {
        Self::ready(self.with(|c| {
            Ok(c.execute(
                "UPDATE client_identities SET last_used = max(last_used, ?3)
                 WHERE host_id = ?1 AND client_id = ?2",
                params![host_id, client_id, at],
            )? > 0)
        }))
    }

    fn list_identities(&self) -> StoreFuture<'_, Vec<IdentitySummary>> {
        Self::ready(self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT host_id, client_id, pairing, created_at, last_used FROM client_identities
                 ORDER BY host_id, client_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            rows.map(|r| {
                let (host_id, client_id, pairing, created_at, last_used) = r?;
                Ok(IdentitySummary {
                    host_id,
                    client_id,
                    pairing: PairingState::parse(&pairing)?,
                    created_at,
                    last_used,
                })
            })
            .collect()
        }))
    }

    fn remove_identity(&self, host_id: i64, client_id: &str) -> StoreFuture<'_, bool> {
        Self::ready(self.with(|c| {
            Ok(c.execute(
                "DELETE FROM client_identities WHERE host_id = ?1 AND client_id = ?2",
                params![host_id, client_id],
            )? > 0)
        }))
    }
}

mod users;
pub(crate) use users::hosts_json;

#[cfg(test)]
mod tests;
