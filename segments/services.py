"""Writes for segments: saving definitions and recomputing memberships."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef, Q
from django.utils import timezone

from personalize.models import Event, Profile
from segments import profile_rows, selectors
from segments.definitions import (
    ChangedInputs,
    Definitions,
    ScoreRow,
    SegmentDefinition,
    current_definitions,
)
from segments.definitions import lookback as definitions_lookback
from segments.history import record_segment_sizes
from segments.models import (
    Membership,
    ProfileEvaluation,
    ProfileScore,
    Score,
    Segment,
    SegmentKind,
)
from segments.rules import (
    Evaluation,
    RuleError,
    evaluate,
    referenced_events,
    rule_from_json,
    rule_to_json,
)
from segments.rules.evaluate import ScoreEvaluation, evaluate_score
from segments.rules.schema import criteria_from_json, criteria_to_json
from segments.rules.tree import (
    InSegment,
    Rule,
    reads_every_event,
    referenced_scores,
    referenced_segments,
)
from segments.signals import SegmentsChanged, memberships_changed
from segments.static import LISTED, static_rules_for_profile

logger = logging.getLogger(__name__)

# A recompute request older than this whose task never ran (a lost broker
# message, a crashed worker) is picked up by the scheduled sweep.
STALE_REQUEST_AFTER = timedelta(seconds=settings.SEGMENT_STALE_REQUEST_SECONDS)
SWEEP_BATCH = 500
# Profiles per transaction when a whole segment is recomputed.
SEGMENT_CHUNK = 1000


@dataclass(frozen=True)
class MembershipChange:
    profile_id: int
    entered: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    next_evaluation_at: datetime | None = None

    @property
    def changed(self) -> bool:
        return bool(self.entered or self.exited)


# --- definitions ----------------------------------------------------------------------


def _references(rules: Iterable[Rule]) -> set[str]:
    """Graph nodes a rule points at: ``segment:<slug>`` and ``score:<slug>``."""
    found: set[str] = set()
    for rule in rules:
        found |= {f"segment:{slug}" for slug in referenced_segments(rule)}
        found |= {f"score:{slug}" for slug in referenced_scores(rule)}
    return found


def _reference_graph(*, skip: str) -> dict[str, set[str]]:
    """Every other segment and score with what it refers to (``skip`` is being saved)."""
    graph: dict[str, set[str]] = {}
    for slug, data, kind in Segment.objects.values_list("slug", "rule", "kind"):
        if f"segment:{slug}" != skip:
            # A static segment is a leaf: a fixed member list refers to nothing.
            static = kind == SegmentKind.STATIC
            graph[f"segment:{slug}"] = set() if static else _references([rule_from_json(data)])
    for slug, data in Score.objects.values_list("slug", "criteria"):
        if f"score:{slug}" != skip:
            rules = [c.rule for c in criteria_from_json(data).criteria]
            graph[f"score:{slug}"] = _references(rules)
    return graph


def _check_references(node: str, rules: Iterable[Rule], field: str) -> None:
    graph = _reference_graph(skip=node)
    graph[node] = _references(rules)
    for missing in sorted(graph[node] - set(graph)):
        kind, slug = missing.split(":", 1)
        raise RuleError(field, f"refers to {kind} {slug!r}, which does not exist")
    _reject_cycles(node, graph, field)


def validate_segment_rule(*, slug: str, rule: Any) -> dict[str, Any]:
    """The canonical JSON of ``rule``; raises RuleError naming the field at fault."""
    parsed = rule_from_json(rule)
    _check_references(f"segment:{slug}", [parsed], "rule")
    return rule_to_json(parsed)


def validate_score_criteria(*, slug: str, criteria: Any) -> list[dict[str, Any]]:
    """The canonical JSON of a score's criteria; raises RuleError naming the field."""
    definition = criteria_from_json(criteria)
    _check_references(f"score:{slug}", [c.rule for c in definition.criteria], "criteria")
    return criteria_to_json(definition)


def _reject_cycles(start: str, graph: dict[str, set[str]], field: str) -> None:
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            loop = [*path[path.index(node) :], node]
            cycle = " → ".join(
                n.split(":", 1)[1] if n.startswith("segment:") else f"score({n.split(':', 1)[1]})"
                for n in loop
            )
            what = (
                "segments" if all(n.startswith("segment:") for n in loop) else "segments and scores"
            )
            raise RuleError(field, f"{what} refer to each other in a cycle: {cycle}")
        path.append(node)
        for child in sorted(graph.get(node, set())):
            visit(child)
        path.pop()

    visit(start)


