from rest_framework.routers import SimpleRouter

from .views import ClusterRunViewSet, ClusterViewSet

router = SimpleRouter()
router.register("cluster-runs", ClusterRunViewSet, basename="cluster-run")
router.register("clusters", ClusterViewSet, basename="cluster")

urlpatterns = router.urls
