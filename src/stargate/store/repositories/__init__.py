"""One repository module per entity: the queries the services and the scheduler loop use."""
