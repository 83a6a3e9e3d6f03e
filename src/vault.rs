//! The vault's keys and ciphers (docs/design/vault.md): the master key and its keyring, data
//! keys wrapped by it, and secret values sealed with a data key. AES-256-GCM from `ring`.
//!
//! Architecture invariant: nothing here writes a store or a log; a value in clear exists only
//! in memory, between `open` and the answer that carries it.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master key setting is unusable; fix the setting (no retry helps).
    #[error("master key: {0}")]
    MasterKey(String),
    /// A ciphertext did not decrypt: wrong key, or the bytes were altered. Final.
    #[error("a sealed value does not open with key {0} (wrong master key, or altered)")]
    Open(String),
    /// The keyring has no key with this id (a rotation's older key is missing).
    #[error("no master key {0} in the keyring; add the key it was written with to the keyring")]
    UnknownKey(String),
}

pub const KEY_LEN: usize = 32;

/// A 256-bit key and its id.
#[derive(Clone)]
pub struct Key {
    pub id: String,
    bytes: [u8; KEY_LEN],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        let mut h = Sha256::new();
        h.update(b"tandem-master-key-id");
        h.update(bytes);
        Key {
            id: tandem_core::ids::hex(&h.finalize()[..8]),
            bytes,
        }
    }

    /// 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Key, VaultError> {
        let t = text.trim();
        if t.len() != KEY_LEN * 2 || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(VaultError::MasterKey(
                "a master key is 64 hexadecimal characters (openssl rand -hex 32)".into(),
            ));
        }
        let mut b = [0u8; KEY_LEN];
        for (i, chunk) in t.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).expect("hex is ascii");
            b[i] = u8::from_str_radix(s, 16).expect("checked hex");
        }
        Ok(Key::from_bytes(b))
    }

    /// MLflow's `MLFLOW_CRYPTO_KEK_PASSPHRASE`, stretched with PBKDF2-HMAC-SHA256.
    pub fn from_passphrase(passphrase: &str) -> Key {
        let mut b = [0u8; KEY_LEN];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(600_000).expect("nonzero"),
            b"tandem-vault-kek-v1",
            passphrase.as_bytes(),
            &mut b,
        );
        Key::from_bytes(b)
    }

    pub fn random() -> Key {
        Key::from_bytes(random_bytes())
    }

    fn hex(&self) -> String {
        tandem_core::ids::hex(&self.bytes)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.bytes).expect("32-byte key"))
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .expect("the OS random source works");
    b
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Encrypts `plain` under `key`, bound to `aad`: `base64(nonce || ciphertext || tag)`.
pub fn seal(key: &Key, aad: &str, plain: &[u8]) -> String {
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
    let mut buf = plain.to_vec();
    key.aead()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad.as_bytes()),
            &mut buf,
        )
        .expect("sealing cannot fail for in-memory buffers");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    B64.encode(out)
}

/// The inverse of `seal`, with the same `aad`.
pub fn open(key: &Key, aad: &str, sealed: &str) -> Result<Vec<u8>, VaultError> {
    let raw = B64
        .decode(sealed)
        .map_err(|_| VaultError::Open(key.id.clone()))?;
    if raw.len() < NONCE_LEN {
        return Err(VaultError::Open(key.id.clone()));
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let mut buf = rest.to_vec();
    let nonce =
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Open(key.id.clone()))?;
    let plain = key
        .aead()
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
        .map_err(|_| VaultError::Open(key.id.clone()))?;
    Ok(plain.to_vec())
}

/// What a data key's wrapping is bound to.
pub fn data_key_aad(ws: &str, dek_id: &str) -> String {
    format!("tandem-data-key\0{ws}\0{dek_id}")
}

/// What a secret version's ciphertext is bound to.
pub fn secret_aad(ws: &str, secret_id: &str, version: i64) -> String {
    format!("tandem-secret\0{ws}\0{secret_id}\0{version}")
}

/// The master key in use, the older ones (to open what was wrapped before a rotation), and
/// the data keys unwrapped so far.
pub struct Keyring {
    current: Key,
    older: Vec<Key>,
    /// Where the master key came from, for people.
    pub source: String,
    data_keys: Mutex<HashMap<(String, String), Key>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring(current {}, {} older, from {})",
            self.current.id,
            self.older.len(),
            self.source
        )
    }
}

impl Keyring {
    pub fn new(current: Key, older: Vec<Key>, source: String) -> Keyring {
        Keyring {
            current,
            older,
            source,
            data_keys: Mutex::new(HashMap::new()),
        }
    }

