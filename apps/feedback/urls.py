from django.urls import path

from . import views

urlpatterns = [
    path("demo/widget/", views.widget_demo, name="feedback-widget-demo"),
]
