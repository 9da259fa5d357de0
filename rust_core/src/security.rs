//! Authentication of calls (docs/security.md): API tokens kept as salted
//! hashes, JWTs verified with configured public keys, and a bounded cache
//! of verified tokens keyed by a keyed hash, so that a token is verified
//! once until it expires.
//!
//! No secret leaves this module: errors name what was wrong with a
//! credential, never the credential, and every type holding one has a
//! redacted `Debug`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Code, HmsError, Result};
use crate::proto::v1::{
    AuthorizationConfig, CallOptions, Credentials, JwtVerification, SecurityConfig,
};

/// What `Debug` shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
pub const MAX_TOKEN_BYTES_CEILING: u32 = 64 * 1024;
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
pub const MAX_LEEWAY_SECONDS: u32 = 300;
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;
pub const MAX_CACHE_CAPACITY: u32 = 1 << 20;

/// Methods any caller reaches, credentials or not, when authentication is
/// required: a liveness probe (an orchestrator's, a load balancer's) has
/// no credentials, and Health tells nothing a caller could act on.
pub const PUBLIC_METHODS: &[&str] = &["hms.sys.v1.System/Health"];

/// The caller a verified credential names.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct Principal {
    pub id: String,
    pub roles: Vec<String>,
    /// String claims of a JWT beyond the registered ones.
    pub attributes: BTreeMap<String, String>,
}

/// A runtime's verifiers, its default credentials and its cache of
/// verified tokens.
pub struct Security {
    require_authentication: bool,
    api_tokens: Vec<ApiToken>,
    jwt: Option<JwtVerifier>,
    default_credentials: Option<Credentials>,
    max_token_bytes: usize,
    cache: VerifiedCache,
    nats_identity: Option<NatsIdentities>,
    /// The policy configuration, loaded by the runtime (src/authz.rs)
    /// once its services are registered, as the schema lists them.
    pub authorization: Option<AuthorizationConfig>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("require_authentication", &self.require_authentication)
            .field("api_tokens", &self.api_tokens.len())
            .field("jwt", &self.jwt.is_some())
            .field("default_credentials", &self.default_credentials)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("nats_identity", &self.nats_identity)
            .finish_non_exhaustive()
    }
}

impl Security {
    pub fn from_config(mut config: SecurityConfig) -> Result<Security> {
        let mut api_tokens = Vec::new();
        if !config.api_tokens_file.is_empty() {
            let text = Zeroizing::new(std::fs::read_to_string(&config.api_tokens_file).map_err(
                |e| {
                    config_error(
                        "security.api_tokens_file",
                        format!("cannot read {}: {e}", config.api_tokens_file),
                    )
                },
            )?);
            api_tokens.extend(parse_api_tokens(&text, &config.api_tokens_file)?);
        }
        if !config.api_tokens_env.is_empty() {
            let text = Zeroizing::new(std::env::var(&config.api_tokens_env).map_err(|e| {
                config_error(
                    "security.api_tokens_env",
                    format!("environment variable {}: {e}", config.api_tokens_env),
                )
            })?);
            let source = format!("${}", config.api_tokens_env);
            api_tokens.extend(parse_api_tokens(&text, &source)?);
        }
        let jwt = config
            .jwt
            .as_ref()
            .map(JwtVerifier::from_config)
            .transpose()?;
        if config.require_authentication && api_tokens.is_empty() && jwt.is_none() {
            return Err(config_error(
                "security.require_authentication",
                "require_authentication needs a verifier: api_tokens_file, api_tokens_env \
                 or jwt"
                    .into(),
            ));
        }
        let nats_identity = NatsIdentities::from_config(&mut config)?;
        if nats_identity.is_some() && api_tokens.is_empty() && jwt.is_none() {
            return Err(config_error(
                "security.require_nats_identity",
                "require_nats_identity matches the NATS identity of a call with the principal of \
                 its credentials, and needs a verifier for them: api_tokens_file, api_tokens_env \
                 or jwt"
                    .into(),
            ));
        }
        let max_token_bytes = match config.max_token_bytes {
            0 => DEFAULT_MAX_TOKEN_BYTES,
            n if n > MAX_TOKEN_BYTES_CEILING => {
                return Err(config_error(
                    "security.max_token_bytes",
                    format!("max_token_bytes {n} is over the ceiling of {MAX_TOKEN_BYTES_CEILING}"),
                ));
            }
            n => n as usize,
        };
        let capacity = cache_capacity(
            config.verified_cache_capacity,
            "security.verified_cache_capacity",
        )?;
        Ok(Security {
            require_authentication: config.require_authentication,
            api_tokens,
            jwt,
            default_credentials: config
                .default_credentials
                .take()
                .filter(|c| !c.token.is_empty()),
            max_token_bytes,
            cache: VerifiedCache::new(capacity)?,
            nats_identity,
            authorization: config.authorization.take(),
        })
    }