@transaction.atomic
def segment_save(
    *, slug: str, name: str, rule: Any, description: str = "", is_active: bool = True
) -> Segment:
    """Create or update a segment by slug, after validating its rule."""
    if Segment.objects.filter(slug=slug, kind=SegmentKind.STATIC).exists():
        raise RuleError("rule", f"segment {slug!r} is static: its members come from a list")
    canonical = validate_segment_rule(slug=slug, rule=rule)
    segment, _ = Segment.objects.update_or_create(
        slug=slug,
        defaults={
            "name": name,
            "rule": canonical,
            "description": description,
            "is_active": is_active,
            "updated_at": timezone.now(),
        },
    )
    request_segment_recompute(segment_id=segment.pk)
    return segment


@transaction.atomic
def score_save(
    *, slug: str, name: str, criteria: Any, description: str = "", is_active: bool = True
) -> Score:
    """Create or update a weighted score by slug, after validating its criteria."""
    canonical = validate_score_criteria(slug=slug, criteria=criteria)
    score, _ = Score.objects.update_or_create(
        slug=slug,
        defaults={
            "name": name,
            "criteria": canonical,
            "description": description,
            "is_active": is_active,
            "updated_at": timezone.now(),
        },
    )
    request_score_recompute(score=score)
    return score


def request_score_recompute(*, score: Score) -> None:
    """A changed score: every profile is due (the sweep recomputes them in batches, which
    stores the new values), and segments comparing the score are recomputed in batch."""
    now = timezone.now()
    Profile.objects.filter(
        Q(next_evaluation_at__isnull=True) | Q(next_evaluation_at__gt=now)
    ).update(next_evaluation_at=now)
    for segment in Segment.objects.filter(is_active=True).only("id", "rule"):
        if score.slug in referenced_scores(segment.parsed_rule()):
            request_segment_recompute(segment_id=segment.pk)


# --- recompute ------------------------------------------------------------------------


# Profiles per recompute task (see _enqueue_recomputes).
RECOMPUTE_TASK_PROFILES = 50


def request_recompute(
    *, profile_ids: Iterable[int], inputs: Mapping[int, ChangedInputs] | None = None
) -> None:
    """Ask for the memberships of these profiles to be recomputed after commit.

    ``inputs`` says, per profile, what changed (event names, traits): the
    recompute then re-evaluates only the segments and scores those can affect.
    A profile without an entry (a merge, a purge) gets everything re-evaluated.

    Bursts coalesce: a profile that already has a request waiting is not queued
    again, but its reasons are merged into the waiting one; the task clears the
    request when it starts, so events arriving during a recompute queue exactly
    one more.
    """
    ids = sorted(set(profile_ids))
    if not ids:
        return
    now = timezone.now()
    # The rows are locked in pk order (two batches cannot deadlock), which also
    # serializes the read-merge-write of the pending reasons with other requests
    # and with the recompute that consumes them: no reason is lost.
    with transaction.atomic(savepoint=False):
        waiting = dict(
            Profile.objects.select_for_update()
            .filter(id__in=ids)
            .order_by("pk")
            .values_list("pk", "recompute_requested_at")
        )
        claimed = [pid for pid, requested in waiting.items() if requested is None]
        if claimed:
            Profile.objects.filter(id__in=claimed).update(recompute_requested_at=now)
        record_pending_inputs(
            inputs={pid: (inputs or {}).get(pid) for pid in waiting},
        )
    if claimed:
        transaction.on_commit(partial(_enqueue_recomputes, claimed))


def record_pending_inputs(*, inputs: Mapping[int, ChangedInputs | None]) -> None:
    """Merge why these profiles need a recompute into what is already pending (None:
    the reason is unknown, re-evaluate everything). Call with the profiles locked."""
    unknown = sorted(pid for pid, reason in inputs.items() if reason is None)
    if unknown:
        # Everything is re-evaluated: nothing to merge, a plain upsert.
        ProfileEvaluation.objects.bulk_create(
            [ProfileEvaluation(profile_id=pid, pending_all=True) for pid in unknown],
            update_conflicts=True,
            unique_fields=["profile"],
            update_fields=["pending_all"],
        )
    known = {pid: reason for pid, reason in inputs.items() if reason is not None}
    if not known:
        return
    existing = {
        pid: (names, traits)
        for pid, names, traits in ProfileEvaluation.objects.filter(
            profile_id__in=list(known)
        ).values_list("profile_id", "pending_events", "pending_traits")
    }
    rows = []
    for profile_id, reason in sorted(known.items()):
        names, traits = existing.get(profile_id, ([], False))
        # Only the pending fields are written on conflict; the rest are defaults for a new row.
        rows.append(
            ProfileEvaluation(
                profile_id=profile_id,
                pending_events=sorted(set(names) | reason.event_names),
                pending_traits=traits or reason.traits,
            )
        )
    ProfileEvaluation.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["profile"],
        update_fields=["pending_events", "pending_traits"],
    )


