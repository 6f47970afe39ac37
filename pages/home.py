"""Home: what transfer learning is, in plain words, and a one-click way to start."""

import streamlit as st

from core import datasets
from pages import _common


def intro_ui() -> None:
    """The idea of transfer learning and the steps of the app."""
    st.markdown(
        "Teach a computer to tell your kinds of images apart (for example ripe and unripe fruit, or "
        "healthy and damaged parts) without writing code, and with far fewer example images than "
        "training from nothing would need."
    )
    left, right = st.columns(2)
    with left:
        st.subheader("What is transfer learning?")
        st.markdown(
            "A network that has already learned to recognise everyday photos (the ImageNet collection "
            "of over a million images in 1,000 categories) knows a lot about edges, textures and shapes. "
            "Transfer learning **reuses that knowledge** and only teaches it the last step: your classes."
        )
        st.markdown(
            "**Backbone:** the pretrained network that turns an image into a summary of what it sees. "
            "TransferLab puts a new, small **classifier** on top of it that learns your classes."
        )
        st.markdown(
            "**Why fewer images?** The backbone already knows how to see, so the new classifier only has "
            "to learn which of those visual features matter for your classes. Tens to hundreds of images "
            "per class are often enough, where training from scratch needs thousands."
        )
    with right:
        st.subheader("The steps")
        st.markdown(
            "1. **Data**: load a folder of images, one sub-folder per class (or try the built-in sample).\n"
            "2. **Model**: choose a backbone and how much of it to retrain, or just pick a preset.\n"
            "3. **Train**: the training runs in the background; watch its progress live.\n"
            "4. **Predictions**: see how well the model does on images it never saw, and try your own.\n"
            "5. **Compare** runs side by side, and **Export** the trained model."
        )


def start_ui() -> bool:
    """The 'Start here' path; True when the sample button was clicked."""
    st.subheader("Start here")
    kinds = ", ".join(f"{k}s" for k in datasets.SHAPE_CLASSES[:-1]) + f" and {datasets.SHAPE_CLASSES[-1]}s"
    st.caption(
        f"The built-in sample holds {datasets.SHAPES_PER_CLASS * len(datasets.SHAPE_CLASSES)} small pictures of "
        f"{kinds} ({datasets.SHAPES_PER_CLASS} of each) in random colours, sizes and places on noisy "
        "backgrounds. It is ready in a few seconds."
    )
    clicked = st.button(
        "Load the sample images and start",
        type="primary",
        key="home.start",
        icon=":material/play_arrow:",
        help="Adds the built-in 'shapes' sample to your workspace and opens the Data page.",
    )
    _common.link_to("pages/data.py", "Or bring your own images on the Data page", ":material/photo_library:")
    return clicked


def page() -> None:
    st.title("TransferLab")
    intro_ui()
    if start_ui():
        with st.spinner("Preparing the sample images…"):
            info = _common.load_sample(_common.workspace())
        st.session_state["dataset_id"] = info["id"]
        st.switch_page("pages/data.py")


_common.guarded(page)
