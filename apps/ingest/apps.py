from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "apps.ingest"
    label = "ingest"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from apps.core import pricing

        from .models import ModelPrice

        # ModelPrice is the price list apps.core.pricing reads; a change is seen at the next lookup.
        pricing.price_list_register(
            lambda: ModelPrice.objects.values_list("model_pattern", "valid_from", "input_per_million", "output_per_million")
        )
        post_save.connect(pricing.prices_forget, sender=ModelPrice, dispatch_uid="ingest-modelprice-saved")
        post_delete.connect(pricing.prices_forget, sender=ModelPrice, dispatch_uid="ingest-modelprice-deleted")