    /// The master key from the environment (`TANDEM_MASTER_KEY`, `TANDEM_MASTER_KEY_FILE`,
    /// `MLFLOW_CRYPTO_KEK_PASSPHRASE`) or `DATA/master.key`, created (mode 0600) when none is
    /// set; the older keys from `TANDEM_MASTER_KEYRING` or `DATA/master.keyring` (one hex key a
    /// line). The second value says, once, that a key was created.
    pub fn load(data: &Path) -> Result<(Keyring, Option<String>), VaultError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut created = None;
        let (current, source) = if let Some(hex) = env("TANDEM_MASTER_KEY") {
            (Key::from_hex(&hex)?, "TANDEM_MASTER_KEY".to_owned())
        } else if let Some(file) = env("TANDEM_MASTER_KEY_FILE") {
            (
                read_key_file(Path::new(&file))?,
                format!("TANDEM_MASTER_KEY_FILE ({file})"),
            )
        } else if let Some(p) = env("MLFLOW_CRYPTO_KEK_PASSPHRASE") {
            (
                Key::from_passphrase(&p),
                "MLFLOW_CRYPTO_KEK_PASSPHRASE".to_owned(),
            )
        } else {
            let path = data.join("master.key");
            if !path.exists() && write_key_file(&path, &Key::random()).is_ok() {
                // (Two processes starting at once: one creates it, the other reads it.)
                created = Some(format!(
                    "tandem: created a master key for the vault in {} (mode 0600); keep a copy apart from the data and archives, or set TANDEM_MASTER_KEY_FILE",
                    path.display()
                ));
            }
            (read_key_file(&path)?, path.display().to_string())
        };
        let ring_path = env("TANDEM_MASTER_KEYRING")
            .map(PathBuf::from)
            .unwrap_or_else(|| data.join("master.keyring"));
        let mut older = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&ring_path) {
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                older.push(Key::from_hex(line)?);
            }
        }
        Ok((Keyring::new(current, older, source), created))
    }

    pub fn current(&self) -> &Key {
        &self.current
    }

    pub fn by_id(&self, id: &str) -> Result<&Key, VaultError> {
        std::iter::once(&self.current)
            .chain(self.older.iter())
            .find(|k| k.id == id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_owned()))
    }

    /// A new data key for `ws`, and its wrapping under the current master key.
    pub fn new_data_key(&self, ws: &str) -> (String, Key, String) {
        let dek = Key::random();
        let dek_id = format!("dk-{}", &dek.id);
        let wrapped = seal(&self.current, &data_key_aad(ws, &dek_id), &dek.bytes);
        (dek_id, dek, wrapped)
    }

    /// `dek` wrapped under the current master key (a rotation's re-wrap).
    pub fn wrap(&self, ws: &str, dek_id: &str, dek: &Key) -> String {
        seal(&self.current, &data_key_aad(ws, dek_id), &dek.bytes)
    }

    /// The data key `dek_id` of `ws`, unwrapped with the master key `master_id` (cached).
    pub fn data_key(
        &self,
        ws: &str,
        dek_id: &str,
        master_id: &str,
        wrapped: &str,
    ) -> Result<Key, VaultError> {
        let cache_key = (ws.to_owned(), dek_id.to_owned());
        if let Some(k) = self
            .data_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
        {
            return Ok(k.clone());
        }
        let master = self.by_id(master_id)?;
        let raw = open(master, &data_key_aad(ws, dek_id), wrapped)?;
        let bytes: [u8; KEY_LEN] = raw
            .try_into()
            .map_err(|_| VaultError::Open(master_id.to_owned()))?;
        let k = Key::from_bytes(bytes);
        self.data_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cache_key, k.clone());
        Ok(k)
    }
}

fn read_key_file(path: &Path) -> Result<Key, VaultError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| VaultError::MasterKey(format!("cannot read {}: {e}", path.display())))?;
    Key::from_hex(&text)
}

/// Writes a key file readable by its owner only, atomically: written aside, then linked into
/// place, which fails if the file exists (so two processes never see a half-written key).
pub fn write_key_file(path: &Path, key: &Key) -> Result<(), VaultError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail =
        |e: std::io::Error| VaultError::MasterKey(format!("cannot create {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    writeln!(f, "{}", key.hex()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_binding() {
        let k = Key::random();
        let s = seal(&k, "a", b"sk-secret");
        assert!(!s.contains("sk-secret"));
        assert_eq!(open(&k, "a", &s).unwrap(), b"sk-secret");
        assert!(open(&k, "b", &s).is_err(), "bound to its place");
        assert!(open(&Key::random(), "a", &s).is_err(), "bound to its key");
        let mut tampered = B64.decode(&s).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&k, "a", &B64.encode(tampered)).is_err(), "altered");
        assert_ne!(
            seal(&k, "a", b"x"),
            seal(&k, "a", b"x"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn data_keys_unwrap_with_an_older_master_key_after_a_rotation() {
        let old = Key::random();
        let ring_old = Keyring::new(old.clone(), vec![], "t".into());
        let (dek_id, dek, wrapped) = ring_old.new_data_key("ws");
        let ring_new = Keyring::new(Key::random(), vec![old.clone()], "t".into());
        let got = ring_new.data_key("ws", &dek_id, &old.id, &wrapped).unwrap();
        assert_eq!(got.bytes, dek.bytes);
        let rewrapped = ring_new.wrap("ws", &dek_id, &got);
        let fresh = Keyring::new(ring_new.current().clone(), vec![], "t".into());
        assert_eq!(
            fresh
                .data_key("ws", &dek_id, &fresh.current().id, &rewrapped)
                .unwrap()
                .bytes,
            dek.bytes
        );
        assert!(fresh.data_key("other", &dek_id, &old.id, &wrapped).is_err());
    }

    #[test]
    fn master_keys_parse_and_passphrases_stretch_deterministically() {
        assert!(Key::from_hex("zz").is_err());
        let k = Key::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(k.id.len(), 16);
        assert_eq!(Key::from_passphrase("p").id, Key::from_passphrase("p").id);
        assert_ne!(Key::from_passphrase("p").id, Key::from_passphrase("q").id);
    }
}
