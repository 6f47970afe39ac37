"""The text kind's model side: text encoders (a string in, one vector out), the raw input, and which
words decided a prediction.

The encoders are built by `core.engine.text_encoders` (which fetches weights through `networks`):
- `wordllama_base`: WordLlama's pretrained token table (32,000 x 256, read from the files its wheel
  ships) -> average over the text's tokens (padding masked). Its tokenizer (Hugging Face `tokenizers`,
  a byte-level BPE) runs in Python inside the model (`tf.py_function`): training, evaluation and
  prediction work from raw strings; a SavedModel cannot carry it (the export says what it takes instead).
- `hub_text_base`: a TF Hub text embedding (NNLM, Universal Sentence Encoder) by its real address,
  downloaded once into the workspace's hub cache; strings in, a vector out, all inside TensorFlow.
- `average_word_embedding_base`: Model Maker's baseline trained from scratch: lower-cased words hashed
  into 20,000 slots, 16 numbers each, averaged; pure TensorFlow.

Each base is a Keras model whose last layer is one encoder layer, so a strategy opens it as a whole
(like a TF Hub layer). TensorFlow is imported inside the functions; the Keras classes are made once
(`keras_classes`, merged into `core.engine.layers.custom_objects`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from core.data import texts as data_texts
from core.data.limits import ImportLimits
from core.errors import ConfigError, DatasetError

MAX_TOKENS = 128  # tokens of one text the encoders read (the first ones); debian descriptions have ~12
HASH_BUCKETS = 20_000  # the from-scratch baseline's word slots
SCRATCH_DIM = 16  # Model Maker's average word embedding: 16 numbers a word
WORDLLAMA_MISSING = ("WordLlama's token table is not installed on this computer; install the wordllama package "
                     "(pip install -r requirements.txt) or choose another text encoder.")
_PUNCTUATION = r"[^\w\s']"


def signature(size: int) -> tuple[tuple[int | None, ...], str, str]:
    """One raw input: a string scalar named "text" (the size means nothing to texts)."""
    return (), "string", "text"


def decode(data: bytes, size: int, limits: ImportLimits | None) -> np.ndarray:
    """A handed-in text (bytes of a file or a typed text) as one model input: the cleaned text."""
    text, _ = data_texts.decode_text(data)
    return np.array(data_texts.check_text(text), dtype=object)


def _wordllama_ids(texts: Any) -> np.ndarray:
    """Token ids of a batch of texts, padded with -1 to the longest (at most MAX_TOKENS)."""
    tok = data_texts.wordllama_tokenizer()
    if tok is None:
        raise ConfigError(WORDLLAMA_MISSING)
    strings = [t.decode("utf-8", errors="replace") for t in np.asarray(texts).reshape(-1)]
    encoded = tok.encode_batch(strings, add_special_tokens=False) if strings else []
    width = max([min(len(e.ids), MAX_TOKENS) for e in encoded] + [1])
    out = np.full((len(strings), width), -1, dtype=np.int32)
    for i, e in enumerate(encoded):
        ids = e.ids[:MAX_TOKENS]
        out[i, :len(ids)] = ids
    return out


@lru_cache(maxsize=1)
def keras_classes() -> dict[str, type]:
    """Define and register the text encoders' Keras layers (once per process); returns them by class name."""
    import tensorflow as tf
    import tf_keras as keras

    def masked_mean(vectors: Any, mask: Any) -> Any:
        mask = tf.expand_dims(tf.cast(mask, vectors.dtype), -1)
        return tf.reduce_sum(vectors * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    @keras.saving.register_keras_serializable(package="transferlab")
    class WordLlamaEncoder(keras.layers.Layer):
        """Strings -> WordLlama tokens (in Python) -> the token table -> the average over the text's tokens."""

        def __init__(self, vocab: int = 32_000, dim: int = 256, **kwargs: Any):
            super().__init__(**kwargs)
            self.vocab, self.dim = vocab, dim

        def build(self, input_shape: Any) -> None:
            self.table = self.add_weight(name="table", shape=(self.vocab, self.dim), initializer="uniform")
            super().build(input_shape)

        def tokens(self, inputs: Any) -> Any:
            ids = tf.numpy_function(_wordllama_ids, [tf.reshape(inputs, [-1])], tf.int32, stateful=False)
            return tf.ensure_shape(ids, [None, None])

        def call(self, inputs: Any) -> Any:
            return self.from_ids(self.tokens(inputs))

        def from_ids(self, ids: Any) -> Any:
            """The text vectors of token ids padded with -1 (what an export without the tokenizer takes)."""
            vectors = tf.gather(self.table, tf.maximum(ids, 0))
            return masked_mean(tf.cast(vectors, self.compute_dtype), ids >= 0)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return (input_shape[0], self.dim)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "vocab": self.vocab, "dim": self.dim}

    @keras.saving.register_keras_serializable(package="transferlab")
    class HashedWordAverage(keras.layers.Layer):
        """Strings -> lower-cased words -> hashed slots -> learnt vectors -> their average (all in TensorFlow)."""

        def __init__(self, buckets: int = HASH_BUCKETS, dim: int = SCRATCH_DIM, **kwargs: Any):
            super().__init__(**kwargs)
            self.buckets, self.dim = buckets, dim

        def build(self, input_shape: Any) -> None:
            self.table = self.add_weight(name="table", shape=(self.buckets, self.dim), initializer="uniform")
            super().build(input_shape)

        def call(self, inputs: Any) -> Any:
            text = tf.strings.regex_replace(tf.strings.lower(tf.reshape(inputs, [-1])), _PUNCTUATION, " ")
            words = tf.strings.split(text)[:, :MAX_TOKENS * 2]
            ids = tf.strings.to_hash_bucket_fast(words, self.buckets).to_tensor(default_value=-1)
            vectors = tf.gather(self.table, tf.maximum(ids, 0))
            return masked_mean(vectors, ids >= 0)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return (input_shape[0], self.dim)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "buckets": self.buckets, "dim": self.dim}

    return {"WordLlamaEncoder": WordLlamaEncoder, "HashedWordAverage": HashedWordAverage}


