//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`). Locally the browser tests skip with a message when no browser is
//! installed; under CI (`CI` set) a missing browser fails them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

pub struct Browser {
    pub client: Client,
    driver: Child,
    /// Where screenshots go when `SCIMD_SCREENSHOTS` names a directory.
    shots: Option<std::path::PathBuf>,
}

fn find(candidates: &[&str], env: &str) -> Option<String> {
    if let Ok(p) = std::env::var(env) {
        return Some(p);
    }
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` (with a message) when
    /// they are not installed outside CI.
    pub async fn start() -> Option<Browser> {
        let driver = find(
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "CHROMEDRIVER",
        );
        let chromium = find(
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "CHROMIUM",
        );
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "browser tests need chromium and chromedriver (apt-get install chromium chromium-driver)"
                );
            }
            eprintln!(
                "SKIPPED: browser test needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap().keep();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.display())],
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    let shots = std::env::var_os("SCIMD_SCREENSHOTS").map(std::path::PathBuf::from);
                    return Some(Browser {
                        client,
                        driver: child,
                        shots,
                    });
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("could not start a browser session: {last:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks something that loads a new page (a link or a submit button) and waits until
    /// the new page has loaded.
    pub async fn click(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.find(css).await.click().await.unwrap();
        self.wait_for_new_page(old).await;
    }

    /// The element matching `selector`: XPath when it starts with `//`, else CSS.
    pub async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        let locator = if selector.starts_with("//") {
            Locator::XPath(selector)
        } else {
            Locator::Css(selector)
        };
        self.client
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
    }

    /// Clicks a submit button whose form asks for confirmation, accepts the dialog and
    /// waits for the next page.
    pub async fn click_and_confirm(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.find(css).await.click().await.unwrap();
        self.client.accept_alert().await.unwrap();
        self.wait_for_new_page(old).await;
    }

    async fn wait_for_new_page(&self, old: fantoccini::elements::Element) {
        for _ in 0..500 {
            if old.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..500 {
            let state = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .unwrap();
            if state == "complete" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the page did not finish loading");
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn body(&self) -> String {
        self.text("body").await
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    pub async fn title(&self) -> String {
        self.client.title().await.unwrap()
    }

    /// Saves a PNG of the page when `SCIMD_SCREENSHOTS` is set (README screenshots).
    pub async fn screenshot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            let png = self.client.screenshot().await.unwrap();
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
