from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Demo shop"

    def ready(self) -> None:
        from personalize.signals import profile_merging
        from shop.receivers import move_shop_rows

        profile_merging.connect(move_shop_rows, dispatch_uid="shop.move_shop_rows")
