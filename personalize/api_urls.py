from django.urls import path

from personalize.profile_apis import ProfileLookupApi

urlpatterns = [
    path("profiles/lookup", ProfileLookupApi.as_view(), name="api-profile-lookup"),
]
