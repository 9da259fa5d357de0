//! Authorization of calls by Cedar policies (docs/security.md).
//!
//! Every call a runtime serves (but `hms.sys.v1.System/Health`) is decided
//! by [`Authorization::decide`], once a policy set is configured: the
//! principal is the verified caller (or the anonymous one), the action the
//! full method name (a member of its service's action group), the resource
//! the agent, task or knowledge entry the request names, read from the
//! store, and the context the transport and the time. Policies are
//! validated against a Cedar schema derived from the registered services
//! and the domain messages' descriptors, and replaced as one value, so a
//! call sees one whole policy set. Decisions that cannot depend on the
//! resource or the context are cached per (principal, method).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Entities, Entity,
    EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Request, ResourceConstraint,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use parking_lot::{Mutex, RwLock};
use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value,
};
use serde_json::json;

use crate::codec::{self, Format, Limits};
use crate::domain::Domain;
use crate::error::{Code, HmsError, Result};
use crate::proto::hms::agent::v1::{GetAgentRequest, GetKnowledgeRequest, GetTaskRequest};
use crate::proto::hms::security::v1::{ReloadPoliciesRequest, ReloadPoliciesResponse};
use crate::proto::v1::AuthorizationConfig;
use crate::registry::{Method, Registry};
use crate::security::{Principal, cache_capacity, config_error};

/// The Cedar namespace of every HMS entity type and action.
pub const NAMESPACE: &str = "Hms";
/// A principal is a `Hms::ServiceAccount` (not a `Hms::User`) when its
/// credential gives it this role.
pub const SERVICE_ROLE: &str = "service";
/// The principal of a call without credentials, where none are required.
pub const ANONYMOUS_ID: &str = "anonymous";
/// The built-in service through which policies are reloaded.
pub const SECURITY_SERVICE: &str = "hms.security.v1.Security";

const PRINCIPAL_TYPES: [&str; 3] = ["User", "ServiceAccount", "Anonymous"];

/// What a call acts on, by its method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Agent,
    Task,
    Knowledge,
    /// A knowledge namespace: what QueryKnowledge reads.
    Namespace,
    /// The runtime itself: methods that name no record (listings, system,
    /// registry, hooks, host services).
    Runtime,
}

impl ResourceKind {
    pub fn entity_type(self) -> &'static str {
        match self {
            ResourceKind::Agent => "Agent",
            ResourceKind::Task => "Task",
            ResourceKind::Knowledge => "Knowledge",
            ResourceKind::Namespace => "Namespace",
            ResourceKind::Runtime => "Runtime",
        }
    }

    /// The record message and its attributes, for the kinds read from the
    /// store.
    fn record(self) -> Option<&'static RecordModel> {
        RECORDS.iter().find(|r| r.kind == self)
    }
}

/// The resource kind of a method: the record its request names.
pub fn resource_kind(method: &str) -> ResourceKind {
    let (service, name) = method.split_once('/').unwrap_or((method, ""));
    match (service, name) {
        (_, "ListAgents" | "ListTasks") => ResourceKind::Runtime,
        ("hms.agent.v1.AgentService", _) => ResourceKind::Agent,
        ("hms.agent.v1.TaskService", _) => ResourceKind::Task,
        ("hms.agent.v1.KnowledgeService", "QueryKnowledge") => ResourceKind::Namespace,
        ("hms.agent.v1.KnowledgeService", _) => ResourceKind::Knowledge,
        ("hms.agent.lifecycle.v1.LifecycleService", "GetState" | "Transition" | "GetHistory") => {
            ResourceKind::Agent
        }
        _ => ResourceKind::Runtime,
    }
}

/// Where an attribute's value comes from in its record.
enum Source {
    /// A field; its Cedar type follows from the field's descriptor.
    Field(&'static str),
    /// One key of a `map<string, string>` field ("" when absent).
    MapKey(&'static str, &'static str),
}

/// How a domain record becomes a Cedar entity: the schema's entity type
/// and the entity's values both come from this table and the message's
/// descriptor, so the two cannot disagree.
struct RecordModel {
    kind: ResourceKind,
    message: &'static str,
    attributes: &'static [(&'static str, Source)],
    /// A `map<string, string>` field given as the entity's tags.
    tags: Option<&'static str>,
    /// The request field holding the record to create or replace.
    embedded_in: &'static str,
}

