import pytest

from apps.evaluations.rubric import JudgmentFormatError, judgment_parse
from tests.support.deadline import deadline

REPLY = '{"accuracy": 8, "relevance": 7, "clarity": 9, "helpfulness": 8, "safety": 10, "hallucination": false, "reasoning": "ok"}'


@pytest.mark.parametrize("content", [REPLY, f"```json\n{REPLY}\n```", f"```JSON {REPLY}```", f"  ```\n{REPLY}\n```  "])
def test_a_fenced_or_bare_reply_is_parsed(content):
    assert judgment_parse(content).scores["accuracy"] == 8


def test_a_reply_of_spaces_inside_a_fence_is_refused_quickly():
    # The former fence regex took time cubic in a run of spaces (20 s for 4,000 here).
    with deadline(5), pytest.raises(JudgmentFormatError):
        judgment_parse("```" + " " * 20_000 + "x")
