//! The host store on Redis: what every gateway of a cluster shares, so a client paired through
//! one node streams through any other without pairing again.
//!
//! Layout (under the prefix `p`): `p:host:next` (id counter), `p:hosts` (sorted set of ids),
//! `p:host:<id>` (hash: the host's fields; an absent field is `None`), `p:identity:<id>:<client>`
//! (hash: certificate, sealed key, pairing state, times), `p:identities` (set of
//! `<id>|<client>`) and `p:host:<id>:clients` (set of client ids). Every step that reads before it
//! writes, or writes more than one key, is a Lua script: Redis runs it whole, so two gateways
//! never interleave halves of one change.
//!
//! Private keys are sealed with the same [`StoreKey`] and row binding as in SQLite; every node of
//! a cluster must load the same key file (`MOONGATE_STORE_KEY`), or it cannot use the keys the
//! others stored. Durability is Redis's: run it with `appendonly yes` (AOF).

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::store::{
    now_unix, ClientIdentityRecord, HostRecord, HostStore, IdentitySummary, NewHost, PairingState,
    StoreError, StoreFuture,
};
use crate::store_key::{row_aad, StoreKey};

/// The Redis host store (clone freely: one multiplexed connection).
#[derive(Clone)]
pub struct RedisStore {
    pub(super) conn: ConnectionManager,
    prefix: String,
    key: StoreKey,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

const ADD_HOST: &str = r"
local id = redis.call('INCR', KEYS[1])
local key = ARGV[1] .. id
redis.call('HSET', key, 'name', ARGV[2], 'address', ARGV[3], 'http_port', ARGV[4], 'added_at', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', key, 'https_port', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', key, 'mac', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', key, 'wolf_api', ARGV[8]) end
redis.call('ZADD', KEYS[2], id, id)
return id
";

const REMOVE_HOST: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
local clients = redis.call('SMEMBERS', KEYS[3])
for _, c in ipairs(clients) do
  redis.call('DEL', ARGV[2] .. c)
  redis.call('SREM', KEYS[4], ARGV[1] .. '|' .. c)
end
redis.call('DEL', KEYS[3])
return 1
";

const SET_SERVER_CERT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'server_cert_pem')
else redis.call('HSET', KEYS[1], 'server_cert_pem', ARGV[1]) end
return 1
";

/// `KEYS`: host, identity, host clients, identities. `ARGV`: cert, sealed key, pairing, now,
/// client, `<id>|<client>`, only-if-absent (`1`/`0`). Returns 0 = no host, 1 = written,
/// 2 = already there (only-if-absent).
const PUT_IDENTITY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
redis.call('HSET', KEYS[2], 'cert_pem', ARGV[1], 'key_pem', ARGV[2], 'pairing', ARGV[3], 'updated_at', ARGV[4], 'last_used', ARGV[4])
redis.call('HSETNX', KEYS[2], 'created_at', ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('SADD', KEYS[4], ARGV[6])
return 1
";

const SET_PAIRING: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'pairing', ARGV[1], 'updated_at', ARGV[2])
return 1
";

const TOUCH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_used') or '0')
if tonumber(ARGV[1]) > last then redis.call('HSET', KEYS[1], 'last_used', ARGV[1]) end
return 1
";

const REMOVE_IDENTITY: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
";

fn field<T: std::str::FromStr>(
    h: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, StoreError> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("{name} {v:?}"))),
    }
}

pub(super) fn required<T: std::str::FromStr>(
    h: &HashMap<String, String>,
    name: &str,
) -> Result<T, StoreError> {
    field(h, name)?.ok_or_else(|| StoreError::Corrupt(format!("missing {name}")))
}

impl RedisStore {
    /// A store on `conn` under `prefix`, sealing private keys with `key`.
    pub fn new(conn: ConnectionManager, prefix: &str, key: StoreKey) -> Self {
        RedisStore {
            conn,
            prefix: prefix.to_string(),
            key,
        }
    }

