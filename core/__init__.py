"""TransferLab core: everything that is not drawing. Never imports streamlit."""

import os

# tensorflow-hub's hub.KerasLayer only works with the Keras 2 API, so every TensorFlow import in
# this project must see the tf_keras flavour. This must run before anything imports TensorFlow.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ start-up chatter is noise for our users; real errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
