"""Floor 5, what leaves: exports (Keras, SavedModel, TensorFlow Lite), the model card, generated training code."""
