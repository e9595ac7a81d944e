//! Devices as administrators see them: Apple's record joined with Russet's choice of
//! profile and how assigning it went, with filters and cursor pagination.

use russet_store::audit::{Actor, NewAuditEntry};
pub use russet_store::devices::DeviceFilter;
use russet_store::devices::{AssignmentEvent, DeviceRecord};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::Core;
use crate::error::CoreError;

/// Default and largest page of devices.
pub const PAGE_DEFAULT: u32 = 100;
pub const PAGE_MAX: u32 = 1000;

/// Apple's view of a device (from device sync).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AbmRecord {
    pub profile_uuid: Option<String>,
    /// `empty`, `assigned`, `pushed` or `removed`, as Apple last reported.
    pub profile_status: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub profile_assign_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub profile_push_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub device_assigned_date: Option<OffsetDateTime>,
    pub device_assigned_by: Option<String>,
    /// The last change Apple reported: `added`, `modified`, `deleted`, or `fetched`.
    pub last_op: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_op_date: Option<OffsetDateTime>,
}

/// How assigning the chosen profile went.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Assignment {
    pub profile_id: Option<i64>,
    /// `pending`, `success`, `not_accessible`, `failed`, `throttled`; absent when no profile was chosen.
    pub state: Option<String>,
    /// For throttled devices: when Russet tries again.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retry_at: Option<OffsetDateTime>,
    pub attempts: i64,
    pub job_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Device {
    pub serial_number: String,
    pub token_id: i64,
    pub model: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    pub asset_tag: Option<String>,
    pub os: Option<String>,
    pub device_family: Option<String>,
    /// Released or moved away in ABM; kept until the retention period ends.
    pub removed: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub removed_at: Option<OffsetDateTime>,
    /// When Russet first saw it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: OffsetDateTime,
    pub abm: AbmRecord,
    pub assignment: Assignment,
}

impl From<DeviceRecord> for Device {
    fn from(r: DeviceRecord) -> Self {
        Device {
            serial_number: r.serial_number,
            token_id: r.token_id,
            model: r.model,
            description: r.description,
            color: r.color,
            asset_tag: r.asset_tag,
            os: r.os,
            device_family: r.device_family,
            removed: r.removed_at.is_some(),
            removed_at: r.removed_at,
            added_at: r.created_at,
            abm: AbmRecord {
                profile_uuid: r.abm_profile_uuid,
                profile_status: r.abm_profile_status,
                profile_assign_time: r.abm_profile_assign_time,
                profile_push_time: r.abm_profile_push_time,
                device_assigned_date: r.device_assigned_date,
                device_assigned_by: r.device_assigned_by,
                last_op: r.op_type,
                last_op_date: r.op_date,
            },
            assignment: Assignment {
                profile_id: r.profile_id,
                state: r.assign_state,
                retry_at: r.assign_retry_at,
                attempts: r.assign_attempts,
                job_id: r.assign_job_id,
                updated_at: r.assign_updated_at,
            },
        }
    }
}

/// One assignment outcome.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub profile_id: Option<i64>,
    pub profile_name: Option<String>,
    pub profile_uuid: Option<String>,
    pub result: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retry_at: Option<OffsetDateTime>,
    pub job_id: Option<i64>,
}

impl From<AssignmentEvent> for HistoryEntry {
    fn from(e: AssignmentEvent) -> Self {
        HistoryEntry {
            at: e.at,
            profile_id: e.profile_id,
            profile_name: e.profile_name,
            profile_uuid: e.profile_uuid,
            result: e.result,
            retry_at: e.retry_at,
            job_id: e.job_id,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeviceDetail {
    pub device: Device,
    /// Newest first (at most 100).
    pub assignment_history: Vec<HistoryEntry>,
    /// The device's MDM enrollment (the channel it enrolled with through ADE, or else any
    /// enrollment with its serial number): UDID, OS, last check-in, user, Setup Assistant.
    pub enrollment: Option<crate::mdm::Enrollment>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DevicePage {
    pub devices: Vec<Device>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
    /// How many devices match the filters.
    pub total: i64,
}

fn not_found(serial: &str) -> CoreError {
    CoreError::not_found(
        "device_not_found",
        format!("Russet has no device with serial number {serial}"),
    )
}

/// A serial number as Russet stores it, or an error for one that cannot be.
pub fn normalise_serial(s: &str, what: &str) -> Result<String, CoreError> {
    let s = s.trim().to_ascii_uppercase();
    if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(CoreError::invalid(
            "invalid_serial",
            format!("{what} \"{s}\" is not a serial number (letters and digits)"),
        ));
    }
    Ok(s)
}

impl Core {
    pub async fn device_list(
        &self,
        mut filter: DeviceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DevicePage, CoreError> {
        if let Some(p) = &filter.serial_prefix {
            filter.serial_prefix = Some(normalise_serial(p, "the serial prefix")?);
        }
        let cursor = cursor.map(|c| normalise_serial(c, "the cursor")).transpose()?;
        let limit = match limit {
            0 => PAGE_DEFAULT,
            n => n.min(PAGE_MAX),
        };
        let rows = self.store.device_list(&filter, cursor.as_deref(), limit).await?;
        let total = self.store.device_count(&filter).await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|d| d.serial_number.clone()))
            .flatten();
        Ok(DevicePage {
            devices: rows.into_iter().map(Device::from).collect(),
            next_cursor,
            total,
        })
    }

    pub async fn device_get(&self, serial: &str) -> Result<DeviceDetail, CoreError> {
        let serial = normalise_serial(serial, "the serial number")?;
        let record = self
            .store
            .device_get(&serial)
            .await?
            .ok_or_else(|| not_found(&serial))?;
        let history = self.store.device_assignment_history(&serial, 100).await?;
        let enrollments = self.enrollment_list(None, 10, Some(&serial)).await?;
        let enrollment = enrollments
            .iter()
            .find(|e| e.ade.as_ref().is_some_and(|a| a.serial_number == serial))
            .or_else(|| enrollments.iter().find(|e| e.kind == "device"))
            .cloned();
        Ok(DeviceDetail {
            device: record.into(),
            assignment_history: history.into_iter().map(Into::into).collect(),
            enrollment,
        })
    }

    /// Deletes a device record. Returns a notice: while ABM still assigns the device to the
    /// token's MDM server, the next full sync brings it back.
    pub async fn device_delete(&self, actor: &Actor, serial: &str) -> Result<String, CoreError> {
        let serial = normalise_serial(serial, "the serial number")?;
        let record = self
            .store
            .device_get(&serial)
            .await?
            .ok_or_else(|| not_found(&serial))?;
        let audit = NewAuditEntry::new(
            self.clock.now(),
            actor,
            "device.delete",
            "device",
            format!("deleted device {serial}"),
        )
        .details(json!({ "token_id": record.token_id, "was_removed_in_abm": record.removed_at.is_some() }));
        if !self.store.device_delete(&serial, audit).await? {
            return Err(not_found(&serial));
        }
        Ok(if record.removed_at.is_some() {
            format!("Deleted {serial}; ABM had already released it.")
        } else {
            format!(
                "Deleted {serial}. ABM still assigns it to this token's MDM server, so the next full sync brings it back: \
                 release it in Apple Business Manager (or assign it to another MDM server) to remove it for good."
            )
        })
    }
}
