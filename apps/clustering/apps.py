from django.apps import AppConfig


class ClusteringConfig(AppConfig):
    name = "apps.clustering"
    label = "clustering"
