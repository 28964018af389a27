//! Sign-in through the city's identity provider on `yimen serve` (`--oidc-issuer` and the
//! rest): without an issuer people sign in with passwords only. The provider's discovery
//! document and keys are read at start; a server that cannot read them does not start.

use anyhow::{Context, bail};
use std::path::PathBuf;
use yimen_engine::oidc::{OidcConfig, Provider};

#[derive(clap::Args, Debug, Clone)]
pub struct OidcArgs {
    /// The identity provider's issuer URL (OpenID Connect): people may also sign in through it
    /// (`GET /api/v1/oidc/login`). Absent: passwords only.
    #[arg(long, env = "YIMEN_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// This server's client id at the provider.
    #[arg(long, env = "YIMEN_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// This server's client secret at the provider (or --oidc-client-secret-file).
    #[arg(
        long,
        env = "YIMEN_OIDC_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// A file holding the client secret (its first line).
    #[arg(
        long,
        env = "YIMEN_OIDC_CLIENT_SECRET_FILE",
        value_name = "FILE",
        conflicts_with = "oidc_client_secret"
    )]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// This server's callback as registered at the provider:
    /// `https://HOST/api/v1/oidc/callback`.
    #[arg(long, env = "YIMEN_OIDC_REDIRECT_URL", value_name = "URL")]
    pub oidc_redirect_url: Option<String>,
    /// The ID token's claim with the person's roles (a list, or text separated by commas).
    #[arg(
        long,
        env = "YIMEN_OIDC_ROLES_CLAIM",
        value_name = "CLAIM",
        default_value = "roles"
    )]
    pub oidc_roles_claim: String,
    /// The ID token's claim with the person's organisation units.
    #[arg(
        long,
        env = "YIMEN_OIDC_UNITS_CLAIM",
        value_name = "CLAIM",
        default_value = "org_units"
    )]
    pub oidc_units_claim: String,
    /// The ID token's claim with the person's login.
    #[arg(
        long,
        env = "YIMEN_OIDC_LOGIN_CLAIM",
        value_name = "CLAIM",
        default_value = "preferred_username"
    )]
    pub oidc_login_claim: String,
    /// The ID token's claim with the person's display name.
    #[arg(
        long,
        env = "YIMEN_OIDC_NAME_CLAIM",
        value_name = "CLAIM",
        default_value = "name"
    )]
    pub oidc_name_claim: String,
}

/// The provider, discovered, when an issuer is given.
pub async fn provider(args: &OidcArgs) -> anyhow::Result<Option<Provider>> {
    let Some(issuer) = args.oidc_issuer.clone() else {
        return Ok(None);
    };
    let need = |value: &Option<String>, flag: &str| match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => bail!("--oidc-issuer is given: give {flag} too"),
    };
    let client_secret = match &args.oidc_client_secret_file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the client secret file {}", file.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        None => need(
            &args.oidc_client_secret,
            "--oidc-client-secret (or --oidc-client-secret-file)",
        )?,
    };
    if client_secret.is_empty() {
        bail!("the client secret is empty");
    }
    let config = OidcConfig {
        issuer,
        client_id: need(&args.oidc_client_id, "--oidc-client-id")?,
        client_secret,
        redirect_url: need(&args.oidc_redirect_url, "--oidc-redirect-url")?,
        roles_claim: args.oidc_roles_claim.clone(),
        units_claim: args.oidc_units_claim.clone(),
        login_claim: args.oidc_login_claim.clone(),
        name_claim: args.oidc_name_claim.clone(),
    };
    Ok(Some(Provider::discover(config).await?))
}
