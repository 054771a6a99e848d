"""What the live console needs beside the policy CRUD: paths to highlight, copy counters."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from vtap.api.deps import PoliciesDep, ViewsDep
from vtap.api.schemas import CopyRate, PolicyPaths
from vtap.store.base import PolicyNotFound

router = APIRouter(tags=["policies"])


@router.get(
    "/policies/{policy_id}/paths",
    response_model=PolicyPaths,
    responses={404: {"description": "No policy with this id"}},
)
def policy_paths(policy_id: int, policies: PoliciesDep, views: ViewsDep) -> PolicyPaths:
    """The production paths (those of in-flight flows the policy matches, or the computed path
    between its endpoints) and the copy path from the classifying switch to the monitor."""
    try:
        policy = policies.get(policy_id)
    except PolicyNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    return PolicyPaths.model_validate(views.policy_paths(policy))


@router.get("/copies", response_model=list[CopyRate])
def copies(policies: PoliciesDep, views: ViewsDep) -> list[CopyRate]:
    """Copies made per policy as of the last statistics round, with their rate (unlike
    /policies/{id}/stats, which asks the switches now, this costs no switch request)."""
    return [CopyRate.model_validate(views.copy_row(p.id)) for p in policies.list()]
