//! An app's playback signing keys, apart from the hub's Durable Object:
//! the authoritative list (KV `signing-key/{kid}` mirrors each public key
//! for verification, `crate::playback_auth`). The hub keeps only public
//! keys for the app's own keys (their private halves were shown once, by
//! `POST /signing-keys`); its service key, which `POST /playback-tokens`
//! signs with, is the one kept whole, and is not listed. A revoked key's
//! row is deleted. Functions of the table ([`KeyTable`]: SQL in the
//! object, memory in tests) and the time.

#[cfg(test)]
use std::cell::RefCell;

use media_core::video::playback_token::{is_kid, Alg};
use media_core::wire::playback::{SigningKeyInfo, SigningKeyList, SigningKeyRevoked};
use media_core::{ApiError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

use crate::protocol::app_hub::{KeyOp, ServiceKey};

/// The most keys an app may have at once (its service key aside).
pub const MAX_SIGNING_KEYS: usize = 50;

/// The signing keys table.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    public_jwk TEXT NOT NULL,
    private_jwk TEXT,
    service INTEGER NOT NULL DEFAULT 0
);
";

/// One stored key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRow {
    pub kid: String,
    pub alg: Alg,
    pub created_at: Timestamp,
    pub public_jwk: Value,
    /// The service key's private JWK; `None` for the app's own keys.
    pub private_jwk: Option<Value>,
}

/// Where the keys are kept.
pub trait KeyTable {
    /// The app's own keys (not the service key), oldest first.
    fn keys(&self) -> worker::Result<Vec<KeyRow>>;
    fn service_key(&self) -> worker::Result<Option<KeyRow>>;
    /// Adds a key; `service` marks the service key.
    fn insert(&self, row: &KeyRow, service: bool) -> worker::Result<()>;
    /// Removes an own key; whether there was one.
    fn remove(&self, kid: &str) -> worker::Result<bool>;
}

fn not_found(kid: &str) -> ApiError {
    ApiError::not_found(format!("no signing key {kid:?} in this app (it may have been revoked already)"))
}

fn info(r: &KeyRow) -> SigningKeyInfo {
    SigningKeyInfo { id: r.kid.clone(), alg: r.alg, created_at: r.created_at }
}

/// Runs a key command at `now`: the status and JSON body to answer, or a
/// refusal (404, 409).
pub fn run(table: &impl KeyTable, op: KeyOp, now: Timestamp) -> worker::Result<Result<(u16, Value), ApiError>> {
    Ok(match op {
        KeyOp::Add { kid, alg, public_jwk } => {
            if !is_kid(&kid) {
                return Ok(Err(ApiError::invalid_field(format!("{kid:?} is not a key id"))));
            }
            if table.keys()?.len() >= MAX_SIGNING_KEYS {
                return Ok(Err(ApiError::conflict(format!(
                    "this app has {MAX_SIGNING_KEYS} signing keys, the most it may; revoke one first (DELETE /signing-keys/{{id}})"
                ))));
            }
            let row = KeyRow { kid, alg, created_at: now, public_jwk, private_jwk: None };
            table.insert(&row, false)?;
            Ok((201, json(&info(&row))))
        }
        KeyOp::List => Ok((200, json(&SigningKeyList { keys: table.keys()?.iter().map(info).collect() }))),
        // The service key is not the app's to revoke: it would cut every
        // minted token while the hub went on minting with it.
        KeyOp::Revoke { kid } if table.service_key()?.is_some_and(|k| k.kid == kid) => {
            Err(ApiError::conflict(format!(
            "{kid:?} is the service key POST /playback-tokens signs with, not a key of yours: it cannot be revoked \
             (its tokens live at most as long as the ttl_s they were minted with)"
        )))
        }
        KeyOp::Revoke { kid } => match table.remove(&kid)? {
            true => Ok((200, json(&SigningKeyRevoked { id: kid, revoked: true }))),
            false => Err(not_found(&kid)),
        },
        KeyOp::ServiceKey => Ok((200, json(&table.service_key()?.map(service)))),
        KeyOp::PutServiceKey { key } => {
            // Two first mints at once: the first stored wins, both sign with it.
            if let Some(kept) = table.service_key()? {
                return Ok(Ok((200, json(&service(kept)))));
            }
            let row = KeyRow {
                kid: key.kid.clone(),
                alg: key.alg,
                created_at: now,
                public_jwk: key.public_jwk.clone(),
                private_jwk: Some(key.private_jwk.clone()),
            };
            table.insert(&row, true)?;
            Ok((200, json(&key)))
        }
    })
}

