//! Certificates the harness makes for TLS tests (rcgen, ECDSA P-256): a CA, a server certificate it signs for
//! 127.0.0.1 and localhost, and a second, unrelated CA (the "wrong CA" a client may be given).

use color_eyre::eyre::{Result, WrapErr};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use revenant::sandbox::ServerTls;

/// A CA certificate (PEM) and the issuer that signs with its key.
fn new_ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new()).wrap_err("CA params")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().wrap_err("CA key")?;
    let cert = params.self_signed(&key).wrap_err("self-signing the CA")?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A fresh CA and a server certificate for 127.0.0.1 / localhost signed by it.
pub fn server_tls() -> Result<ServerTls> {
    let (ca_pem, issuer) = new_ca("revenant test CA")?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).wrap_err("server params")?;
    params.distinguished_name.push(DnType::CommonName, "revenant test server");
    let key = KeyPair::generate().wrap_err("server key")?;
    let cert = params.signed_by(&key, &issuer).wrap_err("signing the server certificate")?;
    Ok(ServerTls { ca_pem, cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Another CA's certificate (PEM), which signed nothing the server holds.
pub fn unrelated_ca_pem() -> Result<String> {
    Ok(new_ca("some other CA")?.0)
}
