"""The LLM judge over any OpenAI-compatible server (OpenAI, Azure OpenAI, vLLM, Ollama, …).

The client never retries by itself (max_retries=0): the Celery task does, so every attempt is
visible (an LLMCall row, Evaluation.attempts) and bounded (JUDGE_MAX_ATTEMPTS).
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import TYPE_CHECKING, Any

import openai
from django.conf import settings

from apps.core.llm import TRANSIENT_STATUSES, ModelCall, model_call_timed, openai_client

from ..choices import Evaluator
from ..conversation_rubric import (
    CONVERSATION_RESPONSE_FORMAT,
    CONVERSATION_RUBRIC_VERSION,
    conversation_judgment_parse,
    conversation_repair_message,
    conversation_system_prompt,
    conversation_transcript,
)
from ..rubric import (
    RESPONSE_FORMAT_JSON_OBJECT,
    RESPONSE_FORMAT_JSON_SCHEMA,
    RUBRIC_VERSION,
    JudgmentFormatError,
    judgment_parse,
    repair_message,
    system_prompt,
    user_message,
)
from .base import ConversationJudgeOutcome, JudgeBackend, JudgeError, JudgeOutcome, register

if TYPE_CHECKING:
    from apps.conversations.models import Conversation, Turn

RETRY_AFTER_CAP_SECONDS = 600.0

# Per (base URL, model): request features the server rejected, so later calls skip them
# instead of paying for a 400 every time (e.g. json_schema on an older vLLM or Ollama).
_unsupported: dict[tuple[str | None, str], set[str]] = {}


def _call_failed(record: ModelCall, calls: list[ModelCall], error: str) -> JudgeError:
    """Record a failed call (kept as an LLMCall) and the transient error to retry it with."""
    record.error = error[:1000]
    calls.append(record)
    return JudgeError(record.error, permanent=False, calls=calls)


def unsupported_features_forget() -> None:
    """Forget what servers rejected (tests; a server upgrade is picked up on restart anyway)."""
    _unsupported.clear()


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, or `retry-after` (seconds or date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return min(RETRY_AFTER_CAP_SECONDS, max(0.0, float(raw_ms) / 1000))
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return min(RETRY_AFTER_CAP_SECONDS, max(0.0, float(raw)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return min(RETRY_AFTER_CAP_SECONDS, max(0.0, when.timestamp() - time.time()))


def _rejects(exc: openai.APIStatusError, feature: str) -> bool:
    """A 400 that names a request parameter we can drop (response_format, temperature)."""
    if exc.status_code != 400:
        return False
    text = f"{exc.message} {json.dumps(exc.body) if exc.body is not None else ''}".lower()
    if feature == "json_schema":
        return "response_format" in text or "json_schema" in text
    return feature in text


@register
class OpenAIJudge(JudgeBackend):
    kind = "openai"
    evaluator = Evaluator.LLM_JUDGE

    @property
    def model(self) -> str:
        return self.chatbot.judge_model or settings.JUDGE_MODEL

    @property
    def version(self) -> str:
        return f"{RUBRIC_VERSION}:{self.model}"

    def judge(self, *, turn: Turn, context: list[Turn]) -> JudgeOutcome:
        """1. Ask with the rubric as system message and the transcript as user message.
        2. Validate the reply; if it is unusable, ask once more quoting the problem (repair).
        3. A second unusable reply is a permanent failure.
        """
        if not settings.OPENAI_API_KEY:
            raise JudgeError("OPENAI_API_KEY is not set (JUDGE_BACKEND=openai)", permanent=True)
        messages: list[dict[str, str]] = [
            {"role": "system", "content": system_prompt(instructions=self.chatbot.judge_instructions)},
            {"role": "user", "content": user_message(
                turn=turn, context=context, max_chars=settings.JUDGE_MAX_MESSAGE_CHARS,
            )},
        ]
        calls: list[ModelCall] = []
        content = self._complete(messages, calls, step="judge")
        try:
            judgment = judgment_parse(content)
        except JudgmentFormatError as first:
            calls[-1].metadata["invalid"] = str(first)
            messages = [
                *messages,
                {"role": "assistant", "content": content or ""},
                {"role": "user", "content": repair_message(str(first))},
            ]
            content = self._complete(messages, calls, step="repair")
            try:
                judgment = judgment_parse(content)
            except JudgmentFormatError as second:
                calls[-1].metadata["invalid"] = str(second)
                raise JudgeError(
                    f"unparseable judge output after one repair attempt: {second}",
                    permanent=True, calls=calls,
                ) from None
        return JudgeOutcome(judgment=judgment, calls=calls)

    @property
    def conversation_version(self) -> str:
        return f"{CONVERSATION_RUBRIC_VERSION}:{self.model}"

    def judge_conversation(self, *, conversation: Conversation, turns: list[Turn]) -> ConversationJudgeOutcome:
        """As `judge`, on the conversation rubric with the whole transcript (within the token
        budget, apps.evaluations.conversation_rubric.conversation_transcript)."""
        if not settings.OPENAI_API_KEY:
            raise JudgeError("OPENAI_API_KEY is not set (JUDGE_BACKEND=openai)", permanent=True)
        system = conversation_system_prompt(instructions=self.chatbot.judge_instructions)
        transcript = conversation_transcript(
            turns=turns, budget_tokens=settings.CONVERSATION_JUDGE_MAX_PROMPT_TOKENS, model=self.model,
            max_chars=settings.JUDGE_MAX_MESSAGE_CHARS, system_prompt=system,
        )
        messages = [{"role": "system", "content": system}, {"role": "user", "content": transcript.text}]
        calls: list[ModelCall] = []
        fmt = CONVERSATION_RESPONSE_FORMAT
        content = self._complete(messages, calls, step="conversation_judge", response_format_schema=fmt)
        try:
            judgment = conversation_judgment_parse(content, turns=len(turns))
        except JudgmentFormatError as first:
            calls[-1].metadata["invalid"] = str(first)
            messages = [
                *messages,
                {"role": "assistant", "content": content or ""},
                {"role": "user", "content": conversation_repair_message(str(first))},
            ]
            content = self._complete(messages, calls, step="conversation_repair", response_format_schema=fmt)
            try:
                judgment = conversation_judgment_parse(content, turns=len(turns))
            except JudgmentFormatError as second:
                calls[-1].metadata["invalid"] = str(second)
                raise JudgeError(
                    f"unparseable conversation judge output after one repair attempt: {second}",
                    permanent=True, calls=calls,
                ) from None
        return ConversationJudgeOutcome(judgment=judgment, transcript=transcript, calls=calls)

    def _complete(
        self, messages: list[dict[str, str]], calls: list[ModelCall], *, step: str,
        response_format_schema: dict[str, Any] = RESPONSE_FORMAT_JSON_SCHEMA,
    ) -> str:
        """One chat completion; drops a rejected feature and asks again at once (not a retry)."""
        # Retries go through Celery (visible, bounded attempts), so the client itself never retries.
        client = openai_client(max_retries=0)
        server_key = (settings.OPENAI_BASE_URL, self.model)
        while True:
            unsupported = _unsupported.get(server_key, set())
            response_format = "json_object" if "json_schema" in unsupported else "json_schema"
            body: dict[str, Any] = {
                "response_format": RESPONSE_FORMAT_JSON_OBJECT
                if response_format == "json_object"
                else response_format_schema,
            }
            if "temperature" not in unsupported:
                body["temperature"] = 0
            # Sent as-is through extra_body: the client's recursive typed-dict transform of the
            # (constant) schema costs more CPU than the rest of the request (see bench/judge.py).
            request: dict[str, Any] = {"model": self.model, "messages": messages, "extra_body": body}
            record = ModelCall(
                model=self.model,
                input_text=messages[-1]["content"],
                metadata={"step": step, "response_format": response_format},
            )
            try:
                with model_call_timed(record):
                    response = client.chat.completions.create(**request)
            except openai.APIStatusError as exc:
                record.error = record.error[:1000]
                record.metadata["status"] = exc.status_code
                calls.append(record)
                dropped = next(
                    (f for f in ("json_schema", "temperature") if f not in unsupported and _rejects(exc, f)),
                    None,
                )
                if dropped:
                    _unsupported.setdefault(server_key, set()).add(dropped)
                    record.metadata["dropped"] = dropped
                    continue
                transient = exc.status_code in TRANSIENT_STATUSES or exc.status_code >= 500
                retry_after = retry_after_seconds(exc.response.headers)
                if retry_after is not None:
                    record.metadata["retry_after"] = retry_after
                raise JudgeError(record.error, permanent=not transient, retry_after=retry_after, calls=calls) from None
            except openai.APITimeoutError:
                raise _call_failed(record, calls, f"timed out after {settings.OPENAI_TIMEOUT_SECONDS}s") from None
            except openai.APIConnectionError as exc:
                raise _call_failed(record, calls, f"connection error: {exc.__cause__ or exc}") from None
            except openai.APIResponseValidationError as exc:
                # The server answered 200 with a body that is not a chat completion.
                raise _call_failed(record, calls, f"invalid response from the server: {exc.message}") from None
            choice = response.choices[0] if response.choices else None
            message = choice.message if choice else None
            content = (message.content if message else None) or ""
            record.output_text = content
            if message is not None and getattr(message, "refusal", None):
                record.metadata["refusal"] = message.refusal
            if choice is not None and choice.finish_reason:
                record.metadata["finish_reason"] = choice.finish_reason
            if not record.usage_read(response):
                record.metadata["usage_missing"] = True
            if response.model:
                record.model = response.model
            calls.append(record)
            return content
