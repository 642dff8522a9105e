"""owlat.runtime: a reactive backend with Convex's programming model, in Python.

This module is the public API that app packages (such as `owlat.app`) use; everything else
under `owlat.runtime` is internal to the runtime.
"""

from __future__ import annotations

from owlat.runtime.auth import Auth, UserIdentity
from owlat.runtime.context import ActionCtx, MutationCtx, QueryCtx
from owlat.runtime.database.filters import document_filter
from owlat.runtime.database.query import END_CURSOR
from owlat.runtime.errors import ConvexError, LimitExceededError, QueryBuildError
from owlat.runtime.functions import (
    FunctionReference,
    action,
    api,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from owlat.runtime.http_router import ROUTABLE_METHODS, HttpAction, HttpRouter, http_action
from owlat.runtime.metrics import define_counter, define_gauge, define_histogram
from owlat.runtime.responses import JSONResponse
from owlat.runtime.scheduler import CronJobs, cron_jobs
from owlat.runtime.schema import define_schema, define_table
from owlat.runtime.triggers import Change, Triggers
from owlat.runtime.types import UNDEFINED, Int64
from owlat.runtime.values import Validator, v

__all__ = [
    "END_CURSOR",
    "ROUTABLE_METHODS",
    "UNDEFINED",
    "ActionCtx",
    "Auth",
    "Change",
    "ConvexError",
    "CronJobs",
    "FunctionReference",
    "HttpAction",
    "HttpRouter",
    "Int64",
    "JSONResponse",
    "LimitExceededError",
    "MutationCtx",
    "QueryBuildError",
    "QueryCtx",
    "Triggers",
    "UserIdentity",
    "Validator",
    "action",
    "api",
    "cron_jobs",
    "define_counter",
    "define_gauge",
    "define_histogram",
    "define_schema",
    "define_table",
    "document_filter",
    "http_action",
    "internal",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mutation",
    "query",
    "v",
]
