"""Placement: a vectorised filter over clusters, then a score (lowest wins).

For a job of ``n`` GPUs at time *t*, cluster *c* is feasible when (all as NumPy boolean arrays)::

    compatible(c)   GPU model in the job's list, provider and region allowed, quota allows the model
    usable(c)       status up or degraded, inside its online window
    avail(c) >= n   avail(c) = min(free(c), floor((cap_w(site) - draw_w(site)) / (TDP_W(c) * PUE(site))))
    backfill(c)     t + remaining(job) <= shadow(c)  or  n <= long_room(c)       (see backfill.py)

Score (``stargate``, contract- and cost-aware best fit)::

    score(c) = rank(c) + (avail(c) - n) / (total(c) + 1)
    rank(c)  = tier(c) * 1e6 + marginal_price(c) - uioli(c)

tier 0 is owned or prepaid capacity (an active reserved or commitment contract), tier 1 pay-per-use; the marginal
price is what one more GPU-hour there costs (owned: its energy; reserved: 0; a commitment: 0 until its spend reaches
the committed amount, then its price; else the price charged) and ``uioli`` the value of a committed GPU-hour that
would otherwise be lost (see :meth:`stargate.engine.index.FleetIndex.prices` and :mod:`stargate.engine.spend`); the
last term, in [0, 1), prefers the tightest fit so large holes stay whole for gangs. Ties go to the lowest cluster
index. ``fifo`` uses first fit: the lowest feasible cluster index.
"""

from __future__ import annotations

import numpy as np

from stargate.engine.index import BoolArray, FloatArray, IntArray


class Scorer:
    """Chooses a cluster among feasible ones with few NumPy calls.

    It keeps ``base(c) = rank(c) + avail(c) / (total(c) + 1)`` up to date (a scalar update per start or finish),
    so ``score(c) = base(c) - n / (total(c) + 1)`` costs one subtraction with a cached array per job size.
    """

    __slots__ = ("_ginv", "base", "inv", "inv_l", "rank_l")

    def __init__(self, total: IntArray) -> None:
        """Scoring over clusters of ``total`` GPUs each."""
        self.inv: FloatArray = (1.0 / (total + 1.0)).astype(np.float64)
        self.inv_l: list[float] = self.inv.tolist()
        self.rank_l: list[float] = [0.0] * len(total)
        self.base: FloatArray = np.zeros(len(total), dtype=np.float64)
        self._ginv: dict[int, FloatArray] = {}

    def reset(self, rank: FloatArray, avail: FloatArray) -> None:
        """Recompute every base score (after a capacity or price change)."""
        self.rank_l = rank.tolist()
        self.base = rank + avail * self.inv

    def update(self, c: int, avail_c: float) -> None:
        """Cluster ``c`` now has ``avail_c`` GPUs available."""
        self.base[c] = self.rank_l[c] + avail_c * self.inv_l[c]

    def choose(self, feasible: BoolArray, n: int, best_fit: bool) -> int:
        """Index of the chosen cluster among ``feasible`` ones for ``n`` GPUs, or -1 when none is."""
        if not best_fit:
            c = int(feasible.argmax())
            return c if feasible[c] else -1
        ginv = self._ginv.get(n)
        if ginv is None:
            ginv = self._ginv[n] = n * self.inv
        c = int(np.where(feasible, self.base - ginv, np.inf).argmin())
        return c if feasible[c] else -1
