"""The `ctx` handed to functions: QueryCtx, MutationCtx, ActionCtx.

Queries get read-only `db` and `auth`; mutations get a writable `db` and a `scheduler`
whose jobs commit with them; actions get a `scheduler` (jobs commit at once) but no `db`
and reach the database only through `run_query` / `run_mutation` / `run_action`, each its
own transaction. Inside a query or mutation, `ctx.run_query` and `ctx.run_mutation` call
another function *in the same transaction*: a nested mutation is a sub-transaction whose
writes are undone if it raises (the caller may catch the error and go on).
`ctx.storage` (storage/) follows the same split: queries get file URLs, mutations may
also issue upload URLs and delete files, actions may also store and read file contents.

Every ctx has `state`, a dict for what an app's own helpers keep for the rest of one call
(the session a session-scoped function runs for, a cache of what the call already read):
it starts empty, lives as long as the ctx, and is not shared with the functions the call
runs through `ctx.run_*` (they get their own ctx); triggers get the ctx of the mutation
whose write fired them, so they share its `state`.

The ctx classes reach the runtime only through the `Runtime` protocol (calls.py).
"""

from __future__ import annotations

from typing import Any

from owlat.runtime.auth import Auth
from owlat.runtime.calls import Runtime
from owlat.runtime.database.api import DatabaseReader, DatabaseWriter
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.functions import FunctionKind, FunctionLike
from owlat.runtime.scheduler import Scheduler
from owlat.runtime.storage import StorageActions, StorageReader, StorageWriter
from owlat.runtime.triggers import TriggerRunner


class QueryCtx:
    """Context of a query: read-only database access."""

    storage: StorageReader  # a query's is made on first use (`__getattr__`)

    def __init__(self, app: Runtime, transaction: Transaction, auth: Auth) -> None:
        self._app = app
        self._txn = transaction
        self.auth = auth
        self.state: dict[str, Any] = {}  # per-call state of the app (module doc)
        self.db: DatabaseReader = DatabaseReader(transaction)

    def __getattr__(self, name: str) -> Any:
        """`storage`, made when a query first uses it (most never do); nothing else."""
        if name == "storage":
            self.storage = StorageReader(self._app, self._txn)
            return self.storage
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    async def run_query(self, function: FunctionLike, args: dict[str, Any] | None = None) -> Any:
        """Run a query in this transaction and return its result."""
        return await self._app.run_nested(self._txn, FunctionKind.QUERY, function, args, self.auth)


class MutationCtx(QueryCtx):
    """Context of a mutation: one ACID transaction."""

    def __init__(self, app: Runtime, transaction: Transaction, auth: Auth) -> None:
        # not QueryCtx's __init__: a query's db and storage would be replaced at once
        self._app = app
        self._txn = transaction
        self.auth = auth
        self.state = {}
        triggers = app.package.triggers
        runner = None if triggers is None else TriggerRunner(triggers, self)
        self.db: DatabaseWriter = DatabaseWriter(transaction, triggers=runner)
        self.scheduler = Scheduler(app, transaction)
        self.storage: StorageWriter = StorageWriter(app, transaction)

    async def run_mutation(self, function: FunctionLike, args: dict[str, Any] | None = None) -> Any:
        """Run a mutation as a sub-transaction of this one and return its result."""
        return await self._app.run_nested(
            self._txn, FunctionKind.MUTATION, function, args, self.auth
        )


class ActionCtx:
    """Context of an action: side effects allowed, no transaction."""

    def __init__(self, app: Runtime, auth: Auth) -> None:
        self._app = app
        self.auth = auth
        self.state: dict[str, Any] = {}  # per-call state of the app (module doc)
        self.scheduler = Scheduler(app, None)
        self.storage = StorageActions(app)

    async def run_query(self, function: FunctionLike, args: dict[str, Any] | None = None) -> Any:
        """Run a query (its own snapshot) and return its result."""
        result = await self._app.run(
            FunctionKind.QUERY, function, args, identity=self.auth.identity, internal=True
        )
        return result.value

    async def run_mutation(self, function: FunctionLike, args: dict[str, Any] | None = None) -> Any:
        """Run a mutation (its own transaction) and return its result."""
        result = await self._app.run(
            FunctionKind.MUTATION, function, args, identity=self.auth.identity, internal=True
        )
        return result.value

    async def run_action(self, function: FunctionLike, args: dict[str, Any] | None = None) -> Any:
        """Run another action and return its result."""
        result = await self._app.run(
            FunctionKind.ACTION, function, args, identity=self.auth.identity, internal=True
        )
        return result.value
