//! Envelope encryption of secret values: each version's value is sealed with its own random
//! data key (AES-256-GCM), and the data key is sealed with the key-encryption key (KEK) loaded
//! from `SUMMIT_SECRET_KEY_FILE`. The secret's name and version are the associated data of
//! both, so a sealed value moved to another name or version does not open. The database holds
//! only what `Sealed` holds.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::error::{Error, Result};

const KEY_LEN: usize = 32;

/// A sealed value as stored: ciphertexts and nonces in base64, and the id of the KEK that
/// wrapped the data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sealed {
    pub key_id: String,
    pub wrapped_key: String,
    pub key_nonce: String,
    pub ciphertext: String,
    pub nonce: String,
}

/// A key-encryption key and its id (the first 8 bytes of its SHA-256, in hex).
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl Kek {
    pub fn from_bytes(bytes: &[u8]) -> Result<Kek> {
        if bytes.len() != KEY_LEN {
            return Err(Error::internal(format!(
                "a secret key is {KEY_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        let id = hex::encode(&Sha256::digest(bytes)[..8]);
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::internal("bad key"))?;
        Ok(Kek {
            id,
            key: LessSafeKey::new(key),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The KEKs this server knows: the current one (seals) and older ones (open what they sealed
/// until a re-wrap moves it to the current one).
pub struct Keyring {
    current: Kek,
    older: Vec<Kek>,
    random: SystemRandom,
}

fn associated(name: &str, version: u64, part: &str) -> Vec<u8> {
    format!("summit-secret\u{0}{name}\u{0}{version}\u{0}{part}").into_bytes()
}

impl Keyring {
    pub fn new(current: Kek, older: Vec<Kek>) -> Keyring {
        Keyring {
            current,
            older,
            random: SystemRandom::new(),
        }
    }

    /// Loads the key file (base64 of 32 bytes) and the older key files, which only open what
    /// they sealed (until a re-wrap). An absent key file is created (mode 0600) unless a value
    /// in `stored` (the key ids stored values are sealed under) needs a key none of the older
    /// files holds: a fresh key then means the real one is missing, and values sealed under it
    /// would open on no server that has the real one.
    pub fn load(
        path: &Path,
        older: &[std::path::PathBuf],
        stored: &BTreeSet<String>,
    ) -> Result<Keyring> {
        let older = older
            .iter()
            .map(|old| {
                let text = std::fs::read_to_string(old).map_err(|e| {
                    Error::internal(format!(
                        "reading the secret key file {}: {e}",
                        old.display()
                    ))
                })?;
                Kek::from_bytes(&decode_key(&text, old)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let lost: Vec<&str> = stored
                    .iter()
                    .map(String::as_str)
                    .filter(|id| older.iter().all(|kek| kek.id != *id))
                    .collect();
                if !lost.is_empty() {
                    return Err(Error::internal(format!(
                        "the secret key file {} does not exist, but stored secrets are sealed \
                         under key {}, which no key file names: restore that key file (or \
                         name it in SUMMIT_SECRET_PREVIOUS_KEY_FILES to move to a new key)",
                        path.display(),
                        lost.join(", ")
                    )));
                }
                create_key(path)?
            }
            Err(error) => {
                return Err(Error::internal(format!(
                    "reading the secret key file {}: {error}",
                    path.display()
                )));
            }
        };
        let current = Kek::from_bytes(&decode_key(&text, path)?)?;
        Ok(Keyring::new(current, older))
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    fn kek(&self, id: &str) -> Result<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.older)
            .find(|kek| kek.id == id)
            .ok_or_else(|| Error::internal(format!("no secret key with id {id} is configured")))
    }

    fn random<const N: usize>(&self) -> Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.random
            .fill(&mut bytes)
            .map_err(|_| Error::internal("no randomness"))?;
        Ok(bytes)
    }

    /// Seals `value` as version `version` of secret `name`, under a fresh data key.
    pub fn seal(&self, name: &str, version: u64, value: &[u8]) -> Result<Sealed> {
        let data_key: [u8; KEY_LEN] = self.random()?;
        let (ciphertext, nonce) = seal_with(
            &aead_key(&data_key)?,
            &self.random()?,
            &associated(name, version, "value"),
            value,
        )?;
        let (wrapped_key, key_nonce) = self.wrap_key(name, version, &data_key)?;
        Ok(Sealed {
            key_id: self.current.id.clone(),
            wrapped_key,
            key_nonce,
            ciphertext,
            nonce,
        })
    }

    /// Opens what `seal` made for (`name`, `version`).
    pub fn open(&self, name: &str, version: u64, sealed: &Sealed) -> Result<Vec<u8>> {
        let data_key = self.unwrap_key(name, version, sealed)?;
        open_with(
            &aead_key(&data_key)?,
            &sealed.nonce,
            &associated(name, version, "value"),
            &sealed.ciphertext,
        )
    }

    /// The same value under the current KEK (a new wrapping of the same data key).
    pub fn rewrap(&self, name: &str, version: u64, sealed: &Sealed) -> Result<Sealed> {
        let data_key = self.unwrap_key(name, version, sealed)?;
        let (wrapped_key, key_nonce) = self.wrap_key(name, version, &data_key)?;
        Ok(Sealed {
            key_id: self.current.id.clone(),
            wrapped_key,
            key_nonce,
            ..sealed.clone()
        })
    }

    /// `data_key` wrapped under the current KEK: the wrapped key and its nonce.
    fn wrap_key(&self, name: &str, version: u64, data_key: &[u8]) -> Result<(String, String)> {
        seal_with(
            &self.current.key,
            &self.random()?,
            &associated(name, version, "key"),
            data_key,
        )
    }

    fn unwrap_key(&self, name: &str, version: u64, sealed: &Sealed) -> Result<Vec<u8>> {
        open_with(
            &self.kek(&sealed.key_id)?.key,
            &sealed.key_nonce,
            &associated(name, version, "key"),
            &sealed.wrapped_key,
        )
    }
}

fn decode_key(text: &str, path: &Path) -> Result<Vec<u8>> {
    BASE64.decode(text.trim()).map_err(|_| {
        Error::internal(format!(
            "the secret key file {} is not base64 of {KEY_LEN} bytes",
            path.display()
        ))
    })
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| Error::internal("bad data key"))
}

fn seal_with(
    key: &LessSafeKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(String, String)> {
    let mut buffer = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        &mut buffer,
    )
    .map_err(|_| Error::internal("sealing failed"))?;
    Ok((BASE64.encode(buffer), BASE64.encode(nonce)))
}

fn open_with(key: &LessSafeKey, nonce: &str, aad: &[u8], ciphertext: &str) -> Result<Vec<u8>> {
    let corrupt = || Error::internal("a sealed secret does not open (wrong key or altered data)");
    let nonce: [u8; NONCE_LEN] = BASE64
        .decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(corrupt)?;
    let mut buffer = BASE64.decode(ciphertext).map_err(|_| corrupt())?;
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buffer,
        )
        .map_err(|_| corrupt())?;
    Ok(plaintext.to_vec())
}

/// A new random key written to `path`; its base64.
fn create_key(path: &Path) -> Result<String> {
    let mut bytes = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::internal("no randomness for a secret key"))?;
    let text = BASE64.encode(bytes);
    write_private(path, &format!("{text}\n"))
        .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))?;
    Ok(text)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
