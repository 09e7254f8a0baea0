//! The chart layer: downloaded (or read from the content cache) and verified by size and sha256 before anyone sees it.

use super::*;

impl Ctx<'_> {
    /// Downloads the chart layer of `pin` and verifies its size and sha256.
    pub async fn download(&self, pin: &OciPin) -> Result<Vec<u8>, OciError> {
        let key = format!("oci-blob:{}", pin.layer_digest);
        let Some(net) = self.access.net() else {
            let bytes = self
                .cached(&key)?
                .ok_or_else(|| self.offline(format!("the chart layer {}", pin.layer_digest)))?;
            let actual = digest::sha256(&bytes);
            if actual != pin.layer_digest {
                return Err(OciError::Cache(format!(
                    "cached chart layer {} hashes to {actual}",
                    pin.layer_digest
                )));
            }
            return Ok(bytes);
        };
        let bytes = self.download_online(net, pin).await?;
        self.remember(&key, &bytes)?;
        Ok(bytes)
    }

    pub(super) async fn download_online(
        &self,
        net: &crate::source::Net,
        pin: &OciPin,
    ) -> Result<Vec<u8>, OciError> {
        let reference = self.reference(&pin.tag);
        let descriptor = OciDescriptor {
            media_type: pin.layer_media_type.clone(),
            digest: pin.layer_digest.clone(),
            size: pin.layer_size as i64,
            ..Default::default()
        };
        let timeout = net.http.timeouts.request;
        let result = retry(
            net.http.policy,
            || async {
                match tokio::time::timeout(
                    timeout,
                    self.download_once(net, &reference, &descriptor, pin.layer_size),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(Download::Call(CallError::Timeout)),
                }
            },
            |e| match e {
                Download::Call(CallError::Timeout) => Retry::Backoff,
                Download::Call(CallError::Oci(e)) if transient(e) => Retry::Backoff,
                Download::Truncated(..) | Download::Stream(_) => Retry::Backoff,
                _ => Retry::No,
            },
        )
        .await;
        result.map_err(|(e, attempts)| {
            let (input, location) = (self.input.clone(), self.shown());
            match e {
                Download::Call(e) => self.name_error(
                    "downloading the chart layer",
                    e,
                    attempts,
                    timeout.as_secs_f64(),
                ),
                Download::TooLarge => OciError::Oversized {
                    input,
                    location,
                    expected: pin.layer_size,
                },
                Download::Truncated(received) => OciError::Truncated {
                    input,
                    location,
                    received,
                    expected: pin.layer_size,
                },
                Download::Digest(actual) => OciError::Digest {
                    input,
                    location,
                    what: "chart layer",
                    expected: pin.layer_digest.clone(),
                    actual,
                },
                Download::Stream(message) => OciError::Transport {
                    input,
                    location,
                    what: "downloading the chart layer",
                    message,
                    attempts,
                },
            }
        })
    }

    pub(super) async fn download_once(
        &self,
        net: &crate::source::Net,
        reference: &Reference,
        descriptor: &OciDescriptor,
        size: u64,
    ) -> Result<Vec<u8>, Download> {
        net.oci
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        let mut stream = net
            .oci
            .pull_blob_stream(reference, descriptor)
            .await
            .map_err(|e| Download::Call(CallError::Oci(e)))?;
        if stream.content_length.is_some_and(|n| n > size) {
            return Err(Download::TooLarge);
        }
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    if bytes.len() as u64 + chunk.len() as u64 > size {
                        return Err(Download::TooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                // oci-client's verifying stream fails at the end on a digest mismatch; name it ourselves.
                Err(_)
                    if bytes.len() as u64 == size
                        && digest::sha256(&bytes) != descriptor.digest =>
                {
                    return Err(Download::Digest(digest::sha256(&bytes)))
                }
                Err(_) if (bytes.len() as u64) < size => {
                    return Err(Download::Truncated(bytes.len() as u64))
                }
                Err(e) => return Err(Download::Stream(error_chain(&e))),
            }
        }
        if (bytes.len() as u64) < size {
            return Err(Download::Truncated(bytes.len() as u64));
        }
        let actual = digest::sha256(&bytes);
        if actual != descriptor.digest {
            return Err(Download::Digest(actual));
        }
        Ok(bytes)
    }
}

pub(super) enum Download {
    Call(CallError),
    TooLarge,
    Truncated(u64),
    Digest(String),
    Stream(String),
}
