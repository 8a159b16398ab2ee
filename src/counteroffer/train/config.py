"""Training configs: one YAML file per recipe, validated by pydantic; every field says what it does.

A file has a top-level part (the model, where outputs go, the data, the game, the prompt caps) and one section
per stage: ``sft`` (the warm start), ``grpo`` (the RL stage) and ``evaluation`` (the held-out checks during
GRPO). ``counteroffer train sft CONFIG`` and ``counteroffer train grpo CONFIG`` read the same file, so the GRPO
stage starts from the SFT stage's output unless ``grpo.init`` says otherwise.

The CPU and GPU recipes differ only in values: model, sizes, LoRA or full fine-tuning, ``generation`` (``hf``:
the policy itself generates with ``transformers``; ``vllm``: TRL's vLLM server or colocated engine), the seller
spec (scripted, or an LLM seller behind an OpenAI-compatible endpoint such as ``vllm serve``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from counteroffer.catalog.recipes import CatalogName
from counteroffer.config_file import ConfigError, load_yaml_model
from counteroffer.defaults import DEFAULT_PERSONA, DEFAULT_SELLER
from counteroffer.evaluate.suite import SuiteTable
from counteroffer.game.messages import Role
from counteroffer.game.negotiation import DEFAULT_MAX_TURNS
from counteroffer.prompts.settings import PromptSettings
from counteroffer.rollout.mixture import SellerChoice

__all__ = ["ConfigError", "TrainConfig", "load_config"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SellerMixSection(Section):
    """A section whose episodes meet a seller drawn per product from ``sellers``.

    ``seller: SPEC`` with an optional ``persona: NAME`` is read as a mixture of one.
    """

    sellers: list[SellerChoice] = Field(
        default_factory=lambda: [SellerChoice(spec=DEFAULT_SELLER)],
        min_length=1,
        description="sellers drawn per product (seeded, uniformly unless weighted; a GRPO group meets one seller); "
        "each a spec string or {spec, persona, weight}; always regulated by the game",
    )

    @model_validator(mode="before")
    @classmethod
    def _single_seller(cls, data: object) -> object:
        if isinstance(data, dict) and ("seller" in data or "persona" in data):
            if "sellers" in data:
                raise ValueError("give either sellers (a list) or seller/persona, not both")
            data = dict(data)
            spec = data.pop("seller", DEFAULT_SELLER)
            data["sellers"] = [{"spec": spec, "persona": data.pop("persona", DEFAULT_PERSONA)}]
        return data


class LoraSettings(Section):
    """LoRA adapters (peft). Off = full fine-tuning."""

    enabled: bool = Field(False, description="train LoRA adapters instead of all weights")
    r: int = Field(16, ge=1, description="adapter rank")
    alpha: int = Field(32, ge=1, description="adapter scaling numerator (lora_alpha)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = Field(
        "all-linear", description="modules that get adapters; 'all-linear' = every linear layer but the output head"
    )


LearningRateSchedule = Literal["constant", "cosine", "linear"]


class OptimSettings(Section):
    learning_rate: float = Field(gt=0)
    per_device_batch_size: int = Field(8, ge=1, description="sequences per forward/backward pass and process")
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    lr_schedule: LearningRateSchedule = Field(
        "constant",
        description="learning rate after warmup: constant, or decayed to 0 at the last step (cosine, linear); a "
        "decayed run cannot be extended by raising steps, it is a different run",
    )
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: bool | Literal["auto"] = Field(
        False,
        description="bfloat16 mixed precision; auto = where the hardware computes in bfloat16 natively (a CUDA "
        "GPU with bf16, a CPU with AVX512-BF16 or AMX), else float32: elsewhere bfloat16 is emulated and "
        "dozens of times slower",
    )
    gradient_checkpointing: bool = Field(False, description="trade compute for activation memory")
    save_steps: int = Field(10, ge=1, description="write a resumable checkpoint every K optimizer steps")
    save_total_limit: int | None = Field(3, ge=1, description="keep at most this many checkpoints")
    deepspeed: Path | None = Field(None, description="DeepSpeed JSON config (multi-GPU); null = none")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="any other field of TRL's SFTConfig (sft) or GRPOConfig (grpo), passed through as is (e.g. "
        "num_iterations, epsilon_high, top_k, importance-sampling settings); an unknown name or one the recipe "
        "sets through its own fields is a config error",
    )


class SFTSettings(OptimSettings, SellerMixSection):
    """The warm start: scripted demonstrations in the LLM buyer's exact prompt format, loss on buyer tokens."""

    learning_rate: float = Field(5e-5, gt=0)
    lr_schedule: LearningRateSchedule = Field(
        "cosine", description="learning rate after warmup: decayed to 0 at the last step (cosine, linear) or constant"
    )
    gradient_accumulation_steps: int = Field(1, ge=1)
    demo_buyers: list[str] = Field(
        default_factory=lambda: [
            f"scripted:anchor?opening={opening}&concession={concession}"
            for opening in (0.3, 0.5, 0.7, 0.9)
            for concession in (0.3, 1.0, 3.0)
        ],
        min_length=1,
        description="scripted buyer specs whose episodes become demonstrations (several anchor/concession settings)",
    )
    demo_sellers: list[SellerChoice] = Field(
        default_factory=list,
        description="role seller: the scripted sellers (spec and persona) whose messages become demonstrations",
    )
    opponent_buyers: list[str] = Field(
        default_factory=lambda: ["scripted:anchor", "scripted:naive", "scripted:patient", "scripted:reader"],
        min_length=1,
        description="role seller: the scripted buyers the demo sellers meet, one drawn per product",
    )
    scenarios: int | None = Field(None, ge=1, description="use only the first K train scenarios; null = all")
    rollouts: int = Field(1, ge=1, description="episodes per scenario and demo buyer (or demo seller)")
    conflicting_repeats: int = Field(
        1,
        ge=1,
        description="each conflicting-interest train product (budget below cost) is played this many times as many "
        "rollouts, each with its own seed and seller draw: they are about 5% of the catalogue, fewer of the kept "
        "demonstrations",
    )
    keep_conflicting_holds: bool = Field(
        False,
        description="also keep a conflicting-interest product's turn-limit episode with no offer above the budget "
        "(the teacher held out against a seller still conceding): without them the student sees refusals to "
        "overpay only against sellers that stop moving",
    )
    max_demos: int | None = Field(None, ge=1, description="keep at most this many demonstrations (a seeded sample)")
    epochs: float = Field(1.0, gt=0)
    max_length: int = Field(2048, ge=64, description="tokens per demonstration; longer ones are dropped")


