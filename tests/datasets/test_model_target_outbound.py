"""A model target's own base URL is typed by staff: the `openai` client checks every request
against the outbound policy and connects to the checked address (no second DNS lookup, so no
rebinding between check and connect), and follows no redirects."""

from __future__ import annotations

import pytest

from apps.conversations.models import LLMCall
from apps.core import outbound
from apps.datasets.choices import ResultStatus, RunStatus
from apps.datasets.experiments import experiment_run_create
from apps.datasets.models import ExperimentTarget
from apps.datasets.services import dataset_items_create
from tests.support.openai_server import OpenAIServer, ScriptedResponse

from .conftest import ANSWERS, shop_model

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Where is my order 1234?"


@pytest.fixture
def offline_grader(settings):
    settings.JUDGE_BACKEND = "heuristic"  # only the target's calls go over the network
    settings.OPENAI_TIMEOUT_SECONDS = 5.0
    return settings


@pytest.fixture
def one_item(dataset):
    dataset_items_create(
        dataset=dataset, items=[{"input": QUESTION, "expected_answer": ANSWERS[QUESTION]}]
    )
    return dataset


def _target(chatbot, base_url: str) -> ExperimentTarget:
    return ExperimentTarget.objects.create(
        name="own-server", chatbot=chatbot, kind="model", model="shop-model", base_url=base_url
    )


def _run(dataset, target):
    run = experiment_run_create(dataset=dataset, target=target)
    run.refresh_from_db()
    return run, run.results.get()


def _port(server: OpenAIServer) -> str:
    return server.origin.rsplit(":", 1)[1]


def test_a_name_resolving_to_loopback_is_refused_unless_allowed(offline_grader, chatbot, one_item):
    with OpenAIServer(chat_handler=shop_model) as server:
        target = _target(chatbot, f"http://localhost:{_port(server)}/v1")
        offline_grader.OUTBOUND_ALLOWED_NETWORKS = []
        run, result = _run(one_item, target)
        assert (run.status, result.status, result.attempts) == (
            RunStatus.FAILED,
            ResultStatus.FAILED,
            1,
        )
        assert "is not a public address" in result.error and result.error.startswith(
            "target: base URL"
        )
        assert server.requests_to("/chat/completions") == []
        assert not LLMCall.objects.exists()  # nothing left chatmon

        offline_grader.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
        run, result = _run(one_item, target)
        assert (run.status, result.output) == (RunStatus.DONE, ANSWERS[QUESTION])
        (request,) = server.requests_to("/chat/completions")
        assert request["headers"]["Host"] == f"localhost:{_port(server)}"


def test_the_connection_goes_to_the_checked_address(offline_grader, chatbot, one_item, monkeypatch):
    offline_grader.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    with OpenAIServer(chat_handler=shop_model) as server:
        # model.chatmon.invalid resolves nowhere but through the check: the request arrives only
        # because the client connected to the address the check returned.
        target = _target(chatbot, f"http://model.chatmon.invalid:{_port(server)}/v1")
        run, result = _run(one_item, target)
        assert (run.status, result.output) == (RunStatus.DONE, ANSWERS[QUESTION]), result.error
        (request,) = server.requests_to("/chat/completions")
    assert request["headers"]["Host"] == f"model.chatmon.invalid:{_port(server)}"
    assert lookups == ["model.chatmon.invalid"]


def test_a_name_rebound_to_an_internal_address_is_refused_at_call_time(
    offline_grader, chatbot, one_item, monkeypatch
):
    offline_grader.OUTBOUND_ALLOWED_NETWORKS = []
    answers = {"model.chatmon.invalid": ["93.184.216.34"]}
    monkeypatch.setattr(outbound, "_resolve", lambda host, port: answers[host])
    target = _target(chatbot, "http://model.chatmon.invalid/v1")
    answers["model.chatmon.invalid"] = ["169.254.169.254"]  # the attacker's DNS changes its answer
    run, result = _run(one_item, target)
    assert result.status == ResultStatus.FAILED and "is not a public address" in result.error


def test_a_redirect_is_not_followed(offline_grader, chatbot, one_item):
    offline_grader.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    with (
        OpenAIServer(chat_handler=shop_model) as public,
        OpenAIServer(chat_handler=shop_model) as internal,
    ):
        public.script_chat(
            ScriptedResponse(
                status=307, body={}, headers={"Location": f"{internal.base_url}/chat/completions"}
            )
        )
        run, result = _run(one_item, _target(chatbot, public.base_url))
        assert internal.requests == [] and len(public.requests_to("/chat/completions")) == 1
    assert result.status == ResultStatus.FAILED and "HTTP 307" in result.error