const RECORDS: &[RecordModel] = &[
    RecordModel {
        kind: ResourceKind::Agent,
        message: "hms.agent.v1.Agent",
        attributes: &[
            ("name", Source::Field("name")),
            ("kind", Source::Field("kind")),
            ("version", Source::Field("version")),
            ("state", Source::Field("state")),
            ("capabilities", Source::Field("capabilities")),
            ("owner", Source::MapKey("metadata", "owner")),
        ],
        tags: Some("labels"),
        embedded_in: "agent",
    },
    RecordModel {
        kind: ResourceKind::Task,
        message: "hms.agent.v1.Task",
        attributes: &[
            ("title", Source::Field("title")),
            ("agent_id", Source::Field("agent_id")),
            ("priority", Source::Field("priority")),
            ("status", Source::Field("status")),
            ("owner", Source::MapKey("labels", "owner")),
        ],
        tags: Some("labels"),
        embedded_in: "task",
    },
    RecordModel {
        kind: ResourceKind::Knowledge,
        message: "hms.agent.v1.KnowledgeEntry",
        attributes: &[
            ("namespace", Source::Field("namespace")),
            ("key", Source::Field("key")),
            ("tags", Source::Field("tags")),
            ("source", Source::Field("source")),
            ("agent_id", Source::Field("agent_id")),
            ("owner", Source::Field("agent_id")),
        ],
        tags: None,
        embedded_in: "entry",
    },
];

/// One authorization decision: what the audit log records of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The Cedar principal, e.g. `Hms::User::"alice"`.
    pub principal: String,
    /// The full method name.
    pub action: String,
    pub resource_type: &'static str,
    /// Empty for a record the request creates without an id.
    pub resource_id: String,
    pub allowed: bool,
    /// The policies that decided: those that permitted an allowed call,
    /// those that forbade a denied one (none when nothing permitted it).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (and so did not apply).
    pub errored: Vec<String>,
    /// Taken from the (principal, method) cache.
    pub cached: bool,
}

impl Decision {
    /// The resource as Cedar writes it, e.g. `Hms::Agent::"<id>"`.
    pub fn resource(&self) -> String {
        format!(
            "{NAMESPACE}::{}::{:?}",
            self.resource_type, self.resource_id
        )
    }

    /// `Ok` when allowed, else PERMISSION_DENIED naming the principal, the
    /// action, the resource and why.
    pub fn enforce(&self) -> Result<()> {
        if self.allowed {
            return Ok(());
        }
        let resource = self.resource();
        let (reason, why) = if self.policies.is_empty() {
            ("no_permit", "no policy permits it".to_owned())
        } else {
            (
                "forbidden",
                format!("forbidden by policy {}", self.policies.join(", ")),
            )
        };
        let mut message = format!(
            "{} may not call `{}` on {resource}: {why}",
            self.principal, self.action
        );
        if !self.errored.is_empty() {
            message.push_str(&format!(
                " (policies that failed to evaluate, and so did not apply: {})",
                self.errored.join(", ")
            ));
        }
        Err(HmsError::new(Code::PermissionDenied, message)
            .with_detail("reason", reason)
            .with_detail("principal", self.principal.clone())
            .with_detail("action", self.action.clone())
            .with_detail("resource", resource)
            .with_detail("policies", self.policies.join(",")))
    }
}

/// What a decision is about: one call, before it runs.
pub struct CallSubject<'a> {
    pub principal: Option<&'a Arc<Principal>>,
    pub method_name: &'a str,
    pub method: &'a Method,
    pub format: Format,
    pub request: &'a [u8],
    /// The call came in over the transport (`Reach::LocalOnly`).
    pub remote: bool,
    pub domain: &'a Domain,
    pub limits: &'a Limits,
}

/// A runtime's policy set, the schema it was validated against, and the
/// decision cache, swapped as one.
pub struct Authorization {
    files: Vec<String>,
    runtime_name: String,
    cache_capacity: usize,
    authorizer: Authorizer,
    state: RwLock<Arc<PolicyState>>,
    /// Serialises reloads, so generations count up without gaps.
    reloading: Mutex<()>,
    generations: AtomicU64,
}

struct PolicyState {
    policies: PolicySet,
    ids: Vec<String>,
    /// Per policy: its action constraint, and whether it reads the
    /// resource (beyond its type) or the context.
    scopes: Vec<(ActionConstraint, bool)>,
    cache: DecisionCache,
}

impl Authorization {
    /// Loads `config`'s policy files, validated against the schema of the
    /// services registered in `registry` now.
    pub fn new(
        config: &AuthorizationConfig,
        registry: &Registry,
        runtime_name: &str,
    ) -> Result<Authorization> {
        if config.policy_files.is_empty() {
            return Err(config_error(
                "security.authorization.policy_files",
                "security.authorization needs at least one policy file (policy_files)".into(),
            ));
        }
        let cache_capacity = cache_capacity(
            config.decision_cache_capacity,
            "security.authorization.decision_cache_capacity",
        )?;
        let sources = read_files(&config.policy_files)
            .map_err(|e| e.with_detail("field", "security.authorization.policy_files"))?;
        let state = load(&sources, registry, cache_capacity)
            .map_err(|e| e.with_detail("field", "security.authorization.policy_files"))?;
        Ok(Authorization {
            files: config.policy_files.clone(),
            runtime_name: if runtime_name.is_empty() {
                "runtime".into()
            } else {
                runtime_name.into()
            },
            cache_capacity,
            authorizer: Authorizer::new(),
            state: RwLock::new(Arc::new(state)),
            reloading: Mutex::new(()),
            generations: AtomicU64::new(1),
        })
    }

