from django.urls import path

from . import views

urlpatterns = [
    # `path:` so ids holding "/" (e.g. "tenant/42") can be erased too.
    path("end-users/<path:user_id>/consent", views.EndUserConsentView.as_view(), name="end-user-consent"),
    path("end-users/<path:user_id>", views.EndUserErasureView.as_view(), name="end-user-erase"),
]
