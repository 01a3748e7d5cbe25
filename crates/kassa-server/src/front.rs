//! The layers every request of the public listener passes — its request id, its metrics, load
//! shedding and the default body limit — as one service with one future per request.
//!
//! Why not `axum::middleware::from_fn` per concern: each such layer clones the boxed service
//! inside it and boxes its own future on every request, and a query, whose own work is small,
//! paid for three of them. Here the concerns stay functions of their own modules, each handed
//! the next step as a closure, and are composed once.

use crate::dialect::Dialects;
use crate::shed::InFlight;
use crate::{http_metrics, request_id, shed};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::response::Response;
use futures_util::future::BoxFuture;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The routed router behind the public listener's layers.
#[derive(Clone)]
pub struct Front {
    routed: <DefaultBodyLimit as Layer<Router>>::Service,
    dialects: Arc<Dialects>,
    in_flight: Arc<InFlight>,
}

impl Front {
    pub fn new(routed: Router, dialects: Arc<Dialects>, in_flight: Arc<InFlight>) -> Front {
        let body_limit = DefaultBodyLimit::max(crate::dialect::MAX_BODY_BYTES);
        Front {
            routed: body_limit.layer(routed),
            dialects,
            in_flight,
        }
    }

    /// Outermost the request id (every log line of a request, the layers' included, carries
    /// it), then the metrics (refusals counted too), then the shedding, then the routes.
    async fn handle(self, request: Request) -> Response {
        let Front {
            mut routed,
            dialects,
            in_flight,
        } = self;
        request_id::assign(request, |request| {
            http_metrics::measure(&dialects, request, |request| {
                shed::limit(&in_flight, request, |request| async move {
                    match routed.call(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                })
            })
        })
        .await
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready; shedding happens per request, inside.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let front = self.clone();
        Box::pin(async move { Ok(front.handle(request).await) })
    }
}

/// Inside the router, where the matched route is known: hands the route template out with the
/// response, for the metrics' route label (the outer layers never see the router's match).
#[derive(Clone, Copy)]
pub struct MarkRouteLayer;

impl<S> Layer<S> for MarkRouteLayer {
    type Service = MarkRoute<S>;

    fn layer(&self, inner: S) -> MarkRoute<S> {
        MarkRoute(inner)
    }
}

#[derive(Clone)]
pub struct MarkRoute<S>(S);

impl<S> Service<Request> for MarkRoute<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Marked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        Marked {
            inner: self.0.call(request),
            route,
        }
    }
}

/// A route's response future, which hands the route template out with the response.
pub struct Marked<F> {
    inner: F,
    route: Option<MatchedPath>,
}

impl<F, E> Future for Marked<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = std::task::ready!(Pin::new(&mut self.inner).poll(cx))?;
        if let Some(route) = self.route.take() {
            response.extensions_mut().insert(route);
        }
        Poll::Ready(Ok(response))
    }
}
