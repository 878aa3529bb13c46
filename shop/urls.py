from django.urls import path

from shop import views

urlpatterns = [
    path("shop/", views.catalog, name="catalog"),
    path("shop/p/<slug:slug>/", views.product_detail, name="product"),
    path("shop/p/<slug:slug>/add/", views.cart_add, name="cart-add"),
    path("shop/cart/", views.cart, name="cart"),
    path("shop/checkout/", views.checkout, name="checkout"),
]
