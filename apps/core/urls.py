from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView


class FaviconRedirectView(RedirectView):
    """Browsers ask for /favicon.ico on pages that link no icon (the API's JSON, error pages)."""

    permanent = False  # the static URL carries a content hash in production: it changes

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("chatmon/favicon.svg")


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("favicon.ico", FaviconRedirectView.as_view(), name="favicon"),
]
