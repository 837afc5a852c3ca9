from apps.conversations.models import LLMCall, Turn

SECRET = "sk-proj-4fG7hJ9kL2mN5pQ8rS1tU3vW6xY0zA2bC4dE"


def _post(client, body):
    return client.post("/api/v1/ingest/turns", body, content_type="application/json")


def test_pii_is_redacted_before_storage_and_counted(bot_client, chatbot):
    response = _post(bot_client, {
        "conversation_id": "c1", "turn_id": "t1",
        "user_message": "I'm jane@example.com, card 4111 1111 1111 1111, order 50231",
        "bot_response": f"Sure. Here is the admin key {SECRET}",
        "error": "timeout calling 10.0.0.7",
        "llm_calls": [{"call_id": "k1", "input": "user jane@example.com asks", "output": "call +1 415 555 2671"}],
    })
    assert response.status_code == 201, response.content
    turn = Turn.objects.get(external_id="t1")
    assert turn.user_message == "I'm [EMAIL], card [CARD], order 50231"
    assert turn.bot_response == "Sure. Here is the admin key [SECRET]"
    assert turn.error == "timeout calling [IP]"
    assert turn.pii_found == {"EMAIL": 2, "CARD": 1, "SECRET": 1, "IP": 1, "PHONE": 1}
    call = LLMCall.objects.get(external_id="k1")
    assert call.input_text == "user [EMAIL] asks" and call.output_text == "call [PHONE]"
    # Risk is scored on the original text, so the secret-leak rule still fires.
    assert response.json()["risk_score"] > 0
    assert any("Secret" in str(reason) for reason in turn.risk_reasons)
    assert SECRET not in str(turn.risk_reasons)


def test_tokens_are_counted_on_the_original_text(bot_client, chatbot):
    long_email = "a.very.long.address.that.has.many.tokens@subdomain.example.com"
    _post(bot_client, {"conversation_id": "c1", "turn_id": "t1", "user_message": long_email, "bot_response": "ok"})
    chatbot.pii_redaction_enabled = False
    chatbot.save()
    _post(bot_client, {"conversation_id": "c1", "turn_id": "t2", "user_message": long_email, "bot_response": "ok"})
    redacted, plain = Turn.objects.get(external_id="t1"), Turn.objects.get(external_id="t2")
    assert redacted.user_message == "[EMAIL]" and plain.user_message == long_email
    assert redacted.prompt_tokens == plain.prompt_tokens > 5


def test_redaction_off_stores_text_as_sent(bot_client, chatbot):
    chatbot.pii_redaction_enabled = False
    chatbot.save()
    _post(bot_client, {"conversation_id": "c1", "turn_id": "t1", "user_message": "mail jane@example.com"})
    turn = Turn.objects.get(external_id="t1")
    assert turn.user_message == "mail jane@example.com" and turn.pii_found == {}


def test_standalone_llm_calls_are_redacted(bot_client, chatbot):
    response = bot_client.post("/api/v1/ingest/llm-calls", {
        "conversation_id": "c1", "call_id": "x", "input": "my iban is DE89370400440532013000", "output": "noted",
    }, content_type="application/json")
    assert response.status_code == 201, response.content
    assert LLMCall.objects.get(external_id="x").input_text == "my iban is [IBAN]"


def test_the_judge_model_receives_only_redacted_text(bot_client, chatbot, settings):
    from apps.evaluations.services import turn_judge
    from tests.support.openai_server import OpenAIServer

    _post(bot_client, {"conversation_id": "c1", "turn_id": "t1", "user_message": "I am jane@example.com, help",
                       "bot_response": "Hello, call us on +44 20 7946 0958."})
    turn = Turn.objects.get(external_id="t1")
    settings.JUDGE_BACKEND, settings.OPENAI_API_KEY, settings.JUDGE_MAX_ATTEMPTS = "openai", "test-key", 1
    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL = server.base_url
        turn_judge(turn_id=turn.pk)
        sent = str([r["json"] for r in server.requests_to("/chat/completions")])
    assert "[EMAIL]" in sent and "[PHONE]" in sent
    assert "jane@example.com" not in sent and "7946" not in sent


def test_an_ingest_of_the_issue_15_attack_text_is_not_held_by_the_redactor(bot_client, chatbot):
    # Both fields, two turns: ~11 s of CPU in redact() alone with the old backtracking patterns.
    from tests.support.deadline import deadline

    text = ((" 001" + "1" * 20 + "x") * 1300)[:32000]
    turns = [{"conversation_id": "c1", "turn_id": f"t{i}", "user_message": text, "bot_response": text}
             for i in range(2)]
    with deadline(5):
        response = _post(bot_client, {"turns": turns})
    assert response.status_code == 207, response.content
    assert Turn.objects.filter(user_message=text, bot_response=text, pii_found={}).count() == 2
