from django.urls import path

from personalize.profile_apis import ProfileEraseApi, ProfileExportApi, ProfileLookupApi

urlpatterns = [
    path("profiles/lookup", ProfileLookupApi.as_view(), name="api-profile-lookup"),
    path("profiles/export", ProfileExportApi.as_view(), name="api-profile-export"),
    path("profiles/erase", ProfileEraseApi.as_view(), name="api-profile-erase"),
]
