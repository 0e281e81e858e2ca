"""ratpose: markerless 3D pose of rats on the neural clock, in a DataJoint pipeline."""
import logging as _logging
import warnings as _warnings

__version__ = "0.1.0"

# DataJoint's notices that say nothing about this pipeline, printed on every command: settings come
# from DJ_* variables by design, MariaDB is the server scripts/local-db.sh installs, and the jobs
# tables DataJoint declares itself copy the native SQL type of a key (ratpose's definitions use core types).
_warnings.filterwarnings("ignore", message=r"No datajoint\.json found", category=UserWarning)
_warnings.filterwarnings("ignore", message=r"MariaDB is not officially supported", category=UserWarning)
_logging.getLogger("datajoint").addFilter(
    lambda record: not record.getMessage().startswith("Native type 'int' is used in attribute"))
