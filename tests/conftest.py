"""Shared pytest settings: one hypothesis profile, no per-example deadline.

Deadlines turn a slow CI machine into a false failure; tests assert behaviour,
benchmarks/ measure speed.
"""
from hypothesis import HealthCheck, settings

settings.register_profile(
    "wslab",
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("wslab")
