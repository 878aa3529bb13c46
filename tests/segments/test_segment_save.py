"""Saving segment definitions: only valid, resolvable, acyclic rules are stored."""

from __future__ import annotations

import pytest

from segments.models import Segment
from segments.rules import RuleError
from segments.services import segment_save, validate_segment_rule

TRAIT_RULE = {"type": "trait", "path": "plan", "op": "eq", "value": "gold"}


def test_segment_save_creates_then_updates_by_slug(db: None) -> None:
    segment_save(slug="gold", name="Gold", rule=TRAIT_RULE)

    updated = segment_save(
        slug="gold",
        name="Gold plan",
        rule={**TRAIT_RULE, "value": "platinum"},
        description="Top tier",
    )

    assert Segment.objects.count() == 1
    assert (updated.name, updated.description, updated.rule) == (
        "Gold plan",
        "Top tier",
        {"type": "trait", "path": "plan", "op": "eq", "value": "platinum"},
    )


def test_invalid_rule_is_rejected_with_the_path_and_nothing_is_stored(db: None) -> None:
    rule = {"type": "and", "rules": [TRAIT_RULE, {"type": "trait", "path": "x", "op": "bogus"}]}

    with pytest.raises(RuleError) as caught:
        segment_save(slug="broken", name="Broken", rule=rule)

    assert caught.value.path == "rules[1].op"
    assert Segment.objects.count() == 0


def test_reference_to_an_unknown_segment_is_rejected(db: None) -> None:
    with pytest.raises(RuleError) as caught:
        segment_save(slug="fans", name="Fans", rule={"type": "segment", "slug": "ghosts"})

    assert (caught.value.path, caught.value.reason) == (
        "rule",
        "refers to segment 'ghosts', which does not exist",
    )
    assert Segment.objects.count() == 0


def test_composition_cycle_is_rejected_and_the_old_rule_kept(db: None) -> None:
    segment_save(slug="a", name="A", rule=TRAIT_RULE)
    segment_save(slug="b", name="B", rule={"type": "segment", "slug": "a", "member": True})

    with pytest.raises(RuleError) as caught:
        segment_save(slug="a", name="A", rule={"type": "segment", "slug": "b", "member": True})

    assert caught.value.reason == "segments refer to each other in a cycle: a → b → a"
    assert Segment.objects.get(slug="a").rule == TRAIT_RULE


def test_segment_referring_to_itself_is_a_cycle(db: None) -> None:
    with pytest.raises(RuleError) as caught:
        validate_segment_rule(slug="loop", rule={"type": "segment", "slug": "loop"})

    assert caught.value.reason == "segments refer to each other in a cycle: loop → loop"


def test_valid_rule_is_stored_in_canonical_form(db: None) -> None:
    segment_save(slug="a", name="A", rule=TRAIT_RULE)

    saved = segment_save(slug="b", name="B", rule={"type": "segment", "slug": " a "})

    assert saved.rule == {"type": "segment", "slug": "a", "member": True}
