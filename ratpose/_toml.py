"""TOML reading on every supported Python (tomllib from 3.11, the tomli backport before)."""
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["tomllib"]
