from __future__ import annotations

from django.contrib import admin

from shop.models import Category, Order, OrderLine, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ("name", "category", "price")
    list_filter = ("category",)
    list_select_related = ("category",)
    prepopulated_fields = {"slug": ("name",)}


class OrderLineInline(admin.TabularInline[OrderLine, Order]):
    model = OrderLine
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    list_display = ("id", "profile", "total", "created_at")
    inlines = [OrderLineInline]
