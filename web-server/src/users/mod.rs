//! Named users: who may sign in, with which role, to which hosts.
//!
//! The two shared credentials (user and admin, [`crate::auth`]) stay for Helix's proxy, scripts
//! and a first start; an operator who has more than one person in front of moongate adds named
//! users through the admin API. A user has a password (argon2id, [`password`]), a role
//! ([`UserRole`]) and optionally a list of the hosts they may see and stream from. Signing in
//! ([`crate::api::auth`]) gives a random session token with an expiry; only its SHA-256 is
//! stored, so a copy of the database holds no live token. Failed sign-ins are throttled per
//! address and per name ([`throttle`]).
//!
//! Users and sign-in sessions live in the host store (SQLite, or Redis in a cluster), so every
//! node of a cluster knows them.

pub mod oidc;
pub mod password;
pub mod throttle;

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::StoreFuture;

/// What a named user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Everything, the admin API included.
    Admin,
    /// The REST API and streaming, on the hosts they may use.
    User,
    /// Read-only: hosts, apps and sessions may be listed; nothing is changed or started.
    Viewer,
}

impl UserRole {
    /// The store's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::User => "user",
            UserRole::Viewer => "viewer",
        }
    }

    /// From the store's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(UserRole::Admin),
            "user" => Some(UserRole::User),
            "viewer" => Some(UserRole::Viewer),
            _ => None,
        }
    }
}

/// A stored user. `Debug` leaves the password hash out.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// The sign-in name ([`valid_name`]).
    pub name: String,
    /// What they may do.
    pub role: UserRole,
    /// The host ids they may see and stream from; `None`: every host.
    pub hosts: Option<Vec<i64>>,
    /// The argon2id PHC string; never sent out.
    #[serde(skip)]
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    /// A user created now.
    pub fn new(
        name: String,
        role: UserRole,
        hosts: Option<Vec<i64>>,
        password_hash: String,
    ) -> Self {
        UserRecord {
            name,
            role,
            hosts,
            password_hash,
            created_at: crate::store::now_unix(),
        }
    }

    /// Whether this user may see and use the host `id`.
    pub fn may_use_host(&self, id: i64) -> bool {
        self.hosts.as_ref().is_none_or(|h| h.contains(&id))
    }
}

/// Why a user name is refused.
pub const NAME_RULE: &str = "1 to 64 characters: letters, digits, '.', '_', '-' or '@'";

/// A user name: 1 to 64 of `[A-Za-z0-9._@-]` (also what a proxy's user header may carry).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// A new sign-in token (32 random bytes, hex) and what the store keeps of it.
pub fn new_session_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// What the store keeps of a sign-in token: its SHA-256, hex. The token has 256 random bits, so a
/// plain hash is enough (no salt or stretching to slow a guess down).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The password hash of a user made at its first sign-in through the identity provider: not a
/// PHC string, so no password ever matches it.
pub const SSO_ONLY_PASSWORD: &str = "!sso-only";

/// Users and their sign-in sessions, in the host store.
pub trait UserStore: Send + Sync {
    /// Every user, by name.
    fn list_users(&self) -> StoreFuture<'_, Vec<UserRecord>>;
    /// One user.
    fn get_user(&self, name: &str) -> StoreFuture<'_, Option<UserRecord>>;
    /// Adds the user, or replaces the one of that name.
    fn put_user(&self, user: UserRecord) -> StoreFuture<'_, ()>;
    /// Removes the user and their sign-in sessions; `false` if there was none.
    fn remove_user(&self, name: &str) -> StoreFuture<'_, bool>;
    /// Stores a sign-in session (`token_hash` from [`token_hash`]) until `expires_at` (Unix s).
    fn create_session(&self, token_hash: &str, user: &str, expires_at: i64) -> StoreFuture<'_, ()>;
    /// The user of an unexpired session at `now`; an expired one is removed.
    fn session_user(&self, token_hash: &str, now: i64) -> StoreFuture<'_, Option<String>>;
    /// Ends one session; `false` if there was none.
    fn remove_session(&self, token_hash: &str) -> StoreFuture<'_, bool>;
    /// Ends every session of `user` (password or role changed, user removed).
    fn remove_user_sessions(&self, user: &str) -> StoreFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_roles() {
        for ok in [
            "a",
            "alice",
            "Bob.Smith",
            "x_y-z@example.org",
            &"n".repeat(64),
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "a\n", &"n".repeat(65), "a;drop"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        for r in [UserRole::Admin, UserRole::User, UserRole::Viewer] {
            assert_eq!(UserRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(UserRole::parse("root"), None);
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, ha) = new_session_token();
        let (b, hb) = new_session_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a), ha);
        assert_ne!(ha, hb);
        assert!(!ha.contains(&a));
    }

    #[test]
    fn host_scope_and_redacted_debug() {
        let mut u = UserRecord {
            name: "alice".into(),
            role: UserRole::User,
            hosts: None,
            password_hash: "$argon2id$secret".into(),
            created_at: 0,
        };
        assert!(u.may_use_host(7));
        u.hosts = Some(vec![1, 3]);
        assert!(u.may_use_host(3) && !u.may_use_host(2));
        let shown = format!("{u:?}");
        assert!(!shown.contains("argon2"), "{shown}");
        let json = serde_json::to_string(&u).unwrap();
        assert!(!json.contains("argon2"), "{json}");
    }
}
