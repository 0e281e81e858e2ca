"""DataJoint tables of the pipeline, one module per stage.

Tables are declared on unactivated schemas; ``activate()`` binds them to ``<prefix>_<stage>``
schemas on the configured server (creating what is missing, unless ``create=False``) and returns the modules.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import datajoint as dj

from .. import db
from ..errors import NotFoundError


class MissingSchema(NotFoundError):
    """A pipeline schema or table that a client which never creates anything found missing."""


# stage -> module, in dependency order
MODULES = {"raw": "raw", "sync": "sync", "calib": "calibration", "pose": "pose", "analysis": "analysis"}


def activate(db_prefix: str | None = None, *, create: bool = True) -> dict[str, ModuleType]:
    """Connect and activate every stage's schema under one prefix; returns {stage: module}.

    With ``create=False`` nothing is declared on the server: a missing schema or table raises
    :class:`MissingSchema` (what a read-only client such as ``ratpose serve`` uses)."""
    connection = db.connect()
    modules = {}
    for stage, module_name in MODULES.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        name = db.schema_name(stage, db_prefix)
        if module.schema.is_activated():
            if module.schema.database != name:
                raise RuntimeError(f"schema of stage {stage!r} is already active as {module.schema.database}; "
                                   f"cannot switch to {name} in the same process")
        else:
            try:
                module.schema.activate(name, connection=connection, create_schema=create, create_tables=create)
            except dj.DataJointError:
                if create:
                    raise
                module.schema.database = None  # not bound: a later call tries again
                raise MissingSchema(f"schema {name} (stage {stage!r}) does not exist on the server") from None
        if not create:
            missing = [t.__name__ for t in _tables(module) if not t().is_declared]
            if missing:
                raise MissingSchema(f"schema {name} (stage {stage!r}) lacks table(s) {', '.join(missing)}")
        modules[stage] = module
    return modules


def drop_all(db_prefix: str | None = None) -> None:
    """Drop every stage's schema under a prefix (last stage first), if present: for throw-away prefixes
    such as the demo's, so each run starts from the current table definitions."""
    connection = db.connect()
    for stage in reversed(MODULES):
        connection.query(f"DROP DATABASE IF EXISTS `{db.schema_name(stage, db_prefix)}`")


def _tables(module: ModuleType) -> list[type]:
    """The tables a stage's module declares (not those it imports)."""
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, dj.Table) and obj.__module__ == module.__name__]


def computed_tables(modules: dict[str, ModuleType]) -> dict[str, type]:
    """All auto-populated tables by class name, in dependency order."""
    return {t.__name__: t for module in modules.values() for t in _tables(module)
            if issubclass(t, (dj.Computed, dj.Imported))}
