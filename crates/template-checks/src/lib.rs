//! Checks for the deployment artifacts of the three options.
//!
//! This crate ships no code to Lambda. Its integration tests (`tests/templates.rs`)
//! parse each option's SAM `template.yaml` and `events/*.json` and pin the properties a
//! careless edit could silently weaken:
//!
//! - secure defaults: IAM auth on the Function URL and on both REST APIs, one named CORS
//!   origin (never `*`), `arm64` and 128 MB;
//! - least privilege: `bedrock-agentcore:InvokeAgentRuntime` and `StopRuntimeSession` (and
//!   `InvokeAgentRuntimeForUser` only when `RuntimeUserId=true`), on the configured runtime
//!   ARN only; API Gateway's invoke role limited to the one function;
//! - callers and sessions: the `CallerIdentity`/`SessionScope`/`Jwt*` parameters wired to
//!   the function's environment, and the template `Rules` that refuse an endpoint that would
//!   be anonymous by accident. The tests evaluate those Rules and Conditions for parameter
//!   combinations (defaults, a public JWT endpoint, CloudFront OAC, a Cognito authorizer,
//!   ...) as CloudFormation does before it creates anything;
//! - `DELETE` (ending a session) on the same path as `POST`, with the same auth and
//!   integration, and allowed by the CORS preflights;
//! - option 2's public edge (`PublicEdge=true`): a CloudFront distribution, its origin access
//!   control (Lambda, SigV4, always signing) and AWS WAF web ACL exist only under the
//!   condition; CloudFront's two Lambda permissions name this distribution; no caching,
//!   `POST`/`OPTIONS`/`DELETE` over HTTPS only; the rules refuse the edge beside an open URL,
//!   without a JWT, or with the JWT in `Authorization`, and a web ACL created outside
//!   us-east-1 (the evaluator knows `AWS::Region`);
//! - timeouts that agree: option 1 gives up before API Gateway's 29 s, option 3 streams
//!   through the `response-streaming-invocations` URI with `responseTransferMode: STREAM`;
//! - guard rails (issue 14): every accepted combination of the auth parameters that leaves
//!   the front door open verifies a JWT or carries `AllowAnonymous=true`; reserved
//!   concurrency on every function; streaming timeouts sized to the agent, not to 900 s;
//!   both REST APIs redeployed on every stack update (`AlwaysDeploy`), so auth changes reach
//!   the stage; API Gateway's invoke role trusted only with `aws:SourceAccount` and
//!   `aws:SourceArn`; no `LogLevel` at which the runtime or the SDK log raw events; every
//!   checkov skip listed with its reason, and `make lint` running a pinned checkov;
//! - Lambda Managed Instances (issue 16, `CapacityProviderArn`): in every option a second
//!   function exists only under `ManagedInstancesOn`, equal to the on-demand one but for its
//!   memory, capacity provider and reserved concurrency, with its own alarms; in options 1
//!   and 3 the API's integration, and the grant API Gateway holds, follow it;
//! - buildability: `BuildMethod: rust-cargolambda` with the workspace binary of each option;
//! - sample events that `lambda_http` deserializes as the event type the option receives.
//!
//! Run with `cargo test -p template-checks`. `cfn-lint` and `checkov` (`make lint`) check
//! the templates against the CloudFormation and SAM schemas and AWS security practice;
//! these tests check intent.

use std::path::PathBuf;

/// How a deployed option receives its Lambda event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventShape {
    /// API Gateway REST proxy event (payload format 1.0).
    ApiGatewayV1,
    /// Function URL event (API Gateway HTTP API payload format 2.0).
    FunctionUrlV2,
}

/// One deployable option: its folder, which is also the name of its binary and function.
#[derive(Debug, Clone, Copy)]
pub struct DeployOption {
    /// Folder under the workspace root, equal to the Cargo binary name.
    pub name: &'static str,
    /// The event shape its function receives.
    pub event_shape: EventShape,
}

/// The three deployable options.
pub const OPTIONS: [DeployOption; 3] = [
    DeployOption {
        name: "option1-api-gateway",
        event_shape: EventShape::ApiGatewayV1,
    },
    DeployOption {
        name: "option2-lambda-url",
        event_shape: EventShape::FunctionUrlV2,
    },
    DeployOption {
        name: "option3-api-gateway-streaming",
        event_shape: EventShape::ApiGatewayV1,
    },
];

/// The Cargo workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
}

impl DeployOption {
    /// Path of the option's SAM template.
    pub fn template_path(&self) -> PathBuf {
        workspace_root().join(self.name).join("template.yaml")
    }

    /// Path of the option's sample-event folder.
    pub fn events_dir(&self) -> PathBuf {
        workspace_root().join(self.name).join("events")
    }
}

/// The CloudFormation intrinsic-function key for a YAML short-form tag
/// (`!Ref` -> `Ref`, `!Condition` -> `Condition`, `!Sub` -> `Fn::Sub`, ...).
pub fn intrinsic_key(tag: &str) -> String {
    let name = tag.trim_start_matches('!');
    match name {
        "Ref" | "Condition" => name.to_owned(),
        other => format!("Fn::{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_tags_map_to_long_form_keys() {
        assert_eq!(intrinsic_key("!Ref"), "Ref");
        assert_eq!(intrinsic_key("!Sub"), "Fn::Sub");
        assert_eq!(intrinsic_key("GetAtt"), "Fn::GetAtt");
        assert_eq!(intrinsic_key("!Condition"), "Condition");
    }

    #[test]
    fn option_paths_exist() {
        for option in OPTIONS {
            assert!(
                option.template_path().is_file(),
                "{:?}",
                option.template_path()
            );
            assert!(option.events_dir().is_dir(), "{:?}", option.events_dir());
        }
    }
}
