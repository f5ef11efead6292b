"""The options of the flood-filling network jobs (`ffn-prep`, `ffn-train`, `ffn-infer`):
one declaration, read by the FFN page's forms, the CLI, the jobs' validation and the code.

Light on purpose: the server imports it to read the schemas (no NumPy, no Keras).

Conventions shared by every FFN module:
- every triple (FOV, deltas, radii, distances) is ordered **z, y, x** like the volumes
  (google/ffn writes its settings x, y, z);
- the seed and the model's output are **logits**; probabilities 0.95 (`SEED_INIT`) at the
  seed voxel and 0.05 (`SEED_PAD`) elsewhere start an object, as in google/ffn;
- a sub-box is text `z0:z1,y0:y1,x0:x1` (Python slices, any part may be left empty).
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

DATASET: JsonDict = {"x-unem-choices": "dataset"}  # the form offers the datasets
LAYER: JsonDict = {"x-unem-choices": "layer"}  # ... and the layers of the chosen dataset
PREPARATION: JsonDict = {"x-unem-choices": "ffn-preparation"}  # ... FFN training data
FFN_MODEL: JsonDict = {"x-unem-choices": "ffn-model"}  # ... trained FFN models

SEED_INIT = 0.95  # probability at the seed voxel of a new object (google/ffn `init_activation`)
SEED_PAD = 0.05  # probability elsewhere (google/ffn `seed_pad` / `pad_value`)
LABEL_SOFT = (0.05, 0.95)  # training targets: background, object (google/ffn `soften_labels`)
THRESHOLDS = (0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

Triple = Annotated[list[int], Field(min_length=3, max_length=3)]
PresetName = Literal["isotropic", "sparse_z", "cpu_isotropic", "cpu_sparse_z", "cpu_tiny"]


class FFNModelOptions(BaseModel):
    """The architecture of a convstack 3D FFN (see `unem.ffn.model`)."""

    model_config = ConfigDict(extra="forbid", title="FFN model")

    depth: int = Field(
        9, ge=1, le=32, description="Convolution modules: the first plain, then depth-1 residual."
    )
    features: int = Field(32, ge=4, le=256, description="Feature maps of every 3³ convolution.")
    fov: Triple = Field(
        default_factory=lambda: [33, 33, 33],
        description="Field of view z, y, x (voxels, odd): what the network sees at once.",
    )
    deltas: Triple = Field(
        default_factory=lambda: [8, 8, 8],
        description="Step of a field-of-view move z, y, x (voxels).",
    )

    @field_validator("fov")
    @classmethod
    def _odd_fov(cls, fov: list[int]) -> list[int]:
        if any(s < 3 or s % 2 == 0 or s > 129 for s in fov):
            raise ValueError("every FOV side must be odd, between 3 and 129")
        return fov

    @field_validator("deltas")
    @classmethod
    def _deltas(cls, deltas: list[int]) -> list[int]:
        if any(d < 0 or d > 64 for d in deltas):
            raise ValueError("every delta must be between 0 and 64")
        return deltas

    @property
    def lom_radius(self) -> tuple[int, int, int]:
        """Half the training patch: fov//2 + deltas (the prep's local-object-mask radius)."""
        z, y, x = (f // 2 + d for f, d in zip(self.fov, self.deltas, strict=True))
        return (z, y, x)

    @property
    def isotropic(self) -> bool:
        return len(set(self.fov)) == 1 and len(set(self.deltas)) == 1


PRESETS: dict[str, FFNModelOptions] = {
    # google/ffn's FIB-25 release
    "isotropic": FFNModelOptions(depth=12, features=32, fov=[33, 33, 33], deltas=[8, 8, 8]),
    # UNI-EM's "sparse Z" for anisotropic EM (z sections thicker than x/y pixels)
    "sparse_z": FFNModelOptions(depth=9, features=32, fov=[17, 33, 33], deltas=[4, 8, 8]),
    # small enough to train a few thousand steps on a CPU
    "cpu_isotropic": FFNModelOptions(depth=4, features=32, fov=[17, 17, 17], deltas=[4, 4, 4]),
    "cpu_sparse_z": FFNModelOptions(depth=4, features=32, fov=[9, 17, 17], deltas=[2, 4, 4]),
    "cpu_tiny": FFNModelOptions(depth=3, features=16, fov=[9, 17, 17], deltas=[2, 4, 4]),
}
PRESET_HELP = (
    "isotropic: FOV 33³, deltas 8³, depth 12 (google/ffn FIB-25); sparse_z: FOV 17×33×33, "
    "deltas 4×8×8, depth 9 (anisotropic EM); cpu_isotropic: 17³, 4³, depth 4; cpu_sparse_z: "
    "9×17×17, 2×4×4, depth 4; cpu_tiny: 9×17×17, 2×4×4, depth 3, 16 features."
)


class Geometry(BaseModel):
    """A preset, and what of it is overridden. Shared by preparation and training."""

    model_config = ConfigDict(extra="forbid")

    preset: PresetName = Field("cpu_sparse_z", description=f"Model size. {PRESET_HELP}")
    fov: Triple | None = Field(None, description="Field of view z, y, x (empty: the preset's).")
    deltas: Triple | None = Field(None, description="FOV move z, y, x (empty: the preset's).")

    def model_options(self) -> FFNModelOptions:
        """The preset with this form's overrides applied (and checked)."""
        base = PRESETS[self.preset].model_dump()
        changes = {k: v for k, v in self.model_dump().items() if k in base and v is not None}
        return FFNModelOptions.model_validate({**base, **changes})


class FFNPrepOptions(Geometry):
    model_config = ConfigDict(extra="forbid", title="Prepare FFN training data")

    dataset: str = Field(
        description="Dataset with EM images and ground truth.", json_schema_extra=DATASET
    )
    image_layer: str = Field("image", description="Layer of EM images.", json_schema_extra=LAYER)
    label_layer: str = Field(
        "groundtruth",
        description="Layer of instance labels (one id per neuron; a proofread segmentation "
        "is read with its merges applied).",
        json_schema_extra=LAYER,
    )
    box: str = Field(
        "", max_length=64, description="Sub-box z0:z1,y0:y1,x0:x1 (empty: the whole volume)."
    )
    thresholds: list[float] = Field(
        default_factory=lambda: list(THRESHOLDS),
        min_length=1,
        max_length=64,
        description="Bounds of the partitions of the local-object-mask fraction (increasing).",
    )
    min_size: int = Field(
        10_000, ge=0, description="Objects with fewer voxels are treated as background."
    )
    background_labels: list[int] = Field(
        default_factory=lambda: [0], description="Label values that are no object."
    )
    ignore_labels: list[int] = Field(
        default_factory=list,
        description="Labels whose voxels are never training centres (e.g. glia, unsure).",
    )
    include_background: bool = Field(
        True, description="Also train on FOVs centred on background (all-negative targets)."
    )
    max_per_partition: int = Field(
        250_000,
        ge=0,
        description="Coordinates kept per partition after balancing (0: as many as the "
        "largest partition has voxels, as google/ffn).",
    )
    seed: int = Field(0, description="Seed of the coordinate shuffle.")
    name: str = Field(
        "",
        max_length=64,
        description="Name of the preparation (empty: <dataset>-<label layer>-job<id>).",
    )

    @field_validator("thresholds")
    @classmethod
    def _increasing(cls, values: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in values) or any(
            b <= a for a, b in itertools.pairwise(values)
        ):
            raise ValueError("thresholds must increase strictly, each in (0, 1]")
        return values


class FFNAugmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Augmentation")

    permute: Literal["auto", "none", "xy", "xyz"] = Field(
        "auto",
        description="Axes that may be swapped at random. auto: xyz when the FOV, the deltas "
        "and the voxels are isotropic, otherwise xy.",
    )
    reflect: bool = Field(True, description="Mirror z, y and x at random.")


class FFNTrainOptions(Geometry):
    model_config = ConfigDict(extra="forbid", title="Train a flood-filling network")

    preparation: str = Field(
        description="Prepared training data (an ffn-prep job's output).",
        json_schema_extra=PREPARATION,
    )
    depth: int | None = Field(None, ge=1, le=32, description="Modules (empty: the preset's).")
    features: int | None = Field(
        None, ge=4, le=256, description="Feature maps (empty: the preset's)."
    )
    batch_size: int = Field(4, ge=1, le=64, description="FOVs per training step.")
    steps: int = Field(10_000, ge=1, le=100_000_000, description="Training steps.")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="SGD with momentum, or Adam.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Learning rate.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="Adam β1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="Adam β2.")
    adam_epsilon: float = Field(1e-8, gt=0, le=1, description="Adam ε.")
    clip: Literal["value", "norm", "none"] = Field(
        "value",
        description="Gradient clipping: value clips each entry (google/ffn), norm clips the "
        "norm of each gradient tensor.",
    )
    clip_value: float = Field(0.7, gt=0, le=100, description="Bound of the gradient clipping.")
    fov_policy: Literal["fixed", "max_pred_moves"] = Field(
        "fixed",
        description="FOV moves during training. fixed: try the 26 shifts by deltas in random "
        "order; max_pred_moves: follow the highest prediction on each face, as inference.",
    )
    fov_moves: int = Field(
        1, ge=1, le=4, description="Moves by deltas in each direction (max_pred_moves only)."
    )
    move_threshold: float = Field(
        0.9,
        gt=0,
        lt=0.95,  # the seed starts at 0.95: a higher threshold would never move
        description="Probability a voxel must reach to move the FOV there (inference's "
        "move_threshold should match it).",
    )
    augment: FFNAugmentOptions = Field(default_factory=lambda: FFNAugmentOptions.model_validate({}))
    summary_every: int = Field(
        100, ge=1, description="Steps between TensorBoard scalars and image summaries."
    )
    checkpoint_every: int = Field(
        500, ge=1, description="Steps between checkpoints (a cancelled job resumes from one)."
    )
    seed: int = Field(0, description="Seed of the coordinate order and the augmentation.")
    output: str = Field(
        "",
        max_length=64,
        description="Name of the trained model in the workspace (empty: ffn-job<id>).",
    )

    def model_options(self) -> FFNModelOptions:
        options = super().model_options().model_dump()
        for key in ("depth", "features"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        return FFNModelOptions.model_validate(options)


class FFNInferOptions(BaseModel):
    """Inference settings (google/ffn's `InferenceOptions`, seed policy and consensus)."""

    model_config = ConfigDict(extra="forbid", title="Segment with a flood-filling network")

    model: str = Field(description="Trained FFN model.", json_schema_extra=FFN_MODEL)
    dataset: str = Field(description="Dataset to segment.", json_schema_extra=DATASET)
    image_layer: str = Field("image", description="Layer of EM images.", json_schema_extra=LAYER)
    box: str = Field(
        "", max_length=64, description="Sub-box z0:z1,y0:y1,x0:x1 (empty: the whole volume)."
    )
    output: str = Field("ffn", max_length=48, description="Name of the segmentation layer written.")
    probabilities: bool = Field(
        True, description="Also write the object probabilities as a prediction layer."
    )
    overwrite: bool = Field(False, description="Replace layers of those names if there are.")
    seed_policy: Literal["peaks", "grid"] = Field(
        "peaks",
        description="Where objects start. peaks: maxima of the distance to edges in the "
        "image (google/ffn PolicyPeaks); grid: every grid_step voxels.",
    )
    peaks_min_distance: int = Field(
        3, ge=1, le=100, description="Minimum distance between two peak seeds (voxels)."
    )
    grid_step: Triple = Field(
        default_factory=lambda: [4, 8, 8], description="Grid seed spacing z, y, x (voxels)."
    )
    move_threshold: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="Probability at which the FOV moves on, and below which a seed is too "
        "weak (match the training threshold).",
    )
    segment_threshold: float = Field(
        0.6, gt=0, lt=1, description="Probability above which a voxel joins the object."
    )
    min_boundary_dist: Triple = Field(
        default_factory=lambda: [1, 1, 1],
        description="Seeds closer than this to an existing object (z, y, x) are skipped.",
    )
    min_segment_size: int = Field(
        1000, ge=0, description="Objects with fewer voxels are discarded."
    )
    consensus: Literal["none", "split"] = Field(
        "none",
        description="split: run a second, reverse pass seeded at the first pass's origins in "
        "reverse order and keep the intersection of both (oversegmentation consensus).",
    )
    split_min_size: int = Field(
        1000, ge=0, description="Consensus pieces with fewer voxels are dropped."
    )
    checkpoint_seconds: float = Field(
        300, ge=5, le=86_400, description="Seconds between canvas checkpoints (resume)."
    )
    image_mean: float | None = Field(
        None, description="Image mean for normalisation (empty: the one the model learnt)."
    )
    image_std: float | None = Field(
        None, gt=0, description="Image standard deviation (empty: the model's)."
    )