class GenerationSettings(Section):
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="hf: the policy generates with transformers (CPU, small GPUs); vllm: TRL's vLLM engine"
    )
    max_batch: int = Field(64, ge=1, description="hf: sequences per generate call during rollouts")
    vllm_mode: Literal["server", "colocate"] = Field(
        "server", description="vllm only: a `trl vllm-serve` process (server) or an engine inside each process"
    )
    vllm_server_base_url: str | None = Field(None, description="vllm server mode: http://HOST:PORT of trl vllm-serve")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="vllm colocate: GPU memory share")
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="vllm colocate: tensor parallel size")


class GRPOSettings(OptimSettings, SellerMixSection):
    """Multi-turn GRPO: every step plays ``products_per_step`` × ``group_size`` full episodes."""

    learning_rate: float = Field(3e-5, gt=0, description="the paper: 3e-5")
    init: str | None = Field(
        None, description="model to start from; null = the SFT stage's final checkpoint (OUT/sft/final)"
    )
    products_per_step: int = Field(64, ge=1, description="train products per optimizer step (the paper: 64)")
    group_size: int = Field(8, ge=2, description="rollouts per product; advantages are relative within it")
    conflicting_repeats: int = Field(
        1,
        ge=1,
        description="each conflicting-interest train product (budget below cost: the buyer should walk away) appears "
        "this many times in the GRPO dataset; they are about 5% of the catalogue, too rare to learn from otherwise",
    )
    steps: int = Field(60, ge=1, description="optimizer steps (the paper: about 60)")
    beta: float = Field(0.0, ge=0, description="KL coefficient to the initial model (the paper: 0)")
    temperature: float = Field(1.0, gt=0, description="buyer sampling temperature (the paper: 1.0)")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(96, ge=1, description="tokens the buyer may write per turn")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide advantages by the group's reward std (group), the batch's, or not at all"
    )
    loss_type: str = Field("dapo", description="TRL GRPO loss aggregation (grpo, dapo, dr_grpo, bnpo, ...)")
    epsilon: float = Field(0.2, gt=0, description="PPO clip range")
    episodes_per_batch: int = Field(256, ge=1, description="episodes in flight at once during a rollout")
    sample_transcripts: int = Field(
        8, ge=0, description="transcripts written to the train log per step (`counteroffer phases` reads them)"
    )
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    save_steps: int = Field(5, ge=1, description="write a resumable checkpoint every K steps")


