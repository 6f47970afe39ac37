"""The backbone registry: every Keras application in tf_keras, and TF Hub feature vectors, as data.

One BackboneSpec per pretrained network: its constructor, preprocessing, image sizes, weights files
and published figures. Static: nothing here builds a network or downloads (core.engine.networks does),
and the backbones of earlier runs are composed above the run store (core.store.sources). ImageNet
weights live in Keras's own cache (~/.keras/models): tf_keras ignores KERAS_HOME there.

Figures measured from the built networks (parameter counts, GFLOPs, the layer groups used for
gradual unfreezing) live in backbone_facts.json, written by core.engine.facts.write_facts(): building
every network takes minutes, so the page and the CLI read the stored results instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from core import settings
from core.errors import ConfigError


@dataclass(frozen=True)
class WeightsFile:
    """One weights file exactly as Keras names and fetches it."""

    name: str
    url: str
    file_hash: str | None = None


@dataclass(frozen=True)
class BackboneSpec:
    """What the app needs to know about a backbone, without building it."""

    id: str
    label: str
    family: str
    # Keras application constructor as (module, attribute), plus its extra keyword arguments.
    constructor: tuple[str, str]
    kwargs: dict[str, Any] = field(default_factory=dict)
    # How raw 0-255 RGB pixels become the network's input: one of PREPROCESSING.
    preprocessing: str = "none"
    weights_options: tuple[str, ...] = ("imagenet", "none")
    default_size: int = 224
    min_size: int = 32
    max_size: int = 600
    # ImageNet weights were trained at these sizes; other sizes reuse the closest file's filters.
    weight_sizes: tuple[int, ...] = (224,)
    top1: float | None = None  # published ImageNet top-1 accuracy, %
    weights_files: Callable[[int], list[WeightsFile]] = lambda size: []
    # The same network's ImageNet classifier (include_top=True), for "what does it see?".
    top_weights_files: Callable[[int], list[WeightsFile]] = lambda size: []
    # Keras builds a slightly different graph when it loads the weights itself (EfficientNet
    # rescales its input only then), so those weights must go through the constructor.
    keras_loads_weights: bool = False
    hub_handle: str = ""  # a TF Hub feature-vector handle: a URL or a local SavedModel folder
    kind: str = "image"  # the kind of data it reads (core.spec.kinds): a dataset of another kind is refused
    # What turns the kind's raw input into the network's input (core.engine.sounds): "" (images: pixels as they
    # are), "logmel" (a 16 kHz waveform -> its log-mel spectrogram as a picture), "waveform" (the network reads
    # the waveform itself, as YAMNet does).
    front_end: str = ""
    # Settings ({RunConfig field: value}) that train it well from random weights, measured: the offline fallback
    # trains it with them, and `config` gives them when it is chosen (config.scratch_settings).
    scratch_recipe: dict[str, Any] = field(default_factory=dict)
    # Pretrained weights shipped inside an installed Python package: "package/relative/path" (WordLlama's table).
    package_file: str = ""
    # The constructor builds the whole base, raw input to one vector, from (spec, weights) (text encoders).
    builds_base: bool = False

    def weights_candidates(self, image_size: int) -> list[WeightsFile]:
        """Weights files usable at this size, the best match first."""
        sizes = sorted(self.weight_sizes, key=lambda s: (s != image_size, abs(s - image_size)))
        out: list[WeightsFile] = []
        for s in sizes:
            out += [f for f in self.weights_files(s) if f not in out]
        return out

    @property
    def facts(self) -> dict[str, Any]:
        """Measured figures from backbone_facts.json ({} for TF Hub models, which are not built in advance)."""
        return facts().get(self.id, {})

    @property
    def params_m(self) -> float:
        """Parameters with the ImageNet classifier, in millions (counted from the built network)."""
        return round(self.facts.get("params", 0) / 1e6, 2)

    @property
    def base_params_m(self) -> float:
        """Parameters of the backbone alone (no classifier), in millions."""
        return round(self.facts.get("base_params", 0) / 1e6, 2)

    @property
    def size_mb(self) -> float:
        """The size of the ImageNet weights download (float32, no classifier), in MB."""
        return round(self.facts.get("base_params", 0) * 4 / 2**20, 1)

    @property
    def gflops(self) -> float:
        """Billions of floating-point operations for one image at the default size."""
        return self.facts.get("gflops", 0.0)

    @property
    def ms_per_image(self) -> float:
        """Estimated milliseconds to run one image through the backbone at its default size on a 2-core CPU.

        One backbone per family was timed (core.engine.facts.calibrate_speed); the others scale with their GFLOPs.
        """
        return self.facts.get("ms_per_image", 0.0)

    @property
    def groups(self) -> list[dict[str, Any]]:
        """The convolutional groups found from the graph, bottom (the stem) first."""
        return self.facts.get("groups", [])


PREPROCESSING = ("none", "minus_one_to_one", "zero_to_one", "caffe", "torch", "per_image")
# DenseNet's "torch" mode: scale to 0-1, then standardise per channel with ImageNet's statistics.
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- weights files

_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _fixed(notop: WeightsFile, top: WeightsFile | None = None) -> dict[str, Callable[[int], list[WeightsFile]]]:
    """Weights files that do not depend on the image size."""
    return {"weights_files": lambda s: [notop], "top_weights_files": lambda s: [top] if top else []}


def _pair(base_url: str, notop: str, notop_hash: str | None, top: str, top_hash: str | None):
    return _fixed(WeightsFile(notop, base_url + notop, notop_hash), WeightsFile(top, base_url + top, top_hash))


def _mobilenet_v1_files(alpha: float) -> Callable[[int], list[WeightsFile]]:
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
    return lambda s: [WeightsFile(f"mobilenet_{text}_{s}_tf_no_top.h5", f"{_KA}mobilenet/mobilenet_{text}_{s}_tf_no_top.h5")]


def _mobilenet_v1_top(alpha: float) -> Callable[[int], list[WeightsFile]]:
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
    return lambda s: [WeightsFile(f"mobilenet_{text}_{s}_tf.h5", f"{_KA}mobilenet/mobilenet_{text}_{s}_tf.h5")]


def _mobilenet_v2_files(alpha: float, top: bool = False) -> Callable[[int], list[WeightsFile]]:
    def files(s: int) -> list[WeightsFile]:
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{s}{'' if top else '_no_top'}.h5"
        return [WeightsFile(name, f"{_KA}mobilenet_v2/{name}")]

    return files


def _mobilenet_v3_files(kind: str, notop_hash: str, top_hash: str):
    return _pair(f"{_KA}mobilenet_v3/", f"weights_mobilenet_v3_{kind}_224_1.0_float_no_top_v2.h5", notop_hash,
                 f"weights_mobilenet_v3_{kind}_224_1.0_float.h5", top_hash)


def _named(base_url: str, model_name: str, hashes: tuple[str, str]):
    """Files named <model>.h5 and <model>_notop.h5 (EfficientNet, ConvNeXt, RegNet)."""
    return _pair(base_url, f"{model_name}_notop.h5", hashes[1], f"{model_name}.h5", hashes[0])


def _resnet_files(model_name: str, hashes: tuple[str, str]):
    stem = f"{model_name}_weights_tf_dim_ordering_tf_kernels"
    return _pair(f"{_KA}resnet/", f"{stem}_notop.h5", hashes[1], f"{stem}.h5", hashes[0])


def _tf_kernels(folder: str, model_name: str, notop_hash: str, top_hash: str):
    stem = f"{model_name}_weights_tf_dim_ordering_tf_kernels"
    return _pair(f"{_KA}{folder}/", f"{stem}_notop.h5", notop_hash, f"{stem}.h5", top_hash)


def _resnet_rs_files(depth: int, sizes: tuple[int, ...], hashes: dict[int, tuple[str, str]]):
    def files(top: bool) -> Callable[[int], list[WeightsFile]]:
        def at(s: int) -> list[WeightsFile]:
            if s not in hashes:
                return []
            name = f"resnet-rs-{depth}-i{s}{'' if top else '_notop'}.h5"
            return [WeightsFile(name, f"{_KA}resnet_rs/{name}", hashes[s][0 if top else 1])]

        return at

    return {"weights_files": files(False), "top_weights_files": files(True), "weight_sizes": sizes}


# ---------------------------------------------------------------- the Keras applications

_APPS = "tf_keras.applications"


def _v1(alpha: float, top1: float) -> BackboneSpec:
    return BackboneSpec(
        id=f"mobilenet_v1_{alpha}", label=f"MobileNet V1 (width {alpha})", family="mobilenet_v1",
        constructor=(_APPS, "MobileNet"), kwargs={"alpha": alpha}, preprocessing="minus_one_to_one",
        weight_sizes=(128, 160, 192, 224), top1=top1,
        weights_files=_mobilenet_v1_files(alpha), top_weights_files=_mobilenet_v1_top(alpha),
    )


def _v2(alpha: float, top1: float) -> BackboneSpec:
    return BackboneSpec(
        id=f"mobilenet_v2_{alpha}", label=f"MobileNet V2 (width {alpha})", family="mobilenet_v2",
        constructor=(_APPS, "MobileNetV2"), kwargs={"alpha": alpha}, preprocessing="minus_one_to_one",
        weight_sizes=(96, 128, 160, 192, 224) if alpha <= 1.0 else (224,), top1=top1,
        weights_files=_mobilenet_v2_files(alpha), top_weights_files=_mobilenet_v2_files(alpha, top=True),
    )


def _app(id: str, label: str, family: str, attr: str, preprocessing: str, top1: float | None,
         default_size: int = 224, min_size: int = 32, **more: Any) -> BackboneSpec:
    more.setdefault("weight_sizes", (default_size,))
    return BackboneSpec(id=id, label=label, family=family, constructor=(_APPS, attr), preprocessing=preprocessing,
                        default_size=default_size, min_size=min_size, top1=top1, **more)


_EFFICIENTNET = {  # name: (default size, top-1, (top hash, no-top hash))
    "b0": (224, 77.1, ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d")),
    "b1": (240, 79.1, ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432")),
    "b2": (260, 80.1, ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39")),
    "b3": (300, 81.6, ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226")),
    "b4": (380, 82.9, ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba")),
    "b5": (456, 83.6, ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f")),
    "b6": (528, 84.0, ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743")),
    "b7": (600, 84.3, ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a")),
}
_EFFICIENTNET_V2 = {  # name: (default size, top-1, (top hash, no-top hash))
    "b0": (224, 78.7, ("21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff")),
    "b1": (240, 79.8, ("069f0534ff22adf035c89e2d9547a9dc", "0e80663031ca32d657f9caa404b6ec37")),
    "b2": (260, 80.5, ("424e49f28180edbde1e94797771950a7", "1dfe2e7a5d45b6632553a8961ea609eb")),
    "b3": (300, 82.0, ("1f1fc43bd98a6e4fd8fdfd551e02c7a0", "f6abf7b5849ac99a89b50dd3fd532856")),
    "s": (384, 83.9, ("e1d88a8495beba45748fedd0cecbe016", "af0682fb74e8c54910f2d4393339c070")),
    "m": (480, 85.3, ("a3bf6aa3276309f4fc6a34aa114c95cd", "1b8dc055df72dde80d614482840fe342")),
    "l": (480, 85.7, ("27e6d408b53c7ebc868fefa357689935", "b0b66b5c863aef5b46e8608fe1711615")),
}
_CONVNEXT = {  # size: (top-1, (top hash, no-top hash)); Base and larger were pretrained on ImageNet-21k first
    "tiny": (81.3, ("8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
                    "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1")),
    "small": (82.3, ("ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
                     "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab")),
    "base": (85.3, ("52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
                    "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45")),
    "large": (86.3, ("070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
                     "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd")),
    "xlarge": (86.7, ("c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
                      "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05")),
}
# RegNet top-1 as published with the architecture (Radosavovic et al. 2020, the pycls model zoo
# the Keras weights were ported from): (top-1, (top hash, no-top hash)).
_REGNET = {
    "x002": (68.9, ("49fb46e56cde07fdaf57bffd851461a86548f6a3a4baef234dd37290b826c0b8", "5445b66cd50445eb7ecab094c1e78d4d3d29375439d1a7798861c4af15ffff21")),
    "x004": (72.7, ("3523c7f5ac0dbbcc2fd6d83b3570e7540f7449d3301cc22c29547302114e4088", "de139bf07a66c9256f2277bf5c1b6dd2d5a3a891a5f8a925a10c8a0a113fd6f3")),
    "x006": (74.1, ("340216ef334a7bae30daac9f414e693c136fac9ab868704bbfcc9ce6a5ec74bb", "a43ec97ad62f86b2a96a783bfdc63a5a54de02eef54f26379ea05e1bf90a9505")),
    "x008": (75.2, ("8f145d6a5fae6da62677bb8d26eb92d0b9dfe143ec1ebf68b24a57ae50a2763d", "3c7e4b0917359304dc18e644475c5c1f5e88d795542b676439c4a3acd63b7207")),
    "x016": (77.0, ("31c386f4c7bfef4c021a583099aa79c1b3928057ba1b7d182f174674c5ef3510", "1b8e3d545d190271204a7b2165936a227d26b79bb7922bac5ee4d303091bf17a")),
    "x032": (78.3, ("6c025df1409e5ea846375bc9dfa240956cca87ef57384d93fef7d6fa90ca8c7f", "9cd4522806c0fcca01b37874188b2bd394d7c419956d77472a4e072b01d99041")),
    "x040": (78.6, ("ba128046c588a26dbd3b3a011b26cb7fa3cf8f269c184c132372cb20b6eb54c1", "b4ed0ca0b9a98e789e05000e830403a7ade4d8afa01c73491c44610195198afe")),
    "x064": (79.2, ("0f4489c3cd3ad979bd6b0324213998bcb36dc861d178f977997ebfe53c3ba564", "3e706fa416a18dfda14c713423eba8041ae2509db3e0a611d5f599b5268a46c4")),
    "x080": (79.3, ("76320e43272719df648db37271a247c22eb6e810fe469c37a5db7e2cb696d162", "7b1ce8e29ceefec10a6569640ee329dba7fbc98b5d0f6346aabade058b66cf29")),
    "x120": (79.7, ("5cafc461b78897d5e4f24e68cb406d18e75f31105ef620e7682b611bb355eb3a", "36174ddd0299db04a42631d028abcb1cc7afec2b705e42bd28fcd325e5d596bf")),
    "x160": (80.0, ("8093f57a5824b181fb734ea21ae34b1f7ee42c5298e63cf6d587c290973195d2", "9d1485050bdf19531ffa1ed7827c75850e0f2972118a996b91aa9264b088fd43")),
    "x320": (80.5, ("91fb3e6f4e9e44b3687e80977f7f4412ee9937c0c704232664fc83e4322ea01e", "9db7eacc37b85c98184070e1a172e6104c00846f44bcd4e727da9e50d9692398")),
    "y002": (70.3, ("1e8091c674532b1a61c04f6393a9c570113e0197f22bd1b98cc4c4fe800c6465", "f63221f63d625b8e201221499682587bfe29d33f50a4c4f4d53be00f66c0f12c")),
    "y004": (74.1, ("752fdbad21c78911bf1dcb8c513e5a0e14697b068e5d9e73525dbaa416d18d8e", "45e6ba8309a17a77e67afc05228454b2e0ee6be0dae65edc0f31f1da10cc066b")),
    "y006": (75.5, ("98942e07b273da500ff9699a1f88aca78dfad4375faabb0bab784bb0dace80a9", "b70261cba4e60013c99d130cc098d2fce629ff978a445663b6fa4f8fc099a2be")),
    "y008": (76.3, ("1b099377cc9a4fb183159a6f9b24bc998e5659d25a449f40c90cbffcbcfdcae4", "b11f5432a216ee640fe9be6e32939defa8d08b8d136349bf3690715a98752ca1")),
    "y016": (78.0, ("b7ce1f5e223f0941c960602de922bcf846288ce7a4c33b2a4f2e4ac4b480045b", "d7404f50205e82d793e219afb9eb2bfeb781b6b2d316a6128c6d7d7dacab7f57")),
    "y032": (79.0, ("6a6a545cf3549973554c9b94f0cd40e25f229fffb1e7f7ac779a59dcbee612bd", "eb3ac1c45ec60f4f031c3f5180573422b1cf7bebc26c004637517372f68f8937")),
    "y040": (79.4, ("98d00118b335162bbffe8f1329e54e5c8e75ee09b2a5414f97b0ddfc56e796f6", "b5be2a5e5f072ecdd9c0b8a437cd896df0efa1f6a1f77e41caa8719b7dfcb05d")),
    "y064": (79.9, ("65c948c7a18aaecaad2d1bd4fd978987425604ba6669ef55a1faa0069a2804b7", "885c4b7ed7ea339daca7dafa1a62cb7d41b1068897ef90a5a3d71b4a2e2db31a")),
    "y080": (79.9, ("7a2c62da2982e369a4984d3c7c3b32d6f8d3748a71cb37a31156c436c37f3e95", "3d119577e1e3bf8d153b895e8ea9e4ec150ff2d92abdca711b6e949c3fd7115d")),
    "y120": (80.3, ("a96ab0d27d3ae35a422ee7df0d789069b3e3217a99334e0ce861a96595bc5986", "4a6fa387108380b730b71feea2ad80b5224b5ea9dc21dc156c93fe3c6186485c")),
    "y160": (80.4, ("45067240ffbc7ca2591313fee2f80dbdda6d66ec1a7451446f9a6d00d8f7ac6e", "ead1e6b568be8f34447ec8941299a9df4368736ba9a8205de5427fa20a1fb316")),
    "y320": (80.9, ("b05e173e4ae635cfa22d06392ee3741284d17dadfee68f2aa6fd8cb2b7561112", "cad78f74a586e24c61d38be17f3ae53bb9674380174d2585da1a526b8c20e1fd")),
}
_REGNET_WORDS = {"002": "200MF", "004": "400MF", "006": "600MF", "008": "800MF", "016": "1.6GF", "032": "3.2GF",
                 "040": "4.0GF", "064": "6.4GF", "080": "8.0GF", "120": "12GF", "160": "16GF", "320": "32GF"}
# ResNet-RS top-1 as published (Bello et al. 2021) at the largest size Keras has weights for:
# depth: (top-1, {size: (top hash, no-top hash)}).
_RESNET_RS = {
    50: (78.8, {160: ("69d9d925319f00a8bdd4af23c04e4102", "90daa68cd26c95aa6c5d25451e095529")}),
    101: (81.2, {160: ("544b3434d00efc199d66e9058c7f3379", "82d5b90c5ce9d710da639d6216d0f979"),
                 192: ("eb285be29ab42cf4835ff20a5e3b5d23", "f9a0f6b85faa9c3db2b6e233c4eebb5b")}),
    152: (83.0, {192: ("8d72a301ed8a6f11a47c4ced4396e338", "5fbf7ac2155cb4d5a6180ee9e3aa8704"),
                 224: ("31a46a92ab21b84193d0d71dd8c3d03b", "dc8b2cba2005552eafa3167f00dc2133"),
                 256: ("ba6271b99bdeb4e7a9b15c05964ef4ad", "fa79794252dbe47c89130f65349d654a")}),
    200: (83.4, {256: ("a76930b741884e09ce90fa7450747d5f", "bbdb3994718dfc0d1cd45d7eff3f3d9c")}),
    270: (83.8, {256: ("20d575825ba26176b03cb51012a367a8", "2c42ecb22e35f3e23d2f70babce0a2aa")}),
    350: (84.2, {256: ("f4a039dc3c421321b7fc240494574a68", "6e44b55025bbdff8f51692a023143d66"),
                 320: ("7ccb858cc738305e8ceb3c0140bee393", "ab0c1f9079d2f85a9facbd2c88aa6079")}),
    420: (84.4, {320: ("ae0eb9bed39e64fc8d7e0db4018dc7e8", "fe6217c32be8305b1889657172b98884")}),
}

_SPECS: tuple[BackboneSpec, ...] = (
    # Published ImageNet top-1: the Keras Applications table (keras.io/api/applications) and, for
    # MobileNet widths, the tables in the Keras MobileNet docstrings (at 224 px).
    _v1(0.25, 50.6), _v1(0.5, 63.7), _v1(0.75, 68.4), _v1(1.0, 70.6),
    _v2(0.35, 60.3), _v2(0.5, 65.4), _v2(0.75, 69.8), _v2(1.0, 71.8), _v2(1.3, 74.4), _v2(1.4, 75.0),
    BackboneSpec(
        id="mobilenet_v3_small", label="MobileNet V3 Small", family="mobilenet_v3",
        constructor=(_APPS, "MobileNetV3Small"), kwargs={"include_preprocessing": True}, top1=68.1,
        **_mobilenet_v3_files("small", "d3e8ec802a04aa4fc771ee12a9a9b836", "8768d4c2e7dee89b9d02b2d03d65d862"),
    ),
    BackboneSpec(
        id="mobilenet_v3_large", label="MobileNet V3 Large", family="mobilenet_v3",
        constructor=(_APPS, "MobileNetV3Large"), kwargs={"include_preprocessing": True}, top1=75.6,
        **_mobilenet_v3_files("large", "07fb09a5933dd0c8eaafa16978110389", "59e551e166be033d707958cf9e29a6a7"),
    ),
    *(
        _app(f"efficientnet_{b}", f"EfficientNet {b.upper()}", "efficientnet", f"EfficientNet{b.upper()}", "none",
             top1, size, keras_loads_weights=True,
             **_named("https://storage.googleapis.com/keras-applications/", f"efficientnet{b}", hashes))
        for b, (size, top1, hashes) in _EFFICIENTNET.items()
    ),
    *(
        _app(f"efficientnet_v2_{b}", f"EfficientNet V2 {b.upper()}", "efficientnet_v2", f"EfficientNetV2{b.upper()}",
             "none", top1, size, **_named(f"{_KA}efficientnet_v2/", f"efficientnetv2-{b}", hashes))
        for b, (size, top1, hashes) in _EFFICIENTNET_V2.items()
    ),
    _app("resnet50", "ResNet-50", "resnet", "ResNet50", "caffe", 74.9,
         **_resnet_files("resnet50", ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"))),
    _app("resnet101", "ResNet-101", "resnet", "ResNet101", "caffe", 76.4,
         **_resnet_files("resnet101", ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"))),
    _app("resnet152", "ResNet-152", "resnet", "ResNet152", "caffe", 76.6,
         **_resnet_files("resnet152", ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"))),
    _app("resnet50_v2", "ResNet-50 V2", "resnet_v2", "ResNet50V2", "minus_one_to_one", 76.0,
         **_resnet_files("resnet50v2", ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"))),
    _app("resnet101_v2", "ResNet-101 V2", "resnet_v2", "ResNet101V2", "minus_one_to_one", 77.2,
         **_resnet_files("resnet101v2", ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"))),
    _app("resnet152_v2", "ResNet-152 V2", "resnet_v2", "ResNet152V2", "minus_one_to_one", 78.0,
         **_resnet_files("resnet152v2", ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"))),
    *(
        _app(f"resnet_rs_{depth}", f"ResNet-RS {depth}", "resnet_rs", f"ResNetRS{depth}", "none", top1,
             max(files), **_resnet_rs_files(depth, tuple(files), files))
        for depth, (top1, files) in _RESNET_RS.items()
    ),
    _app("vgg16", "VGG-16", "vgg", "VGG16", "caffe", 71.3,
         **_tf_kernels("vgg16", "vgg16", "6d6bbae143d832006294945121d1f1fc", "64373286793e3c8b2b4e3219cbf3544b")),
    _app("vgg19", "VGG-19", "vgg", "VGG19", "caffe", 71.3,
         **_tf_kernels("vgg19", "vgg19", "253f8cb515780f3b799900260a226db6", "cbe5617147190e668d6c5d5026f83318")),
    _app("inception_v3", "Inception V3", "inception", "InceptionV3", "minus_one_to_one", 77.9, 299, 75,
         **_tf_kernels("inception_v3", "inception_v3", "bcbd6486424b2319ff4ef7d526e38f63",
                       "9a0d58056eeedaa3f26cb7ebd46da564")),
    _app("inception_resnet_v2", "Inception-ResNet V2", "inception", "InceptionResNetV2", "minus_one_to_one", 80.3,
         299, 75, **_tf_kernels("inception_resnet_v2", "inception_resnet_v2", "d19885ff4a710c122648d3b5c3b684e4",
                                "e693bd0210a403b3192acc6073ad2e96")),
    _app("xception", "Xception", "xception", "Xception", "minus_one_to_one", 79.0, 299, 71,
         **_tf_kernels("xception", "xception", "b0042744bf5b25fce3cb969f33bebb97", "0a58e3b7378bc2990ea3b43d5981f1f6")),
    _app("densenet121", "DenseNet-121", "densenet", "DenseNet121", "torch", 75.0,
         **_tf_kernels("densenet", "densenet121", "30ee3e1110167f948a6b9946edeeb738",
                       "9d60b8095a5708f2dcce2bca79d332c7")),
    _app("densenet169", "DenseNet-169", "densenet", "DenseNet169", "torch", 76.2,
         **_tf_kernels("densenet", "densenet169", "b8c4d4c20dd625c148057b9ff1c1176b",
                       "d699b8f76981ab1b30698df4c175e90b")),
    _app("densenet201", "DenseNet-201", "densenet", "DenseNet201", "torch", 77.3,
         **_tf_kernels("densenet", "densenet201", "c13680b51ded0fb44dff2d8f86ac8bb1",
                       "1ceb130c1ea1b78c3bf6114dbdfd8807")),
    # NASNet's files are cached under other names than their URLs say, exactly as Keras does.
    _app("nasnet_mobile", "NASNet Mobile", "nasnet", "NASNetMobile", "minus_one_to_one", 74.4,
         **_fixed(WeightsFile("nasnet_mobile_no_top.h5", f"{_KA}nasnet/NASNet-mobile-no-top.h5",
                              "1ed92395b5b598bdda52abe5c0dbfd63"),
                  WeightsFile("nasnet_mobile.h5", f"{_KA}nasnet/NASNet-mobile.h5", "020fb642bf7360b370c678b08e0adf61"))),
    _app("nasnet_large", "NASNet Large", "nasnet", "NASNetLarge", "minus_one_to_one", 82.5, 331,
         **_fixed(WeightsFile("nasnet_large_no_top.h5", f"{_KA}nasnet/NASNet-large-no-top.h5",
                              "d81d89dc07e6e56530c4e77faddd61b5"),
                  WeightsFile("nasnet_large.h5", f"{_KA}nasnet/NASNet-large.h5", "11577c9a518f0070763c2b964a382f17"))),
    *(
        _app(f"convnext_{size}", f"ConvNeXt {size.capitalize() if size != 'xlarge' else 'XLarge'}", "convnext",
             f"ConvNeXt{size.capitalize() if size != 'xlarge' else 'XLarge'}", "none", top1,
             **_named(f"{_KA}convnext/", f"convnext_{size}", hashes))
        for size, (top1, hashes) in _CONVNEXT.items()
    ),
    *(
        _app(f"regnet_{name}", f"RegNet{name[0].upper()} {_REGNET_WORDS[name[1:]]}", "regnet", f"RegNet{name.upper()}",
             "none", top1, **_named(f"{_KA}regnet/", f"regnet{name}", hashes))
        for name, (top1, hashes) in _REGNET.items()
    ),
    # Not pretrained: the network the app falls back to when no ImageNet weights are at hand,
    # small enough to train from scratch on a CPU in a minute or two.
    BackboneSpec(
        id="small_cnn", label="Small CNN (no pretraining)", family="small_cnn",
        constructor=("core.engine.networks", "small_cnn"), preprocessing="per_image",
        weights_options=("none",), default_size=64, max_size=256,
        # A higher rate that warms up, then decays to zero, for at least 20 epochs (issue 27: with the residual
        # blocks and per-image standardisation, `shapes` from 0.69 to ~0.98 test accuracy over 3 seeds).
        scratch_recipe={"learning_rate": 3e-3, "schedule": "warmup_cosine", "epochs": 20},
    ),
)

# ---------------------------------------------------------------- sounds (kind "audio")

YAMNET = "https://tfhub.dev/google/yamnet/1"


def _logmel(spec: BackboneSpec, label: str) -> BackboneSpec:
    """An ImageNet CNN that looks at a clip's log-mel spectrogram as a picture (the front end is in the model)."""
    return BackboneSpec(**{**spec.__dict__, "id": "logmel_" + spec.id, "label": label, "family": "logmel_" + spec.family,
                           "kind": "audio", "front_end": "logmel", "default_size": 96, "max_size": 224})


