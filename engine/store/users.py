"""Dashboard accounts. Passwords arrive here already hashed; this module never sees plain text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, insert, select, update

from engine.dates import utc_now
from engine.errors import SegmintError
from engine.store.tables import USERS

ROLES = ("manager", "analyst")


class UserError(SegmintError):
    """A bad user name or role."""


@dataclass(frozen=True)
class UserRecord:
    username: str
    password_hash: str
    role: str


def _check(username: str, role: str) -> None:
    if not username or len(username) > 64 or username != username.strip():
        raise UserError(f"user name {username!r} must be 1-64 characters, no surrounding spaces")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")


def save_user(*, engine: Engine, username: str, password_hash: str, role: str) -> bool:
    """Create the account, or replace its password and role. True when it was created."""
    _check(username, role)
    with engine.begin() as connection:
        replaced = connection.execute(
            update(USERS).where(USERS.c.username == username)
            .values(password_hash=password_hash, role=role)).rowcount
        if not replaced:
            connection.execute(insert(USERS).values(username=username, password_hash=password_hash,
                                                    role=role, created_at=utc_now()))
    return not replaced


def _records(engine: Engine, query: Select[Any]) -> list[UserRecord]:
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [UserRecord(username=row.username, password_hash=row.password_hash, role=row.role)
            for row in rows]


def find_user(*, engine: Engine, username: str) -> UserRecord | None:
    found = _records(engine, select(USERS).where(USERS.c.username == username))
    return found[0] if found else None


def list_users(*, engine: Engine) -> list[UserRecord]:
    return _records(engine, select(USERS).order_by(USERS.c.username))
