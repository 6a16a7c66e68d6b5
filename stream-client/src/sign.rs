//! SigV4 signing of the request, with credentials from the default AWS chain.

use std::time::SystemTime;

use aws_config::default_provider::{
    credentials::DefaultCredentialsChain, region::DefaultRegionChain,
};
use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use http::header::{HeaderName, HeaderValue};

use crate::error::{error_chain, ClientError};

/// What SigV4 signing needs: credentials, a region and a service name.
#[derive(Clone, Debug)]
pub struct Signer {
    /// The AWS credentials.
    pub credentials: Credentials,
    /// Region of the credential scope.
    pub region: String,
    /// Service of the credential scope (`lambda`, `execute-api`).
    pub service: String,
}

impl Signer {
    /// Finds the region (when not already known) and credentials with the default AWS chains
    /// (environment, profile files, web identity, ECS, IMDS).
    pub async fn from_default_chain(
        service: String,
        region: Option<String>,
    ) -> Result<Self, ClientError> {
        let region = match region {
            Some(r) => r,
            None => DefaultRegionChain::builder()
                .build()
                .region()
                .await
                .map(|r| r.to_string())
                .ok_or_else(|| {
                    ClientError::Credentials(
                    "--sigv4 needs a region and none was found: pass --region, or set AWS_REGION"
                        .to_owned(),
                )
                })?,
        };
        let chain = DefaultCredentialsChain::builder()
            .region(Region::new(region.clone()))
            .build()
            .await;
        let credentials = chain.provide_credentials().await.map_err(|e| {
        ClientError::Credentials(format!(
            "--sigv4 found no AWS credentials ({}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`",
            error_chain(&e)
        ))
    })?;
        Ok(Signer {
            credentials,
            region,
            service,
        })
    }

    /// Signs `method url` with `headers` and the exact `body`, returning the headers to add
    /// (`authorization`, `x-amz-date`, `x-amz-content-sha256`, and `x-amz-security-token`
    /// for temporary credentials).
    pub fn sign(
        &self,
        time: SystemTime,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ClientError> {
        let failed = |e: &dyn std::fmt::Display| {
            ClientError::Credentials(format!(
            "could not sign the request with SigV4 ({e}): check the URL and the AWS credentials"
        ))
        };
        let identity = self.credentials.clone().into();
        let mut settings = SigningSettings::default();
        // Sign the payload hash and send it: Function URLs and API Gateway accept it, and
        // some fronts (CloudFront OAC before a Function URL) require it for POST.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed(&e))?;
        let (instructions, _signature) =
            sign(request, &params).map_err(|e| failed(&e))?.into_parts();
        instructions
            .headers()
            .map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| failed(&e))?;
                let value = HeaderValue::from_str(value).map_err(|e| failed(&e))?;
                Ok((name, value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_scope_payload_hash_and_session_token() {
        let creds = Credentials::new("AKIDTEST", "secret", Some("token".into()), None, "test");
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let signer = Signer {
            credentials: creds,
            region: "eu-west-1".into(),
            service: "lambda".into(),
        };
        let headers = signer
            .sign(
                time,
                "POST",
                "https://abc.lambda-url.eu-west-1.on.aws/",
                &[("content-type", "application/json")],
                b"{}",
            )
            .expect("signs");
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, v)| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let auth = get("authorization");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/20231114/eu-west-1/lambda/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date"),
            "{auth}"
        );
        assert_eq!(get("x-amz-date"), "20231114T221320Z");
        assert_eq!(
            get("x-amz-content-sha256"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(get("x-amz-security-token"), "token");
    }
}
