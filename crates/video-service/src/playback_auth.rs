//! Signed playback's cryptography, with the runtime's Web Crypto
//! (`crypto.subtle` through web-sys; no wasm RSA or ECDSA code): making a
//! signing key pair ([`generate`]), signing a minted token ([`sign`]) and
//! checking one ([`verify`]). The token's form, claims and time rules are
//! `media_core::video::playback_token`'s.
//!
//! Public keys are read where public reads already look: KV
//! `signing-key/{kid}` ([`key_record_key`], a `PublicKeyRecord`: the app,
//! the algorithm, the public JWK), written when a key is made and deleted
//! when it is revoked (the app's `AppHub` keeps the authoritative list,
//! `crate::app_hub::signing_keys`). Each isolate keeps the `CryptoKey`s it
//! imported for `SIGNING_KEY_CACHE_S` (default 60 s), so a segment request
//! costs one `crypto.subtle.verify` and no KV read: a revoked key stops
//! working within that time plus KV's propagation (up to 60 s elsewhere).
//! A check that must read KV counts against the client's public-read
//! budget, as a job read past the edge cache does.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use js_sys::{Array, Object, Reflect, Uint8Array, JSON};
use media_core::ids::AppId;
use media_core::video::playback_token::{self, Alg, Grant, TokenError};
use media_core::wire::playback::PublicKeyRecord;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, CryptoKeyPair, SubtleCrypto};
use worker::{Env, Request};
use worker_kit::clock::now;
use worker_kit::config::Vars;
use worker_kit::ratelimit::enforce_public;
use worker_kit::Failure;

use crate::video_job::KV_BINDING;

/// The setting naming how long an isolate keeps an imported public key.
pub const CACHE_VAR: &str = "SIGNING_KEY_CACHE_S";
/// Its default: a revoked key stops working within a minute (plus KV's propagation).
pub const DEFAULT_CACHE_S: u64 = 60;
/// The most keys one isolate keeps (all are dropped when full).
const MAX_CACHED_KEYS: usize = 1000;

/// The KV key of a public signing key.
pub fn key_record_key(kid: &str) -> String {
    format!("signing-key/{kid}")
}

/// A public key imported for `verify`, with whose it is.
struct Cached {
    key: CryptoKey,
    app: AppId,
    alg: Alg,
    until_ms: u64,
}

thread_local! {
    static KEYS: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

/// Drops this isolate's copy of `kid` (its revocation, made here).
pub fn forget_key(kid: &str) {
    KEYS.with(|k| k.borrow_mut().remove(kid));
}

fn js(what: &str) -> impl Fn(JsValue) -> Failure + '_ {
    move |e| Failure::internal(format!("web crypto {what}: {e:?}"))
}

fn subtle() -> Result<SubtleCrypto, Failure> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).map_err(js("crypto"))?;
    Ok(crypto.unchecked_into::<web_sys::Crypto>().subtle())
}

fn object(fields: &[(&str, JsValue)]) -> Result<Object, Failure> {
    let o = Object::new();
    for (name, value) in fields {
        Reflect::set(&o, &(*name).into(), value).map_err(js("algorithm"))?;
    }
    Ok(o)
}

/// The algorithm to import a key of `alg` with (and to generate one).
fn key_algorithm(alg: Alg, generate: bool) -> Result<Object, Failure> {
    match alg {
        Alg::Rs256 if generate => object(&[
            ("name", "RSASSA-PKCS1-v1_5".into()),
            ("modulusLength", 2048.into()),
            ("publicExponent", Uint8Array::from(&[1u8, 0, 1][..]).into()),
            ("hash", "SHA-256".into()),
        ]),
        Alg::Rs256 => object(&[("name", "RSASSA-PKCS1-v1_5".into()), ("hash", "SHA-256".into())]),
        Alg::Es256 => object(&[("name", "ECDSA".into()), ("namedCurve", "P-256".into())]),
    }
}

/// The algorithm to sign or verify with.
fn signature_algorithm(alg: Alg) -> Result<Object, Failure> {
    match alg {
        Alg::Rs256 => object(&[("name", "RSASSA-PKCS1-v1_5".into())]),
        Alg::Es256 => object(&[("name", "ECDSA".into()), ("hash", "SHA-256".into())]),
    }
}

fn usages(list: &[&str]) -> JsValue {
    list.iter().map(|u| JsValue::from_str(u)).collect::<Array>().into()
}

async fn wait(promise: Result<js_sys::Promise, JsValue>, what: &str) -> Result<JsValue, Failure> {
    JsFuture::from(promise.map_err(js(what))?).await.map_err(js(what))
}

fn to_json(v: &JsValue) -> Result<Value, Failure> {
    let text: String = JSON::stringify(v).map_err(js("JWK"))?.into();
    serde_json::from_str(&text).map_err(|e| Failure::internal(format!("JWK: {e}")))
}

fn from_json(v: &Value) -> Result<Object, Failure> {
    Ok(JSON::parse(&v.to_string()).map_err(js("JWK"))?.unchecked_into())
}

