"""The other span conventions bots are instrumented with → chatmon's words. Pure functions.

mapping.py reads the OpenTelemetry GenAI conventions; this module reads the three others that
most instrumented bots already emit, so pointing their exporter at chatmon is enough:

- OpenInference (Arize Phoenix's instrumentors): `openinference.span.kind`, `llm.model_name`,
  `llm.input_messages.N.message.role|content|contents.M.message_content.text`,
  `llm.output_messages.N.…`, `llm.token_count.prompt|completion|total`, `llm.cost.total`,
  `input.value` / `output.value`, `tool.name`, `agent.name`, `metadata`, `tag.tags`.
- OpenLLMetry (Traceloop): `traceloop.span.kind` (workflow, task, agent, tool),
  `traceloop.entity.name|input|output`, `traceloop.association.properties.session_id|user_id`
  (the LLM spans themselves use the GenAI attributes mapping.py reads, old and new).
- Langfuse's SDK (v3 and later export OTLP): `langfuse.observation.type` (span, generation,
  embedding, agent, tool, chain, retriever, evaluator, guardrail, event),
  `langfuse.observation.input|output` (JSON), `langfuse.observation.model.name`,
  `langfuse.observation.usage_details|cost_details` (JSON), `langfuse.observation.level|
  status_message`, `langfuse.trace.name|tags|metadata.*`, `langfuse.release|version|environment`.

Every convention's span kind becomes one of chatmon's operations (the GenAI names where one
exists): "chat", "embeddings", "execute_tool", "retrieve", "invoke_agent", … An LLM-like
operation becomes an LLM call; a tool, retriever or agent becomes an LLM call named after it
(no model, no cost). STRUCTURAL operations (a chain, workflow, task or plain span) are never LLM
calls: the outermost one with an input and an output is the turn, the others are counted as
ignored. The README section "Coming from Langfuse / Phoenix / OpenLLMetry" has the tables.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from apps.core.json import json_loads_strict
from apps.core.text import ascii_int

from .mapping import Message, message_from, messages_from

OPENINFERENCE_KIND = "openinference.span.kind"
TRACELOOP_KIND = "traceloop.span.kind"
LANGFUSE_TYPE = "langfuse.observation.type"

OPENINFERENCE_OPERATIONS = {
    "LLM": "chat", "EMBEDDING": "embeddings", "TOOL": "execute_tool", "RETRIEVER": "retrieve",
    "RERANKER": "rerank", "AGENT": "invoke_agent", "CHAIN": "chain", "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",  # UNKNOWN: not mapped
}
TRACELOOP_OPERATIONS = {"workflow": "chain", "task": "chain", "agent": "invoke_agent", "tool": "execute_tool"}
LANGFUSE_OPERATIONS = {
    "generation": "chat", "embedding": "embeddings", "tool": "execute_tool", "retriever": "retrieve",
    "agent": "invoke_agent", "chain": "chain", "span": "chain", "evaluator": "evaluator",
    "guardrail": "guardrail", "event": "event",
}
# Operations that are structure, not work: a turn when outermost with content, else not stored.
STRUCTURAL_OPERATIONS = {"chain", "event"}
# Operations named after the thing they ran (tool.name, agent.name, the observation's name).
NAMED_OPERATIONS = {"execute_tool", "invoke_agent", "create_agent", "retrieve", "rerank", "guardrail", "evaluator"}

CONVERSATION_ATTRIBUTES = ("gen_ai.conversation.id", "session.id", "traceloop.association.properties.session_id")
USER_ATTRIBUTES = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
MODEL_ATTRIBUTES = ("gen_ai.response.model", "gen_ai.request.model", "llm.response.model", "llm.request.model",
                    "llm.model_name", "llm.response.model_name", "llm.request.model_name",
                    "langfuse.observation.model.name", "embedding.model_name")
PROVIDER_ATTRIBUTES = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
INPUT_TOKEN_ATTRIBUTES = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens",
                          "llm.token_count.prompt")
OUTPUT_TOKEN_ATTRIBUTES = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                           "llm.usage.completion_tokens", "llm.token_count.completion")
TOTAL_TOKEN_ATTRIBUTES = ("llm.usage.total_tokens", "gen_ai.usage.total_tokens", "llm.token_count.total")
# Langfuse usage_details keys, as its SDK and integrations write them.
_USAGE_INPUT_KEYS = ("input", "prompt_tokens", "input_tokens", "promptTokens")
_USAGE_OUTPUT_KEYS = ("output", "completion_tokens", "output_tokens", "completionTokens")

# Free-form inputs/outputs ({"question": …}, a function's kwargs): the keys that hold the text.
_TEXT_KEYS = ("content", "text", "message", "user_message", "question", "query", "input", "prompt",
              "answer", "output", "response", "result", "bot_response", "completion")
_MAX_DEPTH = 4
_INDEX_MAX = 9_999
_METADATA_VALUE_CHARS = 500
_METADATA_KEYS = 20


def convention_operation(attributes: dict[str, Any]) -> str:
    """The chatmon operation of a span in one of these conventions, "" when it is none of them."""
    kind = attributes.get(LANGFUSE_TYPE)
    if isinstance(kind, str) and kind in LANGFUSE_OPERATIONS:
        return LANGFUSE_OPERATIONS[kind]
    kind = attributes.get(OPENINFERENCE_KIND)
    if isinstance(kind, str) and kind.upper() in OPENINFERENCE_OPERATIONS:
        return OPENINFERENCE_OPERATIONS[kind.upper()]
    kind = attributes.get(TRACELOOP_KIND)
    if isinstance(kind, str) and kind in TRACELOOP_OPERATIONS:
        return TRACELOOP_OPERATIONS[kind]
    return ""


def convention_of(attributes: dict[str, Any]) -> str:
    if LANGFUSE_TYPE in attributes:
        return "langfuse"
    if OPENINFERENCE_KIND in attributes:
        return "openinference"
    if TRACELOOP_KIND in attributes:
        return "openllmetry"
    return ""


def convention_content(attributes: dict[str, Any], *, output: bool) -> list[Message]:
    """The input (or output) messages a span carries in these conventions' attributes."""
    prefix = "llm.output_messages." if output else "llm.input_messages."
    messages = openinference_messages(attributes, prefix)
    if messages:
        return messages
    names = (("langfuse.observation.output", "output.value", "traceloop.entity.output") if output
             else ("langfuse.observation.input", "input.value", "traceloop.entity.input"))
    for name in names:
        if attributes.get(name) not in (None, ""):
            return loose_messages(attributes[name], output=output)
    return []