    /// Whether this runtime verifies anything: a runtime that only holds
    /// default credentials (for its remote calls) verifies nothing here.
    fn verifies(&self) -> bool {
        self.require_authentication || !self.api_tokens.is_empty() || self.jwt.is_some()
    }

    /// The credentials a call of this runtime's own host carries: its own,
    /// else the runtime's default ones.
    pub fn credentials_of<'a>(&'a self, options: &'a CallOptions) -> Option<&'a Credentials> {
        options
            .credentials
            .as_ref()
            .or(self.default_credentials.as_ref())
    }

    /// `options` with the default credentials when it has none, for a call
    /// that leaves for another runtime, which verifies them itself.
    pub fn outgoing<'a>(&self, options: &'a CallOptions) -> std::borrow::Cow<'a, CallOptions> {
        match &self.default_credentials {
            Some(defaults) if options.credentials.is_none() => {
                std::borrow::Cow::Owned(CallOptions {
                    credentials: Some(defaults.clone()),
                    ..options.clone()
                })
            }
            _ => std::borrow::Cow::Borrowed(options),
        }
    }

    /// The principal of a call of `method` with `credentials`: `None` for
    /// an anonymous call where that is allowed; UNAUTHENTICATED when the
    /// credentials are missing where required or fail verification.
    pub fn authenticate(
        &self,
        method: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Option<Arc<Principal>>> {
        if !self.verifies() {
            return Ok(None);
        }
        let Some(credentials) = credentials.filter(|c| !c.token.is_empty()) else {
            if self.require_authentication && !PUBLIC_METHODS.contains(&method) {
                let claimed = credentials.is_some_and(|c| !c.principal.is_empty());
                return Err(unauthenticated(
                    "missing",
                    if claimed {
                        format!(
                            "`{method}` requires authentication and the call has no token: a \
                             principal alone is not a credential"
                        )
                    } else {
                        format!(
                            "`{method}` requires authentication and the call has no credentials"
                        )
                    },
                ));
            }
            return Ok(None);
        };
        let principal = self.verify(credentials)?;
        if !credentials.principal.is_empty() && credentials.principal != principal.id {
            return Err(unauthenticated(
                "principal_mismatch",
                format!(
                    "Credentials.principal {:?} is not the principal of the token",
                    credentials.principal
                ),
            ));
        }
        Ok(Some(principal))
    }

    /// Refuses a call of `method` that came over NATS when
    /// `security.require_nats_identity` is on and the connection that sent
    /// it is not known to belong to `principal`. `stamps` are the
    /// request's `Nats-Request-Info` headers, under any spelling.
    pub fn check_nats_identity(
        &self,
        method: &str,
        principal: Option<&Principal>,
        stamps: &[&str],
    ) -> Result<()> {
        match &self.nats_identity {
            Some(identities) if !PUBLIC_METHODS.contains(&method) => {
                identities.check(method, principal, stamps)
            }
            _ => Ok(()),
        }
    }

    fn verify(&self, credentials: &Credentials) -> Result<Arc<Principal>> {
        let token = credentials.token.as_str();
        if token.len() > self.max_token_bytes {
            return Err(unauthenticated(
                "too_long",
                format!(
                    "the token takes {} bytes, over the limit of {} (security.max_token_bytes)",
                    token.len(),
                    self.max_token_bytes
                ),
            ));
        }
        let kind = self.kind_of(credentials)?;
        let key = self.cache.key(kind, token);
        let now = unix_now();
        if let Some(principal) = self.cache.get(&key, now) {
            return Ok(principal);
        }
        let (principal, valid_until) = match kind {
            TokenKind::ApiToken => (self.verify_api_token(token)?, None),
            TokenKind::Jwt => match &self.jwt {
                Some(jwt) => jwt.verify(token)?,
                None => unreachable!("kind_of gives Jwt only with a JWT verifier"),
            },
        };
        self.cache.insert(key, principal.clone(), valid_until, now);
        Ok(principal)
    }

    fn kind_of(&self, credentials: &Credentials) -> Result<TokenKind> {
        let kind = match credentials.scheme.to_ascii_lowercase().as_str() {
            "bearer" => TokenKind::Jwt,
            "api-key" => TokenKind::ApiToken,
            "" if credentials.token.bytes().filter(|b| *b == b'.').count() == 2 => TokenKind::Jwt,
            "" => TokenKind::ApiToken,
            _ => {
                return Err(unauthenticated(
                    "unknown_scheme",
                    format!(
                        "credential scheme {:?} is not one of \"bearer\" (JWT) and \"api-key\"",
                        credentials.scheme
                    ),
                ));
            }
        };
        match kind {
            TokenKind::Jwt if self.jwt.is_none() => Err(unauthenticated(
                "unknown_token",
                "the token is a JWT and this runtime verifies no JWTs (security.jwt)".into(),
            )),
            TokenKind::ApiToken if self.api_tokens.is_empty() => Err(unauthenticated(
                "unknown_token",
                "the token is an API token and this runtime has none (security.api_tokens_file)"
                    .into(),
            )),
            kind => Ok(kind),
        }
    }

    /// Every configured token is compared, in constant time, so the time
    /// taken tells nothing of which one (if any) matched.
    fn verify_api_token(&self, token: &str) -> Result<Arc<Principal>> {
        let mut found = None;
        for entry in &self.api_tokens {
            let digest = salted_digest(&entry.salt, token.as_bytes());
            if bool::from(digest.ct_eq(&entry.digest)) && found.is_none() {
                found = Some(entry.principal.clone());
            }
        }
        found.ok_or_else(|| unauthenticated("unknown_token", "the API token is not known".into()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    ApiToken,
    Jwt,
}

/// One line of a token file: the token itself is never kept.
struct ApiToken {
    principal: Arc<Principal>,
    salt: Vec<u8>,
    digest: [u8; 32],
}

fn salted_digest(salt: &[u8], token: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(token);
    hasher.finalize().into()
}

/// Parses lines "<principal> <roles> sha256:<salt hex>:<digest hex>".
fn parse_api_tokens(text: &str, source: &str) -> Result<Vec<ApiToken>> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| {
            config_error(
                "security.api_tokens_file",
                format!(
                    "{source} line {}: {why}; expected \"<principal> <roles> \
                     sha256:<salt hex>:<digest hex>\" (tools/hms_token.py makes it)",
                    index + 1
                ),
            )
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [principal, roles, hash] = fields[..] else {
            return Err(bad(&format!("{} fields instead of 3", fields.len())));
        };
        let mut parts = hash.split(':');
        let (Some("sha256"), Some(salt), Some(digest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("the hash is not sha256:<salt hex>:<digest hex>"));
        };
        let salt = hex_decode(salt).ok_or_else(|| bad("the salt is not hex"))?;
        if salt.len() < 8 {
            return Err(bad("the salt is shorter than 8 bytes"));
        }
        let digest: [u8; 32] = hex_decode(digest)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| bad("the digest is not 64 hex digits"))?;
        let roles = match roles {
            "-" => Vec::new(),
            roles => roles.split(',').map(str::to_owned).collect(),
        };
        tokens.push(ApiToken {
            principal: Arc::new(Principal {
                id: principal.to_owned(),
                roles,
                attributes: BTreeMap::new(),
            }),
            salt,
            digest,
        });
    }
    Ok(tokens)
}

pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

struct JwtVerifier {
    /// Each key with the one algorithm it verifies, and its "kid".
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: u64,
}

impl JwtVerifier {
    fn from_config(config: &JwtVerification) -> Result<JwtVerifier> {
        let mut keys = Vec::new();
        for path in &config.public_key_files {
            keys.push(pem_key(Path::new(path))?);
        }
        if !config.jwks_file.is_empty() {
            keys.extend(jwks_keys(&config.jwks_file)?);
        }
        if keys.is_empty() {
            return Err(config_error(
                "security.jwt",
                "security.jwt has no key: give public_key_files or jwks_file".into(),
            ));
        }
        let leeway = match config.leeway_seconds {
            None => DEFAULT_LEEWAY_SECONDS,
            Some(s) if s > MAX_LEEWAY_SECONDS => {
                return Err(config_error(
                    "security.jwt.leeway_seconds",
                    format!("leeway_seconds {s} is over the ceiling of {MAX_LEEWAY_SECONDS}"),
                ));
            }
            Some(s) => s.into(),
        };
        Ok(JwtVerifier {
            keys,
            issuer: Some(config.issuer.clone()).filter(|i| !i.is_empty()),
            audiences: config.audiences.clone(),
            leeway,
        })
    }

    /// The principal of `token` and the time (Unix seconds, leeway
    /// included) until which it stays valid.
    fn verify(&self, token: &str) -> Result<(Arc<Principal>, Option<u64>)> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match declared_alg(token) {
            // An "alg" jsonwebtoken does not even know ("none"): say so,
            // rather than "malformed".
            Some(alg) if alg.parse::<Algorithm>().is_err() => unauthenticated(
                "algorithm",
                format!("the JWT's algorithm {alg:?} is not accepted"),
            ),
            _ => jwt_error(e),
        })?;
        let mut candidates = self
            .keys
            .iter()
            .filter(|(kid, alg, _)| {
                *alg == header.alg && (header.kid.is_none() || kid.is_none() || *kid == header.kid)
            })
            .peekable();
        if candidates.peek().is_none() {
            return Err(unauthenticated(
                "algorithm",
                format!(
                    "the JWT is signed with {:?}{}, and no configured key verifies that",
                    header.alg,
                    header
                        .kid
                        .as_deref()
                        .map(|kid| format!(" (kid {kid:?})"))
                        .unwrap_or_default()
                ),
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let mut last = None;
        for (_, _, key) in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                key,
                &validation,
            ) {
                Ok(data) => return Ok(principal_of(data.claims, self.leeway)),
                // Another key (rotation) may verify it.
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => last = Some(e),
                Err(e) => return Err(jwt_error(e)),
            }
        }
        Err(jwt_error(last.expect("at least one candidate key")))
    }
}

