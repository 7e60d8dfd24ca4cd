//! What every powerstack service does to its generated OpenAPI document: one bearer scheme, the
//! version, no tags (the operations are few enough to list as they are), and a job result's
//! device figures described by the pattern of their keys.

use utoipa::openapi::OpenApi;
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, extensions::Extensions};

use crate::job::DEVICE_KEY_PATTERN;

/// Adds the `bearer` security scheme described by `bearer`, sets the document's `version`,
/// clears every operation's tags, and describes a job result's device figures by their keys.
pub fn finish(doc: &mut OpenApi, bearer: &str, version: &str) {
    let scheme =
        HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(bearer)).build();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    doc.info.version = version.to_string();
    for item in doc.paths.paths.values_mut() {
        for op in
            [&mut item.get, &mut item.post, &mut item.put, &mut item.delete].into_iter().flatten()
        {
            op.tags = None;
        }
    }
    device_figures_by_key(doc);
}

/// `JobResultV1`'s flattened device figures (`cpu_power_0`, ...) as `patternProperties` rather
/// than `additionalProperties`: a document that flattens a job result beside fields of its own
/// (a job query's node row, with `agent` and `status`) stays valid against it.
fn device_figures_by_key(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else { return };
    let Some(RefOr::T(Schema::Object(result))) = components.schemas.get_mut("JobResultV1") else {
        return;
    };
    let Some(values) = result.additional_properties.take() else { return };
    let values = match *values {
        AdditionalProperties::RefOr(schema) => serde_json::to_value(schema).ok(),
        AdditionalProperties::FreeForm(_) => None,
    };
    if let Some(values) = values {
        let by_key = serde_json::json!({ DEVICE_KEY_PATTERN: values });
        result
            .extensions
            .get_or_insert_with(Extensions::default)
            .insert("patternProperties".into(), by_key);
    }
}