class EvaluationSettings(SellerMixSection):
    """The validation curve: the policy plays the held-out train products (``validation_products``, never the
    test split) every ``every_steps`` GRPO steps, each product against a seller drawn from ``sellers``."""

    every_steps: int = Field(0, ge=0, description="evaluate every K GRPO steps; 0 = never during training")
    scenarios: int | None = Field(None, ge=1, description="only the first K held-out products; null = all")
    rollouts: int = Field(1, ge=1, description="episodes per scenario")
    temperature: float = Field(1.0, ge=0, description="buyer temperature during evaluation (0 = greedy)")
    max_batch: int = Field(64, ge=1, description="sequences per generate call")
    keep_best: bool = Field(
        False,
        description="also save the policy with the best held-out reward so far to OUT/grpo/best (its step and "
        "metrics in best/validation.json); OUT/grpo/final stays the last step",
    )
    held_out_tables: list[SuiteTable] | None = Field(
        None,
        description="the experiment's test tables after the training sellers' (e.g. held-out hint wordings or "
        "levers); null = the unseen opponents: a Boulware seller, the unyielding persona, CraigslistBargain",
    )

    @model_validator(mode="after")
    def _best_needs_a_curve(self) -> EvaluationSettings:
        if self.keep_best and not self.every_steps:
            raise ValueError(
                "evaluation.keep_best picks a step by the validation curve: set evaluation.every_steps, "
                "or keep_best: false"
            )
        return self


class TrainConfig(Section):
    model: str = Field("smollm2-135m", description="base model: a HF id, a local path, or smollm2-135m (bundled)")
    role: Role = Field(
        Role.BUYER,
        description="the side this recipe trains: buyer (SFT on sft.demo_buyers, then GRPO) or seller (SFT on "
        "sft.demo_sellers; a seller checkpoint plays as hf:PATH with the seller role)",
    )
    out: Path = Field(Path("runs/train"), description="run folder: OUT/sft, OUT/grpo")
    seed: int = 0
    catalog: CatalogName = "amazon"
    data_root: str | None = Field(None, description="catalogue folder; null = the usual search order")
    max_turns: int = Field(DEFAULT_MAX_TURNS, ge=1, description="turn limit of every training episode")
    validation_products: int = Field(
        0,
        ge=0,
        description="train-split products held out of SFT and GRPO (a seeded choice) for the validation curve; "
        "the test split is never used during training",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("float32", description="weights' dtype")
    prompts: PromptSettings = Field(
        default_factory=PromptSettings,
        description="the trained role's prompt format, the same in SFT, GRPO, evaluation and the saved checkpoint's "
        "agent defaults",
    )
    sft: SFTSettings = Field(default_factory=SFTSettings)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)

    @model_validator(mode="after")
    def _seller_needs_demo_sellers(self) -> TrainConfig:
        if self.role is Role.SELLER and not self.sft.demo_sellers:
            raise ValueError("role seller trains on scripted sellers' messages: list them in sft.demo_sellers")
        return self

    @property
    def sft_dir(self) -> Path:
        return self.out / "sft"

    @property
    def grpo_dir(self) -> Path:
        return self.out / "grpo"


def load_config(path: Path, overrides: dict[str, object] | None = None) -> TrainConfig:
    """Read and validate a YAML config; ``overrides`` are dotted keys (``grpo.steps``) set on top of the file."""
    return load_yaml_model(path, TrainConfig, overrides)
