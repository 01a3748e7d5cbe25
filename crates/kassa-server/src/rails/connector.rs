//! One upstream channel's connector, whatever API it speaks: the calls routing and
//! reconciliation make (create, query) and the check of its callbacks, in the terms they need —
//! what was opened there, and what the upstream says of kassa's order ([`UpstreamReport`]).
//! Each API's details stay in its own folder; this is where the two are matched, once.

use super::collect_upstream::CollectUpstream;
use super::collect_upstream::transformers::{ApplyFields, UpstreamOrder, apply_request};
use super::pix_upstream::PixUpstream;
use super::pix_upstream::transformers::PixOrder;
use super::upstream::day_report::ReportPage;
use super::upstream::{UpstreamError, upstream_order_id};
use crate::sealing::{CHANNEL_MERCHANT_KEY, Kek};
use kassa_core::{Channel, ChannelKind, Order, PaymentMethod, RailOutcome};
use kassa_signature::SigningKey;

pub enum Connector {
    Collect(CollectUpstream),
    Pix(PixUpstream),
}

/// What an upstream holds for kassa's order after a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub upstream_order_no: String,
    /// The upstream's payment page (the `collect` API's `payUrl`, where it gives one).
    pub pay_url: Option<String>,
    /// The BR Code of a PIX order, checked to decode.
    pub qr_code: Option<String>,
}

/// What an upstream says of kassa's order, in a query reply or a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamReport {
    pub upstream_order_id: String,
    pub upstream_order_no: String,
    /// `None` while the upstream has not finished.
    pub outcome: Option<RailOutcome>,
}

impl From<UpstreamOrder> for UpstreamReport {
    fn from(order: UpstreamOrder) -> UpstreamReport {
        UpstreamReport {
            outcome: order.outcome(),
            upstream_order_id: order.upstream_order_id,
            upstream_order_no: order.upstream_order_no,
        }
    }
}

impl From<PixOrder> for UpstreamReport {
    fn from(order: PixOrder) -> UpstreamReport {
        UpstreamReport {
            outcome: order.outcome(),
            upstream_order_id: order.upstream_order_id,
            upstream_order_no: order.upstream_order_no,
        }
    }
}

/// Where the upstream sends the payer back and calls kassa.
pub struct ReturnUrls {
    /// kassa's page of the order.
    pub payer: String,
    /// `/rails/{channel_id}/callback` of kassa's public URL.
    pub notify: String,
}

impl Connector {
    /// The connector of an upstream channel, kassa's key there unsealed with `kek`. An upstream
    /// written as a private or loopback IP address was allowed by the operator when the channel
    /// was added; any other is reached only on public addresses (checked at each resolution).
    pub fn build(channel: &Channel, kek: &Kek) -> Result<Connector, String> {
        let upstream = channel
            .upstream
            .as_ref()
            .ok_or("a sandbox channel has no connector")?;
        let allow_private = url::Url::parse(&upstream.base_url)
            .map_err(|e| e.to_string())
            .map(|url| crate::ssrf::check_literal(&url).is_err())?;
        Self::build_with(channel, kek, allow_private)
    }

    pub fn build_with(
        channel: &Channel,
        kek: &Kek,
        allow_private: bool,
    ) -> Result<Connector, String> {
        let upstream = channel
            .upstream
            .as_ref()
            .ok_or("a sandbox channel has no connector")?;
        let pem = kek
            .open(CHANNEL_MERCHANT_KEY, upstream.merchant_key.expose())
            .map_err(|e| e.to_string())?;
        let key = SigningKey::parse(&pem).map_err(|e| e.to_string())?;
        Ok(match channel.kind {
            ChannelKind::PixUpstream => {
                Connector::Pix(PixUpstream::new(channel, key, allow_private)?)
            }
            _ => Connector::Collect(CollectUpstream::new(channel, key, allow_private)?),
        })
    }

