from rest_framework import serializers


class ErasureCountsSerializer(serializers.Serializer):
    conversations = serializers.IntegerField()
    turns = serializers.IntegerField()
    llm_calls = serializers.IntegerField()
    evaluations = serializers.IntegerField()
    feedback = serializers.IntegerField()
    embeddings = serializers.IntegerField()
    cluster_memberships = serializers.IntegerField()
    sessions = serializers.IntegerField(help_text="Open sessions of turns sent without a conversation id.")
    dataset_items = serializers.IntegerField(help_text="Dataset items copied from the erased turns.")
    experiment_results = serializers.IntegerField(help_text="Experiment results of those dataset items.")


class ErasureResultSerializer(serializers.Serializer):
    end_user = serializers.CharField(help_text="The first 12 characters of the end user's keyed hash (never the id).")
    deleted = ErasureCountsSerializer()


class ConsentRequestSerializer(serializers.Serializer):
    consent = serializers.ChoiceField(choices=["full", "no_content", "no_training"], help_text=(
        "full, no_content (stored texts of this end user are replaced by a fixed marker now, and their future "
        "turns store none) or no_training (their conversations are left out of clustering and fine-tuning "
        "exports). Stored conversations only ever get stricter; the value applies to future turns as stated."))


class ConsentResultSerializer(serializers.Serializer):
    end_user = serializers.CharField(help_text="The first 12 characters of the end user's keyed hash (never the id).")
    consent = serializers.CharField()
    conversations = serializers.IntegerField(help_text="Conversations made stricter by this request.")
    withheld = serializers.DictField(child=serializers.IntegerField(), help_text=(
        "no_content: rows whose texts were replaced by the marker, per kind (turns, steps, llm_calls, evaluations, "
        "feedback, scores), and the embeddings and cluster memberships deleted."))
