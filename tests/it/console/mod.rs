//! The web console (`/ui/`): sessions, CSRF and access rules (`sessions`) and pages (`pages`)
//! over HTTP, and the main journeys in headless Chromium (`browser`).

mod browser;
mod pages;
mod sessions;
mod webdriver;

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::approvals::call;
use crate::common::{TestServer, meta};

/// One browser-like client of the console: keeps the session cookie, follows no redirect.
pub struct ConsoleClient<'a> {
    server: &'a TestServer,
    http: reqwest::Client,
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Page {
    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> String {
        let start = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body))
            + r#"name="csrf" value=""#.len();
        self.body[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

impl<'a> ConsoleClient<'a> {
    pub fn new(server: &'a TestServer) -> Self {
        ConsoleClient {
            server,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (location, set_cookie) = (header(LOCATION), header(SET_COOKIE));
        if let Some(set) = &set_cookie {
            let pair = set.split(';').next().unwrap_or_default();
            self.cookie = pair
                .split_once('=')
                .filter(|(_, value)| !value.is_empty())
                .map(|_| pair.to_owned());
        }
        Page {
            status: response.status().as_u16(),
            location,
            set_cookie,
            body: response.text().await.expect("body"),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut request = self.http.get(self.server.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.expect("request");
        self.read(response).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut request = self.http.post(self.server.url(path)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.expect("request");
        self.read(response).await
    }

    /// Signs in with `token`, as the sign-in form does.
    pub async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/ui/login",
            &[("token", token), ("csrf", &csrf), ("next", "/ui/configs")],
        )
        .await
    }
}

pub(crate) const ADMIN: &str = "admin-token-for-the-console-tests-0123456789";

pub(crate) async fn server_with_access(
    tune: impl FnOnce(&mut summit_config::settings::Settings),
) -> TestServer {
    TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some(ADMIN.into());
        tune(s);
    })
    .await
}

pub(crate) async fn token(
    server: &TestServer,
    name: &str,
    roles: &[&str],
    scopes: Value,
) -> String {
    let (status, created) = call(
        server,
        ADMIN,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": name, "roles": roles, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["tokenText"].as_str().unwrap().to_owned()
}

pub(crate) async fn put(server: &TestServer, id: &str, value: u64) -> (u16, Value) {
    call(
        server,
        ADMIN,
        Method::PUT,
        &format!("/api/v1/configs/{id}"),
        Some(json!({"config": {"value": value}, "metadata": meta("admin", "set value")})),
    )
    .await
}

pub(crate) async fn version(server: &TestServer, id: &str) -> Value {
    call(
        server,
        ADMIN,
        Method::GET,
        &format!("/api/v1/configs/{id}"),
        None,
    )
    .await
    .1["version"]
        .clone()
}

pub(crate) async fn denials(server: &TestServer) -> Vec<Value> {
    let (status, denied) = call(
        server,
        ADMIN,
        Method::GET,
        "/api/v1/audit/denied?limit=500",
        None,
    )
    .await;
    assert_eq!(status, 200, "{denied}");
    denied["items"].as_array().unwrap().clone()
}

pub(crate) fn checkout_flag() -> Value {
    json!({
        "description": "New checkout flow",
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "environments": {
            "production": {"enabled": true, "rules": [
                {"id": "staff", "conditions": [{"attribute": "email", "operator": "ends_with", "value": "@acme.com"}], "variant": "on"},
                {"id": "beta", "targetKeys": ["user-7", "user-8"], "variant": "on"}
            ]},
            "dev": {"enabled": false}
        }
    })
}
