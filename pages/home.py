"""Home: what transfer learning is, in plain words, and a one-click way to start."""

import streamlit as st

from core.data import samples
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
            "1. **Data**: bring your images: a zip with one folder per class, or add them class by class (or try the built-in sample).\n"
            "2. **Model**: choose a backbone and how much of it to retrain, or just pick a preset.\n"
            "3. **Train**: the training runs in the background; watch its progress live.\n"
            "4. **Search** (optional): let TransferLab find a good learning rate, or try many settings and keep the "
            "best.\n"
            "5. **Predictions**: see how well the model does on images it never saw, and try your own.\n"
            "6. **Compare** runs side by side, and **Export** the trained model: download it, make it smaller, or "
            "serve it to other programs."
        )


# The words the app uses, each in a sentence; the pages explain them again where their controls are.
GLOSSARY = (
    ("Transfer learning", "reusing a network that already learned one big task (recognising everyday photos) as "
                          "the starting point for yours, so it needs far fewer images and far less time."),
    ("Dataset and classes", "your example images, sorted into classes: the categories the model learns to tell "
                            "apart, such as ripe and unripe."),
    ("Training, validation and test images", "the dataset is split three ways. The model learns from the training "
                                             "images; the validation images check it after every epoch, to keep its "
                                             "best moment; the test images stay aside until the end, for an honest "
                                             "score."),
    ("Augmentation", "randomly changed copies of the training images (mirrored, turned, zoomed…), so the model "
                     "learns what matters instead of memorising exact pictures."),
    ("Backbone", "the pretrained network that turns an image into a summary of what it sees (its features)."),
    ("Pretrained weights, ImageNet", "weights are the millions of numbers a network learns. Pretrained ones were "
                                     "learned on ImageNet, 1.2 million everyday photos in 1,000 categories."),
    ("Feature extraction", "the backbone stays frozen (unchanged); only the new classifier on top of it learns. "
                           "Fast, and good with few images."),
    ("Fine-tuning", "after the classifier has learned, the top layers of the backbone are adjusted too, gently."),
    ("Gradual unfreezing", "fine-tuning in steps: the backbone is opened one group of layers at a time, from the top."),
    ("From scratch", "training the whole network from random weights, without pretrained knowledge: it needs many "
                     "more images, and shows what transfer learning adds."),
    ("Epoch", "one pass of the training over all the training images."),
    ("Batch size", "how many images the model looks at before each small update of its weights."),
    ("Learning rate", "how big each of those updates is: too big and training jumps around, too small and it "
                      "crawls."),
    ("Overfitting", "memorising the training images instead of learning the general pattern: training scores keep "
                    "improving while validation scores get worse."),
    ("Accuracy, precision, recall, F1", "accuracy is the share of images put in the right class. Precision: when "
                                        "the model says 'this class', how often it is right. Recall: of the images "
                                        "really in a class, how many it finds. F1 combines precision and recall."),
    ("Confusion matrix", "a table of true classes (rows) against the model's guesses (columns): the diagonal holds "
                         "the right answers, the rest shows which classes get mixed up."),
    ("ROC-AUC", "how well the model ranks the right class above the others, from 50% (guessing) to 100% "
                "(perfect), whatever threshold is used to decide."),
    ("Guessing level (chance)", "the accuracy of picking a class at random: 50% with two classes, 20% with five. "
                                "A model near it has learned nothing; TransferLab says so instead of congratulating."),
    ("Domain adaptation", "training on your labelled images while also showing the model unlabelled images from "
                          "where it will be used (another camera, lighting or place), so it works there too."),
    ("Layer transfer", "copying the layers two different networks share from one to the other, then training the "
                       "rest."),
    ("Distillation", "a small 'student' network learning from a big 'teacher' model's answers, to get close to "
                     "its accuracy at a fraction of its size."),
    ("Search", "trying many settings automatically (each a short training run) and keeping the best; the "
               "learning-rate finder is a quick search for the learning rate alone."),
    ("Pruning", "setting a model's smallest weights to zero while it is fine-tuned again, so its files compress "
                "much smaller; it costs some accuracy, which TransferLab measures."),
    ("Serving", "letting other programs send an image to the model over the network and get its answer back."),
    ("Grad-CAM", "a heatmap over an image showing which parts weighed most in the model's answer."),
    ("TensorFlow Lite", "a compact model file format for phones and small devices."),
    ("Quantization", "storing a model's numbers with fewer bits (for example 8-bit integers, 'int8', instead of "
                     "32-bit decimals): a smaller, faster file that may lose a little accuracy."),
)


def glossary_ui() -> None:
    """The words used throughout the app, one line each."""
    with st.expander("What do these words mean?", icon=":material/menu_book:"):
        st.markdown("\n".join(f"- **{term}**: {meaning}" for term, meaning in GLOSSARY))


def start_ui() -> bool:
    """The 'Start here' path; True when the sample button was clicked."""
    st.subheader("Start here")
    kinds = ", ".join(f"{k}s" for k in samples.SHAPE_CLASSES[:-1]) + f" and {samples.SHAPE_CLASSES[-1]}s"
    st.caption(
        f"The built-in sample holds {samples.SHAPES_PER_CLASS * len(samples.SHAPE_CLASSES)} small pictures of "
        f"{kinds} ({samples.SHAPES_PER_CLASS} of each) in random colours, sizes and places on noisy "
        "backgrounds. It is ready in a few seconds."
    )
    clicked = st.button(
        "Load the sample images and look at them",
        type="primary",
        key="home.start",
        icon=":material/play_arrow:",
        help="Adds the built-in 'shapes' sample to your workspace and opens the Data page, where you can look at it "
             "before training.",
    )
    _common.link_to("pages/data.py", "Or bring your own images on the Data page", ":material/photo_library:")
    return clicked


def page() -> None:
    st.title("TransferLab")
    intro_ui()
    glossary_ui()
    if start_ui():
        ws = _common.workspace()
        with st.spinner("Preparing the sample images…"):
            info = _common.load_sample(ws)
        _common.choose_dataset(ws, info["id"])  # pressed to start with the sample: it becomes the dataset in hand
        st.switch_page("pages/data.py")


_common.guarded(page)
