"""OpenTelemetry GenAI semantic conventions → chatmon's words. Pure functions, no database.

Covers the current conventions (gen_ai.input.messages / gen_ai.output.messages as JSON,
gen_ai.provider.name, gen_ai.usage.input_tokens …), the older ones still emitted by most
instrumentations (gen_ai.system, gen_ai.usage.prompt_tokens, indexed gen_ai.prompt.N.* /
gen_ai.completion.N.* attributes from OpenLLMetry, gen_ai.content.prompt/completion span
events) and message content carried as log events (gen_ai.user.message, gen_ai.choice …).
The README table "OpenTelemetry ingest → mapping" documents the same rules.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.json import json_loads_strict
from apps.core.text import ascii_int

# Span/operation names of GenAI work that is an LLM call in chatmon's sense.
CHAT_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
# Operations whose span can stand for a whole turn (input ends with the user, output answers);
# "chain" is an OpenInference CHAIN, a Traceloop workflow/task or a Langfuse span (conventions.py).
TURN_OPERATIONS = CHAT_OPERATIONS | {"invoke_agent", "chain"}
# Log/span event names that carry one input message, by role.
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT = "gen_ai.choice"
# The experimental "event_only" content mode: one event with the whole input and output.
DETAILS_EVENTS = {"gen_ai.client.inference.operation.details", "gen_ai.content.prompt", "gen_ai.content.completion"}

# gen_ai.prompt.N.role: split on dots, no regex (keys are client text); N as at most 6 ASCII digits.
_INDEXED_FIELDS = {"role", "content"}
_INDEXED_MAX = 999_999


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as plain Python (kvlist → dict, array → list, bytes → hex)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes_dict(attributes: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in attributes}


@dataclass
class Message:
    role: str
    text: str  # the text parts joined; "" for tool calls only
    tool_calls: list = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"role": self.role, "content": self.text}
        if self.tool_calls:
            item["tool_calls"] = self.tool_calls
        return item


def _text_of(content: Any) -> str:
    """Text of a message's content: a string, OpenAI content parts or GenAI `parts`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                value = part.get("content", part.get("text"))
                if isinstance(value, str):
                    texts.append(value)
        return "\n".join(t for t in texts if t)
    if isinstance(content, dict):
        return _text_of(content.get("content", content.get("text")))
    return str(content)


def message_from(item: Any, *, default_role: str = "user") -> Message | None:
    """One message in any of the shapes the conventions have used."""
    if isinstance(item, str):
        return Message(role=default_role, text=item)
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("message"), dict):  # a gen_ai.choice body / OpenAI choice
        item = {**item["message"], "role": item["message"].get("role") or "assistant"}
    role = str(item.get("role") or default_role)
    parts = item.get("parts")
    tool_calls: list = list(item.get("tool_calls") or [])
    if isinstance(parts, list):
        text = _text_of(parts)
        tool_calls += [p for p in parts if isinstance(p, dict) and p.get("type") == "tool_call"]
    else:
        text = _text_of(item.get("content"))
    return Message(role=role, text=text, tool_calls=tool_calls)


def messages_from(value: Any, *, default_role: str) -> list[Message]:
    """A gen_ai.input.messages / output.messages value: JSON text or a structured attribute."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                value = json_loads_strict(stripped)
            except ValueError:
                return [Message(role=default_role, text=value)]
        else:
            return [Message(role=default_role, text=value)] if value else []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [m for m in (message_from(item, default_role=default_role) for item in value) if m is not None]


def indexed_messages(attributes: dict[str, Any], kind: str) -> list[Message]:
    """OpenLLMetry's gen_ai.prompt.0.role / gen_ai.prompt.0.content … attributes."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        parts = key.split(".", 4) if key.startswith("gen_ai.") else ()
        if len(parts) != 4 or parts[1] != kind or parts[3] not in _INDEXED_FIELDS:
            continue
        index = ascii_int(parts[2], maximum=_INDEXED_MAX)
        if index is not None:
            found.setdefault(index, {})[parts[3]] = value
    default_role = "user" if kind == "prompt" else "assistant"
    return [
        Message(role=str(found[i].get("role") or default_role), text=_text_of(found[i].get("content")))
        for i in sorted(found)
    ]


