//! SSRF protection for callback and redirect targets: refused at order creation when the host
//! is or resolves to a forbidden address, and checked again at delivery against the very
//! addresses the HTTP client connects to (so DNS rebinding cannot slip through): both outbound
//! clients resolve through [`connectable`]. The client upstream calls go out with is built here
//! too ([`outbound_client`]); callbacks have their own, in `callback_client`.

use kassa_core::ssrf::forbidden_reason;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Ends every refusal of an address, so that a refusal found deep in a client's error chain
/// is still told apart from a network failure.
pub const REFUSAL_MARK: &str = "callbacks and redirects must go to public hosts";

fn refusal(ip: IpAddr, why: &str) -> String {
    format!("points at {ip}, a {why} address; {REFUSAL_MARK}")
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

/// Refuses a target on a port outside the operator's allowlist (an empty list allows all).
pub fn check_port(url: &url::Url, allowed_ports: &[u16]) -> Result<(), String> {
    let Some(port) = url.port_or_known_default() else {
        return Err("has no port kassa can use".into());
    };
    if allowed_ports.is_empty() || allowed_ports.contains(&port) {
        return Ok(());
    }
    let allowed: Vec<String> = allowed_ports.iter().map(u16::to_string).collect();
    Err(format!(
        "uses port {port}; callbacks and redirects may use ports {} only",
        allowed.join(", ")
    ))
}

/// How long a host's verdict is reused: merchants send the same few hosts with every order,
/// and a slow DNS server must not slow every order down.
const VERDICT_TTL: Duration = Duration::from_secs(60);
/// Most hosts remembered; past it the cache starts over.
const MAX_CACHED_HOSTS: usize = 10_000;

/// A host's verdict (`Err` says why it is refused) and when it was reached.
type Verdict = (Result<(), String>, Instant);

/// The creation-time check, with each host's verdict cached for a minute.
#[derive(Default)]
pub struct TargetChecker {
    verdicts: Mutex<HashMap<String, Verdict>>,
}

impl TargetChecker {
    /// Refuses a literal forbidden address, or a name that resolves to one.
    pub async fn check(&self, url: &url::Url) -> Result<(), String> {
        check_literal(url)?;
        let Some(url::Host::Domain(domain)) = url.host() else {
            return Ok(());
        };
        let key = domain.to_ascii_lowercase();
        if let Some((verdict, at)) = self.verdicts.lock().expect("verdict cache").get(&key)
            && at.elapsed() < VERDICT_TTL
        {
            return verdict.clone();
        }
        let verdict = resolve_and_judge(domain).await;
        let mut verdicts = self.verdicts.lock().expect("verdict cache");
        if verdicts.len() >= MAX_CACHED_HOSTS {
            verdicts.clear();
        }
        verdicts.insert(key, (verdict.clone(), Instant::now()));
        verdict
    }
}

/// Every address the name resolves to must be permitted. A name that does not resolve in time
/// is let through: delivery checks the addresses it really connects to.
async fn resolve_and_judge(domain: &str) -> Result<(), String> {
    let lookup = tokio::time::timeout(CREATION_DNS_TIMEOUT, tokio::net::lookup_host((domain, 443)));
    if let Ok(Ok(addresses)) = lookup.await {
        for address in addresses {
            if let Some(why) = forbidden_reason(address.ip()) {
                return Err(refusal(address.ip(), why));
            }
        }
    }
    Ok(())
}

/// The client kassa sends orders to upstream PSPs with: it follows no redirect (one could lead
/// anywhere, private networks included), takes no proxy from the environment, resolves through
/// [`GuardedResolver`] unless private targets are allowed, and never sends a request twice.
/// reqwest's default replays a request an HTTP/2 server refused unprocessed, and to be ready for
/// that clones every request's headers before sending it; kassa speaks HTTP/1.1 to these hosts,
/// and its upstream calls have retry schedules of their own, so the copy was work for nothing.
pub fn outbound_client(
    user_agent: &'static str,
    (connect_timeout, timeout): (Duration, Duration),
    allow_private: bool,
) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .no_proxy()
        .user_agent(user_agent);
    match allow_private {
        true => builder,
        false => builder.dns_resolver(std::sync::Arc::new(GuardedResolver)),
    }
}

/// The addresses of `host` a client may connect to: with `guarded`, only the permitted ones,
/// and an error that says why when none is; otherwise all of them.
pub async fn connectable(
    host: &str,
    guarded: bool,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    if !guarded {
        return Ok(resolved);
    }
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
    Ok(permitted)
}

/// A DNS resolver for reqwest's outbound client that hands out only permitted addresses.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let permitted = connectable(&host, true).await?;
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_names() {
        let checker = TargetChecker::default();
        let check = |s: &str| {
            let url = url::Url::parse(s).unwrap();
            let checker = &checker;
            async move { checker.check(&url).await }
        };
        let refused = |verdict: Result<(), String>, class: &str| {
            assert!(verdict.as_ref().unwrap_err().contains(class), "{verdict:?}");
        };
        refused(check("http://127.0.0.1:8080/x").await, "loopback");
        refused(check("http://[::1]/x").await, "loopback");
        refused(
            check("http://169.254.169.254/latest").await,
            "cloud metadata",
        );
        refused(check("http://localhost:9/x").await, "loopback");
        // The cached verdict holds for the same host, whatever the case.
        refused(check("http://LOCALHOST/y").await, "loopback");
        assert!(check("https://93.184.216.34/x").await.is_ok());
        // A name that does not resolve here is left to the delivery-time check.
        assert!(check("https://no-such-host.invalid/x").await.is_ok());
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
