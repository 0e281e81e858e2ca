"""The web app: server-rendered pages over ratpose.schema.browse; never writes to the database.

Every file it sends lies inside its cache folder (``inside``), download names are plain ASCII
(``download_name``), exports are deleted once sent, and every response carries headers for a
read-only app (``SECURITY_HEADERS``). Lists of the whole database are read at most once per
``fresh_s`` seconds (one query set shared by every browser asking meanwhile); a session's own
pages and reports are always read fresh.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import FileResponse, RedirectResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates


def visible(value):
    """Text shown on a page with control and format characters (bidi overrides, zero-width, bells) spelled
    out as \\uXXXX, so a name cannot reorder or hide what is shown; other values unchanged."""
    if not isinstance(value, str) or isinstance(value, Markup):  # Markup: the templates' own HTML
        return value
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t" else c
                   for c in value)


TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))  # autoescapes .html
TEMPLATES.env.finalize = visible  # every {{ value }} of every page
COLUMNS = {"subject": "subject", "session_datetime": "date", "rig": "rig", "duration_s": "duration (s)",
           "frames": "frames", "sync_qc": "sync QC", "calibration": "calibration", "coverage": "3D coverage",
           "knob": "knob validation", "units": "units"}
QC_STATES = ("pass", "fail", "pending")
EXPORTS = {"nwb": "application/x-hdf5", "csv": "text/csv"}
PAGE_SIZE = 100  # rows per page of the sessions and units lists
# No scripts at all; styles inline (the pages' and the reports' own), images/video/frames from this server only.
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'self' "
                           "'unsafe-inline'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; "
                           "base-uri 'none'")
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "content-security-policy": CONTENT_SECURITY_POLICY,
                    "x-frame-options": "SAMEORIGIN", "referrer-policy": "no-referrer",
                    "cross-origin-resource-policy": "same-origin"}
NO_STORE = "no-store"  # data pages and downloads: neither proxies nor browsers keep them
REPORT_CACHE = "private, max-age=3600"  # report files: their URL changes with the session's rows; no proxy keeps them


@dataclass
class Backend:
    """What the pages read: ratpose.schema.browse and .report_data, export_session(key, fmt, out) and a
    function giving `ratpose status`'s rows."""

    browse: object
    report_data: object
    export_session: Callable
    pipeline_status: Callable


def inside(root: Path, *parts: str) -> Path:
    """The existing file root/parts, resolved (links and '..' followed); HTTP 404 unless it lies inside root."""
    base = Path(root).resolve()
    try:
        path = base.joinpath(*parts).resolve()
    except (OSError, ValueError):  # NUL bytes, loops of links
        path = base
    if path == base or not path.is_relative_to(base) or not path.is_file():
        raise HTTPException(404, "no such file (open it from its session page)")
    return path