_SOUND_SPECS: tuple[BackboneSpec, ...] = (
    # The baseline every transfer run on sounds is compared with: a small CNN trained from scratch on log-mel.
    BackboneSpec(
        id="logmel_cnn", label="Small CNN on log-mel (no pretraining)", family="logmel_cnn",
        constructor=("core.engine.sounds", "sound_cnn"), preprocessing="zero_to_one", weights_options=("none",),
        default_size=64, max_size=128, kind="audio", front_end="logmel",
    ),
    # Frozen, ImageNet features of a spectrogram are worse than the plain baseline; fine-tuned they are better.
    _logmel(_v1(0.25, 50.6), "MobileNet V1 0.25 on log-mel (ImageNet)"),
    _logmel(_v2(0.35, 60.3), "MobileNet V2 0.35 on log-mel (ImageNet)"),
    # YAMNet (AudioSet, 521 sound classes): 1,024-d embeddings per 0.48 s frame, averaged over the clip.
    BackboneSpec(
        id="yamnet", label="YAMNet (TF Hub, AudioSet)", family="yamnet", constructor=("tensorflow_hub", "KerasLayer"),
        weights_options=("imagenet",), default_size=96, hub_handle=YAMNET, kind="audio", front_end="waveform",
    ),
)


# Text encoders (kind "text"): a string in, one vector out. Built by core.engine.texts; `image_size` means
# nothing to them. "imagenet" weights stand for "pretrained" (the config's word for it).
_TEXT = "core.engine.text_encoders"
_TEXT_SPECS = (
    BackboneSpec(
        id="wordllama", label="WordLlama token embeddings (256, offline)", family="wordllama",
        constructor=(_TEXT, "wordllama_base"), kind="text", builds_base=True, package_file="wordllama/weights/l2_supercat_256.safetensors",
        kwargs={"note": "Llama 2's 32,000-token table distilled to 256 numbers a token, averaged over the text; "
                        "ships inside the wordllama package, so it works offline."},
    ),
    *(
        BackboneSpec(id=bid, label=label, family="text_hub", constructor=(_TEXT, "hub_text_base"), kind="text", builds_base=True,
                     hub_handle=handle, kwargs={"note": note})
        for bid, label, handle, note in (
            ("nnlm_en_50", "NNLM English 50 (TF Hub)", "https://tfhub.dev/google/nnlm-en-dim50/2",
             "A small English word-embedding model; text in, 50 numbers out."),
            ("nnlm_en_128_norm", "NNLM English 128, normalised (TF Hub)",
             "https://tfhub.dev/google/nnlm-en-dim128-with-normalization/2",
             "The larger English NNLM with punctuation removed; 128 numbers."),
            ("use_4", "Universal Sentence Encoder (TF Hub)", "https://tfhub.dev/google/universal-sentence-encoder/4",
             "Sentence meaning in 512 numbers; English; about 1 GB."),
            ("use_multilingual_3", "Universal Sentence Encoder, multilingual (TF Hub)",
             "https://tfhub.dev/google/universal-sentence-encoder-multilingual/3",
             "16 languages in one space; for data that is not English."),
        )
    ),
    BackboneSpec(
        id="avg_word_embedding", label="Average word embedding (no pretraining)", family="avg_word_embedding",
        constructor=(_TEXT, "average_word_embedding_base"), kind="text", builds_base=True, weights_options=("none",),
        kwargs={"note": "Model Maker's baseline: words hashed into 20,000 slots, 16 numbers each, learnt from "
                        "your texts alone."},
    ),
)


