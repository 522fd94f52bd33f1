//! TLS material: a configured PEM certificate and key, or a local CA and a server
//! certificate made on first start.
//!
//! Guarantees: private keys are written with mode 0600 and never printed; the CA is
//! made once per data directory (so workstations trust it once) and the server
//! certificate is renewed from it when it nears expiry or the hostnames change.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    Io(String, String),
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("{0} does not hold a PEM {1}")]
    NotPem(String, &'static str),
}

pub struct TlsMaterial {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 fingerprint of the local CA (None for a configured certificate).
    pub ca_fingerprint: Option<String>,
    /// Whether the CA was created by this call.
    pub created_ca: bool,
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";
const SERVER_INFO: &str = "server.json";
const SERVER_DAYS: i64 = 397;
const RENEW_BEFORE_DAYS: i64 = 30;

#[derive(Serialize, Deserialize, PartialEq)]
struct ServerInfo {
    names: Vec<String>,
    not_after: i64,
}

fn io(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Io(path.display().to_string(), e.to_string())
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// Reads a configured certificate chain and key.
pub fn load_configured(cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
    let cert_pem = fs::read_to_string(cert).map_err(|e| io(cert, e))?;
    let key_pem = fs::read_to_string(key).map_err(|e| io(key, e))?;
    if !cert_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(TlsError::NotPem(cert.display().to_string(), "certificate"));
    }
    if !key_pem.contains("PRIVATE KEY-----") {
        return Err(TlsError::NotPem(key.display().to_string(), "private key"));
    }
    Ok(TlsMaterial {
        cert_pem,
        key_pem,
        ca_fingerprint: None,
        created_ca: false,
    })
}

/// The names a generated certificate covers: `localhost`, `127.0.0.1`, `::1`, plus
/// the configured hostnames, without duplicates.
fn names(hostnames: &[String]) -> Vec<String> {
    let mut out = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for h in hostnames {
        if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io(&tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "IHMS Connect local CA");
    dn.push(DnType::OrganizationName, "IHMS Connect");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    Ok(p)
}

/// Makes (if needed) and loads the local CA and a server certificate for `hostnames`.
pub fn ensure_local(data_dir: &Path, hostnames: &[String]) -> Result<TlsMaterial, TlsError> {
    let dir = tls_dir(data_dir);
    fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let (ca_cert_path, ca_key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let created_ca = !ca_cert_path.exists() || !ca_key_path.exists();
    if created_ca {
        let key = KeyPair::generate().map_err(gen_err)?;
        let ca = CertifiedIssuer::self_signed(ca_params()?, &key).map_err(gen_err)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        fs::write(&ca_cert_path, ca.pem()).map_err(|e| io(&ca_cert_path, e))?;
        // A new CA invalidates any older server certificate.
        let _ = fs::remove_file(dir.join(SERVER_INFO));
    }
    let ca_pem = fs::read_to_string(&ca_cert_path).map_err(|e| io(&ca_cert_path, e))?;
    let want = names(hostnames);
    let info: Option<ServerInfo> = fs::read(dir.join(SERVER_INFO))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let fresh = info
        .is_some_and(|i| i.names == want && i.not_after - now > RENEW_BEFORE_DAYS * 86_400)
        && dir.join(SERVER_CERT).exists()
        && dir.join(SERVER_KEY).exists();
    if !fresh {
        let ca_key_pem = fs::read_to_string(&ca_key_path).map_err(|e| io(&ca_key_path, e))?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(gen_err)?;
        // The issuer is rebuilt from the same subject and key the CA was made with.
        let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
        let mut p = CertificateParams::new(want.clone()).map_err(gen_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "IHMS Connect");
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // Strict verifiers (Python 3.13+, openssl -x509_strict) require the AKI.
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let start = OffsetDateTime::now_utc();
        p.not_before = start - Duration::days(1);
        p.not_after = start + Duration::days(SERVER_DAYS);
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = p.signed_by(&key, &issuer).map_err(gen_err)?;
        write_private(&dir.join(SERVER_KEY), &key.serialize_pem())?;
        // The chain sent to clients: server certificate, then the CA.
        let chain = format!("{}{}", cert.pem(), ca_pem);
        fs::write(dir.join(SERVER_CERT), chain).map_err(|e| io(&dir, e))?;
        let info = ServerInfo {
            names: want,
            not_after: p.not_after.unix_timestamp(),
        };
        let bytes = serde_json::to_vec(&info).map_err(|e| io(&dir, e))?;
        fs::write(dir.join(SERVER_INFO), bytes).map_err(|e| io(&dir, e))?;
    }
    let cert_pem = fs::read_to_string(dir.join(SERVER_CERT)).map_err(|e| io(&dir, e))?;
    let key_pem = fs::read_to_string(dir.join(SERVER_KEY)).map_err(|e| io(&dir, e))?;
    Ok(TlsMaterial {
        cert_pem,
        key_pem,
        ca_fingerprint: Some(fingerprint(&ca_pem)?),
        created_ca,
    })
}

/// The local CA certificate, for workstations to trust.
pub fn ca_pem(data_dir: &Path) -> Result<String, TlsError> {
    let path = tls_dir(data_dir).join(CA_CERT);
    fs::read_to_string(&path).map_err(|e| io(&path, e))
}

/// SHA-256 fingerprint of the first certificate in a PEM text, as colon-separated hex.
pub fn fingerprint(pem_text: &str) -> Result<String, TlsError> {
    let parsed =
        pem::parse(pem_text).map_err(|_| TlsError::NotPem("certificate".into(), "certificate"))?;
    let digest = crate::crypto::sha256(parsed.contents());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}
