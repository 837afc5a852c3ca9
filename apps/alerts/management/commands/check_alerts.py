from django.core.management.base import BaseCommand

from apps.alerts.rules import alert_rules_check


class Command(BaseCommand):
    help = "Run one full alert check now (what beat runs every minute) and print each rule's value and state."

    def handle(self, *args: object, **options: object) -> None:
        outcomes = alert_rules_check()
        if not outcomes:
            self.stdout.write("No enabled alert rules.")
        for outcome in outcomes:
            if outcome.skipped:
                line = f"rule {outcome.rule_id}: skipped (being checked by another run)"
            elif outcome.error:
                line = f"{outcome.name or f'rule {outcome.rule_id}'}: ERROR {outcome.error}"
            else:
                value = "no data" if outcome.value is None else f"{outcome.value:.4g}"
                line = f"{outcome.name}: value={value} turns={outcome.sample_size} state={outcome.state}"
                if outcome.transition:
                    line += f" ({outcome.transition})"
            style = self.style.ERROR if outcome.error else (self.style.WARNING if outcome.state == "firing" else str)
            self.stdout.write(style(line))
