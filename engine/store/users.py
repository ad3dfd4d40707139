"""Dashboard accounts. Passwords arrive here already hashed; this module never sees plain text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import select

from engine.errors import SegmintError
from engine.models import DashboardUser
from engine.store.db import session_scope

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
    with session_scope(engine) as session:
        user = session.exec(select(DashboardUser).where(DashboardUser.username == username)).first()
        created = user is None
        if user is None:
            user = DashboardUser(username=username, password_hash=password_hash, role=role,
                                 created_at=datetime.now(UTC))
        else:
            user.password_hash = password_hash
            user.role = role
        session.add(user)
    return created


def find_user(*, engine: Engine, username: str) -> UserRecord | None:
    with session_scope(engine) as session:
        user = session.exec(select(DashboardUser).where(DashboardUser.username == username)).first()
        if user is None:
            return None
        return UserRecord(username=user.username, password_hash=user.password_hash, role=user.role)


def list_users(*, engine: Engine) -> list[UserRecord]:
    with session_scope(engine) as session:
        users = session.exec(select(DashboardUser).order_by(DashboardUser.username)).all()
        return [UserRecord(username=u.username, password_hash=u.password_hash, role=u.role)
                for u in users]
