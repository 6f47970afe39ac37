"""The text encoders as base models (a string in, one vector out), built from a backbone spec: WordLlama's
pretrained token table, a TF Hub text embedding by its real address, and Model Maker's average word
embedding from scratch. Their Keras layers and everything else of the text kind's model side are
`core.engine.texts`; this module is apart because it fetches weights (`core.engine.networks`, which
asks `core.engine.inputs`, which asks `texts`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.data import texts as data_texts
from core.engine import networks
from core.engine.texts import WORDLLAMA_MISSING, keras_classes
from core.errors import ConfigError
from core.spec import backbones
from core.spec.backbones import BackboneSpec


def _wrap(spec: BackboneSpec, encoder: Any) -> Any:
    import tensorflow as tf
    import tf_keras as keras

    inputs = keras.Input((), dtype=tf.string, name="text")
    return keras.Model(inputs, encoder(inputs), name=backbones.base_name(spec))


def wordllama_table() -> np.ndarray:
    """WordLlama's token table as float32 (32,000 x 256), read from the safetensors file its wheel ships."""
    files = data_texts.wordllama_files()
    if files is None:
        raise ConfigError(WORDLLAMA_MISSING)
    from safetensors.numpy import load_file

    return load_file(str(files[0]))["embedding.weight"].astype(np.float32)


def wordllama_base(spec: BackboneSpec, weights: str, **_: Any) -> Any:
    """The WordLlama encoder as a base model (string -> 256 numbers); "imagenet" means its pretrained table."""
    if data_texts.wordllama_tokenizer() is None:
        raise ConfigError(WORDLLAMA_MISSING)
    encoder = keras_classes()["WordLlamaEncoder"](name="wordllama")
    base = _wrap(spec, encoder)
    if weights != "none":
        encoder.set_weights([wordllama_table()])
    return base


def average_word_embedding_base(spec: BackboneSpec, weights: str, **_: Any) -> Any:
    """Model Maker's average word embedding from scratch, as a base model (string -> 16 numbers)."""
    return _wrap(spec, keras_classes()["HashedWordAverage"](name="word_average"))


def hub_text_base(spec: BackboneSpec, weights: str, **_: Any) -> Any:
    """A TF Hub text embedding (strings in, vectors out) as a base model, fetched by its real address."""
    import tensorflow as tf
    import tensorflow_hub as hub

    layer = hub.KerasLayer(str(networks.fetch_hub(spec)), input_shape=[], dtype=tf.string, trainable=True,
                           name="hub_model")
    return _wrap(spec, layer)
