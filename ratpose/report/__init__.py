"""Session reports (HTML + PNGs) and labeled videos.

``write_report(SessionReport, out_dir)`` draws a report (data from ratpose.schema.report_data.fetch_report);
``write_labeled_video(...)`` draws pose on a video. The command-line shell (`ratpose report`,
`ratpose labeled-video`) is ``ratpose.cli.report``.
"""
from .build import write_calibration_report, write_report
from .video import draw_pose, write_labeled_video

__all__ = ["draw_pose", "write_calibration_report", "write_labeled_video", "write_report"]