def parse_box(text: str, shape: tuple[int, int, int] | list[int]) -> tuple[slice, slice, slice]:
    """The sub-box `z0:z1,y0:y1,x0:x1` as clipped slices (step 1) of a volume of `shape`.

    Empty text, or an empty part, means the whole axis; negative bounds count from the end.
    Raises ValueError for a malformed or empty box."""
    parts = [p.strip() for p in text.split(",")] if text.strip() else ["", "", ""]
    if len(parts) != 3:
        raise ValueError(f"box {text!r}: give z0:z1,y0:y1,x0:x1")
    slices = []
    for axis, (part, size) in enumerate(zip(parts, shape, strict=True)):
        bounds = part.split(":") if part else ["", ""]
        if len(bounds) != 2:
            raise ValueError(f"box {text!r}: axis {'zyx'[axis]} must be start:stop")
        try:
            start, stop = (int(b) if b.strip() else None for b in bounds)
        except ValueError:
            raise ValueError(f"box {text!r}: bounds must be integers") from None
        clipped = slice(start, stop).indices(int(size))[:2]
        if clipped[1] <= clipped[0]:
            raise ValueError(f"box {text!r}: axis {'zyx'[axis]} is empty in a volume of {shape}")
        slices.append(slice(*clipped))
    return (slices[0], slices[1], slices[2])


def logit(p: float) -> float:
    """The logit of a probability (math only: this module stays free of NumPy)."""
    return math.log(p / (1 - p))
