"""The API server (FastAPI) and the scheduler loop that drives the engine with the wall clock."""