/// The "alg" a JWT's header declares, whatever it is (at most 32
/// characters of it: the header is the caller's text).
fn declared_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: serde_json::Value = serde_json::from_slice(&json).ok()?;
    Some(header.get("alg")?.as_str()?.chars().take(32).collect())
}

const REGISTERED_CLAIMS: &[&str] = &["sub", "iss", "aud", "exp", "nbf", "iat", "jti", "roles"];

fn principal_of(
    claims: serde_json::Map<String, serde_json::Value>,
    leeway: u64,
) -> (Arc<Principal>, Option<u64>) {
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let roles = match claims.get("roles") {
        Some(serde_json::Value::Array(roles)) => roles
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(roles)) => {
            roles.split_whitespace().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    };
    let attributes = claims
        .iter()
        .filter(|(name, _)| !REGISTERED_CLAIMS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    let valid_until = claims
        .get("exp")
        .and_then(|v| v.as_u64())
        .map(|exp| exp.saturating_add(leeway));
    let principal = Principal {
        id: text("sub").unwrap_or_default(),
        roles,
        attributes,
    };
    (Arc::new(principal), valid_until)
}

fn pem_key(path: &Path) -> Result<(Option<String>, Algorithm, DecodingKey)> {
    let field = "security.jwt.public_key_files";
    let pem = std::fs::read(path)
        .map_err(|e| config_error(field, format!("cannot read {}: {e}", path.display())))?;
    if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        return Ok((None, Algorithm::EdDSA, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok((None, Algorithm::ES256, key));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((None, Algorithm::RS256, key));
    }
    Err(config_error(
        field,
        format!(
            "{} is not a PEM public key of Ed25519, P-256 or RSA",
            path.display()
        ),
    ))
}

fn jwks_keys(path: &str) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>> {
    let field = "security.jwt.jwks_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_error(field, format!("cannot read {path}: {e}")))?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| config_error(field, format!("{path} is not a JWKS: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        let name = kid.as_deref().unwrap_or("without kid");
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| config_error(field, format!("{path}: key {name}: {e}")))?;
        let algorithm = match key.family() {
            jsonwebtoken::AlgorithmFamily::Ed => Algorithm::EdDSA,
            jsonwebtoken::AlgorithmFamily::Ec => Algorithm::ES256,
            jsonwebtoken::AlgorithmFamily::Rsa => Algorithm::RS256,
            jsonwebtoken::AlgorithmFamily::Hmac => {
                return Err(config_error(
                    field,
                    format!(
                        "{path}: key {name} is symmetric (\"oct\"); only public keys verify \
                         JWTs here"
                    ),
                ));
            }
        };
        keys.push((kid, algorithm, key));
    }
    Ok(keys)
}

