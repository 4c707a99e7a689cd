"""One service module per entity: what the routers and the CLI call; each function is one unit of work."""
