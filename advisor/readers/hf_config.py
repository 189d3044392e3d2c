"""Hugging Face ``config.json`` → :class:`LlmArchitecture`.

Transformers' config classes spell the same quantity several ways (``num_hidden_layers``,
``n_layer``; ``hidden_size``, ``n_embd``) and leave some out to fall back on class defaults.
This module knows those spellings and defaults for the decoder families the estimator models
(Llama, Mistral, Qwen2/3, Gemma 1-3, Phi-3, GPT-2, GPT-NeoX, Falcon, Mixtral and Qwen-MoE,
DeepSeek-V2/V3) and returns None for configs that are not decoder LLMs (BERT, ViT, CLIP, Whisper).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.dtypes import canonical
from advisor.errors import AdvisorError, ModelFormatError
from advisor.readers.limits import ARCH_LIMITS, checked_count, load_json_file
from advisor.readers.profile import LlmArchitecture

FULL = "full_attention"
SLIDING = "sliding_attention"

# Model types that are encoders, encoder-decoders or vision/audio models: no KV cache to grow,
# so the LLM-specific parts of the estimate do not apply.
_NOT_DECODER = frozenset({
    "bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta",
    "camembert", "mpnet", "modernbert", "vit", "deit", "beit", "swin", "convnext", "resnet",
    "dinov2", "clip", "clip_vision_model", "clip_text_model", "siglip", "siglip_vision_model",
    "whisper", "wav2vec2", "hubert", "t5", "mt5", "umt5", "bart", "mbart", "marian", "pegasus",
    "detr", "yolos", "sam", "segformer", "mobilenet_v2", "efficientnet",
})

# Families whose config class defaults ``tie_word_embeddings`` to True (PretrainedConfig's
# default), when the key is absent. Llama/Mistral/Qwen/Phi-3/NeoX/DeepSeek classes default False.
# NOTE: from transformers' configuration_{gpt2,gemma,gemma2,gemma3,falcon}.py (v4.5x).
_TIED_BY_DEFAULT = frozenset({"gpt2", "gemma", "gemma2", "gemma3", "gemma3_text", "falcon"})

# Alternating local/global attention when ``layer_types`` is absent: every ``pattern``-th layer
# is global. NOTE: Gemma2 uses 2, Gemma3Config defaults sliding_window_pattern to 6, Cohere2 to 4.
DEFAULT_SW_PATTERN = {"gemma2": 2, "gemma3": 6, "gemma3_text": 6, "cohere2": 4}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a ``config.json``; any problem becomes a ModelFormatError naming the file."""
    p = Path(path)
    data = load_json_file(p, "config.json")
    if not isinstance(data, dict):
        raise ModelFormatError("config.json must hold a JSON object", p)
    return data


def parse_config(data: dict[str, Any], source: str | Path | None = None) -> LlmArchitecture | None:
    """The decoder-LLM architecture a Hugging Face config describes, or None if it is not one.

    Args:
        data: the parsed ``config.json``.
        source: the file it came from, named in errors.

    Raises:
        ModelFormatError: a field the architecture needs has a value of the wrong kind
            (``"num_hidden_layers": "many"``).
    """
    try:
        return _parse(data)
    except AdvisorError as exc:
        raise ModelFormatError(f"config.json: {exc.problem}", source) from None