def _enqueue_recomputes(profile_ids: list[int]) -> None:
    """Queue the recomputes, a list of profiles per task; never fail the caller,
    whose events are already committed.

    One broker message per ``RECOMPUTE_TASK_PROFILES`` profiles, not per profile:
    a 500-event batch names a few hundred profiles, and publishing each alone
    cost the request more than storing its events. Several workers still share
    a burst, a list each.

    The request stays recorded on each profile (``recompute_requested_at``): if
    the broker is down, or an eager recompute fails, the scheduled sweep picks
    the profile up once the request is stale. That column is our outbox.
    """
    from segments.tasks import recompute_profiles

    for offset in range(0, len(profile_ids), RECOMPUTE_TASK_PROFILES):
        chunk = profile_ids[offset : offset + RECOMPUTE_TASK_PROFILES]
        try:
            recompute_profiles.delay(chunk)
        except Exception:
            logger.exception(
                "could not queue the recompute of %d profiles; the sweep will retry", len(chunk)
            )


def recompute_profile(*, profile_id: int, now: datetime | None = None) -> MembershipChange:
    """Re-evaluate the profile's segments and scores and write the differences.

    When the pending request says what changed (event names, traits), only the
    segments and scores those inputs can affect are evaluated; the others keep
    their memberships, values and next change times. Everything is evaluated
    when the reason is unknown (a direct call, a merge, a stale request from
    before this bookkeeping), when the profile is due (time has come for some
    segment, or a batch recompute marked it), and when the definitions changed
    since its last evaluation. Either way the result equals a full evaluation.
    """
    definitions = current_definitions()
    with transaction.atomic():
        locked = profile_rows.lock_profile(profile_id)
        if locked is None:
            return MembershipChange(profile_id=profile_id)
        # "now" is read under the profile lock, so no event committed before it is missed.
        now = now or timezone.now()
        segments, scores, full = _to_evaluate(locked, definitions, now)
        plan = definitions.plan_for(segments, scores)
        snapshot = selectors.snapshot_for_plan(
            profile=Profile(pk=profile_id, traits=locked.traits), plan=plan, now=now
        )
        # Its open memberships, with their segments: rule-based ones may change below;
        # each active static one it is listed in is a constant rule that holds (a static
        # segment it is not in is unknown to the engine: it has no members).
        open_memberships: dict[int, int] = {}
        slug_of: dict[int, str] = {}
        static_rules: dict[str, Rule] = {}
        for membership in locked.memberships:
            if membership.kind == SegmentKind.STATIC:
                if membership.segment_active:
                    static_rules[membership.slug] = LISTED
            else:
                open_memberships[membership.segment_id] = membership.id
                slug_of[membership.segment_id] = membership.slug
        rules_by_slug = {**definitions.rules_by_slug, **static_rules}
        scores_by_slug = definitions.scores_by_slug
        results: dict[int, Evaluation] = {
            d.id: evaluate(
                d.rule, snapshot, now, rules_by_slug, scores=scores_by_slug, explain=False
            )
            for d in segments
        }
        score_results = {
            row.id: evaluate_score(row.slug, snapshot, now, rules_by_slug, scores=scores_by_slug)
            for row in scores
        }
        if score_results:
            _store_scores(profile_id=profile_id, results=score_results, now=now, prune=full)

        entered = [d for d in segments if results[d.id].matched and d.id not in open_memberships]
        evaluated_ids = set(results)
        active_ids = {d.id for d in definitions.segments}
        # A full evaluation also closes memberships of segments no longer active.
        exited_ids = [
            segment_id
            for segment_id in open_memberships
            if (segment_id in evaluated_ids and not results[segment_id].matched)
            or (full and segment_id not in active_ids)
        ]
        by_id = {d.id: d for d in definitions.segments}

        def reasons(segment_id: int) -> list[dict[str, Any]]:
            # Explained only for the memberships that change: the rest never show it.
            if segment_id not in by_id:
                return []
            return _reasons(
                evaluate(
                    by_id[segment_id].rule, snapshot, now, rules_by_slug, scores=scores_by_slug
                )
            )

        profile_rows.open_memberships_insert(
            profile_id=profile_id, reasons={d.id: reasons(d.id) for d in entered}, now=now
        )
        profile_rows.close_memberships(
            reasons=[
                (
                    open_memberships[segment_id],
                    reasons(segment_id) if segment_id in evaluated_ids else [],
                )
                for segment_id in exited_ids
            ],
            now=now,
        )
        next_changes = _next_changes(
            kept={} if full else locked.next_changes,
            segments=results,
            scores=score_results,
        )
        moments = [datetime.fromisoformat(value) for value in next_changes.values()]
        next_evaluation_at = min(moments) if moments else None
        profile_rows.record_evaluation(
            profile_id=profile_id,
            next_evaluation_at=next_evaluation_at,
            next_changes=next_changes,
            definitions_version=definitions.version,
        )

        slug_of.update((d.id, d.slug) for d in entered)
        current_ids = (set(open_memberships) - set(exited_ids)) | {d.id for d in entered}
        change = MembershipChange(
            profile_id=profile_id,
            entered=sorted(d.slug for d in entered),
            exited=sorted(slug_of[i] for i in exited_ids),
            current=sorted([slug_of[i] for i in current_ids] + list(static_rules)),
            next_evaluation_at=next_evaluation_at,
        )
        if change.changed:
            transaction.on_commit(partial(_announce, change))
    return change


