//! The environment a function needs to call an `agentcore-local`, as the stack gives it,
//! for other drivers that start the functions themselves (the benchmark runs the release
//! binaries under its own Runtime API and must hand them the same settings).

use agentcore_local::LocalConfig;

/// The variables that point a function at the `agentcore-local` configured by `config` and
/// listening at `endpoint` (`http://127.0.0.1:PORT`): the runtime ARN, the endpoint
/// override, the credentials and region it signs with, and `FORWARD_FIELDS=demo` so that the
/// demo agent's knobs travel in the payload; and `AWS_SESSION_TOKEN` when the server checks
/// one. The same values as [`crate::Stack::start`] sets for the local demo agent.
pub fn local_agent(config: &LocalConfig, endpoint: &str) -> Vec<(String, String)> {
    let arn = config
        .runtime_arns
        .first()
        .cloned()
        .unwrap_or_else(|| agentcore_local::DEFAULT_RUNTIME_ARN.to_owned());
    let mut env: Vec<(String, String)> = vec![
        ("AGENT_RUNTIME_ARN".into(), arn),
        (
            "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE".into(),
            endpoint.to_owned(),
        ),
        ("AWS_ACCESS_KEY_ID".into(), config.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            config.secret_access_key.clone(),
        ),
        ("AWS_REGION".into(), config.region.clone()),
        // The demo agent's knobs travel in the payload's `demo` field.
        ("FORWARD_FIELDS".into(), "demo".into()),
    ];
    // A server that checks a session token (temporary credentials, as a Lambda role gives
    // a function) refuses a function that does not sign with it.
    if let Some(token) = &config.session_token {
        env.push(("AWS_SESSION_TOKEN".into(), token.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_names_the_default_runtime_and_credentials() {
        let env = local_agent(&LocalConfig::default(), "http://127.0.0.1:1");
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("AGENT_RUNTIME_ARN"),
            Some(agentcore_local::DEFAULT_RUNTIME_ARN)
        );
        assert_eq!(
            get("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE"),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(get("AWS_REGION"), Some(agentcore_local::DEFAULT_REGION));
        assert_eq!(get("FORWARD_FIELDS"), Some("demo"));
        assert_eq!(get("AWS_SESSION_TOKEN"), None);

        let with_token = LocalConfig {
            session_token: Some("token".into()),
            ..LocalConfig::default()
        };
        let env = local_agent(&with_token, "http://127.0.0.1:1");
        assert!(env.contains(&("AWS_SESSION_TOKEN".into(), "token".into())));
    }
}