@dataclass
class SpanContent:
    """The messages of one span, from wherever they came (attributes, span events, log events)."""

    input: list[Message] = field(default_factory=list)
    output: list[Message] = field(default_factory=list)
    system: list[Message] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.input or self.output)

    def user_message(self) -> str | None:
        """The user message this span answers: the input's last user message, looking past the
        tool round-trips (tool results, assistant tool calls) that follow it in an agent loop."""
        for message in reversed(self.input):
            if message.role == "tool" or (message.role == "assistant" and not message.text):
                continue
            return message.text if message.role == "user" and message.text.strip() else None
        return None

    def answer(self) -> str | None:
        texts = [m.text for m in self.output if m.role in ("assistant", "model") and m.text.strip()]
        return "\n".join(texts) if texts else None

    def input_json(self) -> list[dict[str, Any]]:
        return [m.as_json() for m in self.system + self.input]

    def output_json(self) -> list[dict[str, Any]]:
        return [m.as_json() for m in self.output]


def span_content(attributes: dict[str, Any], events: list[tuple[str, dict[str, Any]]]) -> SpanContent:
    content = SpanContent()
    if "gen_ai.input.messages" in attributes:
        content.input = messages_from(attributes["gen_ai.input.messages"], default_role="user")
    if "gen_ai.output.messages" in attributes:
        content.output = messages_from(attributes["gen_ai.output.messages"], default_role="assistant")
    if "gen_ai.system_instructions" in attributes:
        content.system = [Message("system", m.text) for m in
                          messages_from(attributes["gen_ai.system_instructions"], default_role="system")]
    if not content.input:
        content.input = indexed_messages(attributes, "prompt")
    if not content.output:
        content.output = indexed_messages(attributes, "completion")
    if content.empty and events:
        from_events = events_content(events)
        content.input, content.output = from_events.input, from_events.output
    return content


def events_content(events: Iterable[tuple[str, Any]]) -> SpanContent:
    """Content carried by events (span events or log records), in emission order.

    Each item is (event name, payload) where the payload is the log body merged with the event
    attributes (span events have attributes only).
    """
    content = SpanContent()
    choices: list[tuple[int, Message]] = []
    for name, payload in events:
        data = payload if isinstance(payload, dict) else {"content": payload}
        if name in MESSAGE_EVENTS:
            role = MESSAGE_EVENTS[name]
            message = message_from({**data, "role": data.get("role") or role}, default_role=role)
            if message is not None:
                content.input.append(message)
        elif name == CHOICE_EVENT:
            message = message_from(data, default_role="assistant")
            index = data.get("index", len(choices))
            if message is not None:
                choices.append((index if isinstance(index, int) else len(choices), message))
        elif name in DETAILS_EVENTS:
            if "gen_ai.input.messages" in data or "gen_ai.prompt" in data:
                content.input = messages_from(data.get("gen_ai.input.messages", data.get("gen_ai.prompt")),
                                              default_role="user")
            if "gen_ai.output.messages" in data or "gen_ai.completion" in data:
                content.output = messages_from(data.get("gen_ai.output.messages", data.get("gen_ai.completion")),
                                               default_role="assistant")
    if choices:
        content.output = [m for _, m in sorted(choices, key=lambda c: c[0])]
    return content


def first_of(attributes: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = attributes.get(name)
        if value not in (None, ""):
            return value
    return None


def int_of(attributes: dict[str, Any], *names: str) -> int | None:
    value = first_of(attributes, *names)
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return ascii_int(value)
    return value if isinstance(value, int) else None


def nanos_to_datetime(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, tz=UTC)
