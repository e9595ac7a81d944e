//! The SCEP service in front of Russet's device CA: GetCACaps, GetCACert and PKIOperation.
//!
//! A first enrollment (PKCSReq) must carry a one-time challenge Russet handed out in an
//! enrollment profile; the challenge is used and the certificate recorded in one
//! transaction, so a challenge serves exactly one identity. A renewal (RenewalReq, or a
//! PKCSReq signed by a current identity) needs no challenge: it is signed by a still-valid
//! identity this CA issued, and the new certificate names the one it renews, so the device
//! keeps its enrollment. A request the CA can answer but refuses gets a SCEP FAILURE; one
//! it cannot even read gets HTTP 400.
//!
//! Devices encrypt their requests to an RA certificate (RSA-2048, issued by the CA, served
//! first by GetCACert) and the RA signs the answers; the CA's RSA-3072 key only signs the
//! certificates. That divides the private-key work of an enrollment by two. The RA lasts
//! [`RA_DAYS`] days and is replaced when [`RA_RENEW_BEFORE_DAYS`] remain; the processes
//! sharing the database agree on one (the replacement is conditional), a process that meets a
//! request for an RA it does not know reads the RA again, and the previous RA (and the CA
//! itself, for clients that encrypt to it) still opens requests.

use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use russet_apple::scep::{self, FailInfo, IssueParams, MessageType};
use russet_store::mdm::{CertRecord, ChallengeRefusal};
use secrecy::{ExposeSecret, SecretString};
use time::Duration;

use crate::Core;
use crate::enroll::sha256_hex;
use crate::error::{CoreError, ErrorKind};

/// Certificates are valid from a little before issuance, for devices whose clock is behind.
const BACKDATE: Duration = Duration::minutes(5);

/// Answer to a PKIOperation: a CertRep (success or failure), sent with HTTP 200.
pub struct ScepReply {
    pub body: Vec<u8>,
    /// What happened, for the log.
    pub outcome: String,
}

fn internal(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::new(ErrorKind::Internal, "internal", format!("{what}: {e}"))
}

/// The certificate's facts as the store keeps them.
pub(crate) fn cert_record(cert: &X509, now: time::OffsetDateTime) -> Result<CertRecord, CoreError> {
    let info = russet_apple::mdm::signature::cert_sha256_hex(cert).map_err(|e| internal("certificate digest", e))?;
    let serial = cert
        .serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .map_err(|e| internal("certificate serial", e))?;
    let to_time = |t: &openssl::asn1::Asn1TimeRef| -> Result<time::OffsetDateTime, CoreError> {
        let epoch = openssl::asn1::Asn1Time::from_unix(0).map_err(|e| internal("time", e))?;
        let d = epoch.diff(t).map_err(|e| internal("time", e))?;
        time::OffsetDateTime::from_unix_timestamp(i64::from(d.days) * 86_400 + i64::from(d.secs))
            .map_err(|e| internal("time", e))
    };
    let subject = cert
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                e.data().to_string().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(CertRecord {
        sha256: info,
        serial,
        subject,
        not_before: to_time(cert.not_before())?,
        not_after: to_time(cert.not_after())?,
        issued_at: now,
        challenge_id: None,
        renewed_from: None,
        enrollment_id: None,
    })
}

/// How long an RA certificate lasts, and when it is replaced.
pub const RA_DAYS: u32 = 730;
pub const RA_RENEW_BEFORE_DAYS: i64 = 90;

/// The SCEP RA: the certificate devices encrypt to and the key that signs the answers.
pub struct ScepRa {
    pub cert: X509,
    pub key: PKey<Private>,
    pub pem: String,
    /// The RA this one replaced in this process, still accepted for requests in flight.
    pub previous: Option<(X509, PKey<Private>)>,
}

fn parse_ra(pem: &str, key: &SecretString) -> Result<(X509, PKey<Private>), CoreError> {
    let cert = X509::from_pem(pem.as_bytes()).map_err(|e| internal("stored SCEP RA certificate", e))?;
    let key =
        PKey::private_key_from_pem(key.expose_secret().as_bytes()).map_err(|e| internal("stored SCEP RA key", e))?;
    Ok((cert, key))
}

