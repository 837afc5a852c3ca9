from django.urls import path

from .views import FeedbackSlashView, FeedbackView

urlpatterns = [
    path("feedback", FeedbackView.as_view(), name="feedback-api"),
    path("feedback/", FeedbackSlashView.as_view(), name="feedback-api-slash"),
]
