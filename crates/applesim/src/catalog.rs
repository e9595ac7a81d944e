//! Realistic device models, descriptions, colours and serial numbers, and a small PRNG.

use crate::types::DeviceFamily;

/// SplitMix64: fast, good enough for test data, seeded from the OS.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_os() -> Rng {
        Rng(getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15))
    }

    /// A generator that always gives the same sequence for the same seed.
    pub(crate) fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Random bytes from the OS (for secrets: credentials, session tokens, cursor keys).
pub(crate) fn os_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // Extremely unlikely; fall back to a time-seeded PRNG so the simulator keeps working.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let mut r = Rng(seed);
        for b in buf.iter_mut() {
            *b = r.next_u64() as u8;
        }
    }
}

/// `n` random bytes as lowercase or uppercase hex.
pub(crate) fn random_hex(n: usize, upper: bool) -> String {
    let mut b = vec![0u8; n];
    os_random(&mut b);
    hex(&b, upper)
}

pub(crate) fn hex(b: &[u8], upper: bool) -> String {
    const L: &[u8; 16] = b"0123456789abcdef";
    const U: &[u8; 16] = b"0123456789ABCDEF";
    let t = if upper { U } else { L };
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(t[(x >> 4) as usize] as char);
        s.push(t[(x & 15) as usize] as char);
    }
    s
}

/// One entry of the model catalogue.
pub(crate) struct Model {
    pub family: DeviceFamily,
    pub model: &'static str,
    /// Description with `{C}` where the colour goes.
    pub description: &'static str,
    pub colors: &'static [&'static str],
    /// Pre-2021 12-character serial (`C02XK1JHJGH5`) rather than a 10-character randomised one.
    pub legacy_serial: bool,
}

