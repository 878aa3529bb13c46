"""The editors' admin pages (content.admin_views), behind the admin's staff login."""

from django.contrib import admin
from django.urls import path

from content import admin_views

urlpatterns = [
    path(
        "preview/",
        admin.site.admin_view(admin_views.preview_page),
        name="editors-preview",
    ),
    path(
        "preview/exit/",
        admin.site.admin_view(admin_views.preview_exit),
        name="editors-preview-exit",
    ),
    path("audit/", admin.site.admin_view(admin_views.audit_page), name="editors-audit"),
]
