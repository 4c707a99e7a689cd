"""The planning adapter: scenario files, the HiGHS solver, Monte Carlo risk on Ray and the plan report."""