pub(crate) const MODELS: &[Model] = &[
    Model {
        family: DeviceFamily::Mac,
        model: "MacBook Pro",
        description: "MBP 14.2 {C}/M3/16GB/512GB",
        colors: &["SPACE GRAY", "SILVER"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "MacBook Pro",
        description: "MBP 16.2 {C}/M3 MAX/36GB/1TB",
        colors: &["SPACE BLACK", "SILVER"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "MacBook Pro",
        description: "MBP 13.3 {C}/2.0GHZ/8GB/256GB-USA",
        colors: &["SPACE GRAY", "SILVER"],
        legacy_serial: true,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "MacBook Air",
        description: "MBA 13.6 {C}/M2/8GB/256GB",
        colors: &["MIDNIGHT", "STARLIGHT", "SPACE GRAY", "SILVER"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "MacBook Air",
        description: "MBA 15.3 {C}/M3/16GB/512GB",
        colors: &["MIDNIGHT", "STARLIGHT"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "MacBook Air",
        description: "MBA 13.3 {C}/1.6GHZ/8GB/128GB",
        colors: &["GOLD", "SPACE GRAY", "SILVER"],
        legacy_serial: true,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "iMac",
        description: "IMAC 24 {C}/M3/8GB/256GB",
        colors: &["BLUE", "GREEN", "PINK", "SILVER", "YELLOW", "ORANGE", "PURPLE"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "iMac",
        description: "IMAC 27 {C}/3.1GHZ 6C/8GB/256GB",
        colors: &["SILVER"],
        legacy_serial: true,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "Mac mini",
        description: "MAC MINI {C}/M2/8GB/256GB",
        colors: &["SILVER"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::Mac,
        model: "Mac mini",
        description: "MAC MINI {C}/3.6GHZ QC/8GB/256GB",
        colors: &["SPACE GRAY"],
        legacy_serial: true,
    },
    Model {
        family: DeviceFamily::IPhone,
        model: "iPhone 15",
        description: "IPHONE 15 {C} 128GB-USA",
        colors: &["BLACK", "BLUE", "GREEN", "YELLOW", "PINK"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::IPhone,
        model: "iPhone 15 Pro",
        description: "IPHONE 15 PRO {C} 256GB-USA",
        colors: &["BLACK TITANIUM", "WHITE TITANIUM", "BLUE TITANIUM", "NATURAL TITANIUM"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::IPhone,
        model: "iPhone 14",
        description: "IPHONE 14 {C} 128GB-USA",
        colors: &["MIDNIGHT", "STARLIGHT", "BLUE", "PURPLE", "(PRODUCT)RED"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::IPhone,
        model: "iPhone SE (3rd generation)",
        description: "IPHONE SE {C} 64GB-USA",
        colors: &["MIDNIGHT", "STARLIGHT", "(PRODUCT)RED"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::IPad,
        model: "iPad Air (5th generation)",
        description: "IPAD AIR WI-FI 64GB {C}",
        colors: &["SPACE GRAY", "STARLIGHT", "PINK", "PURPLE", "BLUE"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::IPad,
        model: "iPad (10th generation)",
        description: "IPAD WI-FI 64GB {C}",
        colors: &["BLUE", "PINK", "YELLOW", "SILVER"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::IPad,
        model: "iPad Pro 11-inch (M4)",
        description: "IPAD PRO 11 WI-FI 256GB {C}",
        colors: &["SPACE BLACK", "SILVER"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::AppleTV,
        model: "Apple TV 4K",
        description: "APPLE TV 4K WI-FI 64GB {C}",
        colors: &["BLACK"],
        legacy_serial: false,
    },
    Model {
        family: DeviceFamily::Vision,
        model: "Apple Vision Pro",
        description: "APPLE VISION PRO 256GB {C}",
        colors: &["SILVER"],
        legacy_serial: false,
    },
];

/// Pick a catalogue entry (its index in [`MODELS`]) for the spec.
pub(crate) fn pick_model(rng: &mut Rng, family: Option<DeviceFamily>) -> usize {
    let family = family.unwrap_or_else(|| match rng.below(100) {
        0..45 => DeviceFamily::Mac,
        45..75 => DeviceFamily::IPhone,
        75..95 => DeviceFamily::IPad,
        95..98 => DeviceFamily::AppleTV,
        _ => DeviceFamily::Vision,
    });
    let count = MODELS.iter().filter(|m| m.family == family).count() as u64;
    let k = rng.below(count) as usize;
    MODELS
        .iter()
        .enumerate()
        .filter(|(_, m)| m.family == family)
        .nth(k)
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Characters Apple uses in serial numbers (no vowels O and I, to avoid 0/1 confusion).
const SERIAL_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Characters of randomised (2021+) serials: no vowels at all.
const RANDOM_SERIAL_CHARS: &[u8] = b"0123456789BCDFGHJKLMNPQRTVWXYZ";
const PLANTS: &[&str] = &["C02", "C07", "C17", "C1M", "D25", "F5K", "FVF", "W80", "G8W", "DMP"];
const YEAR_CHARS: &[u8] = b"CDFGHJKLMNPQRSTVWXY";
const WEEK_CHARS: &[u8] = b"123456789CDFGHJKLMNPQRTVWXY";
const MODEL_CODES: &[&str] = &["GH5", "DHJ", "Q6L", "Q05", "MD6", "HV2", "JG5", "L40", "P3Y", "DVH"];

/// A serial number for the model: 12 characters (`C02XK1JHJGH5`) or 10 (`H4TKQ2X9LP`).
pub(crate) fn serial_for(rng: &mut Rng, model: &Model) -> [u8; 12] {
    let mut s = [0u8; 12];
    if model.legacy_serial {
        // plant (3) + year (1) + week (1) + unique (3) + model code (4)
        let plant = PLANTS[rng.below(PLANTS.len() as u64) as usize].as_bytes();
        s[..3].copy_from_slice(plant);
        s[3] = YEAR_CHARS[rng.below(YEAR_CHARS.len() as u64) as usize];
        s[4] = WEEK_CHARS[rng.below(WEEK_CHARS.len() as u64) as usize];
        for c in s.iter_mut().take(8).skip(5) {
            *c = SERIAL_CHARS[rng.below(SERIAL_CHARS.len() as u64) as usize];
        }
        s[8] = SERIAL_CHARS[rng.below(SERIAL_CHARS.len() as u64) as usize];
        let code = MODEL_CODES[rng.below(MODEL_CODES.len() as u64) as usize].as_bytes();
        s[9..12].copy_from_slice(code);
    } else {
        for c in s.iter_mut().take(10) {
            *c = RANDOM_SERIAL_CHARS[rng.below(RANDOM_SERIAL_CHARS.len() as u64) as usize];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_shapes() {
        let mut rng = Rng::from_os();
        let legacy = MODELS.iter().find(|m| m.legacy_serial).unwrap();
        let modern = MODELS.iter().find(|m| !m.legacy_serial).unwrap();
        for _ in 0..100 {
            let s = serial_for(&mut rng, legacy);
            assert!(s.iter().all(|c| c.is_ascii_alphanumeric()), "{s:?}");
            let s = serial_for(&mut rng, modern);
            assert!(s[..10].iter().all(|c| c.is_ascii_alphanumeric()));
            assert_eq!(&s[10..], &[0, 0]);
        }
    }

    #[test]
    fn mix_covers_all_families() {
        let mut rng = Rng::from_os();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            seen.insert(MODELS[pick_model(&mut rng, None)].family);
        }
        assert_eq!(seen.len(), 5);
        for _ in 0..50 {
            assert_eq!(
                MODELS[pick_model(&mut rng, Some(DeviceFamily::IPad))].family,
                DeviceFamily::IPad
            );
        }
    }
}
