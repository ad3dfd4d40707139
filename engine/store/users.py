"""Dashboard accounts. Passwords arrive here already hashed; this module never sees plain text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, Table, update
from sqlmodel import select

from engine.errors import SegmintError
from engine.models import DashboardUser
from engine.store.db import session_scope

ROLES = ("manager", "analyst")
USERS: Table = DashboardUser.__table__  # type: ignore[attr-defined]


class UserError(SegmintError):
    """A bad user name or role."""


@dataclass(frozen=True)
class UserRecord:
    username: str
    password_hash: str
    role: str
    session_version: int = 0
    revoked: bool = False


def _record(user: DashboardUser) -> UserRecord:
    return UserRecord(username=user.username, password_hash=user.password_hash, role=user.role,
                      session_version=user.session_version, revoked=user.revoked)


def _check(username: str, role: str) -> None:
    if not username or len(username) > 64 or username != username.strip():
        raise UserError(f"user name {username!r} must be 1-64 characters, no surrounding spaces")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")


def save_user(*, engine: Engine, username: str, password_hash: str, role: str) -> bool:
    """Create the account, or replace its password and role. True when it was created.
    Replacing either ends the account's sessions (and lifts a revocation)."""
    _check(username, role)
    with session_scope(engine) as session:
        user = session.exec(select(DashboardUser).where(DashboardUser.username == username)).first()
        created = user is None
        if user is None:
            user = DashboardUser(username=username, password_hash=password_hash, role=role,
                                 created_at=datetime.now(UTC))
        else:
            if (user.password_hash, user.role, user.revoked) != (password_hash, role, False):
                user.session_version += 1
            user.password_hash = password_hash
            user.role = role
            user.revoked = False
        session.add(user)
    return created


def end_sessions(*, engine: Engine, username: str, revoke: bool = False) -> bool:
    """Raise the account's session version, so every cookie issued before stops working (logout,
    `segmint users revoke`); with revoke, logins are refused until `users add` sets a new
    password. False when there is no such account."""
    values: dict[str, object] = {"session_version": USERS.c.session_version + 1}
    if revoke:
        values["revoked"] = True
    with session_scope(engine) as session:
        changed = session.execute(
            update(USERS).where(USERS.c.username == username).values(**values)
        ).rowcount  # type: ignore[attr-defined]
    return bool(changed)


def session_version(*, engine: Engine, username: str) -> int | None:
    """The version a live session of this account must carry; None when the account is gone or
    revoked (checked on every dashboard request, so a single-column read)."""
    with session_scope(engine) as session:
        row = session.execute(
            select(USERS.c.session_version, USERS.c.revoked).where(USERS.c.username == username)
        ).first()
    if row is None or row[1]:
        return None
    return int(row[0])


def find_user(*, engine: Engine, username: str) -> UserRecord | None:
    with session_scope(engine) as session:
        user = session.exec(select(DashboardUser).where(DashboardUser.username == username)).first()
        if user is None:
            return None
        return _record(user)


def list_users(*, engine: Engine) -> list[UserRecord]:
    with session_scope(engine) as session:
        users = session.exec(select(DashboardUser).order_by(DashboardUser.username)).all()
        return [_record(user) for user in users]
