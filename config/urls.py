from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Editors' pages (preview, audit log): before admin/, whose catch-all would take them.
    path("admin/editors/", include("content.admin_urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("content.urls")),
    path("api/v1/", include("personalize.api_urls")),
    path("api/v1/", include("segments.urls")),
    path("", include("personalize.urls")),
    path("", include("shop.urls")),
]
