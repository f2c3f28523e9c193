//! Sign-in through an OpenID Connect provider: the authorization code flow with PKCE, a state
//! and a nonce, for a confidential or public client (`[users.oidc]`, [`OidcConfig`]).
//!
//! The protocol is `openidconnect`'s: discovery, the authorization URL, the code exchange and
//! the ID token's checks (signature against the provider's keys, issuer, audience, expiry,
//! nonce). What is ours: the pending sign-ins (bounded and expiring, each usable once), the
//! mapping of a verified ID token to a moongate user (an existing user of that name, or a new one
//! only when `auto_create_role` allows it: an identity provider never makes an administrator),
//! and the HTTP client it runs on (hyper + rustls with ring, as the rest of the gateway, with the
//! public web roots plus an optional private CA).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use thiserror::Error;

use crate::config::{OidcConfig, UsernameClaim};

/// A sign-in not completed within this is forgotten.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many sign-ins wait at once (the oldest is dropped first).
const PENDING_MAX: usize = 1000;
/// The provider's metadata and keys are fetched again after this.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Each request to the provider.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the provider.
const MAX_BODY: usize = 1 << 20;

/// Why an OIDC sign-in failed. The texts reach the browser: they name no secret.
#[derive(Debug, Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached or answered wrongly: {0}")]
    Provider(String),
    #[error("this sign-in is unknown or expired; start again")]
    UnknownState,
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the identity provider's ID token was not valid: {0}")]
    BadToken(String),
    #[error("the ID token has no usable {0} claim for a moongate user name")]
    NoName(&'static str),
    #[error("the TLS setup for the identity provider failed: {0}")]
    Tls(String),
}

/// An HTTP error of the provider client.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct HttpError(String);

type HyperClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The provider's HTTP client as `openidconnect` calls it: each request a boxed `Send` future
/// owning a handle of the connection pool, so the sign-in handlers stay `Send`.
#[derive(Clone)]
struct ProviderHttp(HyperClient);

impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(self.0.clone(), request))
    }
}

