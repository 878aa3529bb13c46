"""A small demo shop whose every action is tracked, so segments have something to see."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from config.stamps import StampBumpingQuerySet
from personalize.models import Profile

# Bumped by every write to products and categories: web processes keep the featured ones.
PRODUCTS_STAMP = "shop:products"


class CategoryQuerySet(StampBumpingQuerySet["Category"]):
    bumps = (PRODUCTS_STAMP,)


class ProductQuerySet(StampBumpingQuerySet["Product"]):
    bumps = (PRODUCTS_STAMP,)


class Category(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)

    objects = CategoryQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    description = models.TextField(blank=True)
    # A colour standing in for the product's picture (the demo ships no images).
    color = models.CharField(max_length=7, default="#888888")

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CartLine(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="cart_lines")
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.PositiveIntegerField(default=1)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "product"], name="cart_line_unique")
        ]

    @property
    def subtotal(self) -> Decimal:
        return self.product.price * self.quantity


class Order(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="orders")
    email = models.EmailField(blank=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Order {self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2)
