"""What every `segmint` command shares: the lazily built settings and database (Context),
the decorator that hands it to a command, and the date option parser.

Imports click alone at module level, like segmint.cli (tests/segmint/test_cli_imports.py).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from engine.settings import Settings


class Context:
    """What every command needs: the settings, built once at the entry point."""

    def __init__(self, config_path: str | None = None) -> None:
        self._config_path = config_path
        self._settings: Settings | None = None
        self.database_url: str | None = None  # once a command opened the database

    def use_config(self, config_path: str | None) -> None:
        """Read the settings from this file (the group's --config) when first asked for."""
        self._config_path = config_path
        self._settings = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from engine.settings import load_settings  # pydantic: not for --help

            self._settings = load_settings(self._config_path)
            from engine.clv_cache import use_compile_cache

            use_compile_cache(self._settings.path(self._settings.clv.compile_dir))
        return self._settings

    def engine(self, *, require_schema: bool = True) -> Any:
        from engine.store import get_engine
        from engine.store import require_schema as check_schema

        self.database_url = self.settings.database_url
        db = get_engine(self.database_url, self.settings.database.echo,
                        setting=self.settings.database_url_setting)
        if require_schema:
            check_schema(engine=db)
        return db


pass_context = click.make_pass_decorator(Context)


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (expected YYYY-MM-DD)",
                                 param_hint=option) from None
