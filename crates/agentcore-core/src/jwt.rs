//! Verifying a caller's JWT in the function (`CALLER_IDENTITY=jwt`): for Function URLs,
//! which have no JWT or Cognito authorizer, and for any option that wants it.
//!
//! The issuer's keys (JWKS) are fetched at cold start, from `JWT_JWKS_URL` or from the
//! `jwks_uri` of the issuer's OpenID discovery document, and cached; a token signed with a
//! key id the cache does not know triggers one refresh, at most once a minute, so that key
//! rotation works and a flood of made-up key ids cannot turn into a flood of fetches.
//!
//! Checks: the algorithm is RS256 or ES256 and matches the key (the token's `alg` never
//! chooses the verification: no `none`, no HS256 signed with the public key); the signature;
//! `iss`; `exp` and `nbf` with `JWT_LEEWAY_SECONDS`; `sub` present; `aud`, or Cognito's
//! `client_id` for access tokens, among `JWT_AUDIENCE`; `token_use` when `JWT_TOKEN_USE` is
//! set; every scope of `JWT_REQUIRED_SCOPES` in `scope`. Each failure has a stable code for
//! its class ([`ApiError`]); which claim value was expected is never said.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::{header, HeaderMap, HeaderName};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

use crate::error::ApiError;
use crate::identity::{Caller, IdentitySource};

/// Shortest time between two JWKS fetches triggered by unknown key ids.
pub const MIN_JWKS_REFRESH: Duration = Duration::from_secs(60);

/// The JWT settings (`JWT_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSettings {
    /// `JWT_ISSUER`: the `iss` every token must carry.
    pub issuer: String,
    /// `JWT_AUDIENCE`: accepted `aud` values (or Cognito app client ids).
    pub audiences: Vec<String>,
    /// `JWT_TOKEN_USE`: `id` or `access` (Cognito's `token_use`), or either when unset.
    pub token_use: Option<String>,
    /// `JWT_REQUIRED_SCOPES`: scopes every token must grant.
    pub required_scopes: Vec<String>,
    /// `JWT_HEADER`: where the token travels (`authorization` by default). A list is read
    /// in order and the first header present is used (`x-auth-token,authorization`: behind
    /// CloudFront's origin access control, which signs `Authorization`, and without it).
    pub headers: Vec<HeaderName>,
    /// `JWT_JWKS_URL`: the key set; from the issuer's discovery document when unset.
    pub jwks_url: Option<String>,
    /// `JWT_LEEWAY_SECONDS`: clock skew allowed on `exp` and `nbf`.
    pub leeway_seconds: u64,
}

/// A verifier built once per process.
#[derive(Debug)]
pub struct JwtVerifier {
    settings: JwtSettings,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    /// When the keys were last fetched (a refresh in progress holds the lock).
    refreshed: Mutex<Option<Instant>>,
}

impl JwtVerifier {
    /// Builds the verifier and fetches the keys. A failed fetch is logged, not fatal: the
    /// first token retries it (an identity provider's hiccup at cold start must not take
    /// the function down).
    pub async fn new(settings: JwtSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let verifier = Self {
            settings,
            http,
            keys: RwLock::new(HashMap::new()),
            refreshed: Mutex::new(None),
        };
        verifier.refresh(true).await;
        verifier
    }

    /// The settings in use.
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Verifies the token the request carries and returns its caller.
    pub async fn verify(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = self.token(headers)?;
        let header = decode_header(token).map_err(|_| ApiError::InvalidToken)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(ApiError::InvalidToken);
        }
        let kid = header.kid.ok_or(ApiError::InvalidToken)?;
        let (alg, key) = match self.key(&kid).await {
            Some(found) => found,
            None => {
                self.refresh(false).await;
                self.key(&kid).await.ok_or(ApiError::InvalidToken)?
            }
        };
        // The key's algorithm, not the token's, decides how the signature is checked.
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = self.settings.leeway_seconds;
        let claims = decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => ApiError::TokenExpired,
                    ErrorKind::ImmatureSignature => ApiError::TokenNotYetValid,
                    _ => ApiError::InvalidToken,
                }
            })?
            .claims;
        self.check_audience(&claims)?;
        self.check_scopes(&claims)?;
        Caller::from_claims(IdentitySource::Jwt, claims)
    }

    fn token<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, ApiError> {
        let names = &self.settings.headers;
        let missing = || {
            ApiError::MissingToken(
                names
                    .iter()
                    .map(HeaderName::as_str)
                    .collect::<Vec<_>>()
                    .join(" or "),
            )
        };
        let (name, value) = names
            .iter()
            .find_map(|name| Some((name, headers.get(name)?)))
            .ok_or_else(missing)?;
        let value = value.to_str().map_err(|_| missing())?.trim();
        let bearer = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let token = match bearer {
            Some(token) => token,
            // Only `Authorization` needs the scheme; another header may carry the bare token.
            None if name == header::AUTHORIZATION => return Err(missing()),
            None => value,
        };
        if token.is_empty() {
            return Err(missing());
        }
        Ok(token)
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), ApiError> {
        let accepted = |v: &Value| {
            v.as_str()
                .is_some_and(|s| self.settings.audiences.iter().any(|a| a == s))
        };
        let aud_ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(accepted),
            Some(v) => accepted(v),
            None => false,
        };
        let client_ok = claims.get("client_id").is_some_and(accepted);
        if !(aud_ok || client_ok) {
            return Err(ApiError::TokenNotAccepted);
        }
        if let Some(wanted) = &self.settings.token_use {
            if claims.get("token_use").and_then(Value::as_str) != Some(wanted.as_str()) {
                return Err(ApiError::TokenNotAccepted);
            }
        }
        Ok(())
    }

    fn check_scopes(&self, claims: &Map<String, Value>) -> Result<(), ApiError> {
        if self.settings.required_scopes.is_empty() {
            return Ok(());
        }
        let granted: Vec<&str> = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if self
            .settings
            .required_scopes
            .iter()
            .all(|s| granted.contains(&s.as_str()))
        {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope)
        }
    }

    async fn key(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        self.keys.read().await.get(kid).cloned()
    }

    /// Fetches the key set again, unless `force` is off and the last fetch is recent.
    async fn refresh(&self, force: bool) {
        let mut refreshed = self.refreshed.lock().await;
        if !force && refreshed.is_some_and(|at| at.elapsed() < MIN_JWKS_REFRESH) {
            return;
        }
        *refreshed = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS fetched");
                *self.keys.write().await = keys;
            }
            Err(reason) => {
                tracing::warn!(%reason, "the JWKS could not be fetched; tokens cannot be verified until it is")
            }
        }
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
        let url = match &self.settings.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let doc: Value = self.get_json(&discovery).await?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?
                    .to_owned()
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(&url).await?)
            .map_err(|e| format!("{url} is not a JWKS: {e}"))?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = key_algorithm(jwk)?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, (alg, key)))
            })
            .collect())
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

/// The algorithm a key verifies: RS256 for RSA keys, ES256 for P-256 keys; anything else
/// (HMAC secrets, other curves, other algorithms) is not used.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(by_type),
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Some(by_type),
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Some(by_type),
        Some(_) => None,
    }
}