    /// Opens kassa's order at the upstream, under its derived id (a retry is a replay there).
    pub async fn create(
        &self,
        channel: &Channel,
        order: &Order,
        method: &PaymentMethod,
        urls: &ReturnUrls,
    ) -> Result<Opened, UpstreamError> {
        let id = upstream_order_id(&order.order_no);
        match self {
            Connector::Pix(pix) => {
                let created = pix.create(&id, order.amount_minor, &urls.notify).await?;
                Ok(Opened {
                    upstream_order_no: created.upstream_order_no,
                    pay_url: None,
                    qr_code: Some(created.qr_code),
                })
            }
            Connector::Collect(collect) => {
                let refuse = |msg: String| UpstreamError::Refused {
                    code: "kassa".into(),
                    msg,
                };
                let route = channel
                    .route_of(method)
                    .ok_or_else(|| refuse(format!("the channel does not map {}", method.code)))?;
                let payer = order
                    .payer
                    .as_ref()
                    .ok_or_else(|| refuse("the order has no payer".into()))?;
                let request = apply_request(&ApplyFields {
                    upstream_app_id: collect.app_id(),
                    upstream_order_id: id,
                    amount: order.amount_minor,
                    payer,
                    route,
                    return_url: urls.payer.clone(),
                    notify_url: urls.notify.clone(),
                    country: order.country.clone(),
                });
                let created = collect.create(order.currency, request).await?;
                Ok(Opened {
                    upstream_order_no: created.upstream_order_no,
                    pay_url: created.pay_url,
                    qr_code: None,
                })
            }
        }
    }

    /// The upstream's word on kassa's order ([`UpstreamError::NotFound`] if it has none).
    pub async fn query(&self, order: &Order) -> Result<UpstreamReport, UpstreamError> {
        self.query_id(order.currency, &upstream_order_id(&order.order_no))
            .await
    }

    /// The upstream's word on the order of `upstream_order_id` (of `currency`, which picks the
    /// `collect` API's path).
    pub async fn query_id(
        &self,
        currency: kassa_core::Currency,
        id: &str,
    ) -> Result<UpstreamReport, UpstreamError> {
        match self {
            Connector::Pix(pix) => pix.query(id).await.map(UpstreamReport::from),
            Connector::Collect(collect) => {
                collect.query(currency, id).await.map(UpstreamReport::from)
            }
        }
    }

    /// A page of the upstream's report of a day (upstreams that are kassas serve one; others
    /// refuse the call, and reconciliation asks order by order instead).
    pub async fn report_page(
        &self,
        channel: &Channel,
        date: &str,
        after: Option<&str>,
    ) -> Result<ReportPage, UpstreamError> {
        match self {
            Connector::Pix(pix) => pix.report_page(date, after).await,
            Connector::Collect(collect) => {
                (collect.report_page(currency_of(channel), date, after)).await
            }
        }
    }

    /// One query for an order that cannot exist (`kassa channel test`): any answer in the API's
    /// format shows the upstream reachable and speaking it.
    pub async fn probe(&self, channel: &Channel) -> Result<(), UpstreamError> {
        let probe_id = format!("kassa-channel-test-{}", crate::now_ms());
        self.query_id(currency_of(channel), &probe_id)
            .await
            .map(drop)
    }

    /// A callback's report, if it is signed by the upstream and about kassa's account there.
    pub fn verify_callback(
        &self,
        body: &str,
        x_sign: Option<&str>,
    ) -> Result<UpstreamReport, UpstreamError> {
        match self {
            Connector::Pix(pix) => pix.verify_callback(body, x_sign).map(UpstreamReport::from),
            Connector::Collect(collect) => collect.verify_callback(body).map(UpstreamReport::from),
        }
    }
}

/// The currency of a channel's account at the upstream (the `collect` API has one path per
/// currency; an upstream account collects one).
pub fn currency_of(channel: &Channel) -> kassa_core::Currency {
    let first = channel.currencies.first().copied();
    first.unwrap_or(kassa_core::Currency::Eur)
}
