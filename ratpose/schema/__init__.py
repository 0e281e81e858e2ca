"""DataJoint tables of the pipeline, one module per stage.

Tables are declared on unactivated schemas; ``activate()`` binds them to ``<prefix>_<stage>``
schemas on the configured server (creating what is missing) and returns the modules.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .. import db

# stage -> module, in dependency order
MODULES = {"raw": "raw", "sync": "sync", "calib": "calibration", "pose": "pose", "analysis": "analysis"}


def activate(db_prefix: str | None = None) -> dict[str, ModuleType]:
    """Connect and activate every stage's schema under one prefix; returns {stage: module}."""
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
            module.schema.activate(name, connection=connection)
        modules[stage] = module
    return modules


def drop_all(db_prefix: str | None = None) -> None:
    """Drop every stage's schema under a prefix (last stage first), if present: for throw-away prefixes
    such as the demo's, so each run starts from the current table definitions."""
    connection = db.connect()
    for stage in reversed(MODULES):
        connection.query(f"DROP DATABASE IF EXISTS `{db.schema_name(stage, db_prefix)}`")


def computed_tables(modules: dict[str, ModuleType]) -> dict[str, type]:
    """All auto-populated tables by class name, in dependency order."""
    import datajoint as dj

    tables = {}
    for module in modules.values():
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, (dj.Computed, dj.Imported)) and obj.__module__ == module.__name__:
                tables[name] = obj
    return tables
