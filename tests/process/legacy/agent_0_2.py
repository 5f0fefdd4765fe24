"""Run by the llama-stack-client 0.2 in its own venv (test_legacy_client.py): its Agent helper end to end.

Prints one JSON line of what it saw; the test asserts on it. Client tools: the helper runs them
itself when a turn awaits input, and resumes the turn with their results.
"""

import json
import sys

from llama_stack_client import LlamaStackClient
from llama_stack_client.lib.agents.agent import Agent
from llama_stack_client.lib.agents.client_tool import client_tool
from llama_stack_client.lib.agents.event_logger import EventLogger


@client_tool
def get_weather(city: str) -> str:
    """The weather in a city.

    :param city: the city
    :returns: the weather
    """
    return f"18 C and sunny in {city}"


client = LlamaStackClient(base_url=sys.argv[1], max_retries=0)
agent = Agent(
    client,
    model=sys.argv[2],
    instructions="Be brief.",
    tools=[get_weather],
    sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 40},
    tool_config={"tool_choice": "required"},
)
session_id = agent.create_session("demo")
whole = agent.create_turn(
    messages=[{"role": "user", "content": "What is the weather in Paris?"}], session_id=session_id, stream=False
)
logged = [
    str(log)
    for log in EventLogger().log(
        agent.create_turn(messages=[{"role": "user", "content": "And in Rome?"}], session_id=session_id, stream=True)
    )
]
session = client.agents.session.retrieve(session_id=session_id, agent_id=agent.agent_id)
groups = [group.identifier for group in client.toolgroups.list()]
tools = [
    (tool.identifier, [p.name for p in tool.parameters]) for tool in client.tools.list(toolgroup_id="builtin::rag")
]
searched = client.tool_runtime.invoke_tool(tool_name="web_search", kwargs={"query": "news"})
print(
    json.dumps(
        {
            "steps": [step.step_type for step in whole.steps],
            "tool_responses": [
                r.content for s in whole.steps if s.step_type == "tool_execution" for r in s.tool_responses
            ],
            "output": whole.output_message.content,
            "logged": logged,
            "turns": len(session.turns),
            "groups": groups,
            "tools": tools,
            "searched": [searched.error_code, searched.error_message],
        }
    )
)
