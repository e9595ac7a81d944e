//! A SCEP client (RFC 8894), as the device side of a `com.apple.security.scep` payload:
//! `GetCACaps`, `GetCACert`, then `PKIOperation` with a PKCSReq (challenge) or a RenewalReq
//! (signed by the current identity), and the CertRep read back.
//!
//! The envelope (PKCS#7 EnvelopedData) and the decryption of the answer are OpenSSL's; the
//! SignedData around the envelope is built here with [`super::der`], because SCEP needs
//! authenticated attributes (`messageType`, `transactionID`, `senderNonce`) that the
//! `openssl` crate cannot add. The CSR is built here too, for its `challengePassword`
//! attribute.

use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::sign::Signer;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Name, X509NameRef, X509Ref};

use super::der::{self, oid};

/// What went wrong in a SCEP exchange.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    /// The HTTP exchange failed or the server answered with an error status.
    #[error("SCEP {operation}: {message}")]
    Http {
        /// `GetCACaps`, `GetCACert` or `PKIOperation`.
        operation: &'static str,
        /// What happened.
        message: String,
    },
    /// The CA answered FAILURE.
    #[error("SCEP request refused by the CA: failInfo {fail_info}")]
    Failure {
        /// `badAlg`, `badMessageCheck`, `badRequest`, `badTime`, `badCertId` (or the raw value).
        fail_info: String,
    },
    /// The CA answered PENDING (manual approval), which this client does not poll for.
    #[error("SCEP request PENDING: manual approval is not supported by this client")]
    Pending,
    /// No GetCACert certificate has the profile's `CAFingerprint`.
    #[error("no CA certificate matches the profile's CAFingerprint {0}")]
    Fingerprint(String),
    /// A message could not be built or read.
    #[error("SCEP message: {0}")]
    Message(String),
}

impl From<openssl::error::ErrorStack> for ScepError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        ScepError::Message(format!("openssl: {e}"))
    }
}

impl From<der::DerError> for ScepError {
    fn from(e: der::DerError) -> Self {
        ScepError::Message(e.to_string())
    }
}

/// The capabilities a CA announced (`GetCACaps`), compared without case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaCaps(Vec<String>);

impl CaCaps {
    /// Parse the `GetCACaps` text: one capability per line.
    pub fn parse(text: &str) -> CaCaps {
        CaCaps(
            text.lines()
                .map(|l| l.trim().to_ascii_uppercase())
                .filter(|l| !l.is_empty())
                .collect(),
        )
    }

    fn has(&self, cap: &str) -> bool {
        self.0.iter().any(|c| c == cap)
    }

    /// `AES`: the envelope uses AES (AES-256-CBC here), else DES3.
    pub fn aes(&self) -> bool {
        self.has("AES")
    }

    /// `SHA-256`: the signature uses SHA-256, else SHA-1.
    pub fn sha256(&self) -> bool {
        self.has("SHA-256") || self.has("SHA256")
    }

    /// `POSTPKIOperation`: PKIOperation by POST, else GET with the message in the URL.
    pub fn post(&self) -> bool {
        self.has("POSTPKIOPERATION")
    }

    /// `Renewal`: RenewalReq is supported.
    pub fn renewal(&self) -> bool {
        self.has("RENEWAL")
    }

    /// The envelope's cipher.
    pub fn cipher(&self) -> Cipher {
        if self.aes() {
            Cipher::aes_256_cbc()
        } else {
            Cipher::des_ede3_cbc()
        }
    }

    /// The digest for signatures and `messageDigest`.
    pub fn digest(&self) -> Digest {
        if self.sha256() { Digest::Sha256 } else { Digest::Sha1 }
    }
}

/// The digest of a SCEP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// SHA-1 (when the CA does not announce SHA-256).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Digest {
    fn md(self) -> MessageDigest {
        match self {
            Digest::Sha1 => MessageDigest::sha1(),
            Digest::Sha256 => MessageDigest::sha256(),
        }
    }
    fn oid(self) -> &'static str {
        match self {
            Digest::Sha1 => oid::SHA1,
            Digest::Sha256 => oid::SHA256,
        }
    }
    fn signature_oid(self) -> &'static str {
        match self {
            Digest::Sha1 => oid::SHA1_WITH_RSA,
            Digest::Sha256 => oid::SHA256_WITH_RSA,
        }
    }
}

/// SCEP message types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 19: a first request, authorised by the challenge.
    PkcsReq,
    /// 17: a renewal, signed by the identity being renewed.
    RenewalReq,
    /// 3: the CA's answer.
    CertRep,
}

