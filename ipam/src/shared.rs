//! [`SharedIpam`]: the allocator behind a mutex, for a controller that reconciles concurrently.
//!
//! Every operation is short (`O(log n)` for allocate and release) and never blocks on I/O, so a
//! plain mutex is enough: the benchmark in `BENCHMARKS.md` compares it with the bare allocator.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::Error;
use crate::ipam::{Counters, Ipam, Lease, RebuildReport, Record};
use crate::layout::{PoolSpec, SubnetSpec};
use crate::request::Request;

/// A thread-safe [`Ipam`]. Each method takes the lock for one operation.
#[derive(Debug, Default)]
pub struct SharedIpam {
    inner: Mutex<Ipam>,
}

impl SharedIpam {
    /// Wraps an allocator.
    pub fn new(ipam: Ipam) -> Self {
        Self {
            inner: Mutex::new(ipam),
        }
    }

    /// The locked allocator, for several operations under one lock. A poisoned lock is taken
    /// over: operations validate before they change anything, so a panic elsewhere cannot have
    /// left the allocator half-changed.
    pub fn lock(&self) -> MutexGuard<'_, Ipam> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`Ipam::update_subnet`].
    pub fn update_subnet(&self, spec: SubnetSpec) -> Result<(), Error> {
        self.lock().update_subnet(spec)
    }

    /// See [`Ipam::register_with`].
    pub fn register_with(
        &self,
        spec: SubnetSpec,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<RebuildReport, Error> {
        self.lock().register_with(spec, records)
    }

    /// See [`Ipam::has_subnet`].
    pub fn has_subnet(&self, name: &str) -> bool {
        self.lock().has_subnet(name)
    }

    /// See [`Ipam::remove_subnet`].
    pub fn remove_subnet(&self, name: &str) -> Result<(), Error> {
        self.lock().remove_subnet(name)
    }

    /// See [`Ipam::set_pool`].
    pub fn set_pool(&self, subnet: &str, pool: PoolSpec) -> Result<(), Error> {
        self.lock().set_pool(subnet, pool)
    }

    /// See [`Ipam::remove_pool`].
    pub fn remove_pool(&self, subnet: &str, pool: &str) -> Result<(), Error> {
        self.lock().remove_pool(subnet, pool)
    }

    /// See [`Ipam::allocate`].
    pub fn allocate(&self, subnet: &str, key: &str, request: &Request) -> Result<Lease, Error> {
        self.lock().allocate(subnet, key, request)
    }

    /// See [`Ipam::release`].
    pub fn release(&self, key: &str) -> Option<Lease> {
        self.lock().release(key)
    }

    /// See [`Ipam::get`].
    pub fn get(&self, key: &str) -> Option<Lease> {
        self.lock().get(key)
    }

    /// See [`Ipam::owner_of`].
    pub fn owner_of(&self, subnet: &str, ip: IpAddr) -> Option<String> {
        self.lock().owner_of(subnet, ip).map(str::to_owned)
    }

    /// See [`Ipam::records`].
    pub fn records(&self) -> Vec<Record> {
        self.lock().records()
    }

    /// See [`Ipam::rebuild`].
    pub fn rebuild(&self, records: impl IntoIterator<Item = Record>) -> RebuildReport {
        self.lock().rebuild(records)
    }

    /// See [`Ipam::counters`].
    pub fn counters(&self, subnet: &str) -> Result<Counters, Error> {
        self.lock().counters(subnet)
    }

    /// See [`Ipam::pool_counters`].
    pub fn pool_counters(&self, subnet: &str, pool: &str) -> Result<Counters, Error> {
        self.lock().pool_counters(subnet, pool)
    }
}
