"""Getting the weights ready while online, for a demo on a network without internet (a school, a hall).

The same core function as `python -m core weights download`: each ImageNet file streamed to a temporary
name, checksum-checked, then renamed into Keras's cache; a TF Hub model (YAMNet) unpacked into the
workspace's hub cache, where training looks for it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import settings
from core.engine import networks
from core.errors import TransferLabError
from core.spec import backbones, config as config_mod
from core.spec.config import RunConfig


def _fetch(kit: list[tuple[backbones.BackboneSpec, int]], ws: Path) -> None:
    """Download each missing file with one progress bar; a sentence for each that could not be had."""
    bar = st.progress(0.0, text="Starting the download…")
    for n, (spec, size) in enumerate(kit):
        def show(fraction: float, text: str, n: int = n, spec: backbones.BackboneSpec = spec) -> None:
            bar.progress(min(1.0, (n + fraction) / len(kit)), text=f"{spec.label}: {text}")

        try:
            networks.download_weights(spec, size, progress=show, ws=ws)
        except TransferLabError as exc:
            st.error(str(exc))
    bar.progress(1.0, text="Done.")


def offline_ui(config: RunConfig, ws: Path) -> None:
    """A download button for the chosen backbone when its weights are missing, and the offline kit."""
    spec = backbones.get(config.backbone)
    missing = config.weights == "imagenet" and backbones.cached_weights(spec, config.image_size, ws) is None
    if missing and not settings.offline():
        about = f" (about {spec.size_mb:g} MB)" if spec.size_mb else ""
        if st.button(f"Download the weights of {spec.label} now{about}", key="ui:offline:one",
                     icon=":material/download:",
                     help="Fetches them into this computer's cache now, so training needs no internet later."):
            _fetch([(spec, config.image_size)], ws)
    kit = [(backbones.get(b), size) for b, size in config_mod.offline_kit()]
    ready = {(s.id, size): backbones.cached_weights(s, size, ws) is not None for s, size in kit}
    with st.expander(f"Get ready for a demo without internet ({sum(ready.values())} of {len(kit)} backbones ready)"):
        st.markdown("Use it when you will show TransferLab where there is no internet (a classroom, a hall): "
                    "download, while you are still online, the weights every preset and the recommendation use.")
        st.dataframe([{"backbone": s.label, "image size (px)": size, "download (MB)": s.size_mb,
                       "ready": "on this computer" if ready[(s.id, size)] else "not yet"} for s, size in kit],
                     hide_index=True)
        if settings.offline():
            st.caption("This computer is set to offline (TL_OFFLINE=1), so nothing can be downloaded now.")
        elif not all(ready.values()):
            if st.button("Download them now", key="ui:offline:kit", icon=":material/download:",
                         help="The same as `python -m core weights download` on the command line."):
                _fetch([(s, size) for s, size in kit if not ready[(s.id, size)]], ws)
        st.caption("On the command line: `python -m core weights download` (and `weights list`).")
