//! Operators, hosts and their API keys (see `stratbox_engine::access` for what each role
//! may do).
//!
//! A key is 32 bytes from the operating system's random source, handed to the operator once
//! as 64 hex digits. The database keeps only `sha256(key text)`.
//!
//! Why a plain sha256 and not a password hash (argon2, bcrypt): those are slow on purpose to
//! make guessing a *low-entropy* human password expensive after a database leak. A key with
//! 256 bits of randomness cannot be guessed however fast the hash is, so the slowness would
//! buy nothing and would cost every authenticated call. The hash only has to be one-way, so
//! that a leaked `operators` table does not hand out working keys.
//!
//! Matching: all stored hashes are compared with the presented key's hash in constant time
//! and without stopping at the first match, so response timing says nothing about how much
//! of a hash matched. Keys are never logged; only operator names are.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::{AnyPool, Row};
use stratbox_engine::Role;
use subtle::ConstantTimeEq;

use crate::error::RegistryError;

/// An authenticated operator: the name written to `audit_log` as the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The key's name, as given when it was created.
    pub name: String,
}

/// A key's holder: its name and the one role the key grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name, unique among keys.
    pub name: String,
    /// What the key may do; a key has exactly one role.
    pub role: Role,
}

/// A freshly generated key. `Debug` does not print it.
pub struct ApiKey(String);

impl ApiKey {
    /// 32 random bytes from the OS; errors only when the OS has no randomness.
    pub fn generate() -> Result<ApiKey, RegistryError> {
        use rand::TryRngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| RegistryError::Invalid(format!("no randomness from the OS: {e}")))?;
        Ok(ApiKey(hex::encode(bytes)))
    }

    /// The key text, to print once to the operator.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Hex sha256 of the key text as presented (surrounding whitespace removed).
pub fn key_hash(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// Operator names are written into audit rows and printed in tables.
pub fn check_operator_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "operator name {:?}: 1 to 64 characters of a-z A-Z 0-9 - _ . @",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// The key from gRPC metadata `authorization: Bearer <key>`.
pub fn bearer(metadata: &tonic::metadata::MetadataMap) -> Result<&str, RegistryError> {
    let value = metadata.get("authorization").ok_or_else(|| {
        RegistryError::Unauthenticated(
            "this call needs `authorization: Bearer <api key>` (an operator's or a host's, as the call requires)".into(),
        )
    })?;
    let text = value.to_str().map_err(|_| {
        RegistryError::Unauthenticated("the authorization header is not text".into())
    })?;
    let key = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            RegistryError::Unauthenticated("the authorization header is not `Bearer <key>`".into())
        })?;
    Ok(key)
}

/// Finds the principal whose key this is, among keys not revoked.
pub async fn authenticate(pool: &AnyPool, key: &str) -> Result<Principal, RegistryError> {
    let presented = key_hash(key);
    let rows = sqlx::query(
        "SELECT name, key_hash, role FROM operators WHERE revoked_at_ms = 0 ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let mut found: Option<(String, String)> = None;
    for row in &rows {
        let stored: String = row.try_get("key_hash")?;
        let name: String = row.try_get("name")?;
        let role: String = row.try_get("role")?;
        // No early exit: every row is compared whatever the outcome.
        let equal: bool = stored.as_bytes().ct_eq(presented.as_bytes()).into();
        if equal && found.is_none() {
            found = Some((name, role));
        }
    }
    let (name, role) =
        found.ok_or_else(|| RegistryError::Unauthenticated("unknown API key".into()))?;
    let role = Role::parse(&role)
        .ok_or_else(|| RegistryError::Corrupt(format!("principal {name:?} has role {role:?}")))?;
    Ok(Principal { name, role })
}

/// The principal whose key this is, if it holds `role`.
pub async fn authenticate_as(
    pool: &AnyPool,
    key: &str,
    role: Role,
) -> Result<String, RegistryError> {
    let p = authenticate(pool, key).await?;
    if p.role != role {
        return Err(RegistryError::PermissionDenied(format!(
            "this call needs {} key; {:?} holds {} key",
            article(role),
            p.name,
            article(p.role)
        )));
    }
    Ok(p.name)
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Operator => "an operator",
        Role::Host => "a host",
        Role::Feeder => "a feeder",
    }
}

