"""`segmint users`: dashboard accounts (add, list, revoke).

Registered on the group in segmint.cli; imports only click at module level.
"""

from __future__ import annotations

import logging
import sys

import click

from engine.roles import ROLES

from .cli_context import Context, pass_context

log = logging.getLogger("segmint")


@click.group("users")
def users_group() -> None:
    """Dashboard accounts."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="manager: view; analyst: view, filter and export.")
@pass_context
def users_add_command(context: Context, name: str, role: str) -> None:
    """Create an account or replace its password and role. The password is prompted on a
    terminal and read from standard input (first line) otherwise."""
    from dashboard.auth import hash_password
    from engine.store.users import UserError, save_user

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UserError("empty password (type it at the prompt or pipe it on standard input)")
    if len(password) < 8:
        log.warning("the password for %s is shorter than 8 characters", name)
    created = save_user(engine=context.engine(), username=name,
                        password_hash=hash_password(password), role=role)
    click.echo(f"user {name} {'created' if created else 'updated'} ({role})")


@users_group.command("list")
@pass_context
def users_list_command(context: Context) -> None:
    """Accounts and their roles (never the passwords)."""
    from engine.store.users import list_users

    for user in list_users(engine=context.engine()):
        click.echo(f"{user.username}\t{user.role}" + ("\trevoked" if user.revoked else ""))


@users_group.command("revoke")
@click.argument("name")
@pass_context
def users_revoke_command(context: Context, name: str) -> None:
    """End every dashboard session of the account and refuse its logins until `users add NAME`
    sets a new password."""
    from engine.store.users import UserError, end_sessions

    if not end_sessions(engine=context.engine(), username=name, revoke=True):
        raise UserError(f"no dashboard user {name!r}")
    click.echo(f"user {name} revoked (sessions ended, logins refused)")
