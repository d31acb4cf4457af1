//! Critical events pushed to a webhook in Alertmanager's JSON format (the body of its
//! `POST /api/v2/alerts`: an array of `postableAlert`s), so an operator hears of a
//! reconciliation difference, the kill switch engaged, a strategy halted to L0 or a halted
//! market within seconds, not at Prometheus' next scrape and rule evaluation.
//!
//! Raising an alert never waits: it is put on a bounded queue and a background task posts
//! it, retrying with backoff. A full queue drops the alert and counts it
//! (`stratbox_engine_alerts_total{result="dropped"}`); an alert still refused after the last
//! try is counted as `failed`. Both are logged without the webhook's URL, which may carry a
//! token. Alertmanager resolves an alert posted without `endsAt` by itself after its
//! `resolve_timeout`, so events are posted once and never resolved here.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::transports::http::reqwest;
use tokio::sync::mpsc;

use crate::metrics::EngineMetrics;

/// Why the webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The URL is not an http(s) URL.
    #[error("alert webhook: {0}")]
    Url(String),
    /// A webhook is already running for this engine.
    #[error("alert webhook: already started")]
    AlreadyStarted,
    /// The HTTP client could not be built.
    #[error("alert webhook: {0}")]
    Client(String),
}

/// One event, as Alertmanager takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The `alertname` label, e.g. `StratboxReconciliationDifference`.
    pub name: &'static str,
    /// Labels besides `alertname`, `severity` and `service` (which every alert has).
    pub labels: Vec<(&'static str, String)>,
    /// One line for a pager.
    pub summary: String,
    /// The whole story.
    pub description: String,
    /// When it happened.
    pub at: SystemTime,
}

impl Alert {
    fn new(name: &'static str, labels: Vec<(&'static str, String)>, summary: String) -> Alert {
        Alert {
            name,
            labels,
            description: summary.clone(),
            summary,
            at: SystemTime::now(),
        }
    }

    /// The ledger and the chain differ on `asset` of `account` at `block`.
    pub fn reconciliation_difference(
        account: &str,
        asset: &str,
        block: u64,
        ledger: &str,
        chain: &str,
        difference: &str,
    ) -> Alert {
        let mut a = Alert::new(
            "StratboxReconciliationDifference",
            vec![("account", account.to_owned()), ("asset", asset.to_owned())],
            format!("{account}: the ledger and the chain differ on {asset} by {difference}"),
        );
        a.description = format!(
            "At block {block} the ledger books {ledger} of {asset} for {account}, the chain holds {chain} (difference {difference}). The kill switch is engaged; see `stratbox reconcile`."
        );
        a
    }

    /// The kill switch was engaged by `operator` (a person, `reconciliation`, `live-path`).
    pub fn kill_switch_engaged(operator: &str, reason: &str) -> Alert {
        let mut a = Alert::new(
            "StratboxKillSwitchEngaged",
            vec![("operator", operator.to_owned())],
            format!("kill switch engaged by {operator}: no trade is decided until it is cleared"),
        );
        a.description = format!("Engaged by {operator}: {reason}");
        a
    }

    /// `strategy` dropped to L0 (`cause`, e.g. `hard_limit_breach: limit_daily_loss`).
    pub fn strategy_halted(strategy: &str, from: &str, cause: &str) -> Alert {
        let mut a = Alert::new(
            "StratboxStrategyHalted",
            vec![("strategy", strategy.to_owned())],
            format!("strategy {strategy} halted (L0) from {from}: {cause}"),
        );
        a.description = format!(
            "{strategy} dropped from {from} to L0 ({cause}); it proposes nothing until an operator restores it (`stratbox strategy restore`)."
        );
        a
    }

    /// Trading on `market` stopped by `guard` (`governance`, `oracle`) for `why`.
    pub fn market_halted(market: &str, guard: &str, why: &str) -> Alert {
        let mut a = Alert::new(
            "StratboxMarketHalted",
            vec![("market", market.to_owned()), ("guard", guard.to_owned())],
            format!("market {market} halted by the {guard} guard"),
        );
        a.description = format!("{market} halted by the {guard} guard: {why}");
        a
    }

    /// The `postableAlert` object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut labels = serde_json::Map::new();
        labels.insert("alertname".into(), self.name.into());
        labels.insert("severity".into(), "critical".into());
        labels.insert("service".into(), "stratbox-engine".into());
        for (k, v) in &self.labels {
            labels.insert((*k).into(), v.clone().into());
        }
        serde_json::json!({
            "labels": labels,
            "annotations": {
                "summary": self.summary,
                "description": self.description,
            },
            "startsAt": rfc3339(self.at),
        })
    }
}

/// RFC 3339 in UTC, second precision (`2026-12-07T05:25:40Z`), as Alertmanager reads it.
fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    crate::risk_change::utc(ms)
}

