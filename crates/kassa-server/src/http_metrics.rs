//! The HTTP side of the metrics: every answered request is counted and timed by the area it
//! belongs to (a dialect, the payer's pages, operations) and its route template — never its
//! concrete path, which carries order numbers and tokens.

use crate::dialect::Dialects;
use crate::telemetry;
use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use std::future::Future;
use std::time::Instant;

/// The route label of requests no route took (unknown paths, requests refused before routing).
pub const UNROUTED: &str = "unrouted";

/// Outside everything but the request id: counts and times each request, refusals included.
/// The route template comes back with the response (`front::MarkRoute`, inside the router).
pub async fn measure<F, Fut>(dialects: &Dialects, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let area = area_of(dialects, request.uri().path());
    let response = next(request).await;
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNROUTED, MatchedPath::as_str);
    telemetry::http_request(
        area,
        route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The `dialect` label: the dialect that owns the path, `cashier` for the payer's pages, else
/// `operations` (health, docs, unknown paths).
fn area_of(dialects: &Dialects, path: &str) -> &'static str {
    match dialects.owner_of(path) {
        Some(dialect) => dialect.name(),
        None if crate::cashier::owns_path(path) => "cashier",
        None => "operations",
    }
}
