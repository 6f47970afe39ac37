"""ms_per_image times the model alone, after a warm-up, best of a few: runs of the same network compare."""

import numpy as np

from core.engine import evaluation


def test_latency_is_the_model_alone_after_a_warm_up():
    import tensorflow as tf
    import tf_keras as keras

    calls = []

    class Counting(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(tf.reshape(x, (tf.shape(x)[0], -1)))

        def predict_on_batch(self, x):
            calls.append(int(x.shape[0]))
            return super().predict_on_batch(x)

    images = np.zeros((40, 8, 8, 3), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(40, np.int64))).batch(16)
    ms = evaluation.latency_ms(Counting(), ds)
    assert ms > 0
    # One warm-up call, then the timed repeats, each on one batch of up to LATENCY_BATCH images.
    assert calls == [evaluation.LATENCY_BATCH] * (1 + evaluation.LATENCY_REPEATS)
