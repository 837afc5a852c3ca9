"""A bot instrumented with langfuse 2.x, run in its own virtualenv by tests/otel/test_langfuse2.py.

Only LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY point it at chatmon. Ids are fixed
so that a second run re-sends the same traces (the test checks nothing is stored twice). Prints
what the SDK reported as JSON on stdout.
"""

import json
import logging
import sys

from langfuse import Langfuse
from langfuse.decorators import langfuse_context, observe

errors: list[str] = []


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        errors.append(record.getMessage())


logging.getLogger("langfuse").addHandler(_Collect(level=logging.ERROR))

langfuse = Langfuse()
authenticated = langfuse.auth_check()

# 1. The low-level client: the trace's output is set after a flush, so it arrives in a later batch.
trace = langfuse.trace(
    id="lf2-trace-1",
    name="support-chat",
    user_id="customer-v2",
    session_id="v2-session",
    input={"question": "Where is order 50231? Mail me at jane.doe@example.com"},
    release="bot-2.0",
    version="v7",
    tags=["web"],
    metadata={"plan": "pro"},
)
lookup = trace.span(id="lf2-span-lookup", name="order-lookup", input={"order": 50231})
lookup.end(output={"status": "shipped"})
generation = trace.generation(
    id="lf2-gen-1",
    name="answer",
    model="gpt-4o-mini",
    input=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is order 50231?"},
    ],
)
generation.end(
    output={"role": "assistant", "content": "Order 50231 has shipped."},
    usage={"input": 31, "output": 6},
)
langfuse.flush()
trace.update(output="Order 50231 has shipped.")
langfuse.flush()
trace.score(id="lf2-score-thumbs", name="user-feedback", value=0, comment="Too slow")
langfuse.score(
    id="lf2-score-quality", trace_id="lf2-trace-1", name="quality", value=0.75, data_type="NUMERIC"
)
langfuse.flush()


# 2. The decorators, as most v2 bots use them.
@observe(as_type="generation")
def call_model(question: str) -> str:
    langfuse_context.update_current_observation(
        model="gpt-4o-mini", usage={"input": 9, "output": 4}
    )
    return "We are open until 8 pm."


@observe()
def handle_message(question: str) -> str:
    langfuse_context.update_current_trace(session_id="v2-session", user_id="customer-v2")
    return call_model(question, langfuse_observation_id="lf2-decorated-gen")


handle_message("When do you close?", langfuse_observation_id="lf2-decorated-1")
langfuse_context.flush()
langfuse.shutdown()
json.dump({"authenticated": authenticated, "errors": errors}, sys.stdout)
