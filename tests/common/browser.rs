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
    /// Chromium's profile: removed when the browser is dropped, after `close` stopped it.
    _profile: tempfile::TempDir,
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
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())],
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
                        _profile: profile,
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

    /// The focused element, as `tag`, `tag.class` (its first class) or `tag[data-copy=x]`.
    pub async fn focused(&self) -> String {
        let out = self
            .client
            .execute(
                r#"const e = document.activeElement;
                   const tag = e.tagName.toLowerCase();
                   if (e.dataset && e.dataset.copy) return tag + '[data-copy=' + e.dataset.copy + ']';
                   const cls = typeof e.className === 'string' && e.className.trim().split(/\s+/)[0];
                   return cls ? tag + '.' + cls : tag;"#,
                vec![],
            )
            .await
            .unwrap();
        out.as_str().unwrap_or_default().to_string()
    }

    /// Presses `key` on the focused element.
    pub async fn press(&self, key: fantoccini::key::Key) {
        let focused = self.client.active_element().await.unwrap();
        focused.send_keys(&key.to_string()).await.unwrap();
    }

    pub async fn title(&self) -> String {
        self.client.title().await.unwrap()
    }

    /// How many pixels the current page is wider than its window (0 when it fits), and
    /// the outermost elements that stick out, for the failure message.
    pub async fn overflow(&self) -> (i64, Vec<String>) {
        let out = self
            .client
            .execute(
                r#"const root = document.documentElement;
                   const width = root.clientWidth;
                   const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                       (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '');
                   const scrolls = e => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX);
                   const inScroller = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) { if (scrolls(p)) return true; } return false; };
                   const right = e => { const r = e.getBoundingClientRect(); return scrolls(e) ? r.right : Math.max(r.right, r.left + e.scrollWidth); };
                   const wide = Array.from(document.body.querySelectorAll('*'))
                       .filter(e => right(e) > width + 0.5 && !inScroller(e))
                       .slice(-5)
                       .map(e => name(e.parentElement) + ' > ' + name(e));
                   return [root.scrollWidth - width, wide];"#,
                vec![],
            )
            .await
            .unwrap();
        let over = out[0].as_i64().unwrap();
        let culprits = out[1]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        (over, culprits)
    }

    /// At phone width (390 px) each of `paths` fits: long URLs, ids and code wrap or
    /// scroll inside their own box, never the page.
    pub async fn fits_a_phone(&self, root: &str, paths: &[&str]) {
        self.client.set_window_size(390, 844).await.unwrap();
        for path in paths {
            self.goto(&format!("{root}{path}")).await;
            let (over, culprits) = self.overflow().await;
            assert_eq!(
                over, 0,
                "{path} is {over} px wider than a phone: {culprits:?}"
            );
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    /// The same-site pages the current page links to (no downloads, no static files).
    pub async fn links(&self) -> Vec<String> {
        let hrefs = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))",
                vec![],
            )
            .await
            .unwrap();
        hrefs
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h.as_str())
            .filter(|h| h.starts_with('/') && !h.starts_with("/static/") && !h.starts_with("//"))
            .filter(|h| {
                let path = h.split('?').next().unwrap_or(h);
                ![".csv", ".json", ".jsonl"]
                    .iter()
                    .any(|ext| path.ends_with(ext))
            })
            .map(str::to_string)
            .collect()
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