def _parse(data: dict[str, Any]) -> LlmArchitecture | None:
    top_type = str(data.get("model_type") or "").lower()
    if top_type in _NOT_DECODER or data.get("is_encoder_decoder") is True:
        return None
    cfg = data
    text = data.get("text_config")
    if isinstance(text, dict):
        # Multimodal wrappers (Gemma3, Llava, Mistral3 ...) keep the language model in text_config.
        cfg = {**{k: v for k, v in data.items() if k != "text_config"}, **text}
    model_type = str(cfg.get("model_type") or top_type or "unknown").lower()
    if model_type in _NOT_DECODER:
        return None

    n_layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model", "dim")
    heads = _int(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads")
    vocab = _int(cfg, "vocab_size", "padded_vocab_size")
    if n_layers is None or hidden is None or heads is None or vocab is None:
        return None
    if heads == 0 or n_layers == 0:
        raise ModelFormatError("num_hidden_layers and num_attention_heads must be positive")

    kv_heads = _kv_heads(cfg, model_type, heads)
    kv_lora = _int(cfg, "kv_lora_rank")
    rope_dim = _int(cfg, "qk_rope_head_dim")
    nope_dim = _int(cfg, "qk_nope_head_dim")
    if kv_lora and rope_dim is not None and nope_dim is not None:
        # MLA: queries and keys are nope + rope wide; values are v_head_dim wide.
        head_dim = nope_dim + rope_dim
    else:
        head_dim = _int(cfg, "head_dim") or hidden // heads

    intermediate = _int(cfg, "intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim")
    if intermediate is None and model_type in ("gpt2", "falcon"):
        intermediate = 4 * hidden  # NOTE: GPT2Config n_inner=None and FalconConfig mean 4 * hidden

    sliding, layer_types = _sliding(cfg, model_type, n_layers)
    tied = cfg.get("tie_word_embeddings")
    torch_dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    return LlmArchitecture(
        model_type=model_type,
        n_layers=n_layers,
        hidden_size=hidden,
        n_heads=heads,
        n_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        max_positions=_int(cfg, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length",
                           "n_ctx"),
        intermediate_size=intermediate,
        sliding_window=sliding,
        layer_types=layer_types,
        tie_word_embeddings=bool(tied) if tied is not None else model_type in _TIED_BY_DEFAULT,
        n_experts=_int(cfg, "num_local_experts", "num_experts", "n_routed_experts") or 0,
        n_experts_per_token=_int(cfg, "num_experts_per_tok", "moe_top_k", "num_experts_per_token") or 0,
        kv_lora_rank=kv_lora,
        qk_rope_head_dim=rope_dim if kv_lora else None,
        v_head_dim=_int(cfg, "v_head_dim"),
        torch_dtype=_dtype_name(torch_dtype),
    )


def _kv_heads(cfg: dict[str, Any], model_type: str, heads: int) -> int:
    explicit = _int(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
    if model_type in ("falcon", "refinedweb", "refinedwebmodel"):
        # NOTE: FalconConfig: new_decoder_architecture uses num_kv_heads; otherwise multi_query
        # (default True) means one shared KV head.
        if cfg.get("new_decoder_architecture"):
            return explicit or heads
        if explicit is not None:
            return explicit
        return 1 if cfg.get("multi_query", True) else heads
    return explicit or heads


def _sliding(cfg: dict[str, Any], model_type: str, n_layers: int) -> tuple[int | None, tuple[str, ...]]:
    """(window, per-layer kinds) with the conventions of :class:`LlmArchitecture`."""
    raw = cfg.get("sliding_window")
    window = None if isinstance(raw, bool) else _int(cfg, "sliding_window")
    if cfg.get("use_sliding_window") is False:
        window = None
    if window is None:
        return None, ()
    explicit = cfg.get("layer_types")
    kinds: list[str]
    if isinstance(explicit, list) and len(explicit) > ARCH_LIMITS["layers"]:
        raise ModelFormatError(f"layer_types lists {len(explicit)} layers, more than any real model has")
    if isinstance(explicit, list) and explicit and all(isinstance(k, str) for k in explicit):
        kinds = list(explicit)
    elif "sliding_window_pattern" in cfg or model_type in DEFAULT_SW_PATTERN:
        raw_pattern: Any = cfg.get("sliding_window_pattern")
        pattern = raw_pattern if _is_positive_int(raw_pattern) else DEFAULT_SW_PATTERN.get(model_type, 1)
        kinds = list(pattern_layer_types(n_layers, pattern))
    elif cfg.get("use_sliding_window") is True and _int(cfg, "max_window_layers") is not None:
        # NOTE: Qwen2Config: layers at index >= max_window_layers slide, the lower ones are full.
        first = _int(cfg, "max_window_layers") or 0
        kinds = [SLIDING if i >= first else FULL for i in range(n_layers)]
    else:
        return window, ()  # every layer slides (Mistral 7B v0.1, Phi-3)
    return normalize_layer_types(window, kinds)


def pattern_layer_types(n_layers: int, pattern: int) -> tuple[str, ...]:
    """Per-layer kinds for "every ``pattern``-th layer is global, the others slide".

    NOTE: transformers' Gemma2/Gemma3 configs: sliding if (i + 1) % pattern else full; llama.cpp's
    set_swa_pattern gives the same layers (il % n < n - 1).
    """
    if pattern <= 1:
        return tuple(SLIDING for _ in range(n_layers))
    return tuple(SLIDING if (i + 1) % pattern else FULL for i in range(n_layers))


def normalize_layer_types(window: int | None, kinds: list[str] | tuple[str, ...]) -> tuple[int | None, tuple[str, ...]]:
    """Apply :class:`LlmArchitecture`'s conventions: no sliding layer → no window; all sliding → ``()``."""
    if window is None or SLIDING not in kinds:
        return None, ()
    if all(k == SLIDING for k in kinds):
        return window, ()
    return window, tuple(kinds)


# Which bound of advisor.readers.limits.ARCH_LIMITS each config key is held to.
_KEY_LIMIT = {
    "num_hidden_layers": "layers", "n_layer": "layers", "num_layers": "layers", "n_layers": "layers",
    "max_window_layers": "layers", "sliding_window_pattern": "layers",
    "hidden_size": "hidden", "n_embd": "hidden", "d_model": "hidden", "dim": "hidden",
    "num_attention_heads": "heads", "n_head": "heads", "num_heads": "heads", "n_heads": "heads",
    "num_key_value_heads": "heads", "num_kv_heads": "heads", "n_head_kv": "heads",
    "multi_query_group_num": "heads", "head_dim": "head_dim", "qk_rope_head_dim": "head_dim",
    "qk_nope_head_dim": "head_dim", "v_head_dim": "head_dim",
    "vocab_size": "vocab", "padded_vocab_size": "vocab",
    "intermediate_size": "intermediate", "n_inner": "intermediate", "ffn_hidden_size": "intermediate",
    "ffn_dim": "intermediate", "num_local_experts": "experts", "num_experts": "experts",
    "n_routed_experts": "experts", "num_experts_per_tok": "experts", "moe_top_k": "experts",
    "num_experts_per_token": "experts", "kv_lora_rank": "rank", "sliding_window": "window",
}


def _int(cfg: dict[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` present with a non-null value, as a non-negative int within its bound."""
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        return checked_count(value, key, ARCH_LIMITS[_KEY_LIMIT.get(key, "positions")])
    return None


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _dtype_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    name = value.removeprefix("torch.")
    try:
        return canonical(name)
    except AdvisorError:
        return name  # "auto" and other spellings are kept as written, for display