def _to_evaluate(
    profile: profile_rows.ProfileForRecompute, definitions: Definitions, now: datetime
) -> tuple[list[SegmentDefinition], list[ScoreRow], bool]:
    """The segments and scores to evaluate, and whether that is all of them."""
    known_reason = not profile.pending_all and (profile.pending_events or profile.pending_traits)
    due = profile.next_evaluation_at is not None and profile.next_evaluation_at <= now
    if known_reason and not due and profile.definitions_version == definitions.version:
        inputs = ChangedInputs(
            event_names=frozenset(profile.pending_events), traits=profile.pending_traits
        )
        segments, scores = definitions.affected(inputs)
        return segments, scores, False
    return definitions.segments, definitions.scores, True


def _next_changes(
    *,
    kept: Mapping[str, str],
    segments: Mapping[int, Evaluation],
    scores: Mapping[int, ScoreEvaluation],
) -> dict[str, str]:
    """Each segment's and score's next change time: the new ones for those just
    evaluated, the kept ones for the others."""
    found = dict(kept)
    evaluated = [(f"segment:{i}", r.next_change_at) for i, r in segments.items()]
    evaluated += [(f"score:{i}", r.next_change_at) for i, r in scores.items()]
    for key, moment in evaluated:
        if moment is None:
            found.pop(key, None)
        else:
            found[key] = moment.isoformat()
    return found


def _store_scores(
    *, profile_id: int, results: dict[int, ScoreEvaluation], now: datetime, prune: bool
) -> None:
    """Upsert the profile's values of these scores; with ``prune`` (every active score
    evaluated) drop the values of scores no longer active."""
    rows = [
        ProfileScore(
            profile_id=profile_id,
            score_id=score_id,
            value=result.value,
            criteria=[{"text": c.text, "held": c.held} for c in result.criteria],
            updated_at=now,
        )
        for score_id, result in results.items()
        if result.value is not None
    ]
    stale = ProfileScore.objects.filter(profile_id=profile_id).exclude(
        score_id__in=[row.score_id for row in rows]
    )
    if not prune:
        stale = stale.filter(score_id__in=list(results))
    stale.delete()
    ProfileScore.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["profile", "score"],
        update_fields=["value", "criteria", "updated_at"],
    )


def _reasons(evaluation: Evaluation) -> list[dict[str, Any]]:
    return [{"text": c.text, "held": c.held} for c in evaluation.conditions]


def _announce(change: MembershipChange) -> None:
    memberships_changed.send(
        sender=MembershipChange,
        changes=[
            SegmentsChanged(
                profile_id=change.profile_id,
                entered=change.entered,
                exited=change.exited,
                segments=change.current,
            )
        ],
    )


