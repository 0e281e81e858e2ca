"""``ratpose ingest`` and ``ratpose subject set``: session and calibration folders into the raw tier."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError, NotFoundError
from .errors import expected_error


def _cmd_ingest(args) -> int:
    from .. import schema
    from ..ingest.session_folder import SessionFormatError, read_session_folder

    modules = schema.activate()
    failures = 0
    for folder in args.session_dirs:
        try:
            if (Path(folder) / "calibration.toml").is_file():  # a calibration folder
                key, inserted = modules["calib"].register_calibration(folder)
            elif Path(folder).is_dir() and not (Path(folder) / "session.toml").exists():
                raise SessionFormatError(folder, "has neither session.toml (a session folder) nor "
                                                 "calibration.toml (a calibration folder)")
            else:
                key, inserted = modules["raw"].insert_session(read_session_folder(folder))
                if args.upload:
                    uploaded = modules["raw"].upload_session(key)
                    print(f"uploaded {uploaded} files to the store: {folder}" if uploaded else
                          f"already in the store: {folder}")
        except Exception as err:  # a folder that cannot be ingested: say why, go on with the others
            message = expected_error(err)
            if message is None or args.debug:
                raise
            print(f"ERROR {message}", file=sys.stderr)
            failures += 1
            continue
        print(f"{'ingested' if inserted else 'already ingested'}: {folder} -> {key}")
    return 1 if failures else 0


def _cmd_subject(args) -> int:
    from .. import schema
    from ..ingest.session_folder import check_subject_info

    given = {"species": args.species, "sex": args.sex, "date_of_birth": args.date_of_birth, "age": args.age}
    values = check_subject_info({k: v for k, v in given.items() if v is not None}, Path("ratpose subject set"))
    if not values:
        raise InputError("ratpose subject set: give at least one of --species, --sex, --date-of-birth, --age")
    subject = schema.activate()["raw"].Subject
    if not subject & {"subject": args.subject}:
        raise NotFoundError(f"no subject {args.subject!r} in the database (ingest one of its sessions first)")
    subject.update1({"subject": args.subject, **values})
    print(f"subject {args.subject}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    return 0


def add_commands(subparsers) -> None:
    """Add ``ingest`` and ``subject set``."""
    ingest = subparsers.add_parser("ingest", help="validate session (or calibration) folders and insert them (atomic, "
                                           "idempotent)")
    ingest.add_argument("session_dirs", nargs="+", type=Path)
    ingest.add_argument("--upload", action="store_true",
                        help="also copy each session's videos (and DLC .h5 beside them) to the object store, for "
                             "machines that do not reach the folder (docs/deployment.md)")
    ingest.set_defaults(func=_cmd_ingest)

    subject = subparsers.add_parser("subject", help="a subject's details (what NWB and DANDI need)")
    subject_sub = subject.add_subparsers(dest="subject_command", required=True)
    subject_set = subject_sub.add_parser("set", help="set species, sex, date of birth or age of a subject")
    subject_set.add_argument("subject")
    subject_set.add_argument("--species", help="Latin binomial (default of a new subject: Rattus norvegicus)")
    subject_set.add_argument("--sex", choices=["M", "F", "U", "O"])
    subject_set.add_argument("--date-of-birth", help="YYYY-MM-DD")
    subject_set.add_argument("--age", help="ISO 8601 duration at the sessions, e.g. P90D (without a date of birth)")
    subject_set.set_defaults(func=_cmd_subject)
