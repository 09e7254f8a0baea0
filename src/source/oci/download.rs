//! The chart layer: downloaded (or read from the content cache) and verified by size and sha256 before anyone sees it.

use futures_util::StreamExt as _;

use super::wire::{self, WireError};
use super::*;
use crate::http::{error_chain, Retry};

impl Ctx<'_> {
    /// Downloads the chart layer of `pin` and verifies its size and sha256.
    pub async fn download(&self, pin: &OciPin) -> Result<Vec<u8>, InputError> {
        // Keyed by repository too, as the manifests are: a layer shared by several repositories is
        // downloaded from each once, so how many requests a lock makes does not depend on which input
        // finished first.
        let key = format!("oci-blob:{}@{}", self.canonical, pin.layer_digest);
        let bytes = self
            .access
            .immutable(&key, |net| self.download_online(net, pin))
            .await
            .map_err(|e| self.uncached(e, format!("the chart layer {}", pin.layer_digest)))?;
        // What was downloaded is verified already; what was remembered is checked here.
        let actual = digest::sha256(&bytes);
        if actual != pin.layer_digest {
            return Err(self.error(Kind::Cache(format!(
                "cached chart layer {} hashes to {actual}",
                pin.layer_digest
            ))));
        }
        Ok(bytes)
    }

    pub(super) async fn download_online(
        &self,
        net: &crate::source::Net,
        pin: &OciPin,
    ) -> Result<Vec<u8>, InputError> {
        let url = self.api_url(net, &format!("blobs/{}", pin.layer_digest));
        let timeout = net.http.timeouts.request;
        let result = retry(
            net.http.policy,
            || async {
                match tokio::time::timeout(timeout, self.download_once(net, &url, pin)).await {
                    Ok(r) => r,
                    Err(_) => Err(Download::Call(WireError::Timeout)),
                }
            },
            |e| match e {
                Download::Call(e) => retry_kind(e),
                Download::Truncated(..) | Download::Stream(_) => Retry::Backoff,
                _ => Retry::No,
            },
        )
        .await;
        result.map_err(|(e, attempts)| {
            let expected = pin.layer_size;
            match e {
                Download::Call(error) => {
                    self.named("downloading the chart layer", Failed { error, attempts })
                }
                Download::TooLarge => self.error(Kind::TooLarge(Limit::Stated { expected })),
                Download::Truncated(received) => self.error(Kind::Truncated { received, expected }),
                Download::Digest(actual) => self.error(Kind::DigestMismatch {
                    what: "chart layer",
                    expected: pin.layer_digest.clone(),
                    actual,
                }),
                Download::Stream(message) => self.error(Kind::Transport {
                    what: "downloading the chart layer",
                    message,
                    attempts,
                }),
            }
        })
    }

    /// One download of the layer, read up to its stated size while it streams, then verified.
    pub(super) async fn download_once(
        &self,
        net: &crate::source::Net,
        url: &url::Url,
        pin: &OciPin,
    ) -> Result<Vec<u8>, Download> {
        let size = pin.layer_size;
        let (response, sent) = self.send(net, url, &[]).await.map_err(Download::Call)?;
        if !response.status().is_success() {
            let secrets = self.secrets(net, sent.as_ref());
            return Err(Download::Call(wire::status_error(response, &secrets).await));
        }
        if response.content_length().is_some_and(|n| n > size) {
            return Err(Download::TooLarge);
        }
        let mut bytes = Vec::with_capacity(size as usize);
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    if bytes.len() as u64 + chunk.len() as u64 > size {
                        return Err(Download::TooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Err(_) if (bytes.len() as u64) < size => {
                    return Err(Download::Truncated(bytes.len() as u64))
                }
                Err(e) => return Err(Download::Stream(error_chain(&e.without_url()))),
            }
        }
        if (bytes.len() as u64) < size {
            return Err(Download::Truncated(bytes.len() as u64));
        }
        let actual = digest::sha256(&bytes);
        if actual != pin.layer_digest {
            return Err(Download::Digest(actual));
        }
        Ok(bytes)
    }
}

pub(super) enum Download {
    Call(WireError),
    TooLarge,
    Truncated(u64),
    Digest(String),
    Stream(String),
}
