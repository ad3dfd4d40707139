"""Dashboard accounts (engine.store.users)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.store.users import UserError, find_user, list_users, save_user


def test_users_are_saved_and_replaced(db: Any) -> None:
    assert save_user(engine=db, username="ann", password_hash="h1", role="analyst") is True
    assert save_user(engine=db, username="ann", password_hash="h2", role="manager") is False
    user = find_user(engine=db, username="ann")
    assert user is not None and (user.password_hash, user.role) == ("h2", "manager")
    assert [u.username for u in list_users(engine=db)] == ["ann"]
    assert find_user(engine=db, username="bob") is None
    with pytest.raises(UserError, match="role"):
        save_user(engine=db, username="bob", password_hash="h", role="admin")
