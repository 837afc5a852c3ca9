from django.apps import AppConfig


class ChatbotsConfig(AppConfig):
    name = "apps.chatbots"
    label = "chatbots"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .api import schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
        from .models import ApiKey, Chatbot

        # Bot requests use cached keys and chatbots (apps.chatbots.api.authentication): any
        # change to either invalidates them everywhere once it is committed.
        for model in (ApiKey, Chatbot):
            post_save.connect(_stamp_bump_on_commit, sender=model, dispatch_uid=f"apikey-stamp-save-{model.__name__}")
            post_delete.connect(_stamp_bump_on_commit, sender=model, dispatch_uid=f"apikey-stamp-delete-{model.__name__}")


def _stamp_bump_on_commit(sender, instance, **kwargs) -> None:
    from django.db import transaction

    from .api.authentication import api_keys_stamp_bump

    if kwargs.get("update_fields") == frozenset({"last_used_at"}):
        return  # bookkeeping, not a change a request must see
    # Now (this process and its tests see it at once) and again after commit: a request that
    # re-read the row between the two, before the commit, cached it under the first stamp.
    api_keys_stamp_bump()
    transaction.on_commit(api_keys_stamp_bump, using=kwargs.get("using"))
