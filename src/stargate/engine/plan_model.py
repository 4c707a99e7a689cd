r"""The capacity plan as a mixed-integer linear program (built here, solved by a :data:`Solver` such as HiGHS).

Pure: numpy only, no solver import. Money inside the program is in millions of USD (:data:`MONEY_SCALE`) so that
coefficients stay near 1; :class:`LinearProgram` keeps the scale and the constant cash so results convert back.
Columns and rows are in GPUs as written below; :meth:`LinearProgram.for_solver` hands the solver GPU counts in
thousands (:data:`GPU_UNIT`), the same program with better-scaled coefficients.

**Sets.** Months :math:`t \in T = \{0..n-1\}` with hours :math:`h_t`; GPU models :math:`g \in G` with demand
:math:`D_{g,t}`; fleet supplies :math:`s \in S` (model :math:`g_s`, capacity :math:`K_{s,t}`, marginal
:math:`p_s`); commitments :math:`c \in C` (floor :math:`F_{c,t}`, sources :math:`S_c`); market choices
:math:`o \in O` (model, price :math:`q_o`, lead :math:`L_o`, term :math:`R_o`, limit :math:`U_o`); build choices
:math:`b \in B` (GPUs :math:`N_b`, IT MW :math:`W_b`, capex :math:`X_b`, build months :math:`M_b`, at most
:math:`A_b`, marginal :math:`e_b`); first-refusal rules :math:`r` (holder, model, months); sites with power headroom
:math:`H_k`; envelope :math:`E_t` (where a budget applies).

**Variables** (only where they can matter):

- ``use[s,t]`` ∈ [0, K_{s,t}]: GPUs of supply s used in month t (models with demand, months with capacity);
- ``sign[o,m]`` ≥ 0 (≤ U_o; ≤ peak demand of its model when U_o is unlimited): GPUs signed with option o in month m,
  only where it may be signed and its capacity starts inside the horizon (m + L_o < n); active in months
  :math:`\mathrm{act}(o,m) = [m+L_o,\ m+L_o+R_o-1] \cap T`;
- ``mkt[g,t]`` ≥ 0: signed GPUs of model g used in month t;
- ``started[b,m]`` ∈ {0..A_b} integer: buildings of choice b started in months earliest..m, for m ≥ earliest and
  m + M_b < n (so the last is :math:`l_b = n - M_b - 1`); with :math:`started_{b,m} = 0` before earliest, the
  buildings started in month m are :math:`started_{b,m} - started_{b,m-1}` (a cumulative count branches far better
  than a count per month);
- ``bld[b,t]`` ≥ 0: built GPUs of choice b used in month t;
- ``unmet[g,t]`` ∈ [0, D_{g,t}]: demand left unmet (only with an unmet penalty π; else demand must be met);
- ``pay[c,t]`` ≥ F_{c,t}: what commitment c pays in month t (months where one of its sources has capacity; in
  other months its floor is constant cash);
- ``z[r,m]`` ∈ {0,1}: first refusal satisfied (every holder option filled) in month m;
- ``spend[t]`` ≥ 0: cash paid in month t beyond the constant cash :math:`\kappa_t` (fixed payments and floors);
- ``cum[t]`` ≤ E_t − Σ_{t' ≤ t} κ_{t'} (the bound only with a hard budget): cash paid by the end of month t beyond
  the constant cash (only when a budget applies);
- ``slack[t]`` ≥ 0: USD past the envelope at the end of month t (only with an over-budget penalty β);
- ``tail`` ≥ 0: what signings pay after the horizon (730 h per month past it).

**Constraints** by family (``LinearProgram.row_family``):

- ``demand`` (g,t): :math:`\sum_{s: g_s=g} use_{s,t} + mkt_{g,t} + \sum_{b: g_b=g} bld_{b,t} + unmet_{g,t} = D_{g,t}`;
- ``market`` (g,t): :math:`mkt_{g,t} \le \sum_{o: g_o=g} \sum_{m: t \in act(o,m)} sign_{o,m}`;
- ``build`` (b,t): :math:`bld_{b,t} \le N_b\, started_{b,t-M_b}`; and (b,m), m > earliest:
  :math:`started_{b,m} \ge started_{b,m-1}` (at most A_b in all is the column bound);
- ``power`` (site k): :math:`\sum_{b \in k} W_b\, started_{b,l_b} \le H_k`;
- ``commitment`` (c,t): :math:`pay_{c,t} \ge \sum_{s \in S_c} p_s h_t\, use_{s,t}`;
- ``rofr`` (r,m), when the holder has options :math:`O^H` signable in m: :math:`sign_{o,m} \ge U_o z_{r,m}` for
  o ∈ O^H and :math:`sign_{o',m} \le \bar U_{o'} z_{r,m}` for every other provider's option o' of the model
  (:math:`\bar U` its limit, else peak demand). A holder option with no limit, or one whose capacity would start
  past the horizon, cannot be filled: other providers are then shut out of m (upper bound 0);
- ``spend`` (t): :math:`spend_t = \sum_{s \notin \cup S_c} p_s h_t use_{s,t} + \sum_c pay_{c,t} +
  \sum_{o,m: t \in act(o,m)} q_o h_t sign_{o,m} + \sum_b e_b h_t bld_{b,t} + \sum_b \tfrac{X_b}{M_b}
  (started_{b,\min(t,l_b)} - started_{b,t-M_b})`: the instalments of the buildings started in months t−M_b+1..t;
- ``spend`` (tail): :math:`tail = \sum_{o,m} q_o \cdot 730 \cdot \max(0, m+L_o+R_o-n)\, sign_{o,m}`;
- ``budget`` (t): :math:`cum_t = cum_{t-1} + spend_t` (+ tail in the last month: a signing is paid in full by the
  horizon's envelope); the envelope :math:`\sum_{t' \le t} \kappa_{t'} + cum_t
  \le E_t` is the column bound of ``cum[t]`` when the budget is hard (a bound, not a dense row of sums: the MIP
  solves several times faster), and the row :math:`cum_t - slack_t \le E_t - \sum_{t' \le t} \kappa_{t'}` when
  it is soft.

**Objective**: minimise :math:`\sum_t (\kappa_t + spend_t) + tail + \pi \sum_{g,t} h_t\, unmet_{g,t} + \beta
\sum_t slack_t`: all cash over the horizon, what signings commit past it, and the penalties.

``build_lp(inputs, relax=...)`` drops a family for the infeasibility diagnosis: ``demand`` (unmet allowed at a high
penalty), ``budget``, ``rofr`` or ``power``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from stargate.engine.plan_inputs import HOURS_PAST_HORIZON
from stargate.engine.plan_types import PlanInputs

MONEY_SCALE = 1e6
"""USD per money unit inside the program (millions of USD)."""

GPU_UNIT = 1000.0
"""GPUs per unit the solver sees of a GPU count (money is in millions of USD, GPUs in thousands: coefficients near
1)."""

RELAXABLE = ("demand", "budget", "rofr", "power")
"""Families the diagnosis relaxes one at a time."""

DIAGNOSIS_PENALTY_USD_PER_GPU_HOUR = 10_000.0
"""Unmet penalty used when demand is relaxed but the scenario sets none (far above any price)."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Key = tuple[str, str, int]
"""(kind or family, reference, month) of a column or row; month -1 when not monthly."""


