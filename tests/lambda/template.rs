//! `template.yaml` read as CloudFormation would, for the parts the harness deploys: the functions
//! (binary, environment, timeout, memory, role, events), each role's statements, the queues, the
//! table and the admin token secret. `!Ref`, `!GetAtt` and `!Sub` are resolved against the names
//! and ARNs of the resources created on moto.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value as Json;
use serde_yaml::Value;

use super::proxy::{ACCOUNT, REGION};

pub struct Template {
    root: Value,
}

/// One statement of a role's policy, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// What `!Ref` and `!GetAtt` of each resource give on this deployment, and the parameters.
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub stack: String,
    pub refs: HashMap<String, String>,
    pub attributes: HashMap<(String, String), String>,
}

/// A function of the template.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// The workspace binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub role: String,
    pub timeout_secs: u64,
    pub memory_mb: u32,
    /// Globals merged with its own, unresolved.
    pub environment: BTreeMap<String, Value>,
    pub events: Vec<EventDef>,
    /// `LoggingConfig.LogGroup`, unresolved.
    pub log_group: Option<Value>,
}

#[derive(Debug, Clone)]
pub enum EventDef {
    Http { method: String, path: String },
    Sqs { queue: Value, batch_size: usize, report_batch_item_failures: bool },
    Schedule { logical_id: String },
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut v = untag(v);
    for key in path {
        v = untag(v.get(*key)?);
    }
    Some(v)
}

impl Template {
    pub fn load() -> Template {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Template { root: serde_yaml::from_str(&text).expect("template.yaml is YAML") }
    }

    pub fn resource(&self, logical_id: &str) -> &Value {
        at(&self.root, &["Resources", logical_id]).unwrap_or_else(|| panic!("no resource {logical_id} in the template"))
    }

    pub fn resources_of_type(&self, ty: &str) -> Vec<String> {
        at(&self.root, &["Resources"])
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter(|(_, r)| at(r, &["Type"]).and_then(Value::as_str) == Some(ty))
            .filter_map(|(k, _)| k.as_str().map(String::from))
            .collect()
    }

    pub fn parameter_default(&self, name: &str) -> Option<String> {
        let v = at(&self.root, &["Parameters", name, "Default"])?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A variable of `Globals.Function.Environment`.
    pub fn function_environment(&self, name: &str) -> Value {
        at(&self.root, &["Globals", "Function", "Environment", "Variables"])
            .and_then(|v| v.get(name))
            .cloned()
            .unwrap_or_else(|| panic!("Globals sets no {name}"))
    }

    /// A resource's `Properties`.
    pub fn properties(&self, logical_id: &str) -> &Value {
        at(self.resource(logical_id), &["Properties"]).unwrap_or_else(|| panic!("{logical_id} has no Properties"))
    }

    pub fn functions(&self) -> Vec<FunctionDef> {
        let globals = at(&self.root, &["Globals", "Function"]);
        let global = |key: &str| globals.and_then(|g| at(g, &[key]));
        let mut out = Vec::new();
        for id in self.resources_of_type("AWS::Serverless::Function") {
            let f = self.resource(&id);
            let props = at(f, &["Properties"]).expect("function properties");
            let prop = |key: &str| at(props, &[key]).or_else(|| global(key));
            let mut environment = BTreeMap::new();
            for vars in [global("Environment"), at(props, &["Environment"])].into_iter().flatten() {
                for (k, v) in at(vars, &["Variables"]).and_then(Value::as_mapping).into_iter().flatten() {
                    environment.insert(k.as_str().expect("variable name").to_string(), v.clone());
                }
            }
            let role = match untag(props).get("Role") {
                Some(r) => getatt_target(r).expect("Role: !GetAtt <Role>.Arn"),
                None => panic!("{id} has no Role"),
            };
            let mut events = Vec::new();
            for (name, e) in at(props, &["Events"]).and_then(Value::as_mapping).into_iter().flatten() {
                let p = at(e, &["Properties"]).expect("event properties");
                let s = |k: &str| at(p, &[k]).and_then(Value::as_str).unwrap_or_default().to_string();
                match at(e, &["Type"]).and_then(Value::as_str) {
                    Some("HttpApi") => events.push(EventDef::Http { method: s("Method"), path: s("Path") }),
                    Some("SQS") => events.push(EventDef::Sqs {
                        queue: p.get("Queue").cloned().expect("SQS Queue"),
                        batch_size: at(p, &["BatchSize"]).and_then(Value::as_u64).unwrap_or(10) as usize,
                        report_batch_item_failures: at(p, &["FunctionResponseTypes"])
                            .and_then(Value::as_sequence)
                            .is_some_and(|t| t.iter().any(|x| x.as_str() == Some("ReportBatchItemFailures"))),
                    }),
                    Some("Schedule") => events
                        .push(EventDef::Schedule { logical_id: format!("{id}{}", name.as_str().unwrap_or_default()) }),
                    other => panic!("{id}: event type {other:?} is not emulated"),
                }
            }
            out.push(FunctionDef {
                binary: at(f, &["Metadata", "BuildProperties", "Binary"])
                    .and_then(Value::as_str)
                    .expect("BuildProperties.Binary")
                    .to_string(),
                role,
                timeout_secs: prop("Timeout").and_then(Value::as_u64).unwrap_or(3),
                memory_mb: prop("MemorySize").and_then(Value::as_u64).unwrap_or(128) as u32,
                environment,
                events,
                log_group: untag(props).get("LoggingConfig").and_then(|c| untag(c).get("LogGroup")).cloned(),
            });
        }
        out
    }

    /// The statements of a role's inline policies, resolved.
    pub fn role_statements(&self, role: &str, names: &Names) -> Vec<Statement> {
        let mut out = Vec::new();
        for policy in at(self.properties(role), &["Policies"]).and_then(Value::as_sequence).into_iter().flatten() {
            for st in at(policy, &["PolicyDocument", "Statement"]).and_then(Value::as_sequence).into_iter().flatten() {
                assert_eq!(at(st, &["Effect"]).and_then(Value::as_str), Some("Allow"), "{role}: only Allow statements");
                let list = |key: &str| -> Vec<String> {
                    match names.resolve(st.get(key).unwrap_or(&Value::Null)) {
                        Json::Array(items) => items.into_iter().filter_map(|i| i.as_str().map(String::from)).collect(),
                        Json::String(s) => vec![s],
                        other => panic!("{role}: {key} is {other}"),
                    }
                };
                out.push(Statement {
                    sid: at(st, &["Sid"]).and_then(Value::as_str).expect("every statement has a Sid").to_string(),
                    actions: list("Action"),
                    resources: list("Resource"),
                });
            }
        }
        out
    }
}

/// `Role` of `!GetAtt Role.Arn`.
fn getatt_target(v: &Value) -> Option<String> {
    let Value::Tagged(t) = v else { return None };
    if t.tag != "GetAtt" {
        return None;
    }
    Some(untag(&t.value).as_str()?.split('.').next()?.to_string())
}

impl Names {
    pub fn new(stack: &str) -> Names {
        Names { stack: stack.to_string(), ..Names::default() }
    }

    fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::StackName" => self.stack.clone(),
            "AWS::Region" => REGION.to_string(),
            "AWS::AccountId" => ACCOUNT.to_string(),
            "AWS::Partition" => "aws".to_string(),
            "AWS::URLSuffix" => "amazonaws.com".to_string(),
            _ => return None,
        })
    }

    fn reference(&self, name: &str) -> String {
        self.pseudo(name)
            .or_else(|| self.refs.get(name).cloned())
            .unwrap_or_else(|| panic!("!Ref {name}: not deployed by the harness"))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> String {
        self.attributes
            .get(&(resource.to_string(), attribute.to_string()))
            .cloned()
            .unwrap_or_else(|| panic!("!GetAtt {resource}.{attribute}: not deployed by the harness"))
    }

    /// `value` with every `!Ref`, `!GetAtt` and `!Sub` resolved.
    pub fn resolve(&self, value: &Value) -> Json {
        match value {
            Value::Tagged(t) if t.tag == "Ref" => Json::from(self.reference(t.value.as_str().expect("!Ref name"))),
            Value::Tagged(t) if t.tag == "GetAtt" => {
                let (r, a) = match &t.value {
                    Value::String(s) => s.split_once('.').expect("!GetAtt Resource.Attribute"),
                    Value::Sequence(s) => (s[0].as_str().expect("resource"), s[1].as_str().expect("attribute")),
                    other => panic!("!GetAtt {other:?}"),
                };
                Json::from(self.attribute(r, a))
            }
            Value::Tagged(t) if t.tag == "Sub" => {
                let text = t.value.as_str().expect("!Sub with a string");
                let mut out = String::new();
                let mut rest = text;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').expect("closing }") + start;
                    let name = &rest[start + 2..end];
                    out.push_str(&match name.split_once('.') {
                        Some((r, a)) if !name.starts_with("AWS::") => self.attribute(r, a),
                        _ => self.reference(name),
                    });
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Json::from(out)
            }
            Value::Tagged(t) => panic!("the harness does not resolve !{}", t.tag),
            Value::Sequence(items) => Json::Array(items.iter().map(|i| self.resolve(i)).collect()),
            Value::Mapping(m) => Json::Object(
                m.iter().map(|(k, v)| (k.as_str().expect("string keys").to_string(), self.resolve(v))).collect(),
            ),
            Value::String(s) => Json::from(s.clone()),
            Value::Number(n) => serde_json::to_value(n).expect("a number"),
            Value::Bool(b) => Json::from(*b),
            Value::Null => Json::Null,
        }
    }

    /// A resolved value as the string CloudFormation would pass (numbers and booleans as text).
    pub fn resolve_string(&self, value: &Value) -> String {
        match self.resolve(value) {
            Json::String(s) => s,
            other => other.to_string(),
        }
    }
}
