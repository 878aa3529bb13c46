"""ASGI entry point: HTTP through Django, WebSockets through Channels.

In the embedded default there is no Celery beat, so the lifespan handler runs
the due-membership sweep inside this one process instead.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

# Imports that touch models must follow get_asgi_application().
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402

from config.lifespan import EmbeddedScheduler  # noqa: E402
from personalize.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            CookieMiddleware(URLRouter(websocket_urlpatterns))
        ),
        "lifespan": EmbeddedScheduler(),
    }
)
