//! Native JSON, version 1, of the capping commands: `powerstack.cap.v1` (what a change did) and
//! `powerstack.caps.v1` (the limits in force and who set them).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Schema name of [`CapResultV1`].
pub const CAP_SCHEMA: &str = "powerstack.cap.v1";
/// Schema name of [`CapsV1`].
pub const CAPS_SCHEMA: &str = "powerstack.caps.v1";

/// What `powerstack cap socket|mem|gpu|node|reset` did (or, with `--dry-run`, would do).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapResultV1 {
    /// Which document, and which node it speaks of.
    #[serde(flatten)]
    pub header: crate::v1::HeaderV1,
    /// `socket`, `mem`, `gpu`, `node` or `reset`.
    pub command: String,
    /// Nothing was written: the writes below are the plan.
    pub dry_run: bool,
    /// Node caps: the policy.
    pub policy: Option<String>,
    /// Node caps: the cap asked for, watts.
    pub node_cap_watts: Option<f64>,
    /// Node caps: measured power that cannot be capped, charged first, watts.
    pub uncappable_watts: Option<f64>,
    /// Node caps: the cap was below reach and the minimum was applied (`--clamp`).
    pub clamped: bool,
    /// Node caps, once written: the node cap the limits read back make, watts (uncappable power
    /// plus each cappable domain's limit read back, or its maximum when it was not written).
    #[serde(default)]
    pub node_read_back_watts: Option<f64>,
    /// The writes, in order.
    pub writes: Vec<CapWriteV1>,
    /// Limits restored because a previous run had died part way through writing.
    pub recovered: Vec<String>,
    /// Anything else worth knowing.
    pub warnings: Vec<String>,
}

/// One write in [`CapResultV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapWriteV1 {
    /// Domain kind.
    pub domain: String,
    /// Index.
    pub index: u32,
    /// Constraint (`long_term`, `short_term`, `cap`).
    pub constraint: String,
    /// Before, watts (`null`: uncapped).
    pub previous_watts: Option<f64>,
    /// Asked for, watts.
    pub requested_watts: f64,
    /// Read back after writing, watts (`null` on a dry run).
    pub read_back_watts: Option<f64>,
    /// New averaging window, seconds, when one was written.
    pub time_window_s: Option<f64>,
    /// Provider.
    pub provider: String,
    /// Source.
    pub source: String,
}

/// `powerstack cap show`: every power limit, its range, and who set it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapsV1 {
    /// Which document, and which node it speaks of.
    #[serde(flatten)]
    pub header: crate::v1::HeaderV1,
    /// Every limit of every domain.
    pub controls: Vec<CapControlV1>,
    /// The node caps the node can take; `null` when nothing is cappable.
    #[serde(default)]
    pub node: Option<NodeCapRangeV1>,
    /// Anything worth knowing (an unreadable journal, ...).
    pub warnings: Vec<String>,
}

/// The node caps a node can take ([`CapsV1::node`]), counted as a node cap counts them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeCapRangeV1 {
    /// The lowest node cap: uncappable power plus every cappable domain's minimum, watts.
    pub min_watts: f64,
    /// The highest node cap: uncappable power plus every cappable domain's maximum, watts.
    pub max_watts: f64,
    /// Measured power that cannot be capped, watts (0 when the node has not been measured).
    pub uncappable_watts: f64,
    /// The node cap in force: uncappable power plus every cappable domain's limit in force (its
    /// maximum when the limit is disabled), watts.
    pub cap_in_force_watts: f64,
    /// The node cap an agent keeps standing, watts: the last `node_watts` written through its API,
    /// split again whenever the uncappable power moves (`docs/capping.md`); `null` when none (no
    /// node cap written, or a domain write or a reset ended it; always `null` without an agent).
    #[serde(default)]
    pub standing_watts: Option<f64>,
}

/// One limit in [`CapsV1`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapControlV1 {
    /// Domain kind.
    pub domain: String,
    /// Index.
    pub index: u32,
    /// Constraint.
    pub constraint: String,
    /// Its setting and range.
    #[serde(flatten)]
    pub limit: crate::v1::LimitV1,
    /// Provider.
    pub provider: String,
    /// Source.
    pub source: String,
    /// `powerstack` (its last write is in force), `outside powerstack` (changed since powerstack
    /// wrote it), or `not powerstack` (never written by powerstack).
    pub set_by: String,
    /// Who and how, when powerstack wrote it (`root (uid 0) via powerstack cap node 800`).
    pub set_detail: Option<String>,
    /// When powerstack last wrote it, µs since the Unix epoch.
    pub set_at_unix_us: Option<i64>,
    /// The value `cap reset` restores, watts, when powerstack has written the limit.
    pub original_watts: Option<f64>,
}

/// The body of `POST /v1/caps`: one domain's limit, or a node cap. A field given as `null` is
/// taken as absent.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CapRequestV1 {
    /// A node cap (the body has `node_watts`).
    Node(NodeCapRequestV1),
    /// One domain's limit.
    Domain(DomainCapRequestV1),
}

