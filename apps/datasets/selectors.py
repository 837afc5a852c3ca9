"""Reads: run progress and the comparison of two runs of one dataset."""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.evaluations.choices import CRITERIA

from .choices import CORRECTNESS, PASS_SCORE, PROPERTIES, ResultStatus, RunStatus
from .models import Dataset, ExperimentItemResult, ExperimentRun

COMPARED_CRITERIA = ("score", "overall", *CRITERIA, CORRECTNESS, PROPERTIES)


def run_progress(run: ExperimentRun) -> dict[str, Any]:
    eta = run.eta()
    return {
        "status": run.status,
        "done": run.done,
        "failed": run.failed,
        "total": run.total,
        "eta_seconds": int(eta.total_seconds()) if eta is not None else None,
    }


def baseline_for(
    *, dataset: Dataset, spec: str, exclude: int | None = None
) -> ExperimentRun | None:
    """`latest`: the run marked as baseline, else the newest finished run; or a run id."""
    runs = ExperimentRun.objects.filter(dataset=dataset).exclude(pk=exclude)
    if spec == "latest":
        return (
            runs.filter(is_baseline=True).first()
            or runs.filter(status=RunStatus.DONE).order_by("-finished_at", "-id").first()
        )
    if not spec.isdigit():
        raise ValueError("--baseline is 'latest' or a run id")
    return runs.filter(pk=int(spec)).first()


def _criterion_value(result: ExperimentItemResult, name: str) -> float | None:
    if name == "score":
        return result.score
    if name == PROPERTIES:
        if not result.properties:
            return None
        return 10 * sum(bool(p.get("passed")) for p in result.properties) / len(result.properties)
    value = (result.scores or {}).get(name)
    return float(value) if value is not None else None


def _criterion_summary(results: list[ExperimentItemResult], name: str) -> dict[str, Any]:
    if name == PROPERTIES:
        verdicts = [bool(p.get("passed")) for r in results for p in (r.properties or [])]
        values = [v for v in (_criterion_value(r, name) for r in results) if v is not None]
        return {
            "average": round(sum(values) / len(values), 3) if values else None,
            "pass_rate": round(100 * sum(verdicts) / len(verdicts), 1) if verdicts else None,
            "n": len(verdicts),
        }
    values = [v for v in (_criterion_value(r, name) for r in results) if v is not None]
    return {
        "average": round(sum(values) / len(values), 3) if values else None,
        "pass_rate": round(100 * sum(v >= PASS_SCORE for v in values) / len(values), 1)
        if values
        else None,
        "n": len(values),
    }


def _delta(a: float | None, b: float | None) -> float | None:
    return round(b - a, 3) if a is not None and b is not None else None


def word_diff_html(before: str, after: str) -> str:
    """Escaped HTML of `after` against `before`, word by word: <del> removed, <ins> added."""
    a, b = before.split(), after.split()
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(html.escape(" ".join(a[i1:i2])))
            continue
        if i2 > i1:
            parts.append(f"<del>{html.escape(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            parts.append(f"<ins>{html.escape(' '.join(b[j1:j2]))}</ins>")
    return " ".join(parts)


@dataclass
class Comparison:
    base: ExperimentRun
    candidate: ExperimentRun
    criteria: list[dict[str, Any]]
    items: list[dict[str, Any]]
    regressed: list[dict[str, Any]]
    improved: list[dict[str, Any]]
    average_drop: float | None

    def as_json(self, *, with_items: bool = True) -> dict[str, Any]:
        data = {
            "base": self.base.pk,
            "candidate": self.candidate.pk,
            "criteria": self.criteria,
            "average_drop": self.average_drop,
            "regressed": self.regressed,
            "improved": self.improved,
        }
        if with_items:
            data["items"] = self.items
        return data


def _results(run: ExperimentRun) -> dict[int, ExperimentItemResult]:
    return {r.item_id: r for r in run.results.select_related("item_version")}


def runs_compare(*, base: ExperimentRun, candidate: ExperimentRun) -> Comparison:
    """Per-criterion averages and pass rates with deltas; items regressed/improved by score delta
    (at least EXPERIMENT_REGRESSION_DELTA), worst first; every item side by side with a word diff.

    Items are matched by item (whatever version each run used; the versions are shown).
    """
    if base.dataset_id != candidate.dataset_id:
        raise ValueError("the two runs are of different datasets")
    before, after = _results(base), _results(candidate)
    done_before = [r for r in before.values() if r.status == ResultStatus.DONE]
    done_after = [r for r in after.values() if r.status == ResultStatus.DONE]
    criteria = []
    for name in COMPARED_CRITERIA:
        a, b = _criterion_summary(done_before, name), _criterion_summary(done_after, name)
        if not a["n"] and not b["n"]:
            continue
        criteria.append(
            {
                "criterion": name,
                "base_average": a["average"],
                "candidate_average": b["average"],
                "average_delta": _delta(a["average"], b["average"]),
                "base_pass_rate": a["pass_rate"],
                "candidate_pass_rate": b["pass_rate"],
                "pass_rate_delta": _delta(a["pass_rate"], b["pass_rate"]),
            }
        )
    threshold = settings.EXPERIMENT_REGRESSION_DELTA
    items = []
    for item_id in sorted(before.keys() | after.keys()):
        old, new = before.get(item_id), after.get(item_id)
        delta = _delta(old.score if old else None, new.score if new else None)
        # A result that failed in the candidate but was graded in the base counts as a regression.
        if (
            old is not None
            and new is not None
            and old.status == ResultStatus.DONE
            and new.status == ResultStatus.FAILED
        ):
            delta = round(-(old.score or 0.0), 3)
        version = (new or old).item_version
        items.append(
            {
                "item": item_id,
                "input": version.input,
                "expected_answer": version.expected_answer,
                "base_version": old.item_version.number if old else None,
                "candidate_version": new.item_version.number if new else None,
                "base_score": old.score if old else None,
                "candidate_score": new.score if new else None,
                "delta": delta,
                "base_status": old.status if old else None,
                "candidate_status": new.status if new else None,
                "base_output": old.output if old else "",
                "candidate_output": new.output if new else "",
                "base_reasoning": " ".join(x for x in (old.reasoning, old.reference_reasoning) if x)
                if old
                else "",
                "candidate_reasoning": " ".join(
                    x for x in (new.reasoning, new.reference_reasoning) if x
                )
                if new
                else "",
                "base_error": old.error if old else "",
                "candidate_error": new.error if new else "",
                "base_properties": old.properties if old else [],
                "candidate_properties": new.properties if new else [],
                "diff_html": word_diff_html(old.output if old else "", new.output if new else ""),
            }
        )
    regressed = sorted(
        (i for i in items if i["delta"] is not None and i["delta"] <= -threshold),
        key=lambda i: i["delta"],
    )
    improved = sorted(
        (i for i in items if i["delta"] is not None and i["delta"] >= threshold),
        key=lambda i: -i["delta"],
    )
    brief = ("item", "input", "base_score", "candidate_score", "delta")
    return Comparison(
        base=base,
        candidate=candidate,
        criteria=criteria,
        items=items,
        regressed=[{k: i[k] for k in brief} for i in regressed],
        improved=[{k: i[k] for k in brief} for i in improved],
        average_drop=_delta(candidate.average_score, base.average_score),
    )


def runs_of(dataset: Dataset) -> QuerySet[ExperimentRun]:
    return dataset.runs.select_related("target").order_by("-created_at", "-id")
