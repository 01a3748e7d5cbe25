//! Small bounded caches on the request path. Each bounds its size (it starts over when full)
//! and says when a cached value stops being used.
//!
//! - [`AppCache`]: app rows for a short time, so each request does not read its app again.
//!   An operator's change (key, limits, PIX key) takes effect within the TTL.
//! - [`ReplyCache`]: signed query replies per order state, so a reply whose data has not
//!   changed is not signed again (RSA signing is most of a query's cost).

use kassa_core::{App, AppId, Order, OrderNo, OrderVersion};
use kassa_store::{Store, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const MAX_CACHED_APPS: usize = 10_000;
const MAX_CACHED_REPLIES: usize = 20_000;

pub struct AppCache {
    ttl: Duration,
    /// Shared, so that a request takes its app without copying its key and secrets.
    apps: RwLock<HashMap<AppId, (Arc<App>, Instant)>>,
}

impl AppCache {
    pub fn new(ttl: Duration) -> AppCache {
        AppCache {
            ttl,
            apps: RwLock::default(),
        }
    }

    /// The app, from the cache while fresh, else from the store.
    pub async fn get(&self, store: &dyn Store, app_id: AppId) -> StoreResult<Option<Arc<App>>> {
        if !self.ttl.is_zero()
            && let Some((app, at)) = self.apps.read().expect("app cache").get(&app_id)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(app.clone()));
        }
        let app = store.app(app_id).await?.map(Arc::new);
        if let Some(app) = &app
            && !self.ttl.is_zero()
        {
            let mut apps = self.apps.write().expect("app cache");
            if apps.len() >= MAX_CACHED_APPS {
                apps.clear();
            }
            apps.insert(app_id, (app.clone(), Instant::now()));
        }
        Ok(app)
    }
}

/// Signed query replies, each kept with the [`OrderVersion`] it was rendered from.
#[derive(Default)]
pub struct ReplyCache {
    replies: RwLock<HashMap<OrderNo, (OrderVersion, String)>>,
}

impl ReplyCache {
    /// The reply kept for this version of the order, if any: a query that finds one reads no
    /// more of the order.
    pub fn current(&self, version: &OrderVersion) -> Option<String> {
        let replies = self.replies.read().expect("reply cache");
        let (cached_version, reply) = replies.get(&version.order_no)?;
        (cached_version == version).then(|| reply.clone())
    }

    /// The reply for this state of the order: cached, or rendered by `render` and kept.
    pub fn get_or_render(&self, order: &Order, render: impl FnOnce() -> String) -> String {
        let version = order.version();
        if let Some(reply) = self.current(&version) {
            return reply;
        }
        let reply = render();
        let mut replies = self.replies.write().expect("reply cache");
        if replies.len() >= MAX_CACHED_REPLIES {
            replies.clear();
        }
        replies.insert(order.order_no.clone(), (version, reply.clone()));
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_core::OrderEvent;
    use kassa_store::prelude::*;

    /// The public key an app cache gives for an app.
    async fn key_of(cache: &AppCache, store: &dyn Store, app_id: AppId) -> Option<String> {
        cache
            .get(store, app_id)
            .await
            .unwrap()
            .and_then(|app| app.public_key.clone())
    }

    #[tokio::test]
    async fn apps_are_reused_for_their_ttl_only() {
        let db = kassa_store::testing::TestDatabase::sqlite().await;
        let store = db.store().await;
        let apps = [kassa_store::NewApp {
            currency: kassa_core::Currency::Eur,
            webhook_secret: Default::default(),
        }];
        let created = store
            .create_merchant("M", &apps, Some("OLD"), 1, None)
            .await
            .unwrap();
        let app_id = created.apps[0].app_id;
        let cache = AppCache::new(Duration::from_millis(300));
        assert_eq!(key_of(&cache, &store, app_id).await.as_deref(), Some("OLD"));
        store
            .set_app_public_key(app_id, "NEW", 2, None)
            .await
            .unwrap();
        let within = key_of(&cache, &store, app_id).await;
        assert_eq!(within.as_deref(), Some("OLD"), "within the TTL");
        tokio::time::sleep(Duration::from_millis(350)).await;
        let after = key_of(&cache, &store, app_id).await;
        assert_eq!(after.as_deref(), Some("NEW"), "after it");
        let uncached = AppCache::new(Duration::ZERO);
        store
            .set_app_public_key(app_id, "NEWER", 3, None)
            .await
            .unwrap();
        assert_eq!(
            key_of(&uncached, &store, app_id).await.as_deref(),
            Some("NEWER")
        );
        assert_eq!(cache.get(&store, AppId(999_999)).await.unwrap(), None);
    }

    #[test]
    fn replies_follow_the_order_state() {
        let mut order = kassa_core::fixtures::order("M", 500, 7, 1_000);
        let cache = ReplyCache::default();
        let mut renders = 0;
        for _ in 0..3 {
            cache.get_or_render(&order, || {
                renders += 1;
                "created".into()
            });
        }
        assert_eq!(renders, 1, "unchanged data is signed once");
        let kept = cache.current(&order.version());
        assert_eq!(kept.as_deref(), Some("created"), "found by its version");
        order
            .apply(&OrderEvent::Failed { reason: "x".into() }, 0)
            .unwrap();
        assert_eq!(cache.current(&order.version()), None, "not for a new state");
        let reply = cache.get_or_render(&order, || {
            renders += 1;
            "failed".into()
        });
        assert_eq!(
            (reply.as_str(), renders),
            ("failed", 2),
            "a new state renders anew, even in the same millisecond"
        );
    }
}
