"""The dashboard's two roles (SPEC.md): a manager reads every page; an analyst also filters by
date and segment and exports. Kept apart from the store so the CLI can offer them without
importing it."""

ROLES = ("manager", "analyst")
