"""Placement classes: jobs with the same acceptable GPU models (after their queue's quotas), providers, regions and
needs of an executor share one static boolean mask over clusters, built once; and the reasons a job can never run.

A class also keeps its mask without pay-per-use clusters (for jobs still waiting to burst) and the GPU models it
spans (for the quota check per model).
"""

from __future__ import annotations

import numpy as np

from stargate.engine.admission import Admission
from stargate.engine.index import BoolArray, FleetIndex
from stargate.engine.types import JobRequest, Reason

ClassKey = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], frozenset[str]]


class Classes:
    """Every placement class seen so far, by index."""

    def __init__(self, index: FleetIndex, adm: Admission) -> None:
        """No class yet; pay-per-use clusters are set by :meth:`set_payg`."""
        self.index, self.adm = index, adm
        self.mask: list[BoolArray] = []
        """Class → clusters it may ever use."""
        self.mask_nb: list[BoolArray] = []
        """Class → the same without pay-per-use clusters."""
        self.all: list[bool] = []
        """Class → True when it may use every cluster (the mask can be skipped)."""
        self.models: list[tuple[str, ...]] = []
        """Class → GPU models of its clusters."""
        self.model_mask = {m: np.array([x == m for x in index.model_of], dtype=bool) for m in index.models}
        self._by_key: dict[ClassKey, int] = {}
        self._verdicts: dict[tuple[object, ...], tuple[int, Reason | None]] = {}
        self._payg: BoolArray = np.zeros(index.n, dtype=bool)

    def set_payg(self, payg: BoolArray) -> None:
        """Pay-per-use clusters changed (a contract started or ended)."""
        self._payg = payg
        self.mask_nb = [m & ~payg for m in self.mask]

    def classify(self, job: JobRequest, q: int) -> tuple[int, Reason | None]:
        """The job's class, or -1 and the reason it can never run (cached per distinct request shape)."""
        key = (
            q,
            job.gpus,
            job.gpu_models,
            job.allowed_providers,
            job.allowed_regions,
            job.nodes,
            job.spread,
            job.needs,
        )
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._classify(job, q)
        return verdict

    def _classify(self, job: JobRequest, q: int) -> tuple[int, Reason | None]:
        idx = self.index
        if q < 0:
            return -1, Reason.UNKNOWN_QUEUE
        if job.gpus < 1 or (job.nodes is not None and (job.nodes < 1 or job.gpus % job.nodes)):
            return -1, Reason.INVALID_REQUEST
        if job.gpu_models and not set(job.gpu_models) & set(idx.models):
            return -1, Reason.GPU_MODEL_UNAVAILABLE
        qmodels = idx.quota_models(q)
        models = tuple(m for m in job.gpu_models if qmodels is None or m in qmodels) if job.gpu_models else qmodels
        if models == ():
            return -1, Reason.EXCEEDS_QUOTA
        key: ClassKey = (models or (), tuple(job.allowed_providers), tuple(job.allowed_regions), job.needs)
        cls = self._by_key.get(key)
        if cls is None:
            cls = self._new(key)
        mask = self.mask[cls]
        if not mask.any():
            return -1, Reason.NO_ALLOWED_CLUSTER
        if job.gpus > int(idx.total[mask].max()):
            return -1, Reason.NO_CLUSTER_FITS
        if job.nodes is not None and not job.spread and not self._shape_fits(mask, job.gpus, job.nodes):
            return -1, Reason.NO_CLUSTER_FITS
        if not any(self.adm.ever_fits(q, m, job.gpus) for m in self.models[cls]):
            return -1, Reason.EXCEEDS_QUOTA
        return cls, None

    def _shape_fits(self, mask: BoolArray, gpus: int, nodes: int) -> bool:
        """Some cluster of ``mask`` has ``nodes`` nodes of at least ``gpus / nodes`` GPUs each."""
        idx, per = self.index, gpus // max(nodes, 1)
        return nodes >= 1 and any(
            idx.gpus_per_node[c] >= per and int(idx.total[c]) // idx.gpus_per_node[c] >= nodes
            for c in np.flatnonzero(mask).tolist()
        )

    def _new(self, key: ClassKey) -> int:
        mask = self.index.compatible(*key)
        self._by_key[key] = cls = len(self.mask)
        self.mask.append(mask)
        self.mask_nb.append(mask & ~self._payg)
        self.all.append(bool(mask.all()))
        self.models.append(tuple(sorted({self.index.model_of[c] for c in np.flatnonzero(mask).tolist()})))
        return cls
