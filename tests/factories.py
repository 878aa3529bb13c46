"""factory_boy factories for every model the tests build."""

from __future__ import annotations

import uuid
from decimal import Decimal

import factory
from django.contrib.auth.models import User
from django.utils import timezone

from content.models import Block, BlockVariant, Item, Slot
from personalize.models import Event, Identity, Profile, QualityCount, Source
from segments.models import Membership, Segment, SegmentKind, Webhook
from shop.models import Category, Product


class UserFactory(factory.django.DjangoModelFactory):
    """A site user; ``is_staff=True`` makes an editor who can use the admin."""

    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")
    is_staff = False
    password = factory.django.Password("pw")


class EditorFactory(UserFactory):
    """A staff editor with every permission on blocks and segments (a superuser)."""

    is_staff = True
    is_superuser = True


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"source-{n}")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    traits: dict[str, object] = {}


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    profile = factory.SubFactory(ProfileFactory)
    kind = Identity.Kind.ANONYMOUS_ID
    value = factory.LazyFunction(lambda: str(uuid.uuid4()))


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    source = factory.SubFactory(SourceFactory, name="test")
    profile = factory.SubFactory(ProfileFactory)
    message_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    type = Event.Type.TRACK
    name = "product_viewed"
    properties: dict[str, object] = {}
    timestamp = factory.LazyFunction(timezone.now)
    received_at = factory.LazyAttribute(lambda event: event.timestamp)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Segment {n}")
    slug = factory.Sequence(lambda n: f"segment-{n}")
    rule = factory.LazyFunction(
        lambda: {
            "type": "aggregate",
            "fn": "count",
            "event": "product_viewed",
            "window": {"last": "48h"},
            "op": "gte",
            "value": 3,
        }
    )


class BlockFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Block
        skip_postgeneration_save = True

    slot = "hero"
    key = factory.Sequence(lambda n: f"block-{n}")
    title = factory.Sequence(lambda n: f"Block {n}")
    body = factory.LazyAttribute(lambda block: f"<p>{block.title}</p>")
    status = Block.Status.PUBLISHED

    @factory.post_generation
    def segments(self, create: bool, extracted: list[Segment] | None, **kwargs: object) -> None:
        if create and extracted:
            self.segments.set(extracted)


class BlockVariantFactory(factory.django.DjangoModelFactory):
    """A variant that keeps the block's content unless given its own."""

    class Meta:
        model = BlockVariant

    block = factory.SubFactory(BlockFactory)
    key = factory.Sequence(lambda n: f"v{n}")
    weight = 1


class SlotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Slot
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"slot-{n}")
    capacity = 1


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    category = factory.SubFactory(CategoryFactory)
    price = Decimal("50.00")


class QualityCountFactory(factory.django.DjangoModelFactory):
    """One hour of a source's data-quality counters, for building alert histories."""

    class Meta:
        model = QualityCount

    source = factory.SubFactory(SourceFactory)
    hour = factory.LazyFunction(lambda: timezone.now().replace(minute=0, second=0, microsecond=0))
    event_name = "page"
    received = 0
    stored = factory.LazyAttribute(lambda count: count.received - count.rejected)
    rejected = 0


class ItemFactory(factory.django.DjangoModelFactory):
    """A recommendable item as the recommendations job would have learned it."""

    class Meta:
        model = Item
        django_get_or_create = ("item_id",)

    item_id = factory.Sequence(lambda n: f"item-{n}")
    name = factory.LazyAttribute(lambda item: item.item_id.title())
    category = "misc"
    price = 10.0
    url = factory.LazyAttribute(lambda item: f"/p/{item.item_id}/")
    popularity = 1.0
    interactions = 1


class StaticSegmentFactory(SegmentFactory):
    """A fixed list: no rule; members are added with MembershipFactory."""

    slug = factory.Sequence(lambda n: f"static-{n}")
    rule = factory.LazyFunction(dict)
    kind = SegmentKind.STATIC


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    profile = factory.SubFactory(ProfileFactory)
    segment = factory.SubFactory(SegmentFactory)
    entered_at = factory.LazyFunction(timezone.now)
    exited_at = None


class BlockImpressionFactory(EventFactory):
    """A ``block_impression`` event as the measurement contract defines it."""

    class Params:
        block = factory.SubFactory(BlockFactory)
        variant = ""
        holdout = False
        via = "ssr"

    name = "block_impression"
    properties = factory.LazyAttribute(  # type: ignore[assignment]
        lambda event: {
            "block_id": event.block.pk,
            "block_key": event.block.key,
            "slot": event.block.slot,
            "variant": event.variant,
            "holdout": event.holdout,
            "via": event.via,
        }
    )


class BlockClickFactory(BlockImpressionFactory):
    name = "block_clicked"
    via = "component"


class ConversionFactory(EventFactory):
    class Params:
        revenue = 0.0

    name = "order_completed"
    properties = factory.LazyAttribute(  # type: ignore[assignment]
        lambda event: {"revenue": event.revenue}
    )


class WebhookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Webhook

    name = factory.Sequence(lambda n: f"hook-{n}")
    url = "http://127.0.0.1:9/hook"
    secret = "s3cret"