def download_name(*words: str, suffix: str) -> str:
    """A file name for a download made of user data: ASCII letters, digits and '_ - .' only, no leading dot."""
    text = unicodedata.normalize("NFKD", "_".join(words)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")[:100] or "session"
    return f"{text}.{suffix}"


def qc_state(row: dict) -> str:
    """'fail' if sync QC or knob validation failed, 'pass' if both passed, else 'pending'."""
    verdicts = (row["sync_qc"], row["knob"])
    return "fail" if "FAIL" in verdicts else ("pass" if verdicts == ("PASS", "PASS") else "pending")


def filter_sessions(rows: list[dict], params) -> list[dict]:
    """Rows matching the query parameters subject, rig, from, to (dates) and qc, sorted by ``sort``."""
    def day(name):
        value = params.get(name)
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            raise HTTPException(400, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None

    start, end, qc = day("from"), day("to"), params.get("qc")
    if qc and qc not in QC_STATES:
        raise HTTPException(400, f"qc: {qc!r} is not one of {QC_STATES}")
    rows = [r for r in rows
            if params.get("subject") in (None, "", r["subject"]) and params.get("rig") in (None, "", r["rig"])
            and (start is None or r["session_datetime"].date() >= start)
            and (end is None or r["session_datetime"].date() <= end) and (not qc or qc_state(r) == qc)]
    sort = params.get("sort", "session_datetime")
    if sort not in COLUMNS:
        raise HTTPException(400, f"sort: {sort!r} is not a column")
    return sorted(rows, key=lambda r: (r[sort] is None, r[sort]), reverse=params.get("desc") == "1")


def paged(request, rows: list) -> dict:
    """The page of rows that the query parameter ``page`` (1-based, HTTP 400 if not a page) names, with what
    templates/pager.html shows: rows, n_matching, first, page_number, pages, page_links."""
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    value = request.query_params.get("page", "1")
    if not value.isdigit() or not 1 <= int(value) <= pages:
        raise HTTPException(400, f"page: {value!r} is not a page number from 1 to {pages}")
    number = int(value)
    return {"rows": rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], "n_matching": len(rows),
            "first": (number - 1) * PAGE_SIZE + 1, "page_number": number, "pages": pages,
            "page_links": {n: request.url.include_query_params(page=n) for n in (number - 1, number + 1)
                           if 1 <= n <= pages}}


def session_key(params) -> dict:
    """The session key named by the query parameters subject and datetime (ISO 8601)."""
    try:
        return {"subject": params["subject"], "session_datetime": datetime.fromisoformat(params["datetime"])}
    except (KeyError, ValueError):
        raise HTTPException(400, "give subject and datetime (ISO 8601)") from None


class _SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS, and Cache-Control where a route set none, to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", NO_STORE.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await (self.app(scope, receive, with_headers) if scope["type"] == "http" else self.app(scope, receive, send))


class _Lists:
    """Whole-database lists (browse.sessions() etc.), read at most once per fresh_s seconds."""

    def __init__(self, lock: threading.Lock, fresh_s: float):
        self.lock, self.fresh_s, self.kept = lock, fresh_s, {}

    def get(self, name: str, read: Callable[[], list]) -> list:
        with self.lock:  # one database connection: one request at a time talks to the database
            read_at, rows = self.kept.get(name, (-float("inf"), None))
            if time.monotonic() - read_at >= self.fresh_s:
                rows = read()
                self.kept[name] = (time.monotonic(), rows)
            return rows


def create_app(connect: Callable[[], Backend], cache_dir: Path | None = None, fresh_s: float = 2.0) -> Starlette:
    """The app over the Backend that ``connect()`` gives (it raises LookupError while the database has no
    pipeline yet: pages then say so, and each request tries again); reports, videos and exports live
    under ``cache_dir``; lists are at most ``fresh_s`` seconds old."""
    cache = Path(cache_dir or tempfile.mkdtemp(prefix="ratpose-serve-")).resolve()
    exports_dir = cache / "exports"
    shutil.rmtree(exports_dir, ignore_errors=True)  # left by a server that was killed mid-download
    exports_dir.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    lists = _Lists(lock, fresh_s)
    backend: list[Backend] = []

    def db() -> Backend:
        """The backend, connecting first if needed (under the lock)."""
        if not backend:
            try:
                backend.append(connect())
            except LookupError as err:
                raise HTTPException(503, f"The database has no ratpose pipeline to show yet ({err}). It appears "
                                         "once a worker or an admin has set it up; this page never creates it.")
        return backend[0]

    def locked(read: Callable[[Backend], object]):
        with lock:
            return read(db())

    def listing(name: str, read: Callable[[Backend], list]) -> list:
        return lists.get(name, lambda: read(db()))  # under the lists' lock, which is the database's

    def page(request, name, **context):
        return TEMPLATES.TemplateResponse(request, name, context)

    def sessions_page(request):
        all_rows = listing("sessions", lambda b: b.browse.sessions())
        params = request.query_params
        descending = params.get("desc") == "1"
        sort_links = {name: request.url.include_query_params(
            sort=name, desc="1" if params.get("sort", "session_datetime") == name and not descending else "0", page=1)
            for name in COLUMNS}
        return page(request, "sessions.html", **paged(request, filter_sessions(all_rows, params)), columns=COLUMNS,
                    params=params, sort_links=sort_links, subjects=sorted({r["subject"] for r in all_rows}),
                    rigs=sorted({r["rig"] for r in all_rows}), qc_states=QC_STATES, total=len(all_rows))

    def session_page(request):
        key = session_key(request.query_params)
        try:
            info = locked(lambda b: b.browse.session(key))
        except LookupError as err:
            raise HTTPException(404, str(err)) from None
        return page(request, "session.html", key=key, iso=key["session_datetime"].isoformat(), exports=EXPORTS, **info)

    def report(request):
        """Redirect to the report of the session's current rows, drawing it first if not cached."""
        from ..report.build import write_report

        key, params = session_key(request.query_params), request.query_params
        folder = hashlib.sha1(repr(sorted(key.items())).encode()).hexdigest()[:16]
        with lock:
            b = db()
            try:
                model = b.report_data.choose_model(key, params.get("training_set"), params.get("pose_params"))
                version = f"{b.browse.session_version(key)}-{hashlib.sha1(repr(model).encode()).hexdigest()[:8]}"
                out = cache / folder / version
                if not (out / "index.html").exists():
                    drawing = cache / folder / f".drawing-{uuid.uuid4().hex}"
                    try:
                        write_report(b.report_data.fetch_report(key, model), drawing)
                        os.replace(drawing, out)  # a report is served whole or not at all
                    finally:
                        shutil.rmtree(drawing, ignore_errors=True)
            except (LookupError, ValueError) as err:
                raise HTTPException(404, str(err)) from None
        return RedirectResponse(request.url_for("report_file", folder=folder, version=version, name="index.html"))

    def report_file(request):
        p = request.path_params
        if any(part.startswith(".") for part in p.values()):  # reports being drawn, and '..'
            raise HTTPException(404, "no such file (open it from its session page)")
        response = FileResponse(inside(cache, p["folder"], p["version"], p["name"]))
        response.headers["cache-control"] = REPORT_CACHE
        return response

    def export(request):
        key, params = session_key(request.query_params), request.query_params
        fmt = params.get("format")
        if fmt not in EXPORTS:
            raise HTTPException(400, f"format: choose one of {list(EXPORTS)}")
        pose_key = {**key, **{k: params.get(k, "") for k in ("training_set", "pose_params", "pose3d_params")}}
        folder = Path(tempfile.mkdtemp(dir=exports_dir))
        out = folder / f"export.{fmt}"
        try:
            locked(lambda b: b.export_session(pose_key, fmt, out))
        except BaseException as err:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(err, (LookupError, ValueError)):
                raise HTTPException(404, str(err)) from None
            raise
        name = download_name(key["subject"], f"{key['session_datetime']:%Y%m%d_%H%M%S}", suffix=fmt)
        return FileResponse(inside(exports_dir, folder.name, out.name), media_type=EXPORTS[fmt], filename=name,
                            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    def video(request):
        from ..report.video import write_labeled_video

        key, params = session_key(request.query_params), request.query_params
        model = {k: params.get(k, "") for k in ("training_set", "pose_params")}
        camera = params.get("camera", "")
        with lock:
            b = db()
            version = b.browse.session_version(key)
            name = hashlib.sha1(repr((sorted(key.items()), model, camera, version)).encode()).hexdigest()[:16]
            out = cache / "videos" / f"{name}.mp4"
            if not out.exists():
                if camera not in b.report_data.pose_cameras(key, model):
                    raise HTTPException(404, f"no 2D pose of camera {camera!r} from model {model}")
                out.parent.mkdir(parents=True, exist_ok=True)
                drawing = out.with_name(f".drawing-{uuid.uuid4().hex}.mp4")
                try:
                    write_labeled_video(out_path=drawing, **b.report_data.labeled_video_inputs(key, model, camera))
                    os.replace(drawing, out)
                finally:
                    drawing.unlink(missing_ok=True)
        return FileResponse(inside(cache, "videos", out.name), media_type="video/mp4",
                            filename=download_name(key["subject"], camera, "labeled", suffix="mp4"))

    def pipeline_page(request):
        return page(request, "pipeline.html", rows=listing("pipeline", lambda b: b.pipeline_status()), refresh_s=10)

    def rigs_page(request):
        return page(request, "rigs.html", rows=listing("rigs", lambda b: b.browse.calibrations()))

    def models_page(request):
        return page(request, "models.html", rows=listing("models", lambda b: b.browse.models()))

    def units_page(request):
        return page(request, "units.html", **paged(request, listing("units", lambda b: b.browse.units())))

    routes = [Route("/", sessions_page, name="sessions"), Route("/session", session_page, name="session"),
              Route("/session/report", report, name="report"),
              Route("/reports/{folder:str}/{version:str}/{name:str}", report_file, name="report_file"),
              Route("/session/export", export, name="export"), Route("/session/video", video, name="video"),
              Route("/pipeline", pipeline_page, name="pipeline"), Route("/rigs", rigs_page, name="rigs"),
              Route("/models", models_page, name="models"), Route("/units", units_page, name="units")]
    return Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)])
