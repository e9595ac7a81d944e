//! The SCEP service in front of Russet's device CA: GetCACaps, GetCACert and PKIOperation.
//!
//! A first enrollment (PKCSReq) must carry a one-time challenge Russet handed out in an
//! enrollment profile; the challenge is used and the certificate recorded in one
//! transaction, so a challenge serves exactly one identity. A renewal (RenewalReq, or a
//! PKCSReq signed by a current identity) needs no challenge: it is signed by a still-valid
//! identity this CA issued, and the new certificate names the one it renews, so the device
//! keeps its enrollment. A request the CA can answer but refuses gets a SCEP FAILURE; one
//! it cannot even read gets HTTP 400.

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use russet_apple::scep::{self, FailInfo, IssueParams, MessageType};
use russet_store::mdm::{CertRecord, ChallengeRefusal};
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

impl Core {
    /// The GetCACert answer: the CA certificate, DER.
    pub async fn scep_ca_cert(&self) -> Result<Vec<u8>, CoreError> {
        let ca = self.device_ca().await?;
        scep::ca_cert_der(&ca.cert).map_err(|e| internal("CA certificate", e))
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
        let req = match scep::decode_request_with(message, &ca.cert, &ca.key, &options) {
            Ok(r) => r,
            Err(e) => {
                return match e.reply_to() {
                    Some(to) => {
                        let fail = e.fail_info().unwrap_or(FailInfo::BadRequest);
                        let body = scep::cert_rep_failure(to.clone(), fail, &ca.cert, &ca.key)
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
            let body = scep::cert_rep_failure(&req, info, &ca.cert, &ca.key)
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
        let body = scep::cert_rep_success(&req, &issued, &ca.cert, &ca.key).map_err(|e| internal("SCEP answer", e))?;
        Ok(ScepReply {
            body,
            outcome: format!("issued {}", record.serial),
        })
    }
}
