//! A local OpenID Connect issuer, so that end-user authentication runs with no AWS account:
//! the identity provider a deployment would have (a Cognito user pool, any OIDC provider),
//! served by `agentcore-local` under [`ISSUER_PATH`].
//!
//! - `GET /issuer/.well-known/openid-configuration`: the discovery document (`issuer`,
//!   `jwks_uri`).
//! - `GET /issuer/.well-known/jwks.json`: the public key (ES256, key id [`KEY_ID`]).
//! - `GET /issuer/token?user=NAME`: an ID token for `NAME`, valid for an hour, with
//!   audience [`AUDIENCE`] (a local stand-in for a sign-in page).
//!
//! The signing key is fixed and published here, like the default credentials: it signs
//! tokens for local use only, and the functions trust it only when pointed at this issuer.
//! [`OTHER_ISSUER_KEY_PEM`] is a second key that no issuer publishes, for tests of tokens
//! from elsewhere.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

/// Where the issuer lives on `agentcore-local`'s address.
pub const ISSUER_PATH: &str = "/issuer";
/// The audience (app client id) of the tokens it mints.
pub const AUDIENCE: &str = "agentcore-lambda-local";
/// The key id of its signing key.
pub const KEY_ID: &str = "agentcore-local-1";
/// How long a minted token is valid.
pub const TOKEN_LIFETIME_SECONDS: u64 = 3600;

/// The issuer's ES256 signing key (P-256, PKCS#8). Local use only.
pub const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiEyYzTT31rlArpaG
Neyrusu4sxdXSMw6Mhfv3n6UIQmhRANCAARuXN9DRdRekk08X6enJFXA3ZGdnVVw
t2eCbYVi4k9MSvUNeyxr+34bbXNtT+icHMWam302RIkXsUSIBdOJMEdK
-----END PRIVATE KEY-----
";
/// The public point of [`KEY_PEM`], as the JWK's `x` and `y`.
const KEY_X: &str = "blzfQ0XUXpJNPF-npyRVwN2RnZ1VcLdngm2FYuJPTEo";
const KEY_Y: &str = "9Q17LGv7fhttc21P6JwcxZqbfTZEiRexRIgF04kwR0o";

/// A second P-256 key that no issuer publishes (tests of tokens from another issuer).
pub const OTHER_ISSUER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgB6nKA6TQiLX/Z8wC
q1Ioucnkd2E+dc+sqHOofii+b62hRANCAARCSmfE1rccFayrlJp5avw6B13Og+T4
eMPFtcmmR7xJQ3X5PQ2s9P+w8v4w2a3/Z5kgJNHfvTzMQU7NJ+phkx8w
-----END PRIVATE KEY-----
";

/// The issuer URL for an `agentcore-local` at `base_url` (`http://127.0.0.1:8787`).
pub fn issuer_url(base_url: &str) -> String {
    format!("{}{ISSUER_PATH}", base_url.trim_end_matches('/'))
}

/// The discovery document.
pub fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
    })
}

/// The key set: the public half of [`KEY_PEM`].
pub fn jwks() -> Value {
    json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
        "kid": KEY_ID, "x": KEY_X, "y": KEY_Y,
    }]})
}

/// Seconds since the UNIX epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The claims of a fresh ID token for `user` from `issuer`: `sub` (`user-<name>`), `email`,
/// `cognito:groups`, `custom:tenant`, `aud`, `token_use: id`, `iat`, `exp`.
pub fn claims_for(issuer: &str, user: &str) -> Map<String, Value> {
    let now = now();
    let doc = json!({
        "iss": issuer,
        "sub": format!("user-{user}"),
        "aud": AUDIENCE,
        "token_use": "id",
        "email": format!("{user}@example.com"),
        "cognito:groups": ["local-users"],
        "custom:tenant": "local",
        "iat": now,
        "exp": now + TOKEN_LIFETIME_SECONDS,
    });
    doc.as_object().cloned().unwrap_or_default()
}

/// Signs `claims` with `key_pem` (ES256) under key id `kid`.
pub fn sign(claims: &Map<String, Value>, key_pem: &str, kid: &str) -> Result<String, String> {
    let key = EncodingKey::from_ec_pem(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key).map_err(|e| e.to_string())
}

/// A fresh ID token for `user` from the issuer at `issuer`, signed with its key.
pub fn token_for(issuer: &str, user: &str) -> Result<String, String> {
    sign(&claims_for(issuer, user), KEY_PEM, KEY_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    #[test]
    fn minted_tokens_verify_with_the_published_key() {
        let token = token_for("http://127.0.0.1:1/issuer", "alice").expect("token");
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks()).expect("jwks");
        let key = DecodingKey::from_jwk(&set.keys[0]).expect("key");
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[AUDIENCE]);
        let data = decode::<Map<String, Value>>(&token, &key, &validation).expect("valid");
        assert_eq!(data.claims["sub"], "user-alice");
        assert_eq!(data.header.kid.as_deref(), Some(KEY_ID));
        let other = sign(&claims_for("x", "eve"), OTHER_ISSUER_KEY_PEM, KEY_ID).expect("token");
        assert!(decode::<Map<String, Value>>(&other, &key, &validation).is_err());
    }
}
