//! [`UserStore`] on Redis, so every node of a cluster knows the same users and sign-ins.
//!
//! Layout (under the prefix `p`): `p:users` (set of names), `p:user:<name>` (hash: role, hosts as
//! JSON when limited, password hash, created), `p:usession:<token hash>` (the user's name, expiring
//! at the session's end: Redis drops it itself), `p:user:<name>:sessions` (set of the user's
//! token hashes, so that a password change or removal ends them all). A removal is a Lua script,
//! run whole.

use std::collections::HashMap;

use redis::{AsyncCommands, Script};

use super::store::{required, RedisStore};
use crate::store::{StoreError, StoreFuture};
use crate::users::{UserRecord, UserRole, UserStore};

/// `KEYS`: users set, user hash, the user's session set. `ARGV`: name, session key prefix.
const REMOVE_USER: &str = r"
local removed = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
for _, h in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', ARGV[2] .. h)
end
redis.call('DEL', KEYS[3])
return removed
";

/// `KEYS`: the user's session set. `ARGV`: session key prefix.
const REMOVE_USER_SESSIONS: &str = r"
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
return 1
";

impl RedisStore {
    fn user_key(&self, name: &str) -> String {
        self.k(&format!("user:{name}"))
    }

    fn user_sessions_key(&self, name: &str) -> String {
        self.k(&format!("user:{name}:sessions"))
    }

    fn session_key(&self, token_hash: &str) -> String {
        self.k(&format!("usession:{token_hash}"))
    }

    fn user_from(name: &str, h: &HashMap<String, String>) -> Result<UserRecord, StoreError> {
        let role: String = required(h, "role")?;
        Ok(UserRecord {
            name: name.to_string(),
            role: UserRole::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("user {name}: role {role:?}")))?,
            hosts: h
                .get("hosts")
                .map(|j| serde_json::from_str(j))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("user {name}: hosts: {e}")))?,
            password_hash: required(h, "password_hash")?,
            created_at: required(h, "created_at")?,
        })
    }
}

impl UserStore for RedisStore {
    fn list_users(&self) -> StoreFuture<'_, Vec<UserRecord>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut names: Vec<String> = conn.smembers(self.k("users")).await?;
            names.sort();
            let mut pipe = redis::pipe();
            for n in &names {
                pipe.hgetall(self.user_key(n));
            }
            let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            names
                .iter()
                .zip(rows)
                .filter(|(_, h)| !h.is_empty())
                .map(|(n, h)| Self::user_from(n, &h))
                .collect()
        })
    }

    fn get_user(&self, name: &str) -> StoreFuture<'_, Option<UserRecord>> {
        let name = name.to_string();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let h: HashMap<String, String> = conn.hgetall(self.user_key(&name)).await?;
            if h.is_empty() {
                return Ok(None);
            }
            Self::user_from(&name, &h).map(Some)
        })
    }

    fn put_user(&self, user: UserRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = self.user_key(&user.name);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .hset_multiple(
                    &key,
                    &[
                        ("role", user.role.as_str().to_string()),
                        ("password_hash", user.password_hash.clone()),
                    ],
                )
                .hset_nx(&key, "created_at", user.created_at)
                .sadd(self.k("users"), &user.name);
            match crate::store::hosts_json(&user.hosts) {
                Some(hosts) => pipe.hset(&key, "hosts", hosts),
                None => pipe.hdel(&key, "hosts"),
            };
            let _: () = pipe.query_async(&mut conn).await?;
            Ok(())
        })
    }

    fn remove_user(&self, name: &str) -> StoreFuture<'_, bool> {
        let name = name.to_string();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let removed: i64 = Script::new(REMOVE_USER)
                .key(self.k("users"))
                .key(self.user_key(&name))
                .key(self.user_sessions_key(&name))
                .arg(&name)
                .arg(self.k("usession:"))
                .invoke_async(&mut conn)
                .await?;
            Ok(removed > 0)
        })
    }

    fn create_session(&self, token_hash: &str, user: &str, expires_at: i64) -> StoreFuture<'_, ()> {
        let (token_hash, user) = (token_hash.to_string(), user.to_string());
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: () = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(self.session_key(&token_hash))
                .arg(&user)
                .arg("EXAT")
                .arg(expires_at.max(1))
                .ignore()
                .sadd(self.user_sessions_key(&user), &token_hash)
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
    }

    fn session_user(&self, token_hash: &str, _now: i64) -> StoreFuture<'_, Option<String>> {
        let token_hash = token_hash.to_string();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            // Redis removes the key at the session's end (EXAT).
            Ok(conn.get(self.session_key(&token_hash)).await?)
        })
    }

    fn remove_session(&self, token_hash: &str) -> StoreFuture<'_, bool> {
        let token_hash = token_hash.to_string();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = self.session_key(&token_hash);
            let user: Option<String> = conn.get(&key).await?;
            let removed: i64 = conn.del(&key).await?;
            if let Some(user) = user {
                let _: i64 = conn
                    .srem(self.user_sessions_key(&user), &token_hash)
                    .await?;
            }
            Ok(removed > 0)
        })
    }

    fn remove_user_sessions(&self, user: &str) -> StoreFuture<'_, ()> {
        let user = user.to_string();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: i64 = Script::new(REMOVE_USER_SESSIONS)
                .key(self.user_sessions_key(&user))
                .arg(self.k("usession:"))
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        })
    }
}
