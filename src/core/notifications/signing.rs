//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret's bytes (the secret is
//! shown as `whsec_<base64>`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use crate::core::error::{Error, Result};

const PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// A fresh secret's bytes.
pub fn new_secret() -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::internal("no randomness"))?;
    Ok(bytes)
}

/// How a secret is shown to its owner (once): `whsec_` and its bytes in base64.
pub fn secret_text(bytes: &[u8]) -> String {
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The bytes of a secret shown as `whsec_…`.
pub fn secret_bytes(text: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(text.strip_prefix(PREFIX).unwrap_or(text))
        .map_err(|_| Error::internal("a webhook secret is not base64"))
}

/// One signature (`v1,<base64>`) of a message.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_secret_round_trips_through_its_text() {
        let secret = new_secret().unwrap();
        let text = secret_text(&secret);
        assert!(text.starts_with("whsec_"));
        assert_eq!(secret_bytes(&text).unwrap(), secret);
        let both = signature_header(&[secret.clone(), new_secret().unwrap()], "evt_1", 1, "{}");
        assert_eq!(both.split(' ').count(), 2);
        assert_eq!(
            both.split(' ').next().unwrap(),
            sign(&secret, "evt_1", 1, "{}")
        );
    }
}
