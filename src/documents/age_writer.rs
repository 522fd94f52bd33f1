//! Writing a document as an age v1 file, with the payload sealed by the TLS stack's
//! ChaCha20-Poly1305.
//!
//! Guarantees: `AgeWriter` writes a standard age v1 file (age-encryption.org/v1) to
//! one X25519 recipient, which the age crate (downloads, backups) and the reference
//! `age` command line read back; the tests here and in `tests/it` check both. A fresh
//! 128-bit file key from the OS is wrapped by the age crate's own `Recipient` (the
//! X25519 stanza); the header carries its HMAC-SHA256 under the HKDF "header" key; a
//! fresh 16-byte nonce follows, then the STREAM payload: 64 KiB chunks, each sealed
//! under the HKDF "payload" key with an 11-byte big-endian counter and a last-chunk
//! flag as its nonce, the last chunk empty only when the whole file is. Keys never
//! leave this module and are wiped when dropped.
//!
//! Why not the age crate's own `Encryptor`: its pure-Rust ChaCha20-Poly1305 runs at
//! half the speed of aws-lc's assembly (already linked for TLS), and uploads are
//! bounded by it. Only the payload sealing and the few lines of header layout are
//! done here; key wrapping and every read stay with the age crate.

use std::io::{self, Write};

use age::Recipient;
use age_core::format::{FileKey, Stanza};
use age_core::primitives::hkdf;
use age_core::secrecy::ExposeSecret;
use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Plaintext bytes per payload chunk (age's STREAM chunk size).
const CHUNK: usize = 64 * 1024;
/// Poly1305 tag after each sealed chunk.
const TAG: usize = 16;
/// Base64 stanza bodies are wrapped at this many columns.
const COLUMNS: usize = 64;

fn random<const N: usize>() -> io::Result<[u8; N]> {
    crate::crypto::random_bytes::<N>().map_err(io::Error::other)
}

/// The header: version line, the recipient stanzas, and the MAC line.
fn header(stanzas: &[Stanza], file_key: &FileKey) -> io::Result<Vec<u8>> {
    let mut out = b"age-encryption.org/v1\n".to_vec();
    for stanza in stanzas {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(stanza.tag.as_bytes());
        for arg in &stanza.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        let body = STANDARD_NO_PAD.encode(&stanza.body);
        for line in body.as_bytes().chunks(COLUMNS) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        // The last body line is shorter than a full one: empty if need be.
        if body.len() % COLUMNS == 0 {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"---");
    let mac_key = Zeroizing::new(hkdf(&[], b"header", file_key.expose_secret()));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(mac_key.as_slice())
        .map_err(|_| io::Error::other("the header key has a wrong length"))?;
    mac.update(&out);
    out.push(b' ');
    out.extend_from_slice(
        STANDARD_NO_PAD
            .encode(mac.finalize().into_bytes())
            .as_bytes(),
    );
    out.push(b'\n');
    Ok(out)
}

/// Encrypts what is written to it into `inner` as an age file; `finish` writes the
/// last chunk. Dropped without `finish`, the file is incomplete and will not
/// decrypt.
pub struct AgeWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    /// Chunks sealed so far: the STREAM nonce counter.
    counter: u64,
    /// The chunk being filled (room for its tag, so sealing never reallocates).
    chunk: Zeroizing<Vec<u8>>,
}

impl<W: Write> AgeWriter<W> {
    /// Writes the header and nonce of a new file to `recipient` into `inner`.
    pub fn new(recipient: &age::x25519::Recipient, mut inner: W) -> io::Result<Self> {
        let file_key = FileKey::new(Box::new(random::<16>()?));
        let (stanzas, _labels) = recipient
            .wrap_file_key(&file_key)
            .map_err(io::Error::other)?;
        inner.write_all(&header(&stanzas, &file_key)?)?;
        let nonce = random::<16>()?;
        inner.write_all(&nonce)?;
        let payload_key = Zeroizing::new(hkdf(&nonce, b"payload", file_key.expose_secret()));
        let key = UnboundKey::new(&CHACHA20_POLY1305, payload_key.as_slice())
            .map_err(|_| io::Error::other("the payload key has a wrong length"))?;
        Ok(Self {
            inner,
            key: LessSafeKey::new(key),
            counter: 0,
            chunk: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
        })
    }

    /// Seals the current chunk and writes it out.
    fn seal(&mut self, last: bool) -> io::Result<()> {
        let mut nonce = [0u8; 12];
        nonce[3..11].copy_from_slice(&self.counter.to_be_bytes());
        nonce[11] = u8::from(last);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("the file is too large to encrypt"))?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut *self.chunk,
            )
            .map_err(|_| io::Error::other("a chunk could not be sealed"))?;
        self.inner.write_all(&self.chunk)?;
        self.chunk.clear();
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for AgeWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full chunk is sealed only once more data follows: the last chunk must
        // carry the last-chunk flag, and must not be empty unless the file is.
        if self.chunk.len() == CHUNK {
            self.seal(false)?;
        }
        let n = data.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn encrypt(recipient: &age::x25519::Recipient, plain: &[u8], piece: usize) -> Vec<u8> {
        let mut w = AgeWriter::new(recipient, Vec::new()).expect("writer");
        for part in plain.chunks(piece.max(1)) {
            w.write_all(part).expect("write");
        }
        w.finish().expect("finish")
    }

    fn decrypt(identity: &age::x25519::Identity, file: &[u8]) -> Result<Vec<u8>, String> {
        let d = age::Decryptor::new(file).map_err(|e| e.to_string())?;
        let mut r = d
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn the_age_crate_reads_every_size_back_byte_for_byte() {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            for piece in [1000, CHUNK, 100_000] {
                let file = encrypt(&recipient, &plain, piece);
                let mac_line = file
                    .windows(5)
                    .position(|w| w == b"\n--- ")
                    .expect("MAC line");
                let header_end = mac_line
                    + 1
                    + file[mac_line + 1..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .expect("end of header")
                    + 1;
                let chunks = len.div_ceil(CHUNK).max(1);
                assert_eq!(file.len() - header_end, 16 + len + chunks * TAG, "{len}");
                let back = decrypt(&identity, &file)
                    .unwrap_or_else(|e| panic!("{len} bytes in pieces of {piece}: {e}"));
                assert!(back == plain, "{len} bytes in pieces of {piece} differ");
            }
        }
    }

    #[test]
    fn another_identity_cannot_read_it_and_an_altered_byte_is_refused() {
        let identity = age::x25519::Identity::generate();
        let file = encrypt(&identity.to_public(), &[7u8; 3 * CHUNK], CHUNK);
        let other = age::x25519::Identity::generate();
        assert!(decrypt(&other, &file).is_err());
        for at in [30, file.len() / 2, file.len() - 1] {
            let mut altered = file.clone();
            altered[at] ^= 1;
            assert!(decrypt(&identity, &altered).is_err(), "byte {at} altered");
        }
        let truncated = &file[..file.len() - CHUNK - TAG];
        assert!(decrypt(&identity, truncated).is_err(), "last chunk removed");
    }

    #[test]
    fn each_file_has_its_own_key_and_nonce() {
        let recipient = age::x25519::Identity::generate().to_public();
        let a = encrypt(&recipient, b"same plaintext", 4);
        let b = encrypt(&recipient, b"same plaintext", 4);
        assert!(a.starts_with(b"age-encryption.org/v1\n-> X25519 "));
        assert_ne!(a, b);
        assert_ne!(a[a.len() - 30..], b[b.len() - 30..]);
    }
}