async fn send(
    client: HyperClient,
    req: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, HttpError> {
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, client.request(req))
        .await
        .map_err(|_| HttpError("no answer in time".into()))?
        .map_err(|e| HttpError(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_BODY).collect())
        .await
        .map_err(|_| HttpError("the answer did not arrive in time".into()))?
        .map_err(|e| HttpError(e.to_string()))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

struct Pending {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    /// The random value of the cookie set on the browser that started this sign-in.
    browser: String,
    at: Instant,
}

/// The provider, its cached metadata and the sign-ins under way.
pub struct Oidc {
    config: OidcConfig,
    http: ProviderHttp,
    metadata: tokio::sync::Mutex<Option<(CoreProviderMetadata, Instant)>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// The client for `config`; nothing is fetched until the first sign-in.
    pub fn new(config: OidcConfig) -> Result<Arc<Oidc>, OidcError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.ca_file {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| OidcError::Tls(format!("{}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| OidcError::Tls(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| OidcError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OidcError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Arc::new(Oidc {
            config,
            http: ProviderHttp(Client::builder(TokioExecutor::new()).build(https)),
            metadata: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        }))
    }

    /// The sign-in button's label.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The role a new user gets, if new users are made at all.
    pub fn auto_create_role(&self) -> Option<super::UserRole> {
        self.config.auto_create_role
    }

    /// Where the browser goes back to after the callback: the gateway's origin (and path
    /// prefix), taken from the registered redirect URL.
    pub fn app_base(&self) -> &str {
        self.config
            .redirect_url
            .strip_suffix("/api/auth/oidc/callback")
            .unwrap_or("")
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The provider's metadata (and signing keys), fetched once an hour.
    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((m, at)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Provider(error_chain(&e)))?;
        *cached = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.config.redirect_url.clone())
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the provider's authorization URL to send the browser to, and the value
    /// of the cookie that binds the sign-in to this browser.
    ///
    /// Why the cookie: the state parameter alone proves the redirect answers *a* sign-in this
    /// gateway started, not one this browser started. Without it, anyone could start a sign-in,
    /// stop at the provider's redirect and send that link to someone else, who would land signed
    /// in as the sender (login CSRF). The callback finishes only with the cookie of the browser
    /// that went to the provider.
    pub async fn start(&self) -> Result<(String, String), OidcError> {
        let client = self.client(self.metadata().await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if self.config.username_claim == UsernameClaim::Email {
            request = request.add_scope(Scope::new("email".into()));
        }
        let (url, state, nonce) = request.url();
        let browser = hex::encode(rand::random::<[u8; 32]>());
        let mut pending = self.pending();
        pending.retain(|_, p| p.at.elapsed() < PENDING_TTL);
        if pending.len() >= PENDING_MAX {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                verifier,
                nonce,
                browser: browser.clone(),
                at: Instant::now(),
            },
        );
        Ok((url.to_string(), browser))
    }

    /// Completes a sign-in from the provider's redirect, in the browser whose cookie holds
    /// `browser`: the verified user name.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        browser: &str,
    ) -> Result<String, OidcError> {
        let pending = {
            let mut all = self.pending();
            let ours = all.get(state).is_some_and(|p| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    p.browser.as_bytes(),
                    browser.as_bytes(),
                ))
            });
            // Another browser's redirect leaves the sign-in to the browser that started it.
            ours.then(|| all.remove(state)).flatten()
        }
        .filter(|p| p.at.elapsed() < PENDING_TTL)
        .ok_or(OidcError::UnknownState)?;
        let client = self.client(self.metadata().await?)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Provider(e.to_string()))?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Refused(error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::BadToken("the provider sent no ID token".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &pending.nonce)
            .map_err(|e| OidcError::BadToken(e.to_string()))?;
        let mut name = self.name_from(
            claims.preferred_username().map(|u| u.as_str()),
            claims.email().map(|e| e.as_str()),
            claims.email_verified(),
            claims.subject().as_str(),
        );
        if name.is_none() {
            // A provider may keep profile claims for the userinfo endpoint (the code flow's
            // default in the spec, and node-oidc-provider's and Okta's): ask there, for the
            // same subject.
            let info: openidconnect::core::CoreUserInfoClaims = client
                .user_info(token.access_token().clone(), Some(claims.subject().clone()))
                .map_err(|e| OidcError::Provider(e.to_string()))?
                .request_async(&self.http)
                .await
                .map_err(|e| OidcError::BadToken(error_chain(&e)))?;
            name = self.name_from(
                info.preferred_username().map(|u| u.as_str()),
                info.email().map(|e| e.as_str()),
                info.email_verified(),
                info.subject().as_str(),
            );
        }
        let name = name.ok_or(match self.config.username_claim {
            UsernameClaim::PreferredUsername => OidcError::NoName("preferred_username"),
            UsernameClaim::Email => OidcError::NoName("verified email"),
            UsernameClaim::Subject => OidcError::NoName("sub"),
        })?;
        if !super::valid_name(&name) {
            return Err(OidcError::NoName("valid (1-64 letters, digits, . _ - @)"));
        }
        Ok(name)
    }
}

impl Oidc {
    /// The configured claim's value, if the claims have it (an email only if not marked
    /// unverified).
    fn name_from(
        &self,
        preferred: Option<&str>,
        email: Option<&str>,
        email_verified: Option<bool>,
        subject: &str,
    ) -> Option<String> {
        match self.config.username_claim {
            UsernameClaim::PreferredUsername => preferred.map(str::to_string),
            UsernameClaim::Email => email
                .filter(|_| email_verified != Some(false))
                .map(str::to_string),
            UsernameClaim::Subject => Some(subject.to_string()),
        }
    }
}

/// An error with its sources, for a message that says what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
