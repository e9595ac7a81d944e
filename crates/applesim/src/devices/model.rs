//! What a simulated device is: kind, model identifier, serial number, UDID, OS, radios.

use crate::catalog::{Rng, hex, os_random};

/// The kinds of simulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    /// An iPhone (iOS; IMEI/MEID, battery, unlock token).
    IPhone,
    /// An iPad (iPadOS; Wi-Fi only, battery, unlock token).
    IPad,
    /// A Mac (macOS; no battery on desktops, no unlock token).
    Mac,
}

impl DeviceKind {
    /// `iphone`, `ipad` or `mac`, as in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::IPhone => "iphone",
            DeviceKind::IPad => "ipad",
            DeviceKind::Mac => "mac",
        }
    }

    /// Parse `iphone`, `ipad` or `mac` (any case).
    pub fn parse(s: &str) -> Option<DeviceKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "iphone" => Some(DeviceKind::IPhone),
            "ipad" => Some(DeviceKind::IPad),
            "mac" | "macos" => Some(DeviceKind::Mac),
            _ => None,
        }
    }

    /// iOS and iPadOS devices (the "iOS" side of Apple's schemas).
    pub fn is_ios(self) -> bool {
        !matches!(self, DeviceKind::Mac)
    }
}

struct ModelSpec {
    kind: DeviceKind,
    /// Model identifier (`ProductName` on iOS, `Model` and `ProductName` on macOS).
    identifier: &'static str,
    /// Marketing name, for the device name.
    marketing: &'static str,
    /// `ModelName`.
    model_name: &'static str,
    /// A part number (`ModelNumber`, and `Model` on iOS without the region).
    part: &'static str,
    /// Chip ID in the UDID of iOS devices (`0000XXXX-…`).
    chip: &'static str,
    capacities: &'static [f64],
    battery: bool,
}

