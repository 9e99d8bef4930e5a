//! `plastic certs init`: a local CA and a server certificate it signs, for the hub's TLS.
//!
//! A fleet on a LAN has no public name a public CA would certify; a private CA whose
//! certificate is copied to every client (and board) is the usual answer. The CA key never
//! leaves the machine that ran `certs init`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("`{0}` is neither a host name nor an IP address")]
    BadName(String),
    #[error("generating: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The files `init` writes, in `dir`.
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub hub_cert: PathBuf,
    pub hub_key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            hub_cert: dir.join("hub.pem"),
            hub_key: dir.join("hub.key"),
        }
    }
}

/// Makes a CA (10 years) and a hub certificate (2 years) for `names` plus localhost and
/// 127.0.0.1. Keys are ECDSA P-256, written readable by their owner only.
pub fn init(dir: &Path, names: &[String], force: bool) -> Result<CertFiles, CertsError> {
    let files = CertFiles::in_dir(dir);
    if !force {
        for path in [
            &files.ca_cert,
            &files.ca_key,
            &files.hub_cert,
            &files.hub_key,
        ] {
            if path.exists() {
                return Err(CertsError::Exists(path.clone()));
            }
        }
    }
    let mut sans = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress([127, 0, 0, 1].into()),
    ];
    for name in names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) if is_host_name(name) => SanType::DnsName(
                name.as_str()
                    .try_into()
                    .map_err(|_| CertsError::BadName(name.clone()))?,
            ),
            Err(_) => return Err(CertsError::BadName(name.clone())),
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name = dn("plastic local CA");
    ca.not_before = now - time::Duration::minutes(5);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key)?;

    let hub_key = KeyPair::generate()?;
    let mut hub = CertificateParams::default();
    hub.subject_alt_names = sans;
    hub.distinguished_name = dn("plastic hub");
    hub.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    hub.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    hub.not_before = now - time::Duration::minutes(5);
    hub.not_after = now + time::Duration::days(730);
    let hub_cert = hub.signed_by(&hub_key, &ca_cert, &ca_key)?;

    std::fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let write = |path: &PathBuf, text: String, private: bool| {
        let result = if private {
            crate::users::write_private(path, text.as_bytes())
        } else {
            std::fs::write(path, text)
        };
        result.map_err(|source| CertsError::Write {
            path: path.clone(),
            source,
        })
    };
    write(&files.ca_cert, ca_cert.pem(), false)?;
    write(&files.ca_key, ca_key.serialize_pem(), true)?;
    write(&files.hub_cert, hub_cert.pem(), false)?;
    write(&files.hub_key, hub_key.serialize_pem(), true)?;
    Ok(files)
}

/// Letters, digits and `-` in dot-separated labels (a leading `*.` for a wildcard).
fn is_host_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_a_hub_certificate_and_refuses_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("plastic-certs-{}", std::process::id()));
        let files = init(&dir, &["hub.local".into(), "10.0.0.5".into()], false).unwrap();
        let hub = std::fs::read_to_string(&files.hub_cert).unwrap();
        assert!(hub.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = std::fs::read_to_string(&files.hub_key).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        assert!(matches!(init(&dir, &[], false), Err(CertsError::Exists(_))));
        assert!(init(&dir, &["bad name!".into()], true).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
