"""A support bot instrumented with traceloop-sdk (OpenLLMetry) the way Traceloop's docs teach:
`Traceloop.init()`, `@workflow` / `@tool` decorators, association properties for the session
and user, and the plain `openai` client (instrumented by the SDK). It runs in its own virtualenv
(tests/otel/test_traceloop.py); nothing in it knows about chatmon except the feedback call at the
end (OpenLLMetry has no score API): the test sets TRACELOOP_BASE_URL, TRACELOOP_HEADERS,
TRACELOOP_TELEMETRY=false, OPENAI_BASE_URL and CHATMON_URL / CHATMON_API_KEY for the feedback.

Prints {"answers": [...], "turn_ids": [...], "feedback_status": N} as JSON on stdout.
"""

import json
import os
import sys

import httpx
from openai import OpenAI
from opentelemetry import trace
from traceloop.sdk import Traceloop
from traceloop.sdk.decorators import tool, workflow

# The documented production set-up: spans are batched (disable_batch is for notebooks).
Traceloop.init(app_name="shop-bot")

client = OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0)
turn_ids: list[str] = []


@tool(name="order-lookup")
def order_lookup(order_id: str) -> dict:
    return {"order": order_id, "status": "shipped"}


@workflow(name="support-chat")
def handle_message(question: str) -> str:
    context = trace.get_current_span().get_span_context()
    turn_ids.append(f"{context.trace_id:032x}:{context.span_id:016x}")
    if "order" in question:
        order_lookup("50231")
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are the shop's assistant."},
            {"role": "user", "content": question},
        ],
    )
    return completion.choices[0].message.content


Traceloop.set_association_properties({"session_id": "tl-session", "user_id": "customer-tl"})
answers = [handle_message("Where is my order 50231?"), handle_message("Do you ship to Norway?")]
trace.get_tracer_provider().force_flush()

# The end user's thumbs-down on the first answer, through chatmon's feedback API.
feedback = httpx.post(
    f"{os.environ['CHATMON_URL']}/api/v1/feedback",
    headers={"Authorization": f"Bearer {os.environ['CHATMON_API_KEY']}"},
    json={
        "conversation_id": "tl-session",
        "turn_id": turn_ids[0],
        "rating": "down",
        "comment": "Wrong parcel",
    },
    timeout=30,
)
json.dump(
    {"answers": answers, "turn_ids": turn_ids, "feedback_status": feedback.status_code}, sys.stdout
)