# ---------------------------------------------------------------- exports


TOKEN_IDS = "token_ids"  # the input of a WordLlama export: token ids padded with -1, (batch, tokens) int32


def token_ids(texts: list[str]) -> np.ndarray:
    """WordLlama token ids of texts as an export without the tokenizer takes them (padded with -1)."""
    return _wordllama_ids(np.array([t.encode("utf-8") for t in texts], dtype=object))


def token_model(model: Any) -> Any:
    """For a classifier on WordLlama, the same classifier from token ids (its tokenizer cannot run inside
    TensorFlow, so exports take token ids); None for a model that takes raw strings all the way."""
    import tensorflow as tf
    import tf_keras as keras

    encoder = next((layer for base in model.layers if hasattr(base, "layers") for layer in base.layers
                    if isinstance(layer, keras_classes()["WordLlamaEncoder"])), None)
    if encoder is None:
        return None
    ids = keras.Input((None,), dtype=tf.int32, name=TOKEN_IDS)
    x = encoder.from_ids(ids)
    pool = model.get_layer("pool")
    for layer in model.layers[model.layers.index(pool):]:
        x = layer(x, training=False)
    by_ids = keras.Model(ids, x, name="transferlab_classifier_from_token_ids")
    by_ids.encoder = encoder  # tracked, so its token table is among the model's variables
    return by_ids


def tokenizer_file() -> Any:
    """WordLlama's tokenizer.json as shipped (for exports); None when not installed."""
    files = data_texts.wordllama_files()
    return files[1] if files else None


WRAPPER = '''"""Classify texts with the exported SavedModel: WordLlama's tokenizer runs here, in Python, since it cannot
run inside TensorFlow. pip install tensorflow tokenizers; python predict_texts.py "a text" "another text"."""
import sys

import numpy as np
import tensorflow as tf
from tokenizers import Tokenizer

tok = Tokenizer.from_file("tokenizer.json")
labels = open("labels.txt", encoding="utf-8").read().split("\\n")
serve = tf.saved_model.load("savedmodel").signatures["serving_default"]
texts = sys.argv[1:] or ["a text to classify"]
encoded = [e.ids[:128] for e in tok.encode_batch(texts, add_special_tokens=False)]
ids = np.full((len(texts), max([len(e) for e in encoded] + [1])), -1, np.int32)
for i, e in enumerate(encoded):
    ids[i, :len(e)] = e
for text, p in zip(texts, serve(token_ids=tf.constant(ids))["probabilities"].numpy()):
    print(f"{labels[int(p.argmax())]} ({p.max():.3f}): {text}")
'''


# ---------------------------------------------------------------- which words decided


def explain_words(model: Any, data: bytes, size: int, class_index: int | None = None) -> dict[str, Any]:
    """Which words decided a text's prediction, by occlusion: each word's weight is how much the class's
    probability falls when that word is left out (negative: the word spoke against the class)."""
    text = str(decode(data, size, None))
    words = text.split(" ")[:MAX_TOKENS]
    variants = [text] + [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]
    probs = model.predict_on_batch(np.array(variants, dtype=object))
    index = int(np.argmax(probs[0])) if class_index is None else int(class_index)
    base = float(probs[0][index])
    weights = [round(base - float(p[index]), 4) for p in probs[1:]]
    return {"method": "occlusion", "class_index": index, "probability": round(base, 4),
            "words": [{"word": w, "weight": weights[i]} for i, w in enumerate(words)]}


def highlight(words: list[dict[str, Any]], top: int = 3) -> str:
    """The text with its most deciding words in [brackets], for a terminal."""
    ranked = {i for i, _ in sorted(enumerate(words), key=lambda x: -x[1]["weight"])[:top] if words[i]["weight"] > 0}
    return " ".join(f"[{w['word']}]" if i in ranked else w["word"] for i, w in enumerate(words))


def check_text_input(text: str) -> bytes:
    """A typed text as bytes for `decode`; an empty one gets a sentence."""
    if not text.strip():
        raise DatasetError("The text is empty; type a sentence to classify.")
    return text.encode("utf-8")
