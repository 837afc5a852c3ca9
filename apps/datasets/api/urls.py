from rest_framework.routers import SimpleRouter

from . import views


class OptionalSlashRouter(SimpleRouter):
    """`POST /api/v1/datasets/{id}/items` as the issue writes it, and with the slash the other
    staff endpoints use (no redirect: a redirected POST loses its body)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("dataset-items", views.DatasetItemViewSet, basename="dataset-item")
router.register("experiment-targets", views.ExperimentTargetViewSet, basename="experiment-target")
router.register("experiment-runs", views.ExperimentRunViewSet, basename="experiment-run")

urlpatterns = router.urls