impl MessageType {
    /// The PrintableString value.
    pub fn code(self) -> &'static str {
        match self {
            MessageType::PkcsReq => "19",
            MessageType::RenewalReq => "17",
            MessageType::CertRep => "3",
        }
    }
}

/// The name of a failInfo value (RFC 8894 §3.2.1.4.5).
pub fn fail_info_name(v: &str) -> String {
    match v.trim() {
        "0" => "badAlg".into(),
        "1" => "badMessageCheck".into(),
        "2" => "badRequest".into(),
        "3" => "badTime".into(),
        "4" => "badCertId".into(),
        other => format!("unknown ({other})"),
    }
}

/// The CA certificates from a `GetCACert` answer: one DER certificate, or a degenerate
/// PKCS#7 SignedData carrying several (CA and RA).
pub fn parse_ca_certs(body: &[u8]) -> Result<Vec<X509>, ScepError> {
    if let Ok(c) = X509::from_der(body) {
        return Ok(vec![c]);
    }
    let p7 = Pkcs7::from_der(body)
        .map_err(|e| ScepError::Message(format!("GetCACert is neither a DER certificate nor PKCS#7: {e}")))?;
    let certs: Vec<X509> = p7
        .signed()
        .and_then(|s| s.certificates())
        .map(|s| s.iter().map(X509Ref::to_owned).collect())
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(ScepError::Message("GetCACert's PKCS#7 carries no certificate".into()));
    }
    Ok(certs)
}

/// Check the profile's `CAFingerprint` (SHA-256 for 32 bytes, else SHA-1 for 20) against
/// every certificate of GetCACert.
pub fn check_fingerprint(certs: &[X509], fingerprint: &[u8]) -> Result<(), ScepError> {
    let md = match fingerprint.len() {
        32 => MessageDigest::sha256(),
        20 => MessageDigest::sha1(),
        16 => MessageDigest::md5(),
        n => {
            return Err(ScepError::Fingerprint(format!(
                "of {n} bytes (expected 20 for SHA-1 or 32 for SHA-256)"
            )));
        }
    };
    for c in certs {
        if c.digest(md)?.as_ref() == fingerprint {
            return Ok(());
        }
    }
    Err(ScepError::Fingerprint(crate::catalog::hex(fingerprint, true)))
}

/// Which GetCACert certificate the request is encrypted to: an RA certificate (not a CA)
/// when there is one, else the first certificate.
pub fn recipient(certs: &[X509]) -> Option<&X509> {
    certs
        .iter()
        .find(|c| !is_ca(c) && c.subject_name().to_der().ok() != c.issuer_name().to_der().ok())
        .or_else(|| certs.first())
}

fn is_ca(c: &X509Ref) -> bool {
    // Self-signed certificates are taken as CAs; the crate has no BasicConstraints reader.
    matches!(
        (c.subject_name().to_der(), c.issuer_name().to_der()),
        (Ok(s), Ok(i)) if s == i
    )
}

/// An X.509 name from the SCEP payload's `Subject`: `[[["CN","x"]],[["O","y"]]]`, where each
/// type is a short name or a dotted OID.
pub fn subject_name(pairs: &[(String, String)]) -> Result<X509Name, ScepError> {
    let mut b = X509Name::builder()?;
    for (k, v) in pairs {
        b.append_entry_by_text(k, v)
            .map_err(|e| ScepError::Message(format!("subject entry {k}={v}: {e}")))?;
    }
    Ok(b.build())
}

/// A PKCS#10 request for `key` with `subject`, carrying `challengePassword` when given,
/// signed with `digest`. DER.
pub fn build_csr(
    key: &PKeyRef<Private>,
    subject: &X509NameRef,
    challenge: Option<&str>,
    digest: Digest,
) -> Result<Vec<u8>, ScepError> {
    let mut attrs = Vec::new();
    if let Some(c) = challenge {
        let value = if c.bytes().all(is_printable) {
            der::printable_string(c)
        } else {
            der::utf8_string(c)
        };
        attrs.push(der::attribute(oid::CHALLENGE_PASSWORD, value)?);
    }
    let attrs_body: Vec<u8> = {
        let mut sorted = attrs.clone();
        sorted.sort();
        sorted.concat()
    };
    let info = der::sequence(&[
        &der::small_integer(0),
        &subject.to_der()?,
        &key.public_key_to_der()?,
        &der::context(0, &attrs_body),
    ]);
    let mut signer = Signer::new(digest.md(), key)?;
    signer.update(&info)?;
    let sig = signer.sign_to_vec()?;
    Ok(der::sequence(&[
        &info,
        &der::algorithm(digest.signature_oid())?,
        &der::bit_string(&sig),
    ]))
}

fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// A self-signed certificate of the device key, what a device signs its first SCEP request
/// with. Valid from an hour ago for a day.
pub fn self_signed(key: &PKeyRef<Private>, subject: &X509NameRef) -> Result<X509, ScepError> {
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = crate::pushcert::random_serial().map_err(|e| ScepError::Message(e.to_string()))?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(subject)?;
    b.set_pubkey(key)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let nb = openssl::asn1::Asn1Time::from_unix(now - 3600)?;
    b.set_not_before(&nb)?;
    let na = openssl::asn1::Asn1Time::from_unix(now + 86_400)?;
    b.set_not_after(&na)?;
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}

/// A PKIOperation request, built.
#[derive(Debug, Clone)]
pub struct PkiMessage {
    /// The message (DER ContentInfo of SignedData).
    pub der: Vec<u8>,
    /// The transactionID sent (hex of the SHA-256 of the new public key and the nonce).
    pub transaction_id: String,
    /// The senderNonce sent.
    pub sender_nonce: [u8; 16],
}

/// Build a PKCSReq or RenewalReq: the CSR encrypted to `recipient` (EnvelopedData), signed
/// by `signer_cert`/`signer_key` with the SCEP attributes.
pub fn build_pki_message(
    message_type: MessageType,
    csr_der: &[u8],
    new_key: &PKeyRef<Private>,
    recipient: &X509Ref,
    signer_cert: &X509Ref,
    signer_key: &PKeyRef<Private>,
    caps: &CaCaps,
) -> Result<PkiMessage, ScepError> {
    let mut recipients = Stack::new()?;
    recipients.push(recipient.to_owned())?;
    let envelope = Pkcs7::encrypt(&recipients, csr_der, caps.cipher(), Pkcs7Flags::BINARY)?.to_der()?;
    let mut sender_nonce = [0u8; 16];
    crate::catalog::os_random(&mut sender_nonce);
    // RFC 8894 suggests a hash of the public key; the nonce is mixed in because devices of a
    // key pool share keys, and two requests must never share a transactionID.
    let mut material = new_key.public_key_to_der()?;
    material.extend_from_slice(&sender_nonce);
    let transaction_id = crate::catalog::hex(&hash(MessageDigest::sha256(), &material)?, true);
    let der = signed_data(
        &envelope,
        &[
            der::attribute(oid::SCEP_MESSAGE_TYPE, der::printable_string(message_type.code()))?,
            der::attribute(oid::SCEP_TRANSACTION_ID, der::printable_string(&transaction_id))?,
            der::attribute(oid::SCEP_SENDER_NONCE, der::octet_string(&sender_nonce))?,
        ],
        signer_cert,
        signer_key,
        caps.digest(),
    )?;
    Ok(PkiMessage {
        der,
        transaction_id,
        sender_nonce,
    })
}

/// A CMS SignedData (ContentInfo, DER) over `content` with the standard attributes
/// (contentType, messageDigest) plus `extra` ones, one signer, its certificate included.
pub fn signed_data(
    content: &[u8],
    extra: &[Vec<u8>],
    signer_cert: &X509Ref,
    signer_key: &PKeyRef<Private>,
    digest: Digest,
) -> Result<Vec<u8>, ScepError> {
    let md = hash(digest.md(), content)?;
    let mut attrs = vec![
        der::attribute(oid::CONTENT_TYPE, der::oid(oid::DATA)?)?,
        der::attribute(oid::MESSAGE_DIGEST, der::octet_string(&md))?,
    ];
    attrs.extend(extra.iter().cloned());
    // The signature covers the attributes encoded as a SET; they travel as [0] IMPLICIT.
    let attrs_set = der::set_of(&attrs);
    let mut signer = Signer::new(digest.md(), signer_key)?;
    signer.update(&attrs_set)?;
    let signature = signer.sign_to_vec()?;
    let mut attrs_implicit = attrs_set;
    attrs_implicit[0] = 0xa0;
    let serial = signer_cert.serial_number().to_bn()?.to_vec();
    let signer_info = der::sequence(&[
        &der::small_integer(1),
        &der::sequence(&[&signer_cert.issuer_name().to_der()?, &der::unsigned_integer(&serial)]),
        &der::algorithm(digest.oid())?,
        &attrs_implicit,
        &der::algorithm(oid::RSA_ENCRYPTION)?,
        &der::octet_string(&signature),
    ]);
    let signed = der::sequence(&[
        &der::small_integer(1),
        &der::set_of(&[der::algorithm(digest.oid())?]),
        &der::sequence(&[&der::oid(oid::DATA)?, &der::context(0, &der::octet_string(content))]),
        &der::context(0, &signer_cert.to_der()?),
        &der::set_of(&[signer_info]),
    ]);
    Ok(der::sequence(&[
        &der::oid(oid::SIGNED_DATA)?,
        &der::context(0, &signed),
    ]))
}

