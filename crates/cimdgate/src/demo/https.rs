//! The demo's HTTPS host: a throw-away certificate authority (rcgen on aws-lc-rs) and an
//! axum-server + rustls listener on `127.0.0.1:0` presenting a leaf certificate for the demo
//! client's host name. The server trusts the CA only through the demo config's
//! `fetch.extra_ca_file`; nothing is installed system-wide, and both vanish with the process.
//!
//! (The test-support crate has the same fixture for tests; the shipped binary cannot depend on
//! a test-only crate, and this is the 80-line subset the demo needs.)

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority that lives as long as the demo.
pub struct DemoCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl DemoCa {
    /// A fresh self-signed CA (ECDSA P-256).
    pub fn new() -> Result<Self, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "cimdgate demo CA (throw-away)");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(DemoCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM), for `fetch.extra_ca_file`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn issue(&self, name: &str) -> Result<(CertificateDer<'static>, Vec<u8>), String> {
        let mut params =
            CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| e.to_string())?;
        Ok((cert.der().clone(), key.serialize_der()))
    }
}

/// A running HTTPS host; stops when dropped.
pub struct HttpsHost {
    addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
}

impl HttpsHost {
    /// Serve `router` over TLS for `name` on `127.0.0.1:0`.
    pub async fn start(ca: &DemoCa, name: &str, router: axum::Router) -> Result<Self, String> {
        let (leaf, key) = ca.issue(name)?;
        let ca_der =
            CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).map_err(|e| e.to_string())?;
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf, ca_der],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(|e| e.to_string())?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let handle = axum_server::Handle::new();
        let server = axum_server::tls_rustls::from_tcp_rustls(
            listener,
            RustlsConfig::from_config(Arc::new(tls)),
        )
        .map_err(|e| e.to_string())?
        .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(router.into_make_service()).await;
        });
        handle
            .listening()
            .await
            .ok_or_else(|| "the HTTPS host did not start".to_owned())?;
        Ok(HttpsHost { addr, handle })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for HttpsHost {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
