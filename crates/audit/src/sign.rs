//! Signed checkpoints: a `checkpoint` record whose detail holds the chain's head (chain, seq,
//! hash) and an Ed25519 signature over it. Someone who rewrites the log and recomputes every
//! hash cannot sign the recomputed heads without the private key, so the checkpoints of a
//! forged chain fail with the public key.
//!
//! Key files are text: one line of 64 hexadecimal digits, the 32-byte Ed25519 seed (private
//! key, mode 0600) or the 32-byte public key (`<file>.pub`). The signed message is
//! `curfew checkpoint v1\nchain <chain>\nseq <seq>\nhash <hash>\n`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use jiff::Timestamp;

use crate::chain::ChainVerification;
use crate::details::CheckpointHead;
use crate::event::Event;
use crate::problem::{Problem, ProblemKind};
use crate::record::Record;
use crate::writer::Head;

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a key in the documented format.
    #[error("{}: not an Ed25519 key file ({why}); expected one line of 64 hexadecimal digits (curfew audit keygen writes one)", path.display())]
    Format {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A private key file was given where the public key was expected.
    #[error("{}: this is the private checkpoint key, not the public one: give FILE.pub (curfew audit keygen writes it next to the private key); keep the private key on the agent's host only", .0.display())]
    Private(PathBuf),
    /// The system's random source failed.
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// A private key for signing checkpoints.
#[derive(Clone)]
pub struct CheckpointKey(SigningKey);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key itself.
        write!(f, "CheckpointKey(public {})", self.public_hex())
    }
}

/// A public key for checking checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let text = text.trim();
    if text.len() != 2 * N {
        return Err(format!(
            "{} characters where {} were expected",
            text.len(),
            2 * N
        ));
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
            .map_err(|_| "a character that is not a hexadecimal digit".to_owned())?;
    }
    Ok(out)
}

fn read_key<const N: usize>(path: &Path) -> Result<[u8; N], KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        what: "cannot read",
        source,
    })?;
    unhex(&text).map_err(|why| KeyError::Format {
        path: path.to_owned(),
        why,
    })
}

/// The message a checkpoint's signature covers.
fn message(chain: &str, seq: u64, hash: &str) -> String {
    format!("curfew checkpoint v1\nchain {chain}\nseq {seq}\nhash {hash}\n")
}

impl CheckpointKey {
    /// Reads a private key file.
    pub fn load(path: &Path) -> Result<CheckpointKey, KeyError> {
        Ok(CheckpointKey(SigningKey::from_bytes(&read_key::<32>(
            path,
        )?)))
    }

    /// A new random key.
    pub fn generate() -> Result<CheckpointKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(CheckpointKey(SigningKey::from_bytes(&seed)))
    }

    /// Writes the private key to `path` (created, mode 0600, never overwritten) and the
    /// public key to `<path>.pub`; returns the public key file's path.
    pub fn write(&self, path: &Path) -> Result<PathBuf, KeyError> {
        let io = |what| {
            move |source| KeyError::Io {
                path: path.to_owned(),
                what,
                source,
            }
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io("cannot create"))?;
        writeln!(file, "{}", hex(&self.0.to_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(io("cannot write"))?;
        let public = public_path(path);
        // create_new: an existing file, or a symlink planted there, is never written through.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&public)
            .and_then(|mut f| writeln!(f, "{}", self.public_hex()).and_then(|()| f.sync_all()));
        if let Err(source) = written {
            // No private key without its public half: undo, so a retry starts clean.
            let _ = std::fs::remove_file(path);
            return Err(KeyError::Io {
                path: public,
                what: "cannot create (it is never overwritten)",
                source,
            });
        }
        Ok(public)
    }

    /// The public key, as its file holds it.
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// A `checkpoint` record for `head`, signed.
    pub fn checkpoint(&self, head: &Head, ts: Timestamp) -> Record {
        let signature = self
            .0
            .sign(message(&head.chain, head.seq, &head.hash).as_bytes());
        Record::new(ts, Event::Checkpoint)
            .with_reason(format!(
                "the chain up to seq {} is signed with the checkpoint key",
                head.seq
            ))
            .with_details(&CheckpointHead {
                chain: head.chain.clone(),
                seq: head.seq,
                hash: head.hash.clone(),
                key: self.public_hex(),
                signature: hex(&signature.to_bytes()),
            })
    }
}

/// `<path>.pub`: where [`CheckpointKey::write`] puts the public key.
fn public_path(path: &Path) -> PathBuf {
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    PathBuf::from(public)
}

impl PublicKey {
    /// Reads a public key file. Refuses a private key file (both are 64 hex digits): one
    /// whose `<path>.pub` holds the public key of its contents taken as a seed.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let bytes = read_key::<32>(path)?;
        let as_seed = hex(SigningKey::from_bytes(&bytes).verifying_key().as_bytes());
        if let Ok(text) = std::fs::read_to_string(public_path(path))
            && text.trim() == as_seed
        {
            return Err(KeyError::Private(path.to_owned()));
        }
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| KeyError::Format {
                path: path.to_owned(),
                why: e.to_string(),
            })
    }

    /// The key in hexadecimal.
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }
}

