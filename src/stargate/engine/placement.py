"""Placement: a vectorised filter over clusters, then a score (lowest wins).

For a job of ``n`` GPUs at time *t*, cluster *c* is feasible when (all as NumPy boolean arrays)::

    compatible(c)   GPU model in the job's list, provider and region allowed, quota allows the model
    usable(c)       status up or degraded, inside its online window
    avail(c) >= n   avail(c) = min(free(c), floor((cap_w(site) - draw_w(site)) / (TDP_W(c) * PUE(site))))
    backfill(c)     t + remaining(job) <= shadow(c)  or  n <= long_room(c)       (see backfill.py)

Score (``stargate``, contract- and cost-aware best fit)::

    score(c) = tier(c) * 1e6 + marginal_price(c) + (avail(c) - n) / (total(c) + 1)

tier 0 is prepaid (an active reserved or commitment contract) or owned capacity, tier 1 pay-per-use; the
marginal price is 0 on prepaid capacity, else the price per GPU-hour charged; the last term, in [0, 1),
prefers the tightest fit so large holes stay whole for gangs. Ties go to the lowest cluster index.
``fifo`` uses first fit: the lowest feasible cluster index.
"""

from __future__ import annotations

import numpy as np

from stargate.engine.index import BoolArray, FloatArray


def choose(
    feasible: BoolArray, avail: FloatArray, rank: FloatArray, inv_total: FloatArray, n: int, best_fit: bool
) -> int:
    """Index of the chosen cluster among ``feasible`` ones, or -1 when none is (``inv_total = 1 / (total + 1)``)."""
    if not best_fit:
        c = int(feasible.argmax())
        return c if feasible[c] else -1
    score = avail - n
    score *= inv_total
    score += rank
    c = int(np.where(feasible, score, np.inf).argmin())
    return c if feasible[c] else -1
