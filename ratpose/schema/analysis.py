"""Analysis: knob validation of the tracking, movement events, and pose joined with spikes."""
from __future__ import annotations

from dataclasses import fields

import datajoint as dj
import numpy as np

from ..behaviour import AnalysisSettings, KnobModel, analyse_unit, session_events, touch_intervals, validate_session
from ..behaviour.decoding import DecodingSettings, decode_session
from ..behaviour.encoding import EncodingSettings, encode_session
from ..poses import position_of
from ..timeseries import session_timeseries
from . import calibration, pose, raw
from .transaction import OneTransactionMake

schema = dj.Schema()


@schema
class Knob(dj.Manual):
    definition = """  # knob geometry in a calibration's frame (mm), set by hand or estimated from a keypoint
    -> calibration.Calibration
    ---
    centre : <blob>              # (3,) mm
    radius_mm : float64
    axis : <blob>                # (3,) unit rotation axis of the knob
    up : <blob>                  # (3,) unit world vertical (for horizontal movement directions)
    source : enum('hand', 'keypoint')
    """


@schema
class AnalysisParams(dj.Lookup):
    definition = """  # body parts and thresholds of the behaviour analyses (ratpose.behaviour.AnalysisSettings)
    analysis_params : varchar(32)
    ---
    settings : <blob>   # AnalysisSettings fields
    """
    contents = [("default", {f.name: f.default for f in fields(AnalysisSettings)})]


def analysis_settings(key) -> AnalysisSettings:
    stored = (AnalysisParams & key).fetch1("settings")
    return AnalysisSettings(**{f.name: stored.get(f.name, f.default) for f in fields(AnalysisSettings)})


class _SessionAnalysis(OneTransactionMake):
    """Shared by the per-session analyses: their keys and their inputs (pose, knob log, knob, settings)."""

    @property
    def key_source(self):
        """Pose3D x AnalysisParams keys whose session has a knob log and whose calibration has a Knob."""
        return (pose.Pose3D.proj() * AnalysisParams.proj() & (calibration.SessionCalibration * Knob).proj()
                & raw.KnobLog)

    def make_fetch(self, key):
        return (*session_inputs(key), analysis_settings(key))


def session_inputs(key) -> tuple:
    """Pose3D (``ratpose.poses``' form), the knob log, the knob and its up vector for one key."""
    poses = pose.fetch_pose3d({k: key[k] for k in pose.Pose3D.primary_key})
    knob_log = (raw.KnobLog & key).fetch1()
    knob_row = (Knob * calibration.SessionCalibration & key).to_dicts()[0]
    knob = KnobModel(knob_row["centre"], knob_row["radius_mm"], knob_row["axis"])
    return poses, knob_log, knob, np.asarray(knob_row["up"], float)


@schema
class KnobValidation(_SessionAnalysis, dj.Computed):
    definition = """  # does the tracked paw sit on the knob when the knob says it is touched?
    -> pose.Pose3D
    -> AnalysisParams
    ---
    sensitivity : float64           # touch time with the paw on the knob
    precision : float64             # paw-on-knob time while touched
    tracked_fraction : float64
    arrival_fraction : float64      # touches with a detected paw arrival
    latency_median_s = null : float64   # paw arrival - touch onset
    latency_iqr_s = null : float64
    latencies_s : <blob>            # per touch (NaN: no arrival found)
    digit_rotation_corr = null : float64
    marker_rotation_corr = null : float64
    n_touches : int32
    passed : bool
    failed_checks = '' : varchar(2048)
    """

    def make_compute(self, key, poses, knob_log, knob, up, settings):
        return (validate_session(poses, knob, knob_log, settings),)

    def make_insert(self, key, result):
        summary = result.summary()
        scalars = {name: _finite_or_none(summary[name]) for name in
                   ("sensitivity", "precision", "tracked_fraction", "arrival_fraction", "latency_median_s",
                    "latency_iqr_s", "digit_rotation_corr", "marker_rotation_corr")}
        for name in ("sensitivity", "precision", "tracked_fraction", "arrival_fraction"):
            scalars[name] = scalars[name] if scalars[name] is not None else 0.0
        self.insert1({**key, **scalars, "latencies_s": np.asarray(result.latencies_s, float),
                      "n_touches": int(summary["n_touches"]), "passed": bool(result.passed),
                      "failed_checks": "; ".join(result.failed_checks)[:2048]})


@schema
class MovementEvents(_SessionAnalysis, dj.Computed):
    definition = """  # reach onset, paw arrival, touch, turn start/end, release per trial (neural clock)
    -> pose.Pose3D
    -> AnalysisParams
    ---
    n_events : int32
    """

    class Event(dj.Part):
        definition = """
        -> master
        event_index : int32
        ---
        trial : int32
        event : varchar(16)
        time_s : float64
        """

    def make_compute(self, key, poses, knob_log, knob, up, settings):
        return (session_events(poses, knob, knob_log, settings),)

    def make_insert(self, key, events):
        self.insert1({**key, "n_events": len(events)})
        self.Event.insert([{**key, "event_index": i, "trial": int(row.trial), "event": str(row.event),
                            "time_s": float(row.time_s)} for i, row in enumerate(events.itertuples())])


