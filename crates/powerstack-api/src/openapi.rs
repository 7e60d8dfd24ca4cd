//! What every powerstack service does to its generated OpenAPI document: one bearer scheme, the
//! version, and no tags (the operations are few enough to list as they are).

use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Adds the `bearer` security scheme described by `bearer`, sets the document's `version`, and
/// clears every operation's tags.
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
}
