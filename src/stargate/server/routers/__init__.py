"""HTTP routers: each route resolves its dependencies and calls one service function."""