/// What was wrong with a JWT, in words that never quote it.
fn jwt_error(error: jsonwebtoken::errors::Error) -> HmsError {
    let (reason, message) = match error.kind() {
        ErrorKind::ExpiredSignature => ("expired", "the JWT has expired".to_owned()),
        ErrorKind::ImmatureSignature => {
            ("not_yet_valid", "the JWT is not valid yet (nbf)".to_owned())
        }
        ErrorKind::InvalidIssuer => ("issuer", "the JWT has the wrong issuer (iss)".to_owned()),
        ErrorKind::InvalidAudience => (
            "audience",
            "the JWT is not for this audience (aud)".to_owned(),
        ),
        ErrorKind::InvalidSignature => (
            "signature",
            "the JWT's signature does not verify with any configured key".to_owned(),
        ),
        ErrorKind::MissingRequiredClaim(claim) => (
            "missing_claim",
            format!("the JWT lacks the required claim {claim:?}"),
        ),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => (
            "algorithm",
            "the JWT's algorithm is not accepted (only those of the configured keys are)"
                .to_owned(),
        ),
        ErrorKind::InvalidClaimFormat(claim) => (
            "malformed",
            format!("the JWT's claim {claim:?} has the wrong type"),
        ),
        _ => (
            "malformed",
            "the token is not a well-formed JWT (three base64url parts of JSON)".to_owned(),
        ),
    };
    unauthenticated(reason, message)
}

