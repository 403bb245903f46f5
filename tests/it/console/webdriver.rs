//! Just enough W3C WebDriver to drive headless Chromium through chromedriver on loopback:
//! navigate, find, click, type, read, run a script, take a screenshot. chromedriver is started
//! on a free port and killed when the `Browser` is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::common::secret_servers::free_port;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);
const STARTUP: Duration = Duration::from_secs(60);

/// Where chromedriver and Chromium are, or why they are not.
pub fn tools() -> Result<(PathBuf, Option<PathBuf>), String> {
    let find = |names: &[&str]| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        names.iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
    };
    let driver = find(&["chromedriver"]).ok_or("chromedriver is not on PATH")?;
    let browser = find(&["chromium", "chromium-browser", "google-chrome"]);
    if browser.is_none() {
        return Err("no chromium (or chromium-browser, google-chrome) on PATH".into());
    }
    Ok((driver, browser))
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

/// chromedriver on a free loopback port, ready; another port if one was taken meanwhile.
async fn spawn_driver(driver: &Path, http: &reqwest::Client) -> (Child, String) {
    for _ in 0..3 {
        let port = free_port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group, so that Chromium goes with it (see `Drop for Browser`).
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        // Generous: the machine may be busy compiling or running the other suites.
        let deadline = tokio::time::Instant::now() + STARTUP;
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready
                && response.status().is_success()
            {
                return (child, base);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("chromedriver exited at start three times");
}

impl Browser {
    pub async fn start(driver: &Path, binary: Option<&Path>) -> Browser {
        let http = reqwest::Client::new();
        let (child, base) = spawn_driver(driver, &http).await;
        let mut options = json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-breakpad", "--disable-crash-reporter",
            "--window-size=1280,900", "--lang=en-GB"]});
        if let Some(binary) = binary {
            options["binary"] = json!(binary);
        }
        let created = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}}))
            .send()
            .await
            .expect("new session")
            .json::<Value>()
            .await
            .expect("session JSON");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            driver: child,
            base,
            session,
            http,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver JSON");
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("webdriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The visible text of the page's body.
    pub async fn text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css).await {
            Some(element) => element,
            None => {
                let at = self.url().await;
                let source = self.command(reqwest::Method::GET, "/source", None).await;
                panic!("no element matches {css} at {at}: {source}")
            }
        }
    }

    pub async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.find_all(css).await.into_iter().next()
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str())
            .map(|id| Element {
                browser: self,
                id: id.to_owned(),
            })
            .collect()
    }

    pub async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG of the viewport when `dir` is given.
    pub async fn screenshot(&self, dir: Option<&Path>, name: &str) {
        let Some(dir) = dir else { return };
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        std::fs::create_dir_all(dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("screenshot written");
    }

    /// Waits until the page's address contains `part` (a navigation has happened: a page that
    /// already says what the next page will say cannot tell it).
    pub async fn wait_for_url(&self, part: &str) -> String {
        let what = format!("an address with {part}");
        self.wait_until(&what, Seen::Address, |url| url.contains(part))
            .await
    }

    /// Waits until `check` holds of the page's text.
    pub async fn wait_for_text(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, Seen::Text, check).await
    }

    /// Reads what `seen` names every 100 ms until `check` holds of it, or fails after `WAIT`.
    async fn wait_until(&self, what: &str, seen: Seen, check: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let read = match seen {
                Seen::Address => self.url().await,
                Seen::Text => self.text().await,
            };
            if check(&read) {
                return read;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited for {what}; the {} says: {read}",
                match seen {
                    Seen::Address => "address",
                    Seen::Text => "page",
                }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn quit(mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        let _ = self.driver.kill().await;
    }
}

/// What `Browser::wait_until` reads of the page.
#[derive(Clone, Copy)]
enum Seen {
    Address,
    Text,
}

/// A test that fails midway leaves no chromedriver or Chromium behind: the whole process
/// group chromedriver leads is killed.
impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) on the group this test started; no memory is touched.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Element<'_> {
    pub async fn click(&self) {
        self.browser
            .command(
                reqwest::Method::POST,
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .await;
    }

    pub async fn type_text(&self, text: &str) {
        self.browser
            .command(
                reqwest::Method::POST,
                &format!("/element/{}/value", self.id),
                Some(json!({"text": text})),
            )
            .await;
    }

    pub async fn text(&self) -> String {
        self.browser
            .command(
                reqwest::Method::GET,
                &format!("/element/{}/text", self.id),
                None,
            )
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
