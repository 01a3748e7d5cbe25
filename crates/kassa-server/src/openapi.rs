//! The OpenAPI 3.1 description of kassa's HTTP surface, served at `/openapi.json` with Swagger
//! UI at `/docs` (its files are compiled in; nothing loads from a CDN). Each dialect describes
//! its own operations and wire shapes next to its code ([`crate::dialect::Dialect::openapi`]);
//! this module adds the front matter, the payer pages' JSON and the operations endpoints, and
//! puts them together in registration order.
//!
//! Length limits in the descriptions are the ones the handlers enforce (a test compares them),
//! so a schema-driven fuzzer that breaks a documented rule must see a refusal.

use crate::dialect::Dialects;
use utoipa::OpenApi;

/// The description of the standard dialects: what is served at `/openapi.json`, and checked
/// in as `docs/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    document_of(&Dialects::standard())
}

/// The description of a gateway that speaks `dialects`.
pub fn document_of(dialects: &Dialects) -> utoipa::openapi::OpenApi {
    let mut document = FrontMatter::openapi();
    for dialect in dialects.iter() {
        document.merge(dialect.openapi());
    }
    document.merge(Operations::openapi());
    document
}

/// `document()` as the pretty JSON that is served and checked in.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the OpenAPI document always serialises");
    text.push('\n');
    text
}

#[derive(OpenApi)]
#[openapi(info(
    title = "kassa",
    description = "A self-hosted payment collection gateway. Two merchant dialects: \
            `collect` (USD and EUR; body field `sign`) and `pix` (BRL; headers `X-App-Id` and \
            `X-Sign`). Every request is signed with SHA256withRSA over the canonical string of its \
            JSON body: every top-level field but `sign`, leaving out `null` and `\"\"`, keys in \
            byte order, `key=value` joined by `&`, strings raw and numbers as sent. Replies' \
            `data` is signed the same way with the platform key. See docs/collect-api.md and \
            docs/pix-api.md.",
    license(name = "Apache-2.0", identifier = "Apache-2.0"),
))]
struct FrontMatter;

#[derive(OpenApi)]
#[openapi(
    paths(crate::cashier::status, crate::health::healthz, crate::health::readyz),
    tags(
        (name = "cashier", description = "JSON endpoints of the payer's pages."),
        (name = "operations", description = "For load balancers and monitoring."),
    )
)]
struct Operations;
