//! `hms.agent.v1.AgentService`.

use prost::Message as _;

use super::paging::{Page, decode_token, record_weight};
use super::{Admit, Domain, Write, check_revision, new_id, not_found, now, required};
use crate::error::{HmsError, Result};
use crate::events::EventBus;
use crate::proto::hms::agent::lifecycle::v1::LifecycleState;
use crate::proto::hms::agent::v1::{
    Agent, CreateAgentRequest, DeleteAgentRequest, DeleteAgentResponse, GetAgentRequest,
    ListAgentsRequest, ListAgentsResponse, UpdateAgentRequest,
};
use crate::proto::hms::events::v1::event::Payload;

const UPDATABLE: [&str; 7] = [
    "name",
    "kind",
    "version",
    "description",
    "capabilities",
    "labels",
    "metadata",
];

impl Domain {
    pub fn create_agent(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: CreateAgentRequest,
    ) -> Result<Agent> {
        let draft = request.agent.unwrap_or_default();
        required(&draft.name, "agent.name")?;
        let stamp = now();
        let agent = Agent {
            id: new_id(),
            state: LifecycleState::Initialized as i32,
            created_at: Some(stamp),
            updated_at: Some(stamp),
            revision: 1,
            ..draft
        };
        let _order = self.order.hold(&agent.id);
        let mut tx = self.write()?;
        admit.admit(&agent)?;
        tx.write(Write::Agent(agent.clone()))?;
        tx.commit()?;
        events.publish(
            "agent.created",
            &agent.id,
            &agent.id,
            Payload::Agent(agent.clone()),
        );
        Ok(agent)
    }

    pub fn get_agent(&self, request: GetAgentRequest) -> Result<Agent> {
        required(&request.id, "id")?;
        self.read()?
            .agent(&request.id)?
            .ok_or_else(|| not_found("agent", &request.id))
    }

    pub fn list_agents(&self, request: ListAgentsRequest) -> Result<ListAgentsResponse> {
        let start_after = decode_token(&request.page_token)?;
        let keep = |agent: &Agent| {
            request
                .labels
                .iter()
                .all(|(k, v)| agent.labels.get(k) == Some(v))
                && request
                    .capabilities
                    .iter()
                    .all(|c| agent.capabilities.contains(c))
                && (request.states.is_empty() || request.states.contains(&agent.state))
                && (request.kind.is_empty() || request.kind == agent.kind)
        };
        let mut page = Page::new(self.page_limit(request.page_size));
        self.read()?
            .scan_agents(start_after.as_deref(), &mut |agent| {
                !keep(agent) || page.take(agent, record_weight(agent.encoded_len()))
            })?;
        Ok(ListAgentsResponse {
            next_page_token: page.next_token(|agent| agent.id.clone()),
            agents: page.items,
        })
    }

    pub fn update_agent(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: UpdateAgentRequest,
    ) -> Result<Agent> {
        let changes = request.agent.unwrap_or_default();
        required(&changes.id, "agent.id")?;
        let paths: Vec<String> = match request.update_mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths,
            _ => UPDATABLE.iter().map(|p| p.to_string()).collect(),
        };
        for path in &paths {
            if !UPDATABLE.contains(&path.as_str()) {
                let hint = if path == "state" {
                    "the state changes only through LifecycleService/Transition".to_owned()
                } else {
                    format!("updatable fields are {}", UPDATABLE.join(", "))
                };
                return Err(HmsError::invalid_argument(format!(
                    "update_mask names `{path}`: {hint}"
                ))
                .with_detail("field", "update_mask"));
            }
        }
        if paths.iter().any(|p| p == "name") && changes.name.is_empty() {
            return Err(HmsError::invalid_argument("`agent.name` cannot be emptied")
                .with_detail("field", "agent.name"));
        }
        let _order = self.order.hold(&changes.id);
        let mut tx = self.write()?;
        let mut agent = tx
            .agent(&changes.id)?
            .ok_or_else(|| not_found("agent", &changes.id))?;
        check_revision("agent", &changes.id, changes.revision, agent.revision)?;
        for path in &paths {
            match path.as_str() {
                "name" => agent.name = changes.name.clone(),
                "kind" => agent.kind = changes.kind.clone(),
                "version" => agent.version = changes.version.clone(),
                "description" => agent.description = changes.description.clone(),
                "capabilities" => agent.capabilities = changes.capabilities.clone(),
                "labels" => agent.labels = changes.labels.clone(),
                "metadata" => agent.metadata = changes.metadata.clone(),
                _ => unreachable!("paths were checked against UPDATABLE"),
            }
        }
        agent.revision += 1;
        agent.updated_at = Some(now());
        admit.admit(&agent)?;
        tx.write(Write::Agent(agent.clone()))?;
        tx.commit()?;
        events.publish(
            "agent.updated",
            &agent.id,
            &agent.id,
            Payload::Agent(agent.clone()),
        );
        Ok(agent)
    }

    pub fn delete_agent(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: DeleteAgentRequest,
    ) -> Result<DeleteAgentResponse> {
        required(&request.id, "id")?;
        let order = self.order.hold(&request.id);
        let mut tx = self.write()?;
        let agent = tx
            .agent(&request.id)?
            .ok_or_else(|| not_found("agent", &request.id))?;
        check_revision("agent", &request.id, request.revision, agent.revision)?;
        admit.admit(&DeleteAgentResponse {})?;
        tx.write(Write::DeleteAgent(request.id.clone()))?;
        tx.commit()?;
        events.publish(
            "agent.deleted",
            &agent.id,
            &agent.id,
            Payload::Agent(agent.clone()),
        );
        drop(order);
        self.locks.forget(&request.id);
        Ok(DeleteAgentResponse {})
    }
}