@schema
class UnitTuning(OneTransactionMake, dj.Computed):
    definition = """  # one unit against the pose: paw at each spike, speed/direction tuning, shuffle tests
    -> MovementEvents
    -> raw.Unit
    ---
    n_spikes : int64
    paw_at_spike : <blob@ratpose>      # float32 (n_spikes, 3) mm
    speed_at_spike : <blob@ratpose>    # float32 (n_spikes,) mm/s
    speed_bin_centres : <blob>         # mm/s
    speed_rate_hz : <blob>
    speed_occupancy_s : <blob>
    speed_information = null : float64    # bits/spike (null: no bin with enough occupancy)
    speed_p_value = null : float64     # circular-shift shuffle test (null: not run, test_note says why)
    preferred_speed_mm_s = null : float64
    direction_bin_centres = null : <blob>
    direction_rate_hz = null : <blob>
    preferred_direction_deg = null : float64
    direction_depth = null : float64
    direction_p_value = null : float64
    test_note = '' : varchar(255)      # the shuffle tests not run for too little data, and why
    """

    class PETH(dj.Part):
        definition = """  # peri-event time histogram around one kind of movement event
        -> master
        event : varchar(16)
        ---
        n_events : int32
        bin_centres_s : <blob>
        rate_hz : <blob>
        sem_hz : <blob>
        """

    def make_fetch(self, key):
        poses, _, knob, up = session_inputs(key)
        settings = analysis_settings(key)
        events = (MovementEvents.Event & key).to_dicts(order_by="event_index")
        spikes = (raw.Unit & key).fetch1("spike_times")
        return spikes, poses.time.values, position_of(poses, settings.paw), knob, up, events, settings

    def make_compute(self, key, spikes, times_s, paw_xyz, knob, up, events, settings):
        import pandas as pd

        table = pd.DataFrame(events, columns=["trial", "event", "time_s"])
        return (analyse_unit(spikes, times_s, paw_xyz, knob, up, table, settings),)

    def make_insert(self, key, result):
        curve = result.speed.curve
        direction = result.direction
        self.insert1({**key, "n_spikes": len(result.speed_at_spike),
                      "paw_at_spike": result.paw_at_spike.astype(np.float32),
                      "speed_at_spike": result.speed_at_spike.astype(np.float32),
                      "speed_bin_centres": curve.bin_centres, "speed_rate_hz": curve.rate_hz,
                      "speed_occupancy_s": curve.occupancy_s,
                      "speed_information": _finite_or_none(result.speed.information_bits_per_spike),
                      "speed_p_value": _finite_or_none(result.speed.p_value),
                      "preferred_speed_mm_s": _finite_or_none(result.speed.preferred_value),
                      "direction_bin_centres": direction.curve.bin_centres,
                      "direction_rate_hz": direction.curve.rate_hz,
                      "preferred_direction_deg": _finite_or_none(direction.preferred_deg),
                      "direction_depth": _finite_or_none(direction.modulation_depth),
                      "direction_p_value": _finite_or_none(direction.p_value), "test_note": result.test_note[:255]})
        self.PETH.insert([{**key, "event": name, "n_events": int(p.counts.shape[0]),
                           "bin_centres_s": p.bin_centres_s, "rate_hz": p.rate_hz, "sem_hz": p.sem_hz}
                          for name, p in result.peths.items()])


def timeseries_inputs(key: dict, analysis_params: str = "default") -> dict:
    """The arguments of ``ratpose.timeseries.session_timeseries`` for one Pose3D key: its pose, units, touches,
    movement events (empty before MovementEvents ran) and the lab's up direction (None without a Knob)."""
    import pandas as pd

    pose_key = {k: key[k] for k in pose.Pose3D.primary_key}
    poses = pose.fetch_pose3d(pose_key)
    units = (raw.Unit & pose_key).to_dicts(order_by="unit_id")
    metadata = pd.DataFrame([{k: u[k] for k in ("unit_id", "tetrode", "snr", "peak_amplitude_uv")} for u in units],
                            columns=["unit_id", "tetrode", "snr", "peak_amplitude_uv"]).set_index("unit_id")
    knob_log = (raw.KnobLog & pose_key).fetch1()
    events = (MovementEvents.Event & pose_key & {"analysis_params": analysis_params}).to_dicts(order_by="time_s")
    knobs = (Knob * calibration.SessionCalibration & pose_key).to_dicts()
    return {"poses": poses, "spike_times": {u["unit_id"]: u["spike_times"] for u in units}, "units": metadata,
            "touch_intervals": touch_intervals(knob_log["touch_on_s"], knob_log["touch_off_s"],
                                               float(poses.time.values[-1])),
            "events": pd.DataFrame(events, columns=["trial", "event", "time_s"]),
            "up": np.asarray(knobs[0]["up"], float) if knobs else None}


