import random


def jittered_backoff(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff (base * 2**attempt, capped), drawn from its upper half so retries spread out."""
    ceiling = min(cap, base * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not cryptography)
