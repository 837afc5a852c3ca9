from django.contrib import admin

from .models import ModelPrice


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model_pattern", "provider", "input_per_million", "output_per_million", "valid_from", "notes")
    list_filter = ("provider",)
    search_fields = ("model_pattern",)
