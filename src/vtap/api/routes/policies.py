"""TAP policy routes. Validation lives in the model, persistence in the store, deployment in
the controller's policy service: handlers only translate between HTTP and those."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from vtap.api.auditing import policy_record, record
from vtap.api.auth import Operator
from vtap.api.deps import PoliciesDep
from vtap.api.ofctl import rules_report
from vtap.api.schemas import PolicyRules, PolicyStats
from vtap.domain.policy import Policy, PolicyPatch, PolicySpec, PolicyStatus
from vtap.store.auditlog import Change
from vtap.store.base import (
    BatchConflict,
    DuplicateName,
    DuplicatePolicy,
    PolicyNotFound,
    ReplacePlan,
    VersionMismatch,
)

router = APIRouter(prefix="/policies", tags=["policies"])

_NOT_FOUND = {404: {"description": "No policy with this id"}}
_CONFLICT = {409: {"description": "Same match and monitor (or name) as an existing policy"}}
_PRECONDITION = {412: {"description": "If-Match: the policy changed since that ETag was read"}}


def _body_error(exc: ValidationError) -> RequestValidationError:
    """A model's validation error, located in the request body (as FastAPI's own are)."""
    errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
    return RequestValidationError(errors)


def _conflict(exc: DuplicatePolicy | DuplicateName) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))


def _not_found(exc: PolicyNotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))


@router.post(
    dependencies=[Operator],
    path="",
    status_code=status.HTTP_201_CREATED,
    response_model=Policy,
    responses=_CONFLICT,
)
async def create_policy(spec: PolicySpec, policies: PoliciesDep, request: Request) -> Policy:
    """Create a policy. The answer comes after the first install attempt, so `status` is
    usually already `active` (or `pending` with the reason, e.g. an undiscovered monitor)."""
    try:
        created = await policies.create(spec)
    except (DuplicatePolicy, DuplicateName) as exc:
        raise _conflict(exc) from exc
    await record(request, [("policy.create", f"policy {created.id}", None, policy_record(created))])
    return created


MAX_BATCH = 100_000


class PolicyBatch(BaseModel):
    """Policies created together: all or none, installed in one round."""

    policies: list[PolicySpec] = Field(min_length=1, max_length=MAX_BATCH)


# PolicyBatch's schema for /docs (the route reads the body itself), its items pointing at the
# PolicySpec schema the create route already publishes.
BATCH_SCHEMA = PolicyBatch.model_json_schema(ref_template="#/components/schemas/{model}")
BATCH_SCHEMA.pop("$defs", None)


@router.post(
    dependencies=[Operator],
    path="/bulk",
    status_code=status.HTTP_201_CREATED,
    response_model=list[Policy],
    responses={
        409: {"description": "An item clashes with a stored policy or another item"},
        422: {"description": "An item is invalid: `loc` names `policies.<index>.<field>`"},
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}
    },
)
async def create_policies(request: Request, policies: PoliciesDep) -> Response:
    """Create many policies at once (e.g. loading a file). Nothing is created if any item is
    invalid (422 names `policies.<index>.<field>`) or clashes (409 names `policies[<index>]`).
    The answer comes after the install round, or after 5 s with the rest still `pending`.

    Parsing, checking and answering 10,000 policies takes a few hundred milliseconds of CPU:
    that work runs in a worker thread, so switches and other clients are not kept waiting."""
    raw = await request.body()
    try:
        batch = await asyncio.to_thread(_parse_batch, raw)
    except ValidationError as exc:
        raise _body_error(exc) from exc
    try:
        created = await policies.create_many(batch.policies)
    except BatchConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    changes = await asyncio.to_thread(
        lambda: [("policy.create", f"policy {p.id}", None, policy_record(p)) for p in created]
    )
    await record(request, changes)
    body = await asyncio.to_thread(_dump_policies, created)
    return Response(body, status_code=status.HTTP_201_CREATED, media_type="application/json")


_SPEC = TypeAdapter(PolicySpec)
_POLICY = TypeAdapter(Policy)


def _parse_batch(raw: bytes) -> PolicyBatch:
    """PolicyBatch from a request body, checked item by item (worker thread). One validation
    of 50,000 items is one long call that holds the interpreter (the event loop stalled half a
    second); item by item, the loop gets its turn between items. Errors are located as a
    whole-batch validation would locate them (`policies.<index>.<field>`)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return PolicyBatch.model_validate_json(raw)  # raises the usual json_invalid error
    items = data.get("policies") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH or len(data) != 1:
        return PolicyBatch.model_validate(data)  # raises with the usual location
    specs: list[PolicySpec] = []
    errors: list[Any] = []
    for index, item in enumerate(items):
        try:
            specs.append(_SPEC.validate_python(item))
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(e["type"], _literal(e["msg"])),
                        loc=("policies", index, *e["loc"]),
                        input=e["input"],
                    )
                )
    if errors:
        raise ValidationError.from_exception_data("PolicyBatch", errors)
    return PolicyBatch.model_construct(policies=specs)


