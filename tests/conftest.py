import pytest


@pytest.fixture
def tiny_spec():
    """A sweep small enough to train in a second or two."""
    from supjax import SweepSpec

    return SweepSpec(
        n=64,
        batch_size=128,
        widths=(4, 8),
        weight_decays=(-1.0, 1.0),
        alphas=(1.0,),
        steps=200,
        warmup_steps=20,
        log_every=10,
        progress=False,
    )
