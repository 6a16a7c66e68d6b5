//! Security defaults and intent of the three SAM templates, and the sample events.
//!
//! The YAML is converted to `serde_json::Value` with CloudFormation short-form tags
//! (`!Ref X`, `!Sub s`, `!GetAtt A.B`, `!If [...]`) rewritten to their long form
//! (`{"Ref": "X"}`, `{"Fn::Sub": "s"}`, `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::If": [...]}`),
//! so every assertion below sees the template as CloudFormation does.

use std::collections::{BTreeMap, BTreeSet};
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

/// The function every deployment has (the on-demand one): the only
/// `AWS::Serverless::Function` without a `Condition`. Each option's Managed Instances copy
/// exists under one (see the Managed Instances tests).
fn the_function(t: &Value) -> (&str, &Value) {
    let functions: Vec<_> = resources_of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .filter(|(_, r)| r.get("Condition").is_none())
        .collect();
    assert_eq!(
        functions.len(),
        1,
        "exactly one unconditional AWS::Serverless::Function"
    );
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
// Rules and Conditions, evaluated for one set of parameter values
//
// CloudFormation checks the template's `Rules` against the parameter values before it
// creates anything, and picks `Fn::If` branches and conditional resources by `Conditions`.
// This evaluator does the same for the intrinsics the templates use in them (`Ref` to a
// parameter, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`, `Fn::If`,
// `AWS::NoValue`), so a test can deploy a combination of parameters on paper and see which
// rules refuse it and what the methods and policies become. A `Ref` to anything that is
// not a parameter or the pseudo parameter `AWS::Region` (us-east-1 unless a test says
// otherwise), inside a rule or a condition, fails the test (a misspelt name would
// otherwise compare unequal to everything and silently weaken the rule).

/// A sample runtime ARN: `AgentRuntimeArn` is the one parameter with no default.
const SAMPLE_RUNTIME_ARN: &str =
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-abc123";
const SAMPLE_USER_POOL_ARN: &str =
    "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123";
const SAMPLE_ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123";

/// The template with parameter values: the defaults, overridden by a deployment's choices.
struct Deployment<'t> {
    template: &'t Value,
    values: BTreeMap<String, String>,
    /// `AWS::Region`: where the stack is deployed.
    region: String,
}

impl<'t> Deployment<'t> {
    fn new(template: &'t Value, overrides: &[(&str, &str)]) -> Self {
        let mut values = BTreeMap::new();
        let params = template["Parameters"].as_object().expect("Parameters");
        for (name, p) in params {
            let value = match p.get("Default") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            values.insert(name.clone(), value);
        }
        values.insert("AgentRuntimeArn".to_owned(), SAMPLE_RUNTIME_ARN.to_owned());
        for (name, value) in overrides {
            let p = params
                .get(*name)
                .unwrap_or_else(|| panic!("no parameter {name} to override"));
            if let Some(allowed) = p.get("AllowedValues").and_then(Value::as_array) {
                assert!(
                    allowed.iter().any(|a| a.as_str() == Some(value)),
                    "{name}={value} is not among its AllowedValues {allowed:?}"
                );
            }
            values.insert((*name).to_owned(), (*value).to_owned());
        }
        Self {
            template,
            values,
            region: "us-east-1".to_owned(),
        }
    }

    /// The same deployment in another region (`AWS::Region`).
    fn in_region(mut self, region: &str) -> Self {
        region.clone_into(&mut self.region);
        self
    }

