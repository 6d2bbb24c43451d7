"""Engines: each takes a plan and returns a result (measure, simulate, estimate, overheads,
flops, growth, convergence, sweep). None of them imports the recommender."""

__all__: list[str] = []