    fn current(&self) -> Arc<PolicyState> {
        self.state.read().clone()
    }

    /// Replaces the policy set with `text` (named "request"), or with the
    /// configured files read again when `text` is empty. On any error the
    /// set in force stays.
    pub fn reload(&self, registry: &Registry, text: &str) -> Result<ReloadPoliciesResponse> {
        let _one_at_a_time = self.reloading.lock();
        let sources = if text.is_empty() {
            read_files(&self.files)?
        } else {
            vec![("request".to_owned(), text.to_owned())]
        };
        let generation = self.generations.load(Ordering::Acquire) + 1;
        let state = load(&sources, registry, self.cache_capacity)?;
        let response = ReloadPoliciesResponse {
            policies: state.ids.len() as u32,
            generation,
            policy_ids: state.ids.clone(),
        };
        *self.state.write() = Arc::new(state);
        self.generations.store(generation, Ordering::Release);
        Ok(response)
    }

    /// Decides one call. Errors are those of reading its request (a call
    /// that could not run anyway); a denial is a [`Decision`] with
    /// `allowed` false.
    pub fn decide(&self, call: &CallSubject<'_>) -> Result<Decision> {
        let state = self.current();
        let kind = resource_kind(call.method_name);
        let request = match kind {
            ResourceKind::Runtime => None,
            _ => Some(decode_request(call)?),
        };
        let principal = principal_uid(call.principal.map(|p| &**p));
        // Only method-level decisions are ever cached (in this policy
        // set's own cache), so a hit needs no look at the policies.
        if let Some(hit) = state.cache.get(call.principal, call.method_name) {
            return Ok(Decision {
                principal: principal.to_string(),
                action: call.method_name.to_owned(),
                resource_type: kind.entity_type(),
                resource_id: resource_id(kind, request.as_ref(), &self.runtime_name),
                allowed: hit.allowed,
                policies: hit.policies.to_vec(),
                errored: Vec::new(),
                cached: true,
            });
        }
        let method_level = state.method_level(call.method_name);
        // A method-level decision reads nothing of the resource: its id
        // (for the record) is enough, without a trip to the store.
        let (resource, resource_entity) = if method_level {
            let id = resource_id(kind, request.as_ref(), &self.runtime_name);
            (uid(kind.entity_type(), &id), None)
        } else {
            self.resource(kind, request.as_ref(), call.domain)
        };
        let (action, action_entity) = action_entity(call.method_name);
        let mut entities = vec![
            principal_entity(&principal, call.principal.map(|p| &**p)),
            action_entity,
        ];
        entities.extend(resource_entity);
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| internal(format!("the entities of the call: {e}")))?;
        let context = Context::from_pairs([
            (
                "transport".to_owned(),
                RestrictedExpression::new_string(
                    if call.remote { "remote" } else { "local" }.into(),
                ),
            ),
            (
                "time".to_owned(),
                RestrictedExpression::new_long(unix_now()),
            ),
        ])
        .map_err(|e| internal(format!("the context of the call: {e}")))?;
        let cedar_request =
            Request::new(principal.clone(), action, resource.clone(), context, None)
                .map_err(|e| internal(format!("the request of the call: {e}")))?;
        let response = self
            .authorizer
            .is_authorized(&cedar_request, &state.policies, &entities);
        let allowed = response.decision() == CedarDecision::Allow;
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policies.sort();
        let mut errored: Vec<String> = response
            .diagnostics()
            .errors()
            .map(
                |cedar_policy::AuthorizationError::PolicyEvaluationError(e)| {
                    e.policy_id().to_string()
                },
            )
            .collect();
        errored.sort();
        if method_level {
            state
                .cache
                .insert(call.principal, call.method_name, allowed, &policies);
        }
        Ok(Decision {
            principal: principal.to_string(),
            action: call.method_name.to_owned(),
            resource_type: kind.entity_type(),
            resource_id: resource.id().unescaped().to_owned(),
            allowed,
            policies,
            errored,
            cached: false,
        })
    }

    /// The resource a request names, with its attributes when it exists:
    /// the record in the store, or the one the request creates.
    fn resource(
        &self,
        kind: ResourceKind,
        request: Option<&DynamicMessage>,
        domain: &Domain,
    ) -> (EntityUid, Option<Entity>) {
        let id = resource_id(kind, request, &self.runtime_name);
        let uid = uid(kind.entity_type(), &id);
        let Some(request) = request else {
            return (uid, None);
        };
        let record = match kind.record() {
            Some(model) => stored(kind, request, &id, domain)
                .or_else(|| embedded(model, request))
                .map(|message| (model, message)),
            None => None,
        };
        match record {
            Some((model, message)) => {
                let entity = record_entity(model, &message, uid.clone());
                (uid, entity)
            }
            None => (uid, None),
        }
    }

    /// The Cedar schema the policies are validated against, as JSON.
    pub fn schema_json(registry: &Registry) -> Result<serde_json::Value> {
        schema_json(registry)
    }
}

