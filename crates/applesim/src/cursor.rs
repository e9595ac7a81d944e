//! Opaque, authenticated fetch/sync cursors.
//!
//! A cursor is base64 of `v1:<phase>:<server>:<log position>:<next device>:<issued ms>:<mac>`,
//! where the MAC is a truncated HMAC-SHA256 under a random key of this simulator instance,
//! so a tampered cursor, one of another MDM server or one of another simulator run is
//! refused with `INVALID_CURSOR`.

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// Which request the cursor continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A fetch with more pages to come.
    Fetching,
    /// The last page of a fetch was served: fetch again → `EXHAUSTED_CURSOR`.
    FetchDone,
    /// Returned by a sync.
    Sync,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub phase: Phase,
    pub server: u32,
    /// Position in the server's change log: sync reports changes from here on.
    pub log_pos: u64,
    /// Fetch only: the next device id to return.
    pub next_device: u32,
    /// Sim time of issue, Unix milliseconds.
    pub issued_ms: i64,
}

pub(crate) struct CursorKey([u8; 32]);

impl CursorKey {
    pub(crate) fn random() -> CursorKey {
        let mut k = [0u8; 32];
        crate::catalog::os_random(&mut k);
        CursorKey(k)
    }

    fn mac(&self, payload: &str) -> Option<String> {
        let pkey = PKey::hmac(&self.0).ok()?;
        let mut signer = Signer::new(MessageDigest::sha256(), &pkey).ok()?;
        let mac = signer.sign_oneshot_to_vec(payload.as_bytes()).ok()?;
        Some(crate::catalog::hex(&mac[..12], false))
    }

    pub(crate) fn encode(&self, c: &Cursor) -> String {
        let phase = match c.phase {
            Phase::Fetching => 'f',
            Phase::FetchDone => 'd',
            Phase::Sync => 's',
        };
        let payload = format!(
            "v1:{phase}:{}:{}:{}:{}",
            c.server, c.log_pos, c.next_device, c.issued_ms
        );
        let mac = self.mac(&payload).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(format!("{payload}:{mac}"))
    }

    /// `None` for anything not made by [`CursorKey::encode`] with this key.
    pub(crate) fn decode(&self, s: &str) -> Option<Cursor> {
        if s.len() > 1000 {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (payload, mac) = text.rsplit_once(':')?;
        let expected = self.mac(payload)?;
        if mac.len() != expected.len() || !openssl::memcmp::eq(mac.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let mut it = payload.split(':');
        if it.next()? != "v1" {
            return None;
        }
        let phase = match it.next()? {
            "f" => Phase::Fetching,
            "d" => Phase::FetchDone,
            "s" => Phase::Sync,
            _ => return None,
        };
        let server = it.next()?.parse().ok()?;
        let log_pos = it.next()?.parse().ok()?;
        let next_device = it.next()?.parse().ok()?;
        let issued_ms = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(Cursor {
            phase,
            server,
            log_pos,
            next_device,
            issued_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = CursorKey::random();
        let c = Cursor {
            phase: Phase::Fetching,
            server: 3,
            log_pos: 17,
            next_device: 99,
            issued_ms: 1_700_000_000_000,
        };
        let s = k.encode(&c);
        assert_eq!(k.decode(&s), Some(c));
        let raw = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&s).unwrap()).unwrap();
        let tampered = base64::engine::general_purpose::STANDARD.encode(raw.replace(":17:", ":18:"));
        assert_eq!(k.decode(&tampered), None);
        assert_eq!(CursorKey::random().decode(&s), None);
        assert_eq!(k.decode("garbage"), None);
        assert_eq!(k.decode(""), None);
    }
}