def convention_text(attributes: dict[str, Any], *, output: bool) -> str:
    """A span's input (or output) as sent, for a tool's arguments or a retriever's documents that
    are no messages: what the LLM call page shows."""
    names = (("langfuse.observation.output", "output.value", "traceloop.entity.output") if output
             else ("langfuse.observation.input", "input.value", "traceloop.entity.input"))
    value = next((attributes[n] for n in names if attributes.get(n) not in (None, "")), "")
    return value if isinstance(value, str) else str(value)


def openinference_messages(attributes: dict[str, Any], prefix: str) -> list[Message]:
    """llm.input_messages.0.message.role / .content / .contents.0.message_content.text …"""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix):].split(".", 2)
        if len(parts) != 3 or parts[1] != "message":
            continue
        index = ascii_int(parts[0], maximum=_INDEX_MAX)
        if index is None:
            continue
        message = found.setdefault(index, {"texts": {}, "tool_calls": {}})
        field = parts[2]
        if field in ("role", "content", "name", "tool_call_id"):
            message[field] = value
        elif field.startswith("contents.") and field.endswith(".message_content.text"):
            part = ascii_int(field.split(".")[1], maximum=_INDEX_MAX)
            if part is not None:
                message["texts"][part] = value
        elif field.startswith("tool_calls."):
            call_parts = field.split(".", 2)
            call = ascii_int(call_parts[1], maximum=_INDEX_MAX) if len(call_parts) == 3 else None
            if call is not None:
                message["tool_calls"].setdefault(call, {})[call_parts[2].removeprefix("tool_call.")] = value
    messages = []
    for index in sorted(found):
        item = found[index]
        text = item.get("content")
        if not isinstance(text, str) or not text:
            text = "\n".join(str(item["texts"][k]) for k in sorted(item["texts"]) if item["texts"][k])
        tool_calls = [_tool_call(item["tool_calls"][k]) for k in sorted(item["tool_calls"])]
        default_role = "assistant" if "output" in prefix else "user"
        messages.append(Message(role=str(item.get("role") or default_role), text=text, tool_calls=tool_calls))
    return messages


def _tool_call(fields: dict[str, Any]) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "function", "function": {"name": fields.get("function.name", ""),
                                                             "arguments": fields.get("function.arguments", "")}}
    if fields.get("id"):
        call["id"] = fields["id"]
    return call


