"""Data roots (ratpose.roots): a session is stored by root name and relative path, and each machine finds
it through its own mapping; one without the root says so, and its workers leave the session to others."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ratpose.errors import ConfigurationError, NotFoundError
from ratpose.roots import configured_roots, locate, relative_to_root


def test_roots_come_from_the_environment_with_candidate_paths(tmp_path):
    env = {"RATPOSE_ROOT_RAW": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}", "RATPOSE_ROOT_MODELS": "/m",
           "RATPOSE_ROOT_EMPTY": "", "HOME": "/root"}
    roots = configured_roots(env)
    assert roots == {"models": (Path("/m"),), "raw": (tmp_path / "a", tmp_path / "b")}
    with pytest.raises(ConfigurationError, match="RATPOSE_ROOT_9X"):
        configured_roots({"RATPOSE_ROOT_9X": "/x"})


def test_a_path_is_found_under_the_first_candidate_that_holds_it(tmp_path):
    (tmp_path / "b" / "rat01" / "s1").mkdir(parents=True)
    roots = {"raw": (tmp_path / "a", tmp_path / "b")}
    assert relative_to_root(tmp_path / "b" / "rat01" / "s1", roots) == ("raw", "rat01/s1")
    assert relative_to_root(tmp_path / "elsewhere", roots) is None
    assert locate("raw", "rat01/s1", roots) == tmp_path / "b" / "rat01" / "s1"
    with pytest.raises(NotFoundError) as missing:
        locate("raw", "rat02/s1", roots)
    message = str(missing.value)
    assert "'raw'" in message and "rat02/s1" in message and str(tmp_path / "a" / "rat02" / "s1") in message
    with pytest.raises(NotFoundError, match="RATPOSE_ROOT_VIDEOS=PATH"):
        locate("videos", "rat01/s1", roots)


def test_a_session_ingested_under_a_root_is_found_by_another_machine_through_its_own_mapping(
        clean_db, tmp_path, monkeypatch):
    from ratpose.ingest.session_folder import read_session_folder
    from ratpose.sim import SessionSettings, write_session

    raw, pose = clean_db["raw"], clean_db["pose"]
    acquisition = tmp_path / "acquisition-pc" / "raw"
    folder = acquisition / "rat_roots" / "s1"
    write_session(folder, SessionSettings(seconds=1.0, fps=50.0, seed=5, subject="rat_roots", n_units=0))
    monkeypatch.setenv("RATPOSE_ROOT_RAW", str(acquisition))
    key, inserted = raw.insert_session(read_session_folder(folder))
    row = (raw.Session & key).fetch1()
    assert inserted and (row["data_root"], row["session_dir"]) == ("raw", "rat_roots/s1")
    assert raw.describe_location(row) == "raw:rat_roots/s1"
    assert raw.video_path({**key, "camera": "cam0"}) == f"{folder}/cam0.avi"
    # the GPU node mounts the same files elsewhere: its own mapping finds them (the first path lacks them)
    gpu = tmp_path / "gpu-node" / "mnt" / "lab-raw"
    shutil.copytree(acquisition, gpu)
    monkeypatch.setenv("RATPOSE_ROOT_RAW", f"{tmp_path / 'nowhere'}{os.pathsep}{gpu}")
    assert raw.video_path({**key, "camera": "cam0"}) == f"{gpu}/rat_roots/s1/cam0.avi"
    assert raw.find_session(session_dir=gpu / "rat_roots" / "s1") == key
    assert raw.insert_session(read_session_folder(gpu / "rat_roots" / "s1")) == (key, False)  # the same session
    assert key in raw.reachable_sessions()
    # a machine that does not map the root: one line naming root and path; its workers leave the session
    monkeypatch.delenv("RATPOSE_ROOT_RAW")
    with pytest.raises(NotFoundError, match="data root 'raw' is not mapped on this machine.*rat_roots/s1"):
        raw.video_path({**key, "camera": "cam0"})
    assert key not in raw.reachable_sessions()
    assert len(pose.Pose2D.key_source & key) == 0