@dataclass(frozen=True, slots=True, eq=False)
class LinearProgram:
    """A mixed-integer linear program: minimise c·x + offset subject to row_lower ≤ A x ≤ row_upper and
    col_lower ≤ x ≤ col_upper, x integer where ``integrality`` is 1. A is column-wise (CSC): the nonzeros of column
    j are ``a_value[a_start[j]:a_start[j+1]]`` in rows ``a_index[...]``."""

    c: FloatArray
    offset: float
    col_lower: FloatArray
    col_upper: FloatArray
    integrality: npt.NDArray[np.int8]
    a_start: IntArray
    a_index: IntArray
    a_value: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    cols: tuple[Key, ...]
    """(kind, ref, month) of each column: kinds use, sign, mkt, started, bld, unmet, pay, z, spend, cum, slack, tail."""
    rows: tuple[Key, ...]
    """(family, ref, month) of each row: families demand, market, build, power, commitment, rofr, spend, budget."""
    const_usd: tuple[float, ...]
    """Cash paid in each month whatever the plan does (fixed payments, floors with no source in use), USD."""
    col_unit: FloatArray
    """Of each column, its own units per unit the solver sees (:data:`GPU_UNIT` for GPU counts, else 1)."""
    row_unit: FloatArray
    """Of each row, what the solver sees per unit of the row (1 ÷ :data:`GPU_UNIT` for balances of GPUs, else 1)."""
    scale: float = MONEY_SCALE
    relaxed: frozenset[str] = frozenset()
    index: dict[Key, int] = field(default_factory=dict)
    """Column position by key."""

    @property
    def num_col(self) -> int:
        """Number of variables."""
        return len(self.c)

    @property
    def num_row(self) -> int:
        """Number of constraints."""
        return len(self.row_lower)

    @property
    def col_names(self) -> tuple[str, ...]:
        """Readable names, e.g. ``sign[coreweave-gb200,3]``."""
        return tuple(_name(k) for k in self.cols)

    @property
    def row_family(self) -> tuple[str, ...]:
        """The family of each row."""
        return tuple(r[0] for r in self.rows)

    def is_mip(self) -> bool:
        """True when some variable is integer."""
        return bool(self.integrality.any())

    def for_solver(self) -> "LinearProgram":
        """The same program with GPU counts in thousands (see :attr:`col_unit`): the solver's simplex runs about
        twice as fast on it. A solution ``x`` of it is ``x * self.col_unit`` here; the objective is the same."""
        cu, ru = self.col_unit, self.row_unit
        col_of = np.repeat(np.arange(self.num_col), np.diff(self.a_start))
        ones_c, ones_r = np.ones_like(cu), np.ones_like(ru)
        return replace(
            self,
            c=self.c * cu,
            col_lower=self.col_lower / cu,
            col_upper=self.col_upper / cu,
            a_value=self.a_value * cu[col_of] * ru[self.a_index],
            row_lower=self.row_lower * ru,
            row_upper=self.row_upper * ru,
            col_unit=ones_c,
            row_unit=ones_r,
        )


