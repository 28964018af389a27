//! Sign-in through the city's identity provider (OpenID Connect, authorization code flow with
//! PKCE, state and nonce): the provider's endpoints and keys found at start
//! (`{issuer}/.well-known/openid-configuration`), the address a browser is sent to, the code
//! exchanged for an ID token, the token verified (RS256 or ES256 against the provider's keys,
//! `iss`, `aud`, `exp`, `nonce`) and its claims read as a login, a name, roles and units. The
//! routes are in `api::oidc`, the sign-ins begun in `store::accounts`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a sign-in begun at the provider may take to come back.
pub const LOGIN_EXPIRY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// The provider's keys are fetched again for an unknown key id at most this often.
const REFETCH_KEYS_EVERY: Duration = Duration::from_secs(60);
/// Longest wait for the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// How this server is registered at the provider, and which claims say what.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// This server's callback (`…/api/v1/oidc/callback`), as registered at the provider.
    pub redirect_url: String,
    pub roles_claim: String,
    pub units_claim: String,
    pub login_claim: String,
    pub name_claim: String,
}

/// What went wrong with the provider or its answer.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider {issuer}: {what}")]
    Setup { issuer: String, what: String },
    #[error("the provider refused the code: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    Token(String),
    #[error("the ID token's claims will not do: {0}")]
    Claims(String),
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    Basic,
    Post,
}

/// The provider, as discovered at start.
#[derive(Debug)]
pub struct Provider {
    config: OidcConfig,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    client_auth: ClientAuth,
    http: reqwest::Client,
    keys: Mutex<(JwkSet, Instant)>,
}

/// A person as the provider names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `issuer sub`: stable at the provider, kept on the account.
    pub subject: String,
    pub login: String,
    pub name: String,
    pub roles: Vec<String>,
    pub org_units: Vec<String>,
}

