"""Model serving: the ASGI app, micro-batching, traffic policies and the prediction log."""