@dataclass(frozen=True, slots=True, eq=False)
class LpSolution:
    """What a solver returns: a status word, the values (None when there are none) and the objective."""

    status: str
    """'optimal', 'infeasible', 'unbounded', 'time_limit' or 'error'."""
    x: FloatArray | None
    objective: float
    """c·x + offset, in the program's money unit."""
    seconds: float
    message: str = ""


class Solver(Protocol):
    """Solves a :class:`LinearProgram` (see :func:`stargate.planning.highs.highs_solver`)."""

    def __call__(self, lp: LinearProgram, /) -> LpSolution: ...


SolverFunction = Callable[[LinearProgram], LpSolution]


def _name(key: Key) -> str:
    kind, ref, month = key
    inner = ",".join(p for p in (ref, str(month) if month >= 0 else "") if p)
    return f"{kind}[{inner}]"


class _Builder:
    def __init__(self) -> None:
        self.c: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.integer: list[int] = []
        self.cunit: list[float] = []
        self.runit: list[float] = []
        self.cols: list[Key] = []
        self.index: dict[Key, int] = {}
        self.rlo: list[float] = []
        self.rhi: list[float] = []
        self.rows: list[Key] = []
        self.ri: list[int] = []
        self.ci: list[int] = []
        self.v: list[float] = []

    def col(self, key: Key, lo: float, hi: float, cost: float = 0.0, integer: bool = False, gpus: bool = False) -> int:
        j = len(self.c)
        self.cunit.append(GPU_UNIT if gpus else 1.0)
        self.c.append(cost)
        self.lo.append(lo)
        self.hi.append(hi)
        self.integer.append(1 if integer else 0)
        self.cols.append(key)
        self.index[key] = j
        return j

    def row(self, key: Key, lo: float, hi: float, terms: Iterable[tuple[int, float]], gpus: bool = False) -> int:
        i = len(self.rlo)
        self.runit.append(1.0 / GPU_UNIT if gpus else 1.0)
        self.rlo.append(lo)
        self.rhi.append(hi)
        self.rows.append(key)
        for j, v in terms:
            if v != 0.0:
                self.ri.append(i)
                self.ci.append(j)
                self.v.append(v)
        return i

    def finish(self, offset: float, const: tuple[float, ...], relaxed: frozenset[str]) -> LinearProgram:
        n = len(self.c)
        rows = np.asarray(self.ri, dtype=np.int64)
        cols = np.asarray(self.ci, dtype=np.int64)
        vals = np.asarray(self.v, dtype=np.float64)
        order = np.lexsort((rows, cols))
        rows, cols, vals = rows[order], cols[order], vals[order]
        if len(rows):
            flat = cols * max(len(self.rlo), 1) + rows
            unique, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
            if len(unique) != len(flat):
                vals = np.bincount(inverse, weights=vals).astype(np.float64)
                rows, cols = rows[first], cols[first]
        starts = np.searchsorted(cols, np.arange(n + 1)).astype(np.int64)
        return LinearProgram(
            c=np.asarray(self.c, dtype=np.float64),
            offset=offset,
            col_lower=np.asarray(self.lo, dtype=np.float64),
            col_upper=np.asarray(self.hi, dtype=np.float64),
            integrality=np.asarray(self.integer, dtype=np.int8),
            a_start=starts,
            a_index=rows,
            a_value=vals,
            row_lower=np.asarray(self.rlo, dtype=np.float64),
            row_upper=np.asarray(self.rhi, dtype=np.float64),
            cols=tuple(self.cols),
            rows=tuple(self.rows),
            const_usd=const,
            col_unit=np.asarray(self.cunit, dtype=np.float64),
            row_unit=np.asarray(self.runit, dtype=np.float64),
            relaxed=relaxed,
            index=self.index,
        )