/// Creates a principal and returns its key (the only time the key exists outside its
/// holder's hands). Audited with `actor` (who ran the command).
pub async fn add_principal(
    pool: &AnyPool,
    name: &str,
    role: Role,
    actor: &str,
    trace_id: &str,
) -> Result<ApiKey, RegistryError> {
    check_operator_name(name)?;
    let key = ApiKey::generate()?;
    let now = stratbox_engine::store::now_ms();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO operators (name, key_hash, created_at_ms, role, revoked_at_ms) VALUES ($1, $2, $3, $4, 0) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(key_hash(key.expose()))
    .bind(now)
    .bind(role.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(RegistryError::Invalid(format!(
            "the name {name:?} is taken (by an operator or a host, revoked or not)"
        )));
    }
    crate::store::audit(
        &mut tx,
        &crate::store::AuditRow {
            actor,
            action: &format!("{}_added", role.as_str()),
            subject: &format!("{}:{name}", role.as_str()),
            from_state: "",
            to_state: "active",
            detail: "",
            trace_id,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(key)
}

/// Creates an operator (see [`add_principal`]).
pub async fn add_operator(
    pool: &AnyPool,
    name: &str,
    actor: &str,
    trace_id: &str,
) -> Result<ApiKey, RegistryError> {
    add_principal(pool, name, Role::Operator, actor, trace_id).await
}

/// Revokes `name`'s key: from this commit on it authenticates nothing (operator calls read
/// the table every time; hosts' calls within [`HOST_KEY_CACHE`]). Audited.
pub async fn revoke(
    pool: &AnyPool,
    name: &str,
    role: Role,
    actor: &str,
    trace_id: &str,
) -> Result<(), RegistryError> {
    let now = stratbox_engine::store::now_ms();
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE operators SET revoked_at_ms = $1 WHERE name = $2 AND role = $3 AND revoked_at_ms = 0",
    )
    .bind(now)
    .bind(name)
    .bind(role.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(RegistryError::NotFound(format!(
            "no active {} named {name:?}",
            role.as_str()
        )));
    }
    crate::store::audit(
        &mut tx,
        &crate::store::AuditRow {
            actor,
            action: &format!("{}_revoked", role.as_str()),
            subject: &format!("{}:{name}", role.as_str()),
            from_state: "active",
            to_state: "revoked",
            detail: "",
            trace_id,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// How long a host key, once checked, is trusted without reading the table again: hosts
/// submit thousands of batches a second, and one query per batch would cost more than the
/// batch. Operators' calls are rare and always read the table, so revoking an operator is
/// effective at once; revoking a host within this long.
pub const HOST_KEY_CACHE: Duration = Duration::from_secs(2);

/// Authenticates calls for the engine and the registry: operator calls against the table
/// every time, host calls through a short cache (see [`HOST_KEY_CACHE`]).
pub struct Keys {
    pool: AnyPool,
    /// key hash -> (host name, when checked)
    hosts: Mutex<HashMap<String, (String, Instant)>>,
}

impl Keys {
    /// Over the engine's pool (the `operators` table).
    pub fn new(pool: AnyPool) -> Keys {
        Keys {
            pool,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The principal holding `key` in `role`.
    pub async fn check(&self, key: &str, role: Role) -> Result<String, RegistryError> {
        if role == Role::Host {
            let hash = key_hash(key);
            {
                let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((name, at)) = hosts.get(&hash)
                    && at.elapsed() < HOST_KEY_CACHE
                {
                    return Ok(name.clone());
                }
            }
            let name = authenticate_as(&self.pool, key, Role::Host).await?;
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: stale entries go when the map grows (hosts are few).
            if hosts.len() > 4096 {
                hosts.retain(|_, (_, at)| at.elapsed() < HOST_KEY_CACHE);
            }
            hosts.insert(hash, (name.clone(), Instant::now()));
            return Ok(name);
        }
        authenticate_as(&self.pool, key, role).await
    }
}

impl stratbox_engine::Access for Keys {
    fn authenticate<'a>(
        &'a self,
        metadata: &'a tonic::metadata::MetadataMap,
        role: Role,
    ) -> stratbox_engine::access::AuthFuture<'a> {
        Box::pin(async move {
            let key = bearer(metadata)?;
            Ok(self.check(key, role).await?)
        })
    }
}

/// A principal as listed (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key's name.
    pub name: String,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// 0 while the key is valid.
    pub revoked_at_ms: i64,
}

/// Principals of `role`, revoked ones included.
pub async fn list(pool: &AnyPool, role: Role) -> Result<Vec<Listed>, RegistryError> {
    let rows = sqlx::query(
        "SELECT name, created_at_ms, revoked_at_ms FROM operators WHERE role = $1 ORDER BY name",
    )
    .bind(role.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Listed {
                name: r.try_get("name")?,
                created_at_ms: r.try_get("created_at_ms")?,
                revoked_at_ms: r.try_get("revoked_at_ms")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_hex_and_hash_is_not_the_key() {
        let a = ApiKey::generate().expect("key");
        let b = ApiKey::generate().expect("key");
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert_ne!(key_hash(a.expose()), a.expose());
        assert_eq!(
            key_hash(a.expose()),
            key_hash(&format!(" {}\n", a.expose()))
        );
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn bearer_parsing_and_roles() {
        assert_eq!(Role::parse(Role::Host.as_str()), Some(Role::Host));
        assert_eq!(Role::parse(Role::Operator.as_str()), Some(Role::Operator));
        assert_eq!(Role::parse(Role::Feeder.as_str()), Some(Role::Feeder));
        assert_eq!(Role::parse("admin"), None);
        let mut m = tonic::metadata::MetadataMap::new();
        assert!(bearer(&m).is_err());
        m.insert("authorization", "Basic abc".parse().expect("ascii"));
        assert!(bearer(&m).is_err());
        m.insert("authorization", "Bearer abc".parse().expect("ascii"));
        assert_eq!(bearer(&m).expect("bearer"), "abc");
    }
}
