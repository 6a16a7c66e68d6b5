//! Security defaults and intent of the three SAM templates, and the sample events.
//!
//! The YAML is converted to `serde_json::Value` with CloudFormation short-form tags
//! (`!Ref X`, `!Sub s`, `!GetAtt A.B`, `!If [...]`) rewritten to their long form
//! (`{"Ref": "X"}`, `{"Fn::Sub": "s"}`, `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::If": [...]}`),
//! so every assertion below sees the template as CloudFormation does.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{json, Map, Value};
use template_checks::{intrinsic_key, workspace_root, DeployOption, EventShape, OPTIONS};

// ------------------------------------------------------------------------------------------
// Loading

fn yaml_to_json(value: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let key = intrinsic_key(&tagged.tag.to_string());
            let inner = yaml_to_json(tagged.value);
            let inner = match (key.as_str(), inner) {
                // `!GetAtt Resource.Attribute` is the dotted short form of a two-element list.
                ("Fn::GetAtt", Value::String(s)) => {
                    let (resource, attribute) =
                        s.split_once('.').expect("!GetAtt needs Resource.Attribute");
                    json!([resource, attribute])
                }
                (_, inner) => inner,
            };
            json!({ key: inner })
        }
    }
}

fn load_template(option: &DeployOption) -> Value {
    let path = option.template_path();
    let text = fs::read_to_string(&path).expect("read template.yaml");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml is YAML");
    yaml_to_json(yaml)
}

fn option(name: &str) -> DeployOption {
    *OPTIONS
        .iter()
        .find(|o| o.name == name)
        .expect("known option")
}

// ------------------------------------------------------------------------------------------
// Small helpers over the template

fn param<'a>(t: &'a Value, name: &str) -> &'a Value {
    t.get("Parameters")
        .and_then(|p| p.get(name))
        .unwrap_or_else(|| panic!("parameter {name} is missing"))
}

fn param_default(t: &Value, name: &str) -> Value {
    param(t, name)
        .get("Default")
        .cloned()
        .unwrap_or(Value::Null)
}

/// A number that YAML may hold as a number or as a string (`Default: "128"`).
fn as_number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn resources(t: &Value) -> &Map<String, Value> {
    t.get("Resources")
        .and_then(Value::as_object)
        .expect("Resources")
}

fn resources_of_type<'a>(t: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

fn the_function(t: &Value) -> (&str, &Value) {
    let functions = resources_of_type(t, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 1, "exactly one AWS::Serverless::Function");
    functions[0]
}

fn props(resource: &Value) -> &Value {
    resource.get("Properties").expect("Properties")
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

/// Every value in the tree, depth first (the root included).
fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
        Value::Object(map) => map.values().for_each(|i| walk(i, out)),
        _ => {}
    }
}

