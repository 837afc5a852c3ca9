"""chatmon's admin site: the dashboard is its index page.

Installed by replacing "django.contrib.admin" with ChatmonAdminConfig in INSTALLED_APPS, so
`admin.site` (used by every app's `@admin.register` and by chatmon/urls.py) is this site.
This module is imported while apps load: it must not import models at module level.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse

from apps.core.replica import replica_reads


class ChatmonAdminSite(admin.AdminSite):
    site_header = "chatmon"
    site_title = "chatmon admin"
    index_title = "Dashboard"
    index_template = "admin/chatmon_index.html"
    # The lists (queue, turns, calls, runs, events) need the page's width at 1440 px; the app
    # list is one click away on the dashboard (Home).
    enable_nav_sidebar = False

    @replica_reads
    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from .dashboard import dashboard_context

        return super().index(request, {**dashboard_context(request), **(extra_context or {})})


class ChatmonAdminConfig(AdminConfig):
    default_site = "apps.review.admin_site.ChatmonAdminSite"
