from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash="/?")
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("dataset-items", views.DatasetItemViewSet, basename="dataset-item")
router.register("experiment-targets", views.ExperimentTargetViewSet, basename="experiment-target")
router.register("experiment-runs", views.ExperimentRunViewSet, basename="experiment-run")

urlpatterns = router.urls