impl Core {
    /// The RA in use: cached; read from the store (`reload`, or when the cached one nears its
    /// end); made and stored when there is none or the stored one nears its end.
    pub async fn scep_ra(&self, reload: bool) -> Result<Arc<ScepRa>, CoreError> {
        let now = self.clock.now();
        let fresh = |ra: &ScepRa| {
            crate::scep::asn1_unix(ra.cert.not_after())
                .is_some_and(|end| end > (now + Duration::days(RA_RENEW_BEFORE_DAYS)).unix_timestamp())
        };
        if !reload
            && let Some(ra) = self.scep_ra.read().await.as_ref()
            && fresh(ra)
        {
            return Ok(ra.clone());
        }
        let mut slot = self.scep_ra.write().await;
        if !reload
            && let Some(ra) = slot.as_ref()
            && fresh(ra)
        {
            return Ok(ra.clone());
        }
        let ca = self.device_ca().await?;
        let stored = self.store.mdm_ra_get().await?;
        let stored_fresh = match &stored {
            Some((pem, _)) => X509::from_pem(pem.as_bytes())
                .ok()
                .and_then(|c| crate::scep::asn1_unix(c.not_after()))
                .is_some_and(|end| end > (now + Duration::days(RA_RENEW_BEFORE_DAYS)).unix_timestamp()),
            None => false,
        };
        let (pem, key) = match stored {
            Some(ra) if stored_fresh => ra,
            old => {
                let org = self.settings.organization.clone();
                let ca_for_ra = ca.clone();
                let (cert, key) = tokio::task::spawn_blocking(move || {
                    scep::new_ra(
                        &ca_for_ra.cert,
                        &ca_for_ra.key,
                        &format!("{org} SCEP RA"),
                        &org,
                        now,
                        RA_DAYS,
                    )
                })
                .await
                .map_err(|e| internal("RA key generation was interrupted", e))?
                .map_err(|e| internal("cannot make the SCEP RA", e))?;
                let pem = String::from_utf8(cert.to_pem().map_err(|e| internal("RA PEM", e))?)
                    .map_err(|e| internal("RA PEM", e))?;
                let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().map_err(|e| internal("RA key PEM", e))?)
                    .map_err(|e| internal("RA key PEM", e))?;
                let stored = self
                    .store
                    .mdm_ra_replace(
                        old.as_ref().map(|(p, _)| p.as_str()),
                        &pem,
                        &SecretString::from(key_pem),
                    )
                    .await?;
                tracing::info!("made a new SCEP RA certificate");
                stored
            }
        };
        let previous = match slot.as_ref() {
            Some(current) if current.pem != pem => Some((current.cert.clone(), current.key.clone())),
            Some(current) => current.previous.clone(),
            None => None,
        };
        let (cert, key) = parse_ra(&pem, &key)?;
        let ra = Arc::new(ScepRa {
            cert,
            key,
            pem,
            previous,
        });
        *slot = Some(ra.clone());
        Ok(ra)
    }

    /// The GetCACert answer and its content type: the RA certificate then the CA's, as a
    /// certificates-only PKCS#7.
    pub async fn scep_ca_certs(&self) -> Result<(&'static str, Vec<u8>), CoreError> {
        let ca = self.device_ca().await?;
        let ra = self.scep_ra(false).await?;
        let der = scep::ca_certs_pkcs7(&[&ra.cert, &ca.cert]).map_err(|e| internal("CA certificates", e))?;
        Ok((scep::CONTENT_TYPE_CA_RA_CERT, der))
    }

    /// SHA-256 fingerprint of the CA certificate (hex), for administrators.
    pub async fn scep_ca_fingerprint(&self) -> Result<String, CoreError> {
        let ca = self.device_ca().await?;
        Ok(hex::encode(
            ca.cert
                .digest(MessageDigest::sha256())
                .map_err(|e| internal("CA fingerprint", e))?,
        ))
    }

    /// Handles a PKIOperation message (DER).
    pub async fn scep_pki_operation(&self, message: &[u8]) -> Result<ScepReply, CoreError> {
        let ca = self.device_ca().await?;
        let options = scep::DecodeOptions {
            allow_single_des: self.settings.scep_allow_single_des,
        };
        let decode = |ra: &ScepRa| {
            let mut recipients: Vec<(&X509, &PKey<Private>)> = vec![(&ra.cert, &ra.key)];
            if let Some((cert, key)) = &ra.previous {
                recipients.push((cert, key));
            }
            // An RSA CA (made before EC CAs were the default, or chosen) still opens requests
            // encrypted to it; nothing can be encrypted to an EC CA.
            if ca.key.rsa().is_ok() {
                recipients.push((&ca.cert, &ca.key));
            }
            scep::decode_request_for(message, &recipients, &options)
        };
        let mut ra = self.scep_ra(false).await?;
        let mut decoded = decode(&ra);
        if matches!(decoded, Err(scep::ScepError::NotForThisCa { .. })) {
            // Another process may have replaced the RA: read it again.
            ra = self.scep_ra(true).await?;
            decoded = decode(&ra);
        }
        let req = match decoded {
            Ok(r) => r,
            Err(e) => {
                return match e.reply_to() {
                    Some(to) => {
                        let fail = e.fail_info().unwrap_or(FailInfo::BadRequest);
                        let body = scep::cert_rep_failure(to.clone(), fail, &ra.cert, &ra.key)
                            .map_err(|e| internal("SCEP failure answer", e))?;
                        Ok(ScepReply {
                            body,
                            outcome: format!("refused ({fail}): {e}"),
                        })
                    }
                    None => Err(CoreError::invalid("scep_unreadable", e.to_string())),
                };
            }
        };
        let now = self.clock.now();
        let fail = |info: FailInfo, why: String| -> Result<ScepReply, CoreError> {
            let body = scep::cert_rep_failure(&req, info, &ra.cert, &ra.key)
                .map_err(|e| internal("SCEP failure answer", e))?;
            Ok(ScepReply {
                body,
                outcome: format!("refused ({info}): {why}"),
            })
        };
        // A request signed by an identity this CA issued is a renewal, whatever its type.
        let renewal = !req.signer_is_self_signed && req.signer_issued_by(&ca.cert);
        if req.message_type == MessageType::RenewalReq && !renewal {
            return fail(
                FailInfo::BadCertId,
                "a renewal must be signed by an identity this CA issued".into(),
            );
        }
        if renewal && !req.signer_valid_at(now) {
            return fail(
                FailInfo::BadTime,
                "the identity being renewed has expired: the device must enroll again".into(),
            );
        }
        let issued = match scep::issue_identity(
            &req.csr,
            &ca.cert,
            &ca.key,
            &IssueParams::new(now - BACKDATE, self.settings.identity_lifetime),
        ) {
            Ok(c) => c,
            Err(e) => return fail(e.fail_info().unwrap_or(FailInfo::BadRequest), e.to_string()),
        };
        let mut record = cert_record(&issued, now)?;
        if renewal {
            let old = russet_apple::mdm::signature::cert_sha256_hex(&req.signer)
                .map_err(|e| internal("certificate digest", e))?;
            record.renewed_from = Some(old.clone());
            self.store.mdm_certificate_record(&record).await?;
            tracing::info!(serial = %record.serial, renewed_from = %old, "device identity renewed");
        } else {
            let Some(challenge) = req.challenge.as_deref() else {
                return fail(
                    FailInfo::BadRequest,
                    "no challenge password: install a current enrollment profile".into(),
                );
            };
            match self
                .store
                .scep_issue_with_challenge(&sha256_hex(challenge), &record, now)
                .await?
            {
                Ok(c) => {
                    tracing::info!(serial = %record.serial, purpose = %c.purpose, "device identity issued")
                }
                Err(refusal) => {
                    let why = match refusal {
                        ChallengeRefusal::Unknown => "unknown challenge",
                        ChallengeRefusal::Expired => "the challenge expired: download the enrollment profile again",
                        ChallengeRefusal::Used => {
                            "the challenge was already used: download the enrollment profile again"
                        }
                        ChallengeRefusal::LinkSpent => {
                            "the single-use enrollment link was already used by another device"
                        }
                    };
                    return fail(FailInfo::BadRequest, why.into());
                }
            }
        }
        let body = scep::cert_rep_success(&req, &issued, &ra.cert, &ra.key).map_err(|e| internal("SCEP answer", e))?;
        Ok(ScepReply {
            body,
            outcome: format!("issued {}", record.serial),
        })
    }
}

/// An ASN.1 time as Unix seconds.
pub(crate) fn asn1_unix(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}
