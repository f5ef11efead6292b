"""The built-in models, registered through the same hook as any plugin."""

from __future__ import annotations

from collections.abc import Callable

from unem.models.densenet import DenseNet
from unem.models.highway import Highway
from unem.models.resnet import ResNet
from unem.models.spec import ModelSpec
from unem.models.unet import UNet

BUILTIN_MODELS: tuple[type[ModelSpec], ...] = (UNet, ResNet, Highway, DenseNet)


def register_models(register: Callable[[ModelSpec], None]) -> None:
    for model in BUILTIN_MODELS:
        register(model())
