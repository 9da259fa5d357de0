	1agent `a1` cannot move from INITIALIZED to PAUSED
agent_ida1
fromINITIALIZED
toPAUSED"2hms.agent.lifecycle.v1.LifecycleService/Transition