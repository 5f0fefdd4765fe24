"""inline::code-scanner: insecure code in messages, found by Meta's CodeShield (as Llama Stack's is).

CodeShield runs its regex rules and, for Python, JavaScript and the other languages it has them
for, semgrep rules. It is handed each fenced code block with its language, or the whole text
when there are no fences (then every language's rules apply, as CodeShield does without a
language).

CodeShield passes `--project-root /` to semgrep for the temporary files it writes, and current
semgrep then scans nothing ("the project root does not contain the scanning root"). So each
block is written here and handed over by a path relative to the working directory, which keeps
that flag off; the rules and the engine are CodeShield's own.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from pocketstack.errors import BadRequestError
from pocketstack.providers.base import ProviderContext, ServedShield, ShieldMessage, Stateless, Verdict
from pocketstack.providers.inline.code_scanner.blocks import CodeBlock, code_blocks
from pocketstack.providers.inline.code_scanner.config import CodeScannerConfig

REFUSAL = "Sorry, I found security concerns in the code."
CATEGORY = "insecure_code"


def _severity(value: Any) -> str:
    return str(getattr(value, "value", value)).lower()


async def _scan(block: CodeBlock) -> list[dict[str, Any]]:
    from codeshield.insecure_code_detector import insecure_code_detector, languages
    from codeshield.insecure_code_detector.usecases import UseCase

    wanted = [languages.Language(block.language)] if block.language else languages.get_supported_languages()
    findings: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pocketstack-scan-") as folder:
        scans = []
        for language in wanted:
            path = Path(folder) / f"snippet-{language.value}{languages.get_file_extension(language)}"
            path.write_text(block.code, encoding="utf-8")
            relative = Path(os.path.relpath(path))
            scans.append(
                insecure_code_detector.analyze(language, block.code, path=relative, usecase=UseCase.CODESHIELD)
            )
        for language, issues in zip(wanted, await asyncio.gather(*scans), strict=True):
            for issue in issues:
                findings.append(
                    {
                        "pattern_id": str(issue.pattern_id or "").rsplit(".", 1)[-1],
                        "cwe_id": issue.cwe_id,
                        "description": issue.description,
                        "severity": _severity(issue.severity),
                        "line": issue.line,
                        "language": language.value,
                        "analyzer": _severity(issue.analyzer),
                    }
                )
    unique = {(f["pattern_id"], f["line"]): f for f in findings}  # the same rule reported for several languages
    return list(unique.values())


class CodeScannerShield(Stateless):
    def __init__(self, config: CodeScannerConfig, context: ProviderContext) -> None:
        self.config = config

    async def check_shield(self, provider_resource_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if params:
            raise BadRequestError(f"inline::code-scanner shields take no params, not {sorted(params)}", param="params")
        return {}

    async def _findings(self, text: str) -> list[dict[str, Any]]:
        found = await asyncio.gather(*(_scan(block) for block in code_blocks(text)))
        return [finding for block in found for finding in block]

    @staticmethod
    def _verdict(findings: list[dict[str, Any]]) -> Verdict:
        cwes = sorted({f["cwe_id"] for f in findings if f["cwe_id"]})
        categories = {CATEGORY: bool(findings), **{cwe: True for cwe in cwes}}
        if not findings:
            return Verdict(flagged=False, categories=categories, category_scores={CATEGORY: 0.0})
        blocking = any(f["severity"] == "error" for f in findings)
        return Verdict(
            flagged=True,
            categories=categories,
            category_scores={name: 1.0 for name in categories},
            violation_level="error",
            user_message=REFUSAL,
            metadata={
                "violation_type": ",".join(dict.fromkeys(f["pattern_id"] for f in findings)),
                "recommended_treatment": "block" if blocking else "warn",
                "findings": findings,
            },
        )

    async def run_moderation(self, shield: ServedShield, texts: list[str]) -> list[Verdict]:
        return [self._verdict(await self._findings(text)) for text in texts]

    async def run_shield(self, shield: ServedShield, messages: list[ShieldMessage]) -> Verdict:
        found = await asyncio.gather(*(self._findings(m.text) for m in messages))
        return self._verdict([{**f, "message_index": i} for i, findings in enumerate(found) for f in findings])