/// A new key pair: the private half as PKCS#8 PEM and as a JWK (with
/// `kid` and `alg`), the public half as a JWK (with `kid` and `alg`).
pub struct Generated {
    pub pem: String,
    pub private_jwk: Value,
    pub public_jwk: Value,
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

fn label(jwk: &mut Value, kid: &str, alg: Alg) {
    if let Value::Object(fields) = jwk {
        fields.insert("kid".into(), kid.into());
        fields.insert("alg".into(), alg.as_str().into());
        // Exported keys say which operations they allow; a JWK handed to
        // other libraries needs none of it.
        fields.remove("key_ops");
        fields.remove("ext");
    }
}

/// Makes a key pair of `alg` named `kid` (`crypto.subtle.generateKey`,
/// exported with `exportKey`).
pub async fn generate(alg: Alg, kid: &str) -> Result<Generated, Failure> {
    let subtle = subtle()?;
    let pair: CryptoKeyPair = wait(
        subtle.generate_key_with_object(&key_algorithm(alg, true)?, true, &usages(&["sign", "verify"])),
        "generateKey",
    )
    .await?
    .unchecked_into();
    let (private, public) = (pair.get_private_key(), pair.get_public_key());
    let der = wait(subtle.export_key("pkcs8", &private), "exportKey pkcs8").await?;
    let mut private_jwk = to_json(&wait(subtle.export_key("jwk", &private), "exportKey jwk").await?)?;
    let mut public_jwk = to_json(&wait(subtle.export_key("jwk", &public), "exportKey jwk").await?)?;
    label(&mut private_jwk, kid, alg);
    label(&mut public_jwk, kid, alg);
    Ok(Generated { pem: pem(&Uint8Array::new(&der).to_vec()), private_jwk, public_jwk })
}

/// Signs `input` with a private JWK of `alg` (the mint route's service key).
pub async fn sign(alg: Alg, private_jwk: &Value, input: &str) -> Result<Vec<u8>, Failure> {
    let subtle = subtle()?;
    let key: CryptoKey = wait(
        subtle.import_key_with_object(
            "jwk",
            &from_json(private_jwk)?,
            &key_algorithm(alg, false)?,
            false,
            &usages(&["sign"]),
        ),
        "importKey sign",
    )
    .await?
    .unchecked_into();
    let data = Uint8Array::from(input.as_bytes());
    let sig = wait(subtle.sign_with_object_and_js_u8_array(&signature_algorithm(alg)?, &key, &data), "sign").await?;
    Ok(Uint8Array::new(&sig).to_vec())
}

fn cache_s(env: &Env) -> Result<u64, Failure> {
    Ok(Vars(env).number(CACHE_VAR, DEFAULT_CACHE_S)?)
}

/// The public key `kid`, from this isolate's cache or KV (then imported
/// and kept); `None` when KV has none (never made, or revoked).
async fn public_key(
    env: &Env,
    kid: &str,
    req: &Request,
    route: &str,
) -> Result<Option<(CryptoKey, AppId, Alg)>, Failure> {
    let t = now().millis();
    let hit =
        KEYS.with(|k| k.borrow().get(kid).filter(|c| c.until_ms > t).map(|c| (c.key.clone(), c.app.clone(), c.alg)));
    if hit.is_some() {
        return Ok(hit);
    }
    // Past the isolate's cache a check costs a KV read: counted, as public reads are.
    enforce_public(env, req, route).await?;
    let kv = env.kv(KV_BINDING)?;
    let record: Option<PublicKeyRecord> = kv
        .get(&key_record_key(kid))
        .json()
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("reading signing key {kid}: {e}") })?;
    let Some(record) = record else { return Ok(None) };
    let key: CryptoKey = wait(
        subtle()?.import_key_with_object(
            "jwk",
            &from_json(&record.jwk)?,
            &key_algorithm(record.alg, false)?,
            false,
            &usages(&["verify"]),
        ),
        "importKey verify",
    )
    .await?
    .unchecked_into();
    let ttl_ms = cache_s(env)?.saturating_mul(1000);
    if ttl_ms > 0 {
        KEYS.with(|k| {
            let mut keys = k.borrow_mut();
            if keys.len() >= MAX_CACHED_KEYS {
                keys.clear();
            }
            let cached = Cached { key: key.clone(), app: record.app_id.clone(), alg: record.alg, until_ms: t + ttl_ms };
            keys.insert(kid.to_owned(), cached);
        });
    }
    Ok(Some((key, record.app_id, record.alg)))
}

/// Checks a playback token: its form, its key (KV `signing-key/{kid}`,
/// cached per isolate), the key's algorithm, its times, and its signature
/// with `crypto.subtle.verify`. The answer is what it opens: a video of
/// the app its key belongs to. 401 `invalid_token` for a token that proves
/// nothing, 403 `forbidden` for one not valid yet; a caller that names a
/// video too checks it with [`Grant::check_video`]. A check whose key is
/// not in the isolate's cache (a KV read) first counts against `req`'s
/// client's public-read budget (`PUBLIC_RATE_LIMITER`, as `route`), so
/// tokens with made-up key ids cost an address its budget, not KV reads
/// without end.
pub async fn verify(env: &Env, req: &Request, token: &str, route: &str) -> Result<Grant, Failure> {
    let refuse = |e: TokenError| Failure::Client(e.into());
    let t = playback_token::parse(token).map_err(refuse)?;
    let Some((key, app, alg)) = public_key(env, &t.kid, req, route).await? else {
        return Err(refuse(TokenError::UnknownKey(t.kid)));
    };
    t.check(alg, now()).map_err(refuse)?;
    let signature = Uint8Array::from(&t.signature[..]);
    let data = Uint8Array::from(t.signing_input.as_bytes());
    let valid = wait(
        subtle()?.verify_with_object_and_js_u8_array_and_js_u8_array(
            &signature_algorithm(alg)?,
            &key,
            &signature,
            &data,
        ),
        "verify",
    )
    .await?;
    if valid.as_bool() != Some(true) {
        return Err(refuse(TokenError::BadSignature));
    }
    Ok(Grant::of(app, &t.claims))
}