def _literal(message: str) -> str:
    """A message PydanticCustomError takes as it is (braces would be read as placeholders)."""
    return message.replace("{", "{{").replace("}", "}}")


def _dump_policies(policies: list[Policy]) -> bytes:
    """A JSON list of policies, item by item (see _parse_batch)."""
    return b"[" + b",".join(_POLICY.dump_json(p) for p in policies) + b"]"


_INVALID_OR_EMPTY = (
    "An item is invalid (`loc` names `policies.<index>.<field>`), or the set is empty "
    "without prune=true"
)


class ReplaceResult(BaseModel):
    """What `PUT /policies` did (or, with dry_run, would do), by policy name."""

    dry_run: bool
    created: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int
    policies: list[Policy]  # the created and changed ones, with their status (none on a dry run)


@router.put(
    dependencies=[Operator],
    path="",
    response_model=ReplaceResult,
    responses={
        409: {"description": "Two items share a name, or a match and monitor"},
        422: {
            "description": "An item is invalid (`loc` names `policies.<index>.<field>`), or "
            "the set is empty without prune=true"
        },
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}
    },
)
async def replace_policies(
    request: Request, policies: PoliciesDep, dry_run: bool = False, prune: bool = False
) -> Response:
    """Make the policies exactly the body's set, matched by name: create the new ones, change
    the ones whose fields differ, remove the ones not named. All of it or none, in one install
    round; two policies may even swap their matches. An empty set removes every policy only
    with `prune=true`. With `dry_run=true` nothing changes and the answer says what would."""
    raw = await request.body()
    try:
        desired = await asyncio.to_thread(_parse_desired, raw)
    except ValidationError as exc:
        raise _body_error(exc) from exc
    stored = policies.count()
    if not desired and stored and not prune:
        raise RequestValidationError([{
            "type": "prune_required", "loc": ("body", "policies"), "input": [],
            "msg": f"an empty set removes all {stored} policies: pass prune=true to mean it",
        }])  # fmt: skip
    try:
        plan, created, changed = await policies.replace(desired, dry_run=dry_run)
    except BatchConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    if not dry_run:
        await record(request, await asyncio.to_thread(_replace_changes, plan, created, changed))
    result = ReplaceResult(
        dry_run=dry_run,
        created=[spec.name for spec in plan.create],
        changed=[spec.name for _, spec in plan.change],
        removed=[p.name for p in plan.remove],
        unchanged=len(plan.unchanged),
        policies=[*created, *changed],
    )
    body = await asyncio.to_thread(result.model_dump_json)
    return Response(body, media_type="application/json")


def _replace_changes(
    plan: ReplacePlan, created: list[Policy], changed: list[Policy]
) -> list[Change]:
    before = {p.id: p for p in plan.replaced}
    out: list[Change] = [
        ("policy.delete", f"policy {p.id}", policy_record(p), None) for p in plan.remove
    ]
    out += [
        ("policy.update", f"policy {p.id}", policy_record(before[p.id]), policy_record(p))
        for p in changed
    ]
    out += [("policy.create", f"policy {p.id}", None, policy_record(p)) for p in created]
    return out


