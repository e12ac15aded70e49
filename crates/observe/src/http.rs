//! The HTTP endpoint: a thin axum router over [`Observer`]. Read-only, GET only.

use std::future::Future;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::Observer;

/// The page reloads itself this often unless `?refresh=N` says otherwise.
const DEFAULT_REFRESH: u32 = 2;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve the endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    observer: Observer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(observer);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// What a curfew process other than the agent (the gateway) serves over HTTP: its metrics
/// text and its health. The same server and headers as the agent's endpoint.
pub trait Scrape: Send + Sync + 'static {
    /// The OpenMetrics text for `/metrics`.
    fn metrics(&self) -> String;
    /// The verdict for `/healthz` (200 when healthy, 503 when not).
    fn health(&self) -> crate::Health;
}

/// Serve `/metrics` and `/healthz` of `source` on `listener` until `shutdown` completes.
pub async fn serve_scrape(
    listener: TcpListener,
    source: std::sync::Arc<dyn Scrape>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape_metrics))
        .route("/healthz", get(scrape_health))
        .fallback(scrape_not_found)
        .with_state(source);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape_metrics(State(source): State<std::sync::Arc<dyn Scrape>>) -> Response {
    plain(StatusCode::OK, OPENMETRICS, source.metrics())
}

async fn scrape_health(State(source): State<std::sync::Arc<dyn Scrape>>) -> Response {
    let health = source.health();
    let code = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain(code, "text/plain; charset=utf-8", health.text())
}

async fn scrape_not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found: try /metrics (Prometheus) or /healthz\n".to_owned(),
    )
}

/// `?refresh=N`: seconds between reloads of the page, 0 for none.
#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    refresh: Option<u32>,
}

fn plain(code: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Run `work` off the async threads: answering reads the audit writer's state (which an fsync
/// may hold) and evaluates every live session, neither of which may stall the agent's tasks.
async fn off_thread<T: Send + 'static>(
    observer: Observer,
    work: impl FnOnce(&Observer) -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(move || work(&observer))
        .await
        .map_err(|e| {
            tracing::error!(target: "curfew::observe", "answering a request: {e}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "the request failed; see the agent's log\n".to_owned(),
            )
        })
}

async fn page(State(observer): State<Observer>, query: Query<PageQuery>) -> Response {
    let refresh = query.refresh.unwrap_or(DEFAULT_REFRESH).min(3600);
    let rendered = off_thread(observer, move |o| {
        o.page(Instant::now(), Timestamp::now(), refresh)
    })
    .await;
    let rendered = match rendered {
        Ok(rendered) => rendered,
        Err(response) => return response,
    };
    match rendered {
        Ok(html) => plain(StatusCode::OK, "text/html; charset=utf-8", html),
        Err(e) => {
            tracing::error!(target: "curfew::observe", "rendering the status page: {e}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "the status page could not be rendered; see the agent's log\n".to_owned(),
            )
        }
    }
}

async fn status(State(observer): State<Observer>) -> Response {
    let status = match off_thread(observer, |o| o.status(Instant::now(), Timestamp::now())).await {
        Ok(status) => status,
        Err(response) => return response,
    };
    match serde_json::to_string_pretty(&status) {
        Ok(json) => plain(StatusCode::OK, "application/json", json + "\n"),
        Err(e) => {
            tracing::error!(target: "curfew::observe", "serializing the status: {e}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "the status could not be serialized; see the agent's log\n".to_owned(),
            )
        }
    }
}

async fn metrics(State(observer): State<Observer>) -> Response {
    match off_thread(observer, |o| o.metrics(Instant::now())).await {
        Ok(text) => plain(StatusCode::OK, OPENMETRICS, text),
        Err(response) => response,
    }
}

async fn healthz(State(observer): State<Observer>) -> Response {
    let health = match off_thread(observer, |o| o.health(Instant::now())).await {
        Ok(health) => health,
        Err(response) => return response,
    };
    let code = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain(code, "text/plain; charset=utf-8", health.text())
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found: try / (status page), /status (JSON), /metrics (Prometheus) or /healthz\n"
            .to_owned(),
    )
}
