from django.urls import path

from personalize.consumers import PersonalizeConsumer

websocket_urlpatterns = [
    path("ws/personalize/", PersonalizeConsumer.as_asgi()),
]
