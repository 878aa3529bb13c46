"""Tracking plans: a JSON Schema per event, checked as messages arrive.

A source's plan is a JSON object::

    {
      "track": {"Order Completed": {<schema for properties>}, ...},
      "identify": {<schema for traits>},
      "page": {<schema for properties>},
      "screen": {<schema for properties>}
    }

Every schema is JSON Schema Draft 2020-12. A violation either blocks the
message (quarantined like any invalid message) or flags it (stored, with its
violations kept on the event), as the source is configured. Track events the
plan does not name follow the source's separate "unplanned events" policy.

No database access here: the plan is compiled once per plan version (an LRU
cache keyed by the plan's canonical JSON), so a batch of 2,500 events compiles
its validators at most once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaViolation

from personalize.tracking import MessageError, TrackedMessage, Violation

if TYPE_CHECKING:
    from personalize.models import Source

# Which part of a message each plan section describes.
SECTIONS = {
    "track": "properties",
    "identify": "traits",
    "page": "properties",
    "screen": "properties",
}
MODE_BLOCK = "block"
MODE_FLAG = "flag"
UNPLANNED_ALLOW = "allow"
# Violations reported per message: enough to fix the data, bounded for storage.
MAX_VIOLATIONS = 20


class PlanViolation(MessageError):
    """A message that breaks its source's plan, in block mode: rejected with every reason."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        first = violations[0]
        super().__init__(first.field, first.reason)
        self.violations = tuple(violations)


def _schema_error(where: str, error: SchemaError) -> ValidationError:
    path = "/".join(str(part) for part in error.absolute_path)
    at = f" (at {path})" if path else ""
    return ValidationError(f"{where}: {error.message}{at}")


def validate_tracking_plan(plan: Any) -> None:
    """Reject a malformed plan, naming the event whose schema is wrong (a model field validator)."""
    if plan in (None, {}):
        return
    if not isinstance(plan, dict):
        raise ValidationError("The tracking plan must be a JSON object.")
    unknown = sorted(set(plan) - set(SECTIONS))
    if unknown:
        raise ValidationError(
            f"Unknown tracking plan key(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(SECTIONS)}."
        )
    track = plan.get("track", {})
    if not isinstance(track, dict):
        raise ValidationError('"track" must map event names to JSON Schemas.')
    for name, schema in track.items():
        if not name.strip():
            raise ValidationError('"track": an event name must not be empty.')
        _check_schema(f'track event "{name}"', schema)
    for section in ("identify", "page", "screen"):
        if section in plan:
            _check_schema(f'"{section}" schema', plan[section])


def _check_schema(where: str, schema: Any) -> None:
    if not isinstance(schema, dict | bool):
        raise ValidationError(f"{where}: a JSON Schema must be an object or a boolean.")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise _schema_error(where, exc) from None


def _field_path(prefix: str, error: SchemaViolation) -> str:
    path = prefix
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _violations(prefix: str, validator: Draft202012Validator, instance: Any) -> list[Violation]:
    found: list[Violation] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        base = _field_path(prefix, error)
        if error.validator == "required" and isinstance(error.instance, dict):
            # One error per missing key; name the key itself, so "missing" can be counted.
            missing = [k for k in error.validator_value if k not in error.instance]
            for key in missing:
                violation = Violation(f"{base}.{key}", error.message, "required")
                if violation.field not in {v.field for v in found}:
                    found.append(violation)
                    break
            continue
        found.append(Violation(base, error.message, str(error.validator)))
    return found[:MAX_VIOLATIONS]


@dataclass(frozen=True)
class CompiledPlan:
    """A plan with its validators built, plus the source's policies."""

    track: Mapping[str, Draft202012Validator]
    sections: Mapping[str, Draft202012Validator]
    mode: str
    unplanned: str

    @property
    def empty(self) -> bool:
        return not self.track and not self.sections

    def check(self, message: TrackedMessage) -> list[Violation]:
        """Every way ``message`` breaks the plan; empty when it conforms."""
        if self.empty:
            return []
        if message.type == "track":
            validator = self.track.get(message.name)
            if validator is None:
                if self.unplanned == UNPLANNED_ALLOW:
                    return []
                return [
                    Violation("event", f"{message.name!r} is not in the tracking plan", "unplanned")
                ]
            return _violations("properties", validator, message.properties)
        validator = self.sections.get(message.type)
        if validator is None:
            return []
        if message.type == "identify":
            return _violations("traits", validator, message.traits)
        return _violations("properties", validator, message.properties)

    def apply(self, message: TrackedMessage) -> TrackedMessage:
        """The message with its violations attached, or :class:`PlanViolation` when blocked."""
        violations = self.check(message)
        if not violations:
            return message
        unplanned = violations[0].rule == "unplanned"
        blocking = self.unplanned if unplanned else self.mode
        if blocking == MODE_BLOCK:
            raise PlanViolation(violations)
        return dataclasses.replace(message, violations=tuple(violations))


def _validator(schema: Any) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@functools.lru_cache(maxsize=256)
def _compile(plan_json: str) -> tuple[dict[str, Draft202012Validator], dict[str, Any]]:
    plan = json.loads(plan_json)
    track = {name: _validator(schema) for name, schema in (plan.get("track") or {}).items()}
    sections = {s: _validator(plan[s]) for s in ("identify", "page", "screen") if s in plan}
    return track, sections


def compile_plan(plan: Any, *, mode: str, unplanned: str) -> CompiledPlan:
    """Validators for ``plan``, built once per distinct plan and reused by every batch."""
    if not plan:
        return CompiledPlan(track={}, sections={}, mode=mode, unplanned=unplanned)
    track, sections = _compile(json.dumps(plan, sort_keys=True, separators=(",", ":")))
    return CompiledPlan(track=track, sections=sections, mode=mode, unplanned=unplanned)


def plan_for(source: Source) -> CompiledPlan:
    return compile_plan(
        source.tracking_plan, mode=source.plan_mode, unplanned=source.unplanned_events
    )


def compiled_plan_count() -> int:
    """How many distinct plans have been compiled in this process (for tests and metrics)."""
    return _compile.cache_info().misses


def violations_payload(violations: Iterable[Violation]) -> list[dict[str, str]]:
    return [{"field": v.field, "reason": v.reason, "rule": v.rule} for v in violations]
