"""Run EKS's calibrated multi-camera smoother (eks.fit_eks_multicam with a calibration .toml, its default
settings) on one set of 2D predictions; run by a Python that has ensemble-kalman-smoother installed.

Usage: python eks_runner.py IN.npz OUT.npz
IN holds points (C, T, P, 2) px, likelihood (C, T, P), and per camera names, K, dist, rvec, tvec (mm), size.
OUT gets points3d (T, P, 3) in the calibration frame (mm) and seconds (the fit_eks_multicam call alone).
Standalone on purpose: it imports neither ratpose nor anything outside EKS's own dependencies.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from aniposelib.cameras import Camera, CameraGroup
from eks import fit_eks_multicam


def main(src, dst):
    data = np.load(src)
    names = [str(n) for n in data["names"]]
    parts = [f"part{i}" for i in range(data["points"].shape[2])]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        CameraGroup([Camera(matrix=K, dist=d, size=s, rvec=r, tvec=t, name=n) for n, K, d, r, t, s in
                     zip(names, data["K"], data["dist"], data["rvec"], data["tvec"], data["size"])]
                    ).dump(tmp / "calibration.toml")
        columns = pd.MultiIndex.from_product([["sim"], parts, ["x", "y", "likelihood"]],
                                             names=["scorer", "bodyparts", "coords"])
        csvs = {}
        for c, name in enumerate(names):
            table = np.concatenate([data["points"][c], data["likelihood"][c][..., None]], axis=-1)
            csvs[name] = [str(tmp / f"{name}.csv")]
            pd.DataFrame(table.reshape(table.shape[0], -1), columns=columns).to_csv(csvs[name][0])
        t0 = time.perf_counter()
        df_3d = fit_eks_multicam(csvs, str(tmp / "out"), calibration=str(tmp / "calibration.toml"))[-1]
        seconds = time.perf_counter() - t0
    scorer = df_3d.columns.get_level_values("scorer")[0]
    points3d = np.stack([np.stack([df_3d[(scorer, p, a)].to_numpy() for a in "xyz"], -1) for p in parts], 1)
    np.savez(dst, points3d=points3d, seconds=seconds)


if __name__ == "__main__":
    main(*sys.argv[1:])
