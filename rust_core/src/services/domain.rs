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
                unary(|c, r| c.runtime.domain.create_agent(&c.runtime.events, r)),
            ),
            ("GetAgent", unary(|c, r| c.runtime.domain.get_agent(r))),
            ("ListAgents", unary(|c, r| c.runtime.domain.list_agents(r))),
            (
                "UpdateAgent",
                unary(|c, r| c.runtime.domain.update_agent(&c.runtime.events, r)),
            ),
            (
                "DeleteAgent",
                unary(|c, r| c.runtime.domain.delete_agent(&c.runtime.events, r)),
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
                unary(|c, r| c.runtime.domain.submit_task(&c.runtime.events, r)),
            ),
            ("GetTask", unary(|c, r| c.runtime.domain.get_task(r))),
            ("ListTasks", unary(|c, r| c.runtime.domain.list_tasks(r))),
            (
                "AssignTask",
                unary(|c, r| c.runtime.domain.assign_task(&c.runtime.events, r)),
            ),
            (
                "StartTask",
                unary(|c, r| c.runtime.domain.start_task(&c.runtime.events, r)),
            ),
            (
                "CompleteTask",
                unary(|c, r| c.runtime.domain.complete_task(&c.runtime.events, r)),
            ),
            (
                "FailTask",
                unary(|c, r| c.runtime.domain.fail_task(&c.runtime.events, r)),
            ),
            (
                "CancelTask",
                unary(|c, r| c.runtime.domain.cancel_task(&c.runtime.events, r)),
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
                unary(|c, r| c.runtime.domain.put_knowledge(&c.runtime.events, r)),
            ),
            (
                "GetKnowledge",
                unary(|c, r| c.runtime.domain.get_knowledge(r)),
            ),
            (
                "QueryKnowledge",
                unary(|c, r| c.runtime.domain.query_knowledge(r)),
            ),
            (
                "DeleteKnowledge",
                unary(|c, r| c.runtime.domain.delete_knowledge(&c.runtime.events, r)),
            ),
        ],
    )?;
    register_builtin(
        registry,
        "hms.agent.lifecycle.v1.LifecycleService",
        "Agent lifecycle: transitions, history, hooks",
        vec![
            ("GetState", unary(|c, r| c.runtime.domain.get_state(r))),
            (
                "Transition",
                unary(|c, r| c.runtime.domain.transition(c, r)),
            ),
            ("GetHistory", unary(|c, r| c.runtime.domain.get_history(r))),
            (
                "RegisterHook",
                unary(|c, r| c.runtime.domain.register_hook(c, r)),
            ),
            (
                "UnregisterHook",
                unary(|c, r| c.runtime.domain.unregister_hook(r)),
            ),
        ],
    )
}