impl PolicyState {
    /// Whether no policy that may apply to `method` reads the resource
    /// (beyond its type) or the context: then its decision depends on the
    /// principal and the method only.
    fn method_level(&self, method: &str) -> bool {
        let action = uid("Action", method);
        let group = uid("Action", service_of(method));
        self.scopes.iter().all(|(constraint, specific)| {
            !specific
                || match constraint {
                    ActionConstraint::Any => false,
                    ActionConstraint::Eq(one) => *one != action,
                    ActionConstraint::In(list) => !list.iter().any(|a| *a == action || *a == group),
                }
        })
    }
}

fn service_of(method: &str) -> &str {
    method
        .split_once('/')
        .map_or(method, |(service, _)| service)
}

/// The entity types of the model: parsed once, since Cedar parses a type
/// name with its full grammar (most of a cached decision's time otherwise).
const ENTITY_TYPES: [&str; 10] = [
    "Action",
    "Agent",
    "Anonymous",
    "Knowledge",
    "Namespace",
    "Role",
    "Runtime",
    "ServiceAccount",
    "Task",
    "User",
];

fn type_name(entity_type: &str) -> EntityTypeName {
    static PARSED: std::sync::LazyLock<HashMap<&'static str, EntityTypeName>> =
        std::sync::LazyLock::new(|| {
            ENTITY_TYPES
                .into_iter()
                .map(|name| (name, parse_type_name(name)))
                .collect()
        });
    PARSED
        .get(entity_type)
        .cloned()
        .unwrap_or_else(|| parse_type_name(entity_type))
}

fn parse_type_name(entity_type: &str) -> EntityTypeName {
    format!("{NAMESPACE}::{entity_type}")
        .parse()
        .expect("HMS entity type names are valid Cedar names")
}

fn uid(entity_type: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name(entity_type), cedar_policy::EntityId::new(id))
}

fn principal_uid(principal: Option<&Principal>) -> EntityUid {
    match principal {
        None => uid("Anonymous", ANONYMOUS_ID),
        Some(p) if p.roles.iter().any(|r| r == SERVICE_ROLE) => uid("ServiceAccount", &p.id),
        Some(p) => uid("User", &p.id),
    }
}