BACKBONES: dict[str, BackboneSpec] = {s.id: s for s in _SPECS + _SOUND_SPECS + _TEXT_SPECS}

# Which tf_keras.applications constructor each family's specs come from, for the completeness test.
KERAS_APPLICATIONS: tuple[str, ...] = tuple(s.constructor[1] for s in _SPECS if s.constructor[0] == _APPS)


# ---------------------------------------------------------------- TF Hub

HUB_PREFIX = "hub:"
HUB_AUDIO_PREFIX = "hub-audio:"  # a TF Hub sound model taking a 16 kHz waveform (YAMNet's signature)


@dataclass(frozen=True)
class HubModel:
    """A well-known TF Hub image feature-vector model."""

    handle: str
    label: str
    size: int
    note: str


# TF2 SavedModels that take 0-1 RGB images and return one feature vector per image.
HUB_MODELS: tuple[HubModel, ...] = (
    HubModel("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5", "MobileNet V2 (TF Hub)", 224,
             "The TensorFlow transfer-learning tutorial's backbone; small and fast."),
    HubModel("https://tfhub.dev/google/imagenet/mobilenet_v3_large_100_224/feature_vector/5",
             "MobileNet V3 Large (TF Hub)", 224, "Fast on phones, more accurate than V2."),
    HubModel("https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet21k_ft1k_b0/feature_vector/2",
             "EfficientNet V2 B0, ImageNet-21k (TF Hub)", 224,
             "Pretrained on 14 million images in 21,000 categories, then ImageNet: broad features."),
    HubModel("https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5", "ResNet-50 V2 (TF Hub)", 224,
             "The classic residual network."),
    HubModel("https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5", "Inception V3 (TF Hub)", 299,
             "Strong features at 299 pixels."),
    HubModel("https://tfhub.dev/google/bit/m-r50x1/1", "BiT-M R50x1 (TF Hub)", 224,
             "Big Transfer: made for transfer learning, pretrained on ImageNet-21k."),
)