/// The SCEP attributes of a CertRep (or of any SCEP SignedData).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepAttributes {
    /// messageType (`3` for CertRep).
    pub message_type: Option<String>,
    /// pkiStatus: `0` SUCCESS, `2` FAILURE, `3` PENDING.
    pub pki_status: Option<String>,
    /// failInfo, for FAILURE.
    pub fail_info: Option<String>,
    /// transactionID.
    pub transaction_id: Option<String>,
    /// recipientNonce.
    pub recipient_nonce: Option<Vec<u8>>,
    /// senderNonce.
    pub sender_nonce: Option<Vec<u8>>,
}

/// Read the signed attributes of the first signer of a SignedData (ContentInfo).
pub fn read_attributes(der_bytes: &[u8]) -> Result<RepAttributes, ScepError> {
    let ci = der::parse(der_bytes)?;
    let parts = ci.children()?;
    if parts.len() < 2 || parts[0].oid()? != oid::SIGNED_DATA {
        return Err(ScepError::Message("not a SignedData".into()));
    }
    let sd = parts[1]
        .children()?
        .into_iter()
        .next()
        .ok_or_else(|| ScepError::Message("empty SignedData".into()))?;
    let fields = sd.children()?;
    let signer_infos = fields
        .last()
        .filter(|f| f.tag == der::tag::SET)
        .ok_or_else(|| ScepError::Message("SignedData without signerInfos".into()))?;
    let si = signer_infos
        .children()?
        .into_iter()
        .next()
        .ok_or_else(|| ScepError::Message("SignedData without a signer".into()))?;
    let attrs = si
        .children()?
        .into_iter()
        .find(|e| e.tag == 0xa0)
        .ok_or_else(|| ScepError::Message("the signer has no authenticated attributes".into()))?;
    let mut out = RepAttributes::default();
    for (o, v) in der::attributes(&attrs)? {
        match o.as_str() {
            oid::SCEP_MESSAGE_TYPE => out.message_type = Some(v.text()?),
            oid::SCEP_PKI_STATUS => out.pki_status = Some(v.text()?),
            oid::SCEP_FAIL_INFO => out.fail_info = Some(v.text()?),
            oid::SCEP_TRANSACTION_ID => out.transaction_id = Some(v.text()?),
            oid::SCEP_RECIPIENT_NONCE => out.recipient_nonce = Some(v.octets()?),
            oid::SCEP_SENDER_NONCE => out.sender_nonce = Some(v.octets()?),
            _ => {}
        }
    }
    Ok(out)
}

/// Read a CertRep to the request `sent`: on SUCCESS, verify the CA's signature (not the
/// chain), decrypt the envelope with the key the request was encrypted for
/// (`decrypt_cert`/`decrypt_key`, the request's signer) and return the certificate for
/// `new_key`.
pub fn read_cert_rep(
    der_bytes: &[u8],
    sent: &PkiMessage,
    ca_certs: &[X509],
    decrypt_cert: &X509Ref,
    decrypt_key: &PKeyRef<Private>,
    new_key: &PKeyRef<Private>,
) -> Result<X509, ScepError> {
    let a = read_attributes(der_bytes)?;
    if a.message_type.as_deref() != Some(MessageType::CertRep.code()) {
        return Err(ScepError::Message(format!(
            "expected a CertRep (messageType 3), got {:?}",
            a.message_type
        )));
    }
    if a.transaction_id.as_deref() != Some(sent.transaction_id.as_str()) {
        return Err(ScepError::Message(
            "the CertRep's transactionID is not the request's".into(),
        ));
    }
    if a.recipient_nonce.as_deref() != Some(&sent.sender_nonce[..]) {
        return Err(ScepError::Message(
            "the CertRep's recipientNonce is not the request's senderNonce".into(),
        ));
    }
    match a.pki_status.as_deref() {
        Some("0") => {}
        Some("2") => {
            return Err(ScepError::Failure {
                fail_info: a
                    .fail_info
                    .as_deref()
                    .map(fail_info_name)
                    .unwrap_or_else(|| "absent".into()),
            });
        }
        Some("3") => return Err(ScepError::Pending),
        other => return Err(ScepError::Message(format!("unknown pkiStatus {other:?}"))),
    }
    let p7 = Pkcs7::from_der(der_bytes)?;
    let mut extra = Stack::new()?;
    for c in ca_certs {
        extra.push(c.clone())?;
    }
    let store = X509StoreBuilder::new()?.build();
    let mut envelope = Vec::new();
    p7.verify(&extra, &store, None, Some(&mut envelope), Pkcs7Flags::NOVERIFY)
        .map_err(|e| ScepError::Message(format!("the CertRep's signature does not verify: {e}")))?;
    let inner = Pkcs7::from_der(&envelope)?
        .decrypt(decrypt_key, decrypt_cert, Pkcs7Flags::BINARY)
        .map_err(|e| ScepError::Message(format!("cannot decrypt the CertRep: {e}")))?;
    let certs = Pkcs7::from_der(&inner)?;
    let ours = new_key.public_key_to_der()?;
    certs
        .signed()
        .and_then(|s| s.certificates())
        .into_iter()
        .flat_map(|s| s.iter())
        .find(|c| c.public_key().and_then(|k| k.public_key_to_der()).ok().as_deref() == Some(&ours[..]))
        .map(X509Ref::to_owned)
        .ok_or_else(|| ScepError::Message("the CertRep carries no certificate for the device key".into()))
}

