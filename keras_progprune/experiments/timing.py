"""CPU inference latency, measured side by side.

Models are timed in one process, in alternating order, on the same batch,
and each gets the median of its runs: the way every speed number of this
project is taken (these machines are noisy; a ratio of medians taken
together is stable, two separate runs are not).
"""

import time

import keras
import numpy as np

from keras_progprune import backend


def latency_ms(models, input_shape, batch_size=32, repeats=10, warmup=2, seed=0):
    """Median milliseconds per batch for each model, timed alternately.

    Args:
        models: dict of name -> Keras model (same input shape).
        input_shape: one example's shape.
        batch_size: int. Defaults to 32.
        repeats: timed calls per model. Defaults to 10.
        warmup: untimed calls per model first (tracing). Defaults to 2.
        seed: seeds the random batch.

    Returns:
        dict of name -> median milliseconds per call.
    """
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(seed).random((batch_size, *input_shape), dtype=np.float32))
    # Compiled like Keras's own predict step (tf.function, jax.jit; eager on
    # PyTorch), on the same batch for every model.
    calls = {name: backend.compile(lambda t, m=model: m(t, training=False))
             for name, model in models.items()}
    for call in calls.values():
        for _ in range(warmup):
            np.asarray(call(x))
    times = {name: [] for name in calls}
    names = list(calls)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            np.asarray(calls[name](x))
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1e3) for name, t in times.items()}
