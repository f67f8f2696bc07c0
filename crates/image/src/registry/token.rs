//! Authentication as the registry asks for it in its 401 answer: a bearer
//! token from the realm it names (anonymous, or with the user's
//! credentials as basic auth), cached per registry and scope; or plain
//! basic auth on every request.

use std::time::{Duration, Instant};

use base64::Engine as _;

use super::challenge::{parse_challenges, Challenge};
use super::{
    lock, query_escape, ureq_error_kind, AuthSource, ErrorKind, RegistryClient, RegistryError,
    Target,
};
use crate::auth::{AuthError, Credentials, DockerConfig};

pub(super) struct Token {
    value: String,
    expires: Instant,
}

impl RegistryClient {
    pub(super) fn credentials(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        match &self.inner.options.auth {
            AuthSource::Anonymous => Ok(None),
            AuthSource::Static(c) => Ok(Some(c.clone())),
            AuthSource::DockerConfig => {
                if let Some(c) = lock(&self.inner.credentials).get(registry) {
                    return Ok(c.clone());
                }
                let found = DockerConfig::load_default()?.lookup(registry)?;
                lock(&self.inner.credentials).insert(registry.to_string(), found.clone());
                Ok(found)
            }
        }
    }

    pub(super) fn auth_header(&self, target: &Target) -> Result<Option<String>, RegistryError> {
        let key = (target.registry.clone(), target.scope.clone());
        if let Some(t) = lock(&self.inner.tokens).get(&key) {
            if t.expires > Instant::now() {
                return Ok(Some(format!("Bearer {}", t.value)));
            }
        }
        if lock(&self.inner.basic)
            .get(&target.registry)
            .copied()
            .unwrap_or(false)
        {
            let creds = self
                .credentials(&target.registry)
                .map_err(|e| target.error(e))?;
            return Ok(creds.map(|c| basic_header(&c)));
        }
        Ok(None)
    }

    /// Answer a 401: get a bearer token for the target's scope, or switch
    /// the registry to basic auth. Fails when we have nothing to offer.
    pub(super) fn authenticate(
        &self,
        target: &Target,
        resp: &ureq::Response,
    ) -> Result<(), RegistryError> {
        let challenges: Vec<Challenge> = resp
            .all("www-authenticate")
            .iter()
            .flat_map(|h| parse_challenges(h))
            .collect();
        let creds = self
            .credentials(&target.registry)
            .map_err(|e| target.error(e))?;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(target, bearer, creds.as_ref(), None)?;
            let key = (target.registry.clone(), target.scope.clone());
            lock(&self.inner.tokens).insert(key, token);
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") && creds.is_some() {
            lock(&self.inner.basic).insert(target.registry.clone(), true);
            return Ok(());
        }
        Err(target.error(ErrorKind::Http {
            status: 401,
            reason: "Unauthorized".to_string(),
            detail: format!(
                ": authentication required; log in with `berth login {}`",
                target.registry
            ),
        }))
    }

    /// `GET realm?service=..&scope=..` (basic auth when we have credentials)
    /// -> `{"token": ..}` or `{"access_token": ..}`.
    pub(super) fn fetch_token(
        &self,
        target: &Target,
        challenge: &Challenge,
        creds: Option<&Credentials>,
        account: Option<&str>,
    ) -> Result<Token, RegistryError> {
        let realm = challenge.param("realm").ok_or_else(|| {
            target.error(ErrorKind::Protocol("bearer challenge without realm".into()))
        })?;
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(target.error(ErrorKind::Protocol(format!(
                "token realm {realm:?} is not a URL"
            ))));
        }
        let mut query: Vec<String> = Vec::new();
        if let Some(s) = challenge.param("service") {
            query.push(format!("service={}", query_escape(s)));
        }
        let scope = if target.scope.is_empty() {
            challenge.param("scope").unwrap_or("")
        } else {
            &target.scope
        };
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(format!("scope={}", query_escape(s)));
        }
        if let Some(a) = account {
            query.push(format!("account={}", query_escape(a)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.to_string()
        } else {
            format!("{realm}{sep}{}", query.join("&"))
        };
        let token_target = Target {
            context: format!("{}: get a token from {realm}", target.context),
            ..target.clone()
        };
        let mut req = self.inner.agent.get(&url);
        if let Some(c) = creds {
            req = req.set("Authorization", &basic_header(c));
        }
        let resp = req
            .call()
            .map_err(|e| token_target.error(ureq_error_kind(e)))?;
        let text = resp.into_string().map_err(|e| {
            token_target.error(ErrorKind::Protocol(format!("read token response: {e}")))
        })?;
        let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            token_target.error(ErrorKind::Protocol(format!(
                "token response is not JSON: {e}"
            )))
        })?;
        let value = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                token_target.error(ErrorKind::Protocol("token response has no token".into()))
            })?;
        let lifetime = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .unwrap_or(60)
            .max(10);
        Ok(Token {
            value: value.to_string(),
            expires: Instant::now() + Duration::from_secs(lifetime - lifetime / 10),
        })
    }
}

pub(super) fn basic_header(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}
