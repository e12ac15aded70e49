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

async fn page(State(observer): State<Observer>, query: Query<PageQuery>) -> Response {
    let refresh = query.refresh.unwrap_or(DEFAULT_REFRESH).min(3600);
    match observer.page(Instant::now(), Timestamp::now(), refresh) {
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
    let status = observer.status(Instant::now(), Timestamp::now());
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
    plain(
        StatusCode::OK,
        OPENMETRICS,
        observer.metrics(Instant::now()),
    )
}

async fn healthz(State(observer): State<Observer>) -> Response {
    let health = observer.health(Instant::now());
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
