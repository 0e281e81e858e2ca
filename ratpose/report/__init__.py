"""Session reports (HTML + PNGs) and labeled videos.

``write_report(SessionReport, out_dir)`` draws a report (data from ratpose.schema.report_data.fetch_report);
``write_labeled_video(...)`` draws pose on a video; ``add_commands(subparsers)`` adds `ratpose report`
and `ratpose labeled-video` to the command line.
"""
from .build import write_report
from .commands import add_commands
from .video import draw_pose, write_labeled_video

__all__ = ["add_commands", "draw_pose", "write_labeled_video", "write_report"]