    fn param(&self, name: &str) -> &str {
        if name == "AWS::Region" {
            return &self.region;
        }
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("Ref {name}: not a parameter"))
    }

    /// The value of an expression made of parameters and comparisons.
    fn eval(&self, v: &Value) -> Value {
        let Some(map) = v.as_object().filter(|m| m.len() == 1) else {
            return v.clone();
        };
        let (key, arg) = map.iter().next().expect("one key");
        let args = || {
            arg.as_array()
                .unwrap_or_else(|| panic!("{key} takes a list"))
        };
        match key.as_str() {
            "Ref" => json!(self.param(arg.as_str().expect("Ref name"))),
            "Condition" => json!(self.condition(arg.as_str().expect("condition name"))),
            "Fn::Equals" => {
                let a = args();
                assert_eq!(a.len(), 2, "Fn::Equals takes two values");
                json!(self.eval(&a[0]) == self.eval(&a[1]))
            }
            "Fn::Not" => json!(!self.truth(&args()[0])),
            "Fn::And" => json!(args().iter().all(|c| self.truth(c))),
            "Fn::Or" => json!(args().iter().any(|c| self.truth(c))),
            "Fn::If" => {
                let a = args();
                let chosen = if self.condition(a[0].as_str().expect("condition name")) {
                    &a[1]
                } else {
                    &a[2]
                };
                self.eval(chosen)
            }
            other => panic!("the evaluator does not know {other} in {v}"),
        }
    }

    fn truth(&self, v: &Value) -> bool {
        self.eval(v)
            .as_bool()
            .unwrap_or_else(|| panic!("{v} is not a condition"))
    }

    fn condition(&self, name: &str) -> bool {
        let c = self.template["Conditions"]
            .get(name)
            .unwrap_or_else(|| panic!("no condition {name}"));
        self.truth(c)
    }

    /// The names of the rules that refuse this deployment.
    fn refusals(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let rules = self.template["Rules"].as_object().expect("Rules");
        for (name, rule) in rules {
            if let Some(condition) = rule.get("RuleCondition") {
                if !self.truth(condition) {
                    continue;
                }
            }
            let assertions = rule["Assertions"].as_array().expect("Assertions");
            if assertions.iter().any(|a| !self.truth(&a["Assert"])) {
                out.insert(name.clone());
            }
        }
        out
    }

    /// `v` as CloudFormation leaves it: `Fn::If` replaced by its chosen branch, values that
    /// are `AWS::NoValue` removed (`None` for the root). Other intrinsics are kept as they are.
    fn resolve(&self, v: &Value) -> Option<Value> {
        if *v == reference("AWS::NoValue") {
            return None;
        }
        if let Some(args) = v.get("Fn::If").and_then(Value::as_array) {
            if v.as_object().is_some_and(|m| m.len() == 1) {
                let chosen = if self.condition(args[0].as_str().expect("condition name")) {
                    &args[1]
                } else {
                    &args[2]
                };
                return self.resolve(chosen);
            }
        }
        Some(match v {
            Value::Array(items) => {
                Value::Array(items.iter().filter_map(|i| self.resolve(i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v)))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    /// The resources this deployment creates (those whose `Condition` holds), resolved.
    fn resources(&self) -> BTreeMap<String, Value> {
        resources(self.template)
            .iter()
            .filter(|(_, r)| {
                r.get("Condition")
                    .and_then(Value::as_str)
                    .is_none_or(|c| self.condition(c))
            })
            .map(|(id, r)| (id.clone(), self.resolve(r).expect("a resource")))
            .collect()
    }
}

/// The options with an API Gateway in front, and the name each gives its method-auth parameter.
const API_OPTIONS: [(&str, &str); 2] = [
    ("option1-api-gateway", "ApiAuthType"),
    ("option3-api-gateway-streaming", "AuthorizationType"),
];

/// A rule's text, every parameter it names, in its condition or its assertions.
fn params_named(v: &Value) -> BTreeSet<&str> {
    entries(v)
        .into_iter()
        .filter(|(k, _)| *k == "Ref")
        .filter_map(|(_, v)| v.as_str())
        .collect()
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
    // The README's configuration table is the one list of settings (agentcore-core's
    // tests/docs_agree.rs checks it against what the functions read).
    let readme = fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let contracts = readme
        .split("\n## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Configuration section");
    for option in OPTIONS {
        let t = load_template(&option);
        let (_, function) = the_function(&t);
        let env = env_vars(function);
        for name in env.keys() {
            assert!(
                contracts.contains(&format!("`{name}`")),
                "{}: env var {name} is not in the README's configuration table",
                option.name
            );
        }
        assert_eq!(env["AGENT_RUNTIME_ARN"], reference("AgentRuntimeArn"));
        assert_eq!(env["AGENT_QUALIFIER"], reference("AgentQualifier"));
        assert_eq!(env["FORWARD_FIELDS"], reference("ForwardFields"));
        assert_eq!(env["FORWARD_HEADERS"], reference("ForwardHeaders"));
        // Lambda's own logging controls are the only log settings.
        assert!(!env.contains_key("RUST_LOG"), "{}", option.name);
        let logging = &function["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogFormat"], json!("JSON"), "{}", option.name);
        assert_eq!(
            logging["ApplicationLogLevel"],
            reference("LogLevel"),
            "{}",
            option.name
        );
        let levels = param(&t, "LogLevel")["AllowedValues"].clone();
        assert!(
            !levels
                .as_array()
                .is_some_and(|l| l.contains(&json!("TRACE"))),
            "{}: TRACE logs raw headers",
            option.name
        );
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

/// The function may invoke the runtime, end its sessions (DELETE), and (only with
/// RuntimeUserId=true, see below) invoke it for a user: one statement each, nothing else.
#[test]
fn agentcore_permissions_are_scoped_to_the_configured_runtime() {
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
        let mut agentcore_actions = BTreeSet::from([
            "bedrock-agentcore:InvokeAgentRuntime",
            "bedrock-agentcore:StopRuntimeSession",
            "bedrock-agentcore:InvokeAgentRuntimeForUser",
        ]);
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
            assert_eq!(actions.len(), 1, "{}: {actions:?}", option.name);
            assert!(
                agentcore_actions.remove(actions[0].as_str()),
                "{}: unexpected or repeated {}",
                option.name,
                actions[0]
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
        assert_eq!(invoke_statements, 3, "{}", option.name);
        assert!(agentcore_actions.is_empty(), "{}", option.name);
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

    assert_eq!(resources_of_type(&t, "AWS::Serverless::Api").len(), 1);
    // As the default deployment (on-demand only) creates it; with a capacity provider the
    // URI names the Managed Instances function (api_integration_follows_managed_instances).
    let deployed = Deployment::new(&t, &[]).resources();
    let (path, _) = api_invoke_path(&deployed);
    let integration = &path["post"]["x-amazon-apigateway-integration"];
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
    // Without a Cognito user pool (the default), POST and DELETE use ApiAuthType.
    let paths = &Deployment::new(&t, &[])
        .resolve(&p["DefinitionBody"]["paths"]["/invoke"])
        .expect("/invoke");
    for verb in ["post", "delete"] {
        assert_eq!(
            paths[verb]["x-amazon-apigateway-auth"]["type"],
            reference("ApiAuthType"),
            "{verb}"
        );
    }
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
    assert_eq!(props(function)["Timeout"], reference("Timeout"));

    // Public invoke permissions exist only under the AuthType=NONE condition.
    assert_eq!(
        t["Conditions"]["PublicUrl"],
        json!({"Fn::Equals": [reference("AuthType"), "NONE"]})
    );
    for (id, permission) in resources_of_type(&t, "AWS::Lambda::Permission") {
        if props(permission)["Principal"] == json!("*") {
            // PublicUrl, or a condition that holds only with it (the Managed Instances copy's).
            let condition = permission["Condition"].as_str().unwrap_or_default();
            let implies_public = condition == "PublicUrl"
                || t["Conditions"][condition]["Fn::And"]
                    .as_array()
                    .is_some_and(|all| all.contains(&json!({"Condition": "PublicUrl"})));
            assert!(implies_public, "{id} is public unconditionally");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Option 2: the public edge (issue 13): CloudFront + origin access control + AWS WAF

/// A public edge as the README deploys it: a JWT in a header of its own, behind CloudFront.
const EDGE: [(&str, &str); 5] = [
    ("PublicEdge", "true"),
    ("CallerIdentity", "jwt"),
    ("JwtIssuer", SAMPLE_ISSUER),
    ("JwtAudience", "client1"),
    ("JwtHeader", "x-auth-token"),
];
const SAMPLE_WEB_ACL_ARN: &str =
    "arn:aws:wafv2:us-east-1:123456789012:global/webacl/edge/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";
/// The resource types that make up the edge.
const EDGE_TYPES: [&str; 3] = [
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::WAFv2::WebACL",
];
/// Managed CloudFront policies: CachingDisabled, AllViewerExceptHostHeader.
const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
const ALL_VIEWER_EXCEPT_HOST_HEADER: &str = "b689b0a8-53d0-40ab-baf2-68738e2966ac";

fn edge_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    EDGE.iter().chain(extra).copied().collect()
}

fn the_one<'a>(t: &'a Value, ty: &str) -> (&'a str, &'a Value) {
    let found = resources_of_type(t, ty);
    assert_eq!(found.len(), 1, "exactly one {ty}");
    found[0]
}

/// The Lambda permissions granted to CloudFront.
fn cloudfront_permissions(t: &Value) -> Vec<(&str, &Value)> {
    resources_of_type(t, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, p)| props(p)["Principal"] == json!("cloudfront.amazonaws.com"))
        .collect()
}

#[test]
fn option2_public_edge_is_off_by_default_and_exists_only_under_its_condition() {
    let t = load_template(&option("option2-lambda-url"));
    assert_eq!(param_default(&t, "PublicEdge"), json!("false"));
    assert_eq!(
        param(&t, "PublicEdge")["AllowedValues"],
        json!(["true", "false"])
    );
    assert_eq!(
        t["Conditions"]["PublicEdgeOn"],
        json!({"Fn::Equals": [reference("PublicEdge"), "true"]})
    );
    // Every edge resource, and every permission CloudFront holds, is conditional.
    let mut edge_ids = BTreeSet::new();
    for ty in EDGE_TYPES {
        for (id, r) in resources_of_type(&t, ty) {
            let condition = r["Condition"].as_str().unwrap_or_else(|| panic!("{id}"));
            assert!(
                condition == "PublicEdgeOn" || condition == "CreateWebAcl",
                "{id} has condition {condition}"
            );
            edge_ids.insert(id.to_owned());
        }
    }
    for (id, p) in cloudfront_permissions(&t) {
        assert_eq!(p["Condition"], json!("PublicEdgeOn"), "{id}");
        edge_ids.insert(id.to_owned());
    }
    assert_eq!(
        edge_ids.len(),
        5,
        "distribution, OAC, web ACL, two permissions"
    );

    // The web ACL's condition implies the edge's.
    let create = &t["Conditions"]["CreateWebAcl"]["Fn::And"];
    assert!(
        create
            .as_array()
            .is_some_and(|c| c.contains(&json!({"Condition": "PublicEdgeOn"}))),
        "CreateWebAcl must include PublicEdgeOn: {create}"
    );

    // Evaluated: nothing by default (in any region), all of it with the edge in us-east-1.
    for region in ["us-east-1", "eu-west-1"] {
        let d = Deployment::new(&t, &[]).in_region(region);
        assert!(d.refusals().is_empty(), "{region}");
        let deployed = d.resources();
        for id in &edge_ids {
            assert!(
                !deployed.contains_key(id),
                "{id} exists by default in {region}"
            );
        }
    }
    let d = Deployment::new(&t, &EDGE);
    assert!(d.refusals().is_empty(), "{:?}", d.refusals());
    let deployed = d.resources();
    for id in &edge_ids {
        assert!(
            deployed.contains_key(id),
            "{id} is missing with PublicEdge=true"
        );
    }

    // The public URL is an output only with the edge.
    let (distribution_id, _) = the_one(&t, "AWS::CloudFront::Distribution");
    let edge_outputs: Vec<_> = t["Outputs"]
        .as_object()
        .expect("Outputs")
        .iter()
        .filter(|(_, o)| {
            strings(&o["Value"])
                .iter()
                .any(|s| s.contains(distribution_id))
                || o["Value"] == reference(distribution_id)
        })
        .collect();
    assert!(!edge_outputs.is_empty());
    for (name, output) in &edge_outputs {
        assert_eq!(output["Condition"], json!("PublicEdgeOn"), "output {name}");
    }
    assert!(
        edge_outputs.iter().any(|(_, o)| o["Value"]
            == json!({"Fn::Sub": format!("https://${{{distribution_id}.DomainName}}")})),
        "an output with the distribution's https URL"
    );
}

#[test]
fn option2_public_edge_signs_with_origin_access_control_for_the_function_url() {
    let t = load_template(&option("option2-lambda-url"));
    let (oac_id, oac) = the_one(&t, "AWS::CloudFront::OriginAccessControl");
    let config = &props(oac)["OriginAccessControlConfig"];
    assert_eq!(config["OriginAccessControlOriginType"], json!("lambda"));
    assert_eq!(config["SigningBehavior"], json!("always"));
    assert_eq!(config["SigningProtocol"], json!("sigv4"));

    let (function_id, function) = the_function(&t);
    let url_id = format!("{function_id}Url"); // SAM's name for the function's AWS::Lambda::Url
    assert_eq!(
        props(function)["FunctionUrlConfig"]["InvokeMode"],
        json!("RESPONSE_STREAM")
    );

    let (_, distribution) = the_one(&t, "AWS::CloudFront::Distribution");
    let config = &props(distribution)["DistributionConfig"];
    assert_eq!(config["Enabled"], json!(true));
    let origins = config["Origins"].as_array().expect("Origins");
    assert_eq!(origins.len(), 1, "the Function URL is the only origin");
    let origin = &origins[0];
    assert_eq!(origin["OriginAccessControlId"], get_att(oac_id, "Id"));
    assert_eq!(
        origin["DomainName"],
        json!({"Fn::Select": [2, {"Fn::Split": ["/", get_att(&url_id, "FunctionUrl")]}]})
    );
    assert_eq!(
        origin["CustomOriginConfig"]["OriginProtocolPolicy"],
        json!("https-only")
    );
    assert!(origin.get("S3OriginConfig").is_none());
    assert_eq!(
        config["DefaultCacheBehavior"]["TargetOriginId"],
        origin["Id"]
    );

    // Streaming and the body stay untouched: no edge code, no compression, one behaviour.
    let behavior = &config["DefaultCacheBehavior"];
    for key in ["LambdaFunctionAssociations", "FunctionAssociations"] {
        assert!(behavior.get(key).is_none(), "{key}");
    }
    assert_eq!(behavior["Compress"], json!(false));
    assert!(config.get("CacheBehaviors").is_none());

    // The origin read timeout is also the longest silence inside a streamed answer.
    assert_eq!(
        origin["CustomOriginConfig"]["OriginReadTimeout"],
        reference("EdgeOriginReadTimeout")
    );
    let timeout = param(&t, "EdgeOriginReadTimeout");
    assert_eq!(as_number(&timeout["Default"]), Some(60.0));
    assert!(as_number(&timeout["MaxValue"]).is_some_and(|m| m <= 120.0));
}

#[test]
fn option2_public_edge_permissions_name_cloudfront_and_this_distribution_only() {
    let t = load_template(&option("option2-lambda-url"));
    let (function_id, _) = the_function(&t);
    let (distribution_id, _) = the_one(&t, "AWS::CloudFront::Distribution");
    let permissions = cloudfront_permissions(&t);
    let actions: BTreeSet<&str> = permissions
        .iter()
        .map(|(_, p)| props(p)["Action"].as_str().expect("Action"))
        .collect();
    // Both, as the CloudFront OAC guide and the Lambda Function URL guide require.
    assert_eq!(
        actions,
        BTreeSet::from(["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"])
    );
    assert_eq!(permissions.len(), 2);
    let source_arn = json!({"Fn::Sub": format!(
        "arn:${{AWS::Partition}}:cloudfront::${{AWS::AccountId}}:distribution/${{{distribution_id}}}"
    )});
    for (id, permission) in &permissions {
        let p = props(permission);
        assert_eq!(p["FunctionName"], reference(function_id), "{id}");
        assert_eq!(
            p["SourceArn"], source_arn,
            "{id}: scoped to the distribution"
        );
        assert!(p.get("Qualifier").is_none(), "{id}");
        if p["Action"] == json!("lambda:InvokeFunctionUrl") {
            assert_eq!(p["FunctionUrlAuthType"], json!("AWS_IAM"), "{id}");
        }
    }
    // Nobody else gets a permission without the public-URL condition.
    for (id, permission) in resources_of_type(&t, "AWS::Lambda::Permission") {
        let principal = &props(permission)["Principal"];
        assert!(
            *principal == json!("*") || *principal == json!("cloudfront.amazonaws.com"),
            "{id}: {principal}"
        );
    }
}

#[test]
fn option2_public_edge_does_not_cache_and_passes_post_options_delete_over_https_only() {
    let t = load_template(&option("option2-lambda-url"));
    let (_, distribution) = the_one(&t, "AWS::CloudFront::Distribution");
    let config = &props(distribution)["DistributionConfig"];
    let behavior = &config["DefaultCacheBehavior"];
    assert_eq!(behavior["CachePolicyId"], json!(CACHING_DISABLED));
    // Every viewer header but Host, so x-amz-content-sha256, the JWT header, origin and
    // x-session-id reach the function; legacy ForwardedValues would override that.
    assert_eq!(
        behavior["OriginRequestPolicyId"],
        json!(ALL_VIEWER_EXCEPT_HOST_HEADER)
    );
    assert!(behavior.get("ForwardedValues").is_none());
    let methods: BTreeSet<&str> = behavior["AllowedMethods"]
        .as_array()
        .expect("AllowedMethods")
        .iter()
        .map(|m| m.as_str().expect("method"))
        .collect();
    for needed in ["POST", "OPTIONS", "DELETE"] {
        assert!(methods.contains(needed), "{needed} is not allowed");
    }
    assert_eq!(behavior["ViewerProtocolPolicy"], json!("https-only"));
    for origin in config["Origins"].as_array().expect("Origins") {
        assert_eq!(
            origin["CustomOriginConfig"]["OriginProtocolPolicy"],
            json!("https-only")
        );
    }
    // The browser's CORS preflight is answered by the Function URL's Cors settings, which
    // still name the page origin and allow the headers a browser behind the edge sends.
    let d = Deployment::new(&t, &EDGE);
    let (_, function) = the_function(&t);
    let cors = d
        .resolve(&props(function)["FunctionUrlConfig"]["Cors"])
        .expect("Cors");
    assert_eq!(cors["AllowOrigins"], json!([reference("CorsAllowOrigin")]));
    let allow = cors["AllowHeaders"].as_array().expect("AllowHeaders");
    assert!(allow.contains(&json!("x-amz-content-sha256")));
    assert!(allow.contains(&reference("JwtHeader")));
}

#[test]
fn option2_public_edge_is_behind_a_web_acl_created_or_given() {
    let t = load_template(&option("option2-lambda-url"));
    let (acl_id, acl) = the_one(&t, "AWS::WAFv2::WebACL");
    let (distribution_id, _) = the_one(&t, "AWS::CloudFront::Distribution");

    // The web ACL the stack creates: CloudFront scope, a per-IP rate limit, the two AWS
    // managed rule groups, and the 8 KB body limit counted instead of blocking prompts.
    let p = props(acl);
    assert_eq!(p["Scope"], json!("CLOUDFRONT"));
    assert_eq!(p["DefaultAction"], json!({"Allow": {}}));
    let rules = p["Rules"].as_array().expect("Rules");
    let rate: Vec<_> = rules
        .iter()
        .filter_map(|r| r.pointer("/Statement/RateBasedStatement").map(|s| (r, s)))
        .collect();
    assert_eq!(rate.len(), 1, "one rate-based rule");
    assert_eq!(rate[0].0["Action"], json!({"Block": {}}));
    assert_eq!(rate[0].1["Limit"], reference("EdgeRateLimit"));
    assert_eq!(rate[0].1["AggregateKeyType"], json!("IP"));
    assert_eq!(as_number(&param_default(&t, "EdgeRateLimit")), Some(300.0));
    let managed: BTreeMap<&str, &Value> = rules
        .iter()
        .filter_map(|r| r.pointer("/Statement/ManagedRuleGroupStatement"))
        .map(|s| (s["Name"].as_str().expect("Name"), s))
        .collect();
    assert_eq!(
        managed.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "AWSManagedRulesCommonRuleSet",
            "AWSManagedRulesKnownBadInputsRuleSet"
        ])
    );
    for group in managed.values() {
        assert_eq!(group["VendorName"], json!("AWS"));
    }
    assert!(
        managed["AWSManagedRulesCommonRuleSet"]["RuleActionOverrides"]
            .as_array()
            .expect("RuleActionOverrides")
            .contains(&json!({"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}})),
        "SizeRestrictions_BODY (bodies over 8 KB) must count, not block"
    );
    let priorities: BTreeSet<_> = rules.iter().map(|r| r["Priority"].to_string()).collect();
    assert_eq!(priorities.len(), rules.len(), "unique priorities");

    // Which web ACL the distribution gets, region by region.
    // (region, WebAclArn, the stack creates its own, the rules that refuse it)
    let cases: [(&str, &str, bool, &[&str]); 4] = [
        ("us-east-1", "", true, &[]),
        ("us-east-1", SAMPLE_WEB_ACL_ARN, false, &[]),
        ("eu-west-1", SAMPLE_WEB_ACL_ARN, false, &[]),
        (
            "eu-west-1",
            "",
            false,
            &["PublicEdgeOutsideUsEast1NeedsAWebAcl"],
        ),
    ];
    for (region, arn, creates, refused) in cases {
        let d = Deployment::new(&t, &edge_with(&[("WebAclArn", arn)])).in_region(region);
        let expected: BTreeSet<String> = refused.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(d.refusals(), expected, "{region} WebAclArn={arn:?}");
        let deployed = d.resources();
        assert_eq!(deployed.contains_key(acl_id), creates, "{region} {arn:?}");
        let web_acl = &deployed[distribution_id]["Properties"]["DistributionConfig"]["WebACLId"];
        if creates {
            assert_eq!(*web_acl, get_att(acl_id, "Arn"), "{region}");
        } else {
            assert_eq!(*web_acl, reference("WebAclArn"), "{region}");
        }
        if refused.is_empty() {
            let resolved = match web_acl.get("Ref") {
                Some(_) => json!(arn),
                None => web_acl.clone(),
            };
            assert_ne!(resolved, json!(""), "{region}: a distribution without WAF");
        }
    }
    let pattern = param(&t, "WebAclArn")["AllowedPattern"]
        .as_str()
        .expect("WebAclArn AllowedPattern");
    assert!(pattern.contains(":wafv2:us-east-1:") && pattern.contains(":global/webacl/"));
}

#[test]
fn option2_public_edge_rules_refuse_an_open_url_and_a_jwt_in_authorization() {
    let t = load_template(&option("option2-lambda-url"));
    let cases: Vec<Case<'_>> = vec![
        // Accepted: the README's public deployment, with or without a given web ACL.
        (EDGE.to_vec(), &[]),
        (edge_with(&[("WebAclArn", SAMPLE_WEB_ACL_ARN)]), &[]),
        (
            edge_with(&[("RuntimeUserId", "true"), ("ForwardClaims", "sub")]),
            &[],
        ),
        // Refused: an open URL beside the edge.
        (
            edge_with(&[("AuthType", "NONE")]),
            &["PublicEdgeNeedsIamUrlAndJwt"],
        ),
        // Refused: the JWT in Authorization, which origin access control overwrites.
        (
            edge_with(&[("JwtHeader", "authorization")]),
            &["JwtBesideSigV4NeedsItsOwnHeader"],
        ),
        // Refused: no end-user identity (CloudFront would be every caller).
        (
            vec![("PublicEdge", "true")],
            &["PublicEdgeNeedsIamUrlAndJwt"],
        ),
        (
            vec![
                ("PublicEdge", "true"),
                ("CallerIdentity", "anonymous"),
                ("AllowAnonymous", "true"),
            ],
            &["PublicEdgeNeedsIamUrlAndJwt"],
        ),
        (
            vec![
                ("PublicEdge", "true"),
                ("AuthType", "NONE"),
                ("CallerIdentity", "anonymous"),
                ("AllowAnonymous", "true"),
            ],
            &["PublicEdgeNeedsIamUrlAndJwt"],
        ),
        // Refused: a JWT without issuer and audience.
        (
            vec![
                ("PublicEdge", "true"),
                ("CallerIdentity", "jwt"),
                ("JwtHeader", "x-auth-token"),
            ],
            &["JwtNeedsIssuerAndAudience"],
        ),
    ];
    for (overrides, expected) in cases {
        let refusals = Deployment::new(&t, &overrides).refusals();
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(refusals, expected, "{overrides:?}");
    }

    // The edge rule looks at exactly the parameters it is about.
    let rule = &t["Rules"]["PublicEdgeNeedsIamUrlAndJwt"];
    assert_eq!(
        rule["RuleCondition"],
        json!({"Fn::Equals": [reference("PublicEdge"), "true"]})
    );
    assert_eq!(
        params_named(&rule["Assertions"]),
        BTreeSet::from(["AuthType", "CallerIdentity"])
    );
}

// ------------------------------------------------------------------------------------------
// Option 3: API Gateway REST, streaming

#[test]
fn option3_integration_streams_through_response_streaming_invocations() {
    let t = load_template(&option("option3-api-gateway-streaming"));
    let (function_id, _) = the_function(&t);
    let deployed = Deployment::new(&t, &[]).resources();
    let (path, _) = api_invoke_path(&deployed);
    let integration = &path["post"]["x-amazon-apigateway-integration"];
    assert_eq!(integration["type"], json!("aws_proxy"));
    assert_eq!(integration["httpMethod"], json!("POST"));
    assert_eq!(integration["responseTransferMode"], json!("STREAM"));
    assert_eq!(
        integration["timeoutInMillis"],
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
    let uri = integration["uri"]["Fn::Sub"]
        .as_str()
        .expect("uri is a Fn::Sub string");
    assert_eq!(
        uri,
        format!(
            "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2021-11-15/functions/${{{function_id}.Arn}}/response-streaming-invocations"
        )
    );

    // API Gateway calls the function with its own role, limited to that function.
    // InvokeWithResponseStream is authorized by the lambda:InvokeFunction action (there
    // is no separate IAM action for it).
    let credentials = &integration["credentials"];
    let role_id = credentials["Fn::GetAtt"][0]
        .as_str()
        .expect("credentials is a GetAtt");
    let role = &deployed[role_id];
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
    let (_, api) = resources_of_type(&t, "AWS::Serverless::Api")[0];
    let p = props(api);
    // Without a Cognito user pool (the default), POST and DELETE use AuthorizationType.
    let paths = &Deployment::new(&t, &[])
        .resolve(&p["DefinitionBody"]["paths"]["/invoke"])
        .expect("/invoke");
    for verb in ["post", "delete"] {
        assert_eq!(
            paths[verb]["x-amazon-apigateway-auth"]["type"],
            reference("AuthorizationType"),
            "{verb}"
        );
    }
    assert_eq!(
        paths["options"]["x-amazon-apigateway-auth"]["type"],
        json!("NONE")
    );
    assert_eq!(
        paths["options"]["x-amazon-apigateway-integration"]["type"],
        json!("mock")
    );
    assert_eq!(
        paths.as_object().map(|m| m.len()),
        Some(3),
        "POST, DELETE and OPTIONS only"
    );
    assert_eq!(p["EndpointConfiguration"]["Type"], json!("REGIONAL"));
    assert_stage_throttled_and_logged(p);
    // A streamed response cannot be cached, and no answer should be.
    let settings = p["MethodSettings"].as_array().expect("MethodSettings");
    assert!(settings.iter().all(|s| s["CachingEnabled"] == json!(false)));
}

// ------------------------------------------------------------------------------------------
// Callers and sessions (issue 12): parameters, environment, rules

#[test]
fn identity_parameters_keep_the_secure_defaults() {
    for option in OPTIONS {
        let t = load_template(&option);
        let name = option.name;
        // Today's front door stays: the IAM (SigV4) caller is the identity.
        assert_eq!(param_default(&t, "CallerIdentity"), json!("iam"), "{name}");
        let identities: BTreeSet<&str> = param(&t, "CallerIdentity")["AllowedValues"]
            .as_array()
            .expect("CallerIdentity AllowedValues")
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect();
        assert_eq!(
            identities,
            BTreeSet::from(["iam", "authorizer", "jwt", "anonymous"]),
            "{name}: the values CALLER_IDENTITY accepts (option 2 refuses authorizer by a rule)"
        );
        assert_eq!(param_default(&t, "SessionScope"), json!("caller"), "{name}");
        assert_eq!(
            param(&t, "SessionScope")["AllowedValues"],
            json!(["caller", "shared"])
        );
        for flag in ["AllowAnonymous", "RuntimeUserId"] {
            assert_eq!(param_default(&t, flag), json!("false"), "{name}: {flag}");
            assert_eq!(
                param(&t, flag)["AllowedValues"],
                json!(["true", "false"]),
                "{name}: {flag}"
            );
        }
        assert_eq!(
            param(&t, "JwtTokenUse")["AllowedValues"],
            json!(["", "id", "access"])
        );
        for empty in [
            "JwtIssuer",
            "JwtAudience",
            "JwtTokenUse",
            "JwtRequiredScopes",
            "JwtJwksUrl",
            "ForwardClaims",
        ] {
            assert_eq!(param_default(&t, empty), json!(""), "{name}: {empty}");
        }
        assert_eq!(param_default(&t, "JwtHeader"), json!("authorization"));
        // Lowercase header names only, so the rules can compare them with "authorization".
        assert_eq!(
            param(&t, "JwtHeader")["AllowedPattern"],
            json!("^[a-z0-9-]+$")
        );
        for url in ["JwtIssuer", "JwtJwksUrl"] {
            let pattern = param(&t, url)["AllowedPattern"].as_str().expect("pattern");
            assert!(pattern.starts_with("^(https://"), "{name}: {url} {pattern}");
        }
    }
    for (name, _) in API_OPTIONS {
        let t = load_template(&option(name));
        assert_eq!(param_default(&t, "CognitoUserPoolArn"), json!(""), "{name}");
        let pattern = param(&t, "CognitoUserPoolArn")["AllowedPattern"]
            .as_str()
            .expect("pattern");
        assert!(pattern.contains(":cognito-idp:") && pattern.contains(":userpool/"));
    }
    let t = load_template(&option("option2-lambda-url"));
    assert!(t["Parameters"].get("CognitoUserPoolArn").is_none());
}

#[test]
fn identity_environment_is_wired_from_the_parameters() {
    for option in OPTIONS {
        let t = load_template(&option);
        let (_, function) = the_function(&t);
        let env = env_vars(function);
        for (var, parameter) in [
            ("CALLER_IDENTITY", "CallerIdentity"),
            ("SESSION_SCOPE", "SessionScope"),
            ("JWT_ISSUER", "JwtIssuer"),
            ("JWT_AUDIENCE", "JwtAudience"),
            ("JWT_TOKEN_USE", "JwtTokenUse"),
            ("JWT_REQUIRED_SCOPES", "JwtRequiredScopes"),
            ("JWT_HEADER", "JwtHeader"),
            ("JWT_JWKS_URL", "JwtJwksUrl"),
            ("RUNTIME_USER_ID", "RuntimeUserId"),
            ("FORWARD_CLAIMS", "ForwardClaims"),
        ] {
            assert_eq!(
                env.get(var),
                Some(&reference(parameter)),
                "{}: {var}",
                option.name
            );
        }
    }
}

#[test]
fn default_parameters_pass_every_rule() {
    for option in OPTIONS {
        let t = load_template(&option);
        let refusals = Deployment::new(&t, &[]).refusals();
        assert!(
            refusals.is_empty(),
            "{}: defaults refused by {refusals:?}",
            option.name
        );
    }
}

#[test]
fn every_rule_names_only_parameters_and_explains_itself() {
    for option in OPTIONS {
        let t = load_template(&option);
        let params = t["Parameters"].as_object().expect("Parameters");
        for (name, rule) in t["Rules"].as_object().expect("Rules") {
            for p in params_named(rule) {
                // AWS::Region: the one pseudo parameter a rule may look at (where a web ACL
                // for CloudFront can be created).
                assert!(
                    params.contains_key(p) || p == "AWS::Region",
                    "{}: rule {name} names {p}",
                    option.name
                );
            }
            for assertion in rule["Assertions"].as_array().expect("Assertions") {
                assert!(
                    assertion["AssertDescription"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{}: rule {name} refuses without saying why",
                    option.name
                );
            }
        }
    }
}

/// The rule whose condition is "the front door has no auth" must name the caller identity,
/// the JWT issuer and audience, and AllowAnonymous: an endpoint is public only on purpose.
#[test]
fn an_open_front_door_is_refused_unless_jwt_or_allow_anonymous() {
    let fronts = [
        ("option1-api-gateway", "ApiAuthType"),
        ("option2-lambda-url", "AuthType"),
        ("option3-api-gateway-streaming", "AuthorizationType"),
    ];
    for (name, auth) in fronts {
        let t = load_template(&option(name));
        let open_rules: Vec<_> = t["Rules"]
            .as_object()
            .expect("Rules")
            .iter()
            .filter(|(_, r)| {
                r.get("RuleCondition").is_some_and(|c| {
                    all_values(c)
                        .iter()
                        .any(|v| **v == json!({"Fn::Equals": [reference(auth), "NONE"]}))
                })
            })
            .filter(|(_, r)| params_named(&r["Assertions"]).contains("AllowAnonymous"))
            .collect();
        assert_eq!(open_rules.len(), 1, "{name}: one rule guards {auth}=NONE");
        let (rule_name, rule) = open_rules[0];
        let named = params_named(&rule["Assertions"]);
        for p in [
            "CallerIdentity",
            "JwtIssuer",
            "JwtAudience",
            "AllowAnonymous",
        ] {
            assert!(
                named.contains(p),
                "{name}: {rule_name} does not look at {p}"
            );
        }
        assert!(
            strings(&rule["Assertions"]).contains(&"jwt"),
            "{name}: {rule_name} accepts CallerIdentity=jwt"
        );
    }
}

/// (overrides, the rules expected to refuse them; empty = accepted)
type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [&'a str]);

fn check_cases(name: &str, cases: Vec<Case<'_>>) {
    let t = load_template(&option(name));
    for (overrides, expected) in cases {
        let refusals = Deployment::new(&t, &overrides).refusals();
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(refusals, expected, "{name}: {overrides:?}");
    }
}

#[test]
fn option2_rules_accept_and_refuse_the_right_combinations() {
    let jwt = [
        ("CallerIdentity", "jwt"),
        ("JwtIssuer", SAMPLE_ISSUER),
        ("JwtAudience", "client1,client2"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        jwt.iter().chain(extra).copied().collect()
    };
    let cases: Vec<Case<'_>> = vec![
        // Accepted.
        (vec![], &[]),
        (
            vec![("SessionScope", "shared"), ("RuntimeUserId", "true")],
            &[],
        ),
        // A browser app with its own OIDC login.
        (with(&[("AuthType", "NONE")]), &[]),
        (
            with(&[("AuthType", "NONE"), ("AgentCoreAuthMode", "oauth")]),
            &[],
        ),
        // Behind CloudFront origin access control: SigV4 from CloudFront, the JWT beside it.
        (with(&[("JwtHeader", "x-auth-token")]), &[]),
        (
            vec![
                ("AuthType", "NONE"),
                ("CallerIdentity", "anonymous"),
                ("AllowAnonymous", "true"),
            ],
            &[],
        ),
        // Refused.
        (
            vec![("AuthType", "NONE")],
            &["PublicUrlNeedsJwtOrAllowAnonymous", "IamCallerNeedsIamUrl"],
        ),
        (
            vec![("AuthType", "NONE"), ("AllowAnonymous", "true")],
            &["IamCallerNeedsIamUrl"],
        ),
        (
            vec![
                ("AuthType", "NONE"),
                ("CallerIdentity", "jwt"),
                ("JwtIssuer", SAMPLE_ISSUER),
            ],
            &[
                "PublicUrlNeedsJwtOrAllowAnonymous",
                "JwtNeedsIssuerAndAudience",
            ],
        ),
        (
            vec![("CallerIdentity", "anonymous")],
            &["AnonymousNeedsAllowAnonymous"],
        ),
        (
            vec![("CallerIdentity", "authorizer")],
            &["NoAuthorizerOnFunctionUrl"],
        ),
        (with(&[]), &["JwtBesideSigV4NeedsItsOwnHeader"]),
        (
            with(&[("AuthType", "NONE"), ("SessionScope", "shared")]),
            &["SharedSessionsNeedIamCallers"],
        ),
        (vec![("AgentCoreAuthMode", "oauth")], &["OAuthNeedsOpenUrl"]),
        (
            vec![
                ("AuthType", "NONE"),
                ("CallerIdentity", "anonymous"),
                ("AllowAnonymous", "true"),
                ("RuntimeUserId", "true"),
            ],
            &["RuntimeUserIdNeedsACaller"],
        ),
    ];
    check_cases("option2-lambda-url", cases);
}

#[test]
fn api_rules_accept_and_refuse_the_right_combinations() {
    for (name, auth) in API_OPTIONS {
        let pool = ("CognitoUserPoolArn", SAMPLE_USER_POOL_ARN);
        let jwt = [
            ("CallerIdentity", "jwt"),
            ("JwtIssuer", SAMPLE_ISSUER),
            ("JwtAudience", "client1"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            jwt.iter().chain(extra).copied().collect()
        };
        let cases: Vec<Case<'_>> = vec![
            // Accepted.
            (vec![], &[]),
            (
                vec![("SessionScope", "shared"), ("RuntimeUserId", "true")],
                &[],
            ),
            (vec![pool, ("CallerIdentity", "authorizer")], &[]),
            (
                vec![
                    pool,
                    ("CallerIdentity", "authorizer"),
                    ("AgentCoreAuthMode", "oauth"),
                ],
                &[],
            ),
            (with(&[pool]), &[]),
            (with(&[(auth, "NONE")]), &[]),
            (with(&[(auth, "NONE"), ("AgentCoreAuthMode", "oauth")]), &[]),
            (with(&[("JwtHeader", "x-auth-token")]), &[]),
            (
                vec![
                    (auth, "NONE"),
                    ("CallerIdentity", "anonymous"),
                    ("AllowAnonymous", "true"),
                ],
                &[],
            ),
            // Refused.
            (
                vec![(auth, "NONE")],
                &["OpenApiNeedsJwtOrAllowAnonymous", "IamCallerNeedsIamAuth"],
            ),
            (
                vec![(auth, "NONE"), ("CallerIdentity", "jwt")],
                &[
                    "OpenApiNeedsJwtOrAllowAnonymous",
                    "JwtNeedsIssuerAndAudience",
                ],
            ),
            (
                vec![("CallerIdentity", "authorizer")],
                &["AuthorizerNeedsUserPool"],
            ),
            (
                vec![pool],
                &["UserPoolNeedsAuthorizerOrJwt", "IamCallerNeedsIamAuth"],
            ),
            (
                vec![
                    pool,
                    ("CallerIdentity", "anonymous"),
                    ("AllowAnonymous", "true"),
                ],
                &["UserPoolNeedsAuthorizerOrJwt"],
            ),
            (
                vec![pool, ("CallerIdentity", "jwt")],
                &["JwtNeedsIssuerAndAudience"],
            ),
            (
                vec![("CallerIdentity", "anonymous")],
                &["AnonymousNeedsAllowAnonymous"],
            ),
            (
                vec![
                    pool,
                    ("CallerIdentity", "authorizer"),
                    ("SessionScope", "shared"),
                ],
                &["SharedSessionsNeedIamCallers"],
            ),
            (with(&[]), &["JwtBesideSigV4NeedsItsOwnHeader"]),
            (vec![("AgentCoreAuthMode", "oauth")], &["OAuthNeedsOpenApi"]),
            (
                vec![
                    (auth, "NONE"),
                    ("CallerIdentity", "anonymous"),
                    ("AllowAnonymous", "true"),
                    ("RuntimeUserId", "true"),
                ],
                &["RuntimeUserIdNeedsACaller"],
            ),
        ];
        check_cases(name, cases);
    }
}

// ------------------------------------------------------------------------------------------
// Ending a session: DELETE, StopRuntimeSession, CORS

#[test]
fn cors_preflight_allows_delete_and_a_jwt_header_of_its_own() {
    for (name, _) in API_OPTIONS {
        let t = load_template(&option(name));
        for (header_param, header) in [
            ("authorization", None),
            ("x-auth-token", Some("x-auth-token")),
        ] {
            let d = Deployment::new(&t, &[("JwtHeader", header_param)]);
            let resources = Value::Object(d.resources().into_iter().collect());
            let mut methods = None;
            let mut headers = None;
            for (key, value) in entries(&resources) {
                // A boolean is a MethodResponses declaration that the header exists.
                if value.is_boolean() {
                    continue;
                }
                if key == "method.response.header.Access-Control-Allow-Methods" {
                    methods = value.as_str().map(str::to_owned);
                }
                if key == "method.response.header.Access-Control-Allow-Headers" {
                    headers = Some(value.clone());
                }
            }
            assert_eq!(methods.as_deref(), Some("'POST,DELETE,OPTIONS'"), "{name}");
            let headers = headers.expect("Access-Control-Allow-Headers");
            match header {
                None => {
                    let h = headers.as_str().expect("a literal list");
                    assert!(
                        h.contains("Authorization") && h.contains("X-Session-Id"),
                        "{name}"
                    );
                }
                Some(_) => {
                    let h = headers["Fn::Sub"].as_str().expect("a Fn::Sub");
                    assert!(h.ends_with(",${JwtHeader}'"), "{name}: {h}");
                }
            }
        }
    }

    let t = load_template(&option("option2-lambda-url"));
    for (header, expect_extra) in [("authorization", false), ("x-auth-token", true)] {
        let d = Deployment::new(&t, &[("JwtHeader", header)]);
        let (_, function) = the_function(&t);
        let cors = d
            .resolve(&props(function)["FunctionUrlConfig"]["Cors"])
            .expect("Cors");
        assert_eq!(cors["AllowMethods"], json!(["POST", "DELETE"]));
        let allow = cors["AllowHeaders"].as_array().expect("AllowHeaders");
        assert_eq!(
            allow.contains(&reference("JwtHeader")),
            expect_extra,
            "JwtHeader={header}"
        );
        assert!(allow.contains(&json!("x-session-id")));
    }
}

#[test]
fn runtime_user_id_permission_exists_only_when_asked_for() {
    for option in OPTIONS {
        let t = load_template(&option);
        assert_eq!(
            t["Conditions"]["SendRuntimeUserId"],
            json!({"Fn::Equals": [reference("RuntimeUserId"), "true"]}),
            "{}",
            option.name
        );
        // Structurally: the statement sits in the true branch of Fn::If SendRuntimeUserId.
        let gated: Vec<_> = all_values(resources_value(&t))
            .into_iter()
            .filter_map(|v| v.get("Fn::If").and_then(Value::as_array))
            .filter(|a| a[0] == json!("SendRuntimeUserId"))
            .collect();
        assert_eq!(gated.len(), 1, "{}", option.name);
        assert_eq!(gated[0][2], reference("AWS::NoValue"));
        assert_eq!(
            statement_actions(&gated[0][1]),
            ["bedrock-agentcore:InvokeAgentRuntimeForUser"]
        );
        // And evaluated: present with RuntimeUserId=true, absent by default.
        for (value, expected) in [("false", 0), ("true", 1)] {
            let d = Deployment::new(&t, &[("RuntimeUserId", value)]);
            let deployed = Value::Object(d.resources().into_iter().collect());
            let count = iam_statements(&deployed)
                .into_iter()
                .filter(|s| {
                    statement_actions(s)
                        .iter()
                        .any(|a| a == "bedrock-agentcore:InvokeAgentRuntimeForUser")
                })
                .count();
            assert_eq!(count, expected, "{}: RuntimeUserId={value}", option.name);
        }
    }
}

#[test]
fn stop_runtime_session_is_allowed_on_exactly_the_invoke_resources() {
    for option in OPTIONS {
        let t = load_template(&option);
        let statements = iam_statements(resources_value(&t));
        let resources_for = |action: &str| -> Vec<Vec<&Value>> {
            statements
                .iter()
                .filter(|s| statement_actions(s).iter().any(|a| a == action))
                .map(|s| statement_resources(s))
                .collect()
        };
        let invoke = resources_for("bedrock-agentcore:InvokeAgentRuntime");
        let stop = resources_for("bedrock-agentcore:StopRuntimeSession");
        let for_user = resources_for("bedrock-agentcore:InvokeAgentRuntimeForUser");
        assert_eq!(invoke.len(), 1, "{}", option.name);
        assert_eq!(stop, invoke, "{}: StopRuntimeSession", option.name);
        assert_eq!(
            for_user, invoke,
            "{}: InvokeAgentRuntimeForUser",
            option.name
        );
        assert_eq!(
            invoke[0],
            [
                &reference("AgentRuntimeArn"),
                &json!({"Fn::Sub": "${AgentRuntimeArn}/runtime-endpoint/${AgentQualifier}"})
            ],
            "{}",
            option.name
        );
    }
}

// ------------------------------------------------------------------------------------------
// Options 1 and 3: DELETE and the Cognito user pool authorizer (OpenAPI body)

/// The `/invoke` path of the one `AWS::Serverless::Api`, and the whole OpenAPI body.
fn api_invoke_path(resources: &BTreeMap<String, Value>) -> (&Value, &Value) {
    let api = resources
        .values()
        .find(|r| r["Type"] == json!("AWS::Serverless::Api"))
        .expect("the API");
    let body = &props(api)["DefinitionBody"];
    (&body["paths"]["/invoke"], body)
}

#[test]
fn api_delete_matches_post_and_cognito_replaces_iam_when_a_pool_is_set() {
    for (name, auth) in API_OPTIONS {
        let t = load_template(&option(name));

        // Default: IAM on POST and DELETE, no security scheme.
        let d = Deployment::new(&t, &[]);
        let deployed = d.resources();
        let (path, body) = api_invoke_path(&deployed);
        assert_eq!(
            path["delete"], path["post"],
            "{name}: DELETE: same auth and integration as POST"
        );
        assert_eq!(
            path["post"]["x-amazon-apigateway-auth"],
            json!({"type": reference(auth)}),
            "{name}"
        );
        assert!(path["post"].get("security").is_none(), "{name}");
        assert!(body.get("components").is_none(), "{name}");

        // With a user pool: the Cognito scheme on POST and DELETE, never on OPTIONS.
        let d = Deployment::new(
            &t,
            &[
                ("CognitoUserPoolArn", SAMPLE_USER_POOL_ARN),
                ("CallerIdentity", "authorizer"),
            ],
        );
        assert!(d.refusals().is_empty(), "{name}");
        let deployed = d.resources();
        let (path, body) = api_invoke_path(&deployed);
        assert_eq!(path["delete"], path["post"], "{name}");
        for verb in ["post", "delete"] {
            assert!(
                path[verb].get("x-amazon-apigateway-auth").is_none(),
                "{name}: {verb}"
            );
            assert_eq!(
                path[verb]["security"],
                json!([{"CognitoUserPool": []}]),
                "{name}: {verb}"
            );
        }
        assert_eq!(
            path["options"]["x-amazon-apigateway-auth"]["type"],
            json!("NONE")
        );
        let scheme = &body["components"]["securitySchemes"]["CognitoUserPool"];
        assert_eq!(
            scheme["x-amazon-apigateway-authtype"],
            json!("cognito_user_pools")
        );
        assert_eq!(scheme["in"], json!("header"));
        assert_eq!(scheme["name"], json!("Authorization"));
        assert_eq!(
            scheme["x-amazon-apigateway-authorizer"],
            json!({"type": "cognito_user_pools", "providerARNs": [reference("CognitoUserPoolArn")]})
        );
        assert_eq!(
            t["Conditions"]["HasUserPool"],
            json!({"Fn::Not": [{"Fn::Equals": [reference("CognitoUserPoolArn"), ""]}]})
        );
    }
}

#[test]
fn option1_lambda_permissions_name_post_and_delete_of_this_api_only() {
    let t = load_template(&option("option1-api-gateway"));
    // API Gateway may invoke the function for POST and DELETE /invoke, nothing else, and
    // only from this account (aws:SourceAccount) and this API (aws:SourceArn).
    let permissions = resources_of_type(&t, "AWS::Lambda::Permission");
    let mut source_arns: Vec<String> = permissions
        .iter()
        .map(|(id, p)| {
            assert_eq!(
                props(p)["Principal"],
                json!("apigateway.amazonaws.com"),
                "{id}"
            );
            assert_eq!(
                props(p)["SourceAccount"],
                reference("AWS::AccountId"),
                "{id}"
            );
            let arn = props(p)["SourceArn"]["Fn::Sub"]
                .as_str()
                .expect("SourceArn is a Fn::Sub");
            let (prefix, path) = arn.split_once("${Api}/").expect("names ${Api}");
            assert_eq!(
                prefix, "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:",
                "{id}"
            );
            path.to_owned()
        })
        .collect();
    source_arns.sort();
    assert_eq!(source_arns, ["*/DELETE/invoke", "*/POST/invoke"]);
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

// ------------------------------------------------------------------------------------------
// Metrics, alarms and the dashboard

/// The metric names the functions write (their EMF document), the one source of those names.
fn emitted_metrics() -> BTreeSet<String> {
    let record = agentcore_core::access::AccessRecord::start("NS", "option1", "r".into(), None);
    let mut record = record;
    record.client_first_byte_ms = Some(1);
    let doc = record.emf(1, std::time::SystemTime::now());
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter_map(|m| m["Name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn alarms_exist_only_with_an_email_and_watch_metrics_the_function_writes() {
    let emitted = emitted_metrics();
    for option in OPTIONS {
        let t = load_template(&option);
        let name = option.name;
        let (_, function) = the_function(&t);
        assert_eq!(
            env_vars(function)["METRICS_NAMESPACE"],
            reference("MetricsNamespace"),
            "{name}"
        );
        assert_eq!(
            param_default(&t, "AlarmEmail"),
            json!(""),
            "{name}: no alarm by default"
        );
        assert_eq!(
            t["Conditions"]["AlarmsOn"],
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]})
        );
        let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
        let names: BTreeSet<&str> = alarms.iter().map(|(n, _)| *n).collect();
        for expected in [
            "ServerErrorRateAlarm",
            "TimeToFirstByteAlarm",
            "LambdaErrorsAlarm",
            "LambdaThrottlesAlarm",
        ] {
            assert!(names.contains(expected), "{name}: {expected} in {names:?}");
        }
        let api = name != "option2-lambda-url";
        for expected in ["ApiGateway4XxAlarm", "ApiGateway5XxAlarm"] {
            assert_eq!(names.contains(expected), api, "{name}: {expected}");
        }
        for (alarm, resource) in &alarms {
            // The Managed Instances function's own, only when it exists too.
            let condition = if alarm.starts_with("ManagedInstances") {
                "ManagedInstancesAlarmsOn"
            } else {
                "AlarmsOn"
            };
            assert_eq!(resource["Condition"], json!(condition), "{name}: {alarm}");
            assert_eq!(
                props(resource)["AlarmActions"],
                json!([{"Ref": "AlarmTopic"}]),
                "{name}: {alarm}"
            );
            // Every metric of our own namespace is one the function writes.
            for v in all_values(resource) {
                if v.get("Namespace") == Some(&reference("MetricsNamespace")) {
                    let metric = v["MetricName"].as_str().expect("a metric name");
                    assert!(
                        emitted.contains(metric),
                        "{name}: {alarm} watches {metric}, not written"
                    );
                }
            }
        }
        assert_eq!(resources(&t)["AlarmTopic"]["Condition"], json!("AlarmsOn"));
    }
}

#[test]
fn api_gateway_alarms_name_the_api_the_template_creates() {
    for (folder, api) in [
        ("option1-api-gateway", "Api"),
        ("option3-api-gateway-streaming", "Api"),
    ] {
        let t = load_template(&option(folder));
        let api_name = &props(&resources(&t)[api])["Name"];
        for alarm in ["ApiGateway4XxAlarm", "ApiGateway5XxAlarm"] {
            let dims = &props(&resources(&t)[alarm])["Dimensions"];
            assert_eq!(
                dims[0],
                json!({"Name": "ApiName", "Value": api_name}),
                "{folder}: {alarm}"
            );
            assert_eq!(
                dims[1],
                json!({"Name": "Stage", "Value": {"Ref": "StageName"}}),
                "{folder}"
            );
        }
    }
}

#[test]
fn the_dashboard_is_json_and_charts_the_metrics_the_function_writes() {
    let emitted = emitted_metrics();
    for option in OPTIONS {
        let t = load_template(&option);
        let dashboard = &resources(&t)["RequestsDashboard"];
        assert_eq!(
            dashboard["Condition"],
            json!("DashboardOn"),
            "{}",
            option.name
        );
        assert_eq!(param_default(&t, "Dashboard"), json!("false"));
        let body = props(dashboard)["DashboardBody"]["Fn::Sub"][0]
            .as_str()
            .expect("a Fn::Sub template");
        // What CloudFormation substitutes: the namespace, the function name, the region.
        let text = body
            .replace("${MetricsNamespace}", "AgentCoreLambda")
            .replace("${Fn}", "fn")
            .replace("${AWS::Region}", "us-east-1");
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: the dashboard body is not JSON: {e}", option.name));
        let charted: BTreeSet<String> = all_values(&doc)
            .into_iter()
            .filter_map(|v| v.as_array())
            .filter(|row| row.first() == Some(&json!("AgentCoreLambda")))
            .filter_map(|row| row.get(1).and_then(Value::as_str).map(str::to_owned))
            .collect();
        assert!(charted.is_subset(&emitted), "{}: {charted:?}", option.name);
        assert!(charted.contains("Requests") && charted.contains("TimeToFirstByte"));
    }
}

// ------------------------------------------------------------------------------------------
// Template guard rails (issue 14): no anonymous endpoint by accident, bounded cost, auth
// changes that reach the stage, scoped trust, no raw events in the logs, a second scanner

/// The parameter that switches each option's front-door auth off (`NONE`).
const FRONT_DOORS: [(&str, &str); 3] = [
    ("option1-api-gateway", "ApiAuthType"),
    ("option2-lambda-url", "AuthType"),
    ("option3-api-gateway-streaming", "AuthorizationType"),
];

/// The value a deployment gives `v`: a parameter's for a `Ref`, `v` itself otherwise.
fn value_of(d: &Deployment<'_>, v: &Value) -> Value {
    d.resolve(v).map(|v| d.eval(&v)).unwrap_or(Value::Null)
}

/// Does this deployment, as CloudFormation would create it, let a request reach the
/// function with no auth at the front door (no SigV4, no authorizer)?
fn front_door_is_open(name: &str, d: &Deployment<'_>) -> bool {
    let deployed = d.resources();
    if name == "option2-lambda-url" {
        let (_, function) = deployed
            .iter()
            .find(|(_, r)| r["Type"] == json!("AWS::Serverless::Function"))
            .expect("the function");
        return value_of(d, &props(function)["FunctionUrlConfig"]["AuthType"]) == json!("NONE");
    }
    let (path, _) = api_invoke_path(&deployed);
    ["post", "delete"].iter().any(|verb| {
        let method = &path[*verb];
        method.get("security").is_none()
            && value_of(d, &method["x-amazon-apigateway-auth"]["type"]) == json!("NONE")
    })
}

/// Every combination of the parameters that decide who may call, for one option: each
/// one CloudFormation accepts (no rule refuses it) and that leaves the front door open
/// must either verify a JWT in the function (issuer and audience named) or carry the
/// operator's explicit AllowAnonymous=true.
#[test]
fn an_endpoint_is_anonymous_only_when_the_operator_says_so() {
    for (name, auth) in FRONT_DOORS {
        let t = load_template(&option(name));
        let identities: Vec<String> = param(&t, "CallerIdentity")["AllowedValues"]
            .as_array()
            .expect("CallerIdentity AllowedValues")
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect();
        let pools: &[&str] = if name == "option2-lambda-url" {
            &[""]
        } else {
            &["", SAMPLE_USER_POOL_ARN]
        };
        let (mut open_accepted, mut open_refused) = (0, 0);
        for auth_value in ["AWS_IAM", "NONE"] {
            for pool in pools {
                for identity in &identities {
                    for allow in ["false", "true"] {
                        for issuer in ["", SAMPLE_ISSUER] {
                            for audience in ["", "client1"] {
                                let mut overrides = vec![
                                    (auth, auth_value),
                                    ("CallerIdentity", identity.as_str()),
                                    ("AllowAnonymous", allow),
                                    ("JwtIssuer", issuer),
                                    ("JwtAudience", audience),
                                    // A JWT beside SigV4 needs a header of its own (a rule).
                                    ("JwtHeader", "x-auth-token"),
                                ];
                                if !pool.is_empty() {
                                    overrides.push(("CognitoUserPoolArn", pool));
                                }
                                let d = Deployment::new(&t, &overrides);
                                let open = front_door_is_open(name, &d);
                                let accepted = d.refusals().is_empty();
                                let verified_jwt =
                                    identity == "jwt" && !issuer.is_empty() && !audience.is_empty();
                                if open && accepted {
                                    open_accepted += 1;
                                    assert!(
                                        verified_jwt || allow == "true",
                                        "{name}: an open endpoint without AllowAnonymous: {overrides:?}"
                                    );
                                }
                                if open && !accepted && !verified_jwt && allow == "false" {
                                    open_refused += 1;
                                }
                                if accepted && identity == "anonymous" {
                                    assert_eq!(allow, "true", "{name}: {overrides:?}");
                                }
                            }
                        }
                    }
                }
            }
        }
        // The loop saw both sides: open endpoints accepted (with a JWT or the explicit yes)
        // and open endpoints refused (without either).
        assert!(open_accepted > 0 && open_refused > 0, "{name}");
        // And the plain case, by name: no auth and no opt-in fails to create.
        let d = Deployment::new(&t, &[(auth, "NONE"), ("CallerIdentity", "anonymous")]);
        assert!(front_door_is_open(name, &d), "{name}");
        assert!(
            !d.refusals().is_empty(),
            "{name}: {auth}=NONE without AllowAnonymous"
        );
    }
}

#[test]
fn every_function_has_reserved_concurrency_with_an_explicit_way_out() {
    for option in OPTIONS {
        let name = option.name;
        let t = load_template(&option);
        let p = param(&t, "ReservedConcurrency");
        assert_eq!(p["Type"], json!("Number"), "{name}");
        let default = as_number(&param_default(&t, "ReservedConcurrency")).expect("a default");
        assert!(
            (1.0..=100.0).contains(&default),
            "{name}: a default that bounds cost ({default})"
        );
        assert_eq!(as_number(&p["MinValue"]), Some(-1.0), "{name}");
        let (function_id, function) = the_function(&t);
        assert_eq!(
            props(function)["ReservedConcurrentExecutions"],
            json!({"Fn::If": ["ReserveConcurrency", reference("ReservedConcurrency"), reference("AWS::NoValue")]}),
            "{name}"
        );
        for (value, expected) in [
            ("20", Some(json!("20"))),
            ("0", Some(json!("0"))),
            ("-1", None),
        ] {
            let d = Deployment::new(&t, &[("ReservedConcurrency", value)]);
            let deployed = d.resources();
            let reserved = props(&deployed[function_id])
                .get("ReservedConcurrentExecutions")
                .map(|v| value_of(&d, v));
            assert_eq!(reserved, expected, "{name}: ReservedConcurrency={value}");
        }
    }
}

#[test]
fn streaming_timeouts_are_sized_to_the_agent_not_to_fifteen_minutes() {
    for name in ["option2-lambda-url", "option3-api-gateway-streaming"] {
        let t = load_template(&option(name));
        let (_, function) = the_function(&t);
        assert_eq!(props(function)["Timeout"], reference("Timeout"), "{name}");
        let default = as_number(&param_default(&t, "Timeout")).expect("a default");
        // A streamed invocation runs on, billed, after its client goes away: the default
        // bounds that, well below Lambda's 900 s ceiling (which stays reachable).
        assert!(default <= 300.0, "{name}: Timeout default {default}");
        assert_eq!(as_number(&param(&t, "Timeout")["MaxValue"]), Some(900.0));
    }
    // Option 3: API Gateway never gives up before the function does (by default).
    let t = load_template(&option("option3-api-gateway-streaming"));
    let timeout = as_number(&param_default(&t, "Timeout")).expect("Timeout");
    let integration = as_number(&param_default(&t, "IntegrationTimeoutMs")).expect("ms");
    assert!(
        timeout * 1000.0 <= integration,
        "{timeout} s > {integration} ms"
    );
    // Option 1 keeps its literal 29 s (see option1_gives_up_before_api_gateway_does).
    let t = load_template(&option("option1-api-gateway"));
    assert!(t["Parameters"].get("Timeout").is_none());
}

/// API Gateway REST deployments are snapshots: the stage sees a method's new auth only
/// through a new deployment. Both APIs are AWS::Serverless::Api with AlwaysDeploy, so every
/// stack update makes one; a hand-written AWS::ApiGateway::Deployment (whose logical id
/// never changes) would leave the stage on the old auth.
#[test]
fn api_stages_pick_up_auth_changes_on_every_stack_update() {
    for (name, auth) in API_OPTIONS {
        let t = load_template(&option(name));
        let apis = resources_of_type(&t, "AWS::Serverless::Api");
        assert_eq!(apis.len(), 1, "{name}");
        assert_eq!(props(apis[0].1)["AlwaysDeploy"], json!(true), "{name}");
        for hand_written in [
            "AWS::ApiGateway::Deployment",
            "AWS::ApiGateway::Stage",
            "AWS::ApiGateway::Method",
            "AWS::ApiGateway::RestApi",
        ] {
            assert!(
                resources_of_type(&t, hand_written).is_empty(),
                "{name}: {hand_written} outside the redeployed definition"
            );
        }
        // The auth lives in the definition that is redeployed.
        let body = &props(apis[0].1)["DefinitionBody"];
        assert!(references_param_anywhere(body, auth), "{name}: {auth}");
        assert!(
            references_param_anywhere(body, "CognitoUserPoolArn"),
            "{name}"
        );
    }
}

fn references_param_anywhere(v: &Value, name: &str) -> bool {
    all_values(v).iter().any(|x| references_param(x, name))
}

/// Every role a service other than Lambda may assume names the account and the source
/// (confused deputy): API Gateway's invoke role in option 3 (option 1 has none: Lambda
/// permissions with SourceArn and SourceAccount, checked above).
#[test]
fn service_roles_trust_only_this_account_and_its_apis() {
    let mut apigateway_roles = 0;
    for option in OPTIONS {
        let t = load_template(&option);
        for (id, role) in resources_of_type(&t, "AWS::IAM::Role") {
            let statements = props(role)["AssumeRolePolicyDocument"]["Statement"]
                .as_array()
                .expect("trust statements");
            for statement in statements {
                let service = statement["Principal"]["Service"].as_str().expect("service");
                if service == "lambda.amazonaws.com" {
                    continue;
                }
                assert_eq!(service, "apigateway.amazonaws.com", "{}: {id}", option.name);
                apigateway_roles += 1;
                let condition = &statement["Condition"];
                assert_eq!(
                    condition["StringEquals"]["aws:SourceAccount"],
                    reference("AWS::AccountId"),
                    "{}: {id}",
                    option.name
                );
                let source = condition["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
                    .as_str()
                    .expect("aws:SourceArn is a Fn::Sub");
                assert!(
                    source.starts_with(
                        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                    ),
                    "{}: {id}: {source}",
                    option.name
                );
            }
        }
    }
    assert_eq!(apigateway_roles, 1, "option 3's invoke role");
}

#[test]
fn no_log_level_lets_the_runtime_or_the_sdk_log_raw_events() {
    for option in OPTIONS {
        let name = option.name;
        let t = load_template(&option);
        assert_eq!(param_default(&t, "LogLevel"), json!("INFO"), "{name}");
        let allowed: Vec<&str> = param(&t, "LogLevel")["AllowedValues"]
            .as_array()
            .expect("LogLevel is a closed list")
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect();
        // TRACE: lambda_runtime logs the raw event, the SDK whole requests and responses.
        assert!(
            !allowed.iter().any(|l| l.eq_ignore_ascii_case("trace")),
            "{name}: {allowed:?}"
        );
        assert_eq!(
            allowed,
            ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"],
            "{name}"
        );
        let (_, function) = the_function(&t);
        let logging = &props(function)["LoggingConfig"];
        assert_eq!(
            logging["ApplicationLogLevel"],
            reference("LogLevel"),
            "{name}"
        );
        assert_eq!(logging["SystemLogLevel"], json!("WARN"), "{name}");
        // RUST_LOG would win over the level (agentcore-core's telemetry): never set here.
        assert!(!env_vars(function).contains_key("RUST_LOG"), "{name}");
    }
}

/// The checkov rules each template skips, and where: a new skip (or a skip moved to
/// another resource) is a decision to make here, with its reason in the template.
const CHECKOV_SKIPS: [(&str, &str, &[&str]); 16] = [
    ("option1-api-gateway", "FunctionLogGroup", &["CKV_AWS_158"]),
    ("option1-api-gateway", "ApiAccessLogGroup", &["CKV_AWS_158"]),
    (
        "option1-api-gateway",
        "AgentFunction",
        &["CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"],
    ),
    (
        "option1-api-gateway",
        "ManagedInstancesFunction",
        &["CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"],
    ),
    ("option1-api-gateway", "Api", &["CKV_AWS_73", "CKV_AWS_120"]),
    ("option1-api-gateway", "AlarmTopic", &["CKV_AWS_26"]),
    ("option2-lambda-url", "FunctionLogGroup", &["CKV_AWS_158"]),
    (
        "option2-lambda-url",
        "AgentFunction",
        &["CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"],
    ),
    ("option2-lambda-url", "AlarmTopic", &["CKV_AWS_26"]),
    (
        "option2-lambda-url",
        "ManagedInstancesFunction",
        &["CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"],
    ),
    (
        "option3-api-gateway-streaming",
        "FunctionLogGroup",
        &["CKV_AWS_158"],
    ),
    (
        "option3-api-gateway-streaming",
        "ApiAccessLogGroup",
        &["CKV_AWS_158"],
    ),
    (
        "option3-api-gateway-streaming",
        "AgentFunction",
        &["CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"],
    ),
    (
        "option3-api-gateway-streaming",
        "ManagedInstancesFunction",
        &["CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"],
    ),
    (
        "option3-api-gateway-streaming",
        "Api",
        &["CKV_AWS_73", "CKV_AWS_120"],
    ),
    (
        "option3-api-gateway-streaming",
        "AlarmTopic",
        &["CKV_AWS_26"],
    ),
];

#[test]
fn every_checkov_skip_is_listed_and_says_why() {
    let mut found: BTreeSet<(String, String, String)> = BTreeSet::new();
    for option in OPTIONS {
        let t = load_template(&option);
        for (id, resource) in resources(&t) {
            let Some(skips) = resource.pointer("/Metadata/checkov/skip") else {
                continue;
            };
            for skip in skips.as_array().expect("a list of skips") {
                let rule = skip["id"].as_str().expect("id");
                assert!(
                    rule.starts_with("CKV_AWS_") || rule.starts_with("CKV2_AWS_"),
                    "{}: {id}: {rule}",
                    option.name
                );
                let why = skip["comment"].as_str().unwrap_or("");
                assert!(
                    why.split_whitespace().count() >= 8,
                    "{}: {id} skips {rule} without saying why",
                    option.name
                );
                found.insert((option.name.to_owned(), id.clone(), rule.to_owned()));
            }
        }
    }
    let expected: BTreeSet<(String, String, String)> = CHECKOV_SKIPS
        .iter()
        .flat_map(|(o, r, ids)| {
            ids.iter()
                .map(move |i| ((*o).to_owned(), (*r).to_owned(), (*i).to_owned()))
        })
        .collect();
    assert_eq!(found, expected);

    // No rule is skipped wholesale: the config keeps checkov offline and on CloudFormation.
    let text = fs::read_to_string(workspace_root().join(".checkov.yaml")).expect(".checkov.yaml");
    let config: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    assert!(config.get("skip-check").is_none());
    assert_eq!(
        config["framework"],
        serde_yaml::from_str::<serde_yaml::Value>("[cloudformation]").expect("yaml")
    );
    assert_eq!(config["skip-download"], serde_yaml::Value::Bool(true));
}

/// `make lint` runs checkov, pinned, on the three templates with the config above.
#[test]
fn make_lint_runs_a_pinned_checkov_on_every_template() {
    let makefile = fs::read_to_string(workspace_root().join("Makefile")).expect("Makefile");
    let version = makefile
        .lines()
        .find_map(|l| l.strip_prefix("CHECKOV_VERSION := "))
        .expect("CHECKOV_VERSION pinned");
    assert!(
        version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "an exact version: {version}"
    );
    let lint: Vec<&str> = makefile
        .split("\nlint:")
        .nth(1)
        .expect("a lint target")
        .lines()
        .take_while(|l| l.starts_with('\t') || l.starts_with(' ') || !l.contains(':'))
        .collect();
    assert!(lint[0].contains("$(CHECKOV_STAMP)"), "{:?}", lint[0]);
    assert!(
        lint.iter().any(
            |l| l.contains("checkov --config-file .checkov.yaml") && l.contains("$(TEMPLATES)")
        ),
        "{lint:?}"
    );
}

/// `key = value` lines of `[package.metadata.lambda.deploy]` in an option's Cargo.toml.
fn cargo_lambda_deploy_defaults(option: &DeployOption) -> BTreeMap<String, String> {
    let manifest = fs::read_to_string(workspace_root().join(option.name).join("Cargo.toml"))
        .expect("the option's Cargo.toml");
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[package.metadata.lambda.deploy]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

#[test]
fn cargo_lambda_deploy_defaults_are_the_templates() {
    for option in OPTIONS {
        let t = load_template(&option);
        let (_, function) = the_function(&t);
        let defaults = cargo_lambda_deploy_defaults(&option);
        // A property is a literal or a parameter's default.
        let value = |property: &Value| match property.get("Ref").and_then(Value::as_str) {
            Some(name) => param_default(&t, name),
            None => property.clone(),
        };
        let number = |key: &str| defaults.get(key).and_then(|v| v.parse::<f64>().ok());
        assert_eq!(
            number("memory"),
            as_number(&value(&props(function)["MemorySize"])),
            "{}: memory",
            option.name
        );
        assert_eq!(
            number("timeout"),
            as_number(&value(&props(function)["Timeout"])),
            "{}: timeout",
            option.name
        );
        assert_eq!(
            number("log_retention"),
            as_number(&param_default(&t, "LogRetentionInDays")),
            "{}: log_retention",
            option.name
        );
        assert_eq!(
            defaults.get("tracing").map(|v| v.to_ascii_lowercase()),
            param_default(&t, "TracingMode")
                .as_str()
                .map(str::to_ascii_lowercase),
            "{}: tracing",
            option.name
        );
    }
}

// ------------------------------------------------------------------------------------------
// Lambda Managed Instances (issue 16): an optional second function in every option

const SAMPLE_CAPACITY_PROVIDER_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:capacity-provider:chat-streams";

#[test]
fn option2_managed_instances_exist_only_with_a_capacity_provider() {
    let t = load_template(&option("option2-lambda-url"));
    assert_eq!(param_default(&t, "CapacityProviderArn"), json!(""));
    let managed = |d: &Deployment<'_>| -> BTreeSet<String> {
        d.resources()
            .into_keys()
            .filter(|id| id.starts_with("ManagedInstances"))
            .collect()
    };
    // The default deploys the on-demand function only.
    assert_eq!(managed(&Deployment::new(&t, &[])), BTreeSet::new());
    let on = Deployment::new(&t, &[("CapacityProviderArn", SAMPLE_CAPACITY_PROVIDER_ARN)]);
    assert_eq!(
        managed(&on),
        BTreeSet::from(["ManagedInstancesFunction".to_owned()])
    );
    // Public invoke permissions for its URL only when the URL is public (AuthType=NONE).
    let public = Deployment::new(
        &t,
        &[
            ("CapacityProviderArn", SAMPLE_CAPACITY_PROVIDER_ARN),
            ("AuthType", "NONE"),
            ("AllowAnonymous", "true"),
        ],
    );
    assert_eq!(
        managed(&public),
        BTreeSet::from([
            "ManagedInstancesFunction".to_owned(),
            "ManagedInstancesPublicUrlInvokeFunction".to_owned(),
            "ManagedInstancesPublicUrlInvokeFunctionUrl".to_owned(),
        ])
    );
    // Its URL and ARN are outputs under the same condition.
    for output in ["ManagedInstancesFunctionUrl", "ManagedInstancesFunctionArn"] {
        assert_eq!(
            t["Outputs"][output]["Condition"],
            json!("ManagedInstancesOn"),
            "{output}"
        );
    }
    assert_eq!(
        t["Outputs"]["ManagedInstancesFunctionUrl"]["Value"],
        get_att("ManagedInstancesFunctionUrl", "FunctionUrl")
    );
}

/// The four per-function alarms, each mirrored for the Managed Instances function.
const PER_FUNCTION_ALARMS: [&str; 4] = [
    "ServerErrorRateAlarm",
    "TimeToFirstByteAlarm",
    "LambdaErrorsAlarm",
    "LambdaThrottlesAlarm",
];

const SAMPLE_ALARM_EMAIL: &str = "ops@example.com";

/// The ids of the resources a deployment creates whose id starts with `ManagedInstances`.
fn managed_instances_resources(d: &Deployment<'_>) -> BTreeSet<String> {
    d.resources()
        .into_keys()
        .filter(|id| id.starts_with("ManagedInstances"))
        .collect()
}

#[test]
fn managed_instances_exist_only_with_a_capacity_provider_in_every_option() {
    for option in OPTIONS {
        let name = option.name;
        let t = load_template(&option);
        assert_eq!(
            param_default(&t, "CapacityProviderArn"),
            json!(""),
            "{name}"
        );
        assert_eq!(
            t["Conditions"]["ManagedInstancesOn"],
            json!({"Fn::Not": [{"Fn::Equals": [reference("CapacityProviderArn"), ""]}]}),
            "{name}"
        );
        assert_eq!(
            t["Conditions"]["ManagedInstancesAlarmsOn"],
            json!({"Fn::And": [{"Condition": "AlarmsOn"}, {"Condition": "ManagedInstancesOn"}]}),
            "{name}"
        );
        let none = BTreeSet::new();
        // The default, with or without alarms, deploys the on-demand function only.
        assert_eq!(
            managed_instances_resources(&Deployment::new(&t, &[])),
            none,
            "{name}"
        );
        assert_eq!(
            managed_instances_resources(&Deployment::new(
                &t,
                &[("AlarmEmail", SAMPLE_ALARM_EMAIL)]
            )),
            none,
            "{name}"
        );
        // A capacity provider adds the function; the alarms add its four alarms.
        let on = Deployment::new(&t, &[("CapacityProviderArn", SAMPLE_CAPACITY_PROVIDER_ARN)]);
        assert!(on.refusals().is_empty(), "{name}: {:?}", on.refusals());
        let function = BTreeSet::from(["ManagedInstancesFunction".to_owned()]);
        assert_eq!(managed_instances_resources(&on), function, "{name}");
        let with_alarms = Deployment::new(
            &t,
            &[
                ("CapacityProviderArn", SAMPLE_CAPACITY_PROVIDER_ARN),
                ("AlarmEmail", SAMPLE_ALARM_EMAIL),
            ],
        );
        let mut expected = function.clone();
        expected.extend(
            PER_FUNCTION_ALARMS
                .iter()
                .map(|a| format!("ManagedInstances{a}")),
        );
        assert_eq!(
            managed_instances_resources(&with_alarms),
            expected,
            "{name}"
        );
        // The on-demand function stays, with or without the Managed Instances one.
        let (on_demand, _) = the_function(&t);
        assert!(on.resources().contains_key(on_demand), "{name}");
        // Its ARN is an output under the same condition.
        assert_eq!(
            t["Outputs"]["ManagedInstancesFunctionArn"]["Condition"],
            json!("ManagedInstancesOn"),
            "{name}"
        );
        assert_eq!(
            t["Outputs"]["ManagedInstancesFunctionArn"]["Value"],
            get_att("ManagedInstancesFunction", "Arn"),
            "{name}"
        );
    }
}

#[test]
fn managed_instances_parameters_are_grouped_and_documented() {
    let names = [
        "CapacityProviderArn",
        "ManagedInstancesMaxConcurrency",
        "ManagedInstancesMemorySize",
        "ManagedInstancesMemoryPerVCpu",
    ];
    let root = fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let section = root
        .split("\n## Many streams per process: Lambda Managed Instances")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the root README's Managed Instances section");
    for option in OPTIONS {
        let name = option.name;
        let t = load_template(&option);
        let groups = t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
            .as_array()
            .expect("ParameterGroups");
        let group = groups
            .iter()
            .find(|g| g["Label"]["default"] == json!("Lambda Managed Instances (optional)"))
            .unwrap_or_else(|| panic!("{name}: no Managed Instances parameter group"));
        assert_eq!(group["Parameters"], json!(names), "{name}");
        for parameter in names {
            let p = param(&t, parameter);
            assert!(
                p["Description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}: {parameter} has no Description"
            );
            assert!(
                section.contains(parameter),
                "the root README's Managed Instances section does not name {parameter}"
            );
        }
        // Each option's README points at the root README's section (which owns the cost
        // model) and names the parameter that turns it on.
        let readme = fs::read_to_string(workspace_root().join(name).join("README.md"))
            .expect("the option's README");
        assert!(readme.contains("`CapacityProviderArn`"), "{name}: README");
        assert!(
            readme.contains("../README.md#many-streams-per-process-lambda-managed-instances"),
            "{name}: README links the Managed Instances section"
        );
    }
}

#[test]
fn managed_instances_run_many_requests_per_environment_on_one_vcpu() {
    for option in OPTIONS {
        let name = option.name;
        let t = load_template(&option);
        let function = &t["Resources"]["ManagedInstancesFunction"];
        assert_eq!(
            function["Type"],
            json!("AWS::Serverless::Function"),
            "{name}"
        );
        let p = props(function);
        assert_eq!(
            p["CapacityProviderConfig"],
            json!({
                "Arn": reference("CapacityProviderArn"),
                "PerExecutionEnvironmentMaxConcurrency": reference("ManagedInstancesMaxConcurrency"),
                "ExecutionEnvironmentMemoryGiBPerVCpu": reference("ManagedInstancesMemoryPerVCpu"),
            }),
            "{name}: SAM's CapacityProviderConfig, a plain mapping (its transform refuses an Fn::If there)"
        );
        assert_eq!(
            p["MemorySize"],
            reference("ManagedInstancesMemorySize"),
            "{name}"
        );
        // The capacity provider's VPC is used: Lambda refuses a VpcConfig beside it.
        assert!(p.get("VpcConfig").is_none(), "{name}");
        // Lambda's limits: 2 GB and 1 vCPU at least, 1 to 1,600 invocations per
        // environment, 2, 4 or 8 GiB per vCPU.
        let memory = param(&t, "ManagedInstancesMemorySize");
        assert_eq!(as_number(&memory["MinValue"]), Some(2048.0), "{name}");
        let concurrency = param(&t, "ManagedInstancesMaxConcurrency");
        assert_eq!(
            (
                as_number(&concurrency["MinValue"]),
                as_number(&concurrency["MaxValue"])
            ),
            (Some(1.0), Some(1600.0)),
            "{name}"
        );
        assert!(
            as_number(&param_default(&t, "ManagedInstancesMaxConcurrency")).unwrap_or(0.0) > 1.0,
            "{name}"
        );
        assert_eq!(
            param(&t, "ManagedInstancesMemoryPerVCpu")["AllowedValues"],
            json!([2, 4, 8]),
            "{name}"
        );
        // The defaults give one vCPU per environment: the runtime is one thread
        // (agentcore_core::entry), a second vCPU would sit idle.
        let mb = as_number(&param_default(&t, "ManagedInstancesMemorySize")).unwrap_or(0.0);
        let per_vcpu =
            as_number(&param_default(&t, "ManagedInstancesMemoryPerVCpu")).unwrap_or(0.0);
        assert_eq!(
            mb / (per_vcpu * 1024.0),
            1.0,
            "{name}: vCPUs per environment"
        );
        let pattern = param(&t, "CapacityProviderArn")["AllowedPattern"]
            .as_str()
            .unwrap_or_default();
        assert!(
            pattern.starts_with("^$|") && pattern.contains(":capacity-provider:"),
            "{name}: {pattern}"
        );
    }
    // Option 2's Function URL streams, like the on-demand function's.
    let t = load_template(&option("option2-lambda-url"));
    assert_eq!(
        props(&t["Resources"]["ManagedInstancesFunction"])["FunctionUrlConfig"]["InvokeMode"],
        json!("RESPONSE_STREAM")
    );
}

#[test]
fn managed_instances_function_is_the_on_demand_one_but_for_its_compute() {
    for option in OPTIONS {
        let name = option.name;
        let t = load_template(&option);
        let (_, on_demand) = the_function(&t);
        let managed = &t["Resources"]["ManagedInstancesFunction"];
        assert_eq!(managed["Condition"], json!("ManagedInstancesOn"), "{name}");
        assert_eq!(
            managed["Metadata"]["BuildProperties"], on_demand["Metadata"]["BuildProperties"],
            "{name}: the same binary"
        );
        assert_eq!(
            managed["Metadata"]["BuildMethod"], on_demand["Metadata"]["BuildMethod"],
            "{name}"
        );
        let strip = |function: &Value| -> Map<String, Value> {
            let mut p = props(function).as_object().cloned().unwrap_or_default();
            for compute in [
                "MemorySize",
                "CapacityProviderConfig",
                "ReservedConcurrentExecutions",
                "Description",
            ] {
                p.remove(compute);
            }
            p
        };
        // Same code, role, environment, logging, timeout, tracing (and option 2's Function
        // URL): a setting added to one and not the other fails here.
        assert_eq!(strip(managed), strip(on_demand), "{name}");
        // Its concurrency is bounded by the capacity provider, not by reserved concurrency.
        assert!(
            props(managed).get("ReservedConcurrentExecutions").is_none(),
            "{name}"
        );
    }
}

/// `v` with every `{"Ref": from}` replaced by `{"Ref": to}`.
fn with_ref_renamed(v: &Value, from: &str, to: &str) -> Value {
    if *v == reference(from) {
        return reference(to);
    }
    match v {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| with_ref_renamed(i, from, to))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_ref_renamed(v, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn managed_instances_alarms_mirror_the_on_demand_ones_on_its_own_metrics() {
    for option in OPTIONS {
        let name = option.name;
        let t = load_template(&option);
        let (on_demand, _) = the_function(&t);
        for alarm in PER_FUNCTION_ALARMS {
            let mirrored = &resources(&t)[&format!("ManagedInstances{alarm}")];
            assert_eq!(
                mirrored["Condition"],
                json!("ManagedInstancesAlarmsOn"),
                "{name}: {alarm}"
            );
            // Its own function, never the on-demand one.
            assert!(
                !all_values(mirrored).contains(&&reference(on_demand)),
                "{name}: ManagedInstances{alarm} watches {on_demand}"
            );
            assert!(
                all_values(mirrored).contains(&&reference("ManagedInstancesFunction")),
                "{name}: ManagedInstances{alarm}"
            );
            // Otherwise the same alarm (metric, statistic, threshold, topic): only the
            // function and the description differ.
            let comparable = |v: &Value| {
                let mut v = v.clone();
                v["Properties"]
                    .as_object_mut()
                    .expect("Properties")
                    .remove("AlarmDescription");
                v.as_object_mut().expect("a resource").remove("Condition");
                v
            };
            let original = &resources(&t)[alarm];
            assert_eq!(
                comparable(&with_ref_renamed(
                    mirrored,
                    "ManagedInstancesFunction",
                    on_demand
                )),
                comparable(original),
                "{name}: ManagedInstances{alarm}"
            );
        }
    }
}

/// The logical id of the function an integration URI names (`...functions/${Id.Arn}/...`),
/// and what follows it.
fn integration_target(integration: &Value) -> (String, String) {
    let uri = integration["uri"]["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("the integration URI is a Fn::Sub string: {integration}"));
    let (_, rest) = uri.split_once("/functions/${").expect("names a function");
    let (id, tail) = rest.split_once(".Arn}").expect("by its Arn");
    (id.to_owned(), tail.to_owned())
}

/// An API has one integration per method: with a capacity provider, POST and DELETE /invoke
/// invoke the Managed Instances function (by its unqualified ARN, which Lambda routes to
/// $LATEST.PUBLISHED), and the one grant API Gateway holds (option 1's Lambda permissions,
/// option 3's invoke role) names that function, never the unused one.
#[test]
fn api_integration_follows_managed_instances() {
    for (name, _) in API_OPTIONS {
        let t = load_template(&option(name));
        let (on_demand, _) = the_function(&t);
        for (overrides, expected) in [
            (vec![], on_demand),
            (
                vec![("CapacityProviderArn", SAMPLE_CAPACITY_PROVIDER_ARN)],
                "ManagedInstancesFunction",
            ),
        ] {
            let d = Deployment::new(&t, &overrides);
            let deployed = d.resources();
            assert!(deployed.contains_key(expected), "{name}: {expected}");
            let (path, _) = api_invoke_path(&deployed);
            for verb in ["post", "delete"] {
                let integration = &path[verb]["x-amazon-apigateway-integration"];
                let (id, tail) = integration_target(integration);
                assert_eq!(id, expected, "{name}: {verb} with {overrides:?}");
                // Unqualified: no :version or :alias between the ARN and the action.
                assert!(
                    tail == "/invocations" || tail == "/response-streaming-invocations",
                    "{name}: {verb}: {tail}"
                );
            }
            let arn = get_att(expected, "Arn");
            if name == "option1-api-gateway" {
                let permissions: Vec<&Value> = deployed
                    .values()
                    .filter(|r| r["Type"] == json!("AWS::Lambda::Permission"))
                    .collect();
                assert_eq!(permissions.len(), 2, "{name}: POST and DELETE");
                for permission in permissions {
                    assert_eq!(
                        props(permission)["FunctionName"],
                        arn,
                        "{name}: {overrides:?}"
                    );
                }
            } else {
                let role_id = path["post"]["x-amazon-apigateway-integration"]["credentials"]
                    ["Fn::GetAtt"][0]
                    .as_str()
                    .expect("credentials is a GetAtt");
                let statements = iam_statements(&deployed[role_id]);
                assert_eq!(statements.len(), 1, "{name}");
                assert_eq!(
                    statement_resources(statements[0]),
                    [&arn],
                    "{name}: {overrides:?}"
                );
            }
        }
    }
}