/// The header nats-server writes on a request that crosses a service
/// import, naming the connection that sent it (`ClientInfoHdr`).
pub const NATS_REQUEST_INFO: &str = "Nats-Request-Info";

/// `security.require_nats_identity` with its tables: which principal each
/// NATS user or account may call as.
#[derive(Debug)]
struct NatsIdentities {
    users: HashMap<String, String>,
    accounts: HashMap<String, String>,
}

/// The part of nats-server's `ClientInfo` JSON that names the sender: its
/// account always, its user only when the import shares (`share: true`).
#[derive(serde::Deserialize)]
struct RequestInfo {
    #[serde(default)]
    acc: String,
    #[serde(default)]
    user: String,
}

impl NatsIdentities {
    fn from_config(config: &mut SecurityConfig) -> Result<Option<NatsIdentities>> {
        let users: HashMap<_, _> = std::mem::take(&mut config.nats_user_principals)
            .into_iter()
            .collect();
        let accounts: HashMap<_, _> = std::mem::take(&mut config.nats_account_principals)
            .into_iter()
            .collect();
        let tables = [
            ("security.nats_user_principals", &users),
            ("security.nats_account_principals", &accounts),
        ];
        for (field, table) in tables {
            if let Some((identity, _)) = table
                .iter()
                .find(|(identity, principal)| identity.is_empty() || principal.is_empty())
            {
                return Err(config_error(
                    field,
                    format!(
                        "{field} maps {identity:?} to an empty principal or from an empty \
                         identity: give each NATS identity the principal id it calls as"
                    ),
                ));
            }
        }
        if !config.require_nats_identity {
            if users.is_empty() && accounts.is_empty() {
                return Ok(None);
            }
            return Err(config_error(
                "security.require_nats_identity",
                "nats_user_principals and nats_account_principals are read only with \
                 require_nats_identity on: turn it on, or leave them out"
                    .into(),
            ));
        }
        if users.is_empty() && accounts.is_empty() {
            return Err(config_error(
                "security.require_nats_identity",
                "require_nats_identity needs the NATS identities it accepts: map NATS users in \
                 nats_user_principals or accounts in nats_account_principals to principals"
                    .into(),
            ));
        }
        Ok(Some(NatsIdentities { users, accounts }))
    }

