//! Reading a Worker's configuration (vars and secrets) with errors that name
//! the variable and say how to set it. The reading goes through
//! [`VarSource`], so the settings built from it ([`crate::settings`], the
//! services' own) are tested natively with a map in place of the `Env`.

use std::collections::HashMap;

use media_core::http::auth::ApiKeys;
use worker::Env;

/// A missing or unusable setting: an operator's mistake, reported as such.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub name: String,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.problem)
    }
}

/// Where vars and secrets come from: the Worker's `Env`, or a map in tests.
pub trait VarSource {
    /// The value of `name` as set, if it is.
    fn raw(&self, name: &str) -> Option<String>;
}

/// Secrets (`wrangler secret put`, `.dev.vars`), then vars (`[vars]` in the wrangler file).
impl VarSource for Env {
    fn raw(&self, name: &str) -> Option<String> {
        self.secret(name).map(|s| s.to_string()).or_else(|_| self.var(name).map(|v| v.to_string())).ok()
    }
}

impl VarSource for HashMap<&str, &str> {
    fn raw(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| (*v).to_owned())
    }
}

/// Reads vars and secrets, with the defaults and errors every setting shares.
#[derive(Clone, Copy)]
pub struct Vars<'a>(pub &'a dyn VarSource);

impl Vars<'_> {
    /// A var or secret, if set and non-empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.raw(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError {
            name: name.to_owned(),
            problem:
                "is not set: add it to [vars] in the wrangler file, or with `wrangler secret put` if it is a secret"
                    .into(),
        })
    }

    pub fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// A number, or `default` when unset.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ConfigError {
                name: name.to_owned(),
                problem: format!("is {v:?}, which is not a number"),
            }),
        }
    }
}

/// `IV_API_KEY` (secret), parsed: a misconfigured entry is a [`ConfigError`]
/// naming the entry by position (never its key). Unset, it gives no keys:
/// the public routes work and the API-key routes report the missing secret.
pub fn api_keys(vars: &Vars<'_>) -> Result<ApiKeys, ConfigError> {
    ApiKeys::parse(&vars.get("IV_API_KEY").unwrap_or_default()).map_err(|e| ConfigError {
        name: "IV_API_KEY".into(),
        problem: format!(
            "cannot be used: {e}. It is a comma-separated list of keys, each alone (any app) or followed by ':' and its app ids separated by '|', e.g. key1:app-a|app-b,key2:app-c"
        ),
    })
}