def active_months(lead: int, term: int, month: int, n: int) -> range:
    """Months inside the horizon a signing in ``month`` supplies (and pays)."""
    return range(month + lead, min(month + lead + term, n))


def constant_cash(inputs: PlanInputs) -> list[float]:
    """Cash each month pays whatever the plan does: fixed payments plus commitment floors of months where none of
    the commitment's sources has capacity, USD."""
    n = len(inputs.months)
    const = [0.0] * n
    for f in inputs.fixed:
        for t in range(n):
            const[t] += f.usd[t]
    capacity = {s.id: s.capacity for s in inputs.supplies}
    demanded = set(inputs.models())
    models = {s.id: s.gpu_model for s in inputs.supplies}
    for c in inputs.commitments:
        for t in range(n):
            if not any(capacity.get(s, (0.0,) * n)[t] > 0 and models.get(s) in demanded for s in c.sources):
                const[t] += c.floor_usd[t]
    return const


def build_lp(inputs: PlanInputs, relax: Iterable[str] = ()) -> LinearProgram:
    """The program of ``inputs`` (see the module docstring); ``relax`` names families to drop (diagnosis)."""
    relaxed = frozenset(relax)
    unknown = relaxed - set(RELAXABLE)
    if unknown:
        raise ValueError(f"found {sorted(unknown)} to relax, expected some of {', '.join(RELAXABLE)}")
    n = len(inputs.months)
    hours = inputs.hours
    scale = MONEY_SCALE
    models = inputs.models()
    demand = {g: inputs.demand_gpus(g) for g in models}
    peak = {g: max(demand[g], default=0.0) for g in models}
    lp = _Builder()
    cash: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    on_demand: dict[tuple[str, int], list[tuple[int, float]]] = {}  # (model, t) → use columns

    # Fleet supplies.
    source_of = {s: c.id for c in inputs.commitments for s in c.sources}
    use_cols: dict[tuple[str, int], int] = {}
    for s in inputs.supplies:
        if s.gpu_model not in demand:
            continue
        for t in range(n):
            if s.capacity[t] <= 0:
                continue
            j = lp.col(("use", s.id, t), 0.0, s.capacity[t], gpus=True)
            use_cols[(s.id, t)] = j
            on_demand.setdefault((s.gpu_model, t), []).append((j, 1.0))
            if s.id not in source_of and s.marginal_usd_per_gpu_hour > 0:
                cash[t].append((j, s.marginal_usd_per_gpu_hour * hours[t] / scale))

    # Commitments: pay ≥ floor and ≥ use at price.
    marginal = {s.id: s.marginal_usd_per_gpu_hour for s in inputs.supplies}
    for c in inputs.commitments:
        for t in range(n):
            terms = [(use_cols[(s, t)], -marginal[s] * hours[t] / scale) for s in c.sources if (s, t) in use_cols]
            if not terms:
                continue
            j = lp.col(("pay", c.id, t), c.floor_usd[t] / scale, np.inf)
            cash[t].append((j, 1.0))
            lp.row(("commitment", c.id, t), 0.0, np.inf, [(j, 1.0), *terms])

    # Market signings. What a signing pays past the horizon is committed all the same: it counts in the objective
    # and in the last month's budget (``tail``), so the plan neither signs cheaply at its end nor signs what the
    # envelope cannot pay.
    sign_cols: dict[tuple[str, int], int] = {}
    tail_terms: list[tuple[int, float]] = []
    active: dict[tuple[str, int], list[tuple[int, float]]] = {}
    holders = {(r.holder, r.gpu_model) for r in inputs.rofr} if "rofr" not in relaxed else set()
    for o in inputs.markets:
        if o.gpu_model not in demand:
            continue
        limit = o.max_gpus_per_month
        is_holder = (o.provider, o.gpu_model) in holders
        upper = peak[o.gpu_model] if limit is None else (limit if is_holder else min(limit, peak[o.gpu_model]))
        for m in range(n):
            if not o.can_sign[m] or m + o.lead_months >= n:
                continue
            span = active_months(o.lead_months, o.term_months, m, n)
            j = lp.col(("sign", o.id, m), 0.0, upper, gpus=True)
            sign_cols[(o.id, m)] = j
            for t in span:
                cash[t].append((j, o.price_usd_per_gpu_hour * hours[t] / scale))
                active.setdefault((o.gpu_model, t), []).append((j, -1.0))
            past = m + o.lead_months + o.term_months - n
            if past > 0:
                tail_terms.append((j, o.price_usd_per_gpu_hour * HOURS_PAST_HORIZON * past / scale))
    for (g, t), terms in sorted(active.items(), key=lambda item: (models.index(item[0][0]), item[0][1])):
        j = lp.col(("mkt", g, t), 0.0, np.inf, gpus=True)
        on_demand.setdefault((g, t), []).append((j, 1.0))
        lp.row(("market", g, t), -np.inf, 0.0, [(j, 1.0), *terms], gpus=True)

    # Builds.
    started_by_end: dict[str, int] = {}  # build choice → its started[b, last] column
    for b in inputs.builds:
        first, last = b.earliest_month, n - b.build_months - 1
        if b.gpu_model not in demand or b.max_buildings <= 0 or first > last:
            continue
        # started[b,m] = buildings started in months first..m: integer, non-decreasing, at most A_b (its bound). A
        # cumulative count branches far better than a count per month ("by month m at most k buildings").
        began: dict[int, int] = {}
        for m in range(first, last + 1):
            j = lp.col(("started", b.id, m), 0.0, float(b.max_buildings), integer=True)
            began[m] = j
            if m > first:
                lp.row(("build", f"{b.id}:started", m), 0.0, np.inf, [(j, 1.0), (began[m - 1], -1.0)])
        instalment = b.capex_usd_per_building / b.build_months / scale
        for t in range(first, n):
            # Buildings under construction in month t: started by min(t, last) but not by t - M_b.
            if min(t, last) in began:
                cash[t].append((began[min(t, last)], instalment))
            if t - b.build_months in began:
                cash[t].append((began[t - b.build_months], -instalment))
        started_by_end[b.id] = began[last]
        for t in range(first + b.build_months, n):
            k = lp.col(("bld", b.id, t), 0.0, np.inf, gpus=True)
            if b.marginal_usd_per_gpu_hour > 0:
                cash[t].append((k, b.marginal_usd_per_gpu_hour * hours[t] / scale))
            on_demand.setdefault((b.gpu_model, t), []).append((k, 1.0))
            lp.row(
                ("build", b.id, t),
                -np.inf,
                0.0,
                [(k, 1.0), (began[t - b.build_months], -b.gpus_per_building)],
                gpus=True,
            )
    if "power" not in relaxed:
        for p in inputs.site_power:
            terms = [
                (started_by_end[b.id], b.it_mw_per_building)
                for b in inputs.builds
                if b.id in started_by_end and b.site == p.site
            ]
            if terms:
                lp.row(("power", p.site, -1), -np.inf, p.headroom_mw, terms)

    # First refusal.
    if "rofr" not in relaxed:
        _rofr(lp, inputs, sign_cols, peak, n)

    # Demand balance and unmet.
    penalty = inputs.unmet_penalty_usd_per_gpu_hour
    if penalty is None and "demand" in relaxed:
        penalty = DIAGNOSIS_PENALTY_USD_PER_GPU_HOUR
    for g in models:
        for t in range(n):
            terms = list(on_demand.get((g, t), []))
            if penalty is not None and demand[g][t] > 0:
                j = lp.col(("unmet", g, t), 0.0, demand[g][t], cost=penalty * hours[t] / scale, gpus=True)
                terms.append((j, 1.0))
            lp.row(("demand", g, t), demand[g][t], demand[g][t], terms, gpus=True)

    # Cash per month and the budget envelope.
    const = constant_cash(inputs)
    spend_cols = []
    for t in range(n):
        j = lp.col(("spend", "", t), 0.0, np.inf, cost=1.0)
        spend_cols.append(j)
        lp.row(("spend", "", t), 0.0, 0.0, [(j, 1.0), *((k, -v) for k, v in cash[t])])
    tail: int | None = None
    if tail_terms:
        tail = lp.col(("tail", "", -1), 0.0, np.inf, cost=1.0)
        lp.row(("spend", "tail", -1), 0.0, 0.0, [(tail, 1.0), *((k, -v) for k, v in tail_terms)])
    if "budget" not in relaxed and any(e is not None for e in inputs.envelope_usd):
        # cum[t] = cum[t-1] + spend[t]; the envelope bounds cum[t] (a column bound: cheap for the MIP).
        beta = inputs.over_budget_penalty
        cumulative = 0.0
        previous: int | None = None
        for t in range(n):
            cumulative += const[t]
            limit = inputs.envelope_usd[t]
            bound = np.inf if limit is None else (limit - cumulative) / scale
            j = lp.col(("cum", "", t), -np.inf, bound if beta is None else np.inf)
            terms = [(j, 1.0), (spend_cols[t], -1.0)]
            if previous is not None:
                terms.append((previous, -1.0))
            if tail is not None and t == n - 1:
                terms.append((tail, -1.0))
            lp.row(("budget", "", t), 0.0, 0.0, terms)
            previous = j
            if beta is not None and limit is not None:
                slack = lp.col(("slack", "", t), 0.0, np.inf, cost=beta)
                lp.row(("budget", "envelope", t), -np.inf, bound, [(j, 1.0), (slack, -1.0)])
    return lp.finish(sum(const) / scale, tuple(const), relaxed)