def _parse_desired(raw: bytes) -> list[PolicySpec]:
    """Like a bulk body, but the list may be empty (the whole set is the desired state)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("policies") == [] and len(data) == 1:
        return []
    return _parse_batch(raw).policies


class StatusSummary(BaseModel):
    """How many policies are in each status."""

    total: int
    active: int
    pending: int  # disabled ones included
    error: int


@router.get("/summary", response_model=StatusSummary)
def policy_summary(policies: PoliciesDep) -> StatusSummary:
    """Counts per status, without listing every policy (cheap at any number of policies)."""
    return StatusSummary(**policies.summary())


class PolicyIds(BaseModel):
    """Policies removed together: all or none, in one round."""

    ids: list[int] = Field(min_length=1, max_length=MAX_BATCH)


@router.post(
    dependencies=[Operator],
    path="/bulk-delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "An id names no policy (nothing was deleted)"}},
)
async def delete_policies(batch: PolicyIds, policies: PoliciesDep, request: Request) -> Response:
    """Delete many policies at once; an unknown id is 404 naming it, and nothing is deleted."""
    ids = list(dict.fromkeys(batch.ids))
    try:
        before = [policies.get(pid) for pid in ids]
        await policies.delete_many(ids)
    except PolicyNotFound as exc:
        raise _not_found(exc) from exc
    changes = await asyncio.to_thread(
        lambda: [("policy.delete", f"policy {p.id}", policy_record(p), None) for p in before]
    )
    await record(request, changes)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("", response_model=list[Policy])
async def list_policies(
    policies: PoliciesDep,
    status_: Annotated[
        PolicyStatus | None, Query(alias="status", description="only policies in this status")
    ] = None,
    monitor: Annotated[
        str | None, Query(description="only policies copying to this monitor (IP or MAC)")
    ] = None,
    q: Annotated[str | None, Query(description="only names containing this text")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_BATCH, description="at most this many")] = None,
    offset: Annotated[int, Query(ge=0, description="skip this many first (by id)")] = 0,
) -> Response:
    """Policies with their status, by id; filters combine. `X-Total-Count` is the number that
    matched before `limit`/`offset`. Built and serialised in a worker thread: 50,000 policies
    take half a second, which the switches and other clients must not wait for."""
    wanted = (monitor or "").lower()

    def page() -> tuple[bytes, int]:
        found = [
            p
            for p in policies.list()
            if (status_ is None or p.status is status_)
            and (not wanted or wanted in ((p.monitor_ip or "").lower(), p.monitor_mac or ""))
            and (q is None or q.lower() in p.name.lower())
        ]
        end = None if limit is None else offset + limit
        return _dump_policies(found[offset:end]), len(found)

    body, total = await asyncio.to_thread(page)
    return Response(body, media_type="application/json", headers={"X-Total-Count": str(total)})


@router.get("/{policy_id}", response_model=Policy, responses=_NOT_FOUND)
def get_policy(policy_id: int, policies: PoliciesDep, response: Response) -> Policy:
    """One policy; its `ETag` header names this version (send it back as `If-Match` with a
    PATCH or DELETE to change it only if nobody else did meanwhile)."""
    try:
        policy = policies.get(policy_id)
    except PolicyNotFound as exc:
        raise _not_found(exc) from exc
    response.headers["ETag"] = policy.etag
    return policy


@router.patch(
    dependencies=[Operator],
    path="/{policy_id}",
    response_model=Policy,
    responses={**_NOT_FOUND, **_CONFLICT, **_PRECONDITION},
)
async def update_policy(
    policy_id: int,
    patch: PolicyPatch,
    policies: PoliciesDep,
    request: Request,
    response: Response,
    if_match: Annotated[
        str | None, Header(description="the ETag read with GET: change only that version")
    ] = None,
) -> Policy:
    """Change some fields (null makes a field a wildcard); `enabled` enables or disables.
    With `If-Match`, 412 if the policy changed since that ETag was read."""
    try:
        before = policies.get(policy_id)
        after = await policies.update(policy_id, patch, if_match=if_match)
        change = ("policy.update", f"policy {policy_id}", policy_record(before))
        await record(request, [(*change, policy_record(after))])
        response.headers["ETag"] = after.etag
        return after
    except VersionMismatch as exc:
        raise HTTPException(status.HTTP_412_PRECONDITION_FAILED, detail=str(exc)) from exc
    except PolicyNotFound as exc:
        raise _not_found(exc) from exc
    except (DuplicatePolicy, DuplicateName) as exc:
        raise _conflict(exc) from exc
    except ValidationError as exc:
        # The merged policy is invalid: answer like a create would, naming the field.
        raise _body_error(exc) from exc


@router.delete(
    dependencies=[Operator],
    path="/{policy_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_NOT_FOUND,
)
async def delete_policy(policy_id: int, policies: PoliciesDep, request: Request) -> Response:
    try:
        before = policies.get(policy_id)
        await policies.delete(policy_id)
    except PolicyNotFound as exc:
        raise _not_found(exc) from exc
    await record(request, [("policy.delete", f"policy {policy_id}", policy_record(before), None)])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{policy_id}/rules", response_model=PolicyRules, responses=_NOT_FOUND)
def policy_rules(policy_id: int, policies: PoliciesDep) -> PolicyRules:
    """The rules this policy compiles to, per switch (shared ones included), with their
    `ovs-ofctl` spelling."""
    try:
        policy, by_switch = policies.rules(policy_id)
    except PolicyNotFound as exc:
        raise _not_found(exc) from exc
    return rules_report(policy, by_switch)


@router.get("/{policy_id}/stats", response_model=PolicyStats, responses=_NOT_FOUND)
async def policy_stats(policy_id: int, policies: PoliciesDep) -> PolicyStats:
    """Copied packets and bytes: the counters of the copy entries serving the policy's monitor
    on the switch that classifies it."""
    try:
        return await policies.stats(policy_id)
    except PolicyNotFound as exc:
        raise _not_found(exc) from exc