/// The result of [`ChainVerification::check_signatures`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    /// Checkpoints whose signature verified and whose head is in the log.
    pub valid: usize,
    /// The highest seq a valid checkpoint covers.
    pub signed_up_to: Option<u64>,
    /// Records after that seq (not covered by any valid signature yet).
    pub unsigned_after: u64,
    /// Checkpoints that fail, and a log with records but no valid checkpoint.
    pub problems: Vec<Problem>,
}

impl ChainVerification {
    /// Reads the public key file `path` to check this chain's checkpoints, as
    /// [`PublicKey::load`], refusing also a private key whose public half the chain's
    /// checkpoints name (the two files look alike).
    pub fn load_public_key(&self, path: &Path) -> Result<PublicKey, KeyError> {
        let bytes = read_key::<32>(path)?;
        let as_seed = hex(SigningKey::from_bytes(&bytes).verifying_key().as_bytes());
        let named = self.checkpoints.iter().any(|(_, _, e)| {
            e.detail
                .as_ref()
                .and_then(|d| d.get("key"))
                .and_then(|k| k.as_str())
                == Some(as_seed.as_str())
        });
        if named {
            return Err(KeyError::Private(path.to_owned()));
        }
        PublicKey::load(path)
    }

    /// Checks every checkpoint record with `key`: its signature, that it names this chain,
    /// and that the log's record at its seq has its hash.
    pub fn check_signatures(&self, key: &PublicKey) -> SignatureCheck {
        let mut check = SignatureCheck {
            valid: 0,
            signed_up_to: None,
            unsigned_after: 0,
            problems: Vec::new(),
        };
        for (path, line, entry) in &self.checkpoints {
            let field = |k: &str| entry.detail.as_ref().and_then(|d| d.get(k)).cloned();
            let text = |k: &str| field(k).and_then(|v| v.as_str().map(str::to_owned));
            let at = format!("{}:{line} (checkpoint seq {})", path.display(), entry.seq);
            let (Some(chain), Some(seq), Some(hash), Some(signature)) = (
                text("chain"),
                field("seq").and_then(|v| v.as_u64()),
                text("hash"),
                text("signature"),
            ) else {
                check.problems.push(bad(
                    entry.seq,
                    format!(
                        "{at}: not a signed checkpoint (chain, seq, hash or signature missing)"
                    ),
                ));
                continue;
            };
            let verified = unhex::<64>(&signature).ok().is_some_and(|sig| {
                key.0
                    .verify(
                        message(&chain, seq, &hash).as_bytes(),
                        &Signature::from_bytes(&sig),
                    )
                    .is_ok()
            });
            if !verified {
                check.problems.push(bad(
                    seq,
                    format!(
                        "{at}: its signature does not verify with public key {}: the checkpoint was forged or altered, or signed with another key",
                        key.to_hex()
                    ),
                ));
            } else if Some(&chain) != self.chain.as_ref() {
                check
                    .problems
                    .push(bad(seq, format!("{at}: it signs another chain ({chain})")));
            } else if self.hash_at(seq) != Some(hash.as_str()) {
                check.problems.push(bad(
                    seq,
                    format!(
                        "{at}: record seq {seq} is not the record signed (signed hash {hash}): the chain was altered and recomputed from seq {seq} or before"
                    ),
                ));
            } else {
                check.valid += 1;
                check.signed_up_to = check.signed_up_to.max(Some(seq));
            }
        }
        let last = self.last_seq.unwrap_or(0);
        check.unsigned_after = last.saturating_sub(check.signed_up_to.unwrap_or(0));
        if check.valid == 0 && last > 0 && check.problems.is_empty() {
            check.problems.push(bad(
                self.first_seq.unwrap_or(1),
                "no valid signed checkpoint in the log: nothing in it is signed".to_owned(),
            ));
        }
        check
    }
}

fn bad(seq: u64, message: String) -> Problem {
    Problem {
        line: 0,
        seq: Some(seq),
        kind: ProblemKind::BadCheckpoint,
        message,
    }
}
