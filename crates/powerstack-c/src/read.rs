//! Reading a node: power over an interval and energy now, as structs and as the native
//! documents (`powerstack.power.v1`, `powerstack.energy.v1`), from `powerstack_node::read`.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use powerstack_model::DomainInfo;

use crate::ffi::{Failure, guard, out_string};
use crate::node::{PsKind, PsNode, fill, to_json};

/// The power of one domain over an interval.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PsPowerReading {
    /// What the domain is.
    pub kind: PsKind,
    /// Socket, GPU number, or 0.
    pub index: u32,
    /// The die of a multi-die package, or -1.
    pub die: i32,
    /// 1 when the domain could be read at both ends of the interval.
    pub valid: c_int,
    /// Mean power over the interval, watts (NaN when not valid).
    pub watts: f64,
}

/// The energy counter of one domain.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PsEnergyReading {
    /// What the domain is.
    pub kind: PsKind,
    /// Socket, GPU number, or 0.
    pub index: u32,
    /// The die of a multi-die package, or -1.
    pub die: i32,
    /// 1 when the domain has an energy counter and it could be read.
    pub valid: c_int,
    /// The counter, joules, extended over wraps since the node was opened (NaN when not valid).
    pub joules: f64,
}

/// The interval of a power reading: 1 ms to 1 h.
fn interval(interval_ms: u32) -> Result<Duration, Failure> {
    let d = Duration::from_millis(u64::from(interval_ms));
    if !powerstack_node::read::READ_INTERVAL.contains(&d) {
        return Err(Failure::invalid(format!(
            "interval {interval_ms} ms: must be between 1 ms and 1 h"
        )));
    }
    Ok(d)
}

fn domain_fields(info: &DomainInfo) -> (PsKind, u32, i32) {
    (info.id.kind.into(), info.id.index, info.id.die.map_or(-1, |d| d as i32))
}

/// Measures every domain over `interval_ms` (1 ms to 1 h; never a first-call 0 W): up to
/// `capacity` readings into `out`, how many domains there are into `*count`, and the node's
/// power into `*node_watts` (NaN when it cannot be measured; `node_watts` may be NULL).
///
/// # Safety
/// `node` is NULL or a live handle; `out` NULL or `capacity` entries; `count` NULL or writable;
/// `node_watts` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_power(
    node: *const PsNode,
    interval_ms: u32,
    out: *mut PsPowerReading,
    capacity: usize,
    count: *mut usize,
    node_watts: *mut f64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        let node = unsafe { PsNode::from_ptr(node) }?;
        let interval = interval(interval_ms)?;
        if count.is_null() {
            return Err(Failure::invalid("the count pointer is null"));
        }
        let (readings, total) = node.with(|n| {
            let (report, _) = powerstack_node::read::power(n, interval);
            let catalog = n.discovery.platform.catalog();
            let readings: Vec<PsPowerReading> = catalog
                .iter()
                .zip(&report.domains)
                .map(|(info, d)| {
                    let (kind, index, die) = domain_fields(info);
                    let watts = d.power_watts.unwrap_or(f64::NAN);
                    PsPowerReading {
                        kind,
                        index,
                        die,
                        valid: c_int::from(watts.is_finite()),
                        watts,
                    }
                })
                .collect();
            (readings, report.node.map_or(f64::NAN, |p| p.watts))
        });
        // SAFETY: forwarded from the caller.
        unsafe { fill(&readings, out, capacity, count) }?;
        if !node_watts.is_null() {
            // SAFETY: not null, and the caller guarantees it is writable.
            unsafe { *node_watts = total };
        }
        Ok(())
    })
}

/// Reads every domain's energy counter now: up to `capacity` readings into `out`, how many
/// domains there are into `*count`.
///
/// # Safety
/// `node` is NULL or a live handle; `out` NULL or `capacity` entries; `count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_energy(
    node: *const PsNode,
    out: *mut PsEnergyReading,
    capacity: usize,
    count: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        let node = unsafe { PsNode::from_ptr(node) }?;
        if count.is_null() {
            return Err(Failure::invalid("the count pointer is null"));
        }
        let readings: Vec<PsEnergyReading> = node.with(|n| {
            let (joules, _) = powerstack_node::read::energy(n);
            let catalog = n.discovery.platform.catalog();
            catalog
                .iter()
                .zip(joules)
                .map(|(info, j)| {
                    let (kind, index, die) = domain_fields(info);
                    let joules = j.unwrap_or(f64::NAN);
                    PsEnergyReading { kind, index, die, valid: c_int::from(j.is_some()), joules }
                })
                .collect()
        });
        // SAFETY: forwarded from the caller.
        unsafe { fill(&readings, out, capacity, count) }
    })
}

/// The `powerstack.power.v1` document over `interval_ms` (as `powerstack power --format json
/// --interval` prints it) into `*json`, to be freed with `ps_string_free`.
///
/// # Safety
/// `node` is NULL or a live handle; `json` is NULL (refused) or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_power_json(
    node: *const PsNode,
    interval_ms: u32,
    json: *mut *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        let node = unsafe { PsNode::from_ptr(node) }?;
        let interval = interval(interval_ms)?;
        if json.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        let doc = node.with(|n| powerstack_node::read::power(n, interval).1);
        // SAFETY: `json` is not null and the caller guarantees it is writable.
        unsafe { out_string(to_json(&doc)?, json) }
    })
}

/// The `powerstack.energy.v1` document now (as `powerstack energy --format json` prints it) into
/// `*json`, to be freed with `ps_string_free`.
///
/// # Safety
/// `node` is NULL or a live handle; `json` is NULL (refused) or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_energy_json(node: *const PsNode, json: *mut *mut c_char) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live handle.
        let node = unsafe { PsNode::from_ptr(node) }?;
        if json.is_null() {
            return Err(Failure::invalid("the output pointer is null"));
        }
        let doc = node.with(|n| powerstack_node::read::energy(n).1);
        // SAFETY: `json` is not null and the caller guarantees it is writable.
        unsafe { out_string(to_json(&doc)?, json) }
    })
}
