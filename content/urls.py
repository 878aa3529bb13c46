from django.urls import path

from content.apis import BlocksApi

urlpatterns = [
    path("blocks", BlocksApi.as_view(), name="api-blocks"),
]
