"""The app's lifespan-owned state and the ``Annotated`` dependencies routes use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request

from chimp.shared.datastore import Datastore
from chimp.shared.registry import AsyncModelRegistry
from chimp.training.config import TrainingSettings
from chimp.training.plugins.discovery import PluginCatalog
from chimp.training.records import ModelRecords
from chimp.training.review import ReviewQueue
from chimp.training.task_store import TaskStore
from chimp.training.user_store import UserStore


@dataclass
class TrainingState:
    settings: TrainingSettings
    redis: ArqRedis
    store: TaskStore
    datastore: Datastore
    registry: AsyncModelRegistry
    catalog: PluginCatalog
    records: ModelRecords
    users: UserStore
    review: ReviewQueue


def get_state(request: Request) -> TrainingState:
    state: TrainingState = request.app.state.training
    return state


def get_store(request: Request) -> TaskStore:
    return get_state(request).store


def get_datastore(request: Request) -> Datastore:
    return get_state(request).datastore


def get_registry(request: Request) -> AsyncModelRegistry:
    return get_state(request).registry


def get_catalog(request: Request) -> PluginCatalog:
    return get_state(request).catalog


def get_records(request: Request) -> ModelRecords:
    return get_state(request).records


def get_actor(request: Request) -> str:
    """Who is acting: the signed-in user the web app names in ``X-Chimp-Actor``, else the token.

    Only callers holding the API token reach write routes, so the header is trusted as theirs.
    """
    named = request.headers.get("x-chimp-actor", "").strip()[:100]
    return f"user:{named}" if named else "token"


StateDep = Annotated[TrainingState, Depends(get_state)]
StoreDep = Annotated[TaskStore, Depends(get_store)]
DatastoreDep = Annotated[Datastore, Depends(get_datastore)]
RegistryDep = Annotated[AsyncModelRegistry, Depends(get_registry)]
CatalogDep = Annotated[PluginCatalog, Depends(get_catalog)]
RecordsDep = Annotated[ModelRecords, Depends(get_records)]
ActorDep = Annotated[str, Depends(get_actor)]
