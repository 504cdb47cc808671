//! The OpenAPI 3.1 description of the HTTP API, served at
//! `GET /v1/openapi.json`. Nothing in it is written by hand: each
//! operation comes from the `#[utoipa::path]` attribute on its handler,
//! and each schema from the Rust type the handler serializes (or, for a
//! request, the type its body is read into). A route added to the router
//! without a description fails the test `openapi_lists_every_route`.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "backorderd",
        description = "The HTTP API of `backorderd serve`: events in, backorder state out. \
            Every endpoint but `/healthz`, `/readyz` and `/v1/openapi.json` needs \
            `Authorization: Bearer TOKEN` when `http.token` is set (else 401). Every answer, \
            errors included, is JSON except `/metrics`."
    ),
    paths(
        handlers::events,
        handlers::recalculate,
        handlers::order,
        super::changes::history,
        super::changes::changes,
        handlers::backorders,
        handlers::product,
        super::audit::audit,
        super::what_if::what_if,
        super::delivery::dead,
        super::delivery::redeliver,
        super::delivery::enable,
        super::delivery::status,
        super::feed::availability,
        super::feed::availability_of,
        super::feed::purchasing_report,
        handlers::healthz,
        handlers::readyz,
        handlers::metrics,
        handlers::openapi,
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "events", description = "What happened: applied in one transaction per request"),
        (name = "reads", description = "The stored state, and why"),
        (name = "delivery", description = "Messages given up on, their redelivery, disabled destinations"),
        (name = "operations", description = "Health, readiness, metrics, this description"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme the guarded operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The value of `http.token`; required only when it is set",
                    ))
                    .build(),
            ),
        );
    }
}

/// The description as JSON text, built on first use.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI description serializes")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn the_description_is_openapi_3_1_with_every_schema_it_refers_to() {
        let doc: Value = serde_json::from_str(super::json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = super::json();
        // Every `$ref` names a schema that is there.
        for (at, _) in text.match_indices("#/components/schemas/") {
            let name: String = text[at + 21..].chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