const MODELS: &[ModelSpec] = &[
    ModelSpec {
        kind: DeviceKind::IPhone,
        identifier: "iPhone15,2",
        marketing: "iPhone 14 Pro",
        model_name: "iPhone",
        part: "MQ0G3",
        chip: "8120",
        capacities: &[128.0, 256.0, 512.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPhone,
        identifier: "iPhone15,3",
        marketing: "iPhone 14 Pro Max",
        model_name: "iPhone",
        part: "MQ8T3",
        chip: "8120",
        capacities: &[128.0, 256.0, 512.0, 1024.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPhone,
        identifier: "iPhone16,1",
        marketing: "iPhone 15 Pro",
        model_name: "iPhone",
        part: "MTUV3",
        chip: "8130",
        capacities: &[128.0, 256.0, 512.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPhone,
        identifier: "iPhone15,4",
        marketing: "iPhone 15",
        model_name: "iPhone",
        part: "MTLX3",
        chip: "8120",
        capacities: &[128.0, 256.0, 512.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPhone,
        identifier: "iPhone14,7",
        marketing: "iPhone 14",
        model_name: "iPhone",
        part: "MPUF3",
        chip: "8110",
        capacities: &[128.0, 256.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPhone,
        identifier: "iPhone14,6",
        marketing: "iPhone SE (3rd generation)",
        model_name: "iPhone",
        part: "MMXH3",
        chip: "8110",
        capacities: &[64.0, 128.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPhone,
        identifier: "iPhone17,3",
        marketing: "iPhone 16",
        model_name: "iPhone",
        part: "MYE73",
        chip: "8140",
        capacities: &[128.0, 256.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPad,
        identifier: "iPad13,18",
        marketing: "iPad (10th generation)",
        model_name: "iPad",
        part: "MPQ03",
        chip: "8101",
        capacities: &[64.0, 256.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPad,
        identifier: "iPad14,3",
        marketing: "iPad Pro 11-inch (4th generation)",
        model_name: "iPad",
        part: "MNXD3",
        chip: "8112",
        capacities: &[128.0, 256.0, 512.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPad,
        identifier: "iPad13,16",
        marketing: "iPad Air (5th generation)",
        model_name: "iPad",
        part: "MM9C3",
        chip: "8103",
        capacities: &[64.0, 256.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::IPad,
        identifier: "iPad16,3",
        marketing: "iPad Pro 11-inch (M4)",
        model_name: "iPad",
        part: "MVV83",
        chip: "8132",
        capacities: &[256.0, 512.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::Mac,
        identifier: "Mac14,2",
        marketing: "MacBook Air",
        model_name: "MacBook Air",
        part: "MLY33",
        chip: "",
        capacities: &[256.0, 512.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::Mac,
        identifier: "Mac14,7",
        marketing: "MacBook Pro",
        model_name: "MacBook Pro",
        part: "MNEH3",
        chip: "",
        capacities: &[256.0, 512.0, 1000.0],
        battery: true,
    },
    ModelSpec {
        kind: DeviceKind::Mac,
        identifier: "Mac14,3",
        marketing: "Mac mini",
        model_name: "Mac mini",
        part: "MMFJ3",
        chip: "",
        capacities: &[256.0, 512.0],
        battery: false,
    },
    ModelSpec {
        kind: DeviceKind::Mac,
        identifier: "Mac15,4",
        marketing: "iMac",
        model_name: "iMac",
        part: "MQR93",
        chip: "",
        capacities: &[256.0, 512.0],
        battery: false,
    },
];

/// (OS version, build version) per platform.
const IOS_VERSIONS: &[(&str, &str)] = &[("18.1", "22B83"), ("18.0.1", "22A3370"), ("17.6.1", "21G93")];
const MACOS_VERSIONS: &[(&str, &str)] = &[("15.1", "24B83"), ("15.0.1", "24A348"), ("14.7.1", "23H222")];
const OWNERS: &[&str] = &[
    "Ava", "Noah", "Mia", "Liam", "Zoe", "Ethan", "Chloé", "Lucas", "Ines", "Omar", "Yuki", "Sam",
];
/// Characters of randomised (2021+) serial numbers: no vowels.
const SERIAL_CHARS: &[u8] = b"0123456789BCDFGHJKLMNPQRTVWXYZ";

/// The fixed facts of a simulated device (what Authenticate and DeviceInformation report).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// iPhone, iPad or Mac.
    pub kind: DeviceKind,
    /// `00008120-001A2B3C4D5E6F7A` on iOS/iPadOS, an uppercase UUID on macOS.
    pub udid: String,
    /// A 10-character randomised serial number.
    pub serial_number: String,
    /// `Model`: the part number on iOS (`MQ0G3`), the model identifier on macOS (`Mac14,2`).
    pub model: String,
    /// `ModelName`: `iPhone`, `iPad`, `MacBook Air`, …
    pub model_name: String,
    /// `ProductName`: the model identifier (`iPhone15,2`, `iPad13,18`, `Mac14,2`).
    pub product_name: String,
    /// `ModelNumber`: part number with region (`MQ0G3LL/A`).
    pub model_number: String,
    /// Marketing name (`iPhone 14 Pro`).
    pub marketing_name: String,
    /// `OSVersion`.
    pub os_version: String,
    /// `BuildVersion`.
    pub build_version: String,
    /// The name the device starts with (`Ava's iPhone`).
    pub initial_name: String,
    /// `IMEI` (phones), e.g. `35 209900 176148 1`.
    pub imei: Option<String>,
    /// `MEID` (phones): 14 hex digits.
    pub meid: Option<String>,
    /// `WiFiMAC`.
    pub wifi_mac: String,
    /// `BluetoothMAC`.
    pub bluetooth_mac: String,
    /// `EthernetMAC` (desktop Macs).
    pub ethernet_mac: Option<String>,
    /// `DeviceCapacity` in GB.
    pub capacity_gb: f64,
    /// `AvailableDeviceCapacity` in GB.
    pub available_gb: f64,
    /// `BatteryLevel` (0–1) when the device has a battery.
    pub battery_level: Option<f64>,
}

fn mac_address(rng: &mut Rng) -> String {
    // Apple OUIs seen on real devices.
    const OUIS: &[[u8; 3]] = &[
        [0xa4, 0x83, 0xe7],
        [0xf0, 0x18, 0x98],
        [0x3c, 0x22, 0xfb],
        [0x8c, 0x85, 0x90],
    ];
    let oui = OUIS[rng.below(OUIS.len() as u64) as usize];
    let tail = rng.next_u64().to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        oui[0], oui[1], oui[2], tail[0], tail[1], tail[2]
    )
}

/// A 15-digit IMEI with its Luhn check digit, spaced as Apple reports it.
pub(crate) fn imei(rng: &mut Rng) -> String {
    let mut d: Vec<u8> = b"35".iter().map(|c| c - b'0').collect();
    while d.len() < 14 {
        d.push(rng.below(10) as u8);
    }
    d.push(luhn_check(&d));
    let s: String = d.iter().map(|x| (b'0' + x) as char).collect();
    format!("{} {} {} {}", &s[0..2], &s[2..8], &s[8..14], &s[14..15])
}

/// The Luhn check digit of `digits`.
pub fn luhn_check(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &x) in digits.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - (sum % 10)) % 10) as u8
}

impl DeviceInfo {
    /// A new random device of `kind`.
    pub fn random(kind: DeviceKind) -> DeviceInfo {
        let mut rng = Rng::from_os();
        let serial: String = (0..10)
            .map(|_| SERIAL_CHARS[rng.below(SERIAL_CHARS.len() as u64) as usize] as char)
            .collect();
        let mut id = [0u8; 16];
        os_random(&mut id);
        DeviceInfo::build(kind, None, serial, id, &mut rng)
    }

    /// The device Apple Business Manager knows as `serial`, of `kind` and (ABM's) `model`
    /// (`iPhone 15 Pro`, `MacBook Air`, …): the same serial always gives the same UDID,
    /// model identifier, OS and radios, so a device erased and activated again is the same
    /// device. The model identifier is the one of that marketing name when the catalogue
    /// has it, else one of the kind.
    pub fn for_serial(kind: DeviceKind, serial: &str, model: &str) -> DeviceInfo {
        let digest = openssl::sha::sha256(format!("applesim device {serial}").as_bytes());
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[16..]);
        let spec = MODELS.iter().find(|m| m.kind == kind && m.marketing == model);
        DeviceInfo::build(
            kind,
            spec,
            serial.to_owned(),
            id,
            &mut Rng::seeded(u64::from_be_bytes(seed)),
        )
    }

    /// A device of `kind` (of model `spec`, or one picked by `rng`) whose UDID comes from `id`.
    fn build(kind: DeviceKind, spec: Option<&ModelSpec>, serial: String, id: [u8; 16], rng: &mut Rng) -> DeviceInfo {
        let m = match spec {
            Some(m) => m,
            None => {
                let models: Vec<&ModelSpec> = MODELS.iter().filter(|m| m.kind == kind).collect();
                models[rng.below(models.len() as u64) as usize]
            }
        };
        let udid = if kind.is_ios() {
            format!("0000{}-{}", m.chip, hex(&id[..8], true))
        } else {
            crate::pushcert::format_uuid(id, true)
        };
        let (os, build) = if kind.is_ios() {
            IOS_VERSIONS[rng.below(IOS_VERSIONS.len() as u64) as usize]
        } else {
            MACOS_VERSIONS[rng.below(MACOS_VERSIONS.len() as u64) as usize]
        };
        let owner = OWNERS[rng.below(OWNERS.len() as u64) as usize];
        let capacity = m.capacities[rng.below(m.capacities.len() as u64) as usize];
        // Between 20 % and 80 % free, rounded like Apple's values (two decimals).
        let free = (capacity * (20 + rng.below(61)) as f64 / 100.0 * 100.0).round() / 100.0;
        let phone = kind == DeviceKind::IPhone;
        DeviceInfo {
            kind,
            udid,
            serial_number: serial,
            model: if kind.is_ios() {
                m.part.to_owned()
            } else {
                m.identifier.to_owned()
            },
            model_name: m.model_name.to_owned(),
            product_name: m.identifier.to_owned(),
            model_number: format!("{}LL/A", m.part),
            marketing_name: m.marketing.to_owned(),
            os_version: os.to_owned(),
            build_version: build.to_owned(),
            initial_name: format!("{owner}’s {}", m.model_name),
            imei: phone.then(|| imei(rng)),
            meid: phone.then(|| hex(&rng.next_u64().to_be_bytes()[..7], true)),
            wifi_mac: mac_address(rng),
            bluetooth_mac: mac_address(rng),
            ethernet_mac: (!m.battery).then(|| mac_address(rng)),
            capacity_gb: capacity,
            available_gb: free,
            battery_level: m.battery.then(|| (5 + rng.below(96)) as f64 / 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        for _ in 0..50 {
            let p = DeviceInfo::random(DeviceKind::IPhone);
            assert_eq!(p.udid.len(), 25, "{}", p.udid);
            assert!(p.udid.starts_with("0000") && p.udid.as_bytes()[8] == b'-');
            assert!(p.product_name.starts_with("iPhone") && p.product_name.contains(','));
            assert_eq!(p.serial_number.len(), 10);
            let imei: String = p.imei.clone().unwrap().replace(' ', "");
            assert_eq!(imei.len(), 15);
            let digits: Vec<u8> = imei.bytes().map(|c| c - b'0').collect();
            assert_eq!(luhn_check(&digits[..14]), digits[14]);
            assert_eq!(p.meid.as_ref().unwrap().len(), 14);
            assert!(p.available_gb < p.capacity_gb);
            assert!(p.battery_level.is_some());

            let i = DeviceInfo::random(DeviceKind::IPad);
            assert!(i.product_name.starts_with("iPad"));
            assert!(i.imei.is_none());

            let m = DeviceInfo::random(DeviceKind::Mac);
            assert_eq!(m.udid.len(), 36);
            assert_eq!(m.model, m.product_name);
            assert!(m.product_name.starts_with("Mac"));
            assert!(m.os_version.starts_with("15") || m.os_version.starts_with("14"));
        }
        // Devices of Apple Business Manager: the same serial is the same device.
        let a = DeviceInfo::for_serial(DeviceKind::IPhone, "F9GZK2ABCD", "iPhone 15 Pro");
        assert_eq!(
            a,
            DeviceInfo::for_serial(DeviceKind::IPhone, "F9GZK2ABCD", "iPhone 15 Pro")
        );
        assert_eq!(a.serial_number, "F9GZK2ABCD");
        assert_eq!(a.product_name, "iPhone16,1");
        assert!(a.udid.starts_with("00008130-") && a.udid.len() == 25, "{}", a.udid);
        assert!(a.imei.is_some() && a.meid.as_ref().map(String::len) == Some(14));
        let b = DeviceInfo::for_serial(DeviceKind::IPhone, "F9GZK2ABCE", "iPhone 15 Pro");
        assert_ne!(a.udid, b.udid);
        let m = DeviceInfo::for_serial(DeviceKind::Mac, "C02XK1JHJGH5", "MacBook Air");
        assert_eq!((m.product_name.as_str(), m.udid.len()), ("Mac14,2", 36));
        let other = DeviceInfo::for_serial(DeviceKind::IPad, "DMPXYZ1234", "iPad of the future");
        assert!(other.product_name.starts_with("iPad"));
        // A known IMEI check digit (490154203237518).
        let d: Vec<u8> = b"49015420323751".iter().map(|c| c - b'0').collect();
        assert_eq!(luhn_check(&d), 8);
    }
}