fn all_values(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// Every string leaf in the tree (strings inside `Fn::Sub` included).
fn strings(v: &Value) -> Vec<&str> {
    all_values(v)
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

/// Every (key, value) pair of every object in the tree.
fn entries(v: &Value) -> Vec<(&str, &Value)> {
    all_values(v)
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
        .collect()
}

/// A value as a list: IAM allows `Action: x` as well as `Action: [x, y]`.
fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Every identity-policy statement under `v` (objects with Effect and Action but no
/// Principal, so trust policies are left out), including those inside `Fn::If` branches.
fn iam_statements(v: &Value) -> Vec<&Value> {
    all_values(v)
        .into_iter()
        .filter(|v| v.get("Effect").is_some() && v.get("Action").is_some())
        .filter(|v| v.get("Principal").is_none())
        .collect()
}

fn resources_value(t: &Value) -> &Value {
    t.get("Resources").expect("Resources")
}

fn statement_actions(statement: &Value) -> Vec<String> {
    as_list(statement.get("Action").expect("Action"))
        .into_iter()
        .map(|a| a.as_str().expect("actions are plain strings").to_owned())
        .collect()
}

fn statement_resources(statement: &Value) -> Vec<&Value> {
    as_list(
        statement
            .get("Resource")
            .expect("Resource (NotResource is not used)"),
    )
}

/// Does this value reference parameter `name` (`Ref` or `${name}` inside `Fn::Sub`)?
fn references_param(v: &Value, name: &str) -> bool {
    if *v == reference(name) {
        return true;
    }
    match v.get("Fn::Sub") {
        Some(Value::String(s)) => s.contains(&format!("${{{name}}}")),
        Some(Value::Array(parts)) => parts
            .first()
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains(&format!("${{{name}}}"))),
        _ => false,
    }
}

fn env_vars(function: &Value) -> &Map<String, Value> {
    props(function)
        .pointer("/Environment/Variables")
        .and_then(Value::as_object)
        .expect("Environment.Variables")
}

// ------------------------------------------------------------------------------------------
// Every template

#[test]
fn every_template_is_sam_and_builds_its_own_binary_with_cargo_lambda() {
    for option in OPTIONS {
        let t = load_template(&option);
        assert_eq!(
            t["Transform"],
            json!("AWS::Serverless-2016-10-31"),
            "{}",
            option.name
        );
        let (_, function) = the_function(&t);
        assert_eq!(
            function.pointer("/Metadata/BuildMethod"),
            Some(&json!("rust-cargolambda"))
        );
        assert_eq!(
            function.pointer("/Metadata/BuildProperties/Binary"),
            Some(&json!(option.name)),
            "{}: the workspace has several binaries; SAM must build this one",
            option.name
        );
        let p = props(function);
        // The rust-cargolambda builder copies <CodeUri>/target/lambda/<Binary>/bootstrap:
        // CodeUri must be the workspace root, where the shared target/ directory lives.
        assert_eq!(p["CodeUri"], json!(".."), "{}", option.name);
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert_eq!(p["Runtime"], json!("provided.al2023"));
        assert_eq!(p["Handler"], json!("bootstrap"));
        assert_eq!(p["Architectures"], json!([reference("Architecture")]));
        assert_eq!(p["MemorySize"], reference("MemorySize"));
    }
}

#[test]
fn defaults_are_arm64_and_128_mb() {
    for option in OPTIONS {
        let t = load_template(&option);
        assert_eq!(
            param_default(&t, "Architecture"),
            json!("arm64"),
            "{}",
            option.name
        );
        assert_eq!(
            param(&t, "Architecture")["AllowedValues"],
            json!(["arm64", "x86_64"])
        );
        assert_eq!(
            as_number(&param_default(&t, "MemorySize")),
            Some(128.0),
            "{}",
            option.name
        );
    }
}

#[test]
fn agent_parameters_are_validated() {
    for option in OPTIONS {
        let t = load_template(&option);
        assert_eq!(
            param(&t, "AgentRuntimeArn")["AllowedPattern"],
            json!("^arn:aws[a-z-]*:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:runtime/[A-Za-z0-9_-]+$"),
            "{}",
            option.name
        );
        assert!(
            param(&t, "AgentRuntimeArn").get("Default").is_none(),
            "no default runtime ARN"
        );
        assert_eq!(param_default(&t, "AgentQualifier"), json!("DEFAULT"));
        for name in [
            "LogLevel",
            "ForwardFields",
            "ForwardHeaders",
            "LogRetentionInDays",
        ] {
            let _ = param(&t, name);
        }
        assert_eq!(
            as_number(&param_default(&t, "LogRetentionInDays")),
            Some(30.0)
        );
    }
}

#[test]
fn environment_matches_the_contract() {
    let contracts =
        fs::read_to_string(workspace_root().join("docs/CONTRACTS.md")).expect("docs/CONTRACTS.md");
    for option in OPTIONS {
        let t = load_template(&option);
        let (_, function) = the_function(&t);
        let env = env_vars(function);
        for name in env.keys() {
            assert!(
                contracts.contains(&format!("`{name}`")),
                "{}: env var {name} is not documented in docs/CONTRACTS.md",
                option.name
            );
        }
        assert_eq!(env["AGENT_RUNTIME_ARN"], reference("AgentRuntimeArn"));
        assert_eq!(env["AGENT_QUALIFIER"], reference("AgentQualifier"));
        assert_eq!(env["FORWARD_FIELDS"], reference("ForwardFields"));
        assert_eq!(env["FORWARD_HEADERS"], reference("ForwardHeaders"));
        assert_eq!(env["RUST_LOG"], reference("LogLevel"));
    }
}

#[test]
fn functions_log_to_their_own_group_with_retention() {
    for option in OPTIONS {
        let t = load_template(&option);
        let groups = resources_of_type(&t, "AWS::Logs::LogGroup");
        assert!(!groups.is_empty());
        for (id, group) in &groups {
            assert_eq!(
                props(group)["RetentionInDays"],
                reference("LogRetentionInDays"),
                "{id}"
            );
        }
        let (_, function) = the_function(&t);
        let target = props(function)
            .pointer("/LoggingConfig/LogGroup")
            .expect("LoggingConfig");
        let group_id = target["Ref"]
            .as_str()
            .expect("LoggingConfig.LogGroup is a Ref");
        assert!(
            groups.iter().any(|(id, _)| *id == group_id),
            "{}",
            option.name
        );
    }
}

// ------------------------------------------------------------------------------------------
// IAM

#[test]
fn agentcore_permission_is_invoke_only_on_the_configured_runtime() {
    for option in OPTIONS {
        let t = load_template(&option);
        let (_, function) = the_function(&t);
        assert!(
            props(function).get("Policies").is_none(),
            "{}: the function uses the explicit least-privilege role, not SAM policy templates",
            option.name
        );
        assert!(props(function).get("Role").is_some());

        let statements = iam_statements(resources_value(&t));
        let mut invoke_statements = 0;
        for statement in &statements {
            let actions = statement_actions(statement);
            for action in &actions {
                assert!(
                    action != "*" && !action.ends_with(":*"),
                    "{}: wildcard action {action}",
                    option.name
                );
            }
            if !actions
                .iter()
                .any(|a| a.to_ascii_lowercase().starts_with("bedrock-agentcore:"))
            {
                continue;
            }
            invoke_statements += 1;
            assert_eq!(statement["Effect"], json!("Allow"));
            assert_eq!(
                actions,
                ["bedrock-agentcore:InvokeAgentRuntime"],
                "{}",
                option.name
            );
            let resources = statement_resources(statement);
            assert!(!resources.is_empty());
            for resource in resources {
                assert!(
                    references_param(resource, "AgentRuntimeArn"),
                    "{}: {resource} does not reference AgentRuntimeArn",
                    option.name
                );
                assert!(
                    strings(resource).iter().all(|s| !s.contains('*')),
                    "{}: wildcard in agent resource {resource}",
                    option.name
                );
            }
        }
        assert_eq!(invoke_statements, 1, "{}", option.name);
    }
}

#[test]
fn only_xray_may_use_a_wildcard_resource() {
    for option in OPTIONS {
        let t = load_template(&option);
        for statement in iam_statements(resources_value(&t)) {
            let wildcard = statement_resources(statement)
                .iter()
                .any(|r| **r == json!("*"));
            if wildcard {
                for action in statement_actions(statement) {
                    assert!(
                        action.starts_with("xray:"),
                        "{}: {action} on Resource \"*\"",
                        option.name
                    );
                }
            }
        }
    }
}

#[test]
fn log_permissions_are_scoped_to_the_function_log_group() {
    for option in OPTIONS {
        let t = load_template(&option);
        let log_statements: Vec<_> = iam_statements(resources_value(&t))
            .into_iter()
            .filter(|s| statement_actions(s).iter().any(|a| a.starts_with("logs:")))
            .collect();
        assert_eq!(log_statements.len(), 1, "{}", option.name);
        let actions: BTreeSet<_> = statement_actions(log_statements[0]).into_iter().collect();
        assert_eq!(
            actions,
            BTreeSet::from([
                "logs:CreateLogStream".to_owned(),
                "logs:PutLogEvents".to_owned()
            ])
        );
        assert_eq!(
            statement_resources(log_statements[0]),
            [&get_att("FunctionLogGroup", "Arn")]
        );
    }
}

// ------------------------------------------------------------------------------------------
// CORS

#[test]
fn cors_origin_is_one_named_origin_never_a_wildcard() {
    for option in OPTIONS {
        let t = load_template(&option);
        let origin = param(&t, "CorsAllowOrigin");
        let default = origin["Default"]
            .as_str()
            .expect("CorsAllowOrigin has a default");
        assert!(
            !default.contains('*'),
            "{}: default origin {default}",
            option.name
        );
        assert!(default.starts_with("https://"), "{}", option.name);
        let pattern = origin["AllowedPattern"]
            .as_str()
            .expect("CorsAllowOrigin AllowedPattern");
        assert!(
            !pattern.contains('*'),
            "{}: the pattern must not admit *",
            option.name
        );

        let mut origin_settings = 0;
        for (key, value) in entries(resources_value(&t)) {
            // Function URL Cors, the handler's env, and API Gateway header mappings
            // (method.response.header.* / gatewayresponse.header.*). A boolean is a
            // MethodResponses declaration that the header exists, not a value.
            let is_origin_setting = key == "AllowOrigins"
                || key == "CORS_ALLOW_ORIGIN"
                || key.ends_with("header.Access-Control-Allow-Origin");
            if !is_origin_setting || value.is_boolean() {
                continue;
            }
            origin_settings += 1;
            for s in strings(value) {
                assert!(!s.contains('*'), "{}: {key} allows {s}", option.name);
            }
            let items = as_list(value);
            assert!(
                items.iter().all(|v| references_param(v, "CorsAllowOrigin")),
                "{}: {key} = {value} does not come from CorsAllowOrigin",
                option.name
            );
        }
        assert!(
            origin_settings > 0,
            "{}: no CORS origin configured",
            option.name
        );
    }
}

// ------------------------------------------------------------------------------------------
// Option 1: API Gateway REST, buffered

#[test]
fn option1_gives_up_before_api_gateway_does() {
    let t = load_template(&option("option1-api-gateway"));
    let (id, function) = the_function(&t);
    let timeout = as_number(&props(function)["Timeout"]).expect("a literal Timeout");
    assert!(
        timeout <= 29.0,
        "API Gateway REST stops waiting at 29 s; Timeout = {timeout}"
    );
    let deadline = as_number(&env_vars(function)["RESPONSE_DEADLINE_MS"]).expect("deadline");
    assert!(
        deadline < timeout * 1000.0,
        "RESPONSE_DEADLINE_MS {deadline} >= {timeout} s"
    );

    let api = resources_of_type(&t, "AWS::Serverless::Api");
    assert_eq!(api.len(), 1);
    let body = &props(api[0].1)["DefinitionBody"];
    let post = &body["paths"]["/invoke"]["post"];
    let integration = &post["x-amazon-apigateway-integration"];
    assert_eq!(integration["type"], json!("aws_proxy"));
    assert_eq!(integration["httpMethod"], json!("POST"));
    let integration_timeout = as_number(&integration["timeoutInMillis"]).expect("timeoutInMillis");
    assert!(integration_timeout <= 29_000.0);
    assert!(deadline < integration_timeout);
    let uri = integration["uri"]["Fn::Sub"]
        .as_str()
        .expect("uri is a Fn::Sub string");
    assert!(
        uri.ends_with(&format!("/2015-03-31/functions/${{{id}.Arn}}/invocations")),
        "{uri}"
    );
}

#[test]
fn option1_api_is_iam_authenticated_by_default_and_throttled_and_logged() {
    let t = load_template(&option("option1-api-gateway"));
    assert_eq!(param_default(&t, "ApiAuthType"), json!("AWS_IAM"));
    assert_eq!(
        param(&t, "ApiAuthType")["AllowedValues"],
        json!(["AWS_IAM", "NONE"])
    );
    let (_, api) = resources_of_type(&t, "AWS::Serverless::Api")[0];
    let p = props(api);
    let paths = &p["DefinitionBody"]["paths"]["/invoke"];
    assert_eq!(
        paths["post"]["x-amazon-apigateway-auth"]["type"],
        reference("ApiAuthType")
    );
    assert_eq!(
        paths["options"]["x-amazon-apigateway-auth"]["type"],
        json!("NONE")
    );
    assert_eq!(
        paths["options"]["x-amazon-apigateway-integration"]["type"],
        json!("mock")
    );
    assert_eq!(p["EndpointConfiguration"]["Type"], json!("REGIONAL"));
    assert_stage_throttled_and_logged(p);
}

fn assert_stage_throttled_and_logged(stage_props: &Value) {
    let settings = stage_props["MethodSettings"]
        .as_array()
        .expect("MethodSettings");
    assert!(settings.iter().any(|s| {
        s["ResourcePath"] == json!("/*")
            && s["HttpMethod"] == json!("*")
            && s["ThrottlingRateLimit"] == reference("ThrottlingRateLimit")
            && s["ThrottlingBurstLimit"] == reference("ThrottlingBurstLimit")
    }));
    let access = &stage_props["AccessLogSetting"];
    assert_eq!(
        access["DestinationArn"],
        get_att("ApiAccessLogGroup", "Arn")
    );
    let format = access["Format"].as_str().expect("Format");
    let parsed: Value = serde_json::from_str(format).expect("access log format is JSON");
    assert!(parsed.get("requestId").is_some() && parsed.get("status").is_some());
}

// ------------------------------------------------------------------------------------------
// Option 2: Function URL, streaming

#[test]
fn option2_function_url_streams_and_requires_iam_by_default() {
    let t = load_template(&option("option2-lambda-url"));
    assert_eq!(param_default(&t, "AuthType"), json!("AWS_IAM"));
    assert_eq!(
        param(&t, "AuthType")["AllowedValues"],
        json!(["AWS_IAM", "NONE"])
    );
    let (_, function) = the_function(&t);
    let url = &props(function)["FunctionUrlConfig"];
    assert_eq!(url["AuthType"], reference("AuthType"));
    assert_eq!(url["InvokeMode"], json!("RESPONSE_STREAM"));
    assert_eq!(
        url["Cors"]["AllowOrigins"],
        json!([reference("CorsAllowOrigin")])
    );
    assert_eq!(as_number(&param_default(&t, "Timeout")), Some(900.0));
    assert_eq!(props(function)["Timeout"], reference("Timeout"));

    // Public invoke permissions exist only under the AuthType=NONE condition.
    assert_eq!(
        t["Conditions"]["PublicUrl"],
        json!({"Fn::Equals": [reference("AuthType"), "NONE"]})
    );
    for (id, permission) in resources_of_type(&t, "AWS::Lambda::Permission") {
        if props(permission)["Principal"] == json!("*") {
            assert_eq!(
                permission["Condition"],
                json!("PublicUrl"),
                "{id} is public unconditionally"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Option 3: API Gateway REST, streaming

#[test]
fn option3_integration_streams_through_response_streaming_invocations() {
    let t = load_template(&option("option3-api-gateway-streaming"));
    let (function_id, _) = the_function(&t);
    let methods = resources_of_type(&t, "AWS::ApiGateway::Method");
    let (_, post) = methods
        .iter()
        .find(|(_, m)| props(m)["HttpMethod"] == json!("POST"))
        .expect("POST method");
    let integration = &props(post)["Integration"];
    assert_eq!(integration["Type"], json!("AWS_PROXY"));
    assert_eq!(integration["IntegrationHttpMethod"], json!("POST"));
    assert_eq!(integration["ResponseTransferMode"], json!("STREAM"));
    assert_eq!(
        integration["TimeoutInMillis"],
        reference("IntegrationTimeoutMs")
    );
    assert_eq!(
        as_number(&param_default(&t, "IntegrationTimeoutMs")),
        Some(900_000.0)
    );
    assert_eq!(
        as_number(&param(&t, "IntegrationTimeoutMs")["MaxValue"]),
        Some(900_000.0)
    );
    let uri = integration["Uri"]["Fn::Sub"]
        .as_str()
        .expect("Uri is a Fn::Sub string");
    assert_eq!(
        uri,
        format!(
            "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2021-11-15/functions/${{{function_id}.Arn}}/response-streaming-invocations"
        )
    );

    // API Gateway calls the function with its own role, limited to that function.
    // InvokeWithResponseStream is authorized by the lambda:InvokeFunction action (there
    // is no separate IAM action for it).
    let credentials = &integration["Credentials"];
    let role_id = credentials["Fn::GetAtt"][0]
        .as_str()
        .expect("Credentials is a GetAtt");
    let role = &resources(&t)[role_id];
    assert_eq!(role["Type"], json!("AWS::IAM::Role"));
    let statements = iam_statements(role);
    assert_eq!(statements.len(), 1);
    assert_eq!(statement_actions(statements[0]), ["lambda:InvokeFunction"]);
    assert_eq!(
        statement_resources(statements[0]),
        [&get_att(function_id, "Arn")]
    );
    assert_eq!(
        role.pointer("/Properties/AssumeRolePolicyDocument/Statement/0/Principal/Service"),
        Some(&json!("apigateway.amazonaws.com"))
    );
}

#[test]
fn option3_api_is_iam_authenticated_by_default_and_throttled_and_logged() {
    let t = load_template(&option("option3-api-gateway-streaming"));
    assert_eq!(param_default(&t, "AuthorizationType"), json!("AWS_IAM"));
    assert_eq!(
        param(&t, "AuthorizationType")["AllowedValues"],
        json!(["AWS_IAM", "NONE"])
    );
    let methods = resources_of_type(&t, "AWS::ApiGateway::Method");
    for (id, method) in &methods {
        let p = props(method);
        match p["HttpMethod"].as_str() {
            Some("POST") => assert_eq!(p["AuthorizationType"], reference("AuthorizationType")),
            Some("OPTIONS") => {
                assert_eq!(p["AuthorizationType"], json!("NONE"), "{id}");
                assert_eq!(p["Integration"]["Type"], json!("MOCK"), "{id}");
            }
            other => panic!("unexpected method {other:?} in {id}"),
        }
    }
    assert_eq!(methods.len(), 2);
    let (_, api) = resources_of_type(&t, "AWS::ApiGateway::RestApi")[0];
    assert_eq!(
        props(api)["EndpointConfiguration"]["Types"],
        json!(["REGIONAL"])
    );
    let stages = resources_of_type(&t, "AWS::ApiGateway::Stage");
    assert_eq!(stages.len(), 1);
    assert_stage_throttled_and_logged(props(stages[0].1));
    assert_eq!(as_number(&param_default(&t, "Timeout")), Some(900.0));
}

// ------------------------------------------------------------------------------------------
// Sample events

fn event_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("events dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => panic!("unexpected body variant"),
    }
}

#[test]
fn sample_events_deserialize_as_the_event_each_option_receives() {
    for option in OPTIONS {
        let files = event_files(&option.events_dir());
        let names: BTreeSet<String> = files
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        for expected in [
            "invoke.json",
            "invoke-base64.json",
            "invoke-session-id.json",
            "invoke-malformed.json",
        ] {
            assert!(
                names.contains(expected),
                "{}: events/{expected} is missing",
                option.name
            );
        }

        let mut plain_body: Option<Vec<u8>> = None;
        let mut base64_body: Option<Vec<u8>> = None;
        for file in files {
            let text = fs::read_to_string(&file).expect("read event");
            let what = format!("{}: {}", option.name, file.display());
            let raw: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(raw.is_object(), "{what}");

            let request =
                lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
            match (option.event_shape, request.request_context()) {
                (EventShape::ApiGatewayV1, RequestContext::ApiGatewayV1(ctx)) => {
                    assert_eq!(ctx.resource_path.as_deref(), Some("/invoke"), "{what}");
                    assert!(ctx.stage.is_some() && ctx.request_id.is_some(), "{what}");
                    assert!(ctx.identity.source_ip.is_some(), "{what}");
                }
                (EventShape::FunctionUrlV2, RequestContext::ApiGatewayV2(ctx)) => {
                    assert_eq!(ctx.http.method, lambda_http::http::Method::POST, "{what}");
                }
                (shape, ctx) => panic!("{what}: expected {shape:?}, got {ctx:?}"),
            }
            assert_eq!(request.method(), lambda_http::http::Method::POST, "{what}");
            assert_eq!(
                request.headers().get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/json"[..]),
                "{what}"
            );

            let body = body_bytes(request.body()).to_vec();
            let parsed = serde_json::from_slice::<Value>(&body);
            let name = file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if name.contains("malformed") {
                assert!(
                    parsed.is_err(),
                    "{what}: the bad-JSON sample must not be JSON"
                );
                continue;
            }
            let payload = parsed.unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
            assert!(
                payload["prompt"].as_str().is_some_and(|p| !p.is_empty()),
                "{what}"
            );
            if let Some(session_id) = payload.get("session_id") {
                let len = session_id
                    .as_str()
                    .expect("session_id is a string")
                    .chars()
                    .count();
                assert!(
                    (33..=256).contains(&len),
                    "{what}: session_id of {len} chars"
                );
            }
            match name.as_str() {
                "invoke.json" => plain_body = Some(body),
                "invoke-base64.json" => {
                    assert_eq!(raw["isBase64Encoded"], json!(true), "{what}");
                    base64_body = Some(body);
                }
                "invoke-session-id.json" => assert!(payload.get("session_id").is_some()),
                _ => {}
            }
        }
        assert_eq!(
            plain_body, base64_body,
            "{}: base64 sample decodes to the plain body",
            option.name
        );
    }
}