/// Whether a certificate's subject has a common name (used to pick a default subject).
pub fn common_name(c: &X509Ref) -> Option<String> {
    c.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// A request over HTTP to a SCEP URL.
pub(crate) struct ScepHttp<'a> {
    pub http: &'a reqwest::Client,
    pub url: &'a str,
}

impl ScepHttp<'_> {
    fn with_query(&self, pairs: &[(&str, &str)]) -> Result<url::Url, ScepError> {
        let mut u = url::Url::parse(self.url).map_err(|e| ScepError::Http {
            operation: "URL",
            message: format!("{}: {e}", self.url),
        })?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    async fn send(&self, op: &'static str, req: reqwest::RequestBuilder) -> Result<Vec<u8>, ScepError> {
        let http = |message: String| ScepError::Http { operation: op, message };
        let resp = req.send().await.map_err(|e| http(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| http(e.to_string()))?;
        if !status.is_success() {
            return Err(http(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        Ok(body.to_vec())
    }

    pub async fn get_ca_caps(&self) -> Result<CaCaps, ScepError> {
        let u = self.with_query(&[("operation", "GetCACaps")])?;
        let body = self.send("GetCACaps", self.http.get(u)).await?;
        Ok(CaCaps::parse(&String::from_utf8_lossy(&body)))
    }

    pub async fn get_ca_cert(&self) -> Result<Vec<X509>, ScepError> {
        let u = self.with_query(&[("operation", "GetCACert")])?;
        let body = self.send("GetCACert", self.http.get(u)).await?;
        parse_ca_certs(&body)
    }

    pub async fn pki_operation(&self, message: &[u8], post: bool) -> Result<Vec<u8>, ScepError> {
        use base64::Engine as _;
        if post {
            let u = self.with_query(&[("operation", "PKIOperation")])?;
            self.send(
                "PKIOperation",
                self.http
                    .post(u)
                    .header("content-type", "application/x-pki-message")
                    .body(message.to_vec()),
            )
            .await
        } else {
            let b64 = base64::engine::general_purpose::STANDARD.encode(message);
            // `append_pair` URL-encodes the base64 ('+', '/', '=').
            let u = self.with_query(&[("operation", "PKIOperation"), ("message", &b64)])?;
            self.send("PKIOperation", self.http.get(u)).await
        }
    }
}

/// What a SCEP enrollment produced.
pub struct Issued {
    /// The new identity certificate.
    pub cert: X509,
    /// Its key.
    pub key: PKey<Private>,
}

/// The parameters of one SCEP request.
pub(crate) struct ScepRequest<'a> {
    pub url: &'a str,
    pub subject: &'a X509NameRef,
    pub challenge: Option<&'a str>,
    pub ca_fingerprint: Option<&'a [u8]>,
    pub new_key: PKey<Private>,
    /// For a renewal: the current identity, which signs the request.
    pub renew: Option<(&'a X509Ref, &'a PKeyRef<Private>)>,
}

/// Run GetCACaps, GetCACert (with the fingerprint check) and PKIOperation.
pub(crate) async fn enroll(http: &reqwest::Client, r: ScepRequest<'_>) -> Result<Issued, ScepError> {
    let h = ScepHttp { http, url: r.url };
    let caps = h.get_ca_caps().await?;
    let ca = h.get_ca_cert().await?;
    if let Some(fp) = r.ca_fingerprint {
        check_fingerprint(&ca, fp)?;
    }
    let to = recipient(&ca).ok_or_else(|| ScepError::Message("GetCACert gave no certificate".into()))?;
    let csr = build_csr(&r.new_key, r.subject, r.challenge, caps.digest())?;
    let (mt, signer_cert, signer_key, self_cert);
    match r.renew {
        Some((c, k)) => {
            mt = MessageType::RenewalReq;
            signer_cert = c.to_owned();
            signer_key = k.to_owned();
        }
        None => {
            mt = MessageType::PkcsReq;
            self_cert = self_signed(&r.new_key, r.subject)?;
            signer_cert = self_cert;
            signer_key = r.new_key.clone();
        }
    }
    let msg = build_pki_message(mt, &csr, &r.new_key, to, &signer_cert, &signer_key, &caps)?;
    let rep = h.pki_operation(&msg.der, caps.post()).await?;
    let cert = read_cert_rep(&rep, &msg, &ca, &signer_cert, &signer_key, &r.new_key)?;
    Ok(Issued { cert, key: r.new_key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::rsa::Rsa;
    use openssl::x509::X509Req;

    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn name(cn: &str) -> X509Name {
        subject_name(&[("O".into(), "Example".into()), ("CN".into(), cn.into())]).unwrap()
    }

    fn ca() -> (X509, PKey<Private>) {
        let k = key();
        let n = name("Tiny SCEP CA");
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(&n).unwrap();
        b.set_pubkey(&k).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(10).unwrap()).unwrap();
        b.sign(&k, MessageDigest::sha256()).unwrap();
        (b.build(), k)
    }

    /// The tiny CA's side: read the request with OpenSSL, issue, and answer a CertRep
    /// built with the same SignedData writer (its attributes as RFC 8894 wants them).
    fn ca_answer(
        req: &[u8],
        ca_cert: &X509,
        ca_key: &PKey<Private>,
        fail: Option<&str>,
    ) -> (Vec<u8>, RepAttributes, Vec<u8>) {
        let attrs = read_attributes(req).unwrap();
        let p7 = Pkcs7::from_der(req).unwrap();
        let store = X509StoreBuilder::new().unwrap().build();
        let mut envelope = Vec::new();
        p7.verify(
            &Stack::new().unwrap(),
            &store,
            None,
            Some(&mut envelope),
            Pkcs7Flags::NOVERIFY,
        )
        .expect("the request's signature verifies with OpenSSL");
        let signer = p7
            .signers(&Stack::new().unwrap(), Pkcs7Flags::empty())
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .to_owned();
        let csr_der = Pkcs7::from_der(&envelope)
            .unwrap()
            .decrypt(ca_key, ca_cert, Pkcs7Flags::BINARY)
            .expect("the CA decrypts the envelope");
        let csr = X509Req::from_der(&csr_der).unwrap();
        assert!(csr.verify(&csr.public_key().unwrap()).unwrap(), "CSR self-signature");
        let nonce = attrs.sender_nonce.clone().unwrap();
        let mut extra = vec![
            der::attribute(oid::SCEP_MESSAGE_TYPE, der::printable_string("3")).unwrap(),
            der::attribute(
                oid::SCEP_TRANSACTION_ID,
                der::printable_string(attrs.transaction_id.as_deref().unwrap()),
            )
            .unwrap(),
            der::attribute(oid::SCEP_RECIPIENT_NONCE, der::octet_string(&nonce)).unwrap(),
            der::attribute(oid::SCEP_SENDER_NONCE, der::octet_string(&[9; 16])).unwrap(),
        ];
        let content = if let Some(f) = fail {
            extra.push(der::attribute(oid::SCEP_PKI_STATUS, der::printable_string("2")).unwrap());
            extra.push(der::attribute(oid::SCEP_FAIL_INFO, der::printable_string(f)).unwrap());
            Vec::new()
        } else {
            extra.push(der::attribute(oid::SCEP_PKI_STATUS, der::printable_string("0")).unwrap());
            let mut b = X509::builder().unwrap();
            b.set_version(2).unwrap();
            b.set_serial_number(&BigNum::from_u32(77).unwrap().to_asn1_integer().unwrap())
                .unwrap();
            b.set_subject_name(csr.subject_name()).unwrap();
            b.set_issuer_name(ca_cert.subject_name()).unwrap();
            b.set_pubkey(&csr.public_key().unwrap()).unwrap();
            b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
            b.set_not_after(&Asn1Time::days_from_now(10).unwrap()).unwrap();
            b.sign(ca_key, MessageDigest::sha256()).unwrap();
            let issued = b.build();
            let mut chain = Stack::new().unwrap();
            chain.push(issued).unwrap();
            let degenerate = Pkcs7::sign(ca_cert, ca_key, &chain, b"", Pkcs7Flags::empty()).unwrap();
            // A certs-only PKCS#7 is what CAs send; a signed one with the certificate
            // among its certificates reads the same way for this client.
            let mut to = Stack::new().unwrap();
            to.push(signer).unwrap();
            Pkcs7::encrypt(
                &to,
                &degenerate.to_der().unwrap(),
                Cipher::aes_256_cbc(),
                Pkcs7Flags::BINARY,
            )
            .unwrap()
            .to_der()
            .unwrap()
        };
        let rep = signed_data(&content, &extra, ca_cert, ca_key, Digest::Sha256).unwrap();
        (rep, attrs, csr_der)
    }

    #[test]
    fn caps() {
        let c = CaCaps::parse("Renewal\nSHA-256\r\nAES\nPOSTPKIOperation\n\n");
        assert!(c.aes() && c.sha256() && c.post() && c.renewal());
        assert_eq!(c.cipher().nid(), Cipher::aes_256_cbc().nid());
        let c = CaCaps::parse("DES3\nSHA-1");
        assert!(!c.aes() && !c.sha256() && !c.post());
        assert_eq!(c.cipher().nid(), Cipher::des_ede3_cbc().nid());
        assert_eq!(c.digest(), Digest::Sha1);
    }

    #[test]
    fn csr_carries_subject_and_challenge() {
        let k = key();
        let der_csr = build_csr(&k, &name("device"), Some("s3cret-challenge"), Digest::Sha256).unwrap();
        let csr = X509Req::from_der(&der_csr).unwrap();
        assert!(csr.verify(&k).unwrap());
        assert_eq!(
            csr.subject_name()
                .entries_by_nid(Nid::COMMONNAME)
                .next()
                .unwrap()
                .data()
                .to_string()
                .unwrap(),
            "device"
        );
        // The challenge is inside the request info's attributes.
        let top = der::parse(&der_csr).unwrap();
        let info = top.children().unwrap()[0];
        let attrs = info.children().unwrap()[3];
        let attrs = der::attributes(&attrs).unwrap();
        assert_eq!(attrs[0].0, oid::CHALLENGE_PASSWORD);
        assert_eq!(attrs[0].1.text().unwrap(), "s3cret-challenge");
        // No challenge: an empty [0].
        let der_csr = build_csr(&k, &name("device"), None, Digest::Sha1).unwrap();
        assert!(X509Req::from_der(&der_csr).unwrap().verify(&k).unwrap());
    }

    #[test]
    fn pkcsreq_round_trip_through_a_tiny_ca() {
        let (ca_cert, ca_key) = ca();
        let caps = CaCaps::parse("AES\nSHA-256\nPOSTPKIOperation\nRenewal");
        let dev = key();
        let subject = name("device 1");
        let selfc = self_signed(&dev, &subject).unwrap();
        let csr = build_csr(&dev, &subject, Some("pw"), caps.digest()).unwrap();
        let msg = build_pki_message(MessageType::PkcsReq, &csr, &dev, &ca_cert, &selfc, &dev, &caps).unwrap();
        let (rep, attrs, csr_seen) = ca_answer(&msg.der, &ca_cert, &ca_key, None);
        assert_eq!(attrs.message_type.as_deref(), Some("19"));
        assert_eq!(attrs.transaction_id.as_deref(), Some(msg.transaction_id.as_str()));
        assert_eq!(attrs.sender_nonce.as_deref(), Some(&msg.sender_nonce[..]));
        assert_eq!(csr_seen, csr);
        let issued = read_cert_rep(&rep, &msg, std::slice::from_ref(&ca_cert), &selfc, &dev, &dev).unwrap();
        assert_eq!(common_name(&issued).as_deref(), Some("device 1"));
        assert!(issued.verify(&ca_key).unwrap());

        // Renewal: signed by the issued identity, a new key, no challenge.
        let new = key();
        let csr = build_csr(&new, &subject, None, caps.digest()).unwrap();
        let msg = build_pki_message(MessageType::RenewalReq, &csr, &new, &ca_cert, &issued, &dev, &caps).unwrap();
        let (rep, attrs, _) = ca_answer(&msg.der, &ca_cert, &ca_key, None);
        assert_eq!(attrs.message_type.as_deref(), Some("17"));
        let renewed = read_cert_rep(&rep, &msg, std::slice::from_ref(&ca_cert), &issued, &dev, &new).unwrap();
        assert_eq!(
            renewed.public_key().unwrap().public_key_to_der().unwrap(),
            new.public_key_to_der().unwrap()
        );

        // DES3 + SHA-1 when the CA announces nothing better.
        let caps = CaCaps::parse("DES3");
        let csr = build_csr(&dev, &subject, Some("pw"), caps.digest()).unwrap();
        let msg = build_pki_message(MessageType::PkcsReq, &csr, &dev, &ca_cert, &selfc, &dev, &caps).unwrap();
        let (rep, _, _) = ca_answer(&msg.der, &ca_cert, &ca_key, None);
        read_cert_rep(&rep, &msg, std::slice::from_ref(&ca_cert), &selfc, &dev, &dev).unwrap();
    }

    #[test]
    fn failure_pending_and_mismatches() {
        let (ca_cert, ca_key) = ca();
        let caps = CaCaps::parse("AES\nSHA-256");
        let dev = key();
        let subject = name("d");
        let selfc = self_signed(&dev, &subject).unwrap();
        let csr = build_csr(&dev, &subject, Some("pw"), caps.digest()).unwrap();
        let msg = build_pki_message(MessageType::PkcsReq, &csr, &dev, &ca_cert, &selfc, &dev, &caps).unwrap();
        for (code, name) in [
            ("0", "badAlg"),
            ("1", "badMessageCheck"),
            ("2", "badRequest"),
            ("3", "badTime"),
            ("4", "badCertId"),
        ] {
            let (rep, _, _) = ca_answer(&msg.der, &ca_cert, &ca_key, Some(code));
            let e = read_cert_rep(&rep, &msg, std::slice::from_ref(&ca_cert), &selfc, &dev, &dev).unwrap_err();
            assert!(
                matches!(&e, ScepError::Failure { fail_info } if fail_info == name),
                "{e}"
            );
            assert!(e.to_string().contains(name));
        }
        // PENDING.
        let pending = signed_data(
            b"",
            &[
                der::attribute(oid::SCEP_MESSAGE_TYPE, der::printable_string("3")).unwrap(),
                der::attribute(oid::SCEP_PKI_STATUS, der::printable_string("3")).unwrap(),
                der::attribute(oid::SCEP_TRANSACTION_ID, der::printable_string(&msg.transaction_id)).unwrap(),
                der::attribute(oid::SCEP_RECIPIENT_NONCE, der::octet_string(&msg.sender_nonce)).unwrap(),
            ],
            &ca_cert,
            &ca_key,
            Digest::Sha256,
        )
        .unwrap();
        let e = read_cert_rep(&pending, &msg, std::slice::from_ref(&ca_cert), &selfc, &dev, &dev).unwrap_err();
        assert!(matches!(e, ScepError::Pending));
        // A reply to another request (nonce) is refused.
        let other = build_pki_message(MessageType::PkcsReq, &csr, &dev, &ca_cert, &selfc, &dev, &caps).unwrap();
        let (rep, _, _) = ca_answer(&other.der, &ca_cert, &ca_key, None);
        let e = read_cert_rep(&rep, &msg, std::slice::from_ref(&ca_cert), &selfc, &dev, &dev).unwrap_err();
        assert!(
            e.to_string().contains("Nonce") || e.to_string().contains("transactionID"),
            "{e}"
        );
    }

    #[test]
    fn ca_certs_and_fingerprints() {
        let (a, _) = ca();
        let (b, _) = ca();
        assert_eq!(parse_ca_certs(&a.to_der().unwrap()).unwrap().len(), 1);
        // Degenerate PKCS#7 with two certificates (what OpenSSL's crl2pkcs7 makes).
        let mut s = Stack::new().unwrap();
        s.push(b.clone()).unwrap();
        let (c, ck) = ca();
        let p7 = Pkcs7::sign(&c, &ck, &s, b"", Pkcs7Flags::empty()).unwrap();
        let certs = parse_ca_certs(&p7.to_der().unwrap()).unwrap();
        assert_eq!(certs.len(), 2);
        let fp256 = b.digest(MessageDigest::sha256()).unwrap();
        let fp1 = b.digest(MessageDigest::sha1()).unwrap();
        check_fingerprint(&certs, &fp256).unwrap();
        check_fingerprint(&certs, &fp1).unwrap();
        assert!(matches!(
            check_fingerprint(&certs, &[0u8; 32]),
            Err(ScepError::Fingerprint(_))
        ));
        assert!(check_fingerprint(&certs, &[0u8; 7]).is_err());
        assert!(parse_ca_certs(b"garbage").is_err());
    }
}