def loose_messages(value: Any, *, output: bool, depth: int = 0) -> list[Message]:
    """Messages from a free-form input or output: plain text, a message list, an OpenAI request
    or response, a decorated function's {"args": […], "kwargs": {…}}, or an object whose text
    sits under a usual key ({"question": …}, {"answer": …}). Nothing recognisable → []."""
    role = "assistant" if output else "user"
    if depth > _MAX_DEPTH:
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{", '"'):
            try:
                parsed = json_loads_strict(stripped)
            except ValueError:
                return [Message(role=role, text=value)]
            return loose_messages(parsed, output=output, depth=depth + 1) if not isinstance(parsed, str) else (
                [Message(role=role, text=parsed)] if parsed.strip() else [])
        return [Message(role=role, text=value)] if stripped else []
    if isinstance(value, list):
        if value and all(isinstance(item, dict) and "role" in item for item in value):
            return messages_from(value, default_role=role)
        texts = [item for item in value if isinstance(item, str) and item.strip()]
        if len(texts) == 1:
            return [Message(role=role, text=texts[0])]
        for item in value:  # e.g. LangChain's [[messages]] or [{"generations": …}]
            found = loose_messages(item, output=output, depth=depth + 1)
            if found:
                return found
        return []
    if not isinstance(value, dict):
        return [Message(role=role, text=str(value))] if isinstance(value, int | float) and not output else []
    if isinstance(value.get("messages"), list):
        return loose_messages(value["messages"], output=output, depth=depth + 1)
    if output and isinstance(value.get("choices"), list) and value["choices"]:
        message = message_from(value["choices"][0], default_role="assistant")
        return [message] if message else []
    if "role" in value and ("content" in value or "parts" in value):
        message = message_from(value, default_role=role)
        return [message] if message else []
    if "args" in value or "kwargs" in value:
        kwargs = value.get("kwargs") if isinstance(value.get("kwargs"), dict) else {}
        args = value.get("args") if isinstance(value.get("args"), list) else []
        if isinstance(kwargs.get("messages"), list):
            return loose_messages(kwargs["messages"], output=output, depth=depth + 1)
        strings = [a for a in [*args, *kwargs.values()] if isinstance(a, str) and a.strip()]
        if len(strings) == 1:
            return [Message(role=role, text=strings[0])]
        for key in _TEXT_KEYS:
            if key in kwargs:
                return loose_messages(kwargs[key], output=output, depth=depth + 1)
        return []
    for key in _TEXT_KEYS:
        if key in value and value[key] not in (None, ""):
            found = loose_messages(value[key], output=output, depth=depth + 1)
            if found:
                return found
    return []


def json_object(value: Any) -> dict[str, Any]:
    """A JSON-object attribute (Langfuse's usage_details, OpenInference's metadata) as a dict."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json_loads_strict(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def usage_tokens(attributes: dict[str, Any]) -> tuple[int | None, int | None]:
    """Langfuse's usage_details → (input tokens, output tokens)."""
    usage = json_object(attributes.get("langfuse.observation.usage_details"))
    return _count(usage, _USAGE_INPUT_KEYS), _count(usage, _USAGE_OUTPUT_KEYS)


def _count(values: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = values.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
    return None


def cost_sent(attributes: dict[str, Any]) -> str | None:
    """The cost in USD the bot sent (Langfuse cost_details total or sum, llm.cost.total), as a
    decimal string; None → chatmon prices the call from its model and tokens."""
    details = json_object(attributes.get("langfuse.observation.cost_details"))
    if details:
        parts = [_decimal(v) for k, v in details.items() if k != "total"]
        total = _decimal(details["total"]) if "total" in details else (
            sum(parts, Decimal(0)) if parts and None not in parts else None)
    else:
        total = _decimal(attributes.get("llm.cost.total"))
    if total is None:
        return None
    amount = total.normalize()
    return format(amount, "f")


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def convention_error(attributes: dict[str, Any]) -> str:
    """Langfuse marks failures with level ERROR (and a status message) rather than the status."""
    if attributes.get("langfuse.observation.level") != "ERROR":
        return ""
    return str(attributes.get("langfuse.observation.status_message") or "ERROR")


def convention_metadata(attributes: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    """What a turn keeps from these conventions until it has fields for them: trace name, tags,
    release, version, environment, total tokens and the bot's own metadata (clipped)."""
    def pick(*names: str) -> Any:
        for name in names:
            for source in (attributes, resource):
                if source.get(name) not in (None, "", []):
                    return source[name]
        return None

    meta: dict[str, Any] = {
        "convention": convention_of(attributes),
        "trace_name": pick("langfuse.trace.name", "traceloop.workflow.name"),
        "release": pick("langfuse.release", "service.version"),
        "version": pick("langfuse.version", "traceloop.entity.version"),
        "environment": pick("langfuse.environment", "deployment.environment.name", "deployment.environment"),
        "total_tokens": pick(*TOTAL_TOKEN_ATTRIBUTES),
    }
    tags = pick("langfuse.trace.tags", "tag.tags")
    if isinstance(tags, list):
        meta["tags"] = [str(t)[:100] for t in tags][:_METADATA_KEYS]
    bot_metadata: dict[str, Any] = dict(json_object(attributes.get("metadata")))
    for key, value in attributes.items():
        for prefix in ("langfuse.trace.metadata.", "langfuse.observation.metadata.",
                       "traceloop.association.properties."):
            if key.startswith(prefix) and key[len(prefix):] not in ("session_id", "user_id"):
                bot_metadata[key[len(prefix):]] = _metadata_value(value)
    if bot_metadata:
        meta["metadata"] = {str(k)[:100]: _clip(v) for k, v in list(bot_metadata.items())[:_METADATA_KEYS]}
    return {k: (_clip(v) if k != "metadata" else v) for k, v in meta.items() if v not in (None, "", [])}


def _metadata_value(value: Any) -> Any:
    # Langfuse v5 JSON-encodes every metadata value ("\"gold\"", "3"): decode what decodes.
    if isinstance(value, str):
        try:
            return json_loads_strict(value)
        except ValueError:
            return value
    return value


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value[:_METADATA_VALUE_CHARS]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return str(value)[:_METADATA_VALUE_CHARS]
