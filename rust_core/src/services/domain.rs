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
                unary(|c, a, r| c.runtime.domain.create_agent(&c.runtime.events, a, r)),
            ),
            ("GetAgent", unary(|c, _, r| c.runtime.domain.get_agent(r))),
            (
                "ListAgents",
                unary(|c, _, r| c.runtime.domain.list_agents(r)),
            ),
            (
                "UpdateAgent",
                unary(|c, a, r| c.runtime.domain.update_agent(&c.runtime.events, a, r)),
            ),
            (
                "DeleteAgent",
                unary(|c, a, r| c.runtime.domain.delete_agent(&c.runtime.events, a, r)),
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
                unary(|c, a, r| c.runtime.domain.submit_task(&c.runtime.events, a, r)),
            ),
            ("GetTask", unary(|c, _, r| c.runtime.domain.get_task(r))),
            ("ListTasks", unary(|c, _, r| c.runtime.domain.list_tasks(r))),
            (
                "AssignTask",
                unary(|c, a, r| c.runtime.domain.assign_task(&c.runtime.events, a, r)),
            ),
            (
                "StartTask",
                unary(|c, a, r| c.runtime.domain.start_task(&c.runtime.events, a, r)),
            ),
            (
                "CompleteTask",
                unary(|c, a, r| c.runtime.domain.complete_task(&c.runtime.events, a, r)),
            ),
            (
                "FailTask",
                unary(|c, a, r| c.runtime.domain.fail_task(&c.runtime.events, a, r)),
            ),
            (
                "CancelTask",
                unary(|c, a, r| c.runtime.domain.cancel_task(&c.runtime.events, a, r)),
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
                unary(|c, a, r| c.runtime.domain.put_knowledge(&c.runtime.events, a, r)),
            ),
            (
                "GetKnowledge",
                unary(|c, _, r| c.runtime.domain.get_knowledge(r)),
            ),
            (
                "QueryKnowledge",
                unary(|c, _, r| c.runtime.domain.query_knowledge(r)),
            ),
            (
                "DeleteKnowledge",
                unary(|c, a, r| c.runtime.domain.delete_knowledge(&c.runtime.events, a, r)),
            ),
        ],
    )?;
    register_builtin(
        registry,
        "hms.agent.lifecycle.v1.LifecycleService",
        "Agent lifecycle: transitions, history, hooks",
        vec![
            ("GetState", unary(|c, _, r| c.runtime.domain.get_state(r))),
            (
                "Transition",
                unary(|c, a, r| c.runtime.domain.transition(c, a, r)),
            ),
            (
                "GetHistory",
                unary(|c, _, r| c.runtime.domain.get_history(r)),
            ),
            (
                "RegisterHook",
                unary(|c, a, r| c.runtime.domain.register_hook(c, a, r)),
            ),
            (
                "UnregisterHook",
                unary(|c, _, r| c.runtime.domain.unregister_hook(r)),
            ),
        ],
    )
}
