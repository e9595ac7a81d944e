//! The simulated "Apple iPhone Device CA": hardware identities of simulated devices.
//!
//! A real iPhone, iPad or Mac holds an identity certificate from Apple. During Setup
//! Assistant it signs its MachineInfo with it (a CMS SignedData), and the MDM server's
//! enrollment endpoint checks that signature against Apple's device CA before it serves an
//! enrollment profile. Here one self-signed root per [`AppleSim`] (RSA 2048, made on first
//! use, like the push certificate portal's CAs) issues those identities directly.
//! [`AppleSim::device_ca_root_pem`] (and `GET /abm/device-ca`) is what an MDM server under
//! test is told to trust.

use std::sync::Arc;

use openssl::nid::Nid;
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::X509;

use crate::pushcert::{Ca, Profile, issue, make_ca, pem_string, public_of, rsa_key, x509_name};
use crate::sim::{AppleSim, lock};
use crate::types::SimError;

/// Common name of the simulated device CA.
pub const DEVICE_CA_NAME: &str = "Apple iPhone Device CA";

/// How long a device identity is valid (Apple's last for many years).
const IDENTITY_YEARS: i64 = 10;

impl AppleSim {
    /// The device CA, made on first use (one RSA key generation).
    pub(crate) fn device_ca(&self) -> Result<Arc<Ca>, SimError> {
        let mut slot = lock(&self.inner.device_ca);
        if let Some(ca) = slot.as_ref() {
            return Ok(ca.clone());
        }
        let ca = Arc::new(make_ca(
            &[
                (Nid::COUNTRYNAME, "US"),
                (Nid::ORGANIZATIONNAME, "Apple Inc."),
                (Nid::ORGANIZATIONALUNITNAME, "Apple iPhone (simulated by applesim)"),
                (Nid::COMMONNAME, DEVICE_CA_NAME),
            ],
            None,
            rsa_key(2048)?,
            self.inner.clock.now().unix_timestamp(),
        )?);
        *slot = Some(ca.clone());
        Ok(ca)
    }

    /// The root of simulated device identities (PEM): the certificate an MDM server must
    /// trust to accept the MachineInfo of this simulator's devices. The first call makes the
    /// key (a fraction of a second). Empty (with an error logged) only if OpenSSL failed.
    pub fn device_ca_root_pem(&self) -> String {
        self.device_ca()
            .and_then(|ca| pem_string(&ca.cert))
            .unwrap_or_else(|e| {
                tracing::error!("device_ca_root_pem: {e}");
                String::new()
            })
    }

    /// A device identity certificate for `key`, issued by the device CA: subject
    /// `C=US, ST=California, L=Cupertino, O=Apple Inc., OU=<unit>, serialNumber=<serial>,
    /// CN=<udid>`, key usage digitalSignature and keyEncipherment, valid from a day before
    /// the simulated clock's now for ten years.
    pub fn issue_device_identity(
        &self,
        udid: &str,
        serial: &str,
        unit: &str,
        key: &PKeyRef<Private>,
    ) -> Result<X509, SimError> {
        let ca = self.device_ca()?;
        let name = x509_name(&[
            (Nid::COUNTRYNAME, "US"),
            (Nid::STATEORPROVINCENAME, "California"),
            (Nid::LOCALITYNAME, "Cupertino"),
            (Nid::ORGANIZATIONNAME, "Apple Inc."),
            (Nid::ORGANIZATIONALUNITNAME, unit),
            (Nid::SERIALNUMBER, serial),
            (Nid::COMMONNAME, udid),
        ])?;
        let now = self.inner.clock.now().unix_timestamp();
        let (cert, _) = issue(
            &name,
            &*public_of(key)?,
            Some(&ca),
            None,
            now - 86_400,
            now + IDENTITY_YEARS * 365 * 86_400,
            Profile::DeviceIdentity,
        )?;
        Ok(cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509StoreContext, X509VerifyResult};

    #[test]
    fn identities_chain_to_the_root() {
        let sim = AppleSim::new();
        let pem = sim.device_ca_root_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(pem, sim.device_ca_root_pem(), "one root per simulator");
        let root = X509::from_pem(pem.as_bytes()).unwrap();
        let key = rsa_key(2048).unwrap();
        let cert = sim
            .issue_device_identity("00008120-001A2B3C4D5E6F7A", "F9GZK2ABCD", "iPhone", &key)
            .unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(root).unwrap();
        let store = store.build();
        let chain = openssl::stack::Stack::new().unwrap();
        let mut ctx = X509StoreContext::new().unwrap();
        let ok = ctx
            .init(&store, &cert, &chain, |c| {
                c.verify_cert()?;
                Ok(c.error())
            })
            .unwrap();
        assert_eq!(ok, X509VerifyResult::OK);
        let cn = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next().unwrap();
        assert_eq!(cn.data().to_string().unwrap(), "00008120-001A2B3C4D5E6F7A");
        assert!(
            AppleSim::new().device_ca_root_pem() != pem,
            "another simulator, another root"
        );
    }
}
