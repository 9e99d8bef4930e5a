//! TLS for `mqtts://`: rustls on aws-lc-rs (the same provider the hub's rmqtt uses, so the
//! binary carries one crypto library).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A client configuration that trusts the CA in `ca_file` (`plastic certs init` writes one),
/// or the system's roots when there is none.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    format!(
                        "the CA file {} is not PEM certificates: {e}",
                        path.display()
                    )
                })?;
            if certs.is_empty() {
                return Err(format!("no certificate in the CA file {}", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no CA certificates: pass --ca FILE (or PLASTIC_CA)".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