def _rofr(
    lp: _Builder, inputs: PlanInputs, sign_cols: dict[tuple[str, int], int], peak: dict[str, float], n: int
) -> None:
    for r in inputs.rofr:
        if r.gpu_model not in peak:
            continue
        same = [o for o in inputs.markets if o.gpu_model == r.gpu_model]
        holder = [o for o in same if o.provider == r.holder]
        others = [o for o in same if o.provider != r.holder]
        for m in r.months:
            if not 0 <= m < n:
                continue
            offered = [o for o in holder if o.can_sign[m]]
            rivals = [(o, sign_cols[(o.id, m)]) for o in others if (o.id, m) in sign_cols]
            if not offered or not rivals:
                continue
            if any(o.max_gpus_per_month is None or (o.id, m) not in sign_cols for o in offered):
                for _, j in rivals:
                    lp.hi[j] = 0.0
                continue
            z = lp.col(("z", f"{r.contract}:{r.gpu_model}", m), 0.0, 1.0, integer=True)
            for o in offered:
                limit = o.max_gpus_per_month
                assert limit is not None
                lp.row(
                    ("rofr", f"{r.contract}:{o.id}", m),
                    0.0,
                    np.inf,
                    [(sign_cols[(o.id, m)], 1.0), (z, -limit)],
                    gpus=True,
                )
            for o, j in rivals:
                lp.row(("rofr", f"{r.contract}:{o.id}", m), -np.inf, 0.0, [(j, 1.0), (z, -lp.hi[j])], gpus=True)
