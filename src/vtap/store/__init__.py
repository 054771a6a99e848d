"""Persistent policies: the repository protocol, SQLite for real use, memory for tests."""

from vtap.store.base import (
    BatchConflict,
    DuplicateName,
    DuplicatePolicy,
    PolicyNotFound,
    PolicyRepository,
    StoreError,
)
from vtap.store.memory import MemoryPolicyRepository
from vtap.store.sqlite import SqlitePolicyRepository

__all__ = [
    "BatchConflict",
    "DuplicateName",
    "DuplicatePolicy",
    "MemoryPolicyRepository",
    "PolicyNotFound",
    "PolicyRepository",
    "SqlitePolicyRepository",
    "StoreError",
]
