"""Floor 4, TensorFlow: networks, the classifier, custom layers, feature cache, trainer, evaluation, interpretation."""
