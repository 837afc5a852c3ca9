"""LangChain through Langfuse's LangChain callback handler (langfuse 5.x), with a langchain-core
chain around ChatOpenAI (langchain-openai) aimed at the local OpenAI-compatible test server: a
LangChain bot that already reports to Langfuse changes only LANGFUSE_BASE_URL and its keys.

The model is tests.support.openai_server.OpenAIServer (it counts words as tokens).
"""

from operator import itemgetter

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langfuse.langchain import CallbackHandler
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from apps.conversations.models import LLMCall, Step, Turn
from apps.feedback.models import Feedback
from apps.privacy.hashing import end_user_hash
from tests.otel.test_langfuse import langfuse_client
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Where is order 50231?"
ANSWER = "Order 50231 shipped yesterday and arrives on Friday."


@tool
def order_status(order: str) -> str:
    """The shipping status of an order."""
    return "shipped"


def test_langchain_chain_through_the_langfuse_callback_handler(
    live_server, chatbot, api_key, monkeypatch
):
    # Every export is sent twice (an exporter retry after a timeout): nothing may be stored twice.
    original_export = OTLPSpanExporter.export

    def export_twice(self, spans):
        original_export(self, spans)
        return original_export(self, spans)

    monkeypatch.setattr(OTLPSpanExporter, "export", export_twice)
    with (
        OpenAIServer(chat_handler=lambda request: ANSWER) as server,
        langfuse_client(live_server, api_key, monkeypatch) as langfuse,
    ):
        model = ChatOpenAI(
            model="gpt-4o-mini", base_url=server.base_url, api_key="sk-test", max_retries=0
        )
        prompt = ChatPromptTemplate.from_messages(
            [
                ("system", "You are the shop's assistant. Order status: {status}"),
                ("human", "{question}"),
            ]
        )
        chain = (
            {"status": itemgetter("question") | order_status, "question": itemgetter("question")}
            | prompt
            | (model)
            | StrOutputParser()
        )
        handler = CallbackHandler()
        config = {
            "callbacks": [handler],
            "run_name": "support-chain",
            "metadata": {"langfuse_session_id": "lc-session", "langfuse_user_id": "customer-lc"},
        }
        assert chain.invoke({"question": QUESTION}, config=config) == ANSWER
        trace_id = handler.last_trace_id
        langfuse.flush()
        langfuse.create_score(name="thumbs", value=1, trace_id=trace_id, data_type="BOOLEAN")
        langfuse.flush()

    turn = Turn.objects.select_related("conversation").get(chatbot=chatbot)
    assert (turn.user_message, turn.bot_response) == (QUESTION, ANSWER)
    assert turn.conversation.external_id == "lc-session"
    assert turn.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-lc")
    call = LLMCall.objects.get(chatbot=chatbot)
    assert (call.turn_id, call.model) == (turn.pk, "gpt-4o-mini")
    request_words = sum(
        len(m["content"].split())
        for m in server.requests_to("/chat/completions")[0]["json"]["messages"]
    )
    assert (call.input_tokens, call.output_tokens) == (request_words, len(ANSWER.split()))
    step = Step.objects.get(turn=turn)
    assert (step.kind, step.name, step.output_text) == ("tool", "order_status", "shipped")
    assert Feedback.objects.get(turn=turn).rating == "up"
    assert (turn.conversation.turn_count, turn.conversation.total_tokens) == (
        1,
        call.input_tokens + call.output_tokens,
    )