fn service(r: KeyRow) -> ServiceKey {
    ServiceKey { kid: r.kid, alg: r.alg, public_jwk: r.public_jwk, private_jwk: r.private_jwk.unwrap_or(Value::Null) }
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The table in the hub's SQLite storage.
pub struct SqlKeys(pub SqlStorage);

#[derive(Deserialize)]
struct Row {
    kid: String,
    alg: String,
    created_at: f64,
    public_jwk: String,
    private_jwk: Option<String>,
}

impl Row {
    fn into_key(self) -> worker::Result<KeyRow> {
        let bad = |what: &str| worker::Error::RustError(format!("stored signing key {}: {what}", self.kid));
        let alg = Alg::parse(&self.alg).ok_or_else(|| bad("alg"))?;
        let public_jwk = serde_json::from_str(&self.public_jwk).map_err(|_| bad("public jwk"))?;
        let private_jwk = match &self.private_jwk {
            Some(p) => Some(serde_json::from_str(p).map_err(|_| bad("private jwk"))?),
            None => None,
        };
        Ok(KeyRow {
            kid: self.kid,
            alg,
            created_at: Timestamp::from_millis(self.created_at as u64),
            public_jwk,
            private_jwk,
        })
    }
}

impl SqlKeys {
    fn select(&self, filter: &str) -> worker::Result<Vec<KeyRow>> {
        let rows: Vec<Row> = self
            .0
            .exec(
                &format!("SELECT kid, alg, created_at, public_jwk, private_jwk FROM signing_keys WHERE {filter} ORDER BY created_at, rowid"),
                None,
            )?
            .to_array()?;
        rows.into_iter().map(Row::into_key).collect()
    }
}

impl KeyTable for SqlKeys {
    fn keys(&self) -> worker::Result<Vec<KeyRow>> {
        self.select("service = 0")
    }

    fn service_key(&self) -> worker::Result<Option<KeyRow>> {
        Ok(self.select("service = 1")?.into_iter().next())
    }

    fn insert(&self, row: &KeyRow, service: bool) -> worker::Result<()> {
        let private: SqlStorageValue = match &row.private_jwk {
            Some(p) => p.to_string().into(),
            None => SqlStorageValue::Null,
        };
        self.0.exec(
            "INSERT INTO signing_keys (kid, alg, created_at, public_jwk, private_jwk, service) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                row.kid.as_str().into(),
                row.alg.as_str().into(),
                SqlStorageValue::Integer(row.created_at.millis() as i64),
                row.public_jwk.to_string().into(),
                private,
                SqlStorageValue::Integer(i64::from(service)),
            ],
        )?;
        Ok(())
    }

    fn remove(&self, kid: &str) -> worker::Result<bool> {
        let found = !self.select_one(kid)?.is_empty();
        self.0.exec("DELETE FROM signing_keys WHERE kid = ? AND service = 0", vec![kid.into()])?;
        Ok(found)
    }
}

impl SqlKeys {
    fn select_one(&self, kid: &str) -> worker::Result<Vec<Row>> {
        self.0
            .exec(
                "SELECT kid, alg, created_at, public_jwk, private_jwk FROM signing_keys WHERE kid = ? AND service = 0",
                vec![kid.into()],
            )?
            .to_array()
    }
}

/// The table in memory, for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryKeys(RefCell<Vec<(KeyRow, bool)>>);