def hub_id(handle: str, kind: str = "image") -> str:
    """The backbone id for a TF Hub handle (a URL, or a local SavedModel folder made absolute); a model of sounds
    (kind "audio") takes a 16 kHz waveform and returns frame embeddings, as YAMNet does."""
    handle = handle.strip()
    if not handle.startswith(("https://", "http://")):
        if settings.hosted():
            raise ConfigError("On this shared server a TF Hub model must be given by its web address (https://…), "
                              "not by a folder on the server.")
        handle = str(Path(handle).expanduser().resolve())
    _check_hosted_hub(handle)
    return (HUB_AUDIO_PREFIX if kind == "audio" else HUB_PREFIX) + handle


def _check_hosted_hub(handle: str) -> None:
    """On a shared server, a TF Hub address must be https:// on an allowed host (TL_HUB_HOSTS): said at once,
    where the address is typed. core.data.remote checks it again, with its addresses and redirects, when fetching."""
    if not settings.hosted() or not handle.startswith(("https://", "http://")):
        return
    try:
        host = (urlsplit(handle).hostname or "").rstrip(".").lower()
    except ValueError:
        host = ""
    if not handle.startswith("https://") or host not in settings.hub_hosts():
        raise ConfigError(f"On this shared server a TF Hub model must be an https:// address on "
                          f"{', '.join(settings.hub_hosts())}; ask whoever runs this server to allow another host.")


