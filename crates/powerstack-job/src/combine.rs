//! Figures of one job measured in several parts (successive runs of an agent, successive
//! streams a node pushed to the site) put together: energies add up, a mean power is the energy
//! over the time its parts cover (gaps left out), the peak is the highest part's.

use std::collections::BTreeSet;

use powerstack_api::job::{Coverage, DeviceKey, JobFigures, Peak};

use crate::figures::mean_power;

/// The figures of a job measured in `parts`, apart (`gapped`: with gaps between them): every
/// device of any part; energies added up, each mean power the energy over the time its parts
/// cover, the highest part's peak (never below the mean), `samples` the sum, and complete only
/// when every part is and there is no gap.
pub fn combine_figures(parts: &[JobFigures], gapped: bool) -> JobFigures {
    let devices: BTreeSet<DeviceKey> =
        parts.iter().flat_map(|p| p.device_watts.keys().copied()).collect();
    let mut out = JobFigures {
        device_watts: devices.iter().map(|&d| (d, None)).collect(),
        ..JobFigures::default()
    };
    let covered: Vec<(&JobFigures, Coverage)> =
        parts.iter().filter_map(|p| Some((p, p.coverage?))).collect();
    if covered.is_empty() {
        return out;
    }
    out.coverage = Some(Coverage {
        start_unix_us: covered.iter().map(|(_, c)| c.start_unix_us).min().unwrap_or(0),
        end_unix_us: covered.iter().map(|(_, c)| c.end_unix_us).max().unwrap_or(0),
        samples: covered.iter().map(|(_, c)| c.samples).sum(),
        complete: covered.iter().all(|(_, c)| c.complete) && !gapped,
    });
    let with_energy: Vec<(f64, f64)> =
        covered.iter().filter_map(|(p, c)| Some((p.energy_joules?, c.seconds()))).collect();
    if !with_energy.is_empty() {
        let joules: f64 = with_energy.iter().map(|&(e, _)| e).sum();
        out.energy_joules = Some(joules);
        let seconds: f64 = with_energy.iter().map(|&(_, s)| s).sum();
        if seconds > 0.0 {
            out.node_power_watts = Some(mean_power(joules, seconds));
        }
    }
    for (device, watts) in &mut out.device_watts {
        let measured: Vec<(f64, f64)> = covered
            .iter()
            .filter_map(|(p, c)| Some(((*p.device_watts.get(device)?)?, c.seconds())))
            .filter(|&(_, s)| s > 0.0)
            .collect();
        let seconds: f64 = measured.iter().map(|&(_, s)| s).sum();
        if seconds > 0.0 {
            *watts = Some(mean_power(measured.iter().map(|&(w, s)| w * s).sum::<f64>(), seconds));
        }
    }
    let highest =
        covered.iter().filter_map(|(p, _)| p.peak).max_by(|a, b| a.watts.total_cmp(&b.watts));
    out.peak = highest.map(|p| Peak {
        watts: out.node_power_watts.map_or(p.watts, |mean| p.watts.max(mean)),
        window_s: p.window_s,
    });
    out
}
