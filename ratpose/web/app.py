"""The web app: server-rendered pages over ratpose.schema.browse; never writes to the database."""
from __future__ import annotations

import hashlib
import tempfile
import threading
from datetime import date, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, RedirectResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))  # autoescapes .html
COLUMNS = {"subject": "subject", "session_datetime": "date", "rig": "rig", "duration_s": "duration (s)",
           "frames": "frames", "sync_qc": "sync QC", "calibration": "calibration", "coverage": "3D coverage",
           "knob": "knob validation", "units": "units"}
QC_STATES = ("pass", "fail", "pending")
EXPORTS = {"nwb": "application/x-hdf5", "csv": "text/csv"}


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


def session_key(params) -> dict:
    """The session key named by the query parameters subject and datetime (ISO 8601)."""
    try:
        return {"subject": params["subject"], "session_datetime": datetime.fromisoformat(params["datetime"])}
    except (KeyError, ValueError):
        raise HTTPException(400, "give subject and datetime (ISO 8601)") from None


def create_app(browse, report_data, export_session, pipeline_status, cache_dir: Path | None = None) -> Starlette:
    """The app over the database shell's modules ratpose.schema.browse and .report_data, export_session(key, fmt, out) and
    a function giving `ratpose status`'s rows; reports and videos are cached under ``cache_dir``."""
    cache = Path(cache_dir or tempfile.mkdtemp(prefix="ratpose-serve-"))
    cache.mkdir(parents=True, exist_ok=True)  # a --cache-dir that does not exist yet
    lock = threading.Lock()  # one DataJoint connection: one request at a time talks to the database

    def page(request, name, **context):
        return TEMPLATES.TemplateResponse(request, name, context)

    def sessions_page(request):
        with lock:
            all_rows = browse.sessions()
        params = request.query_params
        rows = filter_sessions(all_rows, params)
        descending = params.get("desc") == "1"
        sort_links = {name: request.url.include_query_params(
            sort=name, desc="1" if params.get("sort", "session_datetime") == name and not descending else "0")
            for name in COLUMNS}
        return page(request, "sessions.html", rows=rows, columns=COLUMNS, params=params, sort_links=sort_links,
                    subjects=sorted({r["subject"] for r in all_rows}), rigs=sorted({r["rig"] for r in all_rows}),
                    qc_states=QC_STATES, total=len(all_rows))

    def session_page(request):
        key = session_key(request.query_params)
        with lock:
            try:
                info = browse.session(key)
            except LookupError as err:
                raise HTTPException(404, str(err)) from None
        return page(request, "session.html", key=key, iso=key["session_datetime"].isoformat(), exports=EXPORTS, **info)

    def report(request):
        """Redirect to the report of the session's current rows, drawing it first if not cached."""
        from ..report.build import write_report

        key, params = session_key(request.query_params), request.query_params
        folder = hashlib.sha1(repr(sorted(key.items())).encode()).hexdigest()[:16]
        with lock:
            try:
                model = report_data.choose_model(key, params.get("training_set"), params.get("pose_params"))
                version = f"{browse.session_version(key)}-{hashlib.sha1(repr(model).encode()).hexdigest()[:8]}"
                out = cache / folder / version
                if not (out / "index.html").exists():
                    write_report(report_data.fetch_report(key, model), out)
            except (LookupError, ValueError) as err:
                raise HTTPException(404, str(err)) from None
        return RedirectResponse(request.url_for("report_file", folder=folder, version=version, name="index.html"))

    def report_file(request):
        p = request.path_params
        path = cache / p["folder"] / p["version"] / p["name"]
        if "/" in p["name"] or p["name"].startswith(".") or not path.is_file():
            raise HTTPException(404, "no such report file (open the report from its session page)")
        return FileResponse(path)

    def export(request):
        key, params = session_key(request.query_params), request.query_params
        fmt = params.get("format")
        if fmt not in EXPORTS:
            raise HTTPException(400, f"format: choose one of {list(EXPORTS)}")
        pose_key = {**key, **{k: params.get(k, "") for k in ("training_set", "pose_params", "pose3d_params")}}
        out = Path(tempfile.mkdtemp(dir=cache)) / f"{key['subject']}_{key['session_datetime']:%Y%m%d_%H%M%S}.{fmt}"
        with lock:
            try:
                export_session(pose_key, fmt, out)
            except (LookupError, ValueError) as err:
                raise HTTPException(404, str(err)) from None
        return FileResponse(out, media_type=EXPORTS[fmt], filename=out.name)

    def video(request):
        from ..report.video import write_labeled_video

        key, params = session_key(request.query_params), request.query_params
        model = {k: params.get(k, "") for k in ("training_set", "pose_params")}
        camera = params.get("camera", "")
        with lock:
            version = browse.session_version(key)
            name = hashlib.sha1(repr((sorted(key.items()), model, camera, version)).encode()).hexdigest()[:16]
            out = cache / "videos" / f"{name}.mp4"
            if not out.exists():
                if camera not in report_data.pose_cameras(key, model):
                    raise HTTPException(404, f"no 2D pose of camera {camera!r} from model {model}")
                out.parent.mkdir(parents=True, exist_ok=True)
                write_labeled_video(out_path=out, **report_data.labeled_video_inputs(key, model, camera))
        return FileResponse(out, media_type="video/mp4", filename=f"{key['subject']}_{camera}_labeled.mp4")

    def pipeline_page(request):
        with lock:
            rows = pipeline_status()
        return page(request, "pipeline.html", rows=rows, refresh_s=10)

    def rigs_page(request):
        with lock:
            rows = browse.calibrations()
        return page(request, "rigs.html", rows=rows)

    def models_page(request):
        with lock:
            rows = browse.models()
        return page(request, "models.html", rows=rows)

    def units_page(request):
        with lock:
            rows = browse.units()
        return page(request, "units.html", rows=rows)

    routes = [Route("/", sessions_page, name="sessions"), Route("/session", session_page, name="session"),
              Route("/session/report", report, name="report"),
              Route("/reports/{folder:str}/{version:str}/{name:str}", report_file, name="report_file"),
              Route("/session/export", export, name="export"), Route("/session/video", video, name="video"),
              Route("/pipeline", pipeline_page, name="pipeline"), Route("/rigs", rigs_page, name="rigs"),
              Route("/models", models_page, name="models"), Route("/units", units_page, name="units")]
    return Starlette(routes=routes)
