"""The comparison study: YAML config -> grid of runs -> resumable runner -> statistics -> report.

``load_study(path)`` validates the YAML; ``expand(cfg)`` lists the runs;
``run_study(cfg)`` runs or resumes them; ``write_report(study_dir)`` writes the report.
"""

from ecomlm.study.config import StudyConfig, StudyConfigError, load_study, parse_study
from ecomlm.study.grid import PlannedRun, expand
from ecomlm.study.report import write_report
from ecomlm.study.runner import EXECUTORS, run_job, run_study

__all__ = [
    "EXECUTORS",
    "PlannedRun",
    "StudyConfig",
    "StudyConfigError",
    "expand",
    "load_study",
    "parse_study",
    "run_job",
    "run_study",
    "write_report",
]
