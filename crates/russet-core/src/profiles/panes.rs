//! Setup Assistant panes: Apple's skip keys (`skip_setup_items`) with the friendly names
//! administrators use in Russet.
//!
//! Keys and titles follow Apple's `other/skipkeys.yaml` schema (45 keys, a test checks the
//! table against it when the schema is at hand) plus keys Apple added later (iOS 26 era)
//! that the device assignment documentation lists.

/// One pane: the friendly name, Apple's key, what skipping it does, and the OS version
/// that deprecated the key, if any.
pub struct Pane {
    pub name: &'static str,
    pub key: &'static str,
    pub title: &'static str,
    pub deprecated: Option<&'static str>,
}

const fn p(name: &'static str, key: &'static str, title: &'static str) -> Pane {
    Pane {
        name,
        key,
        title,
        deprecated: None,
    }
}

const fn d(name: &'static str, key: &'static str, title: &'static str, since: &'static str) -> Pane {
    Pane {
        name,
        key,
        title,
        deprecated: Some(since),
    }
}

/// Every pane Russet knows, in alphabetical order of the friendly name.
pub const PANES: &[Pane] = &[
    p("accessibility", "Accessibility", "Skip Accessibility pane"),
    p(
        "accessibility_appearance",
        "AccessibilityAppearance",
        "Skip Accessibility Appearance pane",
    ),
    p("action_button", "ActionButton", "Skip Action Button setup pane"),
    p(
        "additional_privacy_settings",
        "AdditionalPrivacySettings",
        "Skip Additional Privacy Settings pane",
    ),
    p("android_migration", "Android", "Prevents migration from Android device"),
    p("appearance", "Appearance", "Skip Choose your Look setup pane"),
    p(
        "apple_id",
        "AppleID",
        "Disables signing in to an Apple Account and iCloud",
    ),
    p("apple_pay", "Payment", "Skips Apple Pay setup"),
    p("app_store", "AppStore", "Skips AppStore information pane"),
    p("camera_button", "CameraButton", "Skips Camera Control pane"),
    p(
        "device_to_device_migration",
        "DeviceToDeviceMigration",
        "Skip Device To Device Migration pane",
    ),
    p(
        "diagnostics",
        "Diagnostics",
        "Disables automatically sending diagnostic information",
    ),
    d("display_tone", "DisplayTone", "Disables True Tone", "iOS 15, macOS 12"),
    p("filevault", "FileVault", "Skip configuration of FileVault"),
    p("get_started", "Welcome", "Skip Get Started pane"),
    d(
        "home_button_sensitivity",
        "HomeButtonSensitivity",
        "Skips Home Button sensitivity setup",
        "iOS 15",
    ),
    p("icloud_diagnostics", "iCloudDiagnostics", "Skip iCloud Analytics pane"),
    p(
        "icloud_storage",
        "iCloudStorage",
        "Skip iCloud Documents and Desktop pane",
    ),
    p(
        "imessage_and_facetime",
        "iMessageAndFaceTime",
        "Skip iMessage and FaceTime set up pane",
    ),
    p("intelligence", "Intelligence", "Skip Intelligence setup pane"),
    p("keyboard", "Keyboard", "Skip Keyboard pane"),
    p("liquid_glass", "LiquidGlass", "Skip Liquid Glass pane"),
    p("location_services", "Location", "Disables Location Services"),
    p("lockdown_mode", "EnableLockdownMode", "Skips Enable Lockdown Mode"),
    p(
        "messaging_activation_using_phone_number",
        "MessagingActivationUsingPhoneNumber",
        "Disables iMessage activation using a phone number in select regions",
    ),
    p("multitasking", "Multitasking", "Skip Multitasking pane"),
    d(
        "onboarding",
        "OnBoarding",
        "Skip on-boarding informational panes",
        "iOS 14",
    ),
    p("os_showcase", "OSShowcase", "Skip OS Showcase pane"),
    p("passcode", "Passcode", "Skips prompting the user to set a passcode"),
    p("privacy", "Privacy", "Skip Privacy pane"),
    p("restore", "Restore", "Disables restoring from backup"),
    p("restore_completed", "RestoreCompleted", "Skips Restore Completed pane"),
    p("safety", "Safety", "Skips Safety pane"),
    p(
        "safety_and_handling",
        "SafetyAndHandling",
        "Skip Safety and Handling pane",
    ),
    p("screen_saver", "ScreenSaver", "Skips screen saver setup"),
    p("screen_time", "ScreenTime", "Skip Screen Time pane"),
    p("sim_setup", "SIMSetup", "Skip SIM-related setup"),
    p("siri", "Siri", "Disables Siri"),
    p(
        "software_update",
        "SoftwareUpdate",
        "Skip automatic software update configuration pane",
    ),
    p("spoken_language", "SpokenLanguage", "Skip Dictation pane"),
    p("tap_to_setup", "TapToSetup", "Skips simplified tap setup"),
    p("terms_and_conditions", "TOS", "Skips Terms and Conditions"),
    p("terms_of_address", "TermsOfAddress", "Skips Terms of Address"),
    p("tips", "Tips", "Skip Tips pane"),
    p("touch_id_face_id", "Biometric", "Skips Touch ID/Face ID setup"),
    p("tv_home_screen_sync", "TVHomeScreenSync", "Skip TV Home Screen"),
    p("tv_provider_sign_in", "TVProviderSignIn", "Skip TV provider sign in"),
    p("tv_room", "TVRoom", "Skip Where is this Apple TV pane"),
    p(
        "unlock_with_watch",
        "UnlockWithWatch",
        "Skip Unlock with Apple Watch pane",
    ),
    p(
        "update_completed",
        "UpdateCompleted",
        "Skips Software Update Complete pane",
    ),
    p("wallpaper", "Wallpaper", "Skips Wallpaper selection"),
    p("watch_migration", "WatchMigration", "Skip watch migration"),
    p(
        "web_content_filtering",
        "WebContentFiltering",
        "Skip Web Content Filtering pane",
    ),
    d("zoom", "Zoom", "Skips setting zoom configuration", "iOS 17"),
];

/// The pane a friendly name or an Apple key (any case) stands for.
pub fn find(name_or_key: &str) -> Option<&'static Pane> {
    let wanted = name_or_key.trim();
    let folded = wanted.to_ascii_lowercase().replace(['-', ' '], "_");
    PANES
        .iter()
        .find(|p| p.name == folded || p.key.eq_ignore_ascii_case(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_unique_and_found() {
        for (i, a) in PANES.iter().enumerate() {
            for b in &PANES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.key, b.key);
            }
            assert_eq!(find(a.name).map(|p| p.key), Some(a.key));
            assert_eq!(find(&a.key.to_uppercase()).map(|p| p.key), Some(a.key));
        }
        assert_eq!(find("Location Services").map(|p| p.key), Some("Location"));
        assert!(find("teleport").is_none());
    }

    /// Every key of Apple's schema is in the table (when the shared schemas are beside the
    /// project, as in CI).
    #[test]
    fn covers_apples_schema() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/apple-device-management/other/skipkeys.yaml"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED panes::covers_apples_schema: {path} not found ***"
            );
            return;
        };
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("- key: "))
            .map(str::trim)
            .collect();
        assert!(keys.len() >= 40, "the schema lists its keys");
        for key in keys {
            assert!(
                PANES.iter().any(|p| p.key == key),
                "skip key {key} of Apple's schema is missing"
            );
        }
    }
}
