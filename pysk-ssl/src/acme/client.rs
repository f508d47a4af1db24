//! The connection to the ACME CA: the account (kept in
//! `ssl_acme_account`, mode 0600, never quoted), an HTTPS client trusting
//! `--ca-file` or the system's store, each request bounded by
//! `ssl_acme_timeout` and each exchange by [`EXCHANGE_LIMIT`].

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountBuilder, AccountCredentials, BodyWrapper, BytesResponse, HttpClient, NewAccount,
};
use pysk_common::atomic;

use super::{Options, acme_error};
use crate::error::SslError;

/// The account of `ssl_acme_account` at the directory, or a new one whose
/// credentials are written there (mode 0600) first.
pub(super) async fn account(options: &Options) -> Result<Account, SslError> {
    let path = &options.account;
    if path.exists() {
        return existing_account(options).await;
    }
    let new = NewAccount {
        contact: &[],
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder(options)?
        .create(&new, options.directory.clone(), None)
        .await
        .map_err(|e| acme_error("creating the account", e))?;
    let text = serde_json::to_vec(&credentials)
        .map_err(|e| pysk_common::Error::Internal(format!("the account's credentials: {e}")))?;
    let private = atomic::Options {
        mode: Some(0o600),
        ..atomic::Options::default()
    };
    atomic::replace(path, &text, private)?;
    Ok(account)
}

/// The account whose credentials `ssl_acme_account` keeps.
pub(super) async fn existing_account(options: &Options) -> Result<Account, SslError> {
    let credentials = read_credentials(&options.account, &options.directory)?;
    builder(options)?
        .from_credentials(credentials)
        .await
        .map_err(|e| acme_error("the account", e))
}

/// The credentials in `path`, which must be for `directory`. Their content
/// is never quoted: a parse error gives its position only.
pub(super) fn read_credentials(
    path: &Path,
    directory: &str,
) -> Result<AccountCredentials, SslError> {
    let secret = pysk_common::secret::read_file(path)?;
    let bad = |reason: String| SslError::Input {
        path: path.to_owned(),
        reason: format!("not an ACME account's credentials ({reason})"),
    };
    let value: serde_json::Value = serde_json::from_str(secret.expose())
        .map_err(|e| bad(format!("line {}, column {}", e.line(), e.column())))?;
    let stored = value
        .get("directory")
        .and_then(|d| d.as_str())
        .unwrap_or("");
    if stored != directory {
        return Err(SslError::Input {
            path: path.to_owned(),
            reason: format!(
                "the account is at \"{stored}\", not at \"{directory}\": give another ssl_acme_account"
            ),
        });
    }
    // serde's message could quote a value of the file: not given.
    serde_json::from_value(value).map_err(|_| bad("a field missing or not as expected".to_owned()))
}

/// The client: HTTPS only, trusting every certificate of `--ca-file`,
/// else the system's store.
fn builder(options: &Options) -> Result<AccountBuilder, SslError> {
    let mut roots = rustls::RootCertStore::empty();
    for root in pysk_common::tls::roots(options.install.ca_file.as_deref())? {
        // A system certificate rustls cannot use is simply not trusted.
        let _ = roots.add(root);
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| acme_error("the client", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client: HyperClient<_, BodyWrapper<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Account::builder_with_http(Box::new(Limited(
        client,
        options.request_limit,
    ))))
}

/// How long one exchange with the CA may take in all (an order with its
/// polling is bounded by the order's retry policy; this also bounds a body that
/// stalls).
const EXCHANGE_LIMIT: Duration = Duration::from_secs(300);

/// The HTTP client with each request (connect, TLS and the response's
/// head) bounded by `ssl_acme_timeout`: a CA that accepts connections and
/// never answers must not hold `renew` in cron, and the directory's lock,
/// for ever.
struct Limited<C>(C, Duration);

impl<C: HttpClient> HttpClient for Limited<C> {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let (answer, limit) = (self.0.request(req), self.1);
        Box::pin(async move {
            tokio::time::timeout(limit, answer)
                .await
                .unwrap_or_else(|_| Err(instant_acme::Error::Other(no_answer(limit))))
        })
    }
}

/// The error of a CA that did not answer within `limit`.
fn no_answer(limit: Duration) -> Box<dyn std::error::Error + Send + Sync> {
    format!("no answer within {} s", limit.as_secs()).into()
}

/// Runs one exchange with the CA on a runtime of its own, bounded by
/// [`EXCHANGE_LIMIT`].
pub(super) fn exchange<T>(
    step: &'static str,
    work: impl Future<Output = Result<T, SslError>>,
) -> Result<T, SslError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| acme_error("starting the client", e))?;
    runtime
        .block_on(async { tokio::time::timeout(EXCHANGE_LIMIT, work).await })
        .unwrap_or_else(|_| Err(acme_error(step, no_answer(EXCHANGE_LIMIT))))
}
