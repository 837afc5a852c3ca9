"""The CI gate: run a dataset against a target, wait, compare with the baseline, exit 1 on regression.

    python manage.py run_experiment --dataset refunds-golden --target prompt:v2 \\
        --baseline latest --max-drop 0.3 --max-regressions 0

With CELERY_TASK_ALWAYS_EAGER the run executes in this process; otherwise its chunks go to the
workers and the command polls until the run is finished (or --timeout passes: exit 2).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.datasets import experiments
from apps.datasets.models import Dataset, ExperimentTarget


class Command(BaseCommand):
    help = (
        "Run a dataset against a target and fail (exit 1) when it regressed against the baseline."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dataset", required=True, help="Dataset slug.")
        parser.add_argument(
            "--target", required=True, help="Experiment target name (e.g. prompt:v2)."
        )
        parser.add_argument(
            "--baseline",
            default="latest",
            help="'latest' (the baseline run, else the newest finished one) or a run id.",
        )
        parser.add_argument(
            "--max-drop",
            type=float,
            default=0.3,
            help="Largest allowed drop of the average score (0–10).",
        )
        parser.add_argument(
            "--max-regressions", type=int, default=0, help="Most items allowed to regress."
        )
        parser.add_argument(
            "--timeout", type=float, default=1800.0, help="Seconds to wait for the workers."
        )
        parser.add_argument(
            "--mark-baseline", action="store_true", help="Mark the run as baseline when it passes."
        )
        parser.add_argument("--note", default="", help="Stored on the run (e.g. the commit).")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset {options['dataset']!r}")
        target = ExperimentTarget.objects.filter(name=options["target"]).first()
        if target is None:
            raise CommandError(f"no experiment target {options['target']!r}")
        if options["max_drop"] < 0 or options["max_regressions"] < 0:
            raise CommandError("--max-drop and --max-regressions must not be negative")
        try:
            run = experiments.experiment_run_create(
                dataset=dataset, target=target, note=options["note"]
            )
        except experiments.ExperimentError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"run {run.pk}: {run.total} item(s) of {dataset.slug} against {target.name}"
        )
        if not experiments.experiment_run_wait(run=run, timeout_seconds=options["timeout"]):
            self.stderr.write(
                f"run {run.pk} not finished after {options['timeout']:.0f} s ({run.done + run.failed}/{run.total})"
            )
            raise SystemExit(2)
        try:
            result = experiments.experiment_gate(
                run=run,
                baseline_spec=options["baseline"],
                max_drop=options["max_drop"],
                max_regressions=options["max_regressions"],
            )
        except (experiments.ExperimentError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self._summary(result)
        if not result.passed:
            self.stdout.write(self.style.ERROR("FAILED: " + "; ".join(result.reasons)))
            raise SystemExit(1)
        if options["mark_baseline"]:
            experiments.experiment_baseline_set(run=run)
        self.stdout.write(self.style.SUCCESS("PASSED"))

    def _summary(self, result: experiments.GateResult) -> None:
        run = result.run
        self.stdout.write(
            f"run {run.pk}: {run.done} done, {run.failed} failed, average {run.average_score}"
        )
        if result.comparison is None:
            self.stdout.write("no baseline to compare with (first run of this dataset)")
            return
        comparison = result.comparison
        self.stdout.write(f"baseline: run {result.baseline.pk}")
        header = f"{'criterion':<14}{'baseline':>10}{'this run':>10}{'delta':>9}{'pass % base':>13}{'pass % now':>12}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))

        def cell(value: Any, width: int) -> str:
            return f"{value:>{width}.2f}" if isinstance(value, float | int) else f"{'—':>{width}}"

        for row in comparison.criteria:
            self.stdout.write(
                f"{row['criterion']:<14}{cell(row['base_average'], 10)}{cell(row['candidate_average'], 10)}"
                f"{cell(row['average_delta'], 9)}{cell(row['base_pass_rate'], 13)}{cell(row['candidate_pass_rate'], 12)}"
            )
        self.stdout.write(
            f"regressed: {len(comparison.regressed)} · improved: {len(comparison.improved)}"
        )
        for item in comparison.regressed:
            self.stdout.write(
                f"  REGRESSED item {item['item']}: {item['base_score']} → {item['candidate_score']} "
                f"({item['delta']:+.2f}) {item['input'][:80]!r}"
            )