def is_hub(backbone_id: str) -> bool:
    """True for a TF Hub backbone id (hub:<handle>)."""
    return isinstance(backbone_id, str) and backbone_id.startswith((HUB_PREFIX, HUB_AUDIO_PREFIX))


def _hub_handle(backbone_id: str) -> str:
    return backbone_id.split(":", 1)[1]


@lru_cache(maxsize=64)
def _hub_spec(backbone_id: str) -> BackboneSpec:
    handle = _hub_handle(backbone_id)
    if backbone_id.startswith(HUB_AUDIO_PREFIX):
        label = "YAMNet (TF Hub)" if handle == YAMNET else f"TF Hub sound model: {handle.rstrip('/').split('/')[-1]}"
        return BackboneSpec(id=backbone_id, label=label, family="hub_audio", constructor=("tensorflow_hub", "KerasLayer"),
                            weights_options=("imagenet",), default_size=96, hub_handle=handle, kind="audio",
                            front_end="waveform")
    known = next((m for m in HUB_MODELS if m.handle == handle), None)
    label = known.label if known else f"TF Hub: {handle.rstrip('/').split('/')[-1] or handle}"
    return BackboneSpec(
        id=backbone_id, label=label, family="hub", constructor=("tensorflow_hub", "KerasLayer"),
        # TF Hub's convention for image models: float RGB in [0, 1].
        preprocessing="zero_to_one", weights_options=("imagenet",),
        default_size=known.size if known else 224, weight_sizes=(known.size if known else 224,),
        hub_handle=handle,
    )


