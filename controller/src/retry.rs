//! Growing retry delays per object: a failing object is retried soon at first, then less and
//! less often (doubling up to [`MAX_DELAY`]), so a broken object or an outage does not keep the
//! workers, the apiserver and the Event stream busy; the first success starts it over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first delay after a reconcile failed with an error (an API or NB failure).
pub const ERROR_RETRY: Duration = Duration::from_secs(1);

/// The longest delay between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Consecutive failures per object key.
#[derive(Debug, Default)]
pub struct Retries {
    failures: Mutex<HashMap<String, u32>>,
}

impl Retries {
    /// Records one more failure of `key` and returns how long to wait before the next attempt:
    /// `base`, then twice that, and so on, never more than [`MAX_DELAY`] (nor less than `base`
    /// when `base` is larger).
    pub fn next(&self, key: &str, base: Duration) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = failures.entry(key.to_owned()).or_insert(0);
        let delay = base
            .checked_mul(1_u32.checked_shl(*n).unwrap_or(u32::MAX))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY.max(base));
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` (it succeeded, or is gone).
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Forgets every failure and returns the keys that were failing (NB came back: they are
    /// tried again at once, starting over from the first delay).
    pub fn drain(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .map(|(key, _)| key)
            .collect()
    }

    /// How many objects are currently failing.
    pub fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no object is failing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The retry key of an object: kind, namespace, name and uid (a recreated object starts over).
pub fn key_of<K: kube::Resource<DynamicType = ()>>(obj: &K) -> String {
    let m = obj.meta();
    format!(
        "{}/{}/{}/{}",
        K::kind(&()),
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_start_over_after_a_success() {
        let r = Retries::default();
        let s = Duration::from_secs;
        let got: Vec<Duration> = (0..12).map(|_| r.next("a", s(1))).collect();
        assert_eq!(
            got,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300].map(s)
        );
        assert_eq!(r.next("b", s(10)), s(10), "keys are independent");
        r.reset("a");
        assert_eq!(r.next("a", s(1)), s(1));
        assert_eq!(r.len(), 2);
        // Thousands of failures never overflow.
        for _ in 0..10_000 {
            assert!(r.next("c", s(1)) <= MAX_DELAY);
        }
        // A base above the cap is kept.
        assert_eq!(r.next("d", s(600)), s(600));
        r.reset("a");
        r.reset("b");
        r.reset("c");
        r.reset("d");
        assert!(r.is_empty());
    }

    #[test]
    fn keys_name_kind_namespace_name_and_uid() {
        let mut p = k8s_openapi::api::core::v1::Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some("u".into());
        assert_eq!(key_of(&p), "Pod/ns/p/u");
    }
}
