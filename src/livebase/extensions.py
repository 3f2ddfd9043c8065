"""Loading extensions from ``EXTENSIONS_PATH`` (docs/extensions.md): hooks, routers, setup().

Every ``*.py`` module and every package (a folder with ``__init__.py``) is
imported at start-up, in name order. A module may define ``hook`` (a hook
table, or a list of them), ``router`` (a FastAPI ``APIRouter``, mounted as
is) and ``setup(services)`` (sync or async, called once the realtime layer is
ready). A module that fails to import stops start-up, naming its file.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI

from livebase.realtime.service import SocketService
from livebase.services.accountability import SYSTEM, Accountability
from livebase.services.container import Services
from livebase.services.query import Query


class ExtensionError(Exception):
    """An extension could not be loaded; the message names its file."""


@dataclass(frozen=True)
class Extension:
    name: str
    module: ModuleType


_PACKAGE = "livebase_extensions"


def load_extensions(folder: Path) -> list[Extension]:
    if not folder.is_dir():
        return []
    # A parent package, so that an extension package's relative imports work
    # and tests can import ``livebase_extensions.<name>``.
    parent = sys.modules.setdefault(_PACKAGE, ModuleType(_PACKAGE))
    parent.__path__ = []
    entries = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(("_", "."))
        and ((p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file())
    )
    return [_import(entry) for entry in entries]


def _import(entry: Path) -> Extension:
    name = entry.stem if entry.is_file() else entry.name
    file = entry if entry.is_file() else entry / "__init__.py"
    module_name = f"{_PACKAGE}.{name}"
    locations = None if entry.is_file() else [str(entry)]
    spec = importlib.util.spec_from_file_location(
        module_name, file, submodule_search_locations=locations
    )
    if spec is None or spec.loader is None:
        raise ExtensionError(f"extension {entry.name}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ExtensionError(
            f"extension {entry.name} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    setattr(sys.modules[_PACKAGE], name, module)
    return Extension(name=entry.name, module=module)


def mount_routers(app: FastAPI, extensions: list[Extension]) -> None:
    for extension in extensions:
        router = getattr(extension.module, "router", None)
        if router is None:
            continue
        if not isinstance(router, APIRouter):
            raise ExtensionError(
                f"extension {extension.name}: 'router' must be a FastAPI APIRouter"
            )
        app.include_router(router)


async def start_extensions(
    extensions: list[Extension], services: Services, socket: SocketService | None
) -> None:
    """Register hooks, then call each ``setup(services)``."""
    api = ExtensionServices(services, socket)
    services.hooks.services = api
    for extension in extensions:
        tables = getattr(extension.module, "hook", None)
        for table in tables if isinstance(tables, list) else [tables] if tables else []:
            try:
                services.hooks.register(table, source=extension.name)
            except ValueError as exc:
                raise ExtensionError(str(exc)) from None
    for extension in extensions:
        setup = getattr(extension.module, "setup", None)
        if setup is None:
            continue
        try:
            result = setup(api)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            raise ExtensionError(
                f"extension {extension.name}: setup() failed: {type(exc).__name__}: {exc}"
            ) from exc


class CollectionItems:
    """``services.items(collection)``: the items API for one collection.

    It acts as the system (administrator rights) unless given the request's
    accountability with :meth:`as_user`.
    """

    def __init__(self, services: Services, collection: str, who: Accountability = SYSTEM) -> None:
        self._items = services.items
        self._services = services
        self.collection = collection
        self._who = who

    def as_user(self, who: Accountability) -> CollectionItems:
        return CollectionItems(self._services, self.collection, who)

    async def read(self, **query: Any) -> list[dict[str, Any]]:
        items, _ = await self._items.read_many(self.collection, Query(**query), self._who)
        return items

    async def read_one(self, key: Any) -> dict[str, Any]:
        return await self._items.read_one(self.collection, key, self._who)

    async def create(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self._items.create(self.collection, data, self._who)

    async def update(self, key: Any, data: dict[str, Any]) -> dict[str, Any]:
        return await self._items.update(self.collection, key, data, self._who)

    async def delete(self, key: Any) -> Any:
        return await self._items.delete(self.collection, key, self._who)


class SystemNotifications:
    """``services.notifications``: send notifications with system rights."""

    def __init__(self, services: Services) -> None:
        self._notifications = services.notifications

    async def send(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._notifications.send(SYSTEM, body)


class SystemFiles:
    """``services.files``: file metadata with system rights."""

    def __init__(self, services: Services) -> None:
        self._files = services.files

    async def read(self, **query: Any) -> list[dict[str, Any]]:
        rows, _ = await self._files.find(SYSTEM, Query(**query))
        return rows

    async def read_one(self, file_id: str) -> dict[str, Any]:
        return await self._files.get(SYSTEM, file_id)

    async def delete(self, file_id: str) -> str:
        return await self._files.delete(SYSTEM, file_id)


class ExtensionServices:
    """What ``context.services`` and ``setup(services)`` give an extension.

    ``socket`` (:class:`SocketService`), ``items(collection)``,
    ``notifications`` and ``files``.
    """

    def __init__(self, services: Services, socket: SocketService | None) -> None:
        self._services = services
        self.socket = socket
        self.notifications = SystemNotifications(services)
        self.files = SystemFiles(services)

    def items(self, collection: str) -> CollectionItems:
        return CollectionItems(self._services, collection)
