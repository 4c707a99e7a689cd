"""HTTP routers: each route resolves its dependencies and calls one service function.

The caller (``PrincipalDep`` / ``AdminDep``) comes first in every signature: FastAPI resolves dependencies in order,
so the token lookup returns its connection to the pool before the route's session takes one (one connection per
request at a time, so a full pool cannot deadlock). Writing routes open their transaction inside the route
function (see :data:`stargate.server.deps.ReadSessionDep`).
"""
