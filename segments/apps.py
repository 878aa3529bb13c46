from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = "Segments"

    def ready(self) -> None:
        # Webhooks subscribe to membership changes, like the live channel.
        from segments import webhooks

        webhooks.connect()
