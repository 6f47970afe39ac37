"""Floor 3, images in: archive reading with its guards, decoding, import, health report, split, samples, tf.data."""
