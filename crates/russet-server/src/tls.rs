//! HTTPS on Russet's own listener, with device client certificates.
//!
//! When Russet terminates TLS itself (`tls.cert` and `tls.key`), it asks every client for a
//! certificate (`tls.client_certificates`, on by default) without requiring one: a device
//! presents its MDM identity, an administrator's browser or the CLI presents nothing, and
//! both connect. Nothing is trusted at the TLS layer; the certificate a client presented is
//! handed to the MDM endpoints as a [`TlsClientCert`] request extension, and the MDM core
//! checks it like any other identity (chain to Russet's CA, clientAuth, pinned to its
//! enrollment).

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use axum_server::accept::Accept;
use axum_server::tls_openssl::{OpenSSLAcceptor, OpenSSLConfig};
use openssl::ssl::{AlpnError, SslAcceptor, SslFiletype, SslMethod, SslRef, SslVerifyMode};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use tower_http::add_extension::AddExtension;

/// The DER of the certificate the client presented in the TLS handshake.
#[derive(Clone, Debug)]
pub struct TlsClientCert(pub Arc<[u8]>);

fn alpn<'a>(_ssl: &mut SslRef, client: &'a [u8]) -> Result<&'a [u8], AlpnError> {
    openssl::ssl::select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
}

/// The TLS configuration: Mozilla's "intermediate" settings (TLS 1.2 and 1.3, which Apple's
/// devices speak), the certificate chain and key from files, HTTP/2 and HTTP/1.1, and, with
/// `client_certificates`, a request for a client certificate that any client may decline.
pub fn config(
    chain: &Path,
    key: &Path,
    client_certificates: bool,
) -> Result<OpenSSLConfig, openssl::error::ErrorStack> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
    b.set_certificate_chain_file(chain)?;
    b.set_private_key_file(key, SslFiletype::PEM)?;
    b.check_private_key()?;
    b.set_alpn_select_callback(alpn);
    if client_certificates {
        // Request, do not require, and accept whatever is presented: the MDM core decides.
        b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        // Sessions resumed without a handshake would lose the certificate; a session id
        // context is required for resumption when client certificates are requested.
        b.set_session_id_context(b"russet")?;
    }
    Ok(OpenSSLConfig::from_acceptor(Arc::new(b.build())))
}

/// Wraps axum-server's OpenSSL acceptor: after the handshake, the client's certificate (if
/// any) is added to every request of the connection as a [`TlsClientCert`].
#[derive(Clone)]
pub struct ClientCertAcceptor {
    inner: OpenSSLAcceptor,
}

impl ClientCertAcceptor {
    pub fn new(config: OpenSSLConfig) -> ClientCertAcceptor {
        ClientCertAcceptor {
            inner: OpenSSLAcceptor::new(config),
        }
    }
}

type Accepted<S> = (SslStream<TcpStream>, AddExtension<S, Option<TlsClientCert>>);

impl<S> Accept<TcpStream, S> for ClientCertAcceptor
where
    S: Send + 'static,
{
    type Stream = SslStream<TcpStream>;
    type Service = AddExtension<<OpenSSLAcceptor as Accept<TcpStream, S>>::Service, Option<TlsClientCert>>;
    type Future =
        Pin<Box<dyn Future<Output = io::Result<Accepted<<OpenSSLAcceptor as Accept<TcpStream, S>>::Service>>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            // On the server side OpenSSL keeps the client's own certificate apart from the
            // chain it sent.
            let cert = stream
                .ssl()
                .peer_certificate()
                .and_then(|c| c.to_der().ok())
                .map(|der| TlsClientCert(der.into()));
            Ok((stream, AddExtension::new(service, cert)))
        })
    }
}
