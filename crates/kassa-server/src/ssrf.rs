//! SSRF protection for callback and redirect targets: refused at order creation when the host
//! is or resolves to a forbidden address, and checked again at delivery against the very
//! addresses the HTTP client connects to (so DNS rebinding cannot slip through).

use kassa_core::ssrf::forbidden_reason;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long order creation waits for DNS before giving the target the benefit of the doubt
/// (delivery checks again anyway).
const CREATION_DNS_TIMEOUT: Duration = Duration::from_secs(2);

fn host_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn refusal(ip: IpAddr, why: &str) -> String {
    format!("points at {ip}, a {why} address; callbacks and redirects must go to public hosts")
}

/// The check of a URL whose host is written as an IP address (no DNS is asked for those).
pub fn check_literal(url: &url::Url) -> Result<(), String> {
    match host_ip(url) {
        Some(ip) => match forbidden_reason(ip) {
            Some(why) => Err(refusal(ip, why)),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// The creation-time check: the literal address, or every address the name resolves to.
pub async fn check_target(url: &url::Url) -> Result<(), String> {
    check_literal(url)?;
    let Some(url::Host::Domain(domain)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(
        CREATION_DNS_TIMEOUT,
        tokio::net::lookup_host((domain, port)),
    );
    if let Ok(Ok(addresses)) = lookup.await {
        for address in addresses {
            if let Some(why) = forbidden_reason(address.ip()) {
                return Err(refusal(address.ip(), why));
            }
        }
    }
    Ok(())
}

/// A DNS resolver for the callback client that hands out only permitted addresses.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let permitted: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match forbidden_reason(address.ip()) {
                    Some(why) => {
                        refused = Some(refusal(address.ip(), why));
                        false
                    }
                    None => true,
                })
                .collect();
            if permitted.is_empty() {
                let why = refused.unwrap_or_else(|| "resolves to no address".into());
                return Err(format!("{host} {why}").into());
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_names() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(
            check_target(&url("http://127.0.0.1:8080/x"))
                .await
                .unwrap_err()
                .contains("loopback")
        );
        assert!(
            check_target(&url("http://[::1]/x"))
                .await
                .unwrap_err()
                .contains("loopback")
        );
        assert!(
            check_target(&url("http://169.254.169.254/latest"))
                .await
                .unwrap_err()
                .contains("cloud metadata")
        );
        assert!(
            check_target(&url("http://localhost:9/x"))
                .await
                .unwrap_err()
                .contains("loopback")
        );
        assert!(check_target(&url("https://93.184.216.34/x")).await.is_ok());
        // A name that does not resolve here is left to the delivery-time check.
        assert!(
            check_target(&url("https://no-such-host.invalid/x"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_resolver_hands_out_no_forbidden_address() {
        let error = GuardedResolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost must be refused");
        assert!(error.to_string().contains("loopback"), "{error}");
    }
}
