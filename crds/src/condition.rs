//! The status condition shared by every `kubeovn.io/v1` status (`type`, `status`, `reason`,
//! `message`, `observedGeneration`, `lastTransitionTime`), and the one way to update a list of
//! them so `lastTransitionTime` only moves when `status` changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type set when an object is fully realised (OVN rows written, addresses known).
pub const READY: &str = "Ready";
/// Condition type set once `validate()` accepted the spec (`False` with the reason otherwise).
pub const VALIDATED: &str = "Validated";
/// Condition type set when the last reconcile failed.
pub const ERROR: &str = "Error";

/// Whether a condition holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}

/// One aspect of an object's state, as in `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type in CamelCase, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable reason in CamelCase.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl Condition {
    /// A condition of `type_` with `status`, `reason` and `message`, observed at `generation`.
    pub fn new(
        type_: impl Into<String>,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: None,
        }
    }
}

/// Puts `new` into `conditions`, replacing the condition of the same type. `lastTransitionTime`
/// is kept when the status did not change and set to `now` when it did (or when `new` is added).
/// Returns whether anything changed, so callers can skip a status write.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: Time) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            new.last_transition_time = if old.status == new.status {
                old.last_transition_time.clone().or(Some(now))
            } else {
                Some(now)
            };
            if *old == new {
                return false;
            }
            *old = new;
            true
        }
        None => {
            new.last_transition_time = Some(now);
            conditions.push(new);
            true
        }
    }
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut cs = Vec::new();
        let ready = |s| Condition::new(READY, s, "Reconciled", "ok", Some(1));
        assert!(set_condition(&mut cs, ready(ConditionStatus::True), at(10)));
        assert!(!set_condition(
            &mut cs,
            ready(ConditionStatus::True),
            at(20)
        ));
        assert_eq!(cs[0].last_transition_time, Some(at(10)));
        assert!(set_condition(
            &mut cs,
            ready(ConditionStatus::False),
            at(30)
        ));
        assert_eq!(cs[0].last_transition_time, Some(at(30)));
        assert!(!is_true(&cs, READY));
        let json = serde_json::to_value(&cs[0]).unwrap();
        assert_eq!(json["type"], "Ready");
        assert_eq!(json["status"], "False");
        assert_eq!(json["observedGeneration"], 1);
        assert_eq!(json["lastTransitionTime"], "1970-01-01T00:00:30Z");
    }
}
