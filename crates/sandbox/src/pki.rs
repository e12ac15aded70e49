//! Test certificates: a throwaway CA and a server certificate it signed.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::SandboxError;
use crate::options::TlsFiles;

/// A freshly generated CA certificate and a server certificate signed by it.
/// For tests and demos only: nothing here is meant to be trusted.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (PEM), for clients to trust.
    pub ca_pem: String,
    /// The server certificate and key, for [`crate::Options::tls`].
    pub server: TlsFiles,
}

impl TestPki {
    /// Generates a CA and a server certificate for `server_names`, which may
    /// be DNS names (`"localhost"`) or IP addresses (`"127.0.0.1"`, which
    /// become IP subject alternative names).
    pub fn generate(server_names: &[&str]) -> Result<TestPki, SandboxError> {
        let Some(first_name) = server_names.first() else {
            return Err(SandboxError::Certificate(
                "at least one server name is required".to_owned(),
            ));
        };

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "curfew-sandbox test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(rcgen_error)?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(rcgen_error)?;

        let names: Vec<String> = server_names.iter().map(|name| (*name).to_owned()).collect();
        let mut server_params = CertificateParams::new(names).map_err(rcgen_error)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, *first_name);
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_key = KeyPair::generate().map_err(rcgen_error)?;
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .map_err(rcgen_error)?;

        Ok(TestPki {
            ca_pem: ca.pem(),
            server: TlsFiles {
                cert_pem: server_cert.pem(),
                key_pem: server_key.serialize_pem(),
            },
        })
    }
}

fn rcgen_error(error: rcgen::Error) -> SandboxError {
    SandboxError::Certificate(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_ca_and_server_files() {
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            pki.server
                .cert_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(pki.server.key_pem.contains("PRIVATE KEY-----"));
        assert_ne!(pki.ca_pem, pki.server.cert_pem);
    }

    #[test]
    fn rejects_an_empty_name_list() {
        assert!(matches!(
            TestPki::generate(&[]),
            Err(SandboxError::Certificate(_))
        ));
    }
}
