from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Demo shop"

    def ready(self) -> None:
        from personalize.signals import profile_erasing, profile_exporting, profile_merging
        from shop.receivers import erase_shop_rows, export_shop_rows, move_shop_rows

        profile_merging.connect(move_shop_rows, dispatch_uid="shop.move_shop_rows")
        profile_exporting.connect(export_shop_rows, dispatch_uid="shop.export_shop_rows")
        profile_erasing.connect(erase_shop_rows, dispatch_uid="shop.erase_shop_rows")
        # Web processes keep the featured products (shop.selectors).
        from config.stamps import bump_on_save_and_delete
        from shop.models import PRODUCTS_STAMP, Category, Product

        bump_on_save_and_delete(Product, PRODUCTS_STAMP)
        bump_on_save_and_delete(Category, PRODUCTS_STAMP)
