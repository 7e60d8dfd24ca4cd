//! `powerstack site bound`, `site decisions`, `site admit`: the site power bound, read, set and
//! cleared; its recorded decisions; the admission answer for schedulers (exit 1 when the job does
//! not fit, so that a `job_submit` or prolog script can test it).

use anyhow::{anyhow, bail};
use powerstack_api::site_bound::{AdmitRequestV1, BoundDecisionV1, SiteBoundSetV1, SiteBoundV1};
use powerstack_client::site::Site;

use crate::cli::{SiteAdmitArgs, SiteBoundArgs, SiteConnArgs, SiteDecisionsArgs};
use crate::job::{connect_site, parse_timeout};
use crate::output::emit;

fn site(conn: &SiteConnArgs, timeout: &str) -> anyhow::Result<Site> {
    connect_site(conn, parse_timeout(timeout)?)
}

/// `600000`, `600000W`, `600kW`, `0.6MW`: watts, finite and above 0.
pub fn parse_site_watts(what: &str, text: &str) -> anyhow::Result<f64> {
    let t = text.trim();
    let (number, factor) = if let Some(n) = t.strip_suffix("MW") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix("kW") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix('W') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    match number.trim().parse::<f64>().map(|w| w * factor) {
        Ok(w) if w.is_finite() && w > 0.0 && w <= 1e12 => Ok(w),
        _ => bail!("{what} {text:?}: give watts above 0 (600000, 600kW, 0.6MW)"),
    }
}

fn kw(w: f64) -> String {
    if w >= 10_000.0 { format!("{:.1} kW", w / 1000.0) } else { format!("{w:.0} W") }
}

fn bound_text(b: &SiteBoundV1) -> String {
    let mut out = match b.watts {
        Some(w) => format!(
            "bound {} (reserve {}), policy {}, from {}",
            kw(w),
            kw(b.reserve_watts),
            b.policy,
            b.source
        ),
        None => format!("no bound in force (policy {} when one is set)", b.policy),
    };
    if let Some(by) = &b.set_by {
        out.push_str(&format!(", set by {by}"));
    }
    out.push_str(&format!("; control period {} s\n", b.period_s));
    if let Some(d) = &b.last_decision {
        out.push_str(&decision_line(d));
    }
    out
}

fn decision_line(d: &BoundDecisionV1) -> String {
    let when = powerstack_model::civil::format_utc(d.unix_us);
    let bound = match d.bound_watts {
        Some(w) => format!("bound {}, caps + reserve {}", kw(w), kw(d.accounted_watts)),
        None => "no bound".to_string(),
    };
    let nodes =
        if d.nodes.len() == 1 { "1 node".to_string() } else { format!("{} nodes", d.nodes.len()) };
    let mut line = format!(
        "#{} {when}: {bound}, {nodes} ({} lowered, {} raised, {} failed): {}\n",
        d.id, d.lowered, d.raised, d.failed, d.why
    );
    if let Some(s) = d.shortfall_watts {
        line.push_str(&format!(
            "  the bound cannot be met: the cluster needs at least {}\n",
            kw(s)
        ));
    }
    line
}

/// `site bound [WATTS|clear]`.
pub fn bound(a: &SiteBoundArgs) -> anyhow::Result<()> {
    let site = site(&a.call.site, &a.call.timeout)?;
    let b = match a.watts.as_deref() {
        None => site.bound()?,
        Some(t) if t.eq_ignore_ascii_case("clear") => {
            site.set_bound(&SiteBoundSetV1 { watts: None, reserve_watts: None, policy: None })?
        }
        Some(t) => {
            let watts = parse_site_watts("bound", t)?;
            let reserve_watts = match a.reserve_watts.as_deref() {
                Some(r) if r.trim() == "0" => Some(0.0),
                Some(r) => Some(parse_site_watts("--reserve-watts", r)?),
                None => None,
            };
            let policy = a.policy.clone();
            if let Some(p) = &policy {
                powerstack_bound::policy_by_name(p).map_err(|e| anyhow!("--policy: {e}"))?;
            }
            site.set_bound(&SiteBoundSetV1 { watts: Some(watts), reserve_watts, policy })?
        }
    };
    if a.call.json {
        return emit(&serde_json::to_string_pretty(&b)?);
    }
    emit(&bound_text(&b))
}

/// `site decisions`.
pub fn decisions(a: &SiteDecisionsArgs) -> anyhow::Result<()> {
    if !(1..=1000).contains(&a.limit) {
        bail!("--limit {}: give 1 to 1000", a.limit);
    }
    let d = site(&a.call.site, &a.call.timeout)?.bound_decisions(a.limit)?;
    if a.call.json {
        return emit(&serde_json::to_string_pretty(&d)?);
    }
    if d.decisions.is_empty() {
        return emit("no decision recorded yet");
    }
    emit(&d.decisions.iter().map(decision_line).collect::<String>())
}

/// `site admit --nodes N [--power-watts W]`.
pub fn admit(a: &SiteAdmitArgs) -> anyhow::Result<()> {
    if !(1..=100_000).contains(&a.nodes) {
        bail!("--nodes {}: give 1 to 100000", a.nodes);
    }
    let power_watts =
        a.power_watts.as_deref().map(|w| parse_site_watts("--power-watts", w)).transpose()?;
    let request = AdmitRequestV1 { nodes: a.nodes, power_watts, priority: a.priority };
    let answer = site(&a.call.site, &a.call.timeout)?.admit(&request)?;
    if a.call.json {
        emit(&serde_json::to_string_pretty(&answer)?)?;
    } else if answer.site_bound_watts.is_none() {
        emit(&answer.why)?;
    } else {
        emit(&format!(
            "{} (policy {}, {} a node at the least)",
            answer.why,
            answer.policy,
            kw(answer.node_cap_watts)
        ))?;
    }
    if !answer.fits {
        bail!("the job does not fit under the site bound now");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_site_watts;

    #[test]
    fn watts_take_units_and_refuse_nonsense() {
        assert_eq!(parse_site_watts("bound", "600kW").unwrap(), 600_000.0);
        assert_eq!(parse_site_watts("bound", "0.6MW").unwrap(), 600_000.0);
        assert_eq!(parse_site_watts("bound", "1500 W").unwrap(), 1500.0);
        for bad in ["0", "-5", "nan", "inf", "1e13", "lots"] {
            let e = parse_site_watts("bound", bad).unwrap_err().to_string();
            assert!(e.contains("give watts above 0"), "{bad}: {e}");
        }
    }
}
