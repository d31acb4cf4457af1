//! Operators and their API keys.
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

use sqlx::{AnyPool, Row};
use subtle::ConstantTimeEq;

use crate::error::RegistryError;

/// An authenticated operator: the name written to `audit_log` as the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
}

/// A freshly generated key. `Debug` does not print it.
pub struct ApiKey(String);

impl ApiKey {
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
            "this call needs `authorization: Bearer <operator api key>`".into(),
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

/// Finds the operator whose key this is.
pub async fn authenticate(pool: &AnyPool, key: &str) -> Result<Operator, RegistryError> {
    let presented = key_hash(key);
    let rows = sqlx::query("SELECT name, key_hash FROM operators ORDER BY name")
        .fetch_all(pool)
        .await?;
    let mut found: Option<String> = None;
    for row in &rows {
        let stored: String = row.try_get("key_hash")?;
        let name: String = row.try_get("name")?;
        // No early exit: every row is compared whatever the outcome.
        let equal: bool = stored.as_bytes().ct_eq(presented.as_bytes()).into();
        if equal && found.is_none() {
            found = Some(name);
        }
    }
    found
        .map(|name| Operator { name })
        .ok_or_else(|| RegistryError::Unauthenticated("unknown API key".into()))
}

/// Creates an operator and returns its key (the only time the key exists outside the
/// operator's hands). Audited with `actor` (who ran the command).
pub async fn add_operator(
    pool: &AnyPool,
    name: &str,
    actor: &str,
    trace_id: &str,
) -> Result<ApiKey, RegistryError> {
    check_operator_name(name)?;
    let key = ApiKey::generate()?;
    let now = stratbox_engine::store::now_ms();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO operators (name, key_hash, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(key_hash(key.expose()))
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(RegistryError::Invalid(format!(
            "operator {name:?} exists already"
        )));
    }
    crate::store::audit(
        &mut tx,
        &crate::store::AuditRow {
            actor,
            action: "operator_added",
            subject: &format!("operator:{name}"),
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

/// The engine's operator actions (kill switch, restoring a halted strategy) authenticated by
/// the same keys as the registry's: `authorization: Bearer <key>` names the operator whose
/// key it is. Hand it to `stratbox_engine::server::serve_grpc_with_operators`.
#[derive(Clone)]
pub struct Operators {
    pool: AnyPool,
}

impl Operators {
    /// Over the engine's pool (the `operators` table).
    pub fn new(pool: AnyPool) -> Operators {
        Operators { pool }
    }
}

impl stratbox_engine::OperatorAuth for Operators {
    fn authenticate<'a>(
        &'a self,
        metadata: &'a tonic::metadata::MetadataMap,
    ) -> stratbox_engine::operators::AuthFuture<'a> {
        Box::pin(async move {
            let key = bearer(metadata)?;
            Ok(authenticate(&self.pool, key).await?.name)
        })
    }
}

/// Operator names and creation times, for listing (never hashes).
pub async fn list_operators(pool: &AnyPool) -> Result<Vec<(String, i64)>, RegistryError> {
    let rows = sqlx::query("SELECT name, created_at_ms FROM operators ORDER BY name")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("created_at_ms")?)))
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
    fn bearer_parsing() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert!(bearer(&m).is_err());
        m.insert("authorization", "Basic abc".parse().expect("ascii"));
        assert!(bearer(&m).is_err());
        m.insert("authorization", "Bearer abc".parse().expect("ascii"));
        assert_eq!(bearer(&m).expect("bearer"), "abc");
    }
}
