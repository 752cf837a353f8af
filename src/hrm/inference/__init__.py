"""Inference: the one run-until-halted loop, solving puzzles (views, voting), and reasoning traces.

from hrm.inference import run_until_halted, solve, solve_many, write_trace
"""

from __future__ import annotations

from hrm.inference.runner import Halted, SegmentObserver, run_until_halted
from hrm.inference.solve import Solution, parse_puzzle, solve, solve_many
from hrm.inference.trace import SCHEMA_VERSION, TraceRecorder, trace_schema, validate_trace, write_trace

__all__ = [
    "SCHEMA_VERSION",
    "Halted",
    "SegmentObserver",
    "Solution",
    "TraceRecorder",
    "parse_puzzle",
    "run_until_halted",
    "solve",
    "solve_many",
    "trace_schema",
    "validate_trace",
    "write_trace",
]
