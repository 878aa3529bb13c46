"""The active segments and scores, parsed once per process and per version, with
what each one reads: the incremental path re-evaluates only those whose inputs
changed (see docs/evaluation-paths.md).

The version is a fingerprint of every segment's and score's id, activity and
``updated_at`` (which every save through the services and the admin sets), read
with one small query: any process sees a save, an (de)activation or a deletion
on its next read, without a cache to invalidate.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection

from segments.models import Score, Segment, SegmentKind
from segments.rules import Rule, referenced_events, rule_from_json, uses_traits
from segments.rules.schema import criteria_from_json
from segments.rules.tree import (
    Aggregate,
    EventMeasure,
    Recency,
    ScoreDefinition,
    Sequence,
    SessionMeasure,
    Window,
    context_fields,
    measures,
    reads_every_event,
    referenced_scores,
    referenced_segments,
    walk,
)

# Call types that change a profile's traits.
TRAIT_CALLS = frozenset({"identify", "group"})


@dataclass(frozen=True)
class ChangedInputs:
    """Why a profile needs a recompute: the names of the events that arrived (a
    non-track call is named by its type: ``page``, ``identify``) and whether its
    traits may have changed."""

    event_names: frozenset[str] = frozenset()
    traits: bool = False

    @classmethod
    def of_call(cls, *, name: str, kind: str) -> ChangedInputs:
        return cls(event_names=frozenset({name}), traits=kind in TRAIT_CALLS)

    def __or__(self, other: ChangedInputs) -> ChangedInputs:
        return ChangedInputs(self.event_names | other.event_names, self.traits or other.traits)


@dataclass(frozen=True)
class Footprint:
    """What a segment or score reads, through the segments and scores it refers to."""

    event_names: frozenset[str]
    traits: bool
    # Sessions and context shortcuts change with events of any name.
    every_event: bool

    def touched_by(self, inputs: ChangedInputs) -> bool:
        return (
            (self.every_event and bool(inputs.event_names))
            or not self.event_names.isdisjoint(inputs.event_names)
            or (self.traits and inputs.traits)
        )


@dataclass(frozen=True)
class SegmentDefinition:
    id: int
    slug: str
    name: str
    rule: Rule


@dataclass(frozen=True)
class ScoreRow:
    id: int
    slug: str
    name: str
    definition: ScoreDefinition


@dataclass(frozen=True)
class SnapshotPlan:
    """What to load for a set of rules: event names, how far back (None: all of
    history), context shortcuts, and sessions (``sessions_since`` None: all)."""

    event_names: frozenset[str]
    lookback: timedelta | None
    context_fields: frozenset[str]
    reads_sessions: bool
    session_lookback: timedelta | None


def _reach(window: Window, extra: timedelta = timedelta(0)) -> timedelta | None:
    return None if window.oldest_age is None else window.oldest_age + extra


def _longest(reaches: Iterable[timedelta | None]) -> timedelta | None:
    longest = timedelta(0)
    for reach in reaches:
        if reach is None:
            return None
        longest = max(longest, reach)
    return longest


def lookback(rules: Iterable[Rule]) -> timedelta | None:
    """How far back events matter for ``rules``; None means all of history."""
    reaches: list[timedelta | None] = []
    for rule in rules:
        for node in walk(rule):
            if isinstance(node, Recency):
                return None
            if isinstance(node, Aggregate):
                reaches.append(_reach(node.window))
            elif isinstance(node, Sequence):
                reaches.append(_reach(node.window, node.within))
        reaches.extend(_reach(m.window) for m in measures(rule) if isinstance(m, EventMeasure))
    return _longest(reaches)


def session_lookback(rules: Iterable[Rule]) -> timedelta | None:
    """How far back session starts matter for ``rules``; None means all of history."""
    return _longest(
        _reach(m.window) for rule in rules for m in measures(rule) if isinstance(m, SessionMeasure)
    )


def snapshot_plan(rules: Iterable[Rule]) -> SnapshotPlan:
    listed = list(rules)
    names: set[str] = set()
    fields: set[str] = set()
    for rule in listed:
        names |= referenced_events(rule)
        fields |= context_fields(rule)
    reads_sessions = any(isinstance(m, SessionMeasure) for rule in listed for m in measures(rule))
    return SnapshotPlan(
        event_names=frozenset(names),
        lookback=lookback(listed),
        context_fields=frozenset(fields),
        reads_sessions=reads_sessions,
        session_lookback=session_lookback(listed) if reads_sessions else None,
    )


def segment_node(slug: str) -> str:
    return f"segment:{slug}"


def score_node(slug: str) -> str:
    return f"score:{slug}"


@dataclass
class Definitions:
    """One version of the active definitions, with per-node footprints and memoized
    answers to "which are affected by these inputs" and "what must be loaded"."""

    version: str
    segments: list[SegmentDefinition]
    scores: list[ScoreRow]
    rules_by_slug: dict[str, Rule] = field(init=False)
    scores_by_slug: dict[str, ScoreDefinition] = field(init=False)
    footprints: dict[str, Footprint] = field(init=False)
    read_anywhere: Footprint = field(init=False)
    _closures: dict[str, frozenset[str]] = field(init=False)
    _affected: dict[ChangedInputs, tuple[list[SegmentDefinition], list[ScoreRow]]] = field(
        init=False, default_factory=dict
    )
    _plans: dict[frozenset[str], SnapshotPlan] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rules_by_slug = {d.slug: d.rule for d in self.segments}
        self.scores_by_slug = {row.slug: row.definition for row in self.scores}
        self._closures = {}
        for d in self.segments:
            self._closures[segment_node(d.slug)] = self._closure(segment_node(d.slug))
        for row in self.scores:
            self._closures[score_node(row.slug)] = self._closure(score_node(row.slug))
        self.footprints = {
            node: self._footprint(closure) for node, closure in self._closures.items()
        }
        # What any of them reads, for the quick "can this call matter at all?".
        self.read_anywhere = Footprint(
            event_names=frozenset().union(*(f.event_names for f in self.footprints.values())),
            traits=any(f.traits for f in self.footprints.values()),
            every_event=any(f.every_event for f in self.footprints.values()),
        )

    def own_rules(self, node: str) -> list[Rule]:
        kind, slug = node.split(":", 1)
        if kind == "segment":
            rule = self.rules_by_slug.get(slug)
            return [] if rule is None else [rule]
        definition = self.scores_by_slug.get(slug)
        return [] if definition is None else [c.rule for c in definition.criteria]

    def _closure(self, start: str) -> frozenset[str]:
        """The node and every active segment and score it refers to, transitively."""
        seen: set[str] = set()
        todo = [start]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            for rule in self.own_rules(node):
                todo.extend(
                    segment_node(s) for s in referenced_segments(rule) if s in self.rules_by_slug
                )
                todo.extend(
                    score_node(s) for s in referenced_scores(rule) if s in self.scores_by_slug
                )
        return frozenset(seen)

    def _footprint(self, closure: frozenset[str]) -> Footprint:
        rules = [rule for node in closure for rule in self.own_rules(node)]
        names: set[str] = set()
        for rule in rules:
            names |= referenced_events(rule)
        return Footprint(
            event_names=frozenset(names),
            traits=any(uses_traits(rule) for rule in rules),
            every_event=any(reads_every_event(rule) for rule in rules),
        )

    def reads(self, inputs: ChangedInputs) -> bool:
        """Whether any active segment or score can change with these inputs."""
        return self.read_anywhere.touched_by(inputs)

    def affected(self, inputs: ChangedInputs) -> tuple[list[SegmentDefinition], list[ScoreRow]]:
        """The segments and scores whose truth these inputs can change: those that read
        them, directly or through a segment or score they refer to."""
        found = self._affected.get(inputs)
        if found is None:
            found = (
                [
                    d
                    for d in self.segments
                    if self.footprints[segment_node(d.slug)].touched_by(inputs)
                ],
                [r for r in self.scores if self.footprints[score_node(r.slug)].touched_by(inputs)],
            )
            if len(self._affected) < 1024:
                self._affected[inputs] = found
        return found

    def plan_for(
        self, segments: Iterable[SegmentDefinition], scores: Iterable[ScoreRow]
    ) -> SnapshotPlan:
        """What a snapshot must hold to evaluate these segments and scores."""
        nodes = frozenset(
            [*(segment_node(d.slug) for d in segments), *(score_node(r.slug) for r in scores)]
        )
        plan = self._plans.get(nodes)
        if plan is None:
            closure: set[str] = set()
            for node in nodes:
                closure |= self._closures[node]
            plan = snapshot_plan(rule for node in sorted(closure) for rule in self.own_rules(node))
            if len(self._plans) < 1024:
                self._plans[nodes] = plan
        return plan


@functools.cache
def _version_sql(vendor: str) -> str:
    """The version query for this database vendor (built once)."""
    quote = connection.ops.quote_name
    # The time as text: parsing fifty datetimes cost more than the query.
    selects = [
        f"SELECT '{kind}', {quote('id')}, {quote('is_active')},"
        f" CAST({quote('updated_at')} AS TEXT)"
        f" FROM {quote(model._meta.db_table)}"
        for kind, model in (("segment", Segment), ("score", Score))
    ]
    return " UNION ALL ".join(selects)


def definitions_version() -> str:
    """A fingerprint of every segment and score (active or not): changes with any save,
    (de)activation, creation or deletion.

    Plain SQL: it runs before every recompute, and building and compiling the ORM's
    union cost more than running it.
    """
    with connection.cursor() as cursor:
        cursor.execute(_version_sql(connection.vendor))
        rows = cursor.fetchall()
    text = "\n".join(
        f"{kind}:{pk}:{active}:{updated}"
        for kind, pk, active, updated in sorted(rows, key=lambda r: (r[0], r[1]))
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _load(version: str) -> Definitions:
    return Definitions(
        version=version,
        segments=[
            SegmentDefinition(id=s.id, slug=s.slug, name=s.name, rule=rule_from_json(s.rule))
            for s in Segment.objects.filter(is_active=True, kind=SegmentKind.DYNAMIC).only(
                "id", "slug", "name", "rule"
            )
        ],
        scores=[
            ScoreRow(id=s.id, slug=s.slug, name=s.name, definition=criteria_from_json(s.criteria))
            for s in Score.objects.filter(is_active=True).only("id", "slug", "name", "criteria")
        ],
    )


_lock = threading.Lock()
_current: dict[str, Any] = {}


def current_definitions() -> Definitions:
    """The active definitions, parsed once per version and process.

    The version is read first: if a save lands while loading, the copy is kept
    under the older version and the next call, seeing the new one, loads again.
    """
    version = definitions_version()
    with _lock:
        cached: Definitions | None = _current.get("definitions")
        if cached is not None and cached.version == version:
            return cached
    loaded = _load(version)
    with _lock:
        _current["definitions"] = loaded
    return loaded