def due_profile_ids(*, now: datetime, limit: int = SWEEP_BATCH) -> list[int]:
    """Profiles whose memberships may have changed with time, or whose request went stale."""
    due = Profile.objects.filter(
        Q(next_evaluation_at__lte=now) | Q(recompute_requested_at__lte=now - STALE_REQUEST_AFTER)
    )
    return list(due.order_by("next_evaluation_at").values_list("id", flat=True)[:limit])


def recompute_due_profiles(*, now: datetime | None = None) -> int:
    """Flip memberships whose time has come; returns how many profiles were recomputed."""
    now = now or timezone.now()
    profile_ids = due_profile_ids(now=now)
    for profile_id in profile_ids:
        recompute_profile(profile_id=profile_id, now=now)
    return len(profile_ids)


# --- batch: a whole segment at once --------------------------------------------------------


@dataclass(frozen=True)
class SegmentRecompute:
    segment: str
    members: int
    entered: int
    exited: int


def recompute_segment(
    *,
    segment_id: int,
    now: datetime | None = None,
    chunk_size: int = SEGMENT_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> SegmentRecompute:
    """Recompute one segment for every profile with its set-based SQL (the batch path).

    Used when a segment is created or its rule changes. One query finds the
    members; the differences are then written in short transactions of
    ``chunk_size`` profiles, each first locking its profiles in primary-key order,
    the lock a per-profile recompute takes first: the two paths wait for each
    other instead of deadlocking, and workers are never blocked for the whole
    segment. ``progress(done, total)`` is called after each chunk.

    Profiles whose events the rule reads are then marked due, so the per-profile
    path fills in the moment each one's truth can next change with time (a
    window lapsing later on), and corrects any profile whose events arrived
    between the query and the write.
    """
    now = now or timezone.now()
    segment = Segment.objects.get(pk=segment_id)
    if segment.kind == SegmentKind.STATIC:
        # A fixed list: rules never add or remove its members.
        members = Membership.objects.filter(segment_id=segment_id, exited_at__isnull=True)
        return SegmentRecompute(segment=segment.slug, members=members.count(), entered=0, exited=0)
    definitions = {d.slug: d for d in selectors.active_segment_definitions()}
    scores = {row.slug: row.definition for row in selectors.active_score_definitions()}
    rule = segment.parsed_rule()
    if segment.is_active:
        member_ids = selectors.segment_member_ids(
            rule=rule,
            segments={slug: d.rule for slug, d in definitions.items()},
            now=now,
            scores=scores,
        )
    else:
        member_ids = set()
    reason = [{"text": f"batch recompute of {segment.name}", "held": True}]
    current = set(
        Membership.objects.filter(segment_id=segment_id, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    )
    entering = member_ids - current
    changed = sorted(entering | (current - member_ids))
    entered = exited = 0
    for start in range(0, len(changed), chunk_size):
        chunk = changed[start : start + chunk_size]
        with transaction.atomic():
            alive = list(
                Profile.objects.select_for_update()
                .filter(pk__in=chunk)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            enter_ids = [pid for pid in alive if pid in entering]
            exit_ids = [pid for pid in alive if pid not in entering]
            _open_memberships(segment_id=segment_id, profile_ids=enter_ids, now=now, reason=reason)
            Membership.objects.filter(
                segment_id=segment_id, exited_at__isnull=True, profile_id__in=exit_ids
            ).update(exited_at=now, exit_reason=reason)
            transaction.on_commit(
                partial(
                    _announce_segment_changes,
                    segment.slug,
                    entered=enter_ids,
                    exited=exit_ids,
                )
            )
        entered += len(enter_ids)
        exited += len(exit_ids)
        if progress is not None:
            progress(min(start + chunk_size, len(changed)), len(changed))
    _mark_readers_due(rule, now=now, chunk_size=chunk_size * 5)
    record_segment_sizes(segment_ids=[segment_id], now=now)
    return SegmentRecompute(
        segment=segment.slug, members=len(member_ids), entered=entered, exited=exited
    )


def _open_memberships(
    *, segment_id: int, profile_ids: list[int], now: datetime, reason: list[dict[str, Any]]
) -> None:
    """Open the segment's membership for each of these profiles, one statement.

    Plain SQL: the reason is the same for every row and is sent once, where
    ``bulk_create`` builds and encodes a row object per profile (most of a batch
    recompute's time). A worker may have opened the same membership meanwhile: the
    unique constraint keeps one, and that is the answer.
    """
    if not profile_ids:
        return
    quote = connection.ops.quote_name
    memberships: Any = Membership._meta
    profiles: Any = Profile._meta

    def column(name: str) -> str:
        return quote(memberships.get_field(name).column)

    reasons = memberships.get_field("entry_reason")
    placeholders = profile_rows.sql_placeholders(len(profile_ids))
    profile_pk = quote(profiles.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(memberships.db_table)} ({column('profile')},"
            f" {column('segment')}, {column('entered_at')}, {column('entry_reason')},"
            f" {column('exit_reason')}) SELECT {profile_pk}, %s, %s, %s, %s"
            f" FROM {quote(profiles.db_table)} WHERE {profile_pk} IN ({placeholders})"
            " ON CONFLICT DO NOTHING",
            [
                segment_id,
                connection.ops.adapt_datetimefield_value(now),
                reasons.get_db_prep_save(reason, connection),
                reasons.get_db_prep_save([], connection),
                *profile_ids,
            ],
        )


def _mark_readers_due(rule: Rule, *, now: datetime, chunk_size: int) -> None:
    """Profiles whose history ``rule`` reads get re-evaluated by the sweep.

    Set-based, over ranges of ``chunk_size`` profile ids so that no statement locks
    many profiles for long; a profile already due keeps its earlier moment.
    """
    profiles = Profile.objects.filter(
        Q(next_evaluation_at__isnull=True) | Q(next_evaluation_at__gt=now)
    )
    if not (reads_every_event(rule) or referenced_scores(rule)):
        # Sessions, context and scores can read any event and reach further back:
        # everyone. Otherwise the profiles with an event the rule names, in reach.
        names = referenced_events(rule)
        if not names:
            return
        events = Event.objects.filter(profile=OuterRef("pk"), name__in=sorted(names))
        lookback = definitions_lookback([rule])
        if lookback is not None:
            events = events.filter(timestamp__gt=now - lookback)
        profiles = profiles.filter(Exists(events))
    bounds = Profile.objects.aggregate(first=Min("pk"), last=Max("pk"))
    if bounds["first"] is None:
        return
    for low in range(bounds["first"], bounds["last"] + 1, chunk_size):
        profiles.filter(pk__gte=low, pk__lt=low + chunk_size).update(next_evaluation_at=now)


def request_segment_recompute(*, segment_id: int) -> None:
    """Recompute a created or changed segment for everyone, after commit."""
    transaction.on_commit(partial(_enqueue_segment_recompute, segment_id))


def _enqueue_segment_recompute(segment_id: int) -> None:
    from segments.tasks import recompute_segment as recompute_segment_task

    try:
        recompute_segment_task.delay(segment_id)
    except Exception:
        # The segment is saved; `manage.py recompute_segments` (or the next save) catches up.
        logger.exception("could not queue the batch recompute of segment %s", segment_id)


def _announce_segment_changes(slug: str, *, entered: list[int], exited: list[int]) -> None:
    """One signal for a written chunk: receivers push to every profile in bulk."""
    current = selectors.current_segment_slugs_of(profile_ids=[*entered, *exited])
    changes = [
        SegmentsChanged(profile_id=pid, entered=[slug], exited=[], segments=current.get(pid, []))
        for pid in entered
    ] + [
        SegmentsChanged(profile_id=pid, entered=[], exited=[slug], segments=current.get(pid, []))
        for pid in exited
    ]
    if changes:
        memberships_changed.send(sender=SegmentRecompute, changes=changes)


def explain_profile(*, profile_id: int, segment: Segment, now: datetime) -> Evaluation:
    """Which of the segment's conditions hold for the profile now, with their values."""
    definitions = selectors.active_segment_definitions()
    rules = {d.slug: d.rule for d in definitions}
    rules.update(static_rules_for_profile(profile_id=profile_id))
    if segment.kind == SegmentKind.STATIC:
        # Its only condition: being on the list (read even when inactive).
        rules.update(static_rules_for_profile(profile_id=profile_id, segment_ids=[segment.pk]))
        rule: Rule = InSegment(slug=segment.slug)
    else:
        rule = segment.parsed_rule()
        rules[segment.slug] = rule
    score_rows = selectors.active_score_definitions()
    scores = {row.slug: row.definition for row in score_rows}
    profile = Profile.objects.get(pk=profile_id)
    snapshot = selectors.snapshot_for_rules(
        profile=profile, rules={**rules, **selectors.criteria_rules(score_rows)}, now=now
    )
    return evaluate(rule, snapshot, now, rules, scores=scores)
