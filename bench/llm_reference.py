"""The LLM estimator against figures known from the models' own files and llama.cpp's logs.

    python bench/llm_reference.py

Prints, for real architectures (dimensions from their config.json files):

* the KV cache by our model vs the naive ``2 × layers × heads × head_dim × bytes × tokens``
  (the gap GQA, sliding windows and MLA open);
* Llama-3-8B's GGUF sizes as ``llama-quantize`` mixes them vs the published file sizes
  (bartowski/Meta-Llama-3-8B-Instruct-GGUF on Hugging Face, bytes as listed there);
* llama.cpp's compute buffer for Llama-3-8B at -c 8192 with and without flash attention.

No network, no GPU: the profiles are built from the architecture (Llama-style tensor names).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.estimator.mechanisms.kv_cache import kv_cache_bytes, naive_kv_cache_bytes
from advisor.estimator.runtimes import reprice_weights
from advisor.estimator.runtimes.llamacpp_plan import plan_llamacpp
from advisor.readers.profile import LlmArchitecture
from tests.test_llm_estimate import LLAMA3_8B, llama_profile

GIB = 1024**3
MIB = 1024**2

GEMMA3_27B = LlmArchitecture(
    model_type="gemma3_text", n_layers=62, hidden_size=5376, n_heads=32, n_kv_heads=16, head_dim=128,
    vocab_size=262208, sliding_window=1024,
    layer_types=tuple("sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(62)),
)
ARCHS: dict[str, tuple[LlmArchitecture, int]] = {
    "Llama-3-8B (GQA 8/32), 8k": (LLAMA3_8B, 8192),
    "Mistral-7B-v0.1 (SWA 4096), 32k": (LlmArchitecture(
        model_type="mistral", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=8, head_dim=128,
        vocab_size=32000, sliding_window=4096), 32768),
    "Gemma-3-27B (5 local : 1 global), 32k": (GEMMA3_27B, 32768),
    "DeepSeek-V3 (MLA), 32k": (LlmArchitecture(
        model_type="deepseek_v3", n_layers=61, hidden_size=7168, n_heads=128, n_kv_heads=128, head_dim=192,
        vocab_size=129280, kv_lora_rank=512, qk_rope_head_dim=64, v_head_dim=128), 32768),
    "Llama-2-7B (MHA), 4k": (LlmArchitecture(
        model_type="llama", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=32, head_dim=128,
        vocab_size=32000), 4096),
}

# NOTE: file sizes as listed on huggingface.co/bartowski/Meta-Llama-3-8B-Instruct-GGUF (GB = 1e9 B),
# written down from memory of that listing (no network here): re-check them before quoting.
PUBLISHED_GB = {"q8_0": 8.54, "q6_k": 6.60, "q5_k_m": 5.73, "q4_k_m": 4.92, "q4_k_s": 4.69,
                "q3_k_m": 4.02, "q2_k": 3.18}


def main() -> None:
    print("KV cache, bf16, 1 sequence: ours vs naive")
    for label, (arch, tokens) in ARCHS.items():
        ours = kv_cache_bytes(arch, sequences=1, tokens=tokens, kv_dtype="bf16")
        naive = naive_kv_cache_bytes(arch, sequences=1, tokens=tokens, kv_dtype="bf16")
        print(f"  {label:42} ours {ours / GIB:8.3f} GiB   naive {naive / GIB:8.3f} GiB   "
              f"naive error {100 * (naive - ours) / ours:+7.0f} %")
    print("\nLlama-3-8B GGUF weights: llama-quantize mix vs published file size")
    prof = llama_profile(LLAMA3_8B)
    for qtype, gb in PUBLISHED_GB.items():
        ours, _ = reprice_weights(prof, qtype, "llama.cpp")
        print(f"  {qtype:7} ours {ours / 1e9:6.2f} GB   published {gb:5.2f} GB   "
              f"{100 * (ours / 1e9 - gb) / gb:+5.1f} % (file adds metadata + tokenizer)")
    plan = plan_llamacpp(prof, LLAMA3_8B, context=8192, batch=1, kv_dtype="f16", weight_dtype="q4_k_m",
                         gpu_layers=None, cuda=True)
    print("\nllama.cpp compute buffer, Llama-3-8B, -c 8192, -ub 512:")
    print(f"  flash attention {plan.compute_fa_bytes / MIB:7.1f} MiB   "
          f"without {plan.compute_nofa_bytes / MIB:7.1f} MiB")


if __name__ == "__main__":
    main()
