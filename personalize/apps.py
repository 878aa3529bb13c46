from django.apps import AppConfig


class PersonalizeConfig(AppConfig):
    name = "personalize"
    verbose_name = "Visitors, profiles and events"

    def ready(self) -> None:
        # The live channel subscribes to membership changes emitted by segments.
        from personalize import live

        live.connect()
