//! JWT bearer credentials: HS256 or RS256, with optional issuer and audience checks.

use serde::Deserialize;

use super::identity::Identity;
use super::model::{Role, Scopes};
use super::service::{MAX_TOKEN_NAME, unauthenticated};
use crate::core::error::{Error, Result};

const MIN_HS256_SECRET: usize = 32;

/// How JWTs are checked.
pub struct JwtSettings {
    pub hs256_secret: Option<String>,
    pub rs256_public_key_pem: Option<Vec<u8>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

pub(super) struct JwtVerifier {
    keys: Vec<(jsonwebtoken::Algorithm, jsonwebtoken::DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    roles: Vec<Role>,
    #[serde(default)]
    scopes: Scopes,
}

impl JwtVerifier {
    pub(super) fn new(settings: JwtSettings) -> Result<Option<Self>> {
        let mut keys = Vec::new();
        if let Some(secret) = settings.hs256_secret {
            if secret.len() < MIN_HS256_SECRET {
                return Err(Error::invalid(
                    "jwtHs256Secret",
                    format!("the HS256 secret must be at least {MIN_HS256_SECRET} bytes"),
                ));
            }
            keys.push((
                jsonwebtoken::Algorithm::HS256,
                jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            ));
        }
        if let Some(pem) = settings.rs256_public_key_pem {
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                Error::invalid(
                    "jwtRs256PublicKeyFile",
                    format!("not an RSA public key: {e}"),
                )
            })?;
            keys.push((jsonwebtoken::Algorithm::RS256, key));
        }
        Ok((!keys.is_empty()).then_some(JwtVerifier {
            keys,
            issuer: settings.issuer,
            audience: settings.audience,
        }))
    }

    pub(super) fn verify(&self, token: &str) -> Result<Identity> {
        let invalid = || unauthenticated("invalid, expired or unverifiable JWT");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let (algorithm, key) = self
            .keys
            .iter()
            .find(|(algorithm, _)| *algorithm == header.alg)
            .ok_or_else(invalid)?;
        let mut validation = jsonwebtoken::Validation::new(*algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|_| invalid())?
            .claims;
        if claims.roles.is_empty() || claims.sub.is_empty() || claims.sub.len() > MAX_TOKEN_NAME {
            return Err(invalid());
        }
        Ok(Identity {
            name: format!("jwt:{}", claims.sub),
            roles: claims.roles,
            scopes: claims.scopes,
            rate_key: format!("jwt:{}", claims.sub),
            unrestricted: false,
        })
    }
}
