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


class ErasureResultSerializer(serializers.Serializer):
    end_user = serializers.CharField(help_text="The first 12 characters of the end user's keyed hash (never the id).")
    deleted = ErasureCountsSerializer()
