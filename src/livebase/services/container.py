"""Wiring: one object holding every service of a running livebase process."""

from __future__ import annotations

from dataclasses import dataclass

from livebase.services.auth import AuthService
from livebase.services.events import EventBus
from livebase.services.files import FileService
from livebase.services.hooks import HookRegistry
from livebase.services.items import ItemsService
from livebase.services.live import LiveQueryService
from livebase.services.notifications import NotificationService
from livebase.services.permissions import PermissionService
from livebase.services.ratelimit import RateLimiter
from livebase.services.registry import CollectionRegistry
from livebase.services.relationships import RelationService
from livebase.services.relay import ChangeRelay
from livebase.services.roles import RoleService
from livebase.services.schemas import SchemaService
from livebase.services.tokens import TokenCodec
from livebase.services.users import UserRules
from livebase.settings import Settings
from livebase.storage.database import Database
from livebase.storage.files import LocalFileStorage
from livebase.storage.migrations import migrate
from livebase.storage.redis import RedisLink


@dataclass
class Services:
    settings: Settings
    db: Database
    events: EventBus
    tokens: TokenCodec
    registry: CollectionRegistry
    permissions: PermissionService
    items: ItemsService
    schemas: SchemaService
    relationships: RelationService
    roles: RoleService
    auth: AuthService
    notifications: NotificationService
    hooks: HookRegistry
    files: FileService
    relay: ChangeRelay
    live: LiveQueryService
    redis: RedisLink | None = None  # set when several processes share Redis

    async def start(self) -> None:
        """Upgrade the system tables and load schemas and permissions into memory."""
        await migrate(self.db)
        await self.registry.load()
        await self.permissions.load()
        await self.relay.capture_all()

    async def start_relay(self) -> None:
        """Publish the change log from now on (once every listener has subscribed)."""
        await self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()
        await self.hooks.close()
        await self.db.dispose()
        if self.redis is not None:
            await self.redis.close()


def build_services(settings: Settings, secret_key: str) -> Services:
    db = Database(settings.DATABASE_URL, loop_writes=settings.SQLITE_LOOP_WRITES)
    events = EventBus()
    tokens = TokenCodec(secret_key, settings.ACCESS_TOKEN_EXPIRES_IN)
    registry = CollectionRegistry(db)
    permissions = PermissionService(db, registry, events)
    hooks = HookRegistry()
    relay = ChangeRelay(db, registry, events, settings.CHANGE_LOG_RETENTION)
    items = ItemsService(db, registry, permissions, relay, hooks)
    items.set_rules("users", UserRules())
    schemas = SchemaService(db, registry, permissions, events)
    url = settings.redis_url
    redis = RedisLink(url, settings.SOCKET_REDIS_KEY) if url else None
    return Services(
        settings=settings,
        db=db,
        events=events,
        tokens=tokens,
        registry=registry,
        permissions=permissions,
        items=items,
        schemas=schemas,
        relationships=RelationService(db, registry, schemas, permissions, events),
        roles=RoleService(db),
        auth=AuthService(
            db,
            tokens,
            events,
            RateLimiter(settings.RATE_LIMIT_AUTH, shared=redis),
            settings.PUBLIC_REGISTRATION,
            # Alone on its database, this process sees every logout and user change.
            cache_sessions=redis is None,
            relay=relay,
        ),
        notifications=NotificationService(db, permissions, relay),
        hooks=hooks,
        files=FileService(
            db,
            LocalFileStorage(settings.STORAGE_PATH),
            permissions,
            relay,
            max_bytes=int(settings.MAX_UPLOAD_FILE_SIZE * 1024 * 1024),
        ),
        relay=relay,
        live=LiveQueryService(
            db, registry, permissions, items, relay, frozenset(settings.SOCKET_EXCLUDE_COLLECTIONS)
        ),
        redis=redis,
    )
