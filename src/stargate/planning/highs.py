"""HiGHS (``highspy``) as the plan's :class:`~stargate.engine.plan_model.Solver`.

The program is passed whole (``HighsLp`` with the column-wise matrix and the integrality) with GPU counts in
thousands (``LinearProgram.for_solver``: about twice as fast; values come back in GPUs), with HiGHS's output off and
a time limit; the model status becomes one word: 'optimal', 'infeasible', 'unbounded', 'time_limit' or
'error'. HiGHS's sub-MIP heuristics (RINS, RENS, root reduced cost) are off: on these programs they cost most of
the time and find nothing the branch and bound does not. HiGHS prints a banner to the process's standard output
the first time a solver object is made; that one construction runs with file descriptor 1 pointed at /dev/null so
that ``stargate plan --json`` prints only JSON.
"""

import os
import sys
import threading
import time
from typing import Any

import highspy
import numpy as np

from stargate.engine.plan_model import GPU_UNIT, LinearProgram, LpSolution, Solver

_QUIET = threading.Lock()
_banner_done = False


def _new_highs() -> Any:
    """A ``highspy.Highs`` with its output off; the first one is made with standard output muted."""
    global _banner_done
    with _QUIET:
        if _banner_done:
            h = highspy.Highs()  # type: ignore[no-untyped-call]
        else:
            sys.stdout.flush()
            saved = os.dup(1)
            try:
                with open(os.devnull, "w") as null:
                    os.dup2(null.fileno(), 1)
                    h = highspy.Highs()  # type: ignore[no-untyped-call]
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            _banner_done = True
    h.setOptionValue("output_flag", False)
    return h


def _highs_lp(lp: LinearProgram) -> Any:
    model = highspy.HighsLp()
    model.num_col_ = lp.num_col
    model.num_row_ = lp.num_row
    model.col_cost_ = lp.c
    model.offset_ = lp.offset
    model.col_lower_ = lp.col_lower
    model.col_upper_ = lp.col_upper
    model.row_lower_ = lp.row_lower
    model.row_upper_ = lp.row_upper
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.num_col_ = lp.num_col
    model.a_matrix_.num_row_ = lp.num_row
    model.a_matrix_.start_ = lp.a_start.astype(np.int32)
    model.a_matrix_.index_ = lp.a_index.astype(np.int32)
    model.a_matrix_.value_ = lp.a_value
    if lp.is_mip():
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        model.integrality_ = [kinds[int(v)] for v in lp.integrality]
    return model


_STATUS = {
    "kOptimal": "optimal",
    "kInfeasible": "infeasible",
    "kUnbounded": "unbounded",
    "kTimeLimit": "time_limit",
    "kIterationLimit": "time_limit",
    "kSolutionLimit": "time_limit",
    "kInterrupt": "time_limit",
    "kHighsInterrupt": "time_limit",
}


_MIP_HEURISTICS = {
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
}
"""HiGHS's sub-MIP heuristics off: on plan programs they find nothing the search does not, and cost most of the
time (60 months × 20 sources × 6 models: 14 s with them, 1.3 s without, same optimum; bench/plan_lp.py)."""


_TOLERANCES = {
    "primal_feasibility_tolerance": 1e-7 / GPU_UNIT,
    "mip_feasibility_tolerance": 1e-6 / GPU_UNIT,
}
"""HiGHS's default feasibility tolerances (1e-7 for LPs, 1e-6 for MIPs) divided by :data:`GPU_UNIT`: GPU balances
hold to the same number of GPUs as when the solver counted single GPUs (no slower on the benchmark)."""


def _status_word(status: Any) -> str:
    return _STATUS.get(status.name, "error")


def highs_solver(time_limit_s: float = 60.0, mip_rel_gap: float = 1e-6) -> Solver:
    """A solver running HiGHS with a time limit (s) and a relative MIP gap."""

    def solve(lp: LinearProgram) -> LpSolution:
        began = time.perf_counter()
        h = _new_highs()
        h.setOptionValue("time_limit", float(time_limit_s))
        h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        for name, on in _MIP_HEURISTICS.items():
            h.setOptionValue(name, on)
        for name, value in _TOLERANCES.items():
            h.setOptionValue(name, value)
        try:
            h.passModel(_highs_lp(lp.for_solver()))
            h.run()
            status = h.getModelStatus()
            if status.name == "kUnboundedOrInfeasible":
                # Presolve could not tell which: solve again without it to say.
                h.setOptionValue("presolve", "off")
                h.run()
                status = h.getModelStatus()
            word = _status_word(status)
            info = h.getInfo()
            has_values = word in ("optimal", "time_limit") and int(info.primal_solution_status) == 2
            x = np.asarray(h.getSolution().col_value, dtype=np.float64) * lp.col_unit if has_values else None
            objective = float(info.objective_function_value) if has_values else float("nan")
            message = "" if word != "error" else f"HiGHS ended with model status {h.modelStatusToString(status)}"
            if status.name == "kUnboundedOrInfeasible":
                word, message = "infeasible", "HiGHS found the program infeasible or unbounded"
        except Exception as error:  # the solver's own failure, reported in words
            return LpSolution("error", None, float("nan"), time.perf_counter() - began, f"HiGHS failed: {error}")
        finally:
            h.clear()
        return LpSolution(word, x, objective, time.perf_counter() - began, message)

    return solve