fn principal_entity(uid_: &EntityUid, principal: Option<&Principal>) -> Entity {
    let name = principal.map_or(ANONYMOUS_ID, |p| p.id.as_str());
    let attrs = HashMap::from([(
        "name".to_owned(),
        RestrictedExpression::new_string(name.to_owned()),
    )]);
    let parents: HashSet<EntityUid> = principal
        .map(|p| p.roles.iter().map(|r| uid("Role", r)).collect())
        .unwrap_or_default();
    let tags: HashMap<String, RestrictedExpression> = principal
        .map(|p| {
            p.attributes
                .iter()
                .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    Entity::new_with_tags(uid_.clone(), attrs, parents, tags)
        .expect("string attributes and tags are always valid")
}

fn action_entity(method: &str) -> (EntityUid, Entity) {
    let action = uid("Action", method);
    let group = uid("Action", service_of(method));
    let entity = Entity::new_no_attrs(action.clone(), HashSet::from([group]));
    (action, entity)
}

fn decode_request(call: &CallSubject<'_>) -> Result<DynamicMessage> {
    match &call.method.input {
        Some(input) => codec::decode_message(input, call.format, call.request, call.limits),
        None => Err(internal(format!(
            "`{}` names a record but has no request type",
            call.method_name
        ))),
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn message_field(message: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    if !message.has_field_by_name(name) {
        return None;
    }
    match message.get_field_by_name(name).as_deref() {
        Some(Value::Message(m)) => Some(m.clone()),
        _ => None,
    }
}

/// The id of the resource a request names: the record's id (in the
/// request, or in the record it creates or replaces), the namespace of a
/// query, the runtime's name for the rest.
fn resource_id(kind: ResourceKind, request: Option<&DynamicMessage>, runtime: &str) -> String {
    let Some(request) = request else {
        return runtime.to_owned();
    };
    match kind {
        ResourceKind::Runtime => runtime.to_owned(),
        ResourceKind::Namespace => string_field(request, "namespace"),
        _ => {
            let embedded = kind
                .record()
                .and_then(|model| message_field(request, model.embedded_in));
            match embedded {
                Some(record) => string_field(&record, "id"),
                None => {
                    let id = string_field(request, "id");
                    if id.is_empty() {
                        string_field(request, "agent_id")
                    } else {
                        id
                    }
                }
            }
        }
    }
}

/// The stored record `id` names (or, for knowledge, the request's
/// namespace and key); `None` when there is none.
fn stored(
    kind: ResourceKind,
    request: &DynamicMessage,
    id: &str,
    domain: &Domain,
) -> Option<DynamicMessage> {
    let encoded = match kind {
        ResourceKind::Agent if !id.is_empty() => domain
            .get_agent(GetAgentRequest { id: id.into() })
            .ok()?
            .encode_to_vec(),
        ResourceKind::Task if !id.is_empty() => domain
            .get_task(GetTaskRequest { id: id.into() })
            .ok()?
            .encode_to_vec(),
        ResourceKind::Knowledge => {
            let (namespace, key) = match message_field(request, "entry") {
                Some(entry) => (
                    string_field(&entry, "namespace"),
                    string_field(&entry, "key"),
                ),
                None => (
                    string_field(request, "namespace"),
                    string_field(request, "key"),
                ),
            };
            if id.is_empty() && (namespace.is_empty() || key.is_empty()) {
                return None;
            }
            let by = if id.is_empty() {
                GetKnowledgeRequest {
                    id: String::new(),
                    namespace,
                    key,
                }
            } else {
                GetKnowledgeRequest {
                    id: id.into(),
                    namespace: String::new(),
                    key: String::new(),
                }
            };
            domain.get_knowledge(by).ok()?.encode_to_vec()
        }
        _ => return None,
    };
    let descriptor = crate::schema::message_descriptor(kind.record()?.message).ok()?;
    DynamicMessage::decode(descriptor, encoded.as_slice()).ok()
}

fn embedded(model: &RecordModel, request: &DynamicMessage) -> Option<DynamicMessage> {
    message_field(request, model.embedded_in)
}

/// `message` as an entity of `model`'s type. A knowledge entry is a
/// member of its namespace.
fn record_entity(model: &RecordModel, message: &DynamicMessage, uid: EntityUid) -> Option<Entity> {
    let descriptor = message.descriptor();
    let mut attrs = HashMap::new();
    for (name, source) in model.attributes {
        let value = match source {
            Source::Field(field) => {
                let field = descriptor.get_field_by_name(field)?;
                cedar_value(&field, &message.get_field(&field))?
            }
            Source::MapKey(map, key) => {
                RestrictedExpression::new_string(map_value(message, map, key).unwrap_or_default())
            }
        };
        attrs.insert((*name).to_owned(), value);
    }
    let tags: HashMap<String, RestrictedExpression> = match model.tags {
        Some(map) => match message.get_field_by_name(map).as_deref() {
            Some(Value::Map(entries)) => entries
                .iter()
                .filter_map(|(k, v)| match (k, v) {
                    (MapKey::String(k), Value::String(v)) => {
                        Some((k.clone(), RestrictedExpression::new_string(v.clone())))
                    }
                    _ => None,
                })
                .collect(),
            _ => HashMap::new(),
        },
        None => HashMap::new(),
    };
    let parents = match model.kind {
        ResourceKind::Knowledge => HashSet::from([uid_of_namespace(message)]),
        _ => HashSet::new(),
    };
    Entity::new_with_tags(uid, attrs, parents, tags).ok()
}

fn uid_of_namespace(entry: &DynamicMessage) -> EntityUid {
    uid("Namespace", &string_field(entry, "namespace"))
}

fn map_value(message: &DynamicMessage, map: &str, key: &str) -> Option<String> {
    match message.get_field_by_name(map).as_deref() {
        Some(Value::Map(entries)) => match entries.get(&MapKey::String(key.into())) {
            Some(Value::String(v)) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A field's value as Cedar sees it (see [`cedar_type`]).
fn cedar_value(field: &FieldDescriptor, value: &Value) -> Option<RestrictedExpression> {
    let scalar = |value: &Value| -> Option<RestrictedExpression> {
        Some(match value {
            Value::String(s) => RestrictedExpression::new_string(s.clone()),
            Value::Bool(b) => RestrictedExpression::new_bool(*b),
            Value::I32(n) => RestrictedExpression::new_long(i64::from(*n)),
            Value::I64(n) => RestrictedExpression::new_long(*n),
            Value::U32(n) => RestrictedExpression::new_long(i64::from(*n)),
            Value::U64(n) => RestrictedExpression::new_long(i64::try_from(*n).unwrap_or(i64::MAX)),
            Value::EnumNumber(n) => {
                let name = match field.kind() {
                    Kind::Enum(e) => e.get_value(*n).map(|v| v.name().to_owned()),
                    _ => None,
                };
                RestrictedExpression::new_string(name.unwrap_or_else(|| n.to_string()))
            }
            _ => return None,
        })
    };
    match value {
        Value::List(items) => Some(RestrictedExpression::new_set(
            items.iter().map(scalar).collect::<Option<Vec<_>>>()?,
        )),
        value => scalar(value),
    }
}

/// A field's Cedar type: strings and enums (by value name) are `String`,
/// integers `Long`, `bool` `Boolean`, a repeated one a `Set` of those.
fn cedar_type(field: &FieldDescriptor) -> Result<serde_json::Value> {
    let element = match field.kind() {
        Kind::String | Kind::Enum(_) => "String",
        Kind::Bool => "Boolean",
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Fixed32
        | Kind::Fixed64
        | Kind::Sfixed32
        | Kind::Sfixed64 => "Long",
        _ => {
            return Err(internal(format!(
                "field {} has no Cedar type",
                field.full_name()
            )));
        }
    };
    Ok(if field.is_list() {
        json!({"type": "Set", "element": {"type": element}})
    } else {
        json!({"type": element})
    })
}

fn record_shape(model: &RecordModel) -> Result<serde_json::Value> {
    let descriptor: MessageDescriptor = crate::schema::message_descriptor(model.message)?;
    let mut attributes = serde_json::Map::new();
    for (name, source) in model.attributes {
        let field_name = match source {
            Source::Field(field) | Source::MapKey(field, _) => field,
        };
        let field = descriptor.get_field_by_name(field_name).ok_or_else(|| {
            internal(format!(
                "{} has no field `{field_name}` (authorization attribute `{name}`)",
                model.message
            ))
        })?;
        let ty = match source {
            Source::Field(_) => cedar_type(&field)?,
            Source::MapKey(..) if field.is_map() => json!({"type": "String"}),
            Source::MapKey(..) => {
                return Err(internal(format!(
                    "{} is not a map (authorization attribute `{name}`)",
                    field.full_name()
                )));
            }
        };
        attributes.insert((*name).to_owned(), ty);
    }
    let mut entity = json!({"shape": {"type": "Record", "attributes": attributes}});
    if let Some(tags) = model.tags {
        if !descriptor
            .get_field_by_name(tags)
            .is_some_and(|f| f.is_map())
        {
            return Err(internal(format!("{}.{tags} is not a map", model.message)));
        }
        entity["tags"] = json!({"type": "String"});
    }
    if model.kind == ResourceKind::Knowledge {
        entity["memberOfTypes"] = json!(["Namespace"]);
    }
    Ok(entity)
}

/// The schema: entity types for principals, roles, the records (their
/// attributes typed from the message descriptors) and the runtime; one
/// action per method of every registered service, each a member of its
/// service's action group.
fn schema_json(registry: &Registry) -> Result<serde_json::Value> {
    let principal_shape = json!({
        "memberOfTypes": ["Role"],
        "shape": {"type": "Record", "attributes": {"name": {"type": "String"}}},
        "tags": {"type": "String"},
    });
    let mut entity_types = serde_json::Map::new();
    entity_types.insert("Role".into(), json!({}));
    entity_types.insert("User".into(), principal_shape.clone());
    entity_types.insert("ServiceAccount".into(), principal_shape);
    entity_types.insert(
        "Anonymous".into(),
        json!({"shape": {"type": "Record", "attributes": {"name": {"type": "String"}}}}),
    );
    entity_types.insert("Runtime".into(), json!({}));
    entity_types.insert("Namespace".into(), json!({}));
    for model in RECORDS {
        entity_types.insert(model.kind.entity_type().into(), record_shape(model)?);
    }
    let context = json!({
        "type": "Record",
        "attributes": {"transport": {"type": "String"}, "time": {"type": "Long"}},
    });
    let mut actions = serde_json::Map::new();
    for service in registry.list("") {
        actions.insert(service.name.clone(), json!({}));
        for method in &service.methods {
            let full = format!("{}/{}", service.name, method.name);
            let resource = resource_kind(&full).entity_type();
            actions.insert(
                full,
                json!({
                    "memberOf": [{"id": service.name}],
                    "appliesTo": {
                        "principalTypes": PRINCIPAL_TYPES,
                        "resourceTypes": [resource],
                        "context": context,
                    },
                }),
            );
        }
    }
    Ok(json!({NAMESPACE: {"entityTypes": entity_types, "actions": actions}}))
}

fn read_files(files: &[String]) -> Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.clone(), text))
                .map_err(|e| HmsError::invalid_argument(format!("cannot read {path}: {e}")))
        })
        .collect()
}

/// Parses and validates `sources` (name, Cedar text) into a policy state.
fn load(
    sources: &[(String, String)],
    registry: &Registry,
    cache_capacity: usize,
) -> Result<PolicyState> {
    let schema = Schema::from_json_value(schema_json(registry)?)
        .map_err(|e| internal(format!("the derived Cedar schema is invalid: {e}")))?;
    let validator = Validator::new(schema);
    let mut policies = PolicySet::new();
    let mut ids = Vec::new();
    let mut scopes = Vec::new();
    for (name, text) in sources {
        let file_name = Path::new(name)
            .file_name()
            .map_or(name.as_str(), |n| n.to_str().unwrap_or(name));
        let set = PolicySet::from_str(text).map_err(|e| located(name, text, &e, e.to_string()))?;
        let validation = validator.validate(&set, ValidationMode::Strict);
        if let Some(error) = validation.validation_errors().next() {
            return Err(located(name, text, error, error.to_string()));
        }
        let mut in_file: Vec<&Policy> = set.policies().collect();
        // "policy<N>" in the order of the file.
        in_file.sort_by_key(|p| {
            p.id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        for (index, policy) in in_file.into_iter().enumerate() {
            let id = match policy.annotation("id") {
                Some(id) => id.to_owned(),
                None => format!("{file_name}#{index}"),
            };
            let specific = reads_request_specifics(policy)?;
            scopes.push((policy.action_constraint(), specific));
            policies
                .add(policy.new_id(PolicyId::new(&id)))
                .map_err(|_| {
                    HmsError::invalid_argument(format!(
                        "{name}: policy id {id:?} is used twice; give each policy its own \
                         @id(\"...\")"
                    ))
                    .with_detail("file", name.clone())
                })?;
            ids.push(id);
        }
    }
    Ok(PolicyState {
        policies,
        ids,
        scopes,
        cache: DecisionCache::new(cache_capacity),
    })
}

/// Whether a policy reads the resource beyond its type, or the context:
/// read from its JSON form, where every variable is `{"Var": name}`.
fn reads_request_specifics(policy: &Policy) -> Result<bool> {
    if !matches!(
        policy.resource_constraint(),
        ResourceConstraint::Any | ResourceConstraint::Is(_)
    ) {
        return Ok(true);
    }
    let json = policy
        .to_json()
        .map_err(|e| internal(format!("policy {} as JSON: {e}", policy.id())))?;
    Ok(json
        .get("conditions")
        .is_some_and(|conditions| mentions_variable(conditions, &["resource", "context"])))
}

fn mentions_variable(json: &serde_json::Value, names: &[&str]) -> bool {
    match json {
        serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "Var" && value.as_str().is_some_and(|v| names.contains(&v)))
                || mentions_variable(value, names)
        }),
        serde_json::Value::Array(items) => items.iter().any(|v| mentions_variable(v, names)),
        _ => false,
    }
}

/// An invalid policy: INVALID_ARGUMENT naming its file, line and column.
fn located(name: &str, text: &str, diagnostic: &dyn Diagnostic, message: String) -> HmsError {
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
        .or_else(|| {
            diagnostic
                .related()
                .and_then(|mut related| related.next())
                .and_then(|d| d.labels())
                .and_then(|mut labels| labels.next())
                .map(|label| label.offset())
        })
        .unwrap_or(0);
    let (line, column) = line_and_column(text, offset);
    let help = diagnostic
        .help()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    HmsError::invalid_argument(format!("{name}:{line}:{column}: {message}{help}"))
        .with_detail("file", name)
        .with_detail("line", line.to_string())
        .with_detail("column", column.to_string())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn internal(message: String) -> HmsError {
    HmsError::new(Code::Internal, message)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Cached decisions by principal (`None`: the anonymous one), then by method.
type ByPrincipal = HashMap<Option<Arc<Principal>>, HashMap<Box<str>, Cached>>;

struct Cached {
    allowed: bool,
    policies: Arc<[String]>,
}

/// Method-level decisions per principal (the anonymous one is `None`),
/// at most `capacity` in all: when full it starts over, which costs a
/// re-evaluation per entry and never a wrong answer.
struct DecisionCache {
    capacity: usize,
    /// The number of entries, and the entries by principal then method.
    entries: Mutex<(usize, ByPrincipal)>,
}

impl DecisionCache {
    fn new(capacity: usize) -> DecisionCache {
        DecisionCache {
            capacity,
            entries: Mutex::new((0, HashMap::new())),
        }
    }

    fn get(&self, principal: Option<&Arc<Principal>>, method: &str) -> Option<Cached> {
        let entries = self.entries.lock();
        let cached = entries.1.get(&principal.cloned())?.get(method)?;
        Some(Cached {
            allowed: cached.allowed,
            policies: cached.policies.clone(),
        })
    }

    fn insert(
        &self,
        principal: Option<&Arc<Principal>>,
        method: &str,
        allowed: bool,
        policies: &[String],
    ) {
        let mut entries = self.entries.lock();
        if entries.0 >= self.capacity {
            *entries = (0, HashMap::new());
        }
        let fresh = entries
            .1
            .entry(principal.cloned())
            .or_default()
            .insert(
                method.into(),
                Cached {
                    allowed,
                    policies: policies.into(),
                },
            )
            .is_none();
        if fresh {
            entries.0 += 1;
        }
    }
}

/// Registers `hms.security.v1.Security`, for a runtime with policies.
pub fn register_service(registry: &Registry) -> Result<()> {
    crate::services::register_builtin(
        registry,
        SECURITY_SERVICE,
        "Security: reload the authorization policies",
        vec![(
            "ReloadPolicies",
            crate::services::unary(|context, _, request: ReloadPoliciesRequest| {
                let authorization = context.authorization.ok_or_else(|| {
                    HmsError::new(
                        Code::FailedPrecondition,
                        "this runtime has no policies to reload (security.authorization)",
                    )
                })?;
                authorization.reload(context.registry, &request.policy_text)
            }),
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (2, 2));
        assert_eq!(line_and_column(text, 8), (3, 1));
        // Inside "é": the character it is part of.
        assert_eq!(line_and_column(text, 6), (2, 3));
        assert_eq!(line_and_column(text, 999), (3, 2));
    }

    #[test]
    fn the_schema_types_every_attribute_from_the_descriptors() {
        let registry = Registry::default();
        crate::services::register_builtins(&registry).unwrap();
        let schema = schema_json(&registry).unwrap();
        let agent = &schema[NAMESPACE]["entityTypes"]["Agent"]["shape"]["attributes"];
        assert_eq!(agent["capabilities"]["type"], "Set");
        assert_eq!(agent["state"]["type"], "String");
        let task = &schema[NAMESPACE]["entityTypes"]["Task"]["shape"]["attributes"];
        assert_eq!(task["priority"]["type"], "Long");
        let create = &schema[NAMESPACE]["actions"]["hms.agent.v1.AgentService/CreateAgent"];
        assert_eq!(create["memberOf"][0]["id"], "hms.agent.v1.AgentService");
        assert_eq!(create["appliesTo"]["resourceTypes"][0], "Agent");
        Schema::from_json_value(schema).expect("the derived schema is valid Cedar");
    }

    fn builtins() -> Registry {
        let registry = Registry::default();
        crate::services::register_builtins(&registry).unwrap();
        register_service(&registry).unwrap();
        registry
    }

    #[test]
    fn method_level_methods_are_derived_from_the_policies() {
        let starter = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/security/starter.cedar"
        ))
        .unwrap();
        let state = load(&[("starter.cedar".into(), starter)], &builtins(), 16).unwrap();
        for method in [
            "hms.sys.v1.System/Echo",
            "hms.agent.v1.AgentService/GetAgent",
            "hms.agent.v1.KnowledgeService/QueryKnowledge",
        ] {
            assert!(state.method_level(method), "{method}");
        }
        for method in [
            // owners-update reads resource.owner; protected-agents its tags.
            "hms.agent.v1.AgentService/UpdateAgent",
            "hms.agent.v1.AgentService/DeleteAgent",
            // docs-writers: resource in a Namespace.
            "hms.agent.v1.KnowledgeService/PutKnowledge",
            // local-reload-only reads the context.
            "hms.security.v1.Security/ReloadPolicies",
        ] {
            assert!(!state.method_level(method), "{method}");
        }
        assert!(state.ids.contains(&"admin-all".to_owned()));
    }

    #[test]
    fn the_decision_cache_stays_within_its_capacity() {
        let cache = DecisionCache::new(3);
        let alice = Some(Arc::new(Principal {
            id: "alice".into(),
            ..Default::default()
        }));
        for method in ["a/A", "a/B", "a/C"] {
            cache.insert(alice.as_ref(), method, true, &[]);
        }
        cache.insert(None, "a/A", false, &["p".into()]);
        assert_eq!(cache.entries.lock().0, 1, "full: it started over");
        assert!(cache.get(alice.as_ref(), "a/A").is_none());
        let hit = cache.get(None, "a/A").unwrap();
        assert!(!hit.allowed);
        assert_eq!(&*hit.policies, ["p".to_owned()]);
        // The same principal by value, from another credential, hits.
        let again = Arc::new(Principal {
            id: "alice".into(),
            ..Default::default()
        });
        cache.insert(Some(&again), "a/B", true, &[]);
        assert!(cache.get(alice.as_ref(), "a/B").unwrap().allowed);
    }

    #[test]
    fn a_model_naming_a_missing_field_is_refused() {
        let model = RecordModel {
            kind: ResourceKind::Agent,
            message: "hms.agent.v1.Agent",
            attributes: &[("owner", Source::Field("no_such_field"))],
            tags: None,
            embedded_in: "agent",
        };
        let error = record_shape(&model).unwrap_err();
        assert!(error.message.contains("no_such_field"), "{}", error.message);
    }
}