    fn check(&self, method: &str, principal: Option<&Principal>, stamps: &[&str]) -> Result<()> {
        let stamp = match stamps {
            [] => {
                return Err(unauthenticated(
                    "nats_identity_missing",
                    format!(
                        "`{method}` came over NATS without a {NATS_REQUEST_INFO} header, and \
                         security.require_nats_identity serves only callers the NATS server \
                         names: call from another NATS account through a service import of \
                         this runtime's subjects (share: true names the user too)"
                    ),
                ));
            }
            [stamp] => *stamp,
            _ => {
                return Err(unauthenticated(
                    "nats_identity_ambiguous",
                    format!(
                        "`{method}` came over NATS with {} {NATS_REQUEST_INFO} headers; the NATS \
                         server writes one, so the others were written by the sender",
                        stamps.len()
                    ),
                ));
            }
        };
        let info = serde_json::from_str::<RequestInfo>(stamp)
            .ok()
            .filter(|info| !info.acc.is_empty())
            .ok_or_else(|| {
                unauthenticated(
                    "nats_identity_malformed",
                    format!(
                        "the {NATS_REQUEST_INFO} header of `{method}` is not the NATS server's \
                         JSON naming an account"
                    ),
                )
            })?;
        let named = |error: HmsError| {
            let error = error.with_detail("nats_account", &info.acc);
            if info.user.is_empty() {
                error
            } else {
                error.with_detail("nats_user", &info.user)
            }
        };
        let sender = if info.user.is_empty() {
            format!("account {}", info.acc)
        } else {
            format!("user {} of account {}", info.user, info.acc)
        };
        let Some(owner) = self
            .users
            .get(&info.user)
            .or_else(|| self.accounts.get(&info.acc))
        else {
            return Err(named(unauthenticated(
                "nats_identity_unknown",
                format!(
                    "`{method}` came over NATS from {sender}, which is in neither \
                     security.nats_user_principals nor security.nats_account_principals: map it \
                     to the principal it calls as"
                ),
            )));
        };
        let Some(principal) = principal else {
            return Err(named(unauthenticated(
                "missing",
                format!(
                    "`{method}` came over NATS without credentials, and \
                     security.require_nats_identity serves a call only when its NATS identity \
                     belongs to the principal its credentials name"
                ),
            )));
        };
        if *owner != principal.id {
            return Err(named(
                HmsError::new(
                    Code::PermissionDenied,
                    format!(
                        "`{method}` came over NATS from {sender}, which security.nats_*_principals \
                         gives to another principal than the one its credentials name: call with \
                         that principal's credentials, or over that principal's NATS connection"
                    ),
                )
                .with_detail("reason", "nats_identity_mismatch"),
            ));
        }
        Ok(())
    }
}

fn unauthenticated(reason: &str, message: String) -> HmsError {
    HmsError::new(Code::Unauthenticated, message).with_detail("reason", reason)
}

/// A configured cache bound: 0 means the default, over the ceiling is
/// refused.
pub(crate) fn cache_capacity(configured: u32, field: &str) -> Result<usize> {
    match configured {
        0 => Ok(DEFAULT_CACHE_CAPACITY),
        n if n > MAX_CACHE_CAPACITY => Err(config_error(
            field,
            format!("{field} {n} is over the ceiling of {MAX_CACHE_CAPACITY}"),
        )),
        n => Ok(n as usize),
    }
}

