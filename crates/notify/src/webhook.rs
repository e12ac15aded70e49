//! `[notify] webhook`: the event POSTed as JSON over HTTP/1.1, to an `http://` or `https://`
//! URL. HTTPS uses rustls (ring) and the system's trusted roots. Any 2xx answer is success.
//! The URL may carry a token (in its path or query): logs and records show only its scheme
//! and host ([`redact_url`]).

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A webhook URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// `https` or not.
    pub https: bool,
    /// The host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// The port (80 or 443 unless given).
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// The path and query (`/` if none).
    pub path: String,
}

impl WebhookUrl {
    /// Take a URL apart; user names and passwords in it are refused (they would be sent in
    /// the clear and logged nowhere; put a token in the path or query instead).
    pub fn parse(url: &str) -> Result<WebhookUrl, String> {
        let (https, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => return Err("the webhook must be an http:// or https:// URL".to_owned()),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("the webhook URL must not hold a user name or password".to_owned());
        }
        let tail = tail.split('#').next().unwrap_or("");
        let path = if tail.is_empty() {
            "/".to_owned()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_owned()
        };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| "the webhook URL has an unclosed [ in its host".to_owned())?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None if after.is_empty() => default_port,
                None => return Err("the webhook URL has text after its host".to_owned()),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), parse_port(port)?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err("the webhook URL has no host".to_owned());
        }
        Ok(WebhookUrl {
            https,
            host,
            port,
            authority: authority.to_owned(),
            path,
        })
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("the webhook URL's port {text:?} is not a number from 0 to 65535"))
}

/// A URL as logs may show it: scheme and host only (the path and query may hold a token).
pub fn redact_url(url: &str) -> String {
    match WebhookUrl::parse(url) {
        Ok(u) => format!(
            "{}://{}/…",
            if u.https { "https" } else { "http" },
            u.authority
        ),
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// rustls with the ring provider and the system's trusted roots (those it cannot read are
/// skipped, with a warning).
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(target: "curfew::notify", "reading the system's trusted certificates for the webhook: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(target: "curfew::notify", "no trusted certificate found on this system ({ignored} unusable): an https webhook will fail");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS for the webhook: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// POST `body` once; `tls` is required for an https URL.
pub(crate) async fn post(
    url: &str,
    body: &str,
    tls: Option<Result<Arc<rustls::ClientConfig>, String>>,
) -> Result<(), String> {
    let u = WebhookUrl::parse(url)?;
    let shown = redact_url(url);
    let stream = TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| format!("cannot connect to {shown}: {e}"))?;
    let status = if u.https {
        let config = tls.unwrap_or_else(|| Err("no TLS configuration".to_owned()))?;
        let name = rustls::pki_types::ServerName::try_from(u.host.clone())
            .map_err(|e| format!("{shown}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {shown}: {e}"))?;
        exchange(TokioIo::new(stream), &u, body).await
    } else {
        exchange(TokioIo::new(stream), &u, body).await
    }
    .map_err(|e| format!("{shown}: {e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{shown} answered {status}"))
    }
}

/// One request on a fresh connection; the answer's status.
async fn exchange<I>(io: I, u: &WebhookUrl, body: &str) -> Result<hyper::StatusCode, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::post(u.path.as_str())
        .header(hyper::header::HOST, u.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("curfew/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        // Only the status matters: the body is not read (a server could send without end),
        // and the connection is closed.
        Ok(response.status())
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use super::*;

    #[test]
    fn urls_are_taken_apart_and_shown_without_their_path() {
        let u = WebhookUrl::parse("https://hooks.example.com/services/T0/SECRET?x=1").unwrap();
        assert!(u.https);
        assert_eq!((u.host.as_str(), u.port), ("hooks.example.com", 443));
        assert_eq!(u.path, "/services/T0/SECRET?x=1");
        assert_eq!(
            redact_url("https://hooks.example.com/services/T0/SECRET"),
            "https://hooks.example.com/…"
        );
        let u = WebhookUrl::parse("http://[::1]:8080?token=abc").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "/?token=abc")
        );
        let u = WebhookUrl::parse("HTTP://127.0.0.1").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.https), (80, "/", false));
        assert!(WebhookUrl::parse("http://user:pw@host/").is_err());
        assert!(WebhookUrl::parse("ftp://host/").is_err());
        assert!(WebhookUrl::parse("http://host:99999/").is_err());
        assert!(!redact_url("http://user:SECRET@host/").contains("SECRET"));
    }
}
