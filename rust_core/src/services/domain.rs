//! The domain services of DOMAIN.md, each method a thin call into `Domain`.

use crate::error::Result;
use crate::registry::Registry;

use super::{register_builtin, unary};

pub fn register(registry: &Registry) -> Result<()> {
    register_builtin(
        registry,
        "hms.agent.v1.AgentService",
        "Agents: create, read, list, update, delete",
        vec![
            (
                "CreateAgent",
                unary(|c, a, r| c.domain.create_agent(c.events, a, r)),
            ),
            ("GetAgent", unary(|c, _, r| c.domain.get_agent(r))),
            ("ListAgents", unary(|c, _, r| c.domain.list_agents(r))),
            (
                "UpdateAgent",
                unary(|c, a, r| c.domain.update_agent(c.events, a, r)),
            ),
            (
                "DeleteAgent",
                unary(|c, a, r| c.domain.delete_agent(c.events, a, r)),
            ),
        ],
    )?;
    register_builtin(
        registry,
        "hms.agent.v1.TaskService",
        "Tasks whose status only moves forward",
        vec![
            (
                "SubmitTask",
                unary(|c, a, r| c.domain.submit_task(c.events, a, r)),
            ),
            ("GetTask", unary(|c, _, r| c.domain.get_task(r))),
            ("ListTasks", unary(|c, _, r| c.domain.list_tasks(r))),
            (
                "AssignTask",
                unary(|c, a, r| c.domain.assign_task(c.events, a, r)),
            ),
            (
                "StartTask",
                unary(|c, a, r| c.domain.start_task(c.events, a, r)),
            ),
            (
                "ClaimTask",
                unary(|c, a, r| c.domain.claim_task(c.events, a, r)),
            ),
            (
                "RenewLease",
                unary(|c, a, r| c.domain.renew_lease(c.events, a, r)),
            ),
            (
                "CompleteTask",
                unary(|c, a, r| c.domain.complete_task(c.events, a, r)),
            ),
            (
                "FailTask",
                unary(|c, a, r| c.domain.fail_task(c.events, a, r)),
            ),
            (
                "CancelTask",
                unary(|c, a, r| c.domain.cancel_task(c.events, a, r)),
            ),
        ],
    )?;
    register_builtin(
        registry,
        "hms.agent.v1.KnowledgeService",
        "Knowledge entries unique by namespace and key",
        vec![
            (
                "PutKnowledge",
                unary(|c, a, r| c.domain.put_knowledge(c.events, a, r)),
            ),
            ("GetKnowledge", unary(|c, _, r| c.domain.get_knowledge(r))),
            (
                "QueryKnowledge",
                unary(|c, _, r| c.domain.query_knowledge(r)),
            ),
            (
                "DeleteKnowledge",
                unary(|c, a, r| c.domain.delete_knowledge(c.events, a, r)),
            ),
        ],
    )?;
    register_builtin(
        registry,
        "hms.agent.lifecycle.v1.LifecycleService",
        "Agent lifecycle: transitions, history, hooks",
        vec![
            ("GetState", unary(|c, _, r| c.domain.get_state(r))),
            ("Transition", unary(|c, a, r| c.domain.transition(c, a, r))),
            ("GetHistory", unary(|c, _, r| c.domain.get_history(r))),
            (
                "RegisterHook",
                unary(|c, a, r| c.domain.register_hook(c, a, r)),
            ),
            (
                "UnregisterHook",
                unary(|c, _, r| c.domain.unregister_hook(r)),
            ),
        ],
    )
}