#[cfg(test)]
impl KeyTable for MemoryKeys {
    fn keys(&self) -> worker::Result<Vec<KeyRow>> {
        Ok(self.0.borrow().iter().filter(|(_, s)| !s).map(|(r, _)| r.clone()).collect())
    }

    fn service_key(&self) -> worker::Result<Option<KeyRow>> {
        Ok(self.0.borrow().iter().find(|(_, s)| *s).map(|(r, _)| r.clone()))
    }

    fn insert(&self, row: &KeyRow, service: bool) -> worker::Result<()> {
        self.0.borrow_mut().push((row.clone(), service));
        Ok(())
    }

    fn remove(&self, kid: &str) -> worker::Result<bool> {
        let mut all = self.0.borrow_mut();
        let before = all.len();
        all.retain(|(r, s)| *s || r.kid != kid);
        Ok(all.len() != before)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn kid(n: u8) -> String {
        format!("{n:02x}").repeat(16)
    }

    fn add(t: &MemoryKeys, n: u8) -> Result<(u16, Value), ApiError> {
        run(t, KeyOp::Add { kid: kid(n), alg: Alg::Es256, public_jwk: json!({"kty": "EC"}) }, T0).unwrap()
    }

    #[test]
    fn keys_are_added_listed_and_revoked() {
        let t = MemoryKeys::default();
        let (status, body) = add(&t, 1).unwrap();
        assert_eq!((status, &body["id"], &body["alg"]), (201, &json!(kid(1)), &json!("ES256")));
        add(&t, 2).unwrap();
        let (_, list) = run(&t, KeyOp::List, T0).unwrap().unwrap();
        assert_eq!(list["keys"].as_array().unwrap().len(), 2);
        assert!(list.to_string().find("kty").is_none(), "no key material is listed: {list}");
        let (status, body) = run(&t, KeyOp::Revoke { kid: kid(1) }, T0).unwrap().unwrap();
        assert_eq!((status, body), (200, json!({"id": kid(1), "revoked": true})));
        let e = run(&t, KeyOp::Revoke { kid: kid(1) }, T0).unwrap().unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(run(&t, KeyOp::List, T0).unwrap().unwrap().1["keys"][0]["id"], json!(kid(2)));
        assert_eq!(
            run(&t, KeyOp::Add { kid: "x".into(), alg: Alg::Rs256, public_jwk: json!({}) }, T0)
                .unwrap()
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn an_app_has_at_most_so_many_keys() {
        let t = MemoryKeys::default();
        for n in 0..MAX_SIGNING_KEYS as u8 {
            add(&t, n).unwrap();
        }
        assert_eq!(add(&t, 200).unwrap_err().status(), 409);
    }

    #[test]
    fn the_service_key_is_made_once_and_never_listed_nor_revoked() {
        let t = MemoryKeys::default();
        assert_eq!(run(&t, KeyOp::ServiceKey, T0).unwrap().unwrap().1, Value::Null);
        let key = |n: u8| ServiceKey {
            kid: kid(n),
            alg: Alg::Es256,
            public_jwk: json!({"kty": "EC", "x": n}),
            private_jwk: json!({"kty": "EC", "d": n}),
        };
        let (_, first) = run(&t, KeyOp::PutServiceKey { key: key(7) }, T0).unwrap().unwrap();
        assert_eq!(first["kid"], json!(kid(7)));
        // A second first mint signs with the key already kept.
        let (_, second) = run(&t, KeyOp::PutServiceKey { key: key(8) }, T0).unwrap().unwrap();
        assert_eq!(second, first);
        assert_eq!(run(&t, KeyOp::ServiceKey, T0).unwrap().unwrap().1, first);
        assert_eq!(run(&t, KeyOp::List, T0).unwrap().unwrap().1, json!({"keys": []}));
        // Revoking it is refused (409), and it stays.
        assert_eq!(run(&t, KeyOp::Revoke { kid: kid(7) }, T0).unwrap().unwrap_err().status(), 409);
        assert_eq!(run(&t, KeyOp::ServiceKey, T0).unwrap().unwrap().1, first);
    }
}
