"""Dashboard accounts. Passwords arrive here already hashed; this module never sees plain text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, insert, select, update

from engine.dates import utc_now
from engine.errors import SegmintError
from engine.roles import ROLES
from engine.store.tables import USERS


class UserError(SegmintError):
    """A bad user name or role."""


@dataclass(frozen=True)
class UserRecord:
    username: str
    password_hash: str
    role: str
    session_version: int = 0
    revoked: bool = False


def _check(username: str, role: str) -> None:
    if not username or len(username) > 64 or username != username.strip():
        raise UserError(f"user name {username!r} must be 1-64 characters, no surrounding spaces")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")


def save_user(*, engine: Engine, username: str, password_hash: str, role: str) -> bool:
    """Create the account, or replace its password and role. True when it was created.
    Replacing either ends the account's sessions (and lifts a revocation)."""
    _check(username, role)
    with engine.begin() as connection:
        current = connection.execute(
            select(USERS.c.password_hash, USERS.c.role, USERS.c.revoked)
            .where(USERS.c.username == username)).first()
        if current is None:
            connection.execute(insert(USERS).values(username=username, password_hash=password_hash,
                                                    role=role, created_at=utc_now()))
            return True
        values: dict[str, Any] = {"password_hash": password_hash, "role": role, "revoked": False}
        if tuple(current) != (password_hash, role, False):
            values["session_version"] = USERS.c.session_version + 1
        connection.execute(update(USERS).where(USERS.c.username == username).values(**values))
    return False


def end_sessions(*, engine: Engine, username: str, revoke: bool = False) -> bool:
    """Raise the account's session version, so every cookie issued before stops working (logout,
    `segmint users revoke`); with revoke, logins are refused until `users add` sets a new
    password. False when there is no such account."""
    values: dict[str, Any] = {"session_version": USERS.c.session_version + 1}
    if revoke:
        values["revoked"] = True
    with engine.begin() as connection:
        changed = connection.execute(
            update(USERS).where(USERS.c.username == username).values(**values)).rowcount
    return bool(changed)


def session_version(*, engine: Engine, username: str) -> int | None:
    """The version a live session of this account must carry; None when the account is gone or
    revoked (checked on every dashboard request, so a single-row read)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(USERS.c.session_version, USERS.c.revoked).where(USERS.c.username == username)
        ).first()
    if row is None or row[1]:
        return None
    return int(row[0])


def _records(engine: Engine, query: Select[Any]) -> list[UserRecord]:
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [UserRecord(username=row.username, password_hash=row.password_hash, role=row.role,
                       session_version=int(row.session_version), revoked=bool(row.revoked))
            for row in rows]


def find_user(*, engine: Engine, username: str) -> UserRecord | None:
    found = _records(engine, select(USERS).where(USERS.c.username == username))
    return found[0] if found else None


def list_users(*, engine: Engine) -> list[UserRecord]:
    return _records(engine, select(USERS).order_by(USERS.c.username))