@schema
class UnitEncoding(OneTransactionMake, dj.Computed):
    definition = """  # each unit as a Poisson GLM of the forelimb's kinematics and its own history (behaviour.encoding)
    -> MovementEvents
    ---
    n_units : int32
    bin_s : float64                    # s
    lags_s : <blob>                    # the filters' lags (s)
    settings : <blob>                  # EncodingSettings
    """

    class Unit(dj.Part):
        definition = """
        -> master
        -> raw.Unit
        ---
        pseudo_r2 = null : float64     # held out (McFadden), cross-validated by time blocks (null: not fitted)
        group_r2 : <blob>              # {covariate group: its unique pseudo-R2}
        p_value = null : float64       # likelihood-ratio test against the unit's spike history alone
        tuned : bool                   # p_value < settings alpha
        filters : <blob>               # {group: (n_lags, n_columns)} log rate per scale unit (COVARIATE_SCALES)
        filter_se : <blob>             # {group: (n_lags, n_columns)} their standard errors
        spike_history : <blob>         # (n_spike_lags,) log rate per spike
        n_spikes : int64               # in the bins fitted
        note = '' : varchar(255)       # why it was not fitted
        """

    @property
    def key_source(self):
        """Sessions' MovementEvents with at least one sorted unit."""
        return MovementEvents.proj() & raw.Unit

    def make_fetch(self, key):
        return timeseries_inputs(key, key["analysis_params"]), EncodingSettings()

    def make_compute(self, key, inputs, settings):
        return encode_session(session_timeseries(**inputs), settings), settings

    def make_insert(self, key, results, settings):
        self.insert1({**key, "n_units": len(results), "bin_s": settings.bin_s, "lags_s": settings.lags_s,
                      "settings": {f.name: getattr(settings, f.name) for f in fields(settings)}})
        self.Unit.insert([{**key, "unit_id": r.unit_id, "pseudo_r2": _finite_or_none(r.pseudo_r2),
                           "group_r2": r.group_r2, "p_value": _finite_or_none(r.p_value), "tuned": r.tuned,
                           "filters": r.filters, "filter_se": r.filter_se, "spike_history": r.spike_history,
                           "n_spikes": r.n_spikes,
                           "note": r.note[:255]} for r in results])


@schema
class PopulationDecoding(OneTransactionMake, dj.Computed):
    definition = """  # the paw's velocity and supination decoded from all units, held out (behaviour.decoding)
    -> MovementEvents
    ---
    n_units : int32
    n_bins : int64
    linear_r2 : <blob>                 # {variable: R^2} linear (Wiener) decoder
    kalman_r2 : <blob>                 # {variable: R^2} Kalman-filter decoder
    bayesian_r2 : <blob>               # {variable: R^2} pynapple's Bayesian decoder
    knob_turns_r2 = null : float64     # the knob sensor's angle decoded during turns only (null: no turns)
    settings : <blob>                  # DecodingSettings
    note = '' : varchar(255)           # why it was not decoded
    bin_times_s = null : <blob@ratpose>  # (n_bins,) s
    actual = null : <blob@ratpose>     # {variable: (n_bins,)} from the pose
    predicted = null : <blob@ratpose>  # {variable: (n_bins,)} held-out linear decoding
    """

    @property
    def key_source(self):
        """Sessions' MovementEvents with at least one sorted unit."""
        return MovementEvents.proj() & raw.Unit

    def make_fetch(self, key):
        angle = (raw.KnobLog & key).fetch1("angle_time_s", "angle_deg")
        return timeseries_inputs(key, key["analysis_params"]), angle, DecodingSettings()

    def make_compute(self, key, inputs, angle, settings):
        return decode_session(session_timeseries(**inputs), *angle, settings), settings

    def make_insert(self, key, result, settings):
        self.insert1({**key, "n_units": result.n_units, "n_bins": result.n_bins, "linear_r2": result.linear_r2,
                      "kalman_r2": result.kalman_r2,
                      "bayesian_r2": result.bayesian_r2, "knob_turns_r2": _finite_or_none(result.knob_turns_r2),
                      "note": result.note[:255], "bin_times_s": result.bin_times_s, "actual": result.actual,
                      "predicted": result.predicted,
                      "settings": {f.name: getattr(settings, f.name) for f in fields(settings)}})


def _finite_or_none(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def set_knob(calibration_key: dict, knob: KnobModel, up, source: str = "hand") -> bool:
    """Store (or replace) the knob geometry of a calibration; True when it replaced one, whose results
    (KnobValidation and what follows) are deleted with it, for `populate` to recompute."""
    row = {**calibration_key, "centre": knob.centre, "radius_mm": knob.radius_mm,
           "axis": knob.axis if knob.axis is not None else np.full(3, np.nan),
           "up": np.asarray(up, float) / np.linalg.norm(up), "source": source}
    previous = Knob & {k: calibration_key[k] for k in Knob.primary_key}
    replaced = bool(previous)
    if replaced:
        previous.delete(prompt=False)
    Knob.insert1(row)
    return replaced
