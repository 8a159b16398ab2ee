"""Where a chat model's turn ends: the tokens generation stops on. Needs a tokenizer, not torch, so the training
code that builds token sequences (:mod:`counteroffer.train.tokens`) shares it with :mod:`.hf` without loading a
model."""

from __future__ import annotations

# End-of-turn markers of common chat templates; whichever the tokenizer knows also stops generation.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")


def stop_token_ids(tokenizer) -> list[int]:  # noqa: ANN001 - any HF tokenizer
    """The end-of-sequence token and whichever common end-of-turn markers the tokenizer knows."""
    vocabulary = tokenizer.get_vocab()
    stop_ids = {tokenizer.eos_token_id, *(vocabulary[t] for t in END_OF_TURN_TOKENS if t in vocabulary)}
    return sorted(i for i in stop_ids if i is not None)
