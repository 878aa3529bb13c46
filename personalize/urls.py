from django.urls import path

from personalize import apis, views

urlpatterns = [
    path("", views.home, name="home"),
    path("v1/track", apis.track, name="v1-track"),
    path("v1/page", apis.page, name="v1-page"),
    path("v1/screen", apis.screen, name="v1-screen"),
    path("v1/identify", apis.identify, name="v1-identify"),
    path("v1/group", apis.group, name="v1-group"),
    path("v1/alias", apis.alias, name="v1-alias"),
    path("v1/batch", apis.batch, name="v1-batch"),
    path("v1/import", apis.batch, name="v1-import"),
]
