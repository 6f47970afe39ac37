"""AppTest tests of the Streamlit pages (no training, no TensorFlow)."""
