"""What a candidate answers to one eval row: a model (chat or text completion) or an agent.

Rows use Llama Stack's columns: `chat_completion_input` (a JSON list of messages, as a string or
as the list itself), `completion_input` (a prompt for text completion), or, PocketStack's
convenience, just `input_query` (asked as one user message). The answer is `generated_answer`.

Sampling follows the candidate's `sampling_params`: `greedy` is temperature 0, `top_p` its
temperature and top_p; `max_tokens` (default 512) and `stop` as given. Llama Stack's builtin
provider passes only max_tokens and stop; `repetition_penalty` and `top_k` have no OpenAI
equivalent and are not applied.
"""

from __future__ import annotations

import json
from typing import Any

from pocketstack._generated import models
from pocketstack.errors import BadRequestError
from pocketstack.providers.base import Routers
from pocketstack.wire.fields import given

DEFAULT_MAX_TOKENS = 512
ROLES = {"system", "user", "assistant"}


def _row_error(index: int, why: str) -> BadRequestError:
    return BadRequestError(f"Eval row {index} {why}.", param="input_rows", code="malformed_row")


def _messages(row: dict[str, Any], index: int) -> list[dict[str, Any]]:
    raw = row["chat_completion_input"]
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise _row_error(index, f"has a chat_completion_input that is not JSON ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise _row_error(index, "has a chat_completion_input that is not a list of messages")
    messages = []
    for message in raw:
        if not isinstance(message, dict) or message.get("role") not in ROLES or "content" not in message:
            raise _row_error(index, "has a chat_completion_input message without a role and content")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _sampling(params: models.SamplingParams) -> dict[str, Any]:
    raw = params.model_dump(mode="json", exclude_none=True)
    fields: dict[str, Any] = {"max_tokens": raw.get("max_tokens") or DEFAULT_MAX_TOKENS}
    if raw.get("stop"):
        fields["stop"] = list(raw["stop"])
    strategy = raw.get("strategy") or {"type": "greedy"}
    if strategy["type"] == "greedy":
        fields["temperature"] = 0.0
    elif strategy["type"] == "top_p":
        fields["temperature"] = strategy["temperature"]
        fields["top_p"] = strategy.get("top_p", 0.95)
    return fields


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


async def model_answer(
    routers: Routers, candidate: models.ModelCandidate, row: dict[str, Any], index: int
) -> dict[str, Any]:
    sampling = _sampling(candidate.sampling_params)
    if "completion_input" in row and "chat_completion_input" not in row:
        prompt = row["completion_input"]
        if isinstance(prompt, str) and prompt.startswith('"'):
            prompt = json.loads(prompt)  # Llama Stack's rows hold it JSON-encoded
        text_request = models.CompletionRequest.model_validate({"model": candidate.model, "prompt": prompt, **sampling})
        completion = await routers.inference.openai_completion(text_request)
        assert isinstance(completion, models.Completion)
        return {"generated_answer": completion.choices[0].text}
    if "chat_completion_input" in row:
        messages = _messages(row, index)
    elif isinstance(row.get("input_query"), str):
        messages = [{"role": "user", "content": row["input_query"]}]
    else:
        raise _row_error(index, "has none of chat_completion_input, completion_input or input_query")
    system = given(candidate.system_message)
    if system is not None:
        messages.insert(0, {"role": "system", "content": _text(system.model_dump(mode="json")["content"])})
    request = models.ChatCompletionRequest.model_validate({"model": candidate.model, "messages": messages, **sampling})
    answer = await routers.inference.openai_chat_completion(request)
    assert isinstance(answer, models.ChatCompletion)
    return {"generated_answer": _text(answer.choices[0].message.content)}


def _question(row: dict[str, Any], index: int) -> str:
    if "chat_completion_input" in row:
        users = [m for m in _messages(row, index) if m["role"] == "user"]
        if users:
            return _text(users[-1]["content"])
    if isinstance(row.get("input_query"), str):
        return str(row["input_query"])
    raise _row_error(index, "has no user message for the agent (chat_completion_input or input_query)")


async def agent_answer(routers: Routers, agent_id: str, row: dict[str, Any], index: int) -> dict[str, Any]:
    """One session per row, so rows never see each other's turns; the answer is the turn's output message."""
    session = await routers.agents.create_agent_session(
        models.CreateAgentSessionRequest(agent_id=agent_id, session_name=f"eval-row-{index}")
    )
    turn = await routers.agents.create_agent_turn(
        models.CreateAgentTurnRequest.model_validate(
            {
                "agent_id": agent_id,
                "session_id": session.session_id,
                "messages": [{"role": "user", "content": _question(row, index)}],
                "stream": False,
            }
        )
    )
    assert isinstance(turn, models.AgentTurn)
    return {"generated_answer": _text(turn.output_message.model_dump(mode="json").get("content"))}