/// Where and how alerts are posted.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The URL (`http://alertmanager:9093/api/v2/alerts`).
    pub url: String,
    /// Alerts waiting to be posted at most; more are dropped and counted.
    pub queue: usize,
    /// Tries per alert before it is counted `failed`.
    pub attempts: u32,
    /// The wait after the first failed try; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait between tries.
    pub max_backoff: Duration,
    /// One POST may take this long.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// Defaults: 256 queued, 6 tries from 500 ms apart up to 30 s, 5 s per POST.
    pub fn new(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: url.to_owned(),
            queue: 256,
            attempts: 6,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The URL as logs may show it: scheme, host and port only (a path or query may hold a
/// token, userinfo a password).
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// An engine's alert outlet; cheap to clone (every clone feeds the same queue). Raising
/// before a webhook is started, or without one, does nothing.
#[derive(Clone, Default)]
pub struct Alerts {
    queue: Arc<OnceLock<mpsc::Sender<Alert>>>,
    metrics: Option<Arc<EngineMetrics>>,
}

impl Alerts {
    /// An outlet counting into `metrics`.
    pub fn new(metrics: Arc<EngineMetrics>) -> Alerts {
        Alerts {
            queue: Arc::default(),
            metrics: Some(metrics),
        }
    }

    fn count(&self, result: &'static str) {
        if let Some(m) = &self.metrics {
            m.alerts.get_or_create(&[("result", result)]).inc();
        }
    }

    /// Queues `alert` for the webhook without waiting; a full queue drops it (counted).
    pub fn raise(&self, alert: Alert) {
        let Some(tx) = self.queue.get() else {
            return;
        };
        if let Err(e) = tx.try_send(alert) {
            let alert = match e {
                mpsc::error::TrySendError::Full(a) | mpsc::error::TrySendError::Closed(a) => a,
            };
            self.count("dropped");
            tracing::warn!(
                alert = alert.name,
                "alert queue full or closed: alert dropped"
            );
        }
    }

    /// Starts posting to `config.url`; the task ends when every clone of this outlet is
    /// dropped (the engine with it). Once per outlet.
    pub fn start_webhook(
        &self,
        config: WebhookConfig,
    ) -> Result<tokio::task::JoinHandle<()>, AlertError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| AlertError::Url(format!("{}: {e}", redacted(&config.url))))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AlertError::Url(format!(
                "{}: only http:// and https:// are posted to",
                redacted(&config.url)
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| AlertError::Client(e.to_string()))?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        self.queue.set(tx).map_err(|_| AlertError::AlreadyStarted)?;
        let poster = Poster {
            client,
            url,
            config,
            alerts: Alerts {
                queue: Arc::default(),
                metrics: self.metrics.clone(),
            },
        };
        Ok(tokio::spawn(poster.run(rx)))
    }
}

struct Poster {
    client: reqwest::Client,
    url: reqwest::Url,
    config: WebhookConfig,
    /// Only for its counters (its queue is never set).
    alerts: Alerts,
}

impl Poster {
    async fn run(self, mut rx: mpsc::Receiver<Alert>) {
        let shown = redacted(self.url.as_str());
        while let Some(alert) = rx.recv().await {
            let body = serde_json::Value::Array(vec![alert.to_json()]).to_string();
            let mut wait = self.config.first_backoff;
            let mut tries = 0;
            loop {
                tries += 1;
                let why = match self
                    .client
                    .post(self.url.clone())
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!("HTTP {}", r.status())),
                    // Without the URL: reqwest's errors quote it whole.
                    Err(e) => Some(e.without_url().to_string()),
                };
                let Some(why) = why else {
                    self.alerts.count("sent");
                    tracing::info!(alert = alert.name, webhook = %shown, tries, "alert posted");
                    break;
                };
                if tries >= self.config.attempts {
                    self.alerts.count("failed");
                    tracing::error!(alert = alert.name, webhook = %shown, tries, error = %why, "alert not delivered; giving up");
                    break;
                }
                tracing::warn!(alert = alert.name, webhook = %shown, tries, error = %why, "alert not delivered; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.config.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_621_140);
        assert_eq!(rfc3339(t), "2026-12-07T05:25:40Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn the_url_is_shown_without_path_or_credentials() {
        assert_eq!(
            redacted("https://user:pw@hooks.example.com:8443/t/SECRET?k=v"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(redacted("not a url"), "(unparsable URL)");
    }

    #[test]
    fn a_postable_alert_has_alertmanagers_fields() {
        let a = Alert::strategy_halted("momentum", "L3", "hard_limit_breach: limit_daily_loss");
        let v = a.to_json();
        assert_eq!(v["labels"]["alertname"], "StratboxStrategyHalted");
        assert_eq!(v["labels"]["severity"], "critical");
        assert_eq!(v["labels"]["strategy"], "momentum");
        assert!(
            v["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("limit_daily_loss"))
        );
        assert!(v["startsAt"].as_str().is_some_and(|s| s.ends_with('Z')));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = EngineMetrics::new();
        let alerts = Alerts::new(metrics.clone());
        // Nothing listens on port 1: every post fails, so the queue stays full.
        let config = WebhookConfig {
            queue: 1,
            attempts: 1,
            ..WebhookConfig::new("http://127.0.0.1:1/api/v2/alerts")
        };
        let _task = alerts.start_webhook(config).expect("webhook");
        for _ in 0..50 {
            alerts.raise(Alert::kill_switch_engaged("alice", "test"));
        }
        let dropped = metrics.alerts.get_or_create(&[("result", "dropped")]).get();
        assert!(dropped >= 48, "dropped {dropped}");
        assert!(matches!(
            alerts.start_webhook(WebhookConfig::new("http://127.0.0.1:1/")),
            Err(AlertError::AlreadyStarted)
        ));
        assert!(matches!(
            Alerts::default().start_webhook(WebhookConfig::new("ftp://x/")),
            Err(AlertError::Url(_))
        ));
    }
}