pub(crate) fn config_error(field: &str, message: String) -> HmsError {
    HmsError::invalid_argument(message).with_detail("field", field)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Verified tokens by a hash keyed with a random per-runtime key, so the
/// cache holds nothing a token could be recovered or tested from.
struct VerifiedCache {
    hash_key: Zeroizing<[u8; 32]>,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Verified>>,
}

struct Verified {
    principal: Arc<Principal>,
    /// Unix seconds, leeway included; `None`: API tokens do not expire.
    valid_until: Option<u64>,
}

impl VerifiedCache {
    fn new(capacity: usize) -> Result<VerifiedCache> {
        let mut hash_key = Zeroizing::new([0u8; 32]);
        getrandom::fill(hash_key.as_mut()).map_err(|e| {
            HmsError::new(
                Code::Internal,
                format!("no randomness for the verified-token cache: {e}"),
            )
        })?;
        Ok(VerifiedCache {
            hash_key,
            capacity,
            entries: Mutex::new(HashMap::new()),
        })
    }

    fn key(&self, kind: TokenKind, token: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.hash_key.as_ref());
        hasher.update([kind as u8]);
        hasher.update(token.as_bytes());
        hasher.finalize().into()
    }

    fn get(&self, key: &[u8; 32], now: u64) -> Option<Arc<Principal>> {
        let mut entries = self.entries.lock();
        let entry = entries.get(key)?;
        if entry.valid_until.is_some_and(|until| now >= until) {
            entries.remove(key);
            return None;
        }
        Some(entry.principal.clone())
    }

    fn insert(&self, key: [u8; 32], principal: Arc<Principal>, valid_until: Option<u64>, now: u64) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, v| v.valid_until.is_none_or(|until| now < until));
            if entries.len() >= self.capacity {
                // Forgetting costs one verification per token; keeping the
                // cache bounded matters more than keeping it warm.
                entries.clear();
            }
        }
        entries.insert(
            key,
            Verified {
                principal,
                valid_until,
            },
        );
    }
}

impl Drop for VerifiedCache {
    fn drop(&mut self) {
        for (mut key, _) in self.entries.get_mut().drain() {
            key.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(principal: &str, roles: &str, salt: &[u8], token: &str) -> String {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        format!(
            "{principal} {roles} sha256:{}:{}",
            hex(salt),
            hex(&salted_digest(salt, token.as_bytes()))
        )
    }

    #[test]
    fn token_file_lines_parse_and_bad_ones_name_their_line() {
        let text = format!(
            "# comment\n\n{}\n{}\n",
            line("alice", "admin,ops", b"saltsalt", "t1"),
            line("bob", "-", b"pepper12", "t2")
        );
        let tokens = parse_api_tokens(&text, "f").unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].principal.roles, ["admin", "ops"]);
        assert!(tokens[1].principal.roles.is_empty());
        for (bad, why) in [
            ("alice admin", "2 fields"),
            ("alice admin md5:00:00", "not sha256"),
            ("alice admin sha256:zz:00", "salt is not hex"),
            ("alice admin sha256:0011:00", "shorter than 8"),
            ("alice admin sha256:0011223344556677:00", "64 hex digits"),
        ] {
            let error = parse_api_tokens(&format!("\n{bad}"), "f").err().unwrap();
            assert!(error.message.contains("f line 2"), "{}", error.message);
            assert!(error.message.contains(why), "{}", error.message);
        }
    }

    #[test]
    fn hex_decoding_refuses_odd_and_non_hex() {
        assert_eq!(hex_decode("00ff"), Some(vec![0, 255]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("0g"), None);
        assert_eq!(hex_decode("é0"), None);
    }

    #[test]
    fn the_cache_forgets_expired_entries_and_stays_bounded() {
        let cache = VerifiedCache::new(2).unwrap();
        let principal = Arc::new(Principal::default());
        let a = cache.key(TokenKind::Jwt, "a");
        assert_ne!(a, cache.key(TokenKind::ApiToken, "a"));
        cache.insert(a, principal.clone(), Some(100), 50);
        assert!(cache.get(&a, 99).is_some());
        assert!(cache.get(&a, 100).is_none());
        for (i, token) in ["b", "c", "d"].iter().enumerate() {
            cache.insert(
                cache.key(TokenKind::ApiToken, token),
                principal.clone(),
                None,
                i as u64,
            );
        }
        assert!(cache.entries.lock().len() <= 2);
    }
}
