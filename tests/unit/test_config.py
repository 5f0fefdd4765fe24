from __future__ import annotations

from pathlib import Path

import pytest

from pocketstack import distributions
from pocketstack.config import ConfigError, load_config, parse_config, substitute_env


def test_env_forms() -> None:
    environ = {"SET": "value", "EMPTY": ""}
    assert substitute_env("${env.SET}", environ, "x") == "value"
    assert substitute_env("a-${env.SET}-b", environ, "x") == "a-value-b"
    assert substitute_env("${env.UNSET:=fallback}", environ, "x") == "fallback"
    assert substitute_env("${env.EMPTY:=fallback}", environ, "x") == "fallback"
    assert substitute_env("${env.SET:=fallback}", environ, "x") == "value"
    assert substitute_env("${env.SET:+on}", environ, "x") == "on"
    assert substitute_env("${env.UNSET:+on}", environ, "x") is None
    assert substitute_env("${env.UNSET:=}", environ, "x") is None


def test_required_env_var_names_itself_and_the_line() -> None:
    text = "version: 2\nserver:\n  host: ${env.NOT_SET_ANYWHERE}\n"
    with pytest.raises(ConfigError, match=r"cfg.yaml line 3.*NOT_SET_ANYWHERE is not set"):
        parse_config(text, "cfg.yaml", environ={})


def test_substituted_scalars_are_typed_by_the_model() -> None:
    text = "server:\n  port: ${env.PORT:=9000}\n"
    assert parse_config(text, "cfg.yaml", environ={}).server.port == 9000
    assert parse_config(text, "cfg.yaml", environ={"PORT": "9100"}).server.port == 9100


def test_provider_switched_off_by_env() -> None:
    text = """
apis: [inference]
providers:
  inference:
    - provider_id: ${env.REMOTE_URL:+remote}
      provider_type: remote::openai-compat
    - provider_id: llama-cpp
      provider_type: inline::llama-cpp
"""
    config = parse_config(text, "cfg.yaml", environ={})
    assert [p.provider_id for p in config.providers["inference"]] == ["llama-cpp"]


def test_unknown_key_is_named_with_its_line() -> None:
    text = "version: 2\nserver:\n  host: 127.0.0.1\n  prot: 8321\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", environ={})
    assert "cfg.yaml line 4: server.prot: unknown key" in str(caught.value)


def test_wrong_type_is_named_with_its_line() -> None:
    text = "server:\n  port: eighty\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", environ={})
    assert "cfg.yaml line 2: server.port:" in str(caught.value)


def test_missing_required_key_points_at_its_parent() -> None:
    text = "apis: [inference]\nproviders:\n  inference:\n    - provider_type: inline::llama-cpp\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", environ={})
    assert "line 4: providers.inference.0.provider_id: Field required" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("server: {host: [\n", "not valid YAML"),
        ("server: 1\nserver: 2\n", "key 'server' appears twice"),
        ("server:\n  ? [a, b]\n  : 1\n", "line 2: keys must be plain scalars"),
        ("server:\n  port: !weird 1\n", "line 2:.*constructor for the tag"),
    ],
)
def test_malformed_files(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "cfg.yaml", environ={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_edge_distribution_follows_pocketstack_home(home: Path) -> None:
    path = distributions.path_of("edge")
    assert path is not None
    config = load_config(path)
    assert config.name == "edge"
    assert config.storage.metadata_db() == home / "edge" / "state.db"
    assert config.server.port == 8321
    assert config.server.host == "127.0.0.1"


def test_llama_stack_keys_are_accepted() -> None:
    text = """
version: 2
image_name: starter
apis: []
registered_resources: {models: [], shields: [], vector_stores: [], tool_groups: []}
vector_stores: {default_provider_id: sqlite-vec}
safety: {default_shield_id: llama-guard}
server: {port: 8321, workers: 1}
"""
    assert parse_config(text, "cfg.yaml", environ={}).name == "starter"


def test_llama_stack_vector_store_model_settings() -> None:
    # Llama Stack 0.7.1 core/datatypes.py RewriteQueryParams and ContextualRetrievalParams: fields, defaults, checks.
    text = """
vector_stores:
  rewrite_query_params: {model: {provider_id: llama-cpp, model_id: SmolLM2}}
  contextual_retrieval_params: {model: {provider_id: llama-cpp, model_id: SmolLM2}, default_max_concurrency: 2}
"""
    section = parse_config(text, "cfg.yaml", environ={}).vector_stores
    rewrite, contextual = section.rewrite_query_params, section.contextual_retrieval_params
    assert rewrite is not None and rewrite.model is not None and rewrite.model.identifier == "llama-cpp/SmolLM2"
    assert (rewrite.max_tokens, rewrite.temperature) == (100, 0.3) and rewrite.prompt.endswith("Improved query:")
    assert contextual.model is not None and contextual.model.identifier == "llama-cpp/SmolLM2"
    assert (contextual.default_timeout_seconds, contextual.default_max_concurrency) == (120, 2)
    assert contextual.max_document_tokens == 100000
    assert parse_config("vector_stores: {}", "cfg.yaml", environ={}).vector_stores.rewrite_query_params is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("rewrite_query_params: {prompt: Better words}", "prompt must contain {query} placeholder"),
        ("rewrite_query_params: {prompt: '{query} in {lang}'}", "{query} as its only field"),
        ("rewrite_query_params: {max_tokens: 0}", "rewrite_query_params.max_tokens"),
        ("rewrite_query_params: {temperature: 3}", "rewrite_query_params.temperature"),
        ("contextual_retrieval_params: {default_timeout_seconds: 5}", "default_timeout_seconds"),
        ("contextual_retrieval_params: {max_document_tokens: 10}", "max_document_tokens"),
    ],
)
def test_bad_vector_store_model_settings_are_named(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"vector_stores:\n  {section}\n", "cfg.yaml", environ={})
    assert "cfg.yaml line 2: vector_stores." in str(caught.value) and message in str(caught.value)


def test_merge_keys_apply_and_explicit_keys_win() -> None:
    text = """
providers:
  inference:
    - &local {provider_id: a, provider_type: inline::llama-cpp, config: {threads: 2}}
    - <<: *local
      provider_id: b
server:
  port: 9100
  <<: {host: 0.0.0.0, port: 9000}
"""
    config = parse_config(text, "cfg.yaml", environ={})
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9100)
    assert [(p.provider_id, p.config) for p in config.providers["inference"]] == [
        ("a", {"threads": 2}),
        ("b", {"threads": 2}),
    ]


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"version: 2\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)
