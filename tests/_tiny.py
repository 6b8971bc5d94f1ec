"""Tiny random models and a tiny offline tokenizer for fast tests."""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

CORPUS = [
    "The cat sat on the mat. The dog ran in the park.",
    "Hello world, this is a small test of the tokenizer.",
    "def f(x):\n    return x + 1\n",
    "Paris is the capital of France. Berlin is the capital of Germany.",
]


@functools.cache
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE (vocab ~300) with <bos> added to every text."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<bos>", "<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(CORPUS * 5, trainer)
    from tokenizers.processors import TemplateProcessing

    tk.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 0)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


def _ids() -> dict[str, int]:
    return {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}


def llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer()), hidden_size=32, intermediate_size=48,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=128, **_ids(),
    )
    return LlamaForCausalLM(cfg).eval()


def gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer()), n_embd=32, n_layer=3, n_head=4, n_positions=128, **_ids())
    return GPT2LMHeadModel(cfg).eval()


def neox(seed: int = 0) -> GPTNeoXForCausalLM:
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(
        vocab_size=len(tokenizer()), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128, **_ids(),
    )
    return GPTNeoXForCausalLM(cfg).eval()


BUILDERS = {"llama": llama, "gpt2": gpt2, "neox": neox}
