//! A test site CA and the certificates it signs (rcgen), written as PEM files: the CA's
//! certificate, and a server certificate with its key (mode 600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA: its certificate file, and what signs.
pub struct Ca {
    /// The CA certificate (PEM).
    pub cert_file: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, as files.
pub struct ServerCert {
    /// The certificate chain (PEM, the leaf).
    pub cert_file: PathBuf,
    /// Its private key (PEM, PKCS#8, mode 600).
    pub key_file: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its certificate at `DIR/NAME.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_file = dir.join(format!("{name}.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        Ca { cert_file, issuer: Issuer::new(params, key) }
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA, at
    /// `DIR/STEM.pem` and `DIR/STEM.key`.
    pub fn server(&self, dir: &Path, stem: &str, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = dir.join(format!("{stem}.pem"));
        let key_file = dir.join(format!("{stem}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        ServerCert { cert_file, key_file }
    }
}
