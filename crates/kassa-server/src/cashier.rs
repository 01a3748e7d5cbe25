//! The payer's pages behind `payUrl`. For now one page per order that shows what is being
//! paid and where the order stands; choosing a method and paying come with the sandbox rail.
//!
//! Pages are addressed by an unguessable token, never by order number, escape every text a
//! merchant or payer supplied, and load nothing from elsewhere (strict CSP).

use crate::{Gateway, ids};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kassa_core::{Order, OrderStatus};
use std::fmt::Write as _;
use std::sync::Arc;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;\
         margin:2rem auto;padding:0 1rem;line-height:1.5}}dt{{font-weight:600}}</style></head>\
         <body><main>{body_html}</main></body></html>",
        title = escape_html(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn status_text(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Created => "Waiting for payment",
        OrderStatus::InProgress => "Payment in progress",
        OrderStatus::Succeeded => "Paid",
        OrderStatus::Failed => "Not paid",
        OrderStatus::Exception => "Payment being confirmed",
    }
}

fn order_page(order: &Order) -> Response {
    let mut html = String::new();
    let _ = write!(
        html,
        "<h1>{amount} {currency}</h1><dl><dt>Order</dt><dd>{order_id}</dd>",
        amount = order.amount_minor,
        currency = order.currency,
        order_id = escape_html(&order.merchant_order_id),
    );
    if let Some(subject) = &order.subject {
        let _ = write!(html, "<dt>For</dt><dd>{}</dd>", escape_html(subject));
    }
    let _ = write!(
        html,
        "<dt>Status</dt><dd>{}</dd></dl>",
        status_text(order.status)
    );
    if !order.status.is_final() {
        html.push_str(
            "<p>Online payment for this order is not available on this gateway yet. \
             Please return to the shop.</p>",
        );
    }
    page(StatusCode::OK, "Payment", &html)
}

pub async fn page_for_token(gateway: &Gateway, token: &str) -> Response {
    let not_found = || {
        page(
            StatusCode::NOT_FOUND,
            "Payment not found",
            "<h1>Payment not found</h1><p>This payment link is not valid.</p>",
        )
    };
    if !ids::is_cashier_token(token) {
        return not_found();
    }
    match gateway.store.order_by_cashier_token(token).await {
        Ok(Some(order)) => order_page(&order),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "cashier page: store error");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "<h1>Please try again</h1><p>The payment page is temporarily unavailable.</p>",
            )
        }
    }
}

pub async fn serve_page(
    State(gateway): State<Arc<Gateway>>,
    Path(token): Path<String>,
) -> Response {
    page_for_token(&gateway, &token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
    }
}