    pub(super) fn k(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    fn host_key(&self, id: i64) -> String {
        format!("{}:host:{id}", self.prefix)
    }

    fn identity_key(&self, host_id: i64, client_id: &str) -> String {
        format!("{}:identity:{host_id}:{client_id}", self.prefix)
    }

    fn host_from(id: i64, h: &HashMap<String, String>) -> Result<HostRecord, StoreError> {
        Ok(HostRecord {
            id,
            name: required(h, "name")?,
            address: required(h, "address")?,
            http_port: required(h, "http_port")?,
            https_port: field(h, "https_port")?,
            mac: h.get("mac").cloned(),
            server_cert_pem: h.get("server_cert_pem").cloned(),
            added_at: required(h, "added_at")?,
            wolf_api: h.get("wolf_api").cloned(),
        })
    }

    async fn put(
        &self,
        record: &ClientIdentityRecord,
        only_if_absent: bool,
    ) -> Result<i64, StoreError> {
        let sealed = self
            .key
            .seal(&record.key_pem, &row_aad(record.host_id, &record.client_id));
        let mut conn = self.conn.clone();
        Ok(Script::new(PUT_IDENTITY)
            .key(self.host_key(record.host_id))
            .key(self.identity_key(record.host_id, &record.client_id))
            .key(format!("{}:clients", self.host_key(record.host_id)))
            .key(self.k("identities"))
            .arg(&record.cert_pem)
            .arg(sealed)
            .arg(record.pairing.as_str())
            .arg(now_unix())
            .arg(&record.client_id)
            .arg(format!("{}|{}", record.host_id, record.client_id))
            .arg(if only_if_absent { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?)
    }

    async fn get_identity_inner(
        &self,
        host_id: i64,
        client_id: &str,
    ) -> Result<Option<ClientIdentityRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> =
            conn.hgetall(self.identity_key(host_id, client_id)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let sealed: String = required(&h, "key_pem")?;
        let key_pem = self
            .key
            .open(&sealed, &row_aad(host_id, client_id))
            .map_err(|source| StoreError::Decrypt {
                host_id,
                client_id: client_id.to_string(),
                source,
            })?;
        Ok(Some(ClientIdentityRecord {
            host_id,
            client_id: client_id.to_string(),
            cert_pem: required(&h, "cert_pem")?,
            key_pem,
            pairing: PairingState::parse(&required::<String>(&h, "pairing")?)?,
            updated_at: required(&h, "updated_at")?,
        }))
    }
}

impl HostStore for RedisStore {
    fn list_hosts(&self) -> StoreFuture<'_, Vec<HostRecord>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let ids: Vec<i64> = conn.zrange(self.k("hosts"), 0, -1).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hgetall(self.host_key(*id));
            }
            let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            ids.iter()
                .zip(rows)
                .filter(|(_, h)| !h.is_empty())
                .map(|(id, h)| Self::host_from(*id, &h))
                .collect()
        })
    }

    fn get_host(&self, id: i64) -> StoreFuture<'_, Option<HostRecord>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let h: HashMap<String, String> = conn.hgetall(self.host_key(id)).await?;
            if h.is_empty() {
                return Ok(None);
            }
            Self::host_from(id, &h).map(Some)
        })
    }

    fn add_host(&self, host: NewHost) -> StoreFuture<'_, HostRecord> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let id: i64 = Script::new(ADD_HOST)
                .key(self.k("host:next"))
                .key(self.k("hosts"))
                .arg(format!("{}:host:", self.prefix))
                .arg(&host.name)
                .arg(&host.address)
                .arg(host.http_port)
                .arg(now_unix())
                .arg(host.https_port.map(|p| p.to_string()).unwrap_or_default())
                .arg(host.mac.clone().unwrap_or_default())
                .arg(host.wolf_api.clone().unwrap_or_default())
                .invoke_async(&mut conn)
                .await?;
            self.get_host(id).await?.ok_or(StoreError::NoSuchHost(id))
        })
    }

    fn remove_host(&self, id: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let removed: i64 = Script::new(REMOVE_HOST)
                .key(self.k("hosts"))
                .key(self.host_key(id))
                .key(format!("{}:clients", self.host_key(id)))
                .key(self.k("identities"))
                .arg(id)
                .arg(format!("{}:identity:{id}:", self.prefix))
                .invoke_async(&mut conn)
                .await?;
            Ok(removed == 1)
        })
    }

    fn set_server_cert(&self, id: i64, cert_pem: Option<String>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let found: i64 = Script::new(SET_SERVER_CERT)
                .key(self.host_key(id))
                .arg(cert_pem.unwrap_or_default())
                .invoke_async(&mut conn)
                .await?;
            if found == 0 {
                return Err(StoreError::NoSuchHost(id));
            }
            Ok(())
        })
    }

    fn get_identity(
        &self,
        host_id: i64,
        client_id: &str,
    ) -> StoreFuture<'_, Option<ClientIdentityRecord>> {
        let client_id = client_id.to_string();
        Box::pin(async move { self.get_identity_inner(host_id, &client_id).await })
    }

    fn put_identity(&self, record: ClientIdentityRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.put(&record, false).await? {
                0 => Err(StoreError::NoSuchHost(record.host_id)),
                _ => Ok(()),
            }
        })
    }

    fn insert_identity_if_absent(
        &self,
        record: ClientIdentityRecord,
    ) -> StoreFuture<'_, ClientIdentityRecord> {
        Box::pin(async move {
            if self.put(&record, true).await? == 0 {
                return Err(StoreError::NoSuchHost(record.host_id));
            }
            self.get_identity_inner(record.host_id, &record.client_id)
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
        let key = self.identity_key(host_id, client_id);
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let n: i64 = Script::new(SET_PAIRING)
                .key(key)
                .arg(state.as_str())
                .arg(now_unix())
                .invoke_async(&mut conn)
                .await?;
            Ok(n == 1)
        })
    }

    fn touch_identity(&self, host_id: i64, client_id: &str, at: i64) -> StoreFuture<'_, bool> {
        let key = self.identity_key(host_id, client_id);
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let n: i64 = Script::new(TOUCH)
                .key(key)
                .arg(at)
                .invoke_async(&mut conn)
                .await?;
            Ok(n == 1)
        })
    }

    fn list_identities(&self) -> StoreFuture<'_, Vec<IdentitySummary>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let members: Vec<String> = conn.smembers(self.k("identities")).await?;
            let mut ids: Vec<(i64, String)> = members
                .iter()
                .filter_map(|m| {
                    let (h, c) = m.split_once('|')?;
                    Some((h.parse().ok()?, c.to_string()))
                })
                .collect();
            ids.sort();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for (h, c) in &ids {
                pipe.hgetall(self.identity_key(*h, c));
            }
            let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            ids.into_iter()
                .zip(rows)
                .filter(|(_, h)| !h.is_empty())
                .map(|((host_id, client_id), h)| {
                    Ok(IdentitySummary {
                        host_id,
                        client_id,
                        pairing: PairingState::parse(&required::<String>(&h, "pairing")?)?,
                        created_at: field(&h, "created_at")?.unwrap_or(0),
                        last_used: field(&h, "last_used")?.unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    fn remove_identity(&self, host_id: i64, client_id: &str) -> StoreFuture<'_, bool> {
        let key = self.identity_key(host_id, client_id);
        let clients = format!("{}:clients", self.host_key(host_id));
        let member = format!("{host_id}|{client_id}");
        let client_id = client_id.to_string();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let n: i64 = Script::new(REMOVE_IDENTITY)
                .key(key)
                .key(clients)
                .key(self.k("identities"))
                .arg(client_id)
                .arg(member)
                .invoke_async(&mut conn)
                .await?;
            Ok(n == 1)
        })
    }
}
