from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core import views as core_views

api_v1 = [
    path("", include("apps.ingest.api.urls")),
    path("", include("apps.feedback.api.urls")),
    path("", include("apps.review.api.urls")),
    path("", include("apps.clustering.api.urls")),
    path("", include("apps.privacy.api.urls")),
    path("", include("apps.scores.api.urls")),
    path("", include("apps.datasets.api.urls")),
]

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("metrics", core_views.metrics, name="metrics"),
    path("", include("apps.core.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from ?script (a same-origin file), so the
    # page works under the project's CSP (script-src 'self', no inline scripts).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("apps.otel.urls")),
    path("", include("apps.feedback.urls")),
    path("admin/", admin.site.urls),
]
