//! [`UserStore`] on SQLite: the `users` and `user_sessions` tables (migration 4). A user's host
//! list is stored as JSON (`NULL`: every host); removing a user removes their sessions (foreign
//! key, `ON DELETE CASCADE`).

use rusqlite::OptionalExtension;

use super::{SqliteStore, StoreError, StoreFuture};
use crate::users::{UserRecord, UserRole, UserStore};

const USER_COLUMNS: &str = "name, role, hosts, password_hash, created_at";

fn user_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(UserRecord, String, Option<String>)> {
    Ok((
        UserRecord {
            name: row.get(0)?,
            role: UserRole::User,
            hosts: None,
            password_hash: row.get(3)?,
            created_at: row.get(4)?,
        },
        row.get(1)?,
        row.get(2)?,
    ))
}

fn finish_user(
    (mut u, role, hosts): (UserRecord, String, Option<String>),
) -> Result<UserRecord, StoreError> {
    u.role = UserRole::parse(&role)
        .ok_or_else(|| StoreError::Corrupt(format!("user {}: role {role:?}", u.name)))?;
    u.hosts = hosts
        .map(|h| serde_json::from_str(&h))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("user {}: hosts: {e}", u.name)))?;
    Ok(u)
}

/// The JSON of a host list, for both stores.
pub(crate) fn hosts_json(hosts: &Option<Vec<i64>>) -> Option<String> {
    hosts
        .as_ref()
        .map(|h| serde_json::to_string(h).unwrap_or_else(|_| "[]".into()))
}

impl UserStore for SqliteStore {
    fn list_users(&self) -> StoreFuture<'_, Vec<UserRecord>> {
        Self::ready(self.with(|c| {
            let mut stmt = c.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
            let rows = stmt.query_map([], user_from_row)?;
            rows.map(|r| finish_user(r?)).collect()
        }))
    }

    fn get_user(&self, name: &str) -> StoreFuture<'_, Option<UserRecord>> {
        Self::ready(self.with(|c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name],
                user_from_row,
            )
            .optional()?
            .map(finish_user)
            .transpose()
        }))
    }

    fn put_user(&self, user: UserRecord) -> StoreFuture<'_, ()> {
        Self::ready(self.with(|c| {
            c.execute(
                "INSERT INTO users (name, role, hosts, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET role = ?2, hosts = ?3, password_hash = ?4",
                rusqlite::params![
                    user.name,
                    user.role.as_str(),
                    hosts_json(&user.hosts),
                    user.password_hash,
                    user.created_at
                ],
            )?;
            Ok(())
        }))
    }

    fn remove_user(&self, name: &str) -> StoreFuture<'_, bool> {
        Self::ready(self.with(|c| Ok(c.execute("DELETE FROM users WHERE name = ?1", [name])? > 0)))
    }

    fn create_session(&self, token_hash: &str, user: &str, expires_at: i64) -> StoreFuture<'_, ()> {
        Self::ready(self.with(|c| {
            // Expired sessions are swept on the way: sign-ins are rare, the table stays small.
            c.execute(
                "DELETE FROM user_sessions WHERE expires_at <= ?1",
                [super::now_unix()],
            )?;
            c.execute(
                "INSERT INTO user_sessions (token_hash, user_name, expires_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![token_hash, user, expires_at],
            )?;
            Ok(())
        }))
    }

    fn session_user(&self, token_hash: &str, now: i64) -> StoreFuture<'_, Option<String>> {
        Self::ready(self.with(|c| {
            let row: Option<(String, i64)> = c
                .query_row(
                    "SELECT user_name, expires_at FROM user_sessions WHERE token_hash = ?1",
                    [token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match row {
                Some((user, expires)) if expires > now => Ok(Some(user)),
                Some(_) => {
                    c.execute(
                        "DELETE FROM user_sessions WHERE token_hash = ?1",
                        [token_hash],
                    )?;
                    Ok(None)
                }
                None => Ok(None),
            }
        }))
    }

    fn remove_session(&self, token_hash: &str) -> StoreFuture<'_, bool> {
        Self::ready(self.with(|c| {
            Ok(c.execute(
                "DELETE FROM user_sessions WHERE token_hash = ?1",
                [token_hash],
            )? > 0)
        }))
    }

    fn remove_user_sessions(&self, user: &str) -> StoreFuture<'_, ()> {
        Self::ready(self.with(|c| {
            c.execute("DELETE FROM user_sessions WHERE user_name = ?1", [user])?;
            Ok(())
        }))
    }
}