/// One domain's limit: every domain of the kind, or the one at `index` (and `die`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainCapRequestV1 {
    /// Domain kind.
    #[schema(schema_with = domain_kinds)]
    pub domain: String,
    /// Its index; every domain of the kind when absent.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral")]
    #[schema(minimum = 0, maximum = 4_294_967_295_u64)]
    pub index: Option<u32>,
    /// The die of a multi-die package; every die when absent.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral")]
    #[schema(minimum = 0, maximum = 4_294_967_295_u64)]
    pub die: Option<u32>,
    /// `long_term`, `short_term`, `peak_power` or `cap`; default `long_term` (package, memory) or
    /// `cap` (gpu).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// The new limit, watts.
    pub limit_watts: f64,
    /// The new averaging window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_s: Option<f64>,
    /// Apply the domain's lowest allowed limit when the one asked is below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(default = false)]
    pub clamp: Option<bool>,
    /// Plan only: validate and answer the writes, write nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(default = false)]
    pub dry_run: Option<bool>,
}

/// A node cap, split over every cappable domain by `policy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCapRequestV1 {
    /// The node cap, watts (above 0).
    #[schema(exclusive_minimum = 0)]
    pub node_watts: f64,
    /// How the cap is split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = policies)]
    pub policy: Option<String>,
    /// Apply the lowest cap the node can reach when the one asked is below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(default = false)]
    pub clamp: Option<bool>,
    /// Plan only: validate and answer the writes, write nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(default = false)]
    pub dry_run: Option<bool>,
}

/// The fields of a domain's limit that a node cap does not take.
const DOMAIN_FIELDS: [&str; 6] =
    ["domain", "index", "die", "constraint", "limit_watts", "time_window_s"];

/// A body with `node_watts` is a node cap, any other one a domain's limit; each names the field
/// that does not belong, or the one that is missing.
impl<'de> Deserialize<'de> for CapRequestV1 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut body = Map::<String, Value>::deserialize(d)?;
        body.retain(|_, v| !v.is_null());
        if body.contains_key("node_watts") {
            if let Some(field) = DOMAIN_FIELDS.iter().find(|f| body.contains_key(**f)) {
                return Err(D::Error::custom(format!(
                    "field `{field}` cannot go with `node_watts`: give either a node cap or one domain's limit"
                )));
            }
            return field_named(Value::Object(body))
                .map(CapRequestV1::Node)
                .map_err(D::Error::custom);
        }
        if body.contains_key("policy") {
            return Err(D::Error::custom("field `policy` goes with `node_watts` only"));
        }
        if !body.contains_key("domain") {
            return Err(D::Error::custom(
                "missing field `domain` (or `node_watts` for a node cap)",
            ));
        }
        field_named(Value::Object(body)).map(CapRequestV1::Domain).map_err(D::Error::custom)
    }
}

/// One form of a request from its fields; an error names the field (`limit_watts: invalid type`).
fn field_named<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(body).map_err(|e| match e.path().to_string().as_str() {
        "." => e.inner().to_string(),
        path => format!("{path}: {}", e.inner()),
    })
}

/// An index: a JSON integer, written `3` or `3.0` (both are the integer 3 to JSON Schema).
fn integral<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x) => {
            // In range and integral: the conversion is exact.
            Ok(Some(x as u32))
        }
        Some(x) => Err(D::Error::custom(format!(
            "invalid index {x}: expected an integer from 0 to {}",
            u32::MAX
        ))),
    }
}

fn string_enum(values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied())).into()
}

/// The domain kinds a limit may name.
pub(crate) fn domain_kinds() -> RefOr<Schema> {
    let kinds = powerstack_model::DomainKind::ALL.map(|k| k.as_str());
    string_enum(&kinds)
}

/// The node-cap policies.
fn policies() -> RefOr<Schema> {
    let mut schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["proportional", "uniform", "variorum"]))
        .default(Some(Value::from("proportional")));
    schema = schema.description(Some(
        "proportional (to each domain's maximum), uniform, or variorum (even over sockets).",
    ));
    schema.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<CapRequestV1, String> {
        serde_json::from_str(body).map_err(|e| e.to_string())
    }

    #[test]
    fn a_body_with_node_watts_is_a_node_cap_and_any_other_a_domains_limit() {
        let node = parse(r#"{"node_watts": 300, "policy": "uniform", "index": null}"#).unwrap();
        assert!(matches!(node, CapRequestV1::Node(n) if n.node_watts == 300.0));
        let domain = parse(r#"{"domain": "gpu", "index": 1.0, "limit_watts": 250}"#).unwrap();
        assert!(matches!(domain, CapRequestV1::Domain(d) if d.index == Some(1)));
    }

    #[test]
    fn each_refused_body_names_the_field() {
        for (body, says) in [
            (r#"{"node_watts": 1, "domain": "gpu"}"#, "field `domain` cannot go with `node_watts`"),
            (r#"{"domain": "gpu", "limit_watts": 1, "policy": "uniform"}"#, "field `policy` goes"),
            (r#"{"limit_watts": 1}"#, "missing field `domain` (or `node_watts`"),
            (r#"{"domain": "gpu"}"#, "missing field `limit_watts`"),
            (r#"{"domain": "gpu", "limit_watts": 1, "index": 1.5}"#, "invalid index 1.5"),
            (r#"{"domain": "gpu", "limit_watts": 1, "die": -1}"#, "invalid index -1"),
            (r#"{"domain": "gpu", "limit_watts": 1, "colour": 1}"#, "unknown field `colour`"),
            (r#"[1]"#, "invalid type"),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
    }
}
