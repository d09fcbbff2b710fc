//! A local stand-in for the AWS services around hmsync's Lambda functions, so the real function
//! binaries run as they run on AWS:
//!
//! - [`runtime_api`]: the Lambda Runtime API each function process polls;
//! - [`function`]: execution environments (processes) started, reused and stopped as Lambda does;
//! - [`apigw`]: API Gateway HTTP API (payload format 2.0) in front of the HTTP functions;
//! - [`sqs`]: the SQS event source mapping (batches, partial batch responses, deletes);
//! - [`schedule`]: EventBridge's scheduled events.
//!
//! The end-to-end tests of the deployed shape (`tests/lambda.rs`) and the cold-start benchmark
//! (`hmsync bench`, part E) use it.

pub mod apigw;
pub mod function;
pub mod runtime_api;
pub mod schedule;
pub mod sqs;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

pub use function::{Function, FunctionSpec, Instance, Invocation, Outcome};
pub use runtime_api::{Answer, RuntimeApi};

/// Invokes a deployment's functions by name.
pub trait Invoke: Send + Sync + 'static {
    fn invoke(&self, function: &str, event: Value) -> BoxFuture<'_, Outcome>;
}

/// The functions of a deployment, by name.
#[derive(Default)]
pub struct Functions(pub HashMap<String, Arc<Function>>);

impl Invoke for Functions {
    fn invoke(&self, function: &str, event: Value) -> BoxFuture<'_, Outcome> {
        let f = self.0.get(function).cloned();
        let name = function.to_string();
        Box::pin(async move {
            match f {
                Some(f) => f.invoke(&event).await,
                None => Outcome::Exited(format!("no function {name} in this deployment")),
            }
        })
    }
}
