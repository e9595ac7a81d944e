//! Tests of decoding requests and building answers, with messages built the way SCEP
//! clients build them and answers checked with OpenSSL's own CMS code.

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::nid::Nid;
use openssl::pkcs7::Pkcs7;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

use super::testutil::*;
use super::*;

const CHALLENGE: &str = "s3cret-Challenge";

fn first_request() -> (Vec<u8>, X509) {
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let csr = CsrSpec::new(key).challenge(CHALLENGE).der();
    (RequestSpec::new(csr, &signer, key).der(), signer)
}

fn decode(der: &[u8]) -> Result<PkiRequest, ScepError> {
    let (ca, key) = ca();
    decode_request(der, ca, key)
}

#[test]
fn a_first_request_decodes() {
    let (der, signer) = first_request();
    let req = decode(&der).unwrap();
    assert_eq!(req.message_type, MessageType::PkcsReq);
    assert_eq!(req.transaction_id, "7A3B9C0D1E2F");
    assert_eq!(req.sender_nonce, (1..=16).collect::<Vec<u8>>());
    assert_eq!(req.challenge.as_deref(), Some(CHALLENGE));
    assert!(req.challenge_matches(CHALLENGE));
    assert!(!req.challenge_matches("s3cret-challenge"));
    assert!(!req.challenge_matches(""));
    assert_eq!(req.digest, DigestAlgorithm::Sha256);
    assert_eq!(req.content_cipher, ContentCipher::Aes128Cbc);
    assert!(req.signer_is_self_signed);
    assert_eq!(req.signer.to_der().unwrap(), signer.to_der().unwrap());
    assert!(req.csr_key_matches_signer());
    assert!(!req.signer_issued_by(&ca().0));
    assert!(req.signer_valid_at(now()));
    assert!(!req.signer_valid_at(now() + time::Duration::hours(2)));
    let debug = format!("{req:?}");
    assert!(!debug.contains(CHALLENGE), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
}

#[test]
fn other_digests_and_ciphers_decode() {
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let csr = CsrSpec::new(key).challenge(CHALLENGE).der();
    for (digest, cipher, expected) in [
        (DigestAlgorithm::Sha1, Cipher::des_ede3_cbc(), ContentCipher::DesEde3Cbc),
        (DigestAlgorithm::Sha512, Cipher::aes_256_cbc(), ContentCipher::Aes256Cbc),
        (DigestAlgorithm::Sha384, Cipher::aes_192_cbc(), ContentCipher::Aes192Cbc),
    ] {
        let mut spec = RequestSpec::new(csr.clone(), &signer, key);
        spec.digest = digest;
        spec.cipher = cipher;
        let req = decode(&spec.der()).unwrap();
        assert_eq!(req.digest, digest);
        assert_eq!(req.content_cipher, expected);
        assert_eq!(req.challenge.as_deref(), Some(CHALLENGE));
    }
}

#[test]
fn ber_with_indefinite_lengths_decodes() {
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let csr = CsrSpec::new(key).challenge(CHALLENGE).der();
    let mut spec = RequestSpec::new(csr, &signer, key);
    for ber_envelope in [false, true] {
        spec.ber_envelope = ber_envelope;
        let der = spec.der();
        let ber = to_ber(&der, &[signer.to_der().unwrap()]);
        assert_ne!(ber, der);
        assert_eq!(&ber[..2], &[0x30, 0x80]);
        let req = decode(&ber).unwrap();
        assert_eq!(req.sender_nonce, (1..=16).collect::<Vec<u8>>());
        assert_eq!(req.transaction_id, "7A3B9C0D1E2F");
        assert_eq!(req.challenge.as_deref(), Some(CHALLENGE));
        assert_eq!(req.content_cipher, ContentCipher::Aes128Cbc);
    }
}

#[test]
fn challenge_encodings_of_every_client() {
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    for form in [
        ChallengeForm::Printable,
        ChallengeForm::Utf8,
        ChallengeForm::Bmp,
        ChallengeForm::OctetString,
    ] {
        let mut csr = CsrSpec::new(key);
        csr.challenge = Some(("pässword", form));
        if matches!(form, ChallengeForm::Printable) {
            csr.challenge = Some(("password", form));
        }
        let req = decode(&RequestSpec::new(csr.der(), &signer, key).der()).unwrap();
        let expected = if matches!(form, ChallengeForm::Printable) {
            "password"
        } else {
            "pässword"
        };
        assert_eq!(req.challenge.as_deref(), Some(expected));
    }
    // No challenge at all.
    let req = decode(&RequestSpec::new(CsrSpec::new(key).der(), &signer, key).der()).unwrap();
    assert_eq!(req.challenge, None);
    assert!(!req.challenge_matches(""));
}

#[test]
fn garbage_and_truncation_are_refused() {
    for garbage in [
        &b""[..],
        b"GET / HTTP/1.1",
        &[0x30, 0x03, 0x02, 0x01, 0x01],
        &[0xff; 64],
    ] {
        let err = decode(garbage).unwrap_err();
        assert!(err.reply_to().is_none(), "{err}");
        assert!(err.fail_info().is_none(), "{err}");
    }
    assert!(matches!(decode(b"hello"), Err(ScepError::NotSignedData { .. })));
    let (der, signer) = first_request();
    for len in 0..der.len() {
        let err = decode(&der[..len]).unwrap_err();
        assert!(
            matches!(err, ScepError::NotSignedData { .. } | ScepError::Malformed { .. }),
            "length {len}: {err}"
        );
    }
    let ber = to_ber(&der, &[signer.to_der().unwrap()]);
    for len in (0..ber.len()).step_by(7) {
        assert!(decode(&ber[..len]).is_err(), "BER length {len}");
    }
    // Trailing data after the message.
    let mut long = der.clone();
    long.push(0);
    assert!(matches!(decode(&long), Err(ScepError::Malformed { .. })));
    // Too large.
    let huge = vec![0x30; MAX_MESSAGE_SIZE + 1];
    assert!(matches!(decode(&huge), Err(ScepError::Malformed { .. })));
}

#[test]
fn a_request_for_another_ca_is_refused() {
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let mut spec = RequestSpec::new(CsrSpec::new(key).challenge(CHALLENGE).der(), &signer, key);
    spec.recipient = &other_ca().0;
    let err = decode(&spec.der()).unwrap_err();
    assert!(matches!(err, ScepError::NotForThisCa { .. }), "{err}");
    assert!(err.to_string().contains("Someone Else"), "{err}");
    assert_eq!(err.fail_info(), Some(FailInfo::BadMessageCheck));
    let to = err.reply_to().unwrap();
    assert_eq!(to.transaction_id, "7A3B9C0D1E2F");
    assert_eq!(to.sender_nonce, (1..=16).collect::<Vec<u8>>());
}

#[test]
fn tampered_signatures_are_refused() {
    let (der, _) = first_request();

    // Flip a bit in the last byte: the end of the RSA signature.
    let mut tampered = der.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let err = decode(&tampered).unwrap_err();
    assert!(matches!(err, ScepError::BadSignature { .. }), "{err}");
    assert_eq!(err.fail_info(), Some(FailInfo::BadMessageCheck));
    assert!(err.reply_to().is_some());

    // Change a byte of the signed content (inside the envelope's encrypted bytes).
    let mut tampered = der.clone();
    let middle = der.len() / 3;
    tampered[middle] ^= 0x40;
    let err = decode(&tampered).unwrap_err();
    assert!(
        matches!(err, ScepError::BadSignature { .. } | ScepError::Malformed { .. }),
        "{err}"
    );

    // Signed by one key, carrying a certificate (same name and serial) for another.
    let key = device_key();
    let impostor_key = rsa_key(2048);
    let claimed = self_signed(&impostor_key, "SCEP SIGNER");
    let spec = RequestSpec::new(CsrSpec::new(key).challenge(CHALLENGE).der(), &claimed, key);
    let der = spec.der();
    let err = decode(&der).unwrap_err();
    assert!(matches!(err, ScepError::BadSignature { .. }), "{err}");
}

#[test]
fn weak_and_broken_requests_are_refused_with_a_reply() {
    let small = rsa_key(1024);
    let signer = self_signed(&small, "SCEP SIGNER");
    let der = RequestSpec::new(CsrSpec::new(&small).challenge(CHALLENGE).der(), &signer, &small).der();
    let err = decode(&der).unwrap_err();
    assert!(matches!(err, ScepError::BadCsr { .. }), "{err}");
    assert!(err.to_string().contains("1024 bits"), "{err}");
    assert_eq!(err.fail_info(), Some(FailInfo::BadRequest));
    assert!(err.reply_to().is_some());

    // A request whose self-signature does not verify.
    let key = device_key();
    let other = rsa_key(2048);
    let signer = self_signed(key, "SCEP SIGNER");
    let mut csr = CsrSpec::new(key).challenge(CHALLENGE);
    csr.signing_key = Some(&other);
    let err = decode(&RequestSpec::new(csr.der(), &signer, key).der()).unwrap_err();
    assert!(matches!(err, ScepError::BadCsr { .. }), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");

    // Not a request at all inside the envelope.
    let err = decode(&RequestSpec::new(b"not a CSR".to_vec(), &signer, key).der()).unwrap_err();
    assert!(matches!(err, ScepError::BadCsr { .. }), "{err}");
}

#[test]
fn other_message_types_are_refused_with_a_reply() {
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let mut spec = RequestSpec::new(CsrSpec::new(key).der(), &signer, key);
    spec.message_type = "20";
    let err = decode(&spec.der()).unwrap_err();
    assert!(matches!(err, ScepError::UnsupportedMessageType { .. }), "{err}");
    assert!(err.to_string().contains("CertPoll"), "{err}");
    assert_eq!(err.fail_info(), Some(FailInfo::BadRequest));

    spec.message_type = "17";
    assert_eq!(decode(&spec.der()).unwrap().message_type, MessageType::RenewalReq);
}

#[test]
fn unsupported_ciphers_are_refused_and_single_des_is_opt_in() {
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let csr = CsrSpec::new(key).challenge(CHALLENGE).der();

    let mut spec = RequestSpec::new(csr.clone(), &signer, key);
    spec.cipher = Cipher::camellia_128_cbc();
    let err = decode(&spec.der()).unwrap_err();
    assert!(matches!(err, ScepError::UnsupportedAlgorithm { .. }), "{err}");
    assert_eq!(err.fail_info(), Some(FailInfo::BadAlg));

    super::envelope::load_legacy_provider().unwrap();
    let mut spec = RequestSpec::new(csr, &signer, key);
    spec.cipher = Cipher::des_cbc();
    let der = spec.der();
    let err = decode(&der).unwrap_err();
    assert!(matches!(err, ScepError::UnsupportedAlgorithm { .. }), "{err}");
    assert!(err.to_string().contains("DES-CBC"), "{err}");

    let (ca, ca_key) = ca();
    let options = DecodeOptions { allow_single_des: true };
    let req = decode_request_with(&der, ca, ca_key, &options).unwrap();
    assert_eq!(req.content_cipher, ContentCipher::DesCbc);
    // The answer comes back in single DES too, which the client can open.
    let issued = issue_identity(&req.csr, ca, ca_key, &IssueParams::new(now(), time::Duration::days(1))).unwrap();
    let answer = cert_rep_success(&req, &issued, ca, ca_key).unwrap();
    let certs = open_success(&answer, &req.signer, key);
    assert_eq!(certs[0].to_der().unwrap(), issued.to_der().unwrap());
}

#[test]
fn wrong_ca_key_is_the_callers_error() {
    let (der, _) = first_request();
    let (ca, _) = ca();
    let (_, other_key) = other_ca();
    let err = decode_request(&der, ca, other_key).unwrap_err();
    assert!(matches!(err, ScepError::InvalidArgument { .. }), "{err}");
}

#[test]
fn renewal_signed_by_an_issued_identity() {
    let (ca, ca_key) = ca();
    let old_key = device_key();
    let old_csr = CsrSpec::new(old_key).build();
    let identity = issue_identity(&old_csr, ca, ca_key, &IssueParams::new(now(), time::Duration::days(30))).unwrap();

    let new_key = rsa_key(2048);
    let mut spec = RequestSpec::new(CsrSpec::new(&new_key).der(), &identity, old_key);
    spec.message_type = "17";
    let req = decode(&spec.der()).unwrap();
    assert_eq!(req.message_type, MessageType::RenewalReq);
    assert!(!req.signer_is_self_signed);
    assert!(req.signer_issued_by(ca));
    assert!(!req.signer_issued_by(&other_ca().0));
    assert!(req.signer_valid_at(now() + time::Duration::days(29)));
    assert!(!req.signer_valid_at(now() + time::Duration::days(31)));
    assert!(!req.signer_valid_at(now() - time::Duration::seconds(1)));
    assert!(!req.csr_key_matches_signer());
    assert_eq!(req.challenge, None);

    // The answer is encrypted to the old identity, whose key the device still holds.
    let issued = issue_identity(&req.csr, ca, ca_key, &IssueParams::new(now(), time::Duration::days(30))).unwrap();
    let answer = cert_rep_success(&req, &issued, ca, ca_key).unwrap();
    let certs = open_success(&answer, &identity, old_key);
    assert_eq!(
        certs[0].public_key().unwrap().public_key_to_der().unwrap(),
        new_key.public_key_to_der().unwrap()
    );

    // An identity from another CA, or a certificate from this CA without clientAuth, is not
    // enough.
    let (other, other_ca_key) = other_ca();
    let foreign = issue_identity(
        &old_csr,
        other,
        other_ca_key,
        &IssueParams::new(now(), time::Duration::days(30)),
    )
    .unwrap();
    let mut spec = RequestSpec::new(CsrSpec::new(&new_key).der(), &foreign, old_key);
    spec.message_type = "17";
    assert!(!decode(&spec.der()).unwrap().signer_issued_by(ca));
}

/// Verifies a SUCCESS answer with OpenSSL (signed by the test CA), decrypts it with the
/// device's certificate and key, and returns the certificates it delivers.
fn open_success(
    answer: &[u8],
    device_cert: &X509,
    device_key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> Vec<X509> {
    let (ca, _) = ca();
    let mut cms = CmsContentInfo::from_der(answer).unwrap();
    let mut certs = Stack::new().unwrap();
    certs.push(ca.clone()).unwrap();
    let mut enveloped = Vec::new();
    cms.verify(
        Some(&certs),
        None,
        None,
        Some(&mut enveloped),
        CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .unwrap();
    let degenerate = CmsContentInfo::from_der(&enveloped)
        .unwrap()
        .decrypt(device_key, device_cert)
        .unwrap();
    let p7 = Pkcs7::from_der(&degenerate).unwrap();
    p7.signed()
        .unwrap()
        .certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_owned())
        .collect()
}

/// The SCEP attributes of an answer: (messageType, pkiStatus, failInfo, transactionID,
/// senderNonce, recipientNonce, digest OID).
fn answer_attributes(answer: &[u8]) -> (String, String, Option<String>, String, Vec<u8>, Vec<u8>, String) {
    let message = super::signed::parse(answer).unwrap();
    let text = |oid: &str| {
        message
            .attribute(oid, oid)
            .unwrap()
            .map(|e| String::from_utf8(e.contents.to_vec()).unwrap())
    };
    let bytes = |oid: &str| message.attribute(oid, oid).unwrap().unwrap().contents.to_vec();
    (
        text(oid::SCEP_MESSAGE_TYPE).unwrap(),
        text(oid::SCEP_PKI_STATUS).unwrap(),
        text(oid::SCEP_FAIL_INFO),
        text(oid::SCEP_TRANSACTION_ID).unwrap(),
        bytes(oid::SCEP_SENDER_NONCE),
        bytes(oid::SCEP_RECIPIENT_NONCE),
        message.digest_oid.clone(),
    )
}

#[test]
fn a_success_answer_delivers_the_certificate() {
    let (ca, ca_key) = ca();
    let (der, _) = first_request();
    let req = decode(&der).unwrap();
    let issued = issue_identity(
        &req.csr,
        ca,
        ca_key,
        &IssueParams::new(now(), time::Duration::days(365)),
    )
    .unwrap();
    let answer = cert_rep_success(&req, &issued, ca, ca_key).unwrap();

    let certs = open_success(&answer, &req.signer, device_key());
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().unwrap(), issued.to_der().unwrap());

    let (message_type, status, fail_info, transaction_id, sender_nonce, recipient_nonce, digest) =
        answer_attributes(&answer);
    assert_eq!(message_type, "3");
    assert_eq!(status, "0");
    assert_eq!(fail_info, None);
    assert_eq!(transaction_id, req.transaction_id);
    assert_eq!(recipient_nonce, req.sender_nonce);
    assert_eq!(sender_nonce.len(), 16);
    assert_ne!(sender_nonce, req.sender_nonce);
    assert_eq!(digest, oid::SHA256);

    // The answer carries the issued certificate first, then the CA certificate (so clients
    // can check the signature); its signer is named by the CA's issuer and serial number.
    let message = super::signed::parse(&answer).unwrap();
    let carried: Vec<Vec<u8>> = message.certificates.iter().map(|c| c.to_der().unwrap()).collect();
    assert_eq!(carried, vec![issued.to_der().unwrap(), ca.to_der().unwrap()]);
    assert_eq!(
        message.signer_certificate().unwrap().to_der().unwrap(),
        ca.to_der().unwrap()
    );

    // Another certificate than the one for this request's key is refused.
    let other_csr = CsrSpec::new(&rsa_key(2048)).build();
    let other = issue_identity(
        &other_csr,
        ca,
        ca_key,
        &IssueParams::new(now(), time::Duration::days(1)),
    )
    .unwrap();
    assert!(matches!(
        cert_rep_success(&req, &other, ca, ca_key),
        Err(ScepError::InvalidArgument { .. })
    ));
}

#[test]
fn answers_reuse_the_request_digest_and_cipher() {
    let (ca, ca_key) = ca();
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let mut spec = RequestSpec::new(CsrSpec::new(key).challenge(CHALLENGE).der(), &signer, key);
    spec.digest = DigestAlgorithm::Sha1;
    spec.cipher = Cipher::des_ede3_cbc();
    let req = decode(&spec.der()).unwrap();
    let issued = issue_identity(&req.csr, ca, ca_key, &IssueParams::new(now(), time::Duration::days(1))).unwrap();
    let answer = cert_rep_success(&req, &issued, ca, ca_key).unwrap();
    let (.., digest) = answer_attributes(&answer);
    assert_eq!(digest, oid::SHA1);
    // The envelope inside uses triple DES.
    let mut cms = CmsContentInfo::from_der(&answer).unwrap();
    let mut certs = Stack::new().unwrap();
    certs.push(ca.clone()).unwrap();
    let mut enveloped = Vec::new();
    cms.verify(
        Some(&certs),
        None,
        None,
        Some(&mut enveloped),
        CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .unwrap();
    let envelope = super::envelope::read(&enveloped).unwrap();
    assert_eq!(envelope.cipher_oid, oid::DES_EDE3_CBC);
    assert!(envelope.is_for(&signer));
}

#[test]
fn a_failure_answer_carries_the_reason() {
    let (ca, ca_key) = ca();
    let (der, _) = first_request();
    let req = decode(&der).unwrap();
    let answer = cert_rep_failure(&req, FailInfo::BadRequest, ca, ca_key).unwrap();
    let (message_type, status, fail_info, transaction_id, _, recipient_nonce, _) = answer_attributes(&answer);
    assert_eq!(message_type, "3");
    assert_eq!(status, "2");
    assert_eq!(fail_info.as_deref(), Some("2"));
    assert_eq!(transaction_id, req.transaction_id);
    assert_eq!(recipient_nonce, req.sender_nonce);
    // No content, and the signature checks out over the empty content.
    let message = super::signed::parse(&answer).unwrap();
    assert!(!message.has_content);
    assert_eq!(message.certificates.len(), 1);
    assert_eq!(
        message.signer_certificate().unwrap().to_der().unwrap(),
        ca.to_der().unwrap()
    );
    let mut cms = CmsContentInfo::from_der(&answer).unwrap();
    let mut certs = Stack::new().unwrap();
    certs.push(ca.clone()).unwrap();
    cms.verify(
        Some(&certs),
        None,
        Some(&[]),
        None,
        CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .unwrap();

    // From a decoding error's reply_to.
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let mut spec = RequestSpec::new(CsrSpec::new(key).der(), &signer, key);
    spec.recipient = &other_ca().0;
    spec.transaction_id = "tx-for-another-ca";
    let err = decode(&spec.der()).unwrap_err();
    let answer = cert_rep_failure(err.reply_to().unwrap(), err.fail_info().unwrap(), ca, ca_key).unwrap();
    let (_, status, fail_info, transaction_id, ..) = answer_attributes(&answer);
    assert_eq!(status, "2");
    assert_eq!(fail_info.as_deref(), Some("1"));
    assert_eq!(transaction_id, "tx-for-another-ca");
}

#[test]
fn get_ca_cert_answers() {
    let (ca, _) = ca();
    let (other, _) = other_ca();
    assert_eq!(ca_cert_der(ca).unwrap(), ca.to_der().unwrap());
    let p7 = Pkcs7::from_der(&ca_certs_pkcs7(&[ca, other]).unwrap()).unwrap();
    let certs: Vec<Vec<u8>> = p7
        .signed()
        .unwrap()
        .certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_der().unwrap())
        .collect();
    assert_eq!(certs, vec![ca.to_der().unwrap(), other.to_der().unwrap()]);
    assert!(matches!(ca_certs_pkcs7(&[]), Err(ScepError::InvalidArgument { .. })));
}

#[test]
fn ec_device_keys_decode() {
    // The envelope and outer signature are RSA here; only the request's key is EC.
    let rsa = device_key();
    let signer = self_signed(rsa, "SCEP SIGNER");
    let ec = ec_key(Nid::X9_62_PRIME256V1);
    let req = decode(&RequestSpec::new(CsrSpec::new(&ec).challenge(CHALLENGE).der(), &signer, rsa).der()).unwrap();
    assert!(!req.csr_key_matches_signer());
    assert_eq!(req.challenge.as_deref(), Some(CHALLENGE));
}

/// With an RA: a request encrypted to the RA (or, from a client that picked the CA, to the
/// CA) is opened; the answer is signed by the RA and carries its certificate; a request
/// encrypted to neither is refused.
#[test]
fn an_ra_opens_requests_and_signs_answers() {
    let (ca, ca_key) = ca();
    let (ra, ra_key) = new_ra(ca, ca_key, "Test SCEP RA", "Russet Test", now(), 730).unwrap();
    assert_eq!(ra.issuer_name().to_der().unwrap(), ca.subject_name().to_der().unwrap());
    assert!(ra.verify(&ca.public_key().unwrap()).unwrap(), "issued by the CA");
    assert_eq!(ra.public_key().unwrap().bits(), 2048);
    let recipients = [(&ra, &ra_key), (ca, ca_key)];
    let key = device_key();
    let signer = self_signed(key, "SCEP SIGNER");
    let csr = CsrSpec::new(key).challenge(CHALLENGE).der();
    for to in [&ra, ca] {
        let mut spec = RequestSpec::new(csr.clone(), &signer, key);
        spec.recipient = to;
        let req = decode_request_for(&spec.der(), &recipients, &DecodeOptions::default()).unwrap();
        assert_eq!(req.challenge.as_deref(), Some(CHALLENGE));
        let issued = issue_identity(
            &req.csr,
            ca,
            ca_key,
            &IssueParams::new(now(), time::Duration::days(365)),
        )
        .unwrap();
        let answer = cert_rep_success(&req, &issued, &ra, &ra_key).unwrap();
        let message = super::signed::parse(&answer).unwrap();
        assert_eq!(
            message.signer_certificate().unwrap().to_der().unwrap(),
            ra.to_der().unwrap(),
            "the RA signs the answer"
        );
        assert!(super::signed::verify(&answer, &ra).is_ok());
    }
    let (other, _) = other_ca();
    let mut spec = RequestSpec::new(csr, &signer, key);
    spec.recipient = other;
    let err = decode_request_for(&spec.der(), &recipients, &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, ScepError::NotForThisCa { .. }), "{err:?}");
    // GetCACert with an RA: RA first, then the CA.
    let p7 = ca_certs_pkcs7(&[&ra, ca]).unwrap();
    let certs = Pkcs7::from_der(&p7)
        .unwrap()
        .signed()
        .unwrap()
        .certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_der().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(certs, vec![ra.to_der().unwrap(), ca.to_der().unwrap()]);
}
