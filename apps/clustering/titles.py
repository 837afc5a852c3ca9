"""Cluster titles written by the labeling model (CLUSTER_LABEL_MODEL), each call recorded as an LLMCall."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from apps.chatbots.models import Chatbot
from apps.conversations.choices import CallPurpose
from apps.conversations.llm_calls import llm_call_recorded
from apps.core.llm import openai_client

from .models import ClusterRun

if TYPE_CHECKING:
    from .execution import ClusterDraft

_TITLE_PROMPT = (
    "You name groups of chatbot conversations in which users gave a thumbs-down. "
    "Answer with a title of at most 5 words describing what these users asked about or "
    "complained about. No quotes, no trailing punctuation."
)


def cluster_titles_write(*, run: ClusterRun, drafts: list[ClusterDraft], user_texts: list[str]) -> list[str]:
    """Replace keyword titles by LLM-written ones when CLUSTER_LABEL_MODEL is set; keep keywords on failure."""
    model = run.parameters.get("label_model", settings.CLUSTER_LABEL_MODEL)
    if not model:
        return []
    failures = 0
    for draft in drafts:
        if draft.cluster.is_noise:
            continue
        examples = [user_texts[p][:300] for p in draft.representatives]
        title = cluster_title_from_model(
            model=model, keywords=draft.cluster.keywords, examples=examples, chatbot=run.chatbot,
            run_id=run.pk, cluster_index=draft.cluster.index,
        )
        if title:
            draft.cluster.label = title
        else:
            failures += 1
    return [f"{failures} titles fell back to keywords (labeling model failed)"] if failures else []


def cluster_title_from_model(
    *, model: str, keywords: list[str], examples: list[str], chatbot: Chatbot, run_id: int | None = None,
    cluster_index: int | None = None,
) -> str | None:
    """A ≤ 5-word title from the chat model, recorded as an LLMCall (purpose "labeling").

    The call quotes end users' messages, so it names the run and cluster it was made for: when
    that cluster loses members (erasure, retention) the call is deleted (recount.py).
    """
    import openai

    prompt = "Keywords: " + ", ".join(keywords) + "\nExample user messages:\n" + "\n".join(f"- {e}" for e in examples)
    from .recount import TITLE_CALL_INDEX_KEY, TITLE_CALL_RUN_KEY

    link = {TITLE_CALL_RUN_KEY: run_id, TITLE_CALL_INDEX_KEY: cluster_index} if run_id is not None else {}
    try:
        with llm_call_recorded(
            purpose=CallPurpose.LABELING, model=model, function_name="clustering.title", chatbot=chatbot,
            input_text=prompt[:4000], metadata=link,
        ) as call:
            # Like the embeddings, the client's own retries cover brief 429/5xx.
            response = openai_client(max_retries=2, api_key_fallback="not-set").chat.completions.create(
                model=model,
                messages=[{"role": "system", "content": _TITLE_PROMPT}, {"role": "user", "content": prompt}],
                max_tokens=20,
                temperature=0,
            )
            content = (response.choices[0].message.content or "") if response.choices else ""
            call.usage_read(response)
            call.output_text = content[:2000]
            title = _clean_title(content)
            if not title:
                call.success = False
                call.error = "empty title"
    except openai.OpenAIError:
        return None  # recorded as a failed call; the caller keeps the keyword title
    return title


def _clean_title(content: str) -> str:
    line = next((line for line in content.strip().splitlines() if line.strip()), "")
    line = line.strip().strip("\"'`*#").removeprefix("Title:").strip().rstrip(".!")
    return " ".join(line.split()[:5])[:200]