impl Provider {
    /// Reads the provider's discovery document and its keys; an error names the issuer and
    /// what failed.
    pub async fn discover(config: OidcConfig) -> Result<Provider, OidcError> {
        let issuer = config.issuer.trim_end_matches('/').to_string();
        let setup = |what: String| OidcError::Setup {
            issuer: issuer.clone(),
            what,
        };
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| setup(format!("no HTTP client: {e}")))?;
        let url = format!("{issuer}/.well-known/openid-configuration");
        let doc: Value = get_json(&http, &url)
            .await
            .map_err(|e| setup(format!("cannot read the discovery document {url}: {e}")))?;
        let field = |name: &str| {
            doc[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| setup(format!("the discovery document {url} has no `{name}`")))
        };
        let said_issuer = field("issuer")?;
        if said_issuer.trim_end_matches('/') != issuer {
            return Err(setup(format!(
                "the discovery document names the issuer `{said_issuer}`, not this one"
            )));
        }
        let methods: Vec<&str> = doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_else(|| vec!["client_secret_basic"]);
        let client_auth = if methods.contains(&"client_secret_basic") {
            ClientAuth::Basic
        } else if methods.contains(&"client_secret_post") {
            ClientAuth::Post
        } else {
            return Err(setup(format!(
                "the token endpoint takes none of client_secret_basic, client_secret_post \
                 (it takes {methods:?})"
            )));
        };
        let jwks_uri = field("jwks_uri")?;
        let keys = fetch_keys(&http, &jwks_uri)
            .await
            .map_err(|e| setup(format!("cannot read the keys {jwks_uri}: {e}")))?;
        Ok(Provider {
            config: OidcConfig {
                issuer: said_issuer,
                ..config
            },
            authorization_endpoint: field("authorization_endpoint")?,
            token_endpoint: field("token_endpoint")?,
            jwks_uri,
            client_auth,
            http,
            keys: Mutex::new((keys, Instant::now())),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Where to send a browser to sign in: the authorization endpoint with this sign-in's
    /// state, nonce and PKCE challenge (S256 of `verifier`).
    pub fn authorize_url(&self, state: &str, nonce: &str, verifier: &str) -> String {
        let params = [
            ("response_type", "code"),
            ("client_id", &self.config.client_id),
            ("redirect_uri", &self.config.redirect_url),
            ("scope", "openid profile"),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", &pkce_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ];
        match reqwest::Url::parse_with_params(&self.authorization_endpoint, params) {
            Ok(url) => url.to_string(),
            // Checked at start: the endpoint was read from the discovery document as a URL.
            Err(_) => self.authorization_endpoint.clone(),
        }
    }

    /// Exchanges `code` (with the PKCE `verifier`) for the provider's ID token.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<String, OidcError> {
        let c = &self.config;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", c.redirect_url.as_str()),
            ("code_verifier", verifier),
        ];
        if self.client_auth == ClientAuth::Post {
            form.push(("client_id", &c.client_id));
            form.push(("client_secret", &c.client_secret));
        }
        let mut request = self
            .http
            .post(&self.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&form));
        if self.client_auth == ClientAuth::Basic {
            request = request.basic_auth(
                form_encode_one(&c.client_id),
                Some(form_encode_one(&c.client_secret)),
            );
        }
        let response = request.send().await.map_err(|e| {
            OidcError::Exchange(format!("the token endpoint cannot be reached: {e}"))
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let said = body["error"].as_str().unwrap_or("no error code");
            return Err(OidcError::Exchange(format!("{status} ({said})")));
        }
        body["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| OidcError::Exchange("the answer has no `id_token`".into()))
    }

    /// The claims of `token` when it is signed by one of the provider's keys (RS256 or ES256),
    /// issued by it, for this client, unexpired and carrying `nonce`.
    pub async fn verify(&self, token: &str, nonce: &str) -> Result<Map<String, Value>, OidcError> {
        let bad = |why: String| OidcError::Token(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(bad(format!(
                "it is signed with {:?}; only RS256 and ES256 are taken",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| bad(e.to_string()))?;
        let claims = data.claims;
        let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !crate::accounts::constant_time_eq(sent, nonce) {
            return Err(bad("its nonce is not the one of this sign-in".into()));
        }
        Ok(claims)
    }

    /// The provider's key `kid` (or its only key when the token names none); the keys are
    /// fetched again for an unknown id, at most once a minute.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        if let Some(key) = self.known_key(kid)? {
            return Ok(key);
        }
        let stale = self
            .keys
            .lock()
            .map(|k| k.1.elapsed() >= REFETCH_KEYS_EVERY)
            .unwrap_or(true);
        if stale {
            let fresh = fetch_keys(&self.http, &self.jwks_uri).await.map_err(|e| {
                OidcError::Token(format!("the provider's keys cannot be read: {e}"))
            })?;
            if let Ok(mut keys) = self.keys.lock() {
                *keys = (fresh, Instant::now());
            }
            if let Some(key) = self.known_key(kid)? {
                return Ok(key);
            }
        }
        Err(OidcError::Token(format!(
            "it is signed with a key the provider does not publish ({})",
            kid.unwrap_or("no key id")
        )))
    }

    fn known_key(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, OidcError> {
        let keys = self
            .keys
            .lock()
            .map_err(|_| OidcError::Token("the keys are unreadable".into()))?;
        let found = match kid {
            Some(kid) => keys.0.find(kid),
            None if keys.0.keys.len() == 1 => keys.0.keys.first(),
            None => None,
        };
        found
            .map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Token(e.to_string())))
            .transpose()
    }

    /// The person the claims name: the login, name, roles and units claims of the
    /// configuration. Roles that are not roles (`Role::parse`) are left out.
    pub fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, OidcError> {
        let c = &self.config;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::trim);
        let sub = text("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::Claims("no `sub`".into()))?;
        let login = crate::accounts::normalize_login(text(&c.login_claim).unwrap_or(""));
        if let Some(why) = crate::accounts::login_problem(&login) {
            return Err(OidcError::Claims(format!(
                "the claim `{}` is not a login: {why}",
                c.login_claim
            )));
        }
        let name = text(&c.name_claim)
            .filter(|n| !n.is_empty())
            .unwrap_or(&login)
            .chars()
            .take(crate::accounts::MAX_NAME_CHARS)
            .collect();
        let roles = list(claims.get(&c.roles_claim))
            .into_iter()
            .filter_map(|r| crate::auth::Role::parse(&r).ok().map(|r| r.to_string()))
            .collect();
        Ok(Identity {
            subject: format!("{} {sub}", c.issuer),
            login,
            name,
            roles,
            org_units: list(claims.get(&c.units_claim)),
        })
    }
}

/// A claim as a list: an array of strings, or one string of items separated by commas or
/// spaces.
fn list(claim: Option<&Value>) -> Vec<String> {
    let items: Vec<String> = match claim {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => s.split([',', ' ']).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    out.dedup();
    out
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("it answered {status}"));
    }
    response
        .json()
        .await
        .map_err(|e| format!("its answer is not JSON: {e}"))
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<JwkSet, String> {
    serde_json::from_value(get_json(http, url).await?).map_err(|e| format!("not a key set: {e}"))
}

/// A fresh random secret: 32 bytes, base64url (43 characters), fit for a state, a nonce or a
/// PKCE verifier.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of `verifier`: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode_one(k), form_encode_one(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `application/x-www-form-urlencoded` of one value (also what client_secret_basic wants of
/// the id and the secret).
fn form_encode_one(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(random_secret().len(), 43);
        assert_ne!(random_secret(), random_secret());
    }

    #[test]
    fn form_values_are_escaped() {
        assert_eq!(form_encode_one("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn lists_are_arrays_or_separated_text() {
        let json = serde_json::json!(["a", "b", 3]);
        assert_eq!(list(Some(&json)), vec!["a", "b"]);
        let text = Value::String("a, b c".into());
        assert_eq!(list(Some(&text)), vec!["a", "b", "c"]);
        assert!(list(None).is_empty());
    }
}
