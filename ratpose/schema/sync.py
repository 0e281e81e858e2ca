"""SyncedFrames: every delivered video frame on the neural clock (ratpose.sync does the work)."""
from __future__ import annotations

from dataclasses import asdict, fields

import datajoint as dj

from .. import sync
from . import raw
from .transaction import OneTransactionMake

schema = dj.Schema()


@schema
class SyncQCParams(dj.Lookup):
    definition = """  # thresholds above which a camera's synchronisation is flagged
    sync_qc : varchar(16)
    ---
    max_drop_fraction : float64   # dropped pulses / pulses in the recording span
    max_residual_us : float64     # largest clock-fit residual
    """
    contents = [("default", 0.01, 50.0)]


@schema
class SyncedFrames(OneTransactionMake, dj.Computed):
    definition = """  # row i = video frame i of the Recording
    -> raw.Recording
    ---
    n_frames : int64
    first_pulse : int64               # pulse index of the first delivered frame
    pulse_index : <blob@ratpose>      # int64 (n_frames,), index into TriggerLog.tick_us
    time_s : <blob@ratpose>           # float64 (n_frames,), neural clock
    dropped_pulses : <blob@ratpose>   # pulses in the recording span with no delivered frame
    last_pulse : int64                # pulse index of the last delivered frame
    n_pulses : int64                  # pulses in the trigger log
    lost_in_transfer : int64          # dropped pulses that were exposed (FrameID jumps)
    missed_trigger : int64            # dropped pulses the camera never exposed
    drift_ppm : float64               # camera clock rate vs neural clock
    clock_offset_s : float64
    residual_rms_s : float64
    residual_max_s : float64
    """

    @property
    def key_source(self):
        return raw.Recording & raw.TriggerLog

    def make_fetch(self, key):
        frame_id, camera_ts_ns = (raw.Recording & key).fetch1("frame_id", "camera_ts_ns")
        tick_us, rate = (raw.TriggerLog * raw.Session & key).fetch1("tick_us", "trigger_rate_hz")
        return frame_id, camera_ts_ns, tick_us, rate

    def make_compute(self, key, frame_id, camera_ts_ns, tick_us, rate):
        return (sync.align_frames(frame_id, camera_ts_ns, tick_us, rate_hz=rate),)

    def make_insert(self, key, alignment):
        self.insert1({**key, "n_frames": len(alignment.pulse_index), **asdict(alignment)})


@schema
class SessionSync(OneTransactionMake, dj.Computed):
    definition = """  # session-level synchronisation QC over all cameras
    -> raw.Session
    -> SyncQCParams
    ---
    n_cameras : int16
    n_common_frames : int64     # pulses delivered by every camera
    passed : bool
    problems = '' : varchar(2048)
    """

    @property
    def key_source(self):
        incomplete = raw.Session & (raw.Recording - SyncedFrames.proj()).proj()
        return (raw.Session - incomplete.proj()) * SyncQCParams & SyncedFrames.proj()

    def make_fetch(self, key):
        thresholds = (SyncQCParams & key).fetch1("max_drop_fraction", "max_residual_us")
        rows = (SyncedFrames & key).to_dicts()
        return thresholds, rows

    def make_compute(self, key, thresholds, rows):
        max_drop, max_residual_us = thresholds
        problems = []
        for row in rows:
            alignment = sync.FrameAlignment(**{f.name: row[f.name] for f in fields(sync.FrameAlignment)})
            problems += [f"{row['camera']}: {p}" for p in
                         sync.sync_qc(alignment, max_drop_fraction=max_drop, max_residual_s=max_residual_us * 1e-6)]
        common, _ = sync.match_cameras({row["camera"]: row["pulse_index"] for row in rows})
        return len(rows), len(common), problems

    def make_insert(self, key, n_cameras, n_common, problems):
        self.insert1({**key, "n_cameras": n_cameras, "n_common_frames": n_common,
                      "passed": not problems, "problems": "; ".join(problems)[:2048]})
