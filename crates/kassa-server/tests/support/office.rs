//! A back-office listener beside a test server, its users, and a client that signs in and
//! posts forms as a browser would (cookies kept by hand, redirects not followed).
#![allow(dead_code)] // each suite uses its own subset

use super::common::Server;
use kassa_core::MerchantId;
use kassa_core::user::{NewUser, Role};
use kassa_server::accounts::SignInPolicy;
use kassa_server::backoffice::{Backoffice, router};
use kassa_server::passwords;
use kassa_server::sealing::Kek;
use kassa_store::AuditEntry;
use kassa_store::prelude::*;
use std::sync::Arc;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Office {
    pub base: String,
    pub kek: Arc<Kek>,
    client: reqwest::Client,
}

/// A signed-in browser: its session cookie and the token its forms carry.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub struct Answer {
    pub status: u16,
    pub location: String,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Office {
    pub async fn start(server: &Server) -> Office {
        let (kek, _) = Kek::generate();
        let kek = Arc::new(kek);
        let backoffice = Arc::new(Backoffice {
            gateway: server.gateway.clone(),
            kek: kek.clone(),
            policy: SignInPolicy::default(),
            secure_cookies: true,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let limits = kassa_server::listen::ConnectionLimits::default();
        tokio::spawn(async move {
            kassa_server::listen::serve(
                listener,
                router(backoffice),
                limits,
                std::future::pending(),
            )
            .await
            .unwrap()
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Office { base, kek, client }
    }

    pub async fn add_user(server: &Server, email: &str, role: Role, merchant: Option<i64>) -> i64 {
        let entry = cli_entry("user.add", String::new());
        let new = NewUser::new(email, role, merchant.map(MerchantId)).unwrap();
        let hash = passwords::hash(PASSWORD).unwrap();
        server
            .store
            .add_user(&new, &hash, &entry)
            .await
            .unwrap()
            .user_id
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let header = |name: &str| -> Vec<String> {
            response
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect()
        };
        let location = header("location").pop().unwrap_or_default();
        let set_cookies = header("set-cookie");
        Answer {
            status: response.status().as_u16(),
            location,
            set_cookies,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str, session: Option<&Session>) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request.header("cookie", &session.cookie);
        }
        Office::answer(request.send().await.unwrap()).await
    }

    /// Posts a form as the back office's own page would (same origin), with `extra` headers.
    pub async fn post_with(
        &self,
        path: &str,
        session: Option<&Session>,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        // What a browser sends with a form of the page's own, unless the test says otherwise.
        for (name, value) in [
            ("origin", self.base.as_str()),
            ("sec-fetch-site", "same-origin"),
        ] {
            if !extra.iter().any(|(n, _)| *n == name) {
                request = request.header(name, value);
            }
        }
        if let Some(session) = session {
            request = request.header("cookie", &session.cookie);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        Office::answer(request.send().await.unwrap()).await
    }

    /// Posts a form of the session's, its CSRF token added.
    pub async fn post(&self, path: &str, session: &Session, form: &[(&str, &str)]) -> Answer {
        let mut fields = vec![("csrf", session.csrf.as_str())];
        fields.extend_from_slice(form);
        self.post_with(path, Some(session), &fields, &[]).await
    }

    /// Signs in through the form; the answer as it came.
    pub async fn try_sign_in(&self, email: &str, password: &str, code: &str) -> Answer {
        let page = self.get("/admin/sign-in", None).await;
        let nonce = cookie_pair(&page.set_cookies, "kassa_sign_in");
        let csrf = csrf_of(&page.body);
        let form = [
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("code", code),
            ("next", "/admin/overview"),
        ];
        self.post_with("/admin/sign-in", None, &form, &[("cookie", &nonce)])
            .await
    }

    pub async fn sign_in(&self, email: &str) -> Session {
        self.sign_in_with_code(email, "").await
    }

    pub async fn sign_in_with_code(&self, email: &str, code: &str) -> Session {
        let answer = self.try_sign_in(email, PASSWORD, code).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        let cookie = cookie_pair(&answer.set_cookies, "__Host-kassa_session");
        let overview = self
            .get(
                "/admin/overview",
                Some(&Session {
                    cookie: cookie.clone(),
                    csrf: String::new(),
                }),
            )
            .await;
        assert_eq!(overview.status, 200, "{}", overview.body);
        Session {
            csrf: csrf_of(&overview.body),
            cookie,
        }
    }
}

/// An audit entry of a command run on the server, as the CLI writes them.
pub fn cli_entry(action: &str, target: String) -> AuditEntry {
    AuditEntry {
        at_ms: 1,
        actor: "cli:test".into(),
        action: action.into(),
        target,
        before: None,
        after: None,
        source: "cli".into(),
    }
}

/// `name=value` of a cookie the server set.
pub fn cookie_pair(set_cookies: &[String], name: &str) -> String {
    set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The CSRF token of the first form of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a token")
        + 19;
    html[at..].split('"').next().unwrap().to_string()
}