def hub_cache_dir(ws: Path) -> Path:
    """Where TF Hub models are downloaded and unpacked: inside the workspace."""
    return ws / "cache" / "tfhub"


def use_hub_cache(ws: Path) -> None:
    """Point TF Hub's downloader at the workspace (TFHUB_CACHE_DIR), for this process."""
    os.environ["TFHUB_CACHE_DIR"] = str(hub_cache_dir(ws))


def hub_local(handle: str, cache: Path | None = None) -> Path | None:
    """The local SavedModel folder for a handle, if it is one or was downloaded already (into `cache`, else into
    TFHUB_CACHE_DIR when that is set)."""
    if not handle.startswith(("https://", "http://")):
        path = Path(handle)
        return path if (path / "saved_model.pb").is_file() else None
    if cache is None and not os.environ.get("TFHUB_CACHE_DIR"):
        return None
    path = hub_module_dir(handle, cache)
    return path if (path / "saved_model.pb").is_file() else None


def hub_module_dir(handle: str, cache: Path | None = None) -> Path:
    """Where TF Hub keeps a URL's model: a folder named by the SHA-1 of the handle in `cache`, else in
    TFHUB_CACHE_DIR (TF Hub's own temporary cache when that is unset)."""
    folder = cache or os.environ.get("TFHUB_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "tfhub_modules")
    return Path(folder) / hashlib.sha1(handle.encode("utf8")).hexdigest()


# ---------------------------------------------------------------- lookups


def get(backbone_id: str) -> BackboneSpec:
    """The spec for a (validated) backbone id: a registry entry or a TF Hub handle."""
    if is_hub(backbone_id):
        return _hub_spec(backbone_id)
    return BACKBONES[backbone_id]


def ids() -> tuple[str, ...]:
    """All registry backbone ids, in display order (TF Hub handles are open-ended and not listed)."""
    return tuple(BACKBONES)


def for_kind(kind_id: str) -> tuple[str, ...]:
    """The registry backbone ids that read this kind of data, in display order."""
    return tuple(b for b, spec in BACKBONES.items() if spec.kind == kind_id)


def check_id(backbone_id: str) -> None:
    """Raise ConfigError unless the id names a registry backbone or a usable TF Hub handle."""
    if backbone_id in BACKBONES:
        return
    if is_hub(backbone_id):
        handle = _hub_handle(backbone_id)
        if handle.startswith(("https://", "http://")) or Path(handle).is_absolute():
            _check_hosted_hub(handle)
            return
        raise ConfigError(f"The TF Hub handle '{handle}' must be a web address or an absolute folder path.")
    shown = ", ".join(list(BACKBONES)[:6])
    raise ConfigError(
        f"'{backbone_id}' is not a valid backbone; allowed values: {shown}, … (see 'python -m core backbones'), "
        "or hub:<TF Hub address or SavedModel folder>."
    )


@lru_cache(maxsize=1)
def facts() -> dict[str, dict[str, Any]]:
    """Measured figures per backbone id (backbone_facts.json; empty if it is missing)."""
    path = Path(__file__).with_name("backbone_facts.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def group_count(backbone_id: str) -> int:
    """How many convolutional groups gradual unfreezing opens, one by one (1 for a TF Hub model)."""
    return max(1, len(get(backbone_id).groups))


# Filters of the page's table: small and fast, a balance of speed and accuracy, the most accurate.
TIERS: dict[str, tuple[str, Callable[[BackboneSpec], bool]]] = {
    "fast": ("Small and fast", lambda s: 0 < s.gflops <= 1.5),
    "balanced": ("Balanced", lambda s: 1.5 < s.gflops <= 12 and (s.top1 or 0) >= 75),
    "accurate": ("Most accurate", lambda s: (s.top1 or 0) >= 82),
}


def in_tier(spec: BackboneSpec, tier: str) -> bool:
    """True when a backbone belongs to a filter of TIERS ("all" holds every one)."""
    return tier == "all" or TIERS[tier][1](spec)


# ---------------------------------------------------------------- weights on disk


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: ~/.keras/models, or /tmp/.keras/models if home is read-only."""
    base = Path(os.path.expanduser("~")) / ".keras"
    if not os.access(base if base.exists() else base.parent, os.W_OK):
        base = Path("/tmp") / ".keras"
    return base / "models"


def cached_weights(spec: BackboneSpec, image_size: int, ws: Path | None = None) -> Path | None:
    """The cached ImageNet weights file (or TF Hub folder) for this backbone and size, if one is on disk. A TF Hub
    model is looked for in the workspace's hub cache when `ws` is given (a page, which must not point the whole
    process at one visitor's workspace), else where TFHUB_CACHE_DIR points."""
    if spec.hub_handle:
        return hub_local(spec.hub_handle, hub_cache_dir(ws) if ws is not None else None)
    if spec.package_file:
        return package_path(spec.package_file)
    for wf in spec.weights_candidates(image_size):
        path = keras_models_dir() / wf.name
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def package_path(package_file: str) -> Path | None:
    """A file inside an installed Python package ("package/relative/path"), if the package and the file are there."""
    import importlib.util

    package, _, rel = package_file.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / rel
    return path if path.is_file() else None


def has_weights(spec: BackboneSpec, weights: str, image_size: int) -> bool:
    """True when building with these weights needs no download."""
    return weights != "imagenet" or cached_weights(spec, image_size) is not None


def classifier_size(spec: BackboneSpec) -> int:
    """The image size of the ImageNet classifier weights (include_top): the default, or the nearest file's."""
    sizes = [s for s in spec.weight_sizes if spec.top_weights_files(s)]
    return min(sizes, key=lambda s: abs(s - spec.default_size)) if sizes else spec.default_size


CLASS_INDEX = WeightsFile(
    "imagenet_class_index.json", "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
    "c2c37ea517e94d9795004a39431a14cb",
)


def best_available(image_size: int, kind: str = "image") -> BackboneSpec | None:
    """The most accurate pretrained backbone of this kind of data whose ImageNet weights are already cached."""
    ready = [
        s
        for s in BACKBONES.values()
        if "imagenet" in s.weights_options and s.min_size <= image_size <= s.max_size and s.kind == kind
        and cached_weights(s, image_size)
    ]
    return max(ready, key=lambda s: s.top1 or 0.0, default=None)


def scratch_backbone(kind: str = "image") -> BackboneSpec:
    """The network of this kind of data that trains from scratch when no pretrained weights are at hand."""
    return next(s for s in BACKBONES.values() if s.kind == kind and s.weights_options == ("none",))


def base_name(spec: BackboneSpec) -> str:
    """The name of the backbone sub-model inside a TransferLab classifier."""
    return "base_hub" if spec.hub_handle else "base_" + re.sub(r"\W", "_", spec.id)


def cached_ids(kind: str) -> list[str]:
    """The backbones of a kind of data whose weights are on this computer at their default size (the recommender
    prefers them)."""
    return [s.id for s in BACKBONES.values() if s.kind == kind and cached_weights(s, s.default_size)]

