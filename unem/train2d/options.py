"""The options of the `train2d` and `infer2d` jobs: one declaration, read by the trainer
page's form, the CLI, the job's validation and the training loop."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

DATASET: JsonDict = {"x-unem-choices": "dataset"}  # the form offers the datasets
LAYER: JsonDict = {"x-unem-choices": "layer"}  # ... and the layers of the chosen dataset
MODEL: JsonDict = {"x-unem-choices": "model"}  # ... and the registered models

IGNORE = 255  # target value of pixels left out of the loss (unlabelled, or the ignore label)

LossName = Literal[
    "softmax_cross_entropy",
    "weighted_cross_entropy",
    "logistic",
    "least_squares",
    "dice",
    "hinge",
    "l1",
]
TargetMode = Literal["binary", "binary_inverted", "classes", "painted", "membrane", "foreground"]


class AugmentOptions(BaseModel):
    """Each augmentation is applied to a training patch with its probability (0: never)."""

    model_config = ConfigDict(extra="forbid", title="Augmentation")

    flip: float = Field(0.5, ge=0, le=1, description="Mirror left-right and/or up-down.")
    rotate90: float = Field(0.5, ge=0, le=1, description="Rotate by 90°, 180°, 270° or transpose.")
    elastic: float = Field(0.0, ge=0, le=1, description="Smooth random elastic deformation.")
    elastic_alpha: float = Field(
        8.0, ge=0, le=100, description="Largest displacement of the elastic deformation (pixels)."
    )
    elastic_sigma: float = Field(
        10.0, gt=0, le=100, description="Smoothness of the elastic deformation field (pixels)."
    )
    brightness_contrast: float = Field(
        0.5, ge=0, le=1, description="Random brightness (±0.1) and contrast (×0.8–1.2)."
    )
    gamma: float = Field(0.3, ge=0, le=1, description="Random gamma correction (0.7–1.5).")
    noise: float = Field(0.2, ge=0, le=1, description="Additive Gaussian noise (σ up to 0.05).")
    blur: float = Field(0.1, ge=0, le=1, description="Gaussian blur (σ up to 1.5 pixels).")


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Train a 2D CNN")

    dataset: str = Field(description="Dataset to train on.", json_schema_extra=DATASET)
    image_layer: str = Field("image", description="Layer of EM images.", json_schema_extra=LAYER)
    label_layer: str = Field(
        "segmentation",
        description="Layer of labels: painted in Dojo, an imported mask or instance ids.",
        json_schema_extra=LAYER,
    )
    target: TargetMode = Field(
        "binary",
        description="How labels become classes. binary: non-zero is class 1; binary_inverted: "
        "zero is class 1 (e.g. ISBI membranes, 0 = membrane); classes: each value is a class; "
        "painted: 0 is unlabelled (ignored), value v is class v-1; membrane: boundaries between "
        "instance ids are class 1; foreground: any instance id is class 1.",
    )
    n_classes: int = Field(2, ge=2, le=64, description="Number of classes the model tells apart.")
    ignore_label: int | None = Field(
        None, ge=0, description="Label value to leave out of the loss (sparse annotation)."
    )
    slices: str = Field(
        "", description="Slices with labels to use, e.g. 0-19,25 (empty: every slice)."
    )
    validation_fraction: float = Field(
        0.15, ge=0, le=0.5, description="Share of the slices held out for validation."
    )
    seed: int = Field(0, description="Seed of the validation split, patches and augmentation.")
    model: str = Field("unet", description="Model to train.", json_schema_extra=MODEL)
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the model (its own schema)."
    )
    channels: Literal[1, 3] = Field(
        1, description="Input channels: 1 = the slice; 3 = the slice and its two neighbours."
    )
    downsample: int = Field(
        1,
        ge=1,
        le=8,
        description="Train (and later predict) at 1/N of the images' resolution, averaging "
        "N × N pixels: N times the context and N² times less work per area, for structures "
        "much larger than a pixel (mitochondria, nuclei). 1: full resolution.",
    )
    loss: LossName = Field("softmax_cross_entropy", description="Loss function.")
    class_weights: list[float] = Field(
        default_factory=list,
        description="Weight of each class for weighted_cross_entropy "
        "(empty: balance by frequency).",
    )
    patch_size: int = Field(128, ge=16, le=1024, description="Side of a training patch (pixels).")
    batch_size: int = Field(8, ge=1, le=256, description="Patches per training step.")
    steps: int = Field(2000, ge=1, le=1_000_000, description="Training steps.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    validate_every: int = Field(
        100, ge=1, description="Steps between validations, checkpoints and progress curves."
    )
    checkpoint_every: int = Field(
        500, ge=1, description="Steps between numbered checkpoints (the latest is kept too)."
    )
    early_stopping: int = Field(
        0,
        ge=0,
        description="Stop after this many validations without improvement (0: never stop early).",
    )
    augment: AugmentOptions = Field(default_factory=lambda: AugmentOptions.model_validate({}))
    output: str = Field(
        "",
        max_length=64,
        description="Name of the trained model in the workspace (empty: <model>-job<id>).",
    )


class InferOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Predict with a 2D CNN")

    model: str = Field(
        description="Trained model: its name in the workspace or a .keras file inside it.",
        json_schema_extra={"x-unem-choices": "trained-model"},
    )
    dataset: str = Field(description="Dataset to predict.", json_schema_extra=DATASET)
    image_layer: str = Field("image", description="Layer of EM images.", json_schema_extra=LAYER)
    output: str = Field(
        "prediction", max_length=48, description="Name of the prediction layer written."
    )
    output_class: int = Field(
        1, ge=0, le=63, description="Class whose probability the prediction layer holds."
    )
    tile_size: int = Field(
        1024,
        ge=32,
        le=4096,
        description="Side of the tiles the model sees (pixels). Larger tiles repeat less "
        "overlap, so run faster, but need more memory; a slice up to 1.25× this is one tile.",
    )
    overlap: float = Field(
        0.125, ge=0, lt=0.5, description="Overlap of neighbouring tiles, as a share of a tile."
    )
    batch_size: int = Field(1, ge=1, le=64, description="Tiles predicted at once.")
    test_time_augmentation: Literal["none", "flips", "dihedral"] = Field(
        "none",
        description="Average the prediction over mirrored copies of each slice: flips (4 "
        "copies) or dihedral (8: flips, rotations and transposes). Smoother, usually more "
        "accurate, and 4× or 8× slower.",
    )
    slices: str = Field("", description="Slices to predict, e.g. 0-9 (empty: every slice).")
    overwrite: bool = Field(False, description="Replace a layer of that name if there is one.")
